"""The event loop `async def` tools share, kept between calls, with the guards a shared loop needs."""
from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import contextvars
import os
import queue
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

#: A loop whose heartbeat is this many seconds late while its thread hardly ran (it waits in a blocking call: an
#: async tool calling `time.sleep` or a blocking client, or a tool calling another synchronously) is blocked: calls
#: it has not started run on a loop of their own until it beats again, rather than waiting behind the tool that
#: blocks it. A loop late because it computes (many replies parsed at once) is busy, not blocked: calls wait for it.
BLOCKED_AFTER = 0.5
#: The share of the late time the loop's thread may have spent on the CPU and still count as blocked.
_BLOCKED_CPU_SHARE = 0.5
#: How often the loop beats, and how often a waiting caller looks whether its call was given up or is stuck.
_BEAT = 0.1
_POLL = 0.1
#: Seconds the tasks a cancelled call left running (a commit it shielded) get to end before they are cancelled too.
LEFTOVER_GRACE = 10.0
#: Seconds the process's exit gives the loop's tasks to end once cancelled.
_EXIT_GRACE = 1.0

#: Set by the thread that waits on a call (`toolcall.executor.call_in_thread`) once it has given up on it (its time
#: limit, the caller cancelling, Ctrl-C): the tool's task is then cancelled instead of running on for ever.
GIVEN_UP: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("toolcall_given_up", default=None)
#: The event loop a caller waits on a tool call in (a coroutine calling `registry.call` synchronously): set by
#: `toolcall.executor.call_in_thread`, so an async tool it calls does not wait for the loop its caller holds.
LOOP_HELD: contextvars.ContextVar[asyncio.AbstractEventLoop | None] = contextvars.ContextVar("toolcall_loop_held",
                                                                                            default=None)
#: The call a task or a thread job belongs to, so what a tool starts is tracked by its call.
_CALL: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("toolcall_async_call", default=None)


# ---------------------------------------------------------------------------------------------- thread jobs

#: Job threads that may run at once for jobs still waited on; a job of a call given up (hung past its limit), or one
#: waiting on a nested tool call, does not count, so neither starves a later job. At most _MOST_JOB_THREADS in all,
#: whatever hangs (threads waiting on a nested call aside).
JOB_THREADS = 64
_MOST_JOB_THREADS = 256
#: Seconds an idle job thread waits for work before it ends.
_JOB_IDLE = 30.0


class _JobThreads(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor (`asyncio.to_thread`, `run_in_executor(None, ...)`, name lookups): daemon
    threads, reused, JOB_THREADS of them for the jobs still waited on. A pool of CPUs + 4 threads let jobs that hang
    past their call's limit starve every later one (the lookups of every client too), and the interpreter waits for
    a standard pool's threads at exit. A job of a call given up, or one waiting on a tool call of its own (a nested
    call, which may need a job thread itself), does not count against JOB_THREADS."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)  # the base class's own threads are never started
        self._jobs: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[[], Any], _Call | None]] = \
            queue.SimpleQueue()
        self._jobs_lock = threading.Lock()
        self._queued = 0  # jobs put and not yet taken
        self._idle = 0  # job threads waiting for a job
        self._job_threads = 0
        self._jobs_running: dict[int, _Call | None] = {}  # by job thread: the call of the job it runs
        self._nested: set[int] = set()  # job threads waiting on a tool call of their own

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        call = _CALL.get()
        if call is not None:
            call.job_started()
        with self._jobs_lock:
            self._queued += 1
        self._jobs.put((future, lambda: fn(*args, **kwargs), call))
        self.start_threads()
        return future

    def start_threads(self) -> None:
        """Start threads for queued jobs no idle thread will take, as far as the limits allow. Called as jobs come
        in and end, and at every heartbeat of the loop (a call given up frees room for the jobs queued behind it)."""
        with self._jobs_lock:
            while self._queued > self._idle and self._job_threads - len(self._nested) < _MOST_JOB_THREADS and \
                    self._job_threads - self._uncounted() < JOB_THREADS:
                self._job_threads += 1
                self._idle += 1  # counted idle until it takes its first job
                try:
                    threading.Thread(target=self._work, name="toolcall-async-job", daemon=True).start()
                except RuntimeError:  # "can't start new thread" (a process or memory limit): later, maybe
                    self._job_threads -= 1
                    self._idle -= 1
                    return

    def _uncounted(self) -> int:
        """Job threads that do not count against JOB_THREADS: hung past their call's limit, or waiting on a nested
        call."""
        hung = sum(1 for me, call in list(self._jobs_running.items())
                   if call is not None and call.given_up() and me not in self._nested)
        return hung + len(self._nested)

    def _work(self) -> None:
        me = threading.get_ident()
        _JOB_THREAD.pool = self
        while True:
            try:
                future, job, call = self._jobs.get(timeout=_JOB_IDLE)
            except queue.Empty:
                with self._jobs_lock:
                    if self._queued <= self._idle - 1:  # no job is left for this thread: it ends
                        self._idle -= 1
                        self._job_threads -= 1
                        return
                continue
            with self._jobs_lock:
                self._queued -= 1
                self._idle -= 1
                self._jobs_running[me] = call
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(job())
                    except BaseException as err:  # noqa: BLE001 - the job's failure is its awaiting task's to read
                        future.set_exception(err)
            finally:
                with self._jobs_lock:
                    del self._jobs_running[me]
                    self._idle += 1
                if call is not None:
                    call.job_ended()
            self.start_threads()

    def nested(self, waiting: bool) -> None:
        with self._jobs_lock:
            (self._nested.add if waiting else self._nested.discard)(threading.get_ident())
        if waiting:
            self.start_threads()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing to wait for: the job threads are daemons (a hung job must not hold the process's exit)."""


#: In a job thread: its pool (so a tool call made from the job marks the thread as waiting on it).
_JOB_THREAD = threading.local()


@contextlib.contextmanager
def waiting_on_a_call() -> Iterator[None]:
    """Around a thread's wait on a tool call (`toolcall.executor.call_in_thread`): a job thread waiting so stops
    counting against JOB_THREADS, so the nested call's own jobs can run (64 jobs each waiting on a call whose job
    was queued behind them waited to their limits)."""
    pool = getattr(_JOB_THREAD, "pool", None)
    if pool is None:
        yield
        return
    pool.nested(True)
    try:
        yield
    finally:
        pool.nested(False)


# ---------------------------------------------------------------------------------------------- the loop

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
        self.jobs = _job_threads()
        self.loop.set_default_executor(self.jobs)
        self.loop.set_task_factory(_task_factory)
        self.pid = os.getpid()
        self.beat = time.monotonic()
        self.beat_cpu = 0.0
        self.closing = False
        self._cpu_clock: int | None = None
        self.thread = threading.Thread(target=self._run, name="toolcall-async-tools", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self._cpu_clock = time.pthread_getcpuclockid(threading.get_ident())
        except (AttributeError, OSError):  # not on this platform: lateness alone tells a blocked loop
            pass
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
        self.beat, self.beat_cpu = time.monotonic(), time.thread_time()
        self.loop.call_later(_BEAT, self._tick)
        self.jobs.start_threads()

    def blocked(self) -> bool:
        """Whether the loop is late and its thread waits rather than computes (see BLOCKED_AFTER)."""
        late = time.monotonic() - self.beat
        if late <= BLOCKED_AFTER:
            return False
        if self._cpu_clock is None:
            return True
        try:
            used = time.clock_gettime(self._cpu_clock) - self.beat_cpu
        except OSError:  # the thread ended
            return True
        return used < late * _BLOCKED_CPU_SHARE

    def usable(self) -> bool:
        return self.pid == os.getpid() and self.thread.is_alive() and not self.loop.is_closed()

    def _close(self) -> None:
        """What still runs is cancelled and given a moment to end, so no task is left pending unannounced."""
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        try:
            if pending:
                self.loop.run_until_complete(asyncio.wait(pending, timeout=_EXIT_GRACE))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        except BaseException:  # noqa: BLE001 - a tool's cleanup failing at exit is not the caller's failure
            pass
        for task in asyncio.all_tasks(self.loop):
            # Still running past the grace: the process is ending; asyncio would print "Task was destroyed but
            # it is pending!" for each.
            task._log_destroy_pending = False  # type: ignore[attr-defined]
        self.loop.close()

    def stop(self, deadline: float) -> None:
        self.closing = True
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:
            return
        if not self.blocked():  # a blocked loop would only hold the exit up
            self.thread.join(max(0.0, deadline - time.monotonic()))


#: One loop for every async tool in the process, as in any asyncio program: a client kept at import (in one module
#: or shared by several) is bound to it.
_current: _ToolLoop | None = None
_lock = threading.Lock()


def _shared() -> _ToolLoop:
    """The loop, started on first use, and again if it cannot run (a forked child, a loop that ended)."""
    global _current
    with _lock:
        if _current is None or not _current.usable():
            _current = _ToolLoop()
        return _current


_pool: _JobThreads | None = None
_pool_lock = threading.Lock()


def _job_threads() -> _JobThreads:
    """The process's one pool of job threads, for the shared loop and the loops calls run alone on."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = _JobThreads()
        return _pool


def _forget_in_child() -> None:
    """A forked child has none of its parent's threads; the lock may have been held by one of them."""
    global _lock, _current, _pool, _pool_lock
    _lock, _pool_lock = threading.Lock(), threading.Lock()
    _current = None
    _pool = None


os.register_at_fork(after_in_child=_forget_in_child)


@atexit.register
def _stop_at_exit() -> None:
    with _lock:
        loop = _current
    if loop is not None and loop.pid == os.getpid():
        loop.stop(time.monotonic() + _EXIT_GRACE + 0.5)


# ---------------------------------------------------------------------------------------------- one call

class _Call:
    """One awaitable, started on the loop unless the waiting caller revoked it first (so it can run elsewhere), with
    the tasks and thread jobs it starts."""

    def __init__(self, awaitable: Awaitable[Any], context: contextvars.Context,
                 given_up: threading.Event | None) -> None:
        self.awaitable = awaitable
        self.context = context
        self._given_up = given_up
        self.done: concurrent.futures.Future[tuple[bool, Any]] = concurrent.futures.Future()
        self.task: asyncio.Task[tuple[bool, Any]] | None = None
        self.tasks: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        self._jobs = 0
        self._state = "waiting"  # -> "started" on the loop, or -> "revoked" by the caller; whichever comes first
        self._lock = threading.Lock()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            if self._state != "waiting":
                return
            self._state = "started"
        # The task runs in a copy of the caller's context, as a tool run in a thread does (it sees text_context);
        # a call made from another's tool is its own call, not one of the other's tasks.
        self.context.run(_CALL.set, None)
        self.task = loop.create_task(_settled(self, self.awaitable), context=self.context)
        self.task.add_done_callback(self._finish)

    def _finish(self, task: asyncio.Task[tuple[bool, Any]]) -> None:
        # Cancelled before its first step, the guard in _settled never ran.
        self.done.set_result((False, asyncio.CancelledError()) if task.cancelled() else task.result())

    def revoke(self) -> bool:
        """True if the call had not started and now never will on the loop it was sent to."""
        with self._lock:
            if self._state != "waiting":
                return False
            self._state = "revoked"
            return True

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def given_up(self) -> bool:
        return self._given_up is not None and self._given_up.is_set()

    def job_started(self) -> None:
        with self._lock:
            self._jobs += 1

    def job_ended(self) -> None:
        with self._lock:
            self._jobs -= 1

    def running_on(self) -> bool:
        """Whether anything of the call still runs: its task, or a thread job it started."""
        with self._lock:
            return not self.done.done() or self._jobs > 0


async def _settled(call: _Call, awaitable: Awaitable[Any]) -> tuple[bool, Any]:
    """(True, value) or (False, what it raised), never raising: SystemExit or KeyboardInterrupt raised by a tool
    would otherwise leave the task and stop the loop other calls share, and a TimeoutError of the tool's own is its
    failure, not the call's time limit. What the call left pending is cancelled once it ends; after a cancellation
    (its time limit), LEFTOVER_GRACE seconds later, so a commit it shielded can end."""
    _CALL.set(call)
    cancelled = False
    try:
        return True, await awaitable
    except asyncio.CancelledError as err:
        cancelled = True
        return False, err
    except BaseException as err:  # noqa: BLE001 - every failure goes back to the caller as a value
        return False, err
    finally:
        current = asyncio.current_task()
        leftovers = [task for task in call.tasks if task is not current and not task.done()]
        if cancelled and leftovers:
            asyncio.get_running_loop().call_later(LEFTOVER_GRACE, _cancel_all, leftovers)
        else:
            _cancel_all(leftovers)


def _cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()


def run_awaitable(awaitable: Awaitable[Any]) -> Any:
    """The awaitable's value, awaited on the loop async tools share (what it raises, raised here). Called in the
    thread that runs a tool call; the loop is kept between calls, so a client a tool keeps (an `httpx.AsyncClient`
    made at import) stays bound to a live loop. A call given up by its caller (GIVEN_UP) is cancelled, and waited
    for while it ignores that, so the waiting thread counts as a call running past its limit."""
    given_up = GIVEN_UP.get()
    if running_loop() is not None:
        return _run_alone(awaitable, given_up)
    tool_loop = _shared()
    if tool_loop.blocked() or LOOP_HELD.get() is tool_loop.loop:
        # Blocked, or held by the tool that called this one synchronously from its coroutine: it could not start.
        return _run_alone(awaitable, given_up)
    call = _Call(awaitable, contextvars.copy_context(), given_up)
    try:
        tool_loop.loop.call_soon_threadsafe(call.start, tool_loop.loop)
    except RuntimeError:  # closed: the process is exiting
        return _run_alone(awaitable, given_up)
    outcome = _wait(call, tool_loop)
    if outcome is None:  # the loop is blocked and never started it
        return _run_alone(awaitable, given_up)
    ok, value = outcome
    if not ok:
        raise value
    return value


def _wait(call: _Call, tool_loop: _ToolLoop) -> tuple[bool, Any] | None:
    """The call's outcome; None if the loop was blocked and never started it (it may run elsewhere)."""
    while True:
        try:
            outcome = call.done.result(timeout=_POLL)
        except concurrent.futures.TimeoutError:
            outcome = None
        if call.given_up():
            if call.revoke():
                _close(call.awaitable)
                return False, asyncio.CancelledError()
            try:
                tool_loop.loop.call_soon_threadsafe(call.cancel)
            except RuntimeError:  # closed: nothing runs there any more
                pass
            while call.running_on():  # a tool that ignores the cancellation, or a thread job that hangs
                time.sleep(_POLL)
            return call.done.result()
        if outcome is not None and not call.running_on():
            # Done, and no thread job of it runs on: a job it left running is waited for, as asyncio.run waits for
            # its executor, so a tool that leaves jobs hanging is held to its time limit (and then counts as a call
            # running past it), and the jobs of calls nobody waits on cannot pile up.
            return outcome
        if outcome is not None:
            time.sleep(_POLL)  # done, its jobs not: result() no longer waits
        elif tool_loop.blocked() and call.revoke():
            return None


def _close(awaitable: Awaitable[Any]) -> None:
    """Close a coroutine that will never run, so it is not reported as never awaited."""
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()


def _run_alone(awaitable: Awaitable[Any], given_up: threading.Event | None) -> Any:
    """The awaitable run to its end on an event loop of its own (what every call did before the loop was kept),
    and cancelled once given up: in this thread, or in a helper thread if this one runs a loop already."""
    if running_loop() is None:
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
        runner.get_loop().set_default_executor(_job_threads())  # one pool for every loop: each its own left
        # its idle threads behind (300 calls run alone, 300 threads), beyond any cap
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


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, if one is."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
