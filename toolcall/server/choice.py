"""One choice of a request: the loop in a worker thread, its calls answered by the server's policy, its events reported.

The policy: a call of one of the client's functions ends the reply as OpenAI's `tool_calls` (in any dialect); a call
of a server tool runs here (under the engine's lock when the tool decodes with the model itself) and is reported as a
`tool_runs` entry; anything else gets the registry's error text, so the model can go on.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..backends.base import MAX_SEED
from ..loop import (
    CallFinished,
    CallRefused,
    CallRequest,
    Done,
    Handoff,
    MalformedCall,
    Outcome,
    Result,
    TextDelta,
    call_limit_reached,
    decode_with_tools,
)
from ..registry import ToolRegistry
from .answer_field import AnswerField, Kind
from .conversation import json_arguments
from .handoffs import HandedReply, HandoffMemory, PendingCall
from .planning import Plan
from .protocol import run_id
from .reply_filter import ReplyFilter
from .shared_model import SharedModel

if TYPE_CHECKING:
    from ..backends.base import Sampling
    from ..dialects.base import Dialect


@dataclass
class ReplyEvent:
    """What a worker reports: kind is "text", "reasoning" (a dialect's thoughts field, as vLLM's reasoning
    parsers report it), "run" (a server tool started or finished), "tool_calls", "done" (with finish_reason and
    token counts) or "error"."""

    index: int
    kind: str
    data: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def run_choice(engine: SharedModel, dialect: "Dialect", plan: Plan, index: int, emit: Callable[[ReplyEvent], None],
               cancel: threading.Event, memory: HandoffMemory | None = None) -> None:
    """Generate one choice, reporting events through `emit` (called from this worker thread); a reply that ends
    with calls for the client is remembered in `memory`, as the model wrote it."""
    engine.enter(1)
    try:
        _Choice(engine, dialect, plan, index, emit, cancel, memory).run()
    except Exception as err:  # noqa: BLE001 - a backend failure ends this reply with an error, never the server
        emit(ReplyEvent(index, "error", f"{type(err).__name__}: {err}"))
    finally:
        engine.enter(-1)


def choice_sampling(sampling: "Sampling", index: int) -> "Sampling":
    """The sampling of choice `index` of a request: a seeded request's choices each sample with a seed of their own
    (seed + index), as the same seed made every choice of `n` the same text."""
    if sampling.seed is None or index == 0:
        return sampling
    return replace(sampling, seed=(sampling.seed + index) % (MAX_SEED + 1))


def _strict_violation(plan: Plan, request: CallRequest) -> str | None:
    """How a call of a strict function breaks its schema, where its calls were not decoded under the schema."""
    if request.tool not in plan.strict or plan.config.constrain_calls or request.spec is None:
        return None
    from ..schema import schema_violation

    return schema_violation(request.arguments, request.spec.parameters)


def _server_answer(engine: SharedModel, registry: ToolRegistry | None, plan: Plan, request: CallRequest) -> Result:
    """Run a server tool (or report why it cannot run) as the registry does: every failure is an error result."""
    registry = registry or ToolRegistry()
    args = request.arguments if request.arguments is not None else request.call.args

    def call() -> Result:
        res = registry.call(request.tool, args, timeout=plan.config.call_timeout)
        return Result(res.text, res.ok, res.error, res.seconds)

    uses_model = request.tool in registry and getattr(registry.get(request.tool), "uses_model", False)
    return engine.locked(call) if uses_model else call()


class _Choice:
    """The loop's events turned into the client's: reply text, tool runs, tool_calls, done."""

    def __init__(self, engine: SharedModel, dialect: "Dialect", plan: Plan, index: int, emit: Callable[[ReplyEvent], None],
                 cancel: threading.Event, memory: HandoffMemory | None = None) -> None:
        self.engine, self.dialect, self.plan, self.index, self.emit, self.cancel, self.memory = (
            engine, dialect, plan, index, emit, cancel, memory)
        self.running: list[dict[str, Any]] = []  # server tool runs started and not yet finished
        self.handed: list[CallRequest] = []      # client calls handed back as tool_calls
        self.server_runs = 0                     # the server's own tools' calls answered (see Plan.server_calls)
        self.shown: list[str] = []               # the content the client is given
        self.thoughts: list[str] = []            # and its reasoning
        # The calls asked for since the loop last closed calls with their results: [start in the reply, the id of
        # a handed-back call, the result text of one answered here].
        self.open_calls: list[list[Any]] = []

    def say(self, text: str) -> None:
        if text:
            self.shown.append(text)
            self.emit(ReplyEvent(self.index, "text", text))

    def asked(self, request: CallRequest, handed: bool) -> None:
        offset = len(self.plan.prompt) - len(self.plan.tail)  # where the reply (its continued tail too) starts
        self.open_calls.append([request.call.span[0] - offset, request.id if handed else None, None])

    def remember(self, text: str) -> None:
        """The reply that ended with calls for the client, as the model wrote it (toolcall.server.handoffs)."""
        if self.memory is None or not self.handed:
            return
        calls = tuple(PendingCall(start, call_id, result or "") for start, call_id, result in self.open_calls)
        sent = tuple((r.id, r.tool, json_arguments(r.arguments)) for r in self.handed)
        self.memory.remember(HandedReply(self.plan.tail + text, "".join(self.shown), calls, self.plan.context, sent,
                                         "".join(self.thoughts)))

    def show(self, pieces: list[tuple[Kind, str]], reply: ReplyFilter, hide_tool: bool = False) -> None:
        """The loop's text as the answer field split it: reasoning and the answer are the client's, the rest is not
        (nor a tool's text after a cut call, `hide_tool`)."""
        for kind, text in pieces:
            if kind == "reasoning":
                reply.skip(text)
                if text.strip():
                    # A second round's thoughts (MOSS) start on a line of their own.
                    thought = ("\n" if self.thoughts else "") + text.strip()
                    self.thoughts.append(thought)
                    self.emit(ReplyEvent(self.index, "reasoning", thought))
            elif kind == "skip" or (kind == "tool" and hide_tool):
                reply.skip(text)
            else:
                self.say(reply.text(text, tool=kind == "tool"))

    def answer(self, request: CallRequest, reply: ReplyFilter) -> Outcome:
        """The server's policy for one call."""
        plan = self.plan
        handing = request.tool in plan.client and request.arguments is not None
        broken = _strict_violation(plan, request) if handing else None
        if broken is not None:  # a strict function's call breaks its schema: the model is told, as for a bind failure
            self.show_run(request, reply)
            message = f"{request.tool}: {broken}"
            return Result(f"Error: {message}", False, message)
        if self.handed and not (handing and plan.parallel):
            # The reply ends with calls for the client: a later call is not run (its result could not reach the
            # model), and one call per reply unless parallel_tool_calls.
            if handing:
                why = "parallel_tool_calls is false"
            elif request.tool in plan.client:
                why = f"{request.tool}: {request.error or 'not offered in this reply'}"
            else:
                why = "not run: this reply ends with calls for the client; call it again once they are answered"
            self.show_run(request, reply)
            return Result(f"Error: {why}", False, why)
        if handing:
            self.say(reply.cut_call(request.call.span[0]) if not self.handed else "")
            self.handed.append(request)
            # One call per reply unless parallel_tool_calls: no decoding on for calls only to be refused.
            return Handoff(further=plan.parallel)
        # A server tool, an unknown name, or a client function whose arguments do not bind (the model sees why).
        self.show_run(request, reply)
        if request.tool not in plan.client and plan.server_calls is not None:
            if self.server_runs >= plan.server_calls:  # the loop's limit was raised for the client's calls only
                message = call_limit_reached(plan.server_calls)
                return Result(f"Error: {message}", False, message)
            self.server_runs += 1
        if request.tool in plan.client:
            # Arguments that do not bind say why; a function the request declares but this reply does not offer
            # (tool_choice names another) had no reason, and the model read "get_weather: None".
            message = f"{request.tool}: {request.error or 'not offered in this reply'}"
            return Result(f"Error: {message}", False, message)
        return _server_answer(self.engine, plan.server, plan, request)

    def show_run(self, request: CallRequest, reply: ReplyFilter) -> None:
        """A tool run starts for the client to see (its result follows with CallFinished), the call's markup cut from
        the reply unless kept."""
        run: dict[str, Any] = {"id": run_id(), "tool": request.tool, "arguments": request.arguments or {},
                               "status": "running"}
        self.running.append(run)
        self.say(reply.keep_call() if self.plan.keep_markup else reply.cut_call(request.call.span[0]))
        self.emit(ReplyEvent(self.index, "run", dict(run)))

    def run(self) -> None:
        plan = self.plan
        session = self.engine.start(plan.prompt, self.cancel, choice_sampling(plan.sampling, self.index))
        prompt_tokens = session.counters.input_tokens  # the prompt's, before any result is spliced
        # The dialect's end-of-reply markers (MOSS's "<eom>") end the reply as a stop sequence does, unshown.
        reply = ReplyFilter(self.dialect.call_start or self.dialect.open_marker, plan.keep_markup,
                            plan.stops + self.dialect.end_markers,
                            one_line_calls=self.dialect.one_line_calls, start=len(plan.prompt),
                            open_marker=self.dialect.open_marker, grouped=self.dialect.named_arguments,
                            may_open=self.dialect.may_open_call, prefixes=self.dialect.call_prefixes)
        reply.prime(plan.tail, plan.tail_answered)
        # With the markup kept the client reads the reply as written; else only its answer field, and its reasoning.
        field = AnswerField("" if plan.keep_markup else self.dialect.answer_opener, self.dialect.thoughts_end,
                            self.dialect.open_marker, self.dialect.thoughts_opener)
        field.prime(plan.tail)
        flow = decode_with_tools(session, self.dialect, plan.tools, plan.config)
        finish: str | None = None
        done_text = ""
        hide_closing = False  # the loop's closing text (results) after a cut call is not part of the reply
        outcome: Outcome | None = None
        try:
            while True:
                try:
                    event = flow.send(outcome)
                except StopIteration:
                    break
                outcome = None
                if self.cancel.is_set():
                    finish = "cancelled"
                    break
                if isinstance(event, TextDelta):
                    if self.handed:  # after a handoff the loop shows only the calls written right after it
                        reply.skip(event.text)
                        continue
                    tool = event.source == "tool"
                    if tool:
                        self.open_calls.clear()  # the loop closed the calls asked for so far with their results
                    self.show(field.feed(event.text, tool), reply, hide_tool=hide_closing)
                    hide_closing = hide_closing and not tool
                    if reply.stopped:
                        finish = "stop"
                        break
                elif isinstance(event, CallRequest):
                    outcome = self.answer(event, reply)
                    hide_closing = not plan.keep_markup and not isinstance(outcome, Handoff)
                    self.asked(event, isinstance(outcome, Handoff))
                elif isinstance(event, CallRefused):  # past max_calls, or tools off: shown with its error, not run
                    self.asked(event.request, False)
                    self.show_run(event.request, reply)
                    hide_closing = not plan.keep_markup
                elif isinstance(event, MalformedCall):
                    malformed: dict[str, Any] = {"id": run_id(), "tool": None, "arguments": {}, "status": "running"}
                    self.running.append(malformed)
                    self.say(reply.keep_call() if plan.keep_markup else reply.cut_call())
                    hide_closing = not plan.keep_markup
                    self.emit(ReplyEvent(self.index, "run", dict(malformed)))
                elif isinstance(event, CallFinished):
                    record = event.record
                    if self.open_calls and self.open_calls[-1][2] is None and self.open_calls[-1][1] is None:
                        self.open_calls[-1][2] = record.result
                    done: dict[str, Any] = (self.running.pop(0) if self.running
                                            else {"id": run_id(), "tool": record.tool, "arguments": {}})
                    done.update(status="done", ok=record.ok, result=record.result if record.ok else None,
                               error=None if record.ok else (record.error or record.result),
                               seconds=round(record.seconds, 4))
                    self.emit(ReplyEvent(self.index, "run", done))
                elif isinstance(event, Done):
                    reason = event.result.stop_reason
                    done_text = event.result.text
                    finish = {"length": "length", "cancelled": "cancelled", "tool_calls": "tool_calls"}.get(
                        reason or "", "stop")
        finally:
            flow.close()  # stops decoding at once when we left early (stop sequence, disconnect)
        if finish == "cancelled":
            self.emit(ReplyEvent(self.index, "done", "cancelled", {"counters": session.counters, "prompt": prompt_tokens}))
            return
        cut = finish == "length"  # the token limit struck: thoughts or a call may be unfinished
        self.show(field.finish(cut), reply)
        self.say(reply.finish(self.dialect.begins_call if cut else None))
        if reply.stopped and not self.handed:
            finish = "stop"   # a stop sequence in text held back to the end: the reply ends there, as it would have
        self.remember(done_text)
        if self.handed:
            self.emit(ReplyEvent(self.index, "tool_calls", [
                {"id": r.id, "type": "function", "function": {"name": r.tool, "arguments": json_arguments(r.arguments)}}
                for r in self.handed]))
        self.emit(ReplyEvent(self.index, "done", finish or "stop", {"counters": session.counters, "prompt": prompt_tokens}))
