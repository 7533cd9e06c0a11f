"""The decoding loop: decode until a call marker, ask for the pending calls' outcomes, splice the results, resume.

The loop decides nothing about running tools: it yields a CallRequest for each call and is sent back its Outcome (a
Result to splice, or a Handoff that ends the reply with the call pending), the way an httpx auth flow yields a
request and is sent the response. toolcall.runner answers with a tool registry; the server answers with its policy.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import json
import re
import secrets
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .backends.base import Backend, Checkpoint, Counters, DecodeSession, Steering
from .binding import bind_arguments
from .calls import KeywordArgs, SyntaxIssue, ToolCall, args_json, until_repeat
from .errors import ConfigError, ToolArgumentError
from .executor import check_timeout
from .options import at_least, check_types, flag_of, option
from .specs import ToolSpec, ToolSpecs

if TYPE_CHECKING:
    from .dialects.base import Dialect, PendingCalls, ReplyReader


@dataclass
class LoopConfig:
    """How one reply is generated with tools: call limit, token budget, the top-K call trigger, time limits.

    Every field is also a flag of `generate`, `chat`, `serve` and `eval` (toolcall.options).
    """

    max_calls: int = option(3, metavar="N", help="tool calls executed per reply; after that decoding goes on with "
                                                 "tools disabled")
    max_new_tokens: int = option(200, metavar="N", help="tokens the model may generate per reply, across all calls")
    trigger_top_k: int = option(0, metavar="K", help="open a call whenever its first token is among the top-K next "
                                                     "tokens, outside a call already open (Toolformer §4.2; 0 = off)")
    tools_enabled: bool = option(True, flag="--no-tools", help="ban the call-open token where the dialect allows it "
                                                               "and run no tools")
    call_timeout: float | None = option(None, metavar="SECONDS", help="time limit per tool call (default: each "
                                                                      "tool's own)")
    max_triggers: int = option(1, metavar="N", help="how often the top-K trigger may fire per reply (the paper: once)")
    call_threshold: float = option(0.0, metavar="P", help="open a call only where the model gives the call-open "
                                                          "token probability >= P; below it the token is banned "
                                                          "at that step, for the top-K trigger too; inside a call "
                                                          "already open it does not apply (Toolformer's tau_s, "
                                                          "applied while decoding; 0 = off)")
    constrain_calls: bool = option(False, help="once a call is open (the model or the top-K trigger wrote the "
                                               "call-open marker), allow only tokens that continue a well-formed "
                                               "call of a registered tool until its end (Toolformer: its arrow; "
                                               "hermes: its closing tag), so a started call always parses "
                                               "(llguidance; the dialects with a call grammar: toolformer, hermes)")

    parallel_calls: bool = option(True, flag="--no-parallel-calls", help="answer each call as soon as it is "
                                  "written; by default, where a dialect writes a reply's calls one after another "
                                  "(hermes, llama3_json), the model first writes every call it means to make, as "
                                  "these formats are trained (the server's parallel_tool_calls false)")
    repeat_calls: bool = option(True, help="run every call a group writes, as written (the default: tools whose "
                                "calls differ each time need it, two random numbers being two calls); with "
                                "--no-repeat-calls, where a model writes its calls a block at a time (hermes, "
                                "llama3_json), the group ends before a block that makes a request the group already "
                                "made (tool and arguments alike), which is then neither run nor handed back nor "
                                "shown (a small model often writes its one call twice; schema-tools-smollm2's "
                                "folder recommends it). A block written whole runs as written")
    force_call: bool = option(False, help="start the reply with a call: the loop writes the call-open marker and the "
                                          "model writes the call, under the offered tools' call grammar where the "
                                          "dialect has one (what the server does for tool_choice 'required')")
    json_schema: str | None = option(None, metavar="SCHEMA", help="the reply is one JSON value that follows this "
                                     "JSON schema (its JSON text; '{\"type\": \"object\"}' for any object), held to "
                                     "it token by token (llguidance) and ended once complete (the server's "
                                     "response_format); it may call the offered tools before it only in a dialect "
                                     "whose calls stand apart from the answer (hermes), and runs none elsewhere")

    def __post_init__(self) -> None:
        check_types(self)
        at_least(self, max_calls=0, max_new_tokens=0, trigger_top_k=0, max_triggers=0, call_threshold=0.0)
        if self.call_timeout is not None:
            check_timeout(self.call_timeout, f"call_timeout ({flag_of(type(self), 'call_timeout')})")
        if not self.call_threshold < 1.0:
            raise ConfigError(f"call_threshold ({flag_of(type(self), 'call_threshold')}) must be below 1 (a "
                              f"probability; 0 = off), got {self.call_threshold}")
        if self.json_schema is not None:
            reply_grammar(self.json_schema)  # JSON text of a schema object, or a ConfigError saying what it is not


def reply_grammar(schema_text: str) -> str:
    """The grammar (llguidance Lark) of a reply that is one JSON value following the schema written in `schema_text`."""
    try:
        schema = json.loads(schema_text)
    except (ValueError, RecursionError):
        raise ConfigError("json_schema (--json-schema) must be a JSON schema written as JSON text, e.g. "
                          '\'{"type": "object", "properties": {"name": {"type": "string"}}}\'') from None
    if not isinstance(schema, dict):
        raise ConfigError(f"json_schema (--json-schema) must be a JSON object (a schema), got {type(schema).__name__}")
    return f"start: %json {json.dumps(schema, ensure_ascii=False)}\n"


def calls_before_json(dialect: "Dialect") -> bool:
    """Whether a reply held to JSON (json_schema) may call the offered tools before it answers, in this dialect: its
    calls stand apart from the answer, behind an opener no JSON value starts with, and it has a call grammar to hold
    them to (hermes). Elsewhere such a reply runs no tools."""
    opener = dialect.open_marker.lstrip()
    return (bool(opener) and opener[0] not in '{["-0123456789tfn' and not dialect.answer_opener
            and _has_call_grammar(dialect))


def _has_call_grammar(dialect: "Dialect") -> bool:
    """Whether the dialect writes a call grammar (Toolformer's tagged and paper spellings, say, do not); asked once
    per dialect where it can be remembered."""
    try:
        return _remembered_call_grammar(dialect)
    except TypeError:  # a dialect that cannot be hashed (a user's dataclass) is asked each time
        return _builds_call_grammar(dialect)


@functools.lru_cache(maxsize=64)
def _remembered_call_grammar(dialect: "Dialect") -> bool:
    return _builds_call_grammar(dialect)


def _builds_call_grammar(dialect: "Dialect") -> bool:
    probe = ToolSpec("probe", "", {"type": "object", "properties": {"x": {"type": "string"}}})
    try:
        dialect.call_grammar(ToolSpecs([probe]), closers=dialect.call_markers)
    except ConfigError:
        return False
    return True


def answer_or_calls_grammar(schema_text: str, dialect: "Dialect", tools: ToolSpecs) -> str:
    """The grammar (llguidance Lark) of a reply held to JSON that may call tools first: either the JSON value of
    `reply_grammar`, or one of `tools`' calls in the dialect's form (opener, then its call grammar, to the call
    marker, where the loop answers it), so an Agents SDK's `output_type` with tools gets either."""
    answer = reply_grammar(schema_text).removeprefix("start: ")
    call = dialect.call_grammar(tools, closers=dialect.call_markers)
    if not call.startswith("start:") or re.search(r"(?m)^(?:reply_\w+|call_start)\s*:", call):
        raise ConfigError(f"the {dialect.name} dialect's call grammar cannot be combined with a JSON answer")
    return ("start: reply_json | reply_call\n"
            f"reply_json: {answer}reply_call: {json.dumps(dialect.open_marker)} call_start\ncall_{call}")


#: How much blank text after handed-off calls the loop waits through for another call before it ends the reply.
MAX_BLANK_AFTER_CALLS = 32
#: Calls refused in one reply (past max_calls, or with tools off) after which the reply ends: where the dialect's
#: call opener cannot be banned (MOSS, pythonic, llama3_json) a model in a loop of calls was answered each time,
#: with a re-read of the whole text per call (2,000 calls: 90-100 s).
MAX_REFUSED_CALLS = 16


def new_call_id() -> str:
    """An id for one call, in the form OpenAI's tool_calls use."""
    return "call_" + secrets.token_hex(12)


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
    arguments: dict[str, Any] | None = None  # bound by name against the tool's schema, when they bound
    id: str | None = None

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
    stop_reason: str | None = None  # "stop", "length", "eos", "cancelled", or "tool_calls" when calls were handed off
    handed_off: list[CallRequest] = field(default_factory=list)  # calls left unanswered for the caller (Handoff)
    # A reply held to JSON (LoopConfig.json_schema): what it wrote after its calls and their results, the JSON answer
    # (`text` has the calls too, where the dialect calls before answering); None for other replies and for one that
    # ended with calls handed back.
    answer: str | None = None


# --- what the loop yields, and what it is sent back ----------------------------------------------------------------
@dataclass(frozen=True)
class TextDelta:
    text: str
    source: str = "model"  # "model": decoded; "tool": spliced by the loop (results, closing marker)


@dataclass(frozen=True)
class CallRequest:
    """A call the loop wants answered: the caller sends back a `Result` (splice it) or a `Handoff` (end the reply here,
    the call unanswered, as OpenAI's `tool_calls`). The loop itself never runs a tool.

    `arguments` are the call's arguments bound by name against the offered tool's JSON schema (toolcall.binding);
    None when no offered tool has that name or they do not bind, and then `error` says why.
    """

    id: str
    call: ToolCall               # as written: the name as the model spelled it, raw arguments, span in the session text
    tool: str                    # the offered tool's own name, or the name as written when no offered tool has it
    arguments: dict[str, Any] | None
    error: str | None = None
    spec: ToolSpec | None = None


@dataclass(frozen=True)
class CallRefused:
    """A call the loop answers itself, with an error, instead of asking for it to be run: tools are off, or the reply
    has made its `max_calls` calls. Nobody runs it (a CallRequest for it was run by every caller, so a reply holding
    three calls in one group ran all three under max_calls=1); CallFinished follows with the error result."""

    request: CallRequest
    reason: str


@dataclass(frozen=True)
class Result:
    """An answer to a CallRequest: the text spliced into the generation ("Error: ..." when ok is False)."""

    text: str
    ok: bool = True
    error: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class Handoff:
    """An answer to a CallRequest: end the reply with this call pending; whoever made the request answers it later.
    `further`: whether the calls the model writes right after it still join the reply (parallel calls, see
    `_gather` and `_further_calls`); False ends the reply at this call's marker without decoding on."""

    further: bool = True


Outcome = Result | Handoff


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


Event = TextDelta | CallRequest | CallRefused | MalformedCall | CallFinished | Done
#: The loop as a generator: it yields events, is sent an Outcome after each CallRequest, and returns the LoopResult.
Flow = Generator[Event, "Outcome | None", LoopResult]


@dataclass
class _Run:
    """Bookkeeping for one session in the loop."""

    session: DecodeSession
    dialect: "Dialect"
    tools: ToolSpecs | None
    config: LoopConfig
    calls: list[CallRecord] = field(default_factory=list)
    handed_off: list[CallRequest] = field(default_factory=list)
    executed: int = 0
    refused: int = 0
    budget: int = 0
    forced: bool = False  # the forced call (force_call) has been opened
    further: bool = True  # whether to decode on for calls written right after the handed-off ones
    grammar: str | None = None  # the offered tools' call grammar under constrain_calls, built on first use
    held: str | None = None  # a reply held to JSON with tools offered: its answer-or-calls grammar, built on first use
    # Where the reply ends in the session's text when it was decoded past its end: after handing calls back, the
    # loop looks at what the model writes next for more calls, and drops it when it is something else.
    end: int | None = None
    answer_from: int | None = None  # where the last decode held to JSON (or its calls) began in the session's text
    spent: bool = False  # the token budget ran out as a call marker was written (the session says "stop")
    reader: "ReplyReader" = field(init=False)  # the pending calls at each call marker of the reply

    def __post_init__(self) -> None:
        from .dialects.base import ReplyReader

        self.budget = self.config.max_new_tokens
        self.reader = ReplyReader(self.dialect)

    def result(self) -> LoopResult:
        s = self.session
        reason = "tool_calls" if self.handed_off else "length" if self.spent else s.stop_reason
        answer = None if self.answer_from is None or self.handed_off else s.text[self.answer_from:self.end]
        return LoopResult(s.text[:s.prompt_chars], s.text[s.prompt_chars:self.end], list(self.calls),
                          replace(s.counters), reason, list(self.handed_off), answer)


def _can_ban_open(dialect: "Dialect") -> bool:
    # Banning the call-open token must not ban the end of the reply: MOSS opens with "<|Commands|>" and ends
    # with "<eom>", both starting with "<", so there tools stay un-banned and stray calls get an error result.
    opener = dialect.open_marker
    return bool(opener) and not any(m.startswith(opener[0]) for m in dialect.end_markers)


def _pending(run: _Run) -> "PendingCalls | None":
    """The calls awaiting results at the end of the session's text, read from where they may begin: the loop looks at
    every call marker of a reply, and reading the whole reply each time made one full of markers quadratic."""
    return run.reader.pending(run.session.text)


def offers_tools(config: LoopConfig, dialect: "Dialect") -> bool:
    """Whether a reply decoded with `config` is offered its tools (in the prompt): not with tools off, nor where it
    may make no call (max_calls 0: the call opener is banned, and the instruction and worked examples only taught a
    call that could never run); a reply held to JSON only where the dialect can call them before the answer."""
    return (config.tools_enabled and config.max_calls > 0
            and (config.json_schema is None or calls_before_json(dialect)))


def _tools_on(run: _Run) -> bool:
    return offers_tools(run.config, run.dialect) and run.executed < run.config.max_calls


def _call_grammar(run: _Run) -> str | None:
    """The grammar an open call follows under constrain_calls (or a forced call): any offered tool's call, up to the
    call marker (so the loop then answers it); None when no tool is offered or the dialect has no call grammar."""
    if not run.tools:
        return None
    if run.grammar is None:
        try:
            run.grammar = run.dialect.call_grammar(run.tools, closers=run.dialect.call_markers)
        except ConfigError:
            if run.config.constrain_calls:
                raise
            run.grammar = ""  # a forced call in a dialect without a call grammar is opened, then written freely
    return run.grammar or None


def _decode_args(run: _Run) -> tuple[tuple[str, ...], Steering | None]:
    """Stop strings and steering for the next decode of this run."""
    cfg, dialect = run.config, run.dialect
    # A reply held to JSON is held from its first token: the JSON answer, or (tools offered) calls before it. A call
    # the loop must open first (force_call) is opened as in any reply, and after calls handed back the loop only looks
    # for more calls, as in any reply (what else the model writes there ends the reply and is never shown).
    if cfg.json_schema is not None and not run.handed_off and not (cfg.force_call and not run.forced and _tools_on(run)):
        run.answer_from = len(run.session.text)
        if _tools_on(run) and run.tools:
            if run.held is None:
                run.held = answer_or_calls_grammar(cfg.json_schema, dialect, run.tools)
            return tuple(dialect.call_markers) + tuple(dialect.end_markers), Steering(
                None, constrain=run.held, call_open=True, held_opener=dialect.open_marker,
                min_open_prob=cfg.call_threshold, held_answer=reply_grammar(cfg.json_schema))
        return tuple(dialect.end_markers), Steering(None, constrain=reply_grammar(cfg.json_schema), call_open=True)
    if _tools_on(run):
        force = cfg.force_call and not run.forced and bool(dialect.open_marker)
        grammar = _call_grammar(run) if cfg.constrain_calls or force else None
        steering = None
        if cfg.trigger_top_k > 0 or cfg.call_threshold > 0 or grammar is not None or force:
            steering = Steering(dialect.open_marker, trigger_top_k=cfg.trigger_top_k, max_triggers=cfg.max_triggers,
                                constrain=grammar, call_open=force, min_open_prob=cfg.call_threshold,
                                constrain_end=dialect.held_call_end if grammar is not None else "",
                                close_texts=dialect.call_closers)
        return _call_stops(run), steering
    if _can_ban_open(dialect):
        # Tools off: the model cannot open a call, so call markers are ordinary text.
        return tuple(dialect.end_markers), Steering(dialect.open_marker, disable=True)
    return _call_stops(run), None


def _call_stops(run: _Run) -> tuple[str, ...]:
    """Where a decode that may write calls stops: the call markers, the end markers, and what would leave a call the
    text ends inside malformed (the reader's breaks: Toolformer's line break inside a quoted argument after an arrow)."""
    return tuple(run.dialect.call_markers) + tuple(run.dialect.end_markers) + _breaks(run)


def _breaks(run: _Run) -> tuple[str, ...]:
    """The reader's breaks that are not already a call or end marker (an end marker still ends the reply)."""
    dialect = run.dialect
    return tuple(b for b in run.reader.breaks if b not in dialect.call_markers and b not in dialect.end_markers)


def _request(run: _Run, call: ToolCall) -> CallRequest:
    """The call with its arguments bound by name against the offered tool's schema."""
    spec = run.tools.find(call.tool) if run.tools is not None else None
    if spec is None:
        return CallRequest(new_call_id(), call, call.tool, None, None, None)
    try:
        arguments = bind_arguments(call.args, spec.parameters, tool=spec.name, joiner=spec.joiner)
    except ToolArgumentError as err:
        return CallRequest(new_call_id(), call, spec.name, None, str(err), spec)
    except (ValueError, TypeError, RecursionError, OverflowError) as err:
        # The arguments are the model's text: whatever binding trips on is an error result for this call, not the
        # end of the reply (a 5,000-digit integer in JSON text once ended it with a ValueError, a server's a 500).
        return CallRequest(new_call_id(), call, spec.name, None, f"{spec.name}: arguments that could not be read "
                           f"({type(err).__name__})", spec)
    return CallRequest(new_call_id(), call, spec.name, arguments, None, spec)


def call_limit_reached(limit: int) -> str:
    """What a call past a reply's limit of `limit` calls is told (the loop's max_calls, the server's own tools')."""
    return f"call limit reached ({limit})"


def _refusal(run: _Run) -> str | None:
    """Why a call gets an error result without being asked for: tools off, or the call limit reached."""
    if not run.config.tools_enabled or not run.tools:
        return "tools are disabled"
    if run.executed >= run.config.max_calls:
        return call_limit_reached(run.config.max_calls)
    return None


def _record(request: CallRequest, outcome: Result) -> CallRecord:
    args = request.call.args
    return CallRecord(request.tool, args, outcome.text, outcome.ok, outcome.error, outcome.seconds,
                      arguments=request.arguments, id=request.id)


def _malformed(issue: SyntaxIssue) -> CallRecord:
    message = "Error: malformed call"
    return CallRecord(None, (), message, False, f"{message} ({issue.message})", issue=issue)


def _after_stop(run: _Run) -> Generator[Event, "Outcome | None", bool]:
    """Handle the end of one decode: ask for the pending calls' outcomes and close the calls with their results;
    returns whether to decode again."""
    s, dialect = run.session, run.dialect
    # 1. Only a call marker pauses for tools (or a break: what ended a call the last marker lay in, malformed); an end
    # marker, eos or the token budget ends the generation. A call whose marker is the budget's last token is still a
    # whole call: it is answered (or handed back), and then the reply ends there.
    if s.stop_reason != "stop" or (s.matched_stop not in dialect.call_markers and s.matched_stop not in _breaks(run)):
        return False
    # 2. Find the calls that await results at the end of the text; a marker that opens no call is just text.
    pending = _pending(run)
    if pending is None:
        return _budget_left(run)
    # 3. Ask for each call's outcome, reporting it as it is asked for and answered. Where the dialect writes a group's
    # calls one block at a time (hermes), the calls the model writes right after are asked for too, as each is
    # written, so a model that writes all its calls before any result gets them all run (`_gather`).
    results = yield from _ask(run, pending.calls)
    pending, looked = yield from _gather(run, pending, results)
    if s.stop_reason == "cancelled":
        return False  # the reply was cancelled while the loop looked for more calls: nothing more is written
    # 4. Handed-off calls end the reply here, unanswered: the text stops at the call marker. When the model was seen to
    # write no more calls after them, there is none to look for (`_further_calls`).
    if run.handed_off:
        if looked:
            run.end = len(s.text)
        return False
    # 5. A malformed call runs nothing but gets an error result too, so generation can go on.
    if pending.malformed:
        yield MalformedCall(pending.issues[0])
        record = _malformed(pending.issues[0])
        run.calls.append(record)
        results.append(record.result)
        yield CallFinished(record)
    # 6. Close the calls with their results (MOSS: a Results field and "<|MOSS|>:"; "None" when there was no call), resume.
    from .dialects.base import defuse

    # A result holding the tokenizer's special texts (a web page quoting `<|endoftext|>`) would put those tokens in the
    # context; they are broken as the dialect breaks its own markup.
    closing = dialect.close(pending, [defuse(r, s.special_texts()) for r in results])
    s.append(closing)
    yield TextDelta(closing, "tool")
    return run.refused < MAX_REFUSED_CALLS and _budget_left(run)


def _gather(run: _Run, pending: "PendingCalls",
            results: list[str]) -> Generator[Event, "Outcome | None", tuple["PendingCalls", bool]]:
    """The pending calls with those the model writes right after them (`_look_ahead`), each asked for as it is found
    (its result added to `results`), while the group may grow; and whether the model was seen to write something
    other than a call after the last of them."""
    while _may_grow(run, pending) and (point := run.session.checkpoint()) is not None:
        more = yield from _look_ahead(run, pending, point)
        if more is None:
            return pending, True
        results += yield from _ask(run, more.calls[len(pending.calls):])
        pending = more
    return pending, False


def _may_grow(run: _Run, pending: "PendingCalls") -> bool:
    """Whether to look for calls written right after `pending`'s: the dialect writes a group's calls one after another
    (each ending at a call marker), more of them could still run, and none was handed back with `further` off (the
    session must also be able to go back to here: `_gather` asks for its checkpoint)."""
    return _may_look(run) and not pending.malformed and run.budget > 0


def _may_look(run: _Run) -> bool:
    """Whether this run looks on after a call group for more of its calls (see `_may_grow`)."""
    cfg = run.config
    return (cfg.parallel_calls and run.further and run.dialect.continues_calls("") and cfg.json_schema is None
            and _tools_on(run))


def _plan_look(run: _Run) -> None:
    """Tell the session, before a decode, whether a stop at a call marker will be followed by the loop's look (its
    `read_on` hint: an engine may read the look's tokens in the same request); not where the call it stops at would be
    the last the reply may run (no look follows it)."""
    s = run.session
    last = run.executed + 1 >= run.config.max_calls
    s.read_on_markers = tuple(run.dialect.call_markers) if _may_look(run) and not last else ()
    s.read_on_tokens = LOOK_AHEAD_TOKENS


#: Tokens decoded at first when looking for another call after a call group: enough to see an opener and a few blanks
#: (an engine that returns a decode only when it is done, vLLM's offline one, would otherwise write the whole answer
#: before the loop could see it is one).
LOOK_AHEAD_TOKENS = 8
#: Text after a call group that still may be calls once it is this long is a call being written: the loop stops asking
#: at each token (the question reads the whole text, which made a long call quadratic).
_SETTLED_CHARS = 256


def _look_ahead(run: _Run, pending: "PendingCalls",
                point: Checkpoint) -> Generator[Event, "Outcome | None", "PendingCalls | None"]:
    """Decode on after the call group `pending` (the session at `point`) for more calls of it: the pending calls,
    `pending`'s and then the new ones, once a call marker closes a whole new call (their text is reported then); None,
    the session rewound to `point`, when the model writes something else (the results' opener, its end of turn, prose,
    a malformed call), stops, or runs out of tokens first, and when the look is interrupted (Ctrl-C, an engine error: a
    chat keeps what the session holds, and the look's text was never shown). Every token decoded counts against the
    reply's budget, so max_new_tokens bounds the work (and a server's usage) as before."""
    s = run.session
    reader = copy.copy(run.reader)
    end = len(s.text)
    try:
        found = _look(run, pending, point, reader)
    except BaseException:
        with contextlib.suppress(Exception):  # a session torn by the interruption says so at its next use
            s.rewind(point)
        run.reader = reader
        raise
    if found is not None:
        yield TextDelta(s.text[end:])
        return found
    cancelled = s.stop_reason == "cancelled"
    s.rewind(point)
    run.reader = reader
    if cancelled:
        s.stop_reason = "cancelled"
    return None


def _look(run: _Run, pending: "PendingCalls", point: Checkpoint, reader: "ReplyReader") -> "PendingCalls | None":
    """The decoding of `_look_ahead`: the grown group, or None (the caller rewinds)."""
    s, dialect = run.session, run.dialect
    end = point.chars
    cap = LOOK_AHEAD_TOKENS
    while run.budget > 0:
        stop, steering = _decode_args(run)
        limit = min(cap, run.budget) if cap else run.budget
        short = limit < run.budget  # the short first look, with tokens left beyond it
        _plan_look(run)
        before = s.counters.decoded_tokens
        stream = s.stream(stop, limit, steering)
        held = s.text[end:]
        try:
            for delta in stream:
                held += delta
                if len(held) < _SETTLED_CHARS and not _may_be_calls(dialect, held):
                    break
        finally:
            if isinstance(stream, Generator):
                stream.close()  # the engine stops here (it may hold a lock or a batch slot), not when collected
        run.budget -= s.counters.decoded_tokens - before
        held = s.text[end:]
        if s.stop_reason == "cancelled" or not _may_be_calls(dialect, held):
            return None
        opened = steering is not None and bool(steering.open_text) and s.matched_stop == steering.open_text
        if short and (s.stop_reason == "length" or opened):
            # The short look could not tell (or ended right at a call's opener, as vLLM's does where a call held to a
            # grammar is left no tokens): decode again from the group's end, in one decode with the budget left, so a
            # call held to a grammar is held from its opener on (a second decode would start in its middle).
            cap = 0
            s.rewind(point)
            run.reader = copy.copy(reader)
            continue
        if s.stop_reason != "stop" or (s.matched_stop not in dialect.call_markers and s.matched_stop not in _breaks(run)):
            return None
        found = _pending(run)
        if found is None:
            cap = 0
            continue  # a marker inside a call still being written (an argument's own "</tool_call>")
        # A malformed call after good ones (their results come first, as without looking), or text the dialect reads
        # as another group, is no call of this group.
        return found if _grown(pending, found, end, run.config.repeat_calls) else None
    return None


def _grown(pending: "PendingCalls", found: "PendingCalls", end: int, repeats: bool = True) -> bool:
    """Whether `found` is `pending`'s group with whole calls written after `end` added, and nothing malformed; without
    `repeats` (repeat_calls off), none of them a request the group already made (the group ends before it)."""
    old = [c.span for c in pending.calls]
    added = found.calls[len(old):]
    return (not found.malformed and len(found.calls) > len(old) and [c.span for c in found.calls[:len(old)]] == old
            and all(c.span[0] >= end for c in added)
            and (repeats or len(until_repeat(added, found.calls[:len(old)])) == len(added)))


def _budget_left(run: _Run) -> bool:
    """Whether tokens are left to decode on; a reply whose budget ran out on a call marker ends there ("length")."""
    if run.budget > 0:
        return True
    run.spent = True
    return False


def _ask(run: _Run, calls: Sequence[ToolCall]) -> Generator[Event, "Outcome | None", list[str]]:
    """Ask for each call's outcome, reporting it as it is asked for and answered; returns the results to splice (a
    handed-off call has none)."""
    results: list[str] = []
    for call in calls:
        request = _request(run, call)
        refused = _refusal(run)
        outcome: Outcome | None
        if refused is not None:
            run.refused += 1
            yield CallRefused(request, refused)
            outcome = Result(f"Error: {refused}", False, refused)
        else:
            outcome = yield request
            if outcome is None:
                raise ConfigError(f"call {request.tool!r} was not answered: send a Result or a Handoff for each "
                                  "CallRequest")
        if refused is None:
            run.executed += 1  # a call handed to the caller counts too: the reply made it
        if isinstance(outcome, Handoff):
            run.handed_off.append(request)
            run.further = run.further and outcome.further
            continue
        record = _record(request, outcome)
        run.calls.append(record)
        results.append(record.result)
        yield CallFinished(record)
    return results


def _may_be_calls(dialect: "Dialect", text: str) -> bool:
    """Whether `text`, written right after handed-off calls, may still be more calls (not a long blank run)."""
    return dialect.continues_calls(text) and (len(text) <= MAX_BLANK_AFTER_CALLS or bool(text.strip()))


def _further_calls(run: _Run) -> Generator[Event, "Outcome | None", None]:
    """After calls were handed back: the calls the model writes right after them belong to the same reply (hermes
    writes a block per call, each ending at a call marker), so decode on while the text may still be calls (the
    dialect's `continues_calls`) and ask for those too. The reply ends after the last of them: text that turns out
    to be something else (or, with repeat_calls off, a call the group already made) is decoded but never shown, and
    is not part of the reply."""
    s, dialect = run.session, run.dialect
    run.end = len(s.text)
    held = ""  # decoded since the last calls, shown once it is known to be calls
    s.read_on_markers = ()  # each decode here runs on to the next marker: there is no look to read for
    while run.budget > 0 and _tools_on(run):
        stop, steering = _decode_args(run)
        before = s.counters.decoded_tokens
        stream = s.stream(stop, run.budget, steering)
        try:
            for delta in stream:
                held += delta
                if not _may_be_calls(dialect, held):
                    break
        finally:
            if isinstance(stream, Generator):
                stream.close()  # the engine stops here (it may hold a lock or a batch slot), not when collected
        run.budget -= s.counters.decoded_tokens - before
        if not _may_be_calls(dialect, held) or s.stop_reason != "stop" or s.matched_stop not in dialect.call_markers:
            return
        pending = _pending(run)
        if pending is None:
            continue  # a marker inside a call still being written (an argument's own "}")
        calls = [c for c in pending.calls if c.span[0] >= run.end]
        if pending.malformed or not calls:
            return
        earlier = [c for c in pending.calls if c.span[0] < run.end]
        if not run.config.repeat_calls and len(until_repeat(calls, earlier)) < len(calls):
            return  # a call written again ends the group before it, as in the look (`_grown`)
        yield TextDelta(held)
        held = ""
        yield from _ask(run, calls)
        run.end = len(s.text)


def _after_decode(run: _Run) -> Generator[Event, "Outcome | None", bool]:
    """The calls at the end of one decode, and the calls written right after handed-off ones; returns whether to
    decode again."""
    if (yield from _after_stop(run)):
        return True
    if run.handed_off and run.end is None and run.further:
        yield from _further_calls(run)
    return False


def _open_forced_call(run: _Run) -> Iterator[TextDelta]:
    """A forced call (force_call) starts with the dialect's call-open marker, written for the model."""
    if run.config.force_call and not run.forced and _tools_on(run) and run.dialect.open_marker:
        run.session.append(run.dialect.open_marker)
        yield TextDelta(run.dialect.open_marker)


def _flow(run: _Run) -> Flow:
    """Decode and ask for call outcomes until the reply ends."""
    s = run.session
    while True:
        stop, steering = _decode_args(run)
        yield from _open_forced_call(run)
        run.forced = run.forced or bool(steering is not None and steering.call_open)
        _plan_look(run)
        before = s.counters.decoded_tokens
        for delta in s.stream(stop, run.budget, steering):
            if delta:  # an empty delta is an engine step that wrote nothing (a chunk of a long prefill)
                yield TextDelta(delta)
        run.budget -= s.counters.decoded_tokens - before
        if not (yield from _after_decode(run)):
            break
    result = run.result()
    yield Done(result)
    return result


def resolve_dialect(dialect: "Dialect | str") -> "Dialect":
    if isinstance(dialect, str):
        from .dialects import get_dialect

        return get_dialect(dialect)
    return dialect


def decode_with_tools(session: DecodeSession, dialect: "Dialect | str", tools: ToolSpecs | None,
                      config: LoopConfig | None = None) -> Flow:
    """The loop on a started session, as a generator: it yields TextDelta, CallRequest, MalformedCall, CallFinished
    and Done events, and after each CallRequest it must be sent that call's Outcome (`flow.send(Result(...))`).

    `tools` are the tools the model is offered (plain data: what a call may name, and its schema for binding).
    """
    return _flow(_Run(session, resolve_dialect(dialect), tools, config or LoopConfig()))


def answered(flow: Flow, answer: Callable[[CallRequest], Outcome]) -> Iterator[Event]:
    """The flow's events, each CallRequest answered by `answer` after it has been seen."""
    outcome: Outcome | None = None
    while True:
        try:
            event = flow.send(outcome)
        except StopIteration:
            return
        yield event
        outcome = answer(event) if isinstance(event, CallRequest) else None


def step_batch(sessions: Sequence[DecodeSession], backend: Backend, dialect: "Dialect | str",
               tools: ToolSpecs | None, config: LoopConfig | None,
               answer: Callable[[CallRequest], Outcome]) -> list[LoopResult]:
    """Several sessions in rounds: all live sessions decode together (Backend.generate_batch), then their calls are
    answered. vLLM schedules a round's sessions together; the transformers backend decodes them in turn."""
    resolved = resolve_dialect(dialect)
    cfg = config or LoopConfig()
    runs = [_Run(s, resolved, tools, cfg) for s in sessions]
    live = list(runs)
    while live:
        # 1. Decode every live session up to its next stop.
        for r in live:
            for _ in _open_forced_call(r):
                pass
        args = [_decode_args(r) for r in live]
        for r, (_, steering) in zip(live, args):
            r.forced = r.forced or bool(steering is not None and steering.call_open)
        before = [r.session.counters.decoded_tokens for r in live]
        backend.generate_batch([r.session for r in live], [a[0] for a in args], [r.budget for r in live],
                               [a[1] for a in args])
        # 2. Answer the calls of the sessions that paused at a call marker; the others are finished.
        still: list[_Run] = []
        for r, b in zip(live, before):
            r.budget -= r.session.counters.decoded_tokens - b
            events = _after_decode(r)
            outcome: Outcome | None = None
            try:
                while True:
                    event = events.send(outcome)
                    outcome = answer(event) if isinstance(event, CallRequest) else None
            except StopIteration as done:
                if done.value:
                    still.append(r)
        live = still
    return [r.result() for r in runs]
