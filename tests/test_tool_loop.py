"""The event loop async tools share: kept between calls, and guarded against the tools that share it."""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import http.server
import os
import subprocess
import sys
import threading
import time
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from toolcall import tool_loop
from toolcall.executor import overdue_calls
from toolcall.registry import ToolRegistry, make_tool


class _LoopBound:
    """Like an httpx.AsyncClient made at import: bound to the event loop it first runs on."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None

    async def get(self, key: str) -> str:
        running = asyncio.get_running_loop()
        if self.loop is None or self.loop.is_closed():
            self.loop = running
        if running is not self.loop:
            raise RuntimeError("bound to a different event loop")
        await asyncio.sleep(0)
        return key.upper()


_CLIENT = _LoopBound()
_CANCELLED: list[str] = []
_SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")


async def kept(key: str) -> str:
    """Fetch with a client kept between calls.

    Args:
        key: What to fetch.
    """
    return await _CLIENT.get(key)


async def hangs(key: str) -> str:
    """Wait for ever, noting when cancelled.

    Args:
        key: A label.
    """
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        _CANCELLED.append(key)
        raise
    return key


async def blocks(seconds: float) -> str:
    """Block the loop, as `time.sleep` in a coroutine does.

    Args:
        seconds: For how long.
    """
    time.sleep(seconds)
    return "woke"


async def reads_context() -> str:
    """The caller's context variable."""
    await asyncio.sleep(0)
    return _SEEN.get()


async def raises(kind: str) -> str:
    """Raise what is asked.

    Args:
        kind: SystemExit, KeyboardInterrupt or TimeoutError.
    """
    await asyncio.sleep(0)
    if kind == "SystemExit":
        raise SystemExit("bye")
    if kind == "KeyboardInterrupt":
        raise KeyboardInterrupt
    raise TimeoutError("the upstream service took too long")


async def loop_id() -> str:
    """Which event loop the call runs on."""
    return str(id(asyncio.get_running_loop()))


_NESTED = ToolRegistry([reads_context])


async def calls_another(key: str) -> str:
    """Call another async tool synchronously, as a tool may through a registry.

    Args:
        key: What the other fetches.
    """
    await asyncio.sleep(0)
    return "inner: " + _NESTED.call("reads_context").text


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry([kept, loop_id, reads_context, raises, calls_another, make_tool(hangs, timeout=0.3),
                         make_tool(blocks, timeout=0.5)])


def test_a_client_kept_between_calls_stays_usable(registry: ToolRegistry) -> None:
    # Each call ran on an event loop of its own (asyncio.run), so the second call of a tool holding a client made at
    # import failed: "Event loop is closed" from httpx.
    assert [registry.call("kept", (k,)).text for k in ("a", "b", "c")] == ["A", "B", "C"]
    assert len({registry.call("loop_id").text for _ in range(3)}) == 1


def test_a_call_past_its_limit_is_cancelled_and_stops_counting_as_running(registry: ToolRegistry) -> None:
    # It ran on for ever in its abandoned thread, and counted against the tool's overdue calls.
    _CANCELLED.clear()
    began = time.monotonic()
    late = registry.call("hangs", ("x",))
    assert not late.ok and "timed out after 0.3 s" in late.text and time.monotonic() - began < 1.0
    deadline = time.monotonic() + 5
    while (not _CANCELLED or overdue_calls("hangs")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _CANCELLED == ["x"] and overdue_calls("hangs") == 0


def test_the_tool_runs_in_its_callers_context(registry: ToolRegistry) -> None:
    token = _SEEN.set("the caller's")
    try:
        assert registry.call("reads_context").text == "the caller's"
    finally:
        _SEEN.reset(token)


@pytest.mark.parametrize("kind", ["SystemExit", "KeyboardInterrupt"])
def test_an_exit_raised_by_a_tool_is_its_failure_and_the_loop_goes_on(registry: ToolRegistry, kind: str) -> None:
    # Raised out of a task, these stop the loop they run on: every async tool after it would have failed.
    registry.call("kept", ("a",))
    loop = tool_loop._shared()
    result = registry.call("raises", (kind,))
    assert not result.ok and kind in result.text
    assert registry.call("kept", ("b",)).text == "B" and tool_loop._shared() is loop


def test_a_tools_own_timeout_error_is_not_read_as_its_time_limit(registry: ToolRegistry) -> None:
    result = registry.call("raises", ("TimeoutError",))
    assert not result.ok and "TimeoutError: the upstream service took too long" in result.text
    assert "timed out after" not in result.text


def test_a_tool_that_blocks_the_loop_does_not_hold_up_the_others(registry: ToolRegistry) -> None:
    # Calls the blocked loop has not started run on a loop of their own once its heartbeat is BLOCKED_AFTER late,
    # until it beats again; limits shorter than a second hold (they all timed out while the loop was blocked).
    assert registry.call("kept", ("a",)).text == "A"
    shared = tool_loop._shared()
    blocker = threading.Thread(target=registry.call, args=("blocks", (3.0,)), daemon=True)
    blocker.start()
    time.sleep(0.1)
    outcomes = [registry.call("reads_context", timeout=0.9) for _ in range(4)]
    assert [r.text for r in outcomes] == ["unset"] * 4
    blocker.join()
    deadline = time.monotonic() + 5
    while shared.blocked() and time.monotonic() < deadline:
        time.sleep(0.05)
    # The loop is the same one, so a client bound to it works again.
    assert registry.call("kept", ("b",)).text == "B" and tool_loop._shared() is shared


def test_a_tool_calling_an_async_tool_synchronously_does_not_deadlock(registry: ToolRegistry) -> None:
    # The inner call waited for the loop its caller was holding, until the time limit.
    began = time.monotonic()
    assert registry.call("calls_another", ("q",), timeout=5).text == "inner: unset"
    assert time.monotonic() - began < 3.0  # deadlocked, it waited out the 5 s limit


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_a_loop_of_its_own(registry: ToolRegistry) -> None:
    registry.call("kept", ("a",))
    read, write = os.pipe()
    with warnings.catch_warnings(), tool_loop._lock:  # another thread may hold the lock at the fork: it is the parent's
        warnings.simplefilter("ignore")  # forking a process with threads
        pid = os.fork()
    if pid == 0:  # the child: the parent's loop thread does not exist here
        try:
            began = time.monotonic()
            loops = {registry.call("loop_id", timeout=5).text for _ in range(3)}
            os.write(write, f"{len(loops)} {time.monotonic() - began < 0.5}".encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        assert pipe.read() == "1 True"


def test_an_isolated_async_tool_keeps_its_loop_in_its_worker() -> None:
    isolated = ToolRegistry([make_tool(kept, isolated=True)])
    assert [isolated.call("kept", (k,)).text for k in ("a", "b")] == ["A", "B"]


# ---------------------------------------------------------------------------------------------- what a tool starts

_POOL = concurrent.futures.ThreadPoolExecutor(2)
_LEFT: list[str] = []


async def inner(key: str) -> str:
    """Upper-case, asynchronously.

    Args:
        key: The text.
    """
    await asyncio.sleep(0)
    return key.upper()


async def via_a_thread(key: str) -> str:
    """Call `inner` synchronously through a thread pool, as a sync library's callback would.

    Args:
        key: The text.
    """
    return _POOL.submit(_STARTS.call, "inner", (key,), 0.9).result().text


async def races(key: str) -> str:
    """Ask two mirrors and keep the first answer; the other is left pending.

    Args:
        key: The answer.
    """
    async def never() -> str:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            _LEFT.append(key)
            raise
        return key

    fast, slow = asyncio.ensure_future(asyncio.sleep(0, key)), asyncio.ensure_future(never())
    done, _ = await asyncio.wait({fast, slow}, return_when=asyncio.FIRST_COMPLETED)
    return str(done.pop().result())


async def in_a_thread(seconds: float) -> str:
    """A blocking driver run the recommended way, in a thread.

    Args:
        seconds: How long it blocks.
    """
    await asyncio.to_thread(time.sleep, seconds)
    return "done"


async def child_exits() -> str:
    """A child task calls sys.exit."""
    async def child() -> None:
        await asyncio.sleep(0)
        raise SystemExit(3)

    await asyncio.gather(child(), asyncio.sleep(0.05))
    return "returned"


async def callback_exits() -> str:
    """A callback it schedules raises SystemExit, then it stops the loop."""
    loop = asyncio.get_running_loop()
    loop.call_soon(_exit_now)
    await asyncio.sleep(0.05)
    loop.stop()
    await asyncio.sleep(0.05)
    return "returned"


def _exit_now() -> None:
    raise SystemExit(4)


async def slow_io(seconds: float) -> str:
    """Wait on I/O.

    Args:
        seconds: How long.
    """
    await asyncio.sleep(seconds)
    return "io done"


_STARTS = ToolRegistry([inner, via_a_thread, races, in_a_thread, child_exits, callback_exits, slow_io, loop_id,
                        make_tool(hangs, timeout=0.3)])


def test_an_async_tool_called_through_another_thread_runs_within_its_limit() -> None:
    # The inner call waited for the loop its caller held (the caller's context does not reach a pool's thread).
    for _ in range(2):
        began = time.monotonic()
        assert _STARTS.call("via_a_thread", ("x",), timeout=5).text == "X"
        assert time.monotonic() - began < 3.0


def test_tasks_a_call_leaves_pending_are_cancelled_when_it_ends() -> None:
    # asyncio.run cancelled them when each call had a loop of its own; on a kept loop they piled up for ever.
    _LEFT.clear()
    assert [_STARTS.call("races", (k,)).text for k in ("a", "b")] == ["a", "b"]
    deadline = time.monotonic() + 5
    while len(_LEFT) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(_LEFT) == ["a", "b"]


def test_thread_jobs_neither_queue_behind_each_other_nor_starve_later_calls() -> None:
    # The loop's default pool had min(32, CPUs + 4) threads: 18 one-second jobs took 3 s here, and jobs hung past
    # their limit left no thread for any later to_thread or name lookup.
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        began = time.monotonic()
        texts = list(pool.map(lambda _: _STARTS.call("in_a_thread", (0.5,), timeout=5).text, range(12)))
        assert texts == ["done"] * 12 and time.monotonic() - began < 2.5
        hung = list(pool.map(lambda _: _STARTS.call("in_a_thread", (3.0,), timeout=0.3).text, range(6)))
    assert all("timed out after 0.3 s" in text for text in hung)
    # Each hung job counts as a call running past its limit while it runs, as a hung thread-run tool does.
    assert overdue_calls("in_a_thread") == 6
    assert _STARTS.call("in_a_thread", (0.01,), timeout=2).text == "done"


@pytest.mark.parametrize(("tool", "code"), [("child_exits", "3"), ("callback_exits", None)])
def test_an_exit_from_a_tools_child_task_or_callback_leaves_the_loop_running(tool: str, code: str | None) -> None:
    # SystemExit escaped run_forever and the loop closed: an unrelated call in flight was cancelled and every later
    # call ran on a loop of its own; a tool's loop.stop() did the same.
    before = _STARTS.call("loop_id").text
    neighbour: dict[str, str] = {}
    thread = threading.Thread(target=lambda: neighbour.setdefault("text", _STARTS.call("slow_io", (0.4,), 5).text))
    thread.start()
    time.sleep(0.05)
    result = _STARTS.call(tool, timeout=5)
    if code is not None:
        assert not result.ok and f"SystemExit: {code}" in result.text
    thread.join()
    assert neighbour["text"] == "io done" and _STARTS.call("loop_id").text == before


def test_a_call_given_up_while_the_caller_is_interrupted_is_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    # Ctrl-C in a chat while a tool ran: the chat went on, and the call's task ran on for ever.
    from toolcall import executor

    _CANCELLED.clear()
    real_wait = executor._wait

    def interrupted(thread: threading.Thread, timeout: float | None) -> bool:
        real_wait(thread, 0.2)
        raise KeyboardInterrupt

    monkeypatch.setattr(executor, "_wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        executor.run_in_thread(hangs, {"key": "ctrl-c"}, 10, "hangs")
    deadline = time.monotonic() + 3
    while not _CANCELLED and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _CANCELLED == ["ctrl-c"]


# ---------------------------------------------------------------------------------------------- one loop, busy or blocked

def test_tools_of_two_modules_share_the_loop_a_client_they_share_is_bound_to() -> None:
    # A loop per module broke a client kept in a helper module and used by tools in two others.
    other = types.ModuleType("toolcall_test_other_tools")
    exec("import asyncio\n\nasync def other_loop() -> str:\n    \"\"\"Which loop.\"\"\"\n"
         "    return str(id(asyncio.get_running_loop()))\n", other.__dict__)
    registry = ToolRegistry([loop_id, other.other_loop])
    assert registry.call("loop_id").text == registry.call("other_loop").text


_WAKE = {"at": 0.0}


async def parses(key: str) -> str:
    """Fetch with the kept client, wait for the replies to come in together, then read one on the CPU, as a parser
    does.

    Args:
        key: What to fetch.
    """
    text = await _CLIENT.get(key)
    await asyncio.sleep(max(0.0, _WAKE["at"] - time.monotonic()))
    until = time.thread_time() + 0.15
    while time.thread_time() < until:
        pass
    return text


def test_a_loop_late_because_it_computes_is_busy_not_blocked() -> None:
    # Ten replies read at once made the heartbeat 1.5 s late: calls that came in meanwhile ran on loops of their own,
    # and the kept client failed in them.
    registry = ToolRegistry([parses])
    _WAKE["at"] = time.monotonic() + 0.8
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        first = [pool.submit(registry.call, "parses", (k,), 30) for k in "abcdefghij"]
        time.sleep(max(0.0, _WAKE["at"] + 0.3 - time.monotonic()))
        second = [pool.submit(registry.call, "parses", (k,), 30) for k in "klmnop"]
        texts = [future.result().text for future in first + second]
    assert texts == list("ABCDEFGHIJKLMNOP")


async def via_to_thread(key: str) -> str:
    """Call another async tool from a thread it awaits, the way that does not block the loop.

    Args:
        key: Unused.
    """
    inner_loop = await asyncio.to_thread(_STARTS.call, "loop_id")
    return str(inner_loop.text == str(id(asyncio.get_running_loop())))


_COMMITTED: list[str] = []


async def commits(key: str) -> str:
    """Shield a commit from the call's cancellation.

    Args:
        key: What is committed.
    """
    async def commit() -> None:
        await asyncio.sleep(0.6)
        _COMMITTED.append(key)

    await asyncio.shield(asyncio.ensure_future(commit()))
    return key


async def fans_out(count: int) -> str:
    """Run many blocking jobs in threads at once.

    Args:
        count: How many.
    """
    peak = 0

    def job() -> None:
        nonlocal peak
        peak = max(peak, sum(t.name == "toolcall-async-job" for t in threading.enumerate()))
        time.sleep(0.05)

    await asyncio.gather(*(asyncio.to_thread(job) for _ in range(count)))
    return str(peak)


_MORE = ToolRegistry([via_to_thread, make_tool(commits, timeout=0.2), fans_out])


def test_an_async_tool_awaiting_another_from_a_thread_shares_its_loop() -> None:
    # It was sent to a loop of its own (same module as its caller), where a kept client fails.
    assert _MORE.call("via_to_thread", ("k",), timeout=5).text == "True"


def test_a_commit_a_timed_out_call_shielded_still_ends() -> None:
    _COMMITTED.clear()
    result = _MORE.call("commits", ("k1",))
    assert not result.ok and "timed out after 0.2 s" in result.text
    deadline = time.monotonic() + 5
    while not _COMMITTED and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _COMMITTED == ["k1"]


def test_thread_jobs_are_capped_and_reused() -> None:
    # A thread per job: 1,000 jobs ran 465 threads at once, and an isolated worker ran out of address space.
    peak = int(_MORE.call("fans_out", (400,), timeout=60).text)
    assert peak <= tool_loop.JOB_THREADS


async def hangs_in_threads(count: int) -> str:
    """Start thread jobs that hang.

    Args:
        count: How many.
    """
    await asyncio.gather(*(asyncio.to_thread(time.sleep, 8) for _ in range(count)))
    return "done"


async def quick_job() -> str:
    """One quick thread job."""
    return await asyncio.to_thread(lambda: "quick")


_INNER_LOOPS: list[str] = []


async def doubles(x: int) -> int:
    """Double a number in a thread, noting the loop's thread.

    Args:
        x: The number.
    """
    _INNER_LOOPS.append(threading.current_thread().name)
    return await asyncio.to_thread(lambda: x * 2)


def _calls_doubles(x: int) -> str:
    time.sleep(0.2)
    return _JOBS.call("doubles", (x,), 5).text


async def fans_calls(count: int) -> str:
    """Call `doubles` synchronously from many thread jobs at once.

    Args:
        count: How many.
    """
    texts = await asyncio.gather(*(asyncio.to_thread(_calls_doubles, i) for i in range(count)))
    return ",".join(texts)


_JOBS = ToolRegistry([make_tool(hangs_in_threads, timeout=0.5), make_tool(quick_job, timeout=5), doubles,
                      make_tool(fans_calls, timeout=60)])


def test_a_job_queued_behind_hung_jobs_runs_once_their_call_is_given_up() -> None:
    # Threads were started only as jobs came in: a job queued at the cap waited for a hung job to end.
    threading.Thread(target=_JOBS.call, args=("hangs_in_threads", (tool_loop.JOB_THREADS,)), daemon=True).start()
    time.sleep(0.3)
    began = time.monotonic()
    assert _JOBS.call("quick_job").text == "quick" and time.monotonic() - began < 2.5


def test_more_jobs_waiting_on_tool_calls_than_threads_do_not_deadlock() -> None:
    # 64 job threads each waited on a call whose own job was queued behind them, to their limits; and calls made from
    # a thread the loop awaited ran on loops of their own (a snapshot of the task the loop ran said it was held).
    _INNER_LOOPS.clear()
    count = tool_loop.JOB_THREADS + 6
    texts = _JOBS.call("fans_calls", (count,)).text.split(",")
    assert texts == [str(2 * i) for i in range(count)]
    assert set(_INNER_LOOPS) == {"toolcall-async-tools"}


def test_idle_job_threads_end_and_a_later_job_still_gets_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # A job queued at the cap took no idle token, so the pool counted threads that did not exist once they ended:
    # every later job waited for ever.
    monkeypatch.setattr(tool_loop, "_JOB_IDLE", 0.3)
    assert _MORE.call("fans_out", (tool_loop.JOB_THREADS + 30,), timeout=60).ok
    pool = tool_loop._shared().jobs
    deadline = time.monotonic() + 10
    while pool._job_threads and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pool._job_threads == 0
    assert _JOBS.call("quick_job").text == "quick"


def test_nesting_past_the_thread_cap_does_not_deadlock(monkeypatch: pytest.MonkeyPatch) -> None:
    # Job threads waiting on a nested call counted against the hard cap: 300 such jobs filled 256 threads, and the
    # inner calls' jobs queued behind them waited to their limits.
    monkeypatch.setattr(tool_loop, "JOB_THREADS", 4)
    monkeypatch.setattr(tool_loop, "_MOST_JOB_THREADS", 8)
    texts = _JOBS.call("fans_calls", (20,)).text.split(",")
    assert texts == [str(2 * i) for i in range(20)]


async def calls_doubles_directly(count: int) -> str:
    """Call `doubles` synchronously from the coroutine, many times (each runs on a loop of its own).

    Args:
        count: How many.
    """
    return ",".join(_JOBS.call("doubles", (i,), 5).text for i in range(count))


async def bounds_a_blocking_read() -> str:
    """Bound a blocking read the usual way, leaving the read running when it gives up."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(time.sleep, 3), 0.1) or "read"
    except TimeoutError:
        return "upstream timed out"


def test_calls_run_alone_share_the_process_pool() -> None:
    # Each such call made a pool of its own, whose idle thread outlived it: 300 calls left 300 threads.
    registry = ToolRegistry([calls_doubles_directly])
    count = tool_loop.JOB_THREADS + 16
    assert registry.call("calls_doubles_directly", (count,), timeout=30).text == ",".join(str(2 * i) for i in range(count))
    assert sum(t.name == "toolcall-async-job" for t in threading.enumerate()) <= tool_loop.JOB_THREADS


def test_a_call_is_held_to_its_limit_by_the_thread_jobs_it_leaves_running() -> None:
    # It answered at once and left the job running uncounted: 64 such calls took every job thread from other tools.
    registry = ToolRegistry([make_tool(bounds_a_blocking_read, timeout=1.0), quick_job])
    began = time.monotonic()
    result = registry.call("bounds_a_blocking_read")
    assert not result.ok and "timed out after 1 s" in result.text and time.monotonic() - began < 2.0
    assert registry.call("quick_job").text == "quick"


def test_a_job_thread_that_cannot_start_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # The pool counted the thread that failed to start as an idle one: its job, and every later one once the real
    # threads had ended, waited for ever.
    pool = tool_loop._JobThreads()
    real_start = threading.Thread.start

    def cannot_start(thread: threading.Thread) -> None:
        if thread.name == "toolcall-async-job":
            raise RuntimeError("can't start new thread")
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", cannot_start)
    future = pool.submit(lambda: "ran")
    assert (pool._job_threads, pool._idle, pool._queued) == (0, 0, 1)
    monkeypatch.setattr(threading.Thread, "start", real_start)
    pool.start_threads()  # what the loop's heartbeat does every tenth of a second
    assert future.result(timeout=5) == "ran"


def test_no_task_is_reported_destroyed_at_exit(tmp_path: Path) -> None:
    script = tmp_path / "stubborn.py"
    script.write_text(
        "import asyncio, contextvars\nfrom toolcall.registry import ToolRegistry\n\n"
        "async def stubborn() -> str:\n    \"\"\"Leave a task that ignores its cancellation.\"\"\"\n"
        "    async def keep() -> None:\n        while True:\n            try:\n                await asyncio.sleep(10)\n"
        "            except asyncio.CancelledError:\n                pass\n"
        "    KEPT.add(asyncio.get_running_loop().create_task(keep(), context=contextvars.Context()))\n"
        "    return 'left'\n\nKEPT = set()\n"
        "print(ToolRegistry([stubborn]).call('stubborn').text)\n")
    began = time.monotonic()
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "left" and "destroyed" not in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - began < 20


# ---------------------------------------------------------------------------------------------- a real client

class _Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client's second request reuses the first one's connection

    def do_GET(self) -> None:
        body = self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


_HTTP: dict[str, Any] = {}


async def fetch_path(path: str) -> str:
    """Fetch a path from the local test server with a client made once.

    Args:
        path: The path.
    """
    return (await _HTTP["client"].get(f"{_HTTP['base']}/{path}")).text


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_httpx_client_made_once_serves_every_call(echo_server: str) -> None:
    httpx = pytest.importorskip("httpx")
    _HTTP.update(client=httpx.AsyncClient(timeout=5), base=echo_server)
    registry = ToolRegistry([fetch_path])
    # Before: "Event loop is closed" on the second call, when the pooled connection belonged to the first call's loop.
    assert [registry.call("fetch_path", (p,), timeout=5).text for p in ("a", "b", "c")] == ["/a", "/b", "/c"]


async def leaves_a_job() -> str:
    """Leave a one-second job running and answer."""
    asyncio.get_running_loop().run_in_executor(None, time.sleep, 1.0)
    return "done"


def test_waiting_for_the_jobs_a_call_left_running_takes_no_cpu() -> None:
    # The wait looked at a done call's result in a loop that never slept: a core spun for the job's whole second.
    began = time.process_time()
    assert ToolRegistry([leaves_a_job]).call("leaves_a_job", timeout=10).text == "done"
    assert time.process_time() - began < 0.5
