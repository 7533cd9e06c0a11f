"""The decoding loop: decode until a call marker, run the pending calls, close them with their results, resume."""
from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Union

from .backends.base import Backend, Counters, DecodeSession, Steering
from .calls import KeywordArgs, SyntaxIssue, ToolCall, args_json
from .options import at_least, option

if TYPE_CHECKING:
    from .dialects.base import Dialect
    from .registry import ToolRegistry


@dataclass
class LoopConfig:
    """How one reply is generated with tools: call limit, token budget, the top-K call trigger, time limits.

    Every field is also a flag of `generate`, `chat`, `serve` and `eval` (toolcall.options).
    """

    max_calls: int = option(3, metavar="N", help="tool calls executed per reply; after that decoding goes on with "
                                                 "tools disabled")
    max_new_tokens: int = option(200, metavar="N", help="tokens the model may generate per reply, across all calls")
    trigger_top_k: int = option(0, metavar="K", help="open a call whenever its first token is among the top-K next "
                                                     "tokens (Toolformer §4.2; 0 = off)")
    tools_enabled: bool = option(True, flag="--no-tools", help="ban the call-open token where the dialect allows it "
                                                               "and run no tools")
    call_timeout: float | None = option(None, metavar="SECONDS", help="time limit per tool call (default: each "
                                                                      "tool's own)")
    max_triggers: int = option(1, metavar="N", help="how often the top-K trigger may fire per reply (the paper: once)")
    constrain_calls: bool = option(False, help="once a call is open (the model or the top-K trigger wrote the "
                                               "call-open marker), allow only tokens that continue a well-formed "
                                               "call of a registered tool until its arrow, so a started call always "
                                               "parses (llguidance; Toolformer dialect)")

    def __post_init__(self) -> None:
        at_least(self, max_calls=0, max_new_tokens=0, trigger_top_k=0, max_triggers=0)


@dataclass(frozen=True)
class CallRecord:
    """One call as the loop handled it: what was asked, what came back, and how long it took.

    A malformed call has no tool (None) and carries the syntax issue that made it so.
    """

    tool: str | None
    args: tuple[Any, ...] | KeywordArgs  # positional values, or the named ones of a JSON-argument dialect
    result: str            # the text spliced into the generation (an error text when ok is False)
    ok: bool
    error: str | None = None
    seconds: float = 0.0
    issue: SyntaxIssue | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "args": args_json(self.args), "result": self.result, "ok": self.ok,
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
class MalformedCall:
    """A call that did not parse; it runs nothing, and its CallFinished brings the error result."""

    issue: SyntaxIssue


@dataclass(frozen=True)
class CallFinished:
    record: CallRecord


@dataclass(frozen=True)
class Done:
    result: LoopResult


Event = Union[TextDelta, CallStarted, MalformedCall, CallFinished, Done]

@dataclass
class _Run:
    """Bookkeeping for one session in the loop."""

    session: DecodeSession
    config: LoopConfig
    calls: list[CallRecord] = field(default_factory=list)
    executed: int = 0
    budget: int = 0
    call_grammar: str | None = None  # the registry's call grammar under constrain_calls, built on first use

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


def _call_grammar(run: _Run, dialect: "Dialect", registry: "ToolRegistry | None") -> str | None:
    """The grammar an open call follows under constrain_calls: any registered tool's call, up to the arrow (so the
    loop then runs it); None when there are no tools to call."""
    if registry is None or len(registry) == 0:
        return None
    if run.call_grammar is None:
        run.call_grammar = dialect.call_grammar(registry, closers=dialect.call_markers)
    return run.call_grammar


def _decode_args(run: _Run, dialect: "Dialect",
                 registry: "ToolRegistry | None" = None) -> tuple[tuple[str, ...], Steering | None]:
    """Stop strings and steering for the next decode of this run."""
    cfg = run.config
    if _tools_on(run):
        steering = None
        grammar = _call_grammar(run, dialect, registry) if cfg.constrain_calls else None
        if cfg.trigger_top_k > 0 or grammar is not None:
            steering = Steering(dialect.open_marker, trigger_top_k=cfg.trigger_top_k, max_triggers=cfg.max_triggers,
                                constrain=grammar)
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
    # Keyword arguments (a JSON object) go through as a mapping: the registry binds them by name.
    res = registry.call(call.tool, call.args, timeout=run.config.call_timeout)
    return CallRecord(call.tool, call.args, res.text, res.ok, res.error, res.seconds)


def _malformed(issue: SyntaxIssue) -> CallRecord:
    message = "Error: malformed call"
    return CallRecord(None, (), message, False, f"{message} ({issue.message})", issue=issue)


def _after_stop(run: _Run, dialect: "Dialect", registry: "ToolRegistry | None") -> Generator[Event, None, bool]:
    """Handle the end of one decode: run pending calls and close them with their results; returns whether to decode again."""
    s = run.session
    # 1. Only a call marker pauses for tools; an end marker, eos or the token budget ends the generation.
    if s.stop_reason != "stop" or s.matched_stop not in dialect.call_markers or run.budget <= 0:
        return False
    # 2. Find the calls that await results at the end of the text; a marker that opens no call is just text.
    pending = dialect.pending(s.text)
    if pending is None:
        return True
    results: list[str] = []
    # 3. Run each call, reporting it as it starts and finishes.
    for call in pending.calls:
        yield CallStarted(call)
        record = _execute(run, call, registry)
        run.calls.append(record)
        results.append(record.result)
        yield CallFinished(record)
    # 4. A malformed call runs nothing but gets an error result too, so generation can go on.
    if pending.malformed:
        yield MalformedCall(pending.issues[0])
        record = _malformed(pending.issues[0])
        run.calls.append(record)
        results.append(record.result)
        yield CallFinished(record)
    # 5. Close the calls with their results (MOSS: a Results field and "<|MOSS|>:"; "None" when there was no call), resume.
    closing = dialect.close(pending, results)
    s.append(closing)
    yield TextDelta(closing, "tool")
    return True


def _drive(run: _Run, dialect: "Dialect", registry: "ToolRegistry | None") -> Iterator[Event]:
    """Decode and handle calls until the reply ends."""
    s = run.session
    while True:
        stop, steering = _decode_args(run, dialect, registry)
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
    """Several prompts in rounds: all live sessions decode together (Backend.generate_batch), then their calls run.

    vLLM schedules a round's sessions together; the transformers backend decodes them in turn.
    """
    dialect = _resolve(dialect)
    cfg = config or LoopConfig()
    runs = [_Run(s, cfg) for s in backend.start_batch(list(prompts))]
    live = list(runs)
    while live:
        # 1. Decode every live session up to its next stop.
        args = [_decode_args(r, dialect, registry) for r in live]
        before = [r.session.counters.decoded_tokens for r in live]
        backend.generate_batch([r.session for r in live], [a[0] for a in args], [r.budget for r in live],
                               [a[1] for a in args])
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
