"""What the server does with one request: the prompt from the messages, the loop in a worker thread, the events.

Concurrency: every request (every choice of it) runs the decoding loop in its own worker thread. The backend's model
is shared, so each decode step (one token, or the prefill before it) takes the backend's FIFO lock and gives it back
at once: concurrent replies interleave token by token, and a tool running for one reply never holds up the others
(tools run outside the lock). The event loop never waits on the model; events cross to it through a queue.

The seam for a batching engine: `Engine.start` is the one place a session is made and `_guard` the one place its
decoding is wrapped; an engine that batches concurrent sessions (vLLM's AsyncLLMEngine) would replace both with
sessions that submit each decode as an engine request and await it, and drop the lock.
"""
from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..backends.base import Backend, DecodeSession, Steering
from ..calls import ToolCall
from ..errors import ToolError
from ..loop import CallFinished, CallStarted, Done, LoopConfig, MalformedCall, TextDelta, resume_loop
from ..registry import ToolRegistry
from ..tool_type import Tool
from .protocol import ApiError, ChatRequest, Message, call_id, run_id

if TYPE_CHECKING:
    from ..dialects.base import Dialect

#: How many characters after a call opener are held back from the reply (a call lives on one line and is short).
HOLD_CHARS = 400
#: A name a Toolformer-style call can spell.
CALL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class FairLock:
    """A FIFO lock: a thread that releases it and asks again at once waits behind those already waiting.

    threading.Lock makes no such promise, and a decoding thread that re-acquires in a tight loop would starve the rest.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiters: deque[threading.Event] = deque()
        self._held = False

    def __enter__(self) -> "FairLock":
        with self._mutex:
            if not self._held:
                self._held = True
                return self
            turn = threading.Event()
            self._waiters.append(turn)
        turn.wait()  # handed over by release(); _held stays True across the hand-over
        return self

    def __exit__(self, *exc: object) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().set()
            else:
                self._held = False


@dataclass
class Sampling:
    """Per-request sampling, applied to the backend's own settings (temperature, top_p, generator) during its steps.

    Backends that expose no such attribute (the fake one) ignore it: the OpenAI fields apply "where the backend allows".
    """

    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None

    def settings(self, backend: Backend) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.temperature is not None and hasattr(backend, "temperature"):
            out["temperature"] = self.temperature
        if self.top_p is not None and hasattr(backend, "top_p"):
            if self.top_p == 0:  # OpenAI allows 0: only the likeliest token, i.e. greedy
                out["temperature"] = 0.0
            else:
                out["top_p"] = self.top_p
        generator = getattr(backend, "generator", None)
        if self.seed is not None and generator is not None:
            seeded = type(generator)(device=generator.device)  # a torch.Generator of the backend's own kind
            seeded.manual_seed(self.seed)
            out["generator"] = seeded
        return out


class Engine:
    """The one backend every request shares, behind a FIFO lock taken per decode step."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.lock = FairLock()
        self.active = 0  # sessions decoding now (a disconnected client's session leaves at once)
        self._count_lock = threading.Lock()

    def start(self, prompt: str, cancel: threading.Event, sampling: Sampling) -> DecodeSession:
        with self.lock:
            session = self.backend.start(prompt)
        _guard(self, session, cancel, sampling.settings(self.backend))
        return session

    def _enter(self, delta: int) -> None:
        with self._count_lock:
            self.active += delta


def _guard(engine: Engine, session: DecodeSession, cancel: threading.Event, settings: dict[str, Any]) -> None:
    """Wrap the session's stream and append so each step holds the engine lock, with this request's sampling, and
    decoding ends as soon as `cancel` is set (the client went away)."""
    inner_stream, inner_append = session.stream, session.append
    backend = engine.backend

    def step(iterator: Iterator[str]) -> str | None:
        with engine.lock:
            saved = {k: getattr(backend, k) for k in settings}
            for k, v in settings.items():
                setattr(backend, k, v)
            try:
                return next(iterator, None)
            finally:
                for k, v in saved.items():
                    setattr(backend, k, v)

    def stream(stop: Sequence[str], max_new_tokens: int, steering: Steering | None = None) -> Iterator[str]:
        iterator = inner_stream(stop, max_new_tokens, steering)
        try:
            while not cancel.is_set():
                delta = step(iterator)
                if delta is None:
                    return
                yield delta
            session.stop_reason, session.matched_stop = "cancelled", None
        finally:
            with engine.lock:
                iterator.close()  # runs the backend's own clean-up (counters) under the lock too

    def append(text: str) -> None:
        with engine.lock:  # tokenizes the text: the tokenizer is the backend's, shared like the model
            inner_append(text)

    session.stream = stream  # type: ignore[method-assign]  # instance attributes shadow the methods
    session.append = append  # type: ignore[method-assign]


# --- tools --------------------------------------------------------------------------------------------------------
def _client_only(**_: Any) -> str:
    raise ToolError("this function is the client's: the server never runs it")


def client_tool(name: str, description: str, parameters: dict[str, Any]) -> Tool:
    """A Tool for a function the request declares: it shapes the prompt and the call grammar, and never runs here."""
    if not CALL_NAME.fullmatch(name):
        raise ApiError(400, f"tools: function name {name!r} cannot be written in a call; use letters, digits and _ "
                       "(not starting with a digit)", param="tools")
    if not isinstance(parameters, dict) or parameters.get("type", "object") != "object" or not isinstance(
            parameters.get("properties", {}), dict):
        raise ApiError(400, f"tools: the parameters of {name!r} must be a JSON schema of type 'object' with "
                       "'properties'", param="tools")
    return Tool(name=name, description=description, parameters=parameters, func=_client_only, cacheable=False)


def parameter_order(parameters: dict[str, Any]) -> list[str]:
    """The order positional arguments take: required parameters first, then the optional ones, each in schema order
    (the order the call grammar writes them in)."""
    properties = list((parameters.get("properties") or {}).keys())
    required = set(parameters.get("required") or ())
    return [p for p in properties if p in required] + [p for p in properties if p not in required]


def _coerce(value: Any, schema: dict[str, Any]) -> Any:
    kinds = schema.get("type", "string")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    text = str(value).strip()
    if "integer" in kinds and re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    if "number" in kinds:
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
    if "boolean" in kinds and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if ("array" in kinds or "object" in kinds) and text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            pass
    return value


def named_arguments(args: Sequence[Any] | Mapping[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """A call's positional arguments as the JSON object its schema describes: mapped to the parameters in order
    (parameter_order), each coerced to its declared type; extra arguments are joined onto the last parameter."""
    if isinstance(args, Mapping):  # a JSON-argument dialect names them already
        return dict(args)
    names = parameter_order(parameters)
    properties = parameters.get("properties") or {}
    if not names:
        return {f"arg{i}": a for i, a in enumerate(args)} if args else {}
    values = list(args)
    if len(values) > len(names):  # "Paris, France" split at the comma: give the rest back to the last parameter
        values = values[:len(names) - 1] + [", ".join(str(v) for v in values[len(names) - 1:])]
    return {n: _coerce(v, properties.get(n) or {}) for n, v in zip(names, values)}


def positional_arguments(arguments: str, parameters: dict[str, Any], where: str) -> tuple[Any, ...]:
    """The inverse of named_arguments, for a call a client sends back: JSON object -> values in parameter order."""
    try:
        data = json.loads(arguments or "{}")
    except ValueError:
        raise ApiError(400, f"{where}: function.arguments is not valid JSON", param="messages") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"{where}: function.arguments must be a JSON object", param="messages")
    order = parameter_order(parameters) or list(data)
    values = [data[n] for n in order if n in data] + [v for k, v in data.items() if k not in order]
    return tuple(json.dumps(v) if isinstance(v, (dict, list)) else v for v in values)


# --- the prompt -----------------------------------------------------------------------------------------------------
def inline_results(dialect: "Dialect") -> bool:
    """Whether the dialect writes a call and its result in one inline span (Toolformer: `[f(x) -> r]`), which is how
    a client's tool result is put back into the assistant's text."""
    return "\x00result" in dialect.render_call(ToolCall("f", ("x",), "\x00result"))


def conversation(messages: Sequence[Message], dialect: "Dialect",
                 parameters: Callable[[str], dict[str, Any] | None]) -> tuple[str, list[dict[str, str]], str]:
    """(question, history, assistant text to continue) from OpenAI messages.

    An assistant message with tool_calls, the tool messages answering them and the assistant message after them are
    one reply to the model: the calls go back into its text with their results, in the dialect's inline form. When the
    messages end inside such a reply (the client just sent results), that text is what the model continues.
    """
    turns: list[dict[str, str]] = []
    open_calls: dict[str, tuple[str, tuple[Any, ...]]] = {}
    continuing = False  # the last assistant turn awaits results, or just got them
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if open_calls and m.role != "tool":
            missing = ", ".join(sorted(open_calls))
            raise ApiError(400, f"{where}: an assistant message with 'tool_calls' must be followed by tool messages "
                           f"answering each 'tool_call_id' (missing: {missing})", param="messages")
        if m.role in ("system", "developer"):
            turns.append({"role": "system", "content": m.text()})
            continuing = False
        elif m.role == "user":
            turns.append({"role": "user", "content": m.text()})
            continuing = False
        elif m.role == "assistant":
            text = m.text()
            if continuing and turns and turns[-1]["role"] == "assistant":
                turns[-1]["content"] += text
            else:
                turns.append({"role": "assistant", "content": text})
            continuing = False
            for tc in m.tool_calls or ():
                schema = parameters(tc.function.name)
                if schema is None:
                    raise ApiError(400, f"{where}: tool call {tc.id!r} names {tc.function.name!r}, which is not "
                                   "among the request's tools", param="messages")
                open_calls[tc.id] = (tc.function.name, positional_arguments(tc.function.arguments, schema, where))
                continuing = True
        else:  # tool
            if m.tool_call_id not in open_calls:
                raise ApiError(400, f"{where}: a tool message must answer a tool call of the assistant message before "
                               f"it; no open call has id {m.tool_call_id!r}", param="messages")
            if not inline_results(dialect):
                raise ApiError(400, f"{where}: the {dialect.name} dialect cannot take client-side tool results back",
                               param="messages")
            name, args = open_calls.pop(m.tool_call_id)
            call = dialect.render_call(ToolCall(name, args, m.text()))
            text = turns[-1]["content"]
            turns[-1]["content"] = text + ("" if not text or text[-1].isspace() else " ") + call
    if open_calls:
        raise ApiError(400, f"messages: tool calls without a tool message answering them: {', '.join(open_calls)}",
                       param="messages")
    tail = ""
    if turns[-1]["role"] == "assistant":
        tail = turns.pop()["content"]
    if not turns or turns[-1]["role"] != "user":
        raise ApiError(400, "messages: the conversation must end with a user message (or with an assistant reply "
                       "to continue after a user message)", param="messages")
    question = turns.pop()["content"]
    return question, turns, tail


# --- the reply as the client reads it -------------------------------------------------------------------------------
class ReplyFilter:
    """Turns the loop's text into the reply text, incrementally, so streamed and non-streamed replies are equal.

    Text after a call opener is held back until it is known whether a call starts there; a call is cut out (with its
    result) unless `keep_markup`; a client's call is always cut (it comes back as tool_calls); the reply's leading and
    trailing whitespace is dropped; text from a stop sequence on is dropped and ends the reply.
    """

    def __init__(self, open_marker: str, keep_markup: bool, stops: Sequence[str]) -> None:
        self.opener = open_marker
        self.keep = keep_markup
        self.stops = tuple(stops)
        self.held = ""         # text not yet released
        self.settled = 0       # held[:settled] holds no possible call start
        self.started = False   # something other than whitespace was released (leading space is dropped)
        self.mend = False      # a call was cut: one space of the text after it is redundant
        self.stopped = False

    def _hold_from(self) -> int:
        """Where the held text must stop being released: a live call opener, a partial stop, trailing space."""
        end = len(self.held)
        if self.opener:
            at = self.held.rfind(self.opener, self.settled)
            if at >= 0 and "\n" not in self.held[at:] and len(self.held) - at < HOLD_CHARS:
                end = at
            else:
                for k in range(min(len(self.opener) - 1, len(self.held)), 0, -1):
                    if self.held.endswith(self.opener[:k]):
                        end = min(end, len(self.held) - k)
                        break
        if self.stops:
            end = min(end, max(0, len(self.held) - max(len(s) for s in self.stops) + 1))
        while end > 0 and self.held[end - 1].isspace():
            end -= 1
        return end

    def _release(self, end: int) -> str:
        out, self.held = self.held[:end], self.held[end:]
        self.settled = max(0, self.settled - end)
        if not self.started:
            out = out.lstrip()
            self.started = bool(out)
        return out

    def text(self, delta: str) -> str:
        """Model text (or a kept call's result); returns what can be released now."""
        if self.stopped:
            return ""
        if self.mend and delta:
            # "is [Calculator(2 * 3) -> 6] 6" without its call would read "is  6": drop the second space.
            if self.held[-1:].isspace():
                delta = delta.lstrip(" ")
            self.mend = not delta
        self.held += delta
        for s in self.stops:
            at = self.held.find(s)
            if at >= 0:
                self.held = self.held[:at]
                self.stopped = True
        if self.stopped:
            return self._release(len(self.held.rstrip()))
        return self._release(self._hold_from())

    def cut_call(self) -> str:
        """The call ending the held text is removed (from its opener on); returns what can be released now."""
        at = self.held.rfind(self.opener, self.settled) if self.opener else -1
        if at >= 0:
            self.held = self.held[:at]
            self.mend = True
        self.settled = len(self.held)
        return self._release(self._hold_from())

    def keep_call(self) -> str:
        """The call ending the held text stays in the reply: it is no longer a possible start."""
        self.settled = len(self.held)
        return ""

    def finish(self) -> str:
        """The rest of the reply, trailing whitespace dropped."""
        return self._release(len(self.held.rstrip()))


# --- one choice --------------------------------------------------------------------------------------------------------
@dataclass
class Plan:
    """Everything the choices of one request share."""

    prompt: str
    registry: ToolRegistry | None        # what the loop sees: the server's tools offered, then the client's
    client: ToolRegistry                 # the request's functions (never run here)
    config: LoopConfig
    sampling: Sampling
    stops: tuple[str, ...]
    keep_markup: bool
    parallel: bool


@dataclass
class Event:
    """What a worker reports: kind is "text", "run" (a server tool started or finished), "tool_calls", "done"
    (with finish_reason and token counts) or "error"."""

    index: int
    kind: str
    data: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def _tool_parameters(registry: ToolRegistry | None, name: str | None) -> dict[str, Any]:
    if registry is None or name is None or name not in registry:
        return {}
    return registry.get(name).parameters


def run_choice(engine: Engine, dialect: "Dialect", plan: Plan, index: int, emit: Callable[[Event], None],
               cancel: threading.Event) -> None:
    """Generate one choice, reporting events through `emit` (called from this worker thread)."""
    engine._enter(1)
    try:
        _run_choice(engine, dialect, plan, index, emit, cancel)
    except Exception as err:  # noqa: BLE001 - a backend failure ends this reply with an error, never the server
        emit(Event(index, "error", f"{type(err).__name__}: {err}"))
    finally:
        engine._enter(-1)


def _run_choice(engine: Engine, dialect: "Dialect", plan: Plan, index: int, emit: Callable[[Event], None],
                cancel: threading.Event) -> None:
    session = engine.start(plan.prompt, cancel, plan.sampling)
    reply = ReplyFilter(dialect.open_marker, plan.keep_markup, plan.stops)
    events = resume_loop(session, dialect, plan.registry, plan.config)
    finish: str | None = None
    running: list[dict[str, Any]] = []  # the server tool runs started and not yet finished
    hidden_tool_text = False

    def say(text: str) -> None:
        if text:
            emit(Event(index, "text", text))

    try:
        for event in events:
            if cancel.is_set():
                finish = "cancelled"
                break
            if isinstance(event, TextDelta):
                if event.source == "tool" and hidden_tool_text:
                    hidden_tool_text = False
                    continue
                say(reply.text(event.text))
                if reply.stopped:
                    finish = "stop"
                    break
            elif isinstance(event, CallStarted):
                call = event.call
                if call.tool in plan.client:
                    say(reply.cut_call())
                    emit(Event(index, "tool_calls", _client_calls(dialect, session.text, plan)))
                    finish = "tool_calls"
                    break
                run = {"id": run_id(), "tool": _canonical(plan.registry, call.tool),
                       "arguments": named_arguments(call.args, _tool_parameters(plan.registry, call.tool)),
                       "status": "running"}
                running.append(run)
                say(reply.keep_call() if plan.keep_markup else reply.cut_call())
                hidden_tool_text = not plan.keep_markup
                emit(Event(index, "run", dict(run)))
            elif isinstance(event, MalformedCall):
                run = {"id": run_id(), "tool": None, "arguments": {}, "status": "running"}
                running.append(run)
                say(reply.keep_call() if plan.keep_markup else reply.cut_call())
                hidden_tool_text = not plan.keep_markup
                emit(Event(index, "run", dict(run)))
            elif isinstance(event, CallFinished):
                record = event.record
                run = running.pop(0) if running else {"id": run_id(), "tool": record.tool, "arguments": {}}
                run.update(status="done", ok=record.ok, result=record.result if record.ok else None,
                           error=None if record.ok else (record.error or record.result), seconds=round(record.seconds, 4))
                emit(Event(index, "run", run))
            elif isinstance(event, Done):
                reason = event.result.stop_reason
                finish = "length" if reason == "length" else ("cancelled" if reason == "cancelled" else "stop")
    finally:
        events.close()  # stops decoding at once when we left early (client call, stop sequence, disconnect)
    if finish == "cancelled":
        emit(Event(index, "done", "cancelled", {"counters": session.counters}))
        return
    say(reply.finish())
    emit(Event(index, "done", finish or "stop", {"counters": session.counters}))


def _canonical(registry: ToolRegistry | None, name: str) -> str:
    try:
        return registry.canonical(name) if registry is not None else name
    except KeyError:
        return name


def _client_calls(dialect: "Dialect", text: str, plan: Plan) -> list[dict[str, Any]]:
    """The client's calls pending at the end of `text` (one unless parallel_tool_calls), in OpenAI's tool_calls form."""
    pending = dialect.pending(text)
    calls = [c for c in (pending.calls if pending is not None else ()) if c.tool in plan.client]
    if not plan.parallel:
        calls = calls[:1]
    out = []
    for c in calls:
        tool = plan.client.get(c.tool)
        arguments = json.dumps(named_arguments(c.args, tool.parameters), ensure_ascii=False)
        out.append({"id": call_id(), "type": "function", "function": {"name": tool.name, "arguments": arguments}})
    return out


# --- planning a request ------------------------------------------------------------------------------------------------
@dataclass
class ServerSettings:
    """What the server was started with: its tools, loop defaults, prompt options and limits."""

    model_id: str
    registry: ToolRegistry | None
    config: LoopConfig
    few_shot: bool = True
    instruction: Any = None
    max_tokens_limit: int = 4096


def plan_request(request: ChatRequest, settings: ServerSettings, dialect: "Dialect", backend: Backend) -> Plan:
    """The prompt, tools and loop settings for `request`; an ApiError (400) for anything it cannot mean."""
    options = request.toolcall
    # Which server tools this request offers: all of them, or the subset it names (only registered ones can run).
    server = settings.registry
    if options is not None and options.tools is not None:
        if server is None:
            if options.tools:
                raise ApiError(400, "toolcall.tools: this server runs no tools", param="toolcall.tools")
        else:
            unknown = [n for n in options.tools if n not in server]
            if unknown:
                raise ApiError(400, f"toolcall.tools: {unknown[0]!r} is not a tool of this server; its tools: "
                               f"{', '.join(server.names())}", param="toolcall.tools")
            server = server.subset(options.tools) if options.tools else None
    client = ToolRegistry()
    for i, t in enumerate(request.tools or ()):
        f = t.function
        if f.name in client:
            raise ApiError(400, f"tools[{i}]: function {f.name!r} is declared twice", param="tools")
        client.add(client_tool(f.name, f.description, f.parameters))
    # "none" turns every tool off, the server's too; the default offers the server's tools with or without functions.
    choice = request.tool_choice or "auto"
    if isinstance(choice, str) and choice == "required" and not request.tools:
        raise ApiError(400, "tool_choice: 'required' needs at least one function in 'tools'", param="tool_choice")
    named = None
    if not isinstance(choice, str):
        named = choice.function.name
        if named not in client:
            raise ApiError(400, f"tool_choice: function {named!r} is not among the request's tools "
                           f"({', '.join(client.names()) or 'none'})", param="tool_choice")
    if client and not inline_results(dialect):
        raise ApiError(400, f"tools: client-side functions need a dialect that writes results inline (toolformer); "
                       f"this server speaks {dialect.name}", param="tools")

    config = settings.config
    limit = request.max_completion_tokens or request.max_tokens
    if limit is not None:
        if limit > settings.max_tokens_limit:
            raise ApiError(400, f"max_tokens: at most {settings.max_tokens_limit} tokens per reply, got {limit}",
                           param="max_completion_tokens" if request.max_completion_tokens else "max_tokens")
        config = replace(config, max_new_tokens=limit)
    if options is not None:
        changes = {k: getattr(options, k) for k in ("trigger_top_k", "max_calls", "constrain_calls")
                   if getattr(options, k) is not None}
        config = replace(config, **changes)

    forced = named is not None or choice == "required"
    if forced:
        # The model must call the client's function: open a call at once (a trigger whose top-K is the whole
        # vocabulary) and sample it under the call grammar of the allowed functions, so it always parses.
        allowed = client.subset([named]) if named else client
        loop_registry: ToolRegistry | None = allowed
        vocabulary = len(getattr(backend, "tokenizer", None) or ()) or 1
        config = replace(config, tools_enabled=True, trigger_top_k=vocabulary, max_triggers=1,
                         constrain_calls=bool(getattr(backend, "tokenizer", None)) or config.constrain_calls)
        shown: ToolRegistry | None = allowed
    elif choice == "none":
        loop_registry, shown = None, None
        config = replace(config, tools_enabled=False)
    else:
        merged = ToolRegistry()
        for t in server or ():
            if not any(n in client for n in (t.name, *t.aliases)):  # a client function shadows a server tool
                merged.add(t)
        for t in client:
            merged.add(t)
        loop_registry = merged if len(merged) else None
        shown = loop_registry
        if loop_registry is None:
            config = replace(config, tools_enabled=False)
    if not config.tools_enabled:
        shown = None

    def parameters(name: str) -> dict[str, Any] | None:
        return client.get(name).parameters if name in client else None

    question, history, tail = conversation(request.messages, dialect, parameters)
    prompt = dialect.prompt(question, shown, backend.chat_prompt, history, few_shot=settings.few_shot,
                            instruction=settings.instruction) + tail
    sampling = Sampling(request.temperature, request.top_p, request.seed)
    return Plan(prompt, loop_registry, client, config, sampling, request.stops(),
                bool(options and options.keep_markup), request.parallel_tool_calls)
