"""toolcall.registry: Tool, @tool, ToolRegistry.call (never raises; timeouts, cache, isolation), entry points, defaults."""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import functools
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from toolcall import registry as registry_mod
from toolcall.errors import ConfigError, DuplicateNameError, ToolError, ToolTimeoutError, UnknownNameError
from toolcall.executor import shared_pool
from toolcall.registry import Tool, ToolRegistry, ToolResult, default_registry, make_tool, tool

calls: list[Any] = []


def add(a: int, b: int = 2) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.

    Returns:
        The sum.
    """
    calls.append((a, b))
    return a + b


def nap(seconds: float) -> str:
    """Sleep, then answer.

    Args:
        seconds: How long to sleep.
    """
    time.sleep(seconds)
    return "awake"


def spin(seconds: float) -> str:
    """Burn CPU in pure Python (cannot be interrupted from another thread).

    Args:
        seconds: How long to burn.
    """
    end = time.time() + seconds
    n = 0
    while time.time() < end:
        n += 1
    return str(n)


def worker_pid() -> int:
    """The process id of whoever runs this."""
    return os.getpid()


def boom(text: str) -> str:
    """Always fails.

    Args:
        text: Ignored.
    """
    raise RuntimeError("kaboom " + text)


def test_tool_is_callable_and_schema_matches_transformers() -> None:
    transformers_utils = pytest.importorskip("transformers.utils")
    made = make_tool(add)
    assert made(2, 3) == 5
    assert made.schema == transformers_utils.get_json_schema(add)
    assert made.name == "add" and made.description == "Add two integers." and made.returns == {"type": "integer", "description": "The sum."}


def quits() -> str:
    """Calls sys.exit, as careless tool code might."""
    raise SystemExit(3)


def test_a_tool_calling_sys_exit_is_an_error_result() -> None:
    reg = ToolRegistry([quits])
    assert reg.call("quits").error == "quits: SystemExit: 3"


def raises(kind: str) -> str:
    """Raises the exception named.

    Args:
        kind: Which one.
    """
    raise {"GeneratorExit": GeneratorExit, "KeyboardInterrupt": KeyboardInterrupt,
           "BaseException": BaseException}[kind]("from the tool")


@pytest.mark.parametrize("kind", ["GeneratorExit", "KeyboardInterrupt", "BaseException"])
def test_any_exception_a_tool_raises_is_an_error_result(kind: str) -> None:
    # They escaped registry.call (it caught Exception and SystemExit): a GeneratorExit crashed `toolcall generate`.
    assert ToolRegistry([raises]).call("raises", (kind,)).error == f"raises: {kind}: from the tool"


class SlowText:
    def __str__(self) -> str:
        time.sleep(3)
        return "late"


def slow_text() -> SlowText:
    """Returns a value whose text takes long to write."""
    return SlowText()


def test_writing_the_result_as_text_counts_against_the_time_limit() -> None:
    # It was written in the caller's thread after the limit: 5 s for a 0.5 s limit, forever for a __str__ that hangs.
    began = time.perf_counter()
    result = ToolRegistry([make_tool(slow_text, timeout=0.3)]).call("slow_text")
    assert result.error == "slow_text: timed out after 0.3 s" and time.perf_counter() - began < 2


class Unsayable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no words")


def unsayable() -> str:
    """Raises an exception whose message cannot be written."""
    raise Unsayable


def test_an_exception_whose_message_fails_is_still_an_error_result() -> None:
    assert ToolRegistry([unsayable]).call("unsayable").error == \
        "unsayable: Unsayable: (its message could not be written: RuntimeError)"
    isolated = ToolRegistry([make_tool(unsayable, isolated=True)]).call("unsayable")
    assert isolated.error == "unsayable: Unsayable: (its message could not be written: RuntimeError)"  # the worker died


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), 1e300, "5", True])
def test_a_time_limit_is_a_positive_finite_number(bad: Any) -> None:
    # 0 and -1 meant no limit (every call has one); NaN and inf failed every call with ValueError / OverflowError.
    with pytest.raises(ConfigError, match="tool add: a time limit"):
        make_tool(add, timeout=bad)
    assert "add's call: a time limit" in (ToolRegistry([add]).call("add", ("1",), timeout=bad).error or "")
    from toolcall.loop import LoopConfig
    with pytest.raises(ConfigError, match=r"call_timeout \(--call-timeout\)(: a time limit| must be a number)"):
        LoopConfig(call_timeout=bad)


def describe(x: Any) -> str:
    """Says what it was given.

    Args:
        x: Anything.
    """
    return f"{x!r} is a {type(x).__name__}"


def test_the_cache_tells_equal_values_of_other_types_apart() -> None:
    # True, 1 and 1.0 are equal (and hash alike) in Python: the first call's answer came back for all three.
    reg = ToolRegistry([describe])
    assert [reg.call("describe", {"x": x}).text for x in (True, 1, 1.0, False, 0.0, -0.0)] == \
        ["True is a bool", "1 is a int", "1.0 is a float", "False is a bool", "0.0 is a float", "-0.0 is a float"]


async def fetch(city: str) -> str:
    """Looks a city up, asynchronously.

    Args:
        city: The city.
    """
    import asyncio
    await asyncio.sleep(0.01)
    return f"{city}: sunny"


def test_an_async_tool_is_awaited_in_a_thread_and_in_a_worker() -> None:
    # Its body never ran: the result was "<coroutine object fetch at 0x...>".
    assert ToolRegistry([fetch]).call("fetch", ("Oslo",)).text == "Oslo: sunny"
    assert ToolRegistry([make_tool(fetch, isolated=True)]).call("fetch", ("Oslo",)).text == "Oslo: sunny"


def scaled(value: int, /, factor: int = 2) -> int:
    """Scales a value.

    Args:
        value: The value.
        factor: By how much.
    """
    return value * factor


def test_a_positional_only_parameter_is_given_by_position() -> None:
    reg = ToolRegistry([scaled])
    assert reg.call("scaled", {"value": 4, "factor": 3}).text == "12" and reg.call("scaled", ("5",)).text == "10"


def _counted(n: int) -> Any:
    """Counts.

    Args:
        n: Up to.
    """
    yield from range(n)


def _spread(a: int, *rest: int, **named: str) -> str:
    """Spreads.

    Args:
        a: First.
        rest: Others.
        named: Named ones.
    """
    return ""


class _Maker:
    """Makes things.

    Args:
        a: A number.
    """

    def __init__(self, a: int) -> None:
        self.a = a

    def run(self, a: int) -> int:
        """Runs.

        Args:
            a: A number.
        """
        return a

    @classmethod
    def make(cls, a: int) -> int:
        """Makes.

        Args:
            a: A number.
        """
        return a


@pytest.mark.parametrize(("func", "words"), [
    (_counted, "is a generator function: a tool returns its result"),
    (_spread, "a call gives named arguments, so *rest or **rest would get none"),
    (_Maker, "is a class: a tool is a function"),
    (_Maker.run, "first parameter 'self' would never be given; register the bound method (an_object.run)"),
    (max, "its signature cannot be read"),
])
def test_functions_a_call_cannot_run_are_refused_when_registered(func: Any, words: str) -> None:
    # Each was accepted, and every call of it failed or ran with its values in the wrong place.
    with pytest.raises(ConfigError, match=re.escape(words)):
        make_tool(func)
    assert make_tool(_Maker(1).run).name == "run"


@pytest.mark.parametrize("name", ["my-tool", "my tool", "ツール", "9lives", "x" * 65])
def test_a_tool_name_must_be_one_a_call_can_write(name: str) -> None:
    # Accepted and offered, but no Toolformer or pythonic call of it was ever run, and MOSS said "malformed call".
    with pytest.raises(ConfigError, match="cannot be written in a call"):
        make_tool(add, name)
    with pytest.raises(ConfigError, match="cannot be written in a call"):
        make_tool(add, aliases=[name])
    unnamed = lambda: "x"  # noqa: E731
    unnamed.__doc__ = "Says x."
    with pytest.raises(ConfigError, match="'<lambda>' cannot be written in a call"):
        make_tool(unnamed)
    with pytest.raises(ConfigError, match="a tool's name is text, got int"):
        make_tool(add, 123)   # type: ignore[arg-type]


def test_cache_and_isolated_are_true_or_false() -> None:
    for flag in ("cache", "isolated"):
        with pytest.raises(ConfigError, match=f"a tool's {flag} is true or false, got 'no'"):
            make_tool(add, **{flag: "no"})   # cache="no" counted as true


def test_one_alias_given_as_a_string_is_one_alias() -> None:
    assert make_tool(add, aliases="plus").aliases == ("plus",)   # type: ignore[arg-type]  # it was ('p','l','u','s')


def broken_text() -> str:
    """Returns text with a lone surrogate."""
    return "a\ud800b"


def test_a_lone_surrogate_in_a_result_becomes_a_replacement_character() -> None:
    # It crashed whatever printed or saved the result (`toolcall tool`, `generate --json`): no UTF-8 can write it.
    assert ToolRegistry([broken_text]).call("broken_text").text == "a\ufffdb"


@pytest.mark.parametrize("size", [-1, 1.5, True])
def test_a_cache_size_is_a_whole_number(size: Any) -> None:
    with pytest.raises(ConfigError, match="cache_size must be a whole number >= 0"):
        ToolRegistry(cache_size=size)   # -1 raised KeyError from the first call


def test_a_cache_of_size_zero_keeps_nothing() -> None:
    calls.clear()
    reg = ToolRegistry([add], cache_size=0)
    assert [reg.call("add", ("1",)).cached for _ in range(2)] == [False, False] and len(calls) == 2


def test_call_coerces_text_and_reports_timing() -> None:
    reg = ToolRegistry([add])
    result = reg.call("ADD", ("40", "2"))
    assert result == ToolResult("add", ("40", "2"), "42", True, None, result.seconds, False)
    assert reg.call("add", {"a": "1"}).text == "3"
    assert reg.call("add", "5").text == "7"  # a bare string is one argument


@pytest.mark.parametrize("name, args, words", [
    ("nope", (), "unknown tool 'nope'. Valid names: add, boom"),
    ("ad", (), "Did you mean 'add'?"),
    ("add", ("x",), "add: argument 'a' = 'x' is not valid: expected an integer"),
    ("add", (), "add: missing required argument 'a'"),
    ("add", ("1", "2", "3"), "add: takes at most 2 argument(s)"),
    ("boom", ("now",), "boom: RuntimeError: kaboom now"),
])
def test_call_never_raises(name: str, args: tuple[str, ...], words: str) -> None:
    reg = ToolRegistry([add, boom])
    result = reg.call(name, args)
    assert not result.ok and words in (result.error or "")
    assert result.text == "Error: " + result.error


def test_thread_timeout_returns_an_error_within_the_limit() -> None:
    reg = ToolRegistry()
    reg.add(nap, timeout=0.2)
    start = time.perf_counter()
    result = reg.call("nap", ("5",))
    assert time.perf_counter() - start < 1.0
    assert not result.ok and result.error == "nap: timed out after 0.2 s"
    assert reg.call("nap", ("0.01",), timeout=2).text == "awake"


def test_waiting_for_a_free_worker_counts_against_the_time_limit() -> None:
    """Calls of isolated tools queue for the pool's workers; a call's limit covers its wait, so one that waited its
    whole limit reports the timeout then, not its whole limit again after its turn came."""
    import threading

    from toolcall.executor import WorkerPool

    pool = WorkerPool(max_workers=1)
    pool.warm()
    try:
        busy = threading.Thread(target=pool.call, args=(spin, {"seconds": 3}, 10, "spin"), daemon=True)
        busy.start()
        time.sleep(0.3)  # the one worker is spinning now
        start = time.perf_counter()
        with pytest.raises(ToolTimeoutError, match=r"spin: timed out after 0\.5 s \(waiting for a free worker"):
            pool.call(spin, {"seconds": 0.01}, 0.5, "spin")
        assert time.perf_counter() - start < 1.5  # was 0.5 s after the other call's 3 s
        busy.join(10)
        assert pool.call(spin, {"seconds": 0.01}, 5, "spin").isdigit()  # the slot was given back
    finally:
        pool.close()


def test_a_tool_that_hangs_cannot_pile_up_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A timed-out thread keeps running; once MAX_OVERDUE_CALLS of one tool's calls do, its next call is refused at
    once (no new thread), and it runs again when one of them ends."""
    import threading

    from toolcall import executor

    monkeypatch.setattr(executor, "MAX_OVERDUE_CALLS", 3)
    release = threading.Event()

    def hang(x: str) -> str:
        """Wait for the test.

        Args:
            x: Anything.
        """
        release.wait(30)
        return "done " + x

    reg = ToolRegistry()
    reg.add(hang, timeout=0.05, cache=False)
    reg.add(nap, timeout=1, cache=False)
    try:
        for i in range(3):
            assert reg.call("hang", (str(i),)).error == "hang: timed out after 0.05 s"
        threads = threading.active_count()
        start = time.perf_counter()
        refused = reg.call("hang", ("3",))
        assert time.perf_counter() - start < 0.04 and threading.active_count() == threads
        assert refused.error == ("hang: not run: 3 earlier calls of it are still running past their time limit; it "
                                 "runs again once one of them ends")
        assert reg.call("nap", ("0",)).text == "awake"  # other tools are not held back

        def other_hang(x: str) -> str:
            """Another registry's tool of the same name.

            Args:
                x: Anything.
            """
            return "fast " + x

        # It was refused too: the count was kept by the tool's name alone, for the whole process.
        assert ToolRegistry([make_tool(other_hang, "hang")]).call("hang", ("5",)).text == "fast 5"
    finally:
        release.set()
    deadline = time.monotonic() + 5
    while executor.overdue_calls("hang") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert reg.call("hang", ("4",), timeout=2).text == "done 4"


def test_isolated_timeout_kills_the_worker_and_frees_the_cpu() -> None:
    reg = ToolRegistry()
    reg.add(spin, isolated=True, timeout=0.5, cache=False)
    reg.add(worker_pid, isolated=True, cache=False)
    assert reg.call("spin", ("0.01",)).ok
    pid = int(reg.call("worker_pid").text)
    assert pid != os.getpid()
    assert int(reg.call("worker_pid").text) == pid  # the worker is reused, not started per call
    start = time.perf_counter()
    result = reg.call("spin", ("30",))
    assert time.perf_counter() - start < 2.0
    assert not result.ok and "timed out after 0.5 s" in (result.error or "")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone: killed and reaped, not left burning a core
    fresh = reg.call("worker_pid")
    assert fresh.ok and int(fresh.text) != pid


def huge(megabytes: int) -> str:
    """A result of this many megabytes.

    Args:
        megabytes: How many.
    """
    return "x" * (megabytes * 1024 * 1024)


def test_an_isolated_result_past_the_reply_bound_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # 300 MB was read whole into the caller, past the call's limit, to be cut to 32,768 characters.
    from toolcall import executor

    monkeypatch.setattr(executor, "MAX_REPLY_BYTES", 2 * 1024 * 1024)
    reg = ToolRegistry()
    reg.add(huge, isolated=True, cache=False)
    assert reg.call("huge", ("1",)).ok
    result = reg.call("huge", ("3",))
    assert not result.ok and "more than the 2,097,152 a worker may send back" in (result.error or "")
    assert reg.call("huge", ("1",)).ok   # a fresh worker takes the next call


def test_a_worker_that_stops_partway_through_its_reply_is_given_up_at_the_deadline() -> None:
    # After its first bytes the reply was read with no deadline: a worker stalled mid-frame held its caller for good.
    import struct
    import types

    from toolcall import executor

    read_end, write_end = os.pipe()
    worker = executor.Worker.__new__(executor.Worker)
    worker.proc = types.SimpleNamespace(stdout=os.fdopen(read_end, "rb", buffering=0))  # type: ignore[assignment]
    try:
        os.write(write_end, struct.pack("!I", 100) + b"x" * 10)   # a frame of 100 bytes, 10 of them sent
        got: list[Any] = []
        reader = threading.Thread(target=lambda: got.append(worker._read(0.5)), daemon=True)
        reader.start()
        reader.join(5)
        assert not reader.is_alive() and got == [None]
    finally:
        os.close(write_end)
        worker.proc.stdout.close()


def test_a_cancelled_isolated_call_frees_its_worker_at_once() -> None:
    """A caller that gives up on a call (an MCP client's notifications/cancelled) sets executor.CANCELLED's event:
    the call stops waiting and its worker is killed within CANCEL_POLL, not at the call's time limit, and another
    call waiting for the worker gets it."""
    import threading

    from toolcall import executor
    from toolcall.errors import ToolError

    pool = executor.WorkerPool(max_workers=1)
    pool.warm()
    cancelled = threading.Event()
    outcome: list[BaseException] = []

    def busy() -> None:
        executor.CANCELLED.set(cancelled)
        try:
            pool.call(spin, {"seconds": 30}, 60, "spin")
        except ToolError as err:
            outcome.append(err)

    try:
        thread = threading.Thread(target=busy, daemon=True)
        thread.start()
        time.sleep(0.5)  # the one worker is spinning now
        threading.Timer(0.3, cancelled.set).start()
        start = time.perf_counter()
        assert pool.call(spin, {"seconds": 0.01}, 20, "spin").isdigit()  # waited for the worker the cancel freed
        assert time.perf_counter() - start < 3.0
        thread.join(5)
        assert [str(e) for e in outcome] == ["spin: the call was cancelled"]
    finally:
        pool.close()


def test_a_cancelled_thread_call_stops_waiting_at_once() -> None:
    """A thread call whose caller gives up (CANCELLED) stops waiting within CANCEL_POLL, as an isolated one does:
    mcp-serve's cancelled thread calls held their slot until the call's time limit."""
    import threading

    from toolcall import executor

    reg = ToolRegistry()
    reg.add(nap, timeout=30)
    cancelled = threading.Event()
    token = executor.CANCELLED.set(cancelled)
    try:
        threading.Timer(0.3, cancelled.set).start()
        start = time.perf_counter()
        result = reg.call("nap", ("5",))
        assert time.perf_counter() - start < 2.0
        assert not result.ok and result.error == "nap: the call was cancelled"
    finally:
        executor.CANCELLED.reset(token)


def test_abandoned_calls_stop_waiting_and_new_ones_do_not_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C in a command abandons the process's calls: a pool thread waiting on a tool stops waiting (data-gen's
    exit waited out each running call's time limit: 30 s after Ctrl-C), and a call not yet started is not run."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from toolcall import executor

    monkeypatch.setattr(executor, "_ABANDONED", threading.Event())
    reg = ToolRegistry()
    reg.add(nap, timeout=30)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(reg.call, "nap", ("5",))
        time.sleep(0.3)
        start = time.perf_counter()
        executor.abandon_calls()
        assert waiting.result(timeout=5).error == "nap: the call was cancelled"
        assert time.perf_counter() - start < 2.0
    assert reg.call("nap", ("0",)).error == "nap: not run: the process is ending"


def test_isolated_errors_come_back_as_results() -> None:
    reg = ToolRegistry()
    reg.add(boom, isolated=True)
    result = reg.call("boom", ("x",))
    assert not result.ok and result.error == "boom: RuntimeError: kaboom x"


def test_isolated_needs_an_importable_function() -> None:
    def local(x: int) -> int:
        """Local.

        Args:
            x: X.
        """
        return x

    with pytest.raises(ConfigError, match="module-level function"):
        make_tool(local, isolated=True)


def test_worker_overhead_is_small() -> None:
    reg = ToolRegistry()
    reg.add(worker_pid, isolated=True, cache=False)
    reg.call("worker_pid")
    start = time.perf_counter()
    for _ in range(50):
        assert reg.call("worker_pid").ok
    per_call = (time.perf_counter() - start) / 50
    assert per_call < 0.02, f"{per_call * 1000:.2f} ms per isolated call"


def test_identical_calls_are_cached_when_the_tool_says_it_may_be() -> None:
    reg = ToolRegistry()
    reg.add(add, cache=True)
    calls.clear()
    first, second = reg.call("add", ("1", "2")), reg.call("add", {"a": 1, "b": "2"})
    assert (first.cached, second.cached, second.text, len(calls)) == (False, True, "3", 1)
    reg.add(add, name="add_nocache", cache=False)
    reg.call("add_nocache", ("1",))
    reg.call("add_nocache", ("1",))
    assert len(calls) == 3
    small = ToolRegistry(cache_size=1)
    small.add(add, cache=True)
    small.call("add", ("1",)), small.call("add", ("2",)), small.call("add", ("1",))
    assert len(calls) == 6  # LRU of size 1 evicted the first call


def test_a_plain_function_is_not_cached_unless_it_says_so() -> None:
    """A function may read a clock, a file or a service: a server or chat answered every later call with its first
    result (the registry kept it, up to 1,024 calls). The built-ins that are pure say so."""
    ticks = iter(range(100))

    def tick_counter() -> int:
        """How many times this was called before."""
        return next(ticks)

    reg = ToolRegistry([tick_counter])
    assert [reg.call("tick_counter").text for _ in range(3)] == ["0", "1", "2"]
    assert not make_tool(add).cacheable and make_tool(add, cache=True).cacheable
    builtins = default_registry()
    assert {t.name for t in builtins if t.cacheable} == {"Calculator", "Solve", "Search", "MT"}


def test_errors_are_not_cached() -> None:
    reg = ToolRegistry()
    reg.add(boom)
    assert not reg.call("boom", ("a",)).cached and not reg.call("boom", ("a",)).cached


def flood(n: int) -> str:
    """Return a long text.

    Args:
        n: How many characters.
    """
    return "w" * n


def flood_error(n: int) -> str:
    """Fail with a long message.

    Args:
        n: How many characters.
    """
    raise ValueError("e" * n)


def test_a_result_or_error_longer_than_the_limit_is_cut_and_says_so() -> None:
    reg = ToolRegistry([make_tool(flood, cache=True), flood_error], max_result_chars=1_000)
    fits = reg.call("flood", {"n": 1_000})
    assert fits.ok and fits.text == "w" * 1_000
    cut = reg.call("flood", {"n": 5_000_000})
    assert cut.ok and cut.text == "w" * 1_000 + " [... cut: 5,000,000 characters, the first 1,000 shown]"
    failed = reg.call("flood_error", {"n": 5_000_000})
    assert not failed.ok and failed.error is not None and len(failed.error) < 1_100
    assert failed.text == "Error: " + failed.error and failed.error.endswith("the first 1,000 shown]")
    assert reg.subset(["flood"]).call("flood", {"n": 2_000}).text.startswith("w" * 1_000 + " [... cut: 2,000")
    assert reg.call("flood", {"n": 5_000_000}).cached  # the cut text is what the cache keeps


def test_the_result_limit_defaults_to_about_a_small_models_context_and_can_be_lifted() -> None:
    assert ToolRegistry([flood]).max_result_chars == registry_mod.MAX_RESULT_CHARS == 32_768
    assert len(ToolRegistry([flood]).call("flood", {"n": 100_000}).text) < 33_000
    assert ToolRegistry([flood], max_result_chars=None).call("flood", {"n": 100_000}).text == "w" * 100_000
    with pytest.raises(ConfigError, match="max_result_chars must be a whole number >= 1"):
        ToolRegistry(max_result_chars=0)


def test_registry_names_aliases_subset_and_duplicates() -> None:
    reg = ToolRegistry()
    reg.add(add, name="Adder", aliases=("Plus",))
    reg.add(nap)
    assert reg.call("plus", ("1",)).text == "3" and reg.call("plus", ("1",)).tool == "Adder"
    assert [t["function"]["name"] for t in reg.schemas()] == ["Adder", "nap"]
    assert reg.subset(["PLUS"]).names() == ["Adder"]
    with pytest.raises(UnknownNameError, match="Valid names: Adder, nap"):
        reg.subset(["missing"])
    with pytest.raises(DuplicateNameError):
        reg.add(add, name="adder")
    reg.add(add, name="Adder", replace=True)


def test_decorator_registers_into_the_user_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_mod, "_USER", ToolRegistry())

    @tool
    def shout(text: str) -> str:
        """Shout.

        Args:
            text: What to shout.
        """
        return text.upper()

    @tool(name="Whisper", timeout=1.5, cache=False, aliases=("hush",))
    def whisper(text: str) -> str:
        """Whisper.

        Args:
            text: What to whisper.
        """
        return text.lower()

    assert isinstance(shout, Tool) and shout("a") == "A"

    @tool
    def shout(text: str) -> str:  # noqa: F811 - the same definition run again (a notebook cell) replaces the old one
        """Shout twice.

        Args:
            text: What to shout.
        """
        return text.upper() * 2

    assert registry_mod.user_tools().call("shout", ("a",)).text == "AA"
    with pytest.raises(DuplicateNameError):
        tool(name="shout")(add)
    assert (whisper.name, whisper.timeout, whisper.cacheable, whisper.aliases) == ("Whisper", 1.5, False, ("hush",))
    reg = default_registry(entry_points=False)
    assert reg.call("hush", ("LOUD",)).text == "loud" and reg.call("shout", ("hi", "there")).text == "HI, THEREHI, THERE"


class _EntryPoint:
    def __init__(self, name: str, value: Any, fail: bool = False) -> None:
        self.name, self._value, self._fail, self.value = name, value, fail, f"pkg:{name}"

    def load(self) -> Any:
        if self._fail:
            raise ImportError("no module named pkg")
        if self._value == "exits":  # a plug-in module that calls sys.exit() when imported
            raise SystemExit("this plug-in quit")
        return self._value


def test_entry_point_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    seen: list[str] = []

    def fake_entry_points(group: str) -> list[_EntryPoint]:
        seen.append(group)
        return [_EntryPoint("Plus", add), _EntryPoint("napper", make_tool(nap, "Napper")),
                _EntryPoint("several", [boom, make_tool(spin, "Spinner", isolated=True)]), _EntryPoint("broken", None, fail=True),
                _EntryPoint("quits", "exits")]

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    with pytest.warns(RuntimeWarning) as warned:
        reg = default_registry()
    said = [str(w.message) for w in warned]
    assert any("skipping tool entry point 'broken'" in w for w in said)
    assert any("skipping tool entry point 'quits'" in w and "this plug-in quit" in w for w in said), said
    assert seen == ["toolcall.tools"]
    assert {"Plus", "Napper", "boom", "Spinner", "Calculator"} <= set(reg.names())
    assert reg.call("plus", ("2",)).text == "4"


def test_default_registry_builtins_and_subset() -> None:
    reg = default_registry(entry_points=False)
    assert {"Calculator", "Calendar", "Solve", "WikiSearch", "Search", "QA", "MT"} <= set(reg.names())
    assert reg.get("calculate").name == "Calculator"
    assert default_registry(["calculate", "qa"], entry_points=False).names() == ["Calculator", "QA"]
    with pytest.raises(UnknownNameError, match="Did you mean 'Calendar'"):
        default_registry(["Calender"], entry_points=False)


def test_hostile_calculator_inputs_finish_within_the_timeout() -> None:
    reg = default_registry(["Calculator"], entry_points=False)
    reg.call("Calculator", ("1 + 1",))  # start the worker outside the timed part
    for text in ("9**9**9**9", "factorial(10**9)", "__import__('os')", "2**2**2**2**2**2", "10**10**10"):
        start = time.perf_counter()
        result = reg.call("Calculator", (text,), timeout=2.0)
        assert time.perf_counter() - start < 2.5, text
        assert not result.ok and result.text.startswith("Error: Calculator: "), result


def test_pool_reuses_workers_across_tools() -> None:
    pool = shared_pool()
    reg = default_registry(["Calculator", "Solve"], entry_points=False)
    reg.call("Calculator", ("1 + 2",))
    before = pool.started
    assert reg.call("Solve", ("2*x = 4",)).text == "x = 2"
    assert reg.call("Calculator", ("2 + 2",)).text == "4"
    assert pool.started == before


def test_slow_sympy_solve_is_killed_at_the_timeout() -> None:
    reg = default_registry(["Solve"], entry_points=False)
    assert reg.call("Solve", ("x = 1",)).text == "x = 1"  # worker started and Solve imported outside the timed part
    start = time.perf_counter()
    result = reg.call("Solve", ("x^64 + 3*x^63*exp(x) = 5",), timeout=1.0)
    assert time.perf_counter() - start < 1.8
    assert not result.ok and result.error == "Solve: timed out after 1 s"


def test_ctrl_c_during_an_isolated_call_does_not_leak_its_reply_into_the_next_call() -> None:
    import signal
    import threading

    reg = ToolRegistry()
    reg.add(nap, isolated=True, timeout=5, cache=False)
    reg.add(worker_pid, isolated=True, cache=False)
    reg.call("worker_pid")  # warm: the next calls go to a running worker
    # Ctrl-C as Python answers it by default: a handler another test's library left installed (seen in a full run
    # from a fresh clone) made the signal raise nothing here
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        with pytest.raises(KeyboardInterrupt):
            reg.call("nap", ["1.5"])
    finally:
        signal.signal(signal.SIGINT, previous)
    time.sleep(1.5)  # the interrupted worker, had it survived, would have answered "awake" by now
    result = reg.call("worker_pid")
    assert result.ok and result.text.isdigit(), result


def test_a_worker_started_from_a_short_lived_thread_outlives_that_thread() -> None:
    # The kernel's parent-death signal follows the thread that started a worker; data_gen runs tool calls in
    # ThreadPoolExecutor threads that end after each text, and their workers must serve the next text too.
    from concurrent.futures import ThreadPoolExecutor

    reg = ToolRegistry()
    reg.add(worker_pid, isolated=True, cache=False)
    shared_pool().close()  # no idle worker: the next call starts one from the pool thread below
    with ThreadPoolExecutor(max_workers=1) as short_lived:
        first = short_lived.submit(reg.call, "worker_pid").result()
    time.sleep(0.5)  # the thread is gone; a worker tied to it would be dead by now
    second = reg.call("worker_pid")
    assert first.ok and second.ok and first.text == second.text, (first, second)


def pick(items: list[int], options: dict[str, bool], label: str, scale: float = 1.0) -> str:
    """Describe a pick.

    Args:
        items: Numbers.
        options: Flags.
        label: A label.
        scale: A factor.
    """
    return f"{label}:{sum(items) * scale}:{sorted(options)}"


def test_call_with_keyword_arguments_as_json_dialects_give_them() -> None:
    from toolcall.calls import KeywordArgs, ToolCall

    reg = ToolRegistry([pick])
    call = ToolCall("pick", {"items": [1, 2], "options": {"b": True, "a": False}, "label": "x"})
    result = reg.call(call.tool, call.args)
    assert (result.text, result.ok, result.args) == ("x:3.0:['a', 'b']", True, {"items": [1, 2], "options": {"b": True, "a": False}, "label": "x"})
    assert reg.call("pick", KeywordArgs(items=[2], options={}, label="y", scale=2)).text == "y:4.0:[]"
    assert reg.call("pick", {"items": "[5]", "options": "{}", "label": 7}).text == "7:5.0:[]"  # JSON in strings is read


@pytest.mark.parametrize("args, words", [
    ({"items": [1], "options": {}, "label": "x", "colour": "red"}, "pick: unexpected argument 'colour'; it takes: items, options, label, scale"),
    ({"items": [1], "label": "x"}, "pick: missing required argument 'options'"),
    ({"items": 3, "options": {}, "label": "x"}, "pick: argument 'items' = 3 is not valid: expected a list"),
    ({"items": ["a"], "options": {}, "label": "x"}, "pick: argument 'items' = ['a'] is not valid: expected an integer"),
    ({"items": [1], "options": [], "label": "x"}, "pick: argument 'options' = [] is not valid: expected an object"),
    ({"items": [1], "options": {}, "label": "x", "scale": "big"}, "pick: argument 'scale' = 'big' is not valid: expected a number"),
])
def test_bad_keyword_arguments_name_the_field(args: dict, words: str) -> None:
    result = ToolRegistry([pick]).call("pick", args)
    assert not result.ok and words in result.text and result.text.startswith("Error: ")


def test_the_decorator_and_the_tool_module_have_resolvable_names() -> None:
    import typing

    import toolcall
    import toolcall.tool_type as tool_type

    hints = typing.get_type_hints(tool)   # every annotation names something importable from the registry
    assert "admissible" in hints and "setup" in hints
    assert toolcall.tool is tool and tool_type.Tool is Tool and tool_type.make_tool is make_tool


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


def forecast(city: str, days: int = 1, unit: Unit = Unit.C, at: tuple[float, float] | None = None) -> str:
    """Forecast.

    Args:
        city: Where.
        days: How many days.
        unit: Which unit.
        at: Coordinates.
    """
    return f"{city}|{days!r}|{unit!r}|{at!r}"


def test_the_schema_binds_and_the_function_gets_its_own_types() -> None:
    reg = ToolRegistry([forecast])
    assert reg.call("forecast", ("Paris", "France")).error == (
        "forecast: argument 'days' = 'France' is not valid: expected an integer")
    assert reg.call("forecast", {"city": "Oslo", "unit": "fahrenheit", "at": [59.9, "10.7"]}).text == (
        "Oslo|1|<Unit.F: 'fahrenheit'>|(59.9, 10.7)")
    assert reg.call("forecast", ("Oslo", "2,000")).text == "Oslo|2000|<Unit.C: 'celsius'>|None"
    assert "expected one of \"celsius\", \"fahrenheit\"" in (reg.call("forecast", ("Oslo", "1", "kelvin")).error or "")


def scale_by(x: float) -> str:
    """Scale a number.

    Args:
        x: The number.
    """
    return repr(x * 2)


def count_items(xs: list) -> str:  # type: ignore[type-arg]
    """Count a list's items.

    Args:
        xs: The items.
    """
    return str(len(xs))


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(("name", "args", "words"), [
    ("scale_by", {"x": "1" * 400}, "a number within a float's range"),  # was OverflowError out of call
    ("scale_by", {"x": 10**400}, "a number within a float's range"),
    ("scale_by", {"x": "1e999"}, "a finite number"),
    ("scale_by", {"x": float("nan")}, "a finite number"),  # JSON's reader takes NaN
    ("scale_by", ["inf"], "a finite number"),
    ("count_items", {"xs": "[" * 5000}, "a list written as JSON, nested less deep"),  # was RecursionError
    ("Calendar", [nested(5000)], "the arguments could not be read: RecursionError"),  # shown in the error
    ("Calculator", ["1", 10**5000], "the arguments could not be read"),  # str() refuses 4,300+ digits
    (None, {}, "a tool name is text, not NoneType"),
    ("Calculator", None, "arguments are a list or an object, not NoneType"),
])
def test_arguments_nobody_should_write_are_errors_never_exceptions(name: Any, args: Any, words: str) -> None:
    reg = default_registry(["calculator", "calendar"])
    reg.add(scale_by)
    reg.add(count_items)
    result = reg.call(name, args)
    assert not result.ok and words in (result.error or ""), result.error


def test_numbers_that_fit_are_still_read_as_written() -> None:
    reg = ToolRegistry()
    reg.add(scale_by, cache=False)
    assert [reg.call("scale_by", [x]).text for x in ("3", "1,200.5", "1e3", "-0.25", 10**300)] == [
        "6.0", "2401.0", "2000.0", "-0.5", repr(float(10**300) * 2)]
    count = ToolRegistry([count_items])
    assert count.call("count_items", {"xs": "[" * 50 + "]" * 50}).text == "1"
    for depth in (900, 5000):  # too deep to cache: run, not kept
        result = count.call("count_items", {"xs": nested(depth)})
        assert result.text == "1" and not result.cached


def test_calls_with_large_arguments_are_run_but_not_cached() -> None:
    reg = ToolRegistry()
    reg.add(count_items, cache=True)
    big = list(range(registry_mod.MAX_CACHED_ARGUMENT_CHARS))
    assert reg.call("count_items", {"xs": big}).text == str(len(big))
    assert not reg.call("count_items", {"xs": big}).cached
    assert reg.call("count_items", {"xs": [1, 2]}).text == "2" and reg.call("count_items", {"xs": [1, 2]}).cached
    assert not reg.call("count_items", {"xs": "x," * 5000}).cached  # a megabyte of text was kept 1,024 times


def test_a_decorated_function_pickles_and_keeps_its_name_and_signature(tmp_path: Any, monkeypatch: Any) -> None:
    import inspect
    import pickle
    import sys

    (tmp_path / "pickled_tools_mod.py").write_text(
        "import toolcall\n\n\n@toolcall.tool(replace=True)\ndef shout_it(text: str, times: int = 1) -> str:\n"
        '    """Shouts.\n\n    Args:\n        text: What.\n        times: How often.\n    """\n'
        "    return text.upper() * times\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import pickled_tools_mod

    try:
        made = pickled_tools_mod.shout_it
        # PicklingError "not the same object as pickled_tools_mod.shout_it", and the name and signature were lost.
        assert pickle.loads(pickle.dumps(made)) is made
        assert made.__name__ == "shout_it" and str(inspect.signature(made)) == "(text: str, times: int = 1) -> str"
        assert pickle.loads(pickle.dumps(make_tool(add, "plus"))).name == "plus"   # no module name holds it: by value
    finally:
        registry_mod.user_tools().unregister("shout_it")
        sys.modules.pop("pickled_tools_mod", None)


@pytest.mark.parametrize("value", ["abc", "1e3", "-1", "50", "99999999999999"])
def test_a_worker_memory_cap_that_cannot_work_is_named(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # 'abc' was a ValueError naming nothing, -1 silently no cap, 50 a bare MemoryError on every call, and a huge
    # value a worker traceback and "killed by signal 9".
    from toolcall.executor import worker_memory_mb

    monkeypatch.setenv("TOOLCALL_WORKER_MEMORY_MB", value)
    with pytest.raises(ConfigError, match="TOOLCALL_WORKER_MEMORY_MB=.*whole number of megabytes from 256"):
        worker_memory_mb()
    for fine, expected in [("0", 0), (" 512 ", 512), ("", 4096)]:
        monkeypatch.setenv("TOOLCALL_WORKER_MEMORY_MB", fine)
        assert worker_memory_mb() == expected


class Shade(enum.Enum):
    RED = "red"
    BLUE = "blue"


def paint(code: str | int, shade: Shade | None = Shade.RED, name: str | None = "friend") -> str:
    """Paint.

    Args:
        code: a code
        shade: the shade
        name: who
    """
    return repr((code, shade, name))


def test_a_json_call_reaches_the_function_with_its_values_as_typed() -> None:
    """"02134" for `str | int` reached the tool as "2134"; null for `Shade | None = Shade.RED` as Shade.RED; the
    name "None" as None."""
    reg = ToolRegistry([paint])
    assert reg.call("paint", {"code": "02134", "shade": None, "name": "None"}).text == "('02134', None, 'None')"
    assert reg.call("paint", {"code": 7, "shade": "blue"}).text == "(7, <Shade.BLUE: 'blue'>, 'friend')"
    assert reg.call("paint", ("02134", "None", "None")).text == "(2134, None, None)"  # a positional call is text


def test_a_name_given_to_the_decorator_by_position_says_to_give_it_by_keyword() -> None:
    """`@tool("search_web")` said "a tool must be a function or a Tool, got str"."""
    with pytest.raises(ConfigError, match=r"@tool\('search_web'\): give the name as a keyword, "
                                          r"@toolcall.tool\(name='search_web'\)"):
        tool("search_web")  # type: ignore[call-overload]


def test_a_worker_does_not_import_files_of_the_folder_it_runs_in(tmp_path: Path) -> None:
    """`python -c` puts the working folder first on the path: a json.py there was imported by each tool worker in
    place of the standard module, and run (Calculator: "the tool's worker process died")."""
    import subprocess
    import sys

    (tmp_path / "json.py").write_text("raise SystemExit('the json.py of the working folder ran')\n")
    code = ("from toolcall.registry import default_registry; "
            "print(default_registry(['calculator']).call('Calculator', ('6*7',)).text)")
    done = subprocess.run([sys.executable, "-P", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "42", done.stdout + done.stderr[-2000:]


class _SlowText(str):
    def __str__(self) -> str:
        time.sleep(30)
        return "late"


class _SlowMessage(Exception):
    def __str__(self) -> str:
        time.sleep(30)
        return "late"


class _ExitingMessage(Exception):
    def __str__(self) -> str:
        raise SystemExit(7)


class _ExitingBase(BaseException):
    def __str__(self) -> str:
        raise SystemExit(7)


class _BrokenToolError(ToolError):
    def __str__(self) -> str:
        raise ValueError("no message")


def test_what_a_tool_returns_or_raises_is_written_within_its_time_limit_and_never_escapes() -> None:
    """The text of a result or of an error was written in the caller's thread, after the limit: a str subclass or an
    exception whose __str__ sleeps took 30 s with a 2 s limit, one whose __str__ raised SystemExit ended the process
    (or was a success with result None), and a ToolError's that raised came out of registry.call."""
    def returns_slow_text(x: str) -> str:
        """Return text that writes itself slowly.

        Args:
            x: Anything.
        """
        return _SlowText("early")

    def raising(kind: str) -> str:
        """Raise one of the hostile exceptions.

        Args:
            kind: Which.
        """
        raise {"slow": _SlowMessage, "exits": _ExitingMessage, "base": _ExitingBase, "broken": _BrokenToolError}[kind]()

    registry = ToolRegistry([make_tool(returns_slow_text, timeout=1.0), make_tool(raising, timeout=1.0)])
    began = time.monotonic()
    assert registry.call("returns_slow_text", ("x",)).text == "early"
    slow = registry.call("raising", ("slow",))
    assert not slow.ok and "timed out after 1 s" in slow.text
    for kind in ("exits", "base", "broken"):
        failed = registry.call("raising", (kind,))
        assert not failed.ok and "its message could not be written" in failed.text, (kind, failed)
    assert time.monotonic() - began < 10


def test_one_tool_cannot_take_every_worker() -> None:
    """Two slow Solve calls on a pool of two workers made every Calculator call wait its whole limit and fail: one
    tool now holds all workers but one, and another tool's call runs meanwhile."""
    import threading

    from toolcall.executor import WorkerPool

    pool = WorkerPool(max_workers=2)
    pool.warm()
    try:
        slow = [threading.Thread(target=pool.call, args=(spin, {"seconds": 3}, 10, "slow"), daemon=True)
                for _ in range(2)]
        for thread in slow:
            thread.start()
        time.sleep(0.5)  # one slow call is running, the other waits for the slow tool's one slot
        start = time.perf_counter()
        assert pool.call(spin, {"seconds": 0.01}, 2, "fast").isdigit()
        assert time.perf_counter() - start < 1.5
        with pytest.raises(ToolTimeoutError, match="as many as one tool may run on this pool's 2 workers"):
            pool.call(spin, {"seconds": 0.01}, 0.3, "slow")
        # Another function of the same name (another registry's tool) is another tool, with a share of its own.
        assert pool.call(nap, {"seconds": 0.01}, 2, "slow") == "awake"
        for thread in slow:
            thread.join(15)
    finally:
        pool.close()


def test_a_dropped_tool_does_not_keep_its_object_alive() -> None:
    """The type hints of every tool function were kept in a module-level dict: a bound method of a per-session
    object kept that object (and all it held) alive for the process's life."""
    import gc
    import weakref

    class Session:
        def lookup(self, key: str) -> str:
            """Look a key up.

            Args:
                key: The key.
            """
            return key

    session = Session()
    gone = weakref.ref(session)
    registry = ToolRegistry([session.lookup])
    assert registry.call("lookup", {"key": "a"}).text == "a"
    del session, registry
    gc.collect()
    assert gone() is None


@dataclasses.dataclass
class _Weather:
    city: str
    temperature: float
    day: dt.date


class _Sky(enum.Enum):
    CLEAR = "clear"


def _returns(kind: str) -> Any:
    """Return a value of the kind asked for.

    Args:
        kind: What to return.
    """
    weather = _Weather("Oslo", -3.5, dt.date(2026, 1, 2))
    values: dict[str, Any] = {
        "dataclass": weather, "nested": {"now": weather, "sky": _Sky.CLEAR, "seen": {3, 1, 2}, "raw": b"ok"},
        "enum": _Sky.CLEAR, "bytes": "café".encode(), "binary": b"\xff\xfe", "set": frozenset({"b", "a"}),
        "generator": (n for n in range(3)), "number": 4.5}
    return values[kind]


@pytest.mark.parametrize(("kind", "text"), [
    # Each was its repr: "_Weather(city='Oslo', temperature=-3.5, day=datetime.date(2026, 1, 2))", "_Sky.CLEAR",
    # "b'caf\\xc3\\xa9'", "<generator object ...>".
    ("dataclass", '{"city": "Oslo", "temperature": -3.5, "day": "2026-01-02"}'),
    ("nested", '{"now": {"city": "Oslo", "temperature": -3.5, "day": "2026-01-02"}, "sky": "clear", '
               '"seen": [1, 2, 3], "raw": "ok"}'),
    ("enum", "clear"), ("bytes", "café"), ("binary", "(2 bytes that are not UTF-8 text)"), ("set", '["a", "b"]'),
    ("generator", "Error: _returns: returned a generator, which is not a result: return a list or a str"),
    ("number", "4.5"),
])
def test_what_a_tool_returns_is_written_as_data_where_it_is_data(kind: str, text: str) -> None:
    assert ToolRegistry([_returns]).call("_returns", (kind,)).text == text


class _Proxy:
    """Answers every attribute, as an RPC proxy or a mock does."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self

    def __str__(self) -> str:
        return "a proxy"


def _returns_more(kind: str) -> Any:
    """Return a value of the kind asked for.

    Args:
        kind: What to return.
    """
    import numpy

    values: dict[str, Any] = {
        "memoryview": memoryview(b"hi"), "proxy": _Proxy(), "float32": numpy.float32(0.1),
        "floats32": numpy.array([[0.1, 0.25]], dtype=numpy.float32), "ints": numpy.arange(3),
        "in a dict": {"n": numpy.int64(4), "x": numpy.float64(0.5), "b": numpy.bool_(True)}, "bool": numpy.bool_(True),
        "dates": numpy.array(["2024-01-02"], dtype="datetime64[D]"), "big": numpy.zeros(2_000_000)}
    return values[kind]


@pytest.mark.parametrize(("kind", "text"), [
    # A memoryview was its byte values, a proxy had .tolist() called on it, a float32 was 0.10000000149011612,
    # datetime64 values were nanosecond integers, and a 2 M-element array was made a list whole (200 MB) to be cut.
    ("memoryview", "hi"), ("proxy", "a proxy"), ("float32", "0.1"), ("floats32", "[[0.1, 0.25]]"),
    ("ints", "[0, 1, 2]"), ("in a dict", '{"n": 4, "x": 0.5, "b": true}'), ("bool", "True"), ("dates", "['2024-01-02']"),
    ("big", "[0. 0. 0. ... 0. 0. 0.]"),
])
def test_numpy_values_and_other_lookalikes_are_written_by_their_type(kind: str, text: str) -> None:
    pytest.importorskip("numpy")
    assert ToolRegistry([_returns_more]).call("_returns_more", (kind,)).text == text


def test_a_pydantic_model_returned_is_written_as_its_json() -> None:
    pydantic = pytest.importorskip("pydantic")

    class Reading(pydantic.BaseModel):
        value: int
        at: dt.datetime

    def reading() -> Any:
        """A reading."""
        return Reading(value=3, at=dt.datetime(2026, 1, 2, 12, 30))

    assert ToolRegistry([reading]).call("reading").text == '{"value": 3, "at": "2026-01-02T12:30:00"}'


# ---------------------------------------------------------------------------------------------- records: where they are built

@dataclasses.dataclass
class _Checked:
    value: int
    mode: str = dataclasses.field(default="plain", repr=False)

    def __post_init__(self) -> None:
        if self.value < 0:
            raise SystemExit("a library's exit in a constructor")
        if self.value > 100:
            time.sleep(3)


def _checked(item: _Checked) -> str:
    """Echo a checked record.

    Args:
        item: The record.
    """
    return f"{item.value} {item.mode}"


def test_a_records_constructor_runs_as_the_tools_code_within_its_limit() -> None:
    # It ran in the caller's thread before the call: a SystemExit escaped call() (and ended mcp-serve), and a slow
    # constructor took 3 s under a 0.5 s limit.
    registry = ToolRegistry([make_tool(_checked, timeout=0.5)])
    exited = registry.call("_checked", {"item": {"value": -1}})
    assert not exited.ok and "SystemExit: a library's exit in a constructor" in exited.text
    began = time.monotonic()
    slow = registry.call("_checked", {"item": {"value": 101}})
    assert not slow.ok and "timed out after 0.5 s" in slow.text and time.monotonic() - began < 2.0
    assert registry.call("_checked", {"item": {"value": 1}}).text == "1 plain"


def test_a_cached_tools_key_is_the_calls_values_not_a_records_repr() -> None:
    # A field left out of the repr was left out of the key: the second call got the first one's answer.
    registry = ToolRegistry([make_tool(_checked, cache=True)])
    assert registry.call("_checked", {"item": {"value": 1}}).text == "1 plain"
    assert registry.call("_checked", {"item": {"value": 1, "mode": "loud"}}).text == "1 loud"


def test_an_isolated_tool_from_a_file_no_import_finds_gets_its_records(tmp_path: Path) -> None:
    # The record was pickled to the worker, which could not import the file's module to read it: the worker died on
    # every call.
    from toolcall.tool_files import load_tools

    source = tmp_path / "my-tools.py"
    source.write_text(
        "import dataclasses\nimport toolcall\n\n@dataclasses.dataclass\nclass Point:\n    x: int\n    y: int\n\n"
        "@toolcall.tool(isolated=True)\ndef norm(p: Point) -> int:\n"
        '    """Manhattan norm.\n\n    Args:\n        p: The point.\n    """\n    return abs(p.x) + abs(p.y)\n')
    registry = ToolRegistry(load_tools(str(source)))
    assert [registry.call("norm", {"p": {"x": 3, "y": -4}}, timeout=30).text for _ in range(2)] == ["7", "7"]


def _nums(x: float, y: int) -> str:
    """Add.

    Args:
        x: A number.
        y: A whole number.
    """
    return f"{x + y} #{next(_NUMS_CALLED)}"


_NUMS_CALLED = iter(range(100))


def test_calls_the_function_sees_alike_share_a_cache_entry() -> None:
    registry = ToolRegistry([make_tool(_nums, cache=True)])
    first = registry.call("_nums", {"x": 1, "y": 2}).text
    assert registry.call("_nums", {"x": 1.0, "y": 2}).text == first  # the function gets 1.0 both times
    assert registry.call("_nums", {"x": 1.5, "y": 2}).text != first


def _at(when: dt.datetime) -> str:
    """Echo a moment with its offset.

    Args:
        when: The moment.
    """
    return when.isoformat()


def test_one_instant_in_two_offsets_is_two_calls_to_the_cache() -> None:
    # Equal datetimes were one cache key: 15:30+01:00 got the answer written for 14:30+00:00.
    registry = ToolRegistry([make_tool(_at, cache=True)])
    assert registry.call("_at", {"when": "2026-12-07T14:30:00+00:00"}).text == "2026-12-07T14:30:00+00:00"
    assert registry.call("_at", {"when": "2026-12-07T15:30:00+01:00"}).text == "2026-12-07T15:30:00+01:00"


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


def _search(query: str, api_key: str, color: Color = Color.RED, limit: int = 5) -> str:
    """Search the catalogue.

    Args:
        query: What to look for.
        api_key: The service's key.
        color: Which shelf.
        limit: How many results.
    """
    return f"{query}|{api_key}|{color!r}|{limit}"


class _Forecaster:
    """Tells the weather."""

    def __init__(self, unit: str) -> None:
        self.unit = unit

    def __call__(self, city: str, days: int = 1) -> str:
        """The forecast for a city.

        Args:
            city: The city.
            days: How many days ahead.
        """
        return f"{city}: 20 {self.unit} for {days} day(s)"


class _AsyncForecaster:
    """Tells the weather, awaiting a service. Its __call__ has no docstring of its own: the class's says what it does.

    Args:
        city: The city.
    """

    async def __call__(self, city: str) -> str:
        await asyncio.sleep(0)
        return f"{city}: sunny"


def test_a_partial_is_a_tool_of_the_parameters_it_leaves_open_and_hides_what_it_binds() -> None:
    # functools.partial(search, api_key=KEY) is how a key or a client reaches a tool: it was refused ("tool function
    # operation: cannot resolve its type hints"), and a schema from inspect's signature would show the key as a default.
    secret = "sk-" + "9" * 20
    made = make_tool(functools.partial(_search, api_key=secret))
    assert made.name == "_search" and made.description == "Search the catalogue."
    assert made.parameters == {"type": "object", "properties": {
        "query": {"type": "string", "description": "What to look for."},
        "color": {"type": "string", "enum": ["red", "green"], "description": "Which shelf."},
        "limit": {"type": "integer", "description": "How many results."}}, "required": ["query"]}
    assert secret not in json.dumps(made.schema)
    reg = ToolRegistry([made])
    assert reg.call("_search", {"query": "ink", "color": "green"}).text == f"ink|{secret}|<Color.GREEN: 'green'>|5"
    assert reg.call("_search", ("ink",)).text == f"ink|{secret}|<Color.RED: 'red'>|5"
    over = reg.call("_search", {"query": "ink", "api_key": "mine"})   # the model cannot set what the caller bound
    assert not over.ok and "unexpected argument 'api_key'" in over.text and secret not in over.text
    positional = make_tool(functools.partial(_search, "ink"), name="shelf")   # a bound first argument is gone too
    assert list(positional.parameters["properties"]) == ["api_key", "color", "limit"]


def test_a_callable_object_is_a_tool_named_after_its_class() -> None:
    made = make_tool(_Forecaster("C"))
    assert (made.name, made.description) == ("_Forecaster", "The forecast for a city.")
    assert ToolRegistry([made]).call("_Forecaster", ("Oslo", "2")).text == "Oslo: 20 C for 2 day(s)"
    awaited = make_tool(_AsyncForecaster(), name="forecast")
    assert awaited.description.startswith("Tells the weather, awaiting a service.")
    assert ToolRegistry([awaited]).call("forecast", ("Oslo",)).text == "Oslo: sunny"


def test_a_partial_or_an_object_cannot_run_isolated_and_says_so() -> None:
    for func in (functools.partial(add, b=3), _Forecaster("C"), _Maker(1).run):
        with pytest.raises(ConfigError, match="isolated process must be a module-level function"):
            make_tool(func, name="x", isolated=True)
    assert make_tool(_Maker.make, isolated=True).name == "make"   # a classmethod is found by its name


def test_a_partial_made_again_replaces_its_tool_and_another_function_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_mod, "_USER", ToolRegistry())
    tool(functools.partial(_search, api_key="a"), name="search")
    again = tool(functools.partial(_search, api_key="b"), name="search")   # a notebook cell run again
    assert registry_mod.user_tools().get("search") is again
    with pytest.raises(DuplicateNameError):
        tool(functools.partial(add, b=1), name="search")


def test_a_partial_whose_arguments_do_not_fit_names_them_without_their_values() -> None:
    # inspect's message holds the partial's repr, and it was the error: the key reached the terminal.
    secret = "sk-live-" + "7" * 16
    for partial, words in ((functools.partial(_search, apikey=secret), "0 by position; by keyword: apikey"),
                           (functools.partial(_search, "ink", query=secret), "1 by position; by keyword: query")):
        with pytest.raises(ConfigError, match=re.escape(f"_search: the partial's arguments ({words}) do not fit")) as err:
            make_tool(partial)
        assert secret not in str(err.value)


def test_a_tool_made_from_a_partial_shows_no_bound_value_in_its_repr_or_signature() -> None:
    import inspect

    secret = "sk-live-" + "8" * 16
    made = make_tool(functools.partial(_search, api_key=secret))
    assert secret not in repr(made) and secret not in str(inspect.signature(made))
    assert list(inspect.signature(made).parameters) == ["query", "color", "limit"]


def test_a_partial_of_a_class_is_refused_as_the_class_is_and_one_of_a_tool_reads_its_function() -> None:
    with pytest.raises(ConfigError, match="is a class: a tool is a function"):
        make_tool(functools.partial(_Maker, a=1), name="maker")
    shout = make_tool(add)
    made = make_tool(functools.partial(shout, b=5), name="add5")   # a Tool (a @tool function) bound further
    assert made.parameters["properties"] == {"a": {"type": "integer", "description": "The first number."}}
    assert ToolRegistry([made]).call("add5", {"a": 1}).text == "6"


class _StaticEcho:
    """Echoes."""

    @staticmethod
    def __call__(text: str) -> str:
        """Echo a text.

        Args:
            text: The text.
        """
        return text


class _ClassEcho:
    @classmethod
    def __call__(cls, text: str) -> str:
        """Echo a text, by class.

        Args:
            text: The text.
        """
        return f"{cls.__name__}: {text}"


def test_an_object_whose_call_is_a_static_or_class_method_is_a_tool() -> None:
    reg = ToolRegistry([make_tool(_StaticEcho()), make_tool(_ClassEcho())])
    assert reg.get("_StaticEcho").description == "Echo a text."
    assert reg.call("_StaticEcho", ("hi",)).text == "hi" and reg.call("_ClassEcho", ("hi",)).text == "_ClassEcho: hi"


def test_an_isolated_tool_must_be_importable_by_name_however_it_is_wrapped_or_copied() -> None:
    from tests import bound_methods

    for method in (bound_methods.service.scale, bound_methods.service.cached):   # each failed at every call
        with pytest.raises(ConfigError, match="isolated process must be a module-level function"):
            ToolRegistry().add(method, isolated=True)
    made = make_tool(functools.partial(add, b=1))
    with pytest.raises(ConfigError, match="isolated process must be a module-level function"):
        ToolRegistry().add(made, isolated=True)   # a Tool copied with isolated=True was not checked
    assert ToolRegistry().add(make_tool(add), isolated=True).isolated
    from toolcall.executor import function_ref

    compiled = pytest.importorskip("pandas._libs.lib")   # a Cython function is imported by its name as well
    assert function_ref(compiled.is_bool_list)[:2] == ("pandas._libs.lib", "is_bool_list")


def test_a_worker_whose_parent_is_gone_ends_quietly() -> None:
    """A worker answering a parent that had been killed printed a BrokenPipeError traceback into its terminal."""
    import pickle
    import struct
    import subprocess
    import sys

    from toolcall.executor import _recv, _send

    worker = subprocess.Popen([sys.executable, "-P", "-c", "from toolcall.executor import worker_main; worker_main()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert worker.stdin is not None and worker.stdout is not None
    _send(worker.stdin, {"path": sys.path, "preload": ()})
    assert _recv(worker.stdout)[0] == "ready"
    worker.stdout.close()  # the parent's end of the result channel: gone, as when the parent is killed
    call = pickle.dumps((("math", "sqrt", None), {"x": 4.0}, "sqrt"))
    worker.stdin.write(struct.pack("!I", len(call)) + call)
    worker.stdin.flush()
    worker.stdin.close()
    assert worker.wait(30) == 0
    assert b"Traceback" not in (worker.stderr.read() if worker.stderr else b"")
