"""The decoding loop: decode until a call marker, run the pending calls, splice their results in, resume."""
from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Union

from .backends.base import Backend, Counters, DecodeSession, Steering
from .calls import ToolCall
from .errors import ConfigError

if TYPE_CHECKING:
    from .dialects.base import Dialect
    from .registry import ToolRegistry


@dataclass
class LoopConfig:
    """Options of one generation with tools; the CLI flags of `generate` and `chat` map onto these fields."""

    max_calls: int = 3            # calls executed per prompt; afterwards decoding goes on with tools disabled
    max_new_tokens: int = 200     # tokens the model may generate in total, across all calls
    trigger_top_k: int = 0        # > 0: open a call whenever its first token is among the top-k (Toolformer §4.2)
    tools_enabled: bool = True    # False: the call-open token is banned where possible and no call is executed
    call_timeout: float | None = None  # seconds per call; None = each tool's own timeout
    max_triggers: int = 1         # how often the top-k trigger may fire per prompt (the paper: once)

    def __post_init__(self) -> None:
        if self.max_calls < 0 or self.max_new_tokens < 0 or self.trigger_top_k < 0:
            raise ConfigError("max_calls, max_new_tokens and trigger_top_k must be >= 0; got "
                              f"{self.max_calls}, {self.max_new_tokens}, {self.trigger_top_k}")


@dataclass(frozen=True)
class CallRecord:
    """One call as the loop handled it: what was asked, what came back, and how long it took."""

    tool: str
    args: tuple[Any, ...]
    result: str            # the text spliced into the generation (an error text when ok is False)
    ok: bool
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "args": list(self.args), "result": self.result, "ok": self.ok,
                "error": self.error, "seconds": round(self.seconds, 4)}


@dataclass
class LoopResult:
    """The outcome for one prompt: `text` is the generated part only, spliced results included."""

    prompt: str
    text: str
    calls: list[CallRecord] = field(default_factory=list)
    counters: Counters = field(default_factory=Counters)
    stop_reason: str | None = None


# --- events of stream_loop ----------------------------------------------------------------------
@dataclass(frozen=True)
class TextDelta:
    text: str
    source: str = "model"  # "model": decoded; "tool": spliced by the loop (results, closing marker)


@dataclass(frozen=True)
class CallStarted:
    call: ToolCall


@dataclass(frozen=True)
class CallFinished:
    record: CallRecord


@dataclass(frozen=True)
class Done:
    result: LoopResult


Event = Union[TextDelta, CallStarted, CallFinished, Done]

@dataclass
class _Run:
    """Bookkeeping for one session in the loop."""

    session: DecodeSession
    config: LoopConfig
    calls: list[CallRecord] = field(default_factory=list)
    executed: int = 0
    budget: int = 0

    def __post_init__(self) -> None:
        self.budget = self.config.max_new_tokens

    def result(self) -> LoopResult:
        s = self.session
        return LoopResult(s.text[:s.prompt_chars], s.generated, list(self.calls), replace(s.counters), s.stop_reason)


def _can_ban_open(dialect: "Dialect") -> bool:
    # Banning the call-open token must not ban the end of the reply: MOSS opens with "<|Commands|>" and ends
    # with "<eom>", both starting with "<", so there tools stay un-banned and stray calls get an error result.
    opener = dialect.open_marker
    return bool(opener) and not any(m.startswith(opener[0]) for m in dialect.end_markers)


def _tools_on(run: _Run) -> bool:
    return run.config.tools_enabled and run.executed < run.config.max_calls


def _decode_args(run: _Run, dialect: "Dialect") -> tuple[tuple[str, ...], Steering | None]:
    """Stop strings and steering for the next decode of this run."""
    cfg = run.config
    if _tools_on(run):
        steering = None
        if cfg.trigger_top_k > 0:
            steering = Steering(dialect.open_marker, trigger_top_k=cfg.trigger_top_k, max_triggers=cfg.max_triggers)
        return tuple(dialect.call_markers) + tuple(dialect.end_markers), steering
    if _can_ban_open(dialect):
        # Tools off: the model cannot open a call, so call markers are ordinary text.
        return tuple(dialect.end_markers), Steering(dialect.open_marker, disable=True)
    return tuple(dialect.call_markers) + tuple(dialect.end_markers), None


def _execute(run: _Run, call: ToolCall, registry: "ToolRegistry | None") -> CallRecord:
    """Run one call; every failure (unknown tool, bad arguments, exception, timeout) becomes an error result."""
    if not run.config.tools_enabled or registry is None:
        message = "Error: tools are disabled"
        return CallRecord(call.tool, call.args, message, False, message)
    if run.executed >= run.config.max_calls:
        message = f"Error: call limit reached ({run.config.max_calls})"
        return CallRecord(call.tool, call.args, message, False, message)
    run.executed += 1
    res = registry.call(call.tool, call.args, timeout=run.config.call_timeout)
    return CallRecord(call.tool, tuple(call.args), res.text, res.ok, res.error, res.seconds)


def _splice(dialect: "Dialect", text: str, calls: list[ToolCall], results: list[str]) -> str:
    try:
        return dialect.splice(text, calls, results)
    except ConfigError:
        if calls:
            raise
        return ""  # a call marker with no call before it (an arrow in prose): nothing to splice


def _after_stop(run: _Run, dialect: "Dialect", registry: "ToolRegistry | None") -> Generator[Event, None, bool]:
    """Handle the end of one decode: run pending calls and splice; returns whether to decode again."""
    s = run.session
    # 1. Only a call marker pauses for tools; an end marker, eos or the token budget ends the generation.
    if s.stop_reason != "stop" or s.matched_stop not in dialect.call_markers or run.budget <= 0:
        return False
    # 2. Find the calls that await results at the end of the text.
    calls, issues = dialect.pending_calls(s.text)
    results: list[str] = []
    malformed = bool(issues) and not calls
    # 3. Run each call, reporting it as it starts and finishes.
    for call in calls:
        yield CallStarted(call)
        record = _execute(run, call, registry)
        run.calls.append(record)
        results.append(record.result)
        yield CallFinished(record)
    # 4. A malformed call gets an error result too, so generation can go on.
    if malformed:
        message = f"Error: malformed call ({issues[0].message})"
        bad = ToolCall("?", (), None, (issues[0].pos, len(s.text)))
        yield CallStarted(bad)
        record = CallRecord("?", (), "Error: malformed call", False, message)
        run.calls.append(record)
        results.append(record.result)
        calls = [bad]
        yield CallFinished(record)
    # 5. Splice the results (MOSS: a Results block and "<|MOSS|>:"; "None" when there was no call) and resume.
    spliced = _splice(dialect, s.text, calls, results)
    if spliced:
        s.append(spliced)
        yield TextDelta(spliced, "tool")
    return True


def _drive(run: _Run, dialect: "Dialect", registry: "ToolRegistry | None") -> Iterator[Event]:
    """Decode and handle calls until the reply ends."""
    s = run.session
    while True:
        stop, steering = _decode_args(run, dialect)
        before = s.counters.decoded_tokens
        for delta in s.stream(stop, run.budget, steering):
            yield TextDelta(delta)
        run.budget -= s.counters.decoded_tokens - before
        if not (yield from _after_stop(run, dialect, registry)):
            break
    yield Done(run.result())


def _resolve(dialect: "Dialect | str") -> "Dialect":
    if isinstance(dialect, str):
        from .dialects import get_dialect

        return get_dialect(dialect)
    return dialect


def stream_loop(backend: Backend, prompt: str, dialect: "Dialect | str", registry: "ToolRegistry | None",
                config: LoopConfig | None = None) -> Iterator[Event]:
    """Events as they happen: text deltas, each call starting and finishing, then Done with the LoopResult."""
    run = _Run(backend.start(prompt), config or LoopConfig())
    return _drive(run, _resolve(dialect), registry)


def resume_loop(session: DecodeSession, dialect: "Dialect | str", registry: "ToolRegistry | None",
                config: LoopConfig | None = None) -> Iterator[Event]:
    """stream_loop on a session the caller started (e.g. to keep its KV cache for the next chat turn)."""
    return _drive(_Run(session, config or LoopConfig()), _resolve(dialect), registry)


def run_loop(backend: Backend, prompt: str, dialect: "Dialect | str", registry: "ToolRegistry | None",
             config: LoopConfig | None = None) -> LoopResult:
    """Generate with tools and return the result; the same as the Done event of stream_loop."""
    for event in stream_loop(backend, prompt, dialect, registry, config):
        if isinstance(event, Done):
            return event.result
    raise AssertionError("stream_loop ended without a Done event")  # pragma: no cover


def run_batch(backend: Backend, prompts: Sequence[str], dialect: "Dialect | str", registry: "ToolRegistry | None",
              config: LoopConfig | None = None) -> list[LoopResult]:
    """Several prompts in rounds: all live sessions decode together (when the backend can batch), then their calls run.

    A backend batches when it has `generate_batch(sessions, stops, budgets, steerings)`; otherwise each
    session decodes in turn (the transformers backend does that; vLLM batches).
    """
    dialect = _resolve(dialect)
    cfg = config or LoopConfig()
    runs = [_Run(s, cfg) for s in backend.start_batch(list(prompts))]
    live = list(runs)
    batch = getattr(backend, "generate_batch", None)
    while live:
        # 1. Decode every live session up to its next stop.
        args = [_decode_args(r, dialect) for r in live]
        before = [r.session.counters.decoded_tokens for r in live]
        if batch is not None:
            batch([r.session for r in live], [a[0] for a in args], [r.budget for r in live], [a[1] for a in args])
        else:
            for r, (stop, steering) in zip(live, args):
                r.session.generate(stop, r.budget, steering)
        # 2. Run the calls of the sessions that paused at a call marker; the others are finished.
        still: list[_Run] = []
        for r, b in zip(live, before):
            r.budget -= r.session.counters.decoded_tokens - b
            events = _after_stop(r, dialect, registry)
            try:
                while True:
                    next(events)
            except StopIteration as done:
                if done.value:
                    still.append(r)
        live = still
    return [r.result() for r in runs]
