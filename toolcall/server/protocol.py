"""The OpenAI chat-completions wire format: request models (strictly validated), the error shape, response pieces."""
from __future__ import annotations

import re
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from ..backends.base import MAX_SEED
from ..errors import ToolcallError
from ..schema import (
    MAX_OFFERED_TOOLS,
    MAX_SCHEMA_DEPTH,
    MAX_SCHEMA_NODES,
    json_nodes,
    meta_schema_problem,
    nesting_depth,
    short_json,
)

#: Request fields the OpenAI API defines that change nothing here (ids, storage, penalties at their neutral value).
IGNORED_FIELDS = ("user", "metadata", "store", "service_tier", "reasoning_effort", "verbosity", "prompt_cache_key",
                  "prompt_cache_retention", "prompt_cache_options", "safety_identifier", "web_search_options",
                  "frequency_penalty", "presence_penalty")
#: Request fields the OpenAI API defines that would change the answer in a way this server cannot honour:
#: refused unless they hold their neutral value, so a client never gets a silently different answer.
UNSUPPORTED_FIELDS = {
    "logprobs": (None, False), "top_logprobs": (None, 0), "logit_bias": (None, {}), "functions": (None, []),
    "function_call": (None, "none", "auto"), "audio": (None,), "modalities": (None, ["text"]), "prediction": (None,),
}
MAX_CHOICES = 8
MAX_STOPS = 4
#: Characters in one stop sequence (the reply is held back by the longest one while it streams).
MAX_STOP_CHARS = 256
#: Messages in one conversation, and functions in one request (OpenAI's own limit for tools).
MAX_MESSAGES = 2048
MAX_TOOLS = MAX_OFFERED_TOOLS


class ApiError(ToolcallError):
    """An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}} with an HTTP status."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 kind: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind or ("invalid_request_error" if status < 500 else "server_error")

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class _Strict(BaseModel):
    # strict: "5" is not a number and 1 is not a boolean; forbid: a misspelt field is an error, not silently dropped.
    model_config = ConfigDict(extra="forbid", strict=True)


class TextPart(BaseModel):
    # Keys beside type and text are hints to other servers (`cache_control`): nothing here reads them.
    model_config = ConfigDict(extra="ignore", strict=True)
    type: Literal["text"]
    text: str


class _SentBack(BaseModel):
    # A message the client got from this server and sends back: openai-python's stream and parse helpers add keys of
    # their own (`index`, `parsed_arguments`), which mean nothing here.
    model_config = ConfigDict(extra="ignore", strict=True)


class FunctionCall(_SentBack):
    name: str
    arguments: str


class ToolCallIn(_SentBack):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(BaseModel):
    """One message of the conversation; fields OpenAI allows but that mean nothing here (name, refusal) are ignored."""

    model_config = ConfigDict(extra="ignore", strict=True)
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None  # what the server gave as the reply's thoughts field (MOSS), sent back

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts_only(cls, content: Any) -> Any:
        return text_parts_only(content, ("text",))

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


def text_parts_only(content: Any, kinds: tuple[str, ...]) -> Any:
    """`content` as given, unless it is a list holding a part whose type is not among `kinds` (the first is the text
    part's): a part the model cannot read (an image, audio, a file) is named, not reported as "not a valid string"."""
    if isinstance(content, list):
        for i, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if isinstance(kind, str) and kind not in kinds:
                raise ValueError(f"part {i} is of type {short_json(kind)}: this server's model reads text only; send "
                                 f'text parts ({{"type": "{kinds[0]}", "text": ...}}) or a string')
    return content


class FunctionDef(_Strict):
    name: str = Field(min_length=1, max_length=64)
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None

    @field_validator("description", "parameters", mode="before")
    @classmethod
    def _null_is_left_out(cls, value: Any, info: ValidationInfo) -> Any:
        # OpenAI's SDKs and other clients send a field they have no value for as null: read as left out.
        if value is None:
            return "" if info.field_name == "description" else {"type": "object", "properties": {}}
        return value

    @field_validator("parameters")
    @classmethod
    def _usable_schema(cls, parameters: dict[str, Any]) -> dict[str, Any]:
        problem = schema_problem(parameters)
        if problem is not None:
            raise ValueError(problem)
        return parameters


def schema_problem(parameters: dict[str, Any]) -> str | None:
    """What makes `parameters` unusable as a function's parameter schema, or None.

    It must be a valid JSON Schema (checked against the 2020-12 meta-schema) of an object whose properties are schema
    objects, whose `required` names only its properties, and whose enums are not empty.
    """
    if nesting_depth(parameters, MAX_SCHEMA_DEPTH) > MAX_SCHEMA_DEPTH:
        return f"the schema nests deeper than {MAX_SCHEMA_DEPTH} levels"
    invalid = meta_schema_problem(parameters)
    if invalid is not None:
        return invalid
    if parameters.get("type", "object") != "object":
        return f"the parameters must be a schema of type 'object', not {short_json(parameters['type'])}"
    properties = parameters.get("properties", {})
    for name, schema in properties.items():
        if not isinstance(schema, dict):
            return f"properties.{name} must be a schema object, not {short_json(schema)}"
        if "enum" in schema and not schema["enum"]:
            return f"properties.{name}.enum must list at least one value"
    unknown = [n for n in parameters.get("required", ()) if n not in properties]
    if unknown:
        return f"required names {short_json(unknown[0])}, which is not among the properties ({', '.join(properties) or 'none'})"
    return None


class JsonSchemaFormat(_Strict):
    """response_format's json_schema: the schema the reply's JSON follows (name, description and strict are OpenAI's
    labels; the reply is held to the schema either way)."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None

    @field_validator("schema_")
    @classmethod
    def _usable(cls, schema: dict[str, Any]) -> dict[str, Any]:
        if json_nodes(schema, MAX_SCHEMA_NODES) > MAX_SCHEMA_NODES:
            raise ValueError(f"the schema holds more than {MAX_SCHEMA_NODES:,} objects and lists")
        if nesting_depth(schema, MAX_SCHEMA_DEPTH) > MAX_SCHEMA_DEPTH:
            raise ValueError(f"the schema nests deeper than {MAX_SCHEMA_DEPTH} levels")
        problem = meta_schema_problem(schema)
        if problem is not None:
            raise ValueError(problem)
        return schema


class ResponseFormat(_Strict):
    """The reply's form: text (the default), any JSON object, or JSON following a schema."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    def reply_schema(self) -> dict[str, Any] | None:
        """The JSON schema the reply is held to; None for text."""
        if self.type == "text":
            return None
        if self.type == "json_object":
            return {"type": "object"}
        if self.json_schema is None:
            raise ApiError(400, "response_format: a json_schema response format needs its json_schema object "
                           '({"name": ..., "schema": {...}})', param="response_format")
        return self.json_schema.schema_


class ToolDef(_Strict):
    type: Literal["function"]
    function: FunctionDef


class FunctionName(_Strict):
    name: str


def function_choice_only(value: Any, written: str) -> Any:
    """A tool_choice as given, unless it is an object of another type than "function" (custom, allowed_tools, a hosted
    tool's), which this server cannot honour: a ValueError saying what it takes, the function form `written` as the
    API writes it."""
    if isinstance(value, dict) and value.get("type") != "function":
        raise ValueError(f"a tool_choice of type {short_json(value.get('type'))} is not supported here: send "
                         f'"none", "auto", "required" or {written} (to allow only some functions, send only those in '
                         "'tools')")
    return value


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: FunctionName


class StreamOptions(_Strict):
    include_usage: bool = False
    include_obfuscation: bool | None = None  # a privacy padding of OpenAI's own; nothing to pad here


class ToolcallOptions(_Strict):
    """The `toolcall` extension object: how this server's own tools run in this request."""

    keep_markup: bool = False  # keep the inline call markup ([Calculator(2 * 3) -> 6]) in the reply text
    tools: list[str] | None = None  # which of the server's tools to offer (names); None: all it was started with
    trigger_top_k: int | None = Field(default=None, ge=0, le=1000)
    call_threshold: float | None = Field(default=None, ge=0, lt=1)
    max_calls: int | None = Field(default=None, ge=0, le=32)
    constrain_calls: bool | None = None
    repeat_calls: bool | None = None


class ChatRequest(_Strict):
    model: str
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1, le=MAX_CHOICES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[ToolDef] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool = True
    toolcall: ToolcallOptions | None = None
    # Accepted, with no effect (IGNORED_FIELDS) or refused unless neutral (UNSUPPORTED_FIELDS): see check_fields.
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    prompt_cache_options: dict[str, Any] | None = None
    safety_identifier: str | None = None
    web_search_options: dict[str, Any] | None = None
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, Any] | None = None
    functions: list[Any] | None = None
    function_call: Any = None
    audio: Any = None
    modalities: list[str] | None = None
    prediction: Any = None
    response_format: ResponseFormat | None = None

    @field_validator("n", "stream", "parallel_tool_calls", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any, info: ValidationInfo) -> Any:
        """OpenAI reads an explicit null as the field left out; clients and proxies that send every field do so."""
        return cls.model_fields[str(info.field_name)].default if value is None else value

    @field_validator("tool_choice", mode="before")
    @classmethod
    def _function_choice(cls, value: Any) -> Any:
        # {"type": "custom", ...} or {"type": "allowed_tools", ...} read "Missing required parameter
        # 'tool_choice.function'", which named a field rather than what this server cannot do.
        return function_choice_only(value, '{"type": "function", "function": {"name": ...}}')

    @field_validator("tools", mode="before")
    @classmethod
    def _bounded_schemas(cls, tools: Any) -> Any:
        """Counted before any function is checked: the schemas' check costs time by their size."""
        if not isinstance(tools, list):
            return tools
        check_schemas_size([t["function"].get("parameters") for t in tools
                            if isinstance(t, dict) and isinstance(t.get("function"), dict)])
        return tools

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        items = [self.stop] if isinstance(self.stop, str) else list(self.stop)
        if len(items) > MAX_STOPS:
            raise ApiError(400, f"stop: at most {MAX_STOPS} stop sequences are allowed, got {len(items)}",
                           param="stop")
        if any(not s for s in items):
            raise ApiError(400, "stop: a stop sequence must not be empty", param="stop")
        longest = max(len(s) for s in items) if items else 0
        if longest > MAX_STOP_CHARS:
            raise ApiError(400, f"stop: a stop sequence may have at most {MAX_STOP_CHARS} characters, got {longest}",
                           param="stop")
        return tuple(items)


def check_schemas_size(schemas: list[Any]) -> None:
    """Refuse (a ValueError, for a validator) functions whose parameter schemas together are too large to check."""
    if json_nodes(schemas, MAX_SCHEMA_NODES + 1) > MAX_SCHEMA_NODES + 1:  # + 1: the list that holds them
        raise ValueError(f"the functions' parameter schemas hold more than {MAX_SCHEMA_NODES:,} objects and "
                         "lists together; offer fewer or smaller functions")


def check_history(request: ChatRequest) -> None:
    """Refuse an assistant message whose tool calls share an id: a tool message could not say which it answers. The
    same id in another assistant message is another call (tool messages answer the message just before them): some
    providers number calls per turn (`call_0`, Kimi's `get_weather:0`), and their histories were refused here."""
    for i, m in enumerate(request.messages):
        seen: set[str] = set()
        for tc in m.tool_calls or ():
            if tc.id in seen:
                raise ApiError(400, f"messages[{i}]: tool call id {tc.id!r} is used twice there; the calls of an "
                               "assistant message each need an id of their own", param="messages",
                               code="duplicate_tool_call_id")
            seen.add(tc.id)


def check_fields(request: ChatRequest) -> None:
    """Refuse an OpenAI option that would change the answer in a way this server does not implement."""
    for name, neutral in UNSUPPORTED_FIELDS.items():
        value = getattr(request, name)
        if value not in neutral:
            raise ApiError(400, f"{name}: this server does not support {name}={short_json(value)}; leave it out",
                           param=name, code="unsupported_parameter")
    for name in ("frequency_penalty", "presence_penalty"):
        if getattr(request, name) not in (None, 0, 0.0):
            raise ApiError(400, f"{name}: this server does not apply penalties; leave it out or send 0",
                           param=name, code="unsupported_parameter")
    if request.stream_options is not None and not request.stream:  # as OpenAI answers it: it would be ignored
        raise ApiError(400, "stream_options: only allowed with \"stream\": true", param="stream_options")


def parse_request(body: bytes) -> ChatRequest:
    """The request in `body` (JSON), or an ApiError 400 that names the first wrong field and what it must be."""
    try:
        request = ChatRequest.model_validate_json(body)
    except ValidationError as err:
        raise validation_error(err) from None
    check_fields(request)
    check_history(request)
    request.stops()  # a wrong stop list is refused here, before anything else is done with the request
    return request


def validation_error(err: ValidationError, prefix: str = "") -> ApiError:
    """The ApiError (400) for a request's first wrong field, named by its dotted path (after `prefix`, the path of
    the object validated within the request), with what it must be."""
    errors = err.errors(include_url=False)
    first = errors[0]
    if first["loc"]:
        # A field of several types reports each type's error, the first (not a string) seldom the one meant: the
        # error reaching deepest into the value is ({"type": "text"} is missing its "text", not "a string").
        field = _param(first["loc"]) or ""
        same = [e for e in errors if (_param(e["loc"]) or "").startswith(field)]
        first = max(same, key=lambda e: len(_param(e["loc"]) or ""))
    if first["type"] == "json_invalid":
        return ApiError(400, f"the body is not valid JSON: {first['msg']}", code="invalid_json")
    if first["type"] == "model_type" and not first["loc"] and not prefix:
        return ApiError(400, "the body must be a JSON object", code="invalid_json")
    param = ".".join(p for p in (prefix, _param(first["loc"])) if p) or None
    if first["type"] == "extra_forbidden":
        return ApiError(400, f"Unrecognized request argument supplied: {param}", param=param, code="unknown_parameter")
    if first["type"] == "missing":
        return ApiError(400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    message = first["msg"].removeprefix("Value error, ")
    return ApiError(400, f"Invalid value for '{param}': {message} (got {short_json(first.get('input'))})",
                    param=param, code="invalid_value")


def _param(loc: tuple[Any, ...]) -> str | None:
    """The dotted field path of an error location, without the union-member tags pydantic adds (str, literal[...])."""
    parts = [str(p) for p in loc if isinstance(p, int) or (re.fullmatch(r"[a-z_][a-z0-9_]*", str(p))
                                                            and str(p) not in _TYPE_TAGS)]
    return ".".join(parts) or None


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "none", "list", "dict"})


# --- response pieces -----------------------------------------------------------------------------------------------
def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def run_id() -> str:
    return "run_" + uuid.uuid4().hex[:24]


def now() -> int:
    return int(time.time())


class UsageCount:
    """A request's usage over its choices, as OpenAI counts it: the input tokens (the prompt once, every choice's
    spliced results), how many of them a prefix cache served, and the tokens generated."""

    def __init__(self) -> None:
        self.input = self.cached = self.completion = 0
        self.prompts: list[int] = []

    def add(self, counters: Any, prompt_tokens: int) -> None:
        self.input += counters.input_tokens
        self.cached += counters.cached_tokens
        self.completion += counters.decoded_tokens
        self.prompts.append(prompt_tokens)

    def body(self) -> dict[str, Any]:
        again = sum(sorted(self.prompts)[:-1])  # every choice read the same prompt: it is counted once
        prompt = max(0, self.input - again)
        cached = max(0, min(prompt, self.cached - again))
        return {"prompt_tokens": prompt, "completion_tokens": self.completion,
                "total_tokens": prompt + self.completion, "prompt_tokens_details": {"cached_tokens": cached}}


def split_arguments(arguments: str, size: int = 16) -> list[str]:
    """The arguments JSON in fragments, as a stream delivers them (their concatenation is the whole JSON)."""
    return [arguments[i:i + size] for i in range(0, len(arguments), size)] or [""]
