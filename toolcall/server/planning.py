"""What one request asks for: the prompt, the tools offered (the server's and the client's), tool_choice, sampling."""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..backends.base import Backend, Sampling
from ..dialects.base import CALL_NAME
from ..errors import BackendError, ChatTemplateError, ConfigError
from ..loop import LoopConfig, answer_or_calls_grammar, calls_before_json, offers_tools, reply_grammar
from ..registry import ToolRegistry
from ..specs import ToolSpec, ToolSpecs
from .conversation import conversation
from .handoffs import HandoffMemory
from .protocol import ApiError, ChatRequest

if TYPE_CHECKING:
    from ..dialects.base import Dialect



@dataclass
class ServerSettings:
    """What the server was started with: its tools, loop defaults, prompt options and limits."""

    model_id: str
    registry: ToolRegistry | None
    config: LoopConfig
    few_shot: bool = True
    instruction: Any = None
    max_tokens_limit: int = 4096


@dataclass
class Plan:
    """Everything the choices of one request share."""

    prompt: str
    tools: ToolSpecs | None       # what the loop offers: the server's tools, then the client's (None: tools off)
    client: ToolSpecs             # the request's functions: never run here, handed back as tool_calls
    server: ToolRegistry | None   # the server's tools that may run for this request
    config: LoopConfig
    sampling: Sampling
    stops: tuple[str, ...]
    keep_markup: bool
    parallel: bool
    tail: str = ""               # the assistant text the client asked to continue (already in the prompt)
    tail_answered: int = 0       # tail[:tail_answered] ends with calls the client answered: none is open there
    context: str = ""            # the digest of the request's messages (what a reply handed to the client answers)
    strict: frozenset[str] = frozenset()  # the client's functions whose arguments must follow their schema exactly
    server_calls: int | None = None  # the server's tools' runs per reply, where it is below config.max_calls


def client_specs(request: ChatRequest, dialect: "Dialect") -> ToolSpecs:
    """The request's functions as tools to offer; names a call of this dialect cannot spell are refused."""
    specs: list[ToolSpec] = []
    seen: set[str] = set()
    for i, t in enumerate(request.tools or ()):
        f = t.function
        if f.name.lower() in seen:
            raise ApiError(400, f"tools[{i}]: function {f.name!r} is declared twice", param="tools")
        seen.add(f.name.lower())
        if not dialect.named_arguments and not CALL_NAME.fullmatch(f.name):
            raise ApiError(400, f"tools[{i}]: function name {f.name!r} cannot be written in a {dialect.name} call; use "
                           "letters, digits and _ (not starting with a digit)", param="tools")
        specs.append(ToolSpec(f.name, f.description, f.parameters))
    return ToolSpecs(specs)


def _server_tools(request: ChatRequest, settings: ServerSettings) -> ToolRegistry | None:
    """The server's tools this request offers: all of them, or the subset it names (only registered ones can run)."""
    server = settings.registry
    options = request.toolcall
    if options is None or options.tools is None:
        return server
    if server is None:
        if options.tools:
            raise ApiError(400, "toolcall.tools: this server runs no tools", param="toolcall.tools")
        return None
    unknown = [n for n in options.tools if n not in server]
    if unknown:
        raise ApiError(400, f"toolcall.tools: {unknown[0]!r} is not a tool of this server; its tools: "
                       f"{', '.join(server.names())}", param="toolcall.tools")
    return server.subset(options.tools) if options.tools else None


#: The calls a reply may make when the request has functions of its own and says no `toolcall.max_calls`: each
#: function's calls are handed back to the client, as many as the model writes up to this.
CLIENT_CALLS = 16


def _loop_config(request: ChatRequest, settings: ServerSettings) -> LoopConfig:
    config = settings.config
    limit = request.max_completion_tokens or request.max_tokens
    if limit is not None:
        if limit > settings.max_tokens_limit:
            raise ApiError(400, f"max_tokens: at most {settings.max_tokens_limit} tokens per reply, got {limit}",
                           param="max_completion_tokens" if request.max_completion_tokens else "max_tokens")
        config = replace(config, max_new_tokens=limit)
    options = request.toolcall
    if options is not None:
        changes = {k: getattr(options, k) for k in ("trigger_top_k", "call_threshold", "max_calls", "constrain_calls",
                                                    "repeat_calls") if getattr(options, k) is not None}
        config = replace(config, **changes)
    return config


def sampling(request: ChatRequest) -> Sampling:
    """The request's sampling fields; OpenAI's top_p 0 means only the likeliest token, i.e. greedy."""
    if request.top_p == 0:
        return Sampling(temperature=0.0, seed=request.seed)
    return Sampling(request.temperature, request.top_p, request.seed)


def plan_request(request: ChatRequest, settings: ServerSettings, dialect: "Dialect", backend: Backend,
                 memory: HandoffMemory | None = None) -> Plan:
    """The prompt, tools and loop settings for `request`; an ApiError (400) for anything it cannot mean. `memory`
    holds this server's replies that ended with calls for the client (see toolcall.server.handoffs)."""
    server = _server_tools(request, settings)
    client = client_specs(request, dialect)
    choice = request.tool_choice or "auto"
    if choice == "required" and not client:
        raise ApiError(400, "tool_choice: 'required' needs at least one function in 'tools'", param="tool_choice")
    config = _loop_config(request, settings)
    tools: ToolSpecs | None
    if not isinstance(choice, str) or choice == "required":
        # The model must call the client's function(s): the loop opens the call, the model writes it (under the
        # call grammar of the allowed functions where the dialect has one, so it always parses).
        named = None if isinstance(choice, str) else choice.function.name
        if named is not None and named not in client:
            own = " (it is one of the server's own tools, which it calls when the model writes a call; tool_choice " \
                "names a function of the request's 'tools')" if server is not None and named in server else ""
            raise ApiError(400, f"tool_choice: function {named!r} is not among the request's tools "
                           f"({', '.join(client.names()) or 'none'}){own}", param="tool_choice")
        tools, server = (client.subset([named]) if named else client), None
        config = replace(config, tools_enabled=True, force_call=True, max_calls=max(config.max_calls, 1))
    elif choice == "none":
        tools, server = None, None
        config = replace(config, tools_enabled=False)
    else:
        # A client function shadows a server tool of the same name.
        offered = [t.spec() for t in server or () if not any(n in client for n in (t.name, *t.aliases))]
        tools = ToolSpecs([*offered, *client]) or None
        if tools is None:
            config = replace(config, tools_enabled=False)
    server_calls: int | None = None
    if request.parallel_tool_calls is False:
        config = replace(config, parallel_calls=False)  # one call at a time: the first is answered as it is written
    if client and config.tools_enabled and request.parallel_tool_calls is not False and \
            (request.toolcall is None or request.toolcall.max_calls is None):
        # OpenAI hands back every call a reply writes; the server's own limit (3 by default) stays its tools' runs'
        # (the reply's choice refuses a server tool past it).
        server_calls = config.max_calls
        config = replace(config, max_calls=max(config.max_calls, CLIENT_CALLS))
    reply_schema = request.response_format.reply_schema() if request.response_format is not None else None
    if reply_schema is not None:
        config = _json_reply_config(config, reply_schema, dialect, backend, tools,
                                    client_tools=bool(client) and choice != "none")
        if not offers_tools(config, dialect):
            tools, server = None, None
    strict = frozenset(t.function.name for t in request.tools or () if t.function.strict) if config.tools_enabled \
        else frozenset()
    if strict:
        config = _strict_config(config, dialect, strict, client)
    shown = tools if offers_tools(config, dialect) else None   # max_calls 0: no call may run, none is offered
    if shown is not None and (config.constrain_calls or config.force_call):
        _check_call_grammar(dialect, shown, backend, required=config.constrain_calls)
    talk = conversation(request.messages, dialect, client, backend.special_texts(), memory)
    try:
        prompt = dialect.prompt(talk.question, shown, backend.chat_prompt, talk.history, few_shot=settings.few_shot,
                                instruction=settings.instruction) + talk.tail
    except ChatTemplateError as err:
        raise ApiError(400, str(err), param="messages") from None
    return Plan(prompt, tools, client, server, config, sampling(request), request.stops(),
                bool(request.toolcall and request.toolcall.keep_markup), request.parallel_tool_calls, talk.tail,
                talk.answered, talk.digest, strict, server_calls)


def _json_reply_config(config: LoopConfig, schema: dict[str, Any], dialect: "Dialect", backend: Backend,
                       tools: ToolSpecs | None, client_tools: bool) -> LoopConfig:
    """response_format json_object / json_schema: the reply is one JSON value held to the schema from its first token
    (LoopConfig.json_schema; llguidance). Where the dialect's calls stand apart from its answer (hermes) the reply may
    call the offered tools before it, each call held to its function's schema (the Agents SDK's `output_type` with
    tools); elsewhere it runs no tools, and the request's own tools are a 400. A schema the engine cannot hold is a 400
    before anything is decoded, as a function's is."""
    if dialect.answer_opener:
        raise ApiError(400, f"response_format: the {dialect.name} dialect writes its answer in a field of its own "
                       "reply, which JSON cannot be held to; serve another dialect", param="response_format")
    text = json.dumps(schema, ensure_ascii=False)
    mixed = config.tools_enabled and bool(tools) and calls_before_json(dialect)
    if client_tools and not mixed:
        raise ApiError(400, f"response_format: in the {dialect.name} dialect a reply held to JSON cannot call the "
                       "request's tools (the hermes dialect can); ask for the JSON in a request after the tools' "
                       "results, without tools or with tool_choice 'none'", param="response_format")
    if mixed and tools:
        try:
            backend.check_constraint(answer_or_calls_grammar(text, dialect, tools))
            return replace(config, json_schema=text)
        except (ConfigError, BackendError) as err:
            if client_tools:
                raise ApiError(400, "response_format: the reply cannot be held to this schema and the tools' schemas: "
                               f"{str(err)[:300]}", param="response_format") from None
            # Only the server's own tools, one of whose schemas cannot be held (an MCP server's regex): the reply
            # runs none, as a reply held to JSON does in the other dialects, rather than refusing every request.
    try:
        backend.check_constraint(reply_grammar(text))
    except (ConfigError, BackendError) as err:
        raise ApiError(400, f"response_format: the reply cannot be held to this schema: {str(err)[:300]}",
                       param="response_format") from None
    return replace(config, tools_enabled=False, json_schema=text)


def _strict_config(config: LoopConfig, dialect: "Dialect", strict: frozenset[str], client: ToolSpecs) -> LoopConfig:
    """OpenAI's `strict: true` promises arguments that follow the function's schema exactly: the calls are decoded
    under the schemas where the dialect has a call grammar; elsewhere each strict function's arguments are checked
    against its schema before they are handed back (`Plan.strict`), and a schema with a regex is refused there, since
    checking a client's regex against what the model wrote could backtrack for ever."""
    try:
        dialect.call_grammar(client, closers=dialect.call_markers)
    except ConfigError:
        for name in sorted(strict):
            spec = client.find(name)
            if spec is not None and _has_regex(spec.parameters):
                raise ApiError(400, f"tools: function {name!r} is strict and its schema has a 'pattern', which the "
                               f"{dialect.name} dialect cannot hold its calls to; leave out strict or the pattern",
                               param="tools") from None
        return config
    return replace(config, constrain_calls=True)


#: Keywords whose value maps names to schemas: a property called "pattern" is no regex.
_NAMED_SCHEMAS = ("properties", "$defs", "definitions", "dependentSchemas")


def _has_regex(schema: Any) -> bool:
    """Whether a JSON schema holds a `pattern` or `patternProperties` anywhere."""
    todo = [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, list):
            todo.extend(node)
        elif isinstance(node, dict):
            if "pattern" in node or "patternProperties" in node:
                return True
            for key, value in node.items():
                todo.extend(value.values() if key in _NAMED_SCHEMAS and isinstance(value, dict) else [value])
    return False


def _check_call_grammar(dialect: "Dialect", tools: ToolSpecs, backend: Backend, required: bool) -> None:
    """Build the call grammar the loop will hold calls to (and the engine's matcher for it, kept for the decode), so
    that functions whose schemas it cannot use are a 400 before anything is decoded, not a failure mid-reply under
    the engine's lock. A dialect without a call grammar fails only where the calls must follow it (`required`)."""
    try:
        grammar = dialect.call_grammar(tools, closers=dialect.call_markers)
    except ConfigError as err:
        if not required:
            return  # a forced call is then opened and written freely, as the loop does
        raise ApiError(400, f"tools: the calls cannot be held to these functions' schemas (strict, or "
                       f"toolcall.constrain_calls): {err}", param="tools") from None
    try:
        backend.check_constraint(grammar)
    except (ConfigError, BackendError) as err:
        raise ApiError(400, f"tools: the calls cannot be held to these functions' schemas: {str(err)[:300]}",
                       param="tools") from None
