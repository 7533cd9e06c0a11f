"""The event loops `async def` tools run on: one kept per module of tools, with the guards a shared loop needs."""
from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

#: A loop whose heartbeat is this many seconds late is blocked (an async tool calling `time.sleep` or a blocking
#: client, or a tool calling another synchronously): calls it has not started run on a loop of their own until it
#: beats again, rather than waiting behind the tool that blocks it.
BLOCKED_AFTER = 0.5
#: How often a loop beats, and how often a waiting caller looks whether its call was given up or is stuck.
_BEAT = 0.1
_POLL = 0.1
#: Seconds the process's exit gives the loops to end their tasks once cancelled.
_EXIT_GRACE = 1.0

#: Set by the thread that waits on a call (`toolcall.executor.call_in_thread`) once it has given up on it (its time
#: limit, the caller cancelling, Ctrl-C): the tool's task is then cancelled instead of running on for ever.
GIVEN_UP: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("toolcall_given_up", default=None)
#: The call a task or a thread job belongs to, so what a tool starts is tracked by its call.
_CALL: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("toolcall_async_call", default=None)


class _JobThreads(concurrent.futures.ThreadPoolExecutor):
    """The loops' default executor (`asyncio.to_thread`, `run_in_executor(None, ...)`, name lookups): a daemon
    thread per job. A shared pool of a few threads let jobs that hang past their call's limit starve every later
    one (and the lookups of every client), and the interpreter waits for a pool's threads at exit."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as err:  # noqa: BLE001 - the job's failure is its awaiting task's to read
                future.set_exception(err)

        thread = threading.Thread(target=run, name="toolcall-async-job", daemon=True)
        call = _CALL.get()
        if call is not None:
            call.threads.append(thread)
        thread.start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing to wait for: the jobs' threads are daemons (a hung job must not hold the process's exit)."""


def _task_factory(loop: asyncio.AbstractEventLoop, coro: Any, **options: Any) -> Any:
    """Every task is tracked by the call it was made in, so what a call leaves pending is cancelled when it ends
    (as `asyncio.run` did when each call had a loop of its own)."""
    task = asyncio.Task(coro, loop=loop, **options)
    context = options.get("context")
    call = (context if context is not None else contextvars.copy_context()).get(_CALL)
    if call is not None:
        call.tasks.add(task)
    return task


class _ToolLoop:
    """An event loop in a daemon thread of its own, re-entered if a tool stops it, with a heartbeat."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_default_executor(_JobThreads())
        self.loop.set_task_factory(_task_factory)
        self.pid = os.getpid()
        self.beat = time.monotonic()
        self.closing = False
        self.thread = threading.Thread(target=self._run, name="toolcall-async-tools", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._tick)
        while True:
            try:
                self.loop.run_forever()
            except BaseException:  # noqa: BLE001 - SystemExit from a tool's child task or callback: the task that
                pass  # raised it has it as its result; the loop is every other call's too, so it runs on
            if self.closing:
                break
            # A tool called loop.stop(): the loop is not the tool's to stop.
        self._close()

    def _tick(self) -> None:
        self.beat = time.monotonic()
        self.loop.call_later(_BEAT, self._tick)

    def blocked(self) -> bool:
        return time.monotonic() - self.beat > BLOCKED_AFTER

    def usable(self) -> bool:
        return self.pid == os.getpid() and self.thread.is_alive() and not self.loop.is_closed()

    def _close(self) -> None:
        """What still runs is cancelled and given a moment to end, so no task is destroyed pending."""
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

    def stop(self, deadline: float) -> None:
        self.closing = True
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:
            return
        if not self.blocked():  # a blocked loop would only hold the exit up
            self.thread.join(max(0.0, deadline - time.monotonic()))


#: The loop of each module of tools (by the module's name): a client a module keeps at import is shared by its tools,
#: and a tool of one module that blocks its loop holds up no other module's calls.
_loops: dict[str, _ToolLoop] = {}
_lock = threading.Lock()


def _loop_for(module: str) -> _ToolLoop:
    """The module's loop, started on first use, and again if it cannot run (a forked child, a loop that ended)."""
    with _lock:
        found = _loops.get(module)
        if found is None or not found.usable():
            found = _loops[module] = _ToolLoop()
        return found


def _forget_in_child() -> None:
    """A forked child has none of its parent's threads; the lock may have been held by one of them."""
    global _lock
    _lock = threading.Lock()
    _loops.clear()


os.register_at_fork(after_in_child=_forget_in_child)


@atexit.register
def _stop_at_exit() -> None:
    deadline = time.monotonic() + _EXIT_GRACE + 0.5
    with _lock:
        loops = [loop for loop in _loops.values() if loop.pid == os.getpid()]
    for loop in loops:
        loop.stop(deadline)


class _Call:
    """One awaitable, started on a loop unless the waiting caller revoked it first (so it can run elsewhere), with
    the tasks and job threads it starts."""

    def __init__(self, awaitable: Awaitable[Any], context: contextvars.Context, module: str) -> None:
        self.awaitable = awaitable
        self.module = module
        self.context = context
        self.done: concurrent.futures.Future[tuple[bool, Any]] = concurrent.futures.Future()
        self.task: asyncio.Task[tuple[bool, Any]] | None = None
        self.tasks: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        self.threads: list[threading.Thread] = []
        self._state = "waiting"  # -> "started" on the loop, or -> "revoked" by the caller; whichever comes first
        self._state_lock = threading.Lock()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._state_lock:
            if self._state != "waiting":
                return
            self._state = "started"
        # The task runs in a copy of the caller's context, as a tool run in a thread does (it sees text_context).
        self.task = loop.create_task(_settled(self, self.awaitable), context=self.context)
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

    def running_on(self) -> bool:
        """Whether anything of the call still runs: its task, or a job thread it started."""
        return not self.done.done() or any(thread.is_alive() for thread in self.threads)


async def _settled(call: _Call, awaitable: Awaitable[Any]) -> tuple[bool, Any]:
    """(True, value) or (False, what it raised), never raising: SystemExit or KeyboardInterrupt raised by a tool
    would otherwise leave the task and stop the loop other calls share, and a TimeoutError of the tool's own is its
    failure, not the call's time limit. What the call left pending is cancelled once it ends."""
    _CALL.set(call)
    try:
        return True, await awaitable
    except BaseException as err:  # noqa: BLE001 - every failure goes back to the caller as a value
        return False, err
    finally:
        current = asyncio.current_task()
        for task in list(call.tasks):
            if task is not current and not task.done():
                task.cancel()


def run_awaitable(awaitable: Awaitable[Any], module: str = "") -> Any:
    """The awaitable's value, awaited on the loop of the tool's `module` (what it raises, raised here). Called in
    the thread that runs a tool call; the loop is kept between calls, so a client the module keeps (an
    `httpx.AsyncClient` made at import) stays bound to a live loop. A call given up by its caller (GIVEN_UP) is
    cancelled, and waited for while it ignores that, so the waiting thread counts as a call running past its limit."""
    given_up = GIVEN_UP.get()
    outer = _CALL.get()
    if _loop_running_here() or (outer is not None and outer.module == module):
        # A tool called synchronously from a coroutine: the loop it would go to is held by its caller.
        return _run_alone(awaitable, given_up)
    tool_loop = _loop_for(module)
    if tool_loop.blocked():
        return _run_alone(awaitable, given_up)
    call = _Call(awaitable, contextvars.copy_context(), module)
    try:
        tool_loop.loop.call_soon_threadsafe(call.start, tool_loop.loop)
    except RuntimeError:  # closed: the process is exiting
        return _run_alone(awaitable, given_up)
    outcome = _wait(call, tool_loop, given_up)
    if outcome is None:  # the loop is blocked and never started it
        return _run_alone(awaitable, given_up)
    ok, value = outcome
    if not ok:
        raise value
    return value


def _wait(call: _Call, tool_loop: _ToolLoop, given_up: threading.Event | None) -> tuple[bool, Any] | None:
    """The call's outcome; None if the loop was blocked and never started it (it may run elsewhere)."""
    while True:
        try:
            outcome = call.done.result(timeout=_POLL)
        except concurrent.futures.TimeoutError:
            outcome = None
        if given_up is not None and given_up.is_set():
            if call.revoke():
                _close(call.awaitable)
                return False, asyncio.CancelledError()
            _cancel(call, tool_loop)
            while call.running_on():  # a tool that ignores the cancellation, or a job thread that hangs
                time.sleep(_POLL)
            return call.done.result()
        if outcome is not None:
            return outcome
        if tool_loop.blocked() and call.revoke():
            return None


def _cancel(call: _Call, tool_loop: _ToolLoop) -> None:
    try:
        tool_loop.loop.call_soon_threadsafe(call.cancel)
    except RuntimeError:  # closed: nothing runs there any more
        pass


def _close(awaitable: Awaitable[Any]) -> None:
    """Close a coroutine that will never run, so it is not reported as never awaited."""
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()


def _run_alone(awaitable: Awaitable[Any], given_up: threading.Event | None) -> Any:
    """The awaitable run to its end on an event loop of its own (what every call did before loops were kept), and
    cancelled once given up: in this thread, or in a helper thread if this one runs a loop already."""
    if not _loop_running_here():
        return _alone(awaitable, given_up)
    box: dict[str, tuple[bool, Any]] = {}

    def target() -> None:
        try:
            box["outcome"] = (True, _alone(awaitable, given_up))
        except BaseException as err:  # noqa: BLE001 - raised again in the caller's thread
            box["outcome"] = (False, err)

    helper = threading.Thread(target=target, name="toolcall-async-tool", daemon=True)
    helper.start()
    helper.join()
    ok, value = box.get("outcome", (False, RuntimeError("the tool's loop ended without a result")))
    if not ok:
        raise value
    return value


def _alone(awaitable: Awaitable[Any], given_up: threading.Event | None) -> Any:
    with asyncio.Runner() as runner:
        runner.get_loop().set_default_executor(_JobThreads())
        return runner.run(_watched(awaitable, given_up))


async def _watched(awaitable: Awaitable[Any], given_up: threading.Event | None) -> Any:
    task = asyncio.ensure_future(awaitable)
    cancelled = False
    while True:
        done, _ = await asyncio.wait({task}, timeout=_POLL)
        if done:
            return task.result()
        if given_up is not None and given_up.is_set() and not cancelled:
            task.cancel()
            cancelled = True


def _loop_running_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
