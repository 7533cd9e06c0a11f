"""The event loop `async def` tools share in a process, kept between calls, with the guards a shared loop needs."""
from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import os
import threading
import time
from collections.abc import Awaitable
from typing import Any

#: Seconds a call may wait for the loop to start it. A loop that starts nothing for that long is blocked (an async
#: tool that calls `time.sleep` or a blocking client): the call then runs on a loop of its own, and so do later calls
#: until the shared loop runs again, rather than every async tool timing out behind the one that blocks.
BLOCKED_AFTER = 1.0
#: How often a waiting caller looks whether the loop is blocked or the call was given up.
_POLL = 0.05
#: Seconds the process's exit gives the loop's tasks to end once cancelled.
_EXIT_GRACE = 1.0

#: Set by the thread that waits on a call (`toolcall.executor.call_in_thread`) once it has given up on it (its time
#: limit, or the caller cancelling): the tool's task is then cancelled instead of running on for ever.
GIVEN_UP: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("toolcall_given_up", default=None)
#: True inside a task on the shared loop: a tool there that calls another tool synchronously (`registry.call`)
#: holds the loop while it waits, so the inner call runs on a loop of its own instead of deadlocking on this one.
_ON_TOOL_LOOP: contextvars.ContextVar[bool] = contextvars.ContextVar("toolcall_on_tool_loop", default=False)


class _ToolLoop:
    """An event loop running in a daemon thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pid = os.getpid()
        self.blocked = threading.Event()
        self.thread = threading.Thread(target=self._run, name="toolcall-async-tools", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            # The loop was stopped (the process exiting): what still runs is cancelled and
            # given a moment to end, so no task is destroyed pending and async generators are closed.
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            try:
                if pending:
                    self.loop.run_until_complete(asyncio.wait(pending, timeout=_EXIT_GRACE))
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            except BaseException:  # noqa: BLE001 - a tool's cleanup failing at exit is not the caller's failure
                pass
            self.loop.close()

    def mark_blocked(self) -> None:
        """Send calls elsewhere until the loop runs again (a callback it runs once it is free clears the mark)."""
        if self.blocked.is_set():
            return
        self.blocked.set()
        try:
            self.loop.call_soon_threadsafe(self.blocked.clear)
        except RuntimeError:  # closed: nothing will clear it, and nothing should go there
            pass

    def stop(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:
            return
        if not self.blocked.is_set():  # a blocked loop would only hold the exit up
            self.thread.join(_EXIT_GRACE + 1.0)


_current: _ToolLoop | None = None
_lock = threading.Lock()


def _shared() -> _ToolLoop:
    """The loop calls go to, started on first use (again in a forked child, which has no thread of its parent's)."""
    global _current
    with _lock:
        if _current is None or _current.pid != os.getpid():
            _current = _ToolLoop()
        return _current


def _forget_in_child() -> None:
    global _current
    _current = None


os.register_at_fork(after_in_child=_forget_in_child)


@atexit.register
def _stop_at_exit() -> None:
    with _lock:
        loop = _current
    if loop is not None and loop.pid == os.getpid():
        loop.stop()


class _Call:
    """One awaitable, started on a loop unless the waiting caller revoked it first (so it can go elsewhere)."""

    def __init__(self, awaitable: Awaitable[Any], context: contextvars.Context) -> None:
        self.awaitable = awaitable
        self.context = context
        self.done: concurrent.futures.Future[tuple[bool, Any]] = concurrent.futures.Future()
        self.task: asyncio.Task[tuple[bool, Any]] | None = None
        self._state = "waiting"  # -> "started" on the loop, or -> "revoked" by the caller; whichever comes first
        self._state_lock = threading.Lock()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._state_lock:
            if self._state != "waiting":
                return
            self._state = "started"
        # The task runs in a copy of the caller's context, as a tool run in a thread does (it sees text_context).
        self.task = loop.create_task(_settled(self.awaitable), context=self.context)
        self.task.add_done_callback(self._finish)

    def _finish(self, task: asyncio.Task[tuple[bool, Any]]) -> None:
        # Cancelled before its first step, the guard in _settled never ran.
        self.done.set_result((False, asyncio.CancelledError()) if task.cancelled() else task.result())

    def revoke(self) -> bool:
        """True if the call had not started and now never will on the loop it was sent to."""
        with self._state_lock:
            if self._state != "waiting":
                return False
            self._state = "revoked"
            return True

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()


async def _settled(awaitable: Awaitable[Any]) -> tuple[bool, Any]:
    """(True, value) or (False, what it raised), never raising: SystemExit or KeyboardInterrupt raised by a tool
    would otherwise leave the task and stop the loop every async tool shares, and a TimeoutError of the tool's own is
    its failure, not the call's time limit."""
    _ON_TOOL_LOOP.set(True)
    try:
        return True, await awaitable
    except BaseException as err:  # noqa: BLE001 - every failure goes back to the caller as a value
        return False, err


def run_awaitable(awaitable: Awaitable[Any]) -> Any:
    """The awaitable's value, awaited on the loop async tools share (what it raises, raised here). Called in the
    thread that runs a tool call; the loop is kept between calls, so a client a tool keeps (an `httpx.AsyncClient`
    made at import) stays bound to a live loop. A call given up by its caller (GIVEN_UP) is cancelled."""
    if _ON_TOOL_LOOP.get() or _loop_running_here():
        return _run_alone(awaitable)
    tool_loop = _shared()
    if tool_loop.blocked.is_set():
        return _run_alone(awaitable)
    call = _Call(awaitable, contextvars.copy_context())
    try:
        tool_loop.loop.call_soon_threadsafe(call.start, tool_loop.loop)
    except RuntimeError:  # closed: the process is exiting
        return _run_alone(awaitable)
    outcome = _wait(call, tool_loop, GIVEN_UP.get())
    if outcome is None:  # the loop is blocked and never started it
        return _run_alone(awaitable)
    ok, value = outcome
    if not ok:
        raise value
    return value


def _wait(call: _Call, tool_loop: _ToolLoop, given_up: threading.Event | None) -> tuple[bool, Any] | None:
    """The call's outcome; None if the loop was blocked and never started it (it may run elsewhere). Once the caller
    gives up, the task is cancelled and waited for, so the waiting thread counts as a call running past its limit
    for as long as the tool ignores the cancellation."""
    sent = time.monotonic()
    cancelled = False
    while True:
        try:
            return call.done.result(timeout=_POLL)
        except concurrent.futures.TimeoutError:
            pass
        if given_up is not None and given_up.is_set() and not cancelled:
            if call.revoke():
                _close(call.awaitable)
                return False, asyncio.CancelledError()
            cancelled = True
            try:
                tool_loop.loop.call_soon_threadsafe(call.cancel)
            except RuntimeError:
                return False, asyncio.CancelledError()
        elif not cancelled and time.monotonic() - sent > BLOCKED_AFTER and call.revoke():
            tool_loop.mark_blocked()
            return None


def _close(awaitable: Awaitable[Any]) -> None:
    """Close a coroutine that will never run, so it is not reported as never awaited."""
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()


def _run_alone(awaitable: Awaitable[Any]) -> Any:
    """The awaitable run to its end on an event loop of its own (what every call did before the loop was shared):
    in this thread, or in a helper thread if this one runs a loop already."""
    if not _loop_running_here():
        return asyncio.run(_awaited(awaitable))
    box: dict[str, Any] = {}

    def target() -> None:
        box["outcome"] = asyncio.run(_settled(awaitable))

    helper = threading.Thread(target=target, name="toolcall-async-tool", daemon=True)
    helper.start()
    helper.join()
    ok, value = box.get("outcome", (False, RuntimeError("the tool's loop ended without a result")))
    if not ok:
        raise value
    return value


def _loop_running_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
