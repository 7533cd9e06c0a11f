"""The OpenAI Responses wire format: a /v1/responses request read as the chat request this server runs, and a
reply's events written as the Response object's output items and as its stream events."""
from __future__ import annotations

import re
import uuid
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator

from ..schema import short_json
from .protocol import (
    MAX_MESSAGES,
    MAX_TOOLS,
    ApiError,
    ChatRequest,
    FunctionDef,
    JsonSchemaFormat,
    ToolcallOptions,
    _SentBack,
    _Strict,
    check_fields,
    check_history,
    check_schemas_size,
    function_choice_only,
    split_arguments,
    text_parts_only,
    validation_error,
)

#: Responses fields that change nothing here: ids, storage, caching, reasoning settings, extra output data.
IGNORED_FIELDS = ("metadata", "user", "store", "service_tier", "safety_identifier", "prompt_cache_key",
                  "prompt_cache_retention", "prompt_cache_options", "reasoning", "include", "truncation",
                  "access_programs")
#: Responses fields that would change the answer or need state this server does not keep: refused unless neutral.
UNSUPPORTED_FIELDS: dict[str, tuple[Any, ...]] = {
    "previous_response_id": (None,), "conversation": (None,), "prompt": (None,), "background": (None, False),
    "background_options": (None,), "top_logprobs": (None, 0), "context_management": (None,), "image": (None,),
    "moderation": (None,),
}
#: Why a field above is refused, where "this server does not support it" is not enough.
_WHY = {
    "previous_response_id": "this server keeps no responses; send the whole conversation in 'input'",
    "conversation": "this server keeps no conversations; send the whole conversation in 'input'",
    "prompt": "this server keeps no prompt templates; send the instructions and input themselves",
    "background": "this server answers in the request (or its stream) only",
}


class TextContent(_SentBack):
    type: Literal["input_text", "output_text"]
    text: str


class RefusalContent(_SentBack):
    """A refusal another server's reply held: as the chat API's `refusal`, nothing the model reads."""

    type: Literal["refusal"]
    refusal: str


class MessageItem(_SentBack):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[TextContent | RefusalContent]

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts_only(cls, content: Any) -> Any:
        return text_parts_only(content, ("input_text", "output_text", "refusal"))

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextContent))


class FunctionCallItem(_SentBack):
    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str
    arguments: str


class FunctionCallOutputItem(_SentBack):
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str | list[TextContent]

    @field_validator("output", mode="before")
    @classmethod
    def _text_parts_only(cls, output: Any) -> Any:
        return text_parts_only(output, ("input_text", "output_text"))

    def text(self) -> str:
        return self.output if isinstance(self.output, str) else "".join(p.text for p in self.output)


class ReasoningText(_SentBack):
    type: Literal["reasoning_text", "summary_text"]
    text: str


class ReasoningItem(_SentBack):
    type: Literal["reasoning"]
    summary: list[ReasoningText] = Field(default_factory=list)
    content: list[ReasoningText] | None = None

    def text(self) -> str:
        return "".join(p.text for p in (self.content or self.summary))


_ITEMS: dict[str, type[_SentBack]] = {"message": MessageItem, "function_call": FunctionCallItem,
                                      "function_call_output": FunctionCallOutputItem, "reasoning": ReasoningItem}
InputItem = MessageItem | FunctionCallItem | FunctionCallOutputItem | ReasoningItem


class FunctionTool(FunctionDef):
    """A function tool as the Responses API writes it: the chat API's function, flat, with its type beside it, and
    fields that say how OpenAI's service calls it (none changes what the model is offered here)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["function"]
    output_schema: dict[str, Any] | None = None  # what the function's output text holds: the client's to read
    allowed_callers: list[Literal["direct", "programmatic"]] | None = None
    async_: bool | None = Field(default=None, alias="async")
    defer_loading: Literal[False] | None = None  # True: loaded by OpenAI's tool search, which this server lacks

    @field_validator("allowed_callers")
    @classmethod
    def _called_directly(cls, callers: list[str] | None) -> list[str] | None:
        if callers is not None and "direct" not in callers:
            raise ValueError("this server's model calls a function directly only (OpenAI's programmatic callers "
                             'run code it does not have): leave it out or include "direct"')
        return callers

    @field_validator("description", "parameters", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any, info: Any) -> Any:
        """openai's own types allow null for both: the function has no description, takes no arguments."""
        if value is not None:
            return value
        return "" if info.field_name == "description" else {"type": "object", "properties": {}}

    def function(self) -> dict[str, Any]:
        """The chat API's function object."""
        return self.model_dump(include={"name", "description", "parameters", "strict"}, exclude_none=True)


class FunctionChoice(_Strict):
    type: Literal["function"]
    name: str


class JsonSchemaText(JsonSchemaFormat):
    type: Literal["json_schema"]


class PlainFormat(_Strict):
    type: Literal["text", "json_object"]


class TextConfig(_Strict):
    format: PlainFormat | JsonSchemaText | None = None
    verbosity: str | None = None  # a hint to OpenAI's models; nothing to say less or more with here

    @field_validator("format", mode="before")
    @classmethod
    def _by_type(cls, value: Any) -> Any:
        """The format's own errors, not both union members' (a json_schema format missing its schema)."""
        if isinstance(value, dict) and value.get("type") == "json_schema":
            return JsonSchemaText.model_validate(value)
        return value


class StreamOptions(_Strict):
    include_obfuscation: bool | None = None  # OpenAI's privacy padding; nothing to pad here


class ResponsesRequest(_Strict):
    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[FunctionTool] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: Literal["none", "auto", "required"] | FunctionChoice | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    max_tool_calls: int | None = Field(default=None, ge=0, le=32)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    text: TextConfig | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    toolcall: ToolcallOptions | None = None
    # Accepted with no effect (IGNORED_FIELDS), or refused unless neutral (UNSUPPORTED_FIELDS).
    metadata: dict[str, str] | None = None
    user: str | None = None
    store: bool | None = None
    service_tier: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    prompt_cache_options: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    include: list[str] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    access_programs: dict[str, Any] | None = None
    previous_response_id: str | None = None
    conversation: Any = None
    prompt: Any = None
    background: bool | None = None
    background_options: Any = None
    top_logprobs: int | None = None
    context_management: Any = None
    image: Any = None
    moderation: Any = None

    @field_validator("tool_choice", mode="before")
    @classmethod
    def _function_choice(cls, value: Any) -> Any:
        return function_choice_only(value, '{"type": "function", "name": ...}')

    @field_validator("input")
    @classmethod
    def _bounded(cls, value: Any) -> Any:
        if isinstance(value, list) and not 1 <= len(value) <= MAX_MESSAGES:
            raise ValueError(f"must hold 1 to {MAX_MESSAGES} items, got {len(value)}")
        return value

    @field_validator("tools", mode="before")
    @classmethod
    def _bounded_schemas(cls, tools: Any) -> Any:
        """Counted before any function is checked: the schemas' check costs time by their size."""
        if not isinstance(tools, list):
            return tools
        for i, tool in enumerate(tools):
            kind = tool.get("type") if isinstance(tool, dict) else None
            if kind != "function":
                raise ValueError(f"tools[{i}] is of type {short_json(kind)}: this server offers the model function "
                                 'tools only ({"type": "function", "name": ..., "parameters": {...}}); it runs no '
                                 "hosted tools")
        check_schemas_size([t.get("parameters") for t in tools])
        return tools

    def items(self) -> list[InputItem]:
        """The input as items (a string is one user message); an ApiError names the first wrong one."""
        if isinstance(self.input, str):
            return [MessageItem(role="user", content=self.input)]
        items: list[InputItem] = []
        for i, raw in enumerate(self.input):
            if not isinstance(raw, dict):
                raise ApiError(400, f"Invalid value for 'input.{i}': an item must be an object, got {short_json(raw)}",
                               param=f"input.{i}", code="invalid_value")
            kind = raw.get("type", "message")  # a message may leave its type out (openai's EasyInputMessage)
            model = _ITEMS.get(kind) if isinstance(kind, str) else None
            if model is None:
                raise ApiError(400, f"Invalid value for 'input.{i}.type': this server reads message, function_call, "
                               f"function_call_output and reasoning items, got {short_json(kind)} (it keeps no "
                               "stored items and runs no hosted tools)", param=f"input.{i}.type", code="invalid_value")
            try:
                items.append(model.model_validate(raw))  # type: ignore[arg-type]
            except ValidationError as err:
                raise validation_error(err, prefix=f"input.{i}") from None
        return items


def parse_responses(body: bytes) -> tuple[ResponsesRequest, ChatRequest, list[str]]:
    """The Responses request in `body`, the chat request it asks this server for, and for each of that request's
    messages where it came from in the Responses request (`instructions` or `input.N`, for errors)."""
    try:
        request = ResponsesRequest.model_validate_json(body)
    except ValidationError as err:
        raise validation_error(err) from None
    for name, neutral in UNSUPPORTED_FIELDS.items():
        value = getattr(request, name)
        if value not in neutral:
            why = _WHY.get(name, "this server does not support it")
            raise ApiError(400, f"{name}: {why}; leave it out", param=name, code="unsupported_parameter")
    if "message.output_text.logprobs" in (request.include or ()):
        raise ApiError(400, "include: this server does not give log probabilities "
                       "('message.output_text.logprobs'); leave it out", param="include", code="unsupported_parameter")
    messages, origins = _messages(request)
    if len(messages) > MAX_MESSAGES:
        raise ApiError(400, f"input: {len(messages) - 1} items besides the instructions; at most {MAX_MESSAGES - 1} "
                       "are allowed with instructions", param="input", code="invalid_value")
    chat: dict[str, Any] = {"model": request.model, "messages": messages, "stream": bool(request.stream)}
    if request.tools is not None:
        chat["tools"] = [{"type": "function", "function": t.function()} for t in request.tools]
    if isinstance(request.tool_choice, FunctionChoice):
        chat["tool_choice"] = {"type": "function", "function": {"name": request.tool_choice.name}}
    elif request.tool_choice is not None:
        chat["tool_choice"] = request.tool_choice
    if request.parallel_tool_calls is not None:
        chat["parallel_tool_calls"] = request.parallel_tool_calls
    for ours, theirs in (("max_output_tokens", "max_completion_tokens"), ("temperature", "temperature"),
                         ("top_p", "top_p")):
        if getattr(request, ours) is not None:
            chat[theirs] = getattr(request, ours)
    fmt = request.text.format if request.text is not None else None
    if isinstance(fmt, JsonSchemaText):
        chat["response_format"] = {"type": "json_schema",
                                   "json_schema": fmt.model_dump(exclude={"type"}, exclude_none=True, by_alias=True)}
    elif fmt is not None and fmt.type == "json_object":
        chat["response_format"] = {"type": "json_object"}
    options = request.toolcall.model_dump(exclude_none=True) if request.toolcall is not None else {}
    if request.max_tool_calls is not None:
        if request.tools:
            raise ApiError(400, "max_tool_calls limits the calls of the server's own tools, and this server can limit "
                           "them only together with the calls of the request's functions; leave it out, or send "
                           '{"toolcall": {"max_calls": N}} for all calls of the reply', param="max_tool_calls",
                           code="unsupported_parameter")
        options["max_calls"] = min(request.max_tool_calls, options.get("max_calls", 32))
    if options:
        chat["toolcall"] = options
    try:
        parsed = ChatRequest.model_validate(chat)
    except ValidationError as err:  # what the Responses models above did not already hold
        raise in_responses_terms(validation_error(err), origins) from None
    try:
        check_fields(parsed)
        check_history(parsed)
    except ApiError as err:
        raise in_responses_terms(err, origins) from None
    return request, parsed, origins


def _messages(request: ResponsesRequest) -> tuple[list[dict[str, Any]], list[str]]:
    """The chat messages the input's items say, in order, and which items each came from. The assistant's items
    between two others are one assistant message where they can be one reply, as this server writes a reply (a
    reasoning item, a message item, then function calls): a second message or reasoning item, or one after the
    calls, is the next reply."""
    messages: list[dict[str, Any]] = []
    origins: list[str] = []
    if request.instructions is not None:
        messages.append({"role": "system", "content": request.instructions})
        origins.append("instructions")
    turn: dict[str, Any] | None = None  # the assistant message being gathered
    kinds: set[str] = set()  # the kinds of item in it
    first = 0
    for i, item in enumerate(request.items()):
        if isinstance(item, MessageItem) and item.role != "assistant":
            turn = None
            messages.append({"role": item.role, "content": item.text()})
            origins.append(f"input.{i}")
            continue
        if isinstance(item, FunctionCallOutputItem):
            turn = None
            messages.append({"role": "tool", "tool_call_id": item.call_id, "content": item.text()})
            origins.append(f"input.{i}")
            continue
        kind = "call" if isinstance(item, FunctionCallItem) else item.type
        if turn is not None and kind != "call" and (kind in kinds or "call" in kinds):
            turn = None
        if turn is None:
            turn, kinds, first = {"role": "assistant", "content": None}, set(), i
            messages.append(turn)
            origins.append("")
        kinds.add(kind)
        origins[-1] = f"input.{first}" if first == i else f"input.{first} to input.{i}"
        if isinstance(item, MessageItem):
            turn["content"] = item.text()
        elif isinstance(item, ReasoningItem):
            turn["reasoning_content"] = item.text()
        else:
            assert isinstance(item, FunctionCallItem)
            turn.setdefault("tool_calls", []).append({"id": item.call_id, "type": "function",
                                                      "function": {"name": item.name, "arguments": item.arguments}})
    return messages, origins


#: Whole phrases of the chat request's errors (they quote the chat API's own field names), said the Responses way.
_PHRASES = (
    ("an assistant message with 'tool_calls' must be followed by tool messages answering each 'tool_call_id'",
     "function_call items must be followed by function_call_output items answering each 'call_id'"),
    ("the calls of an assistant message each need an id of their own",
     "the function_call items of a turn each need a call_id of their own"),
    ("a tool message must answer a tool call of the assistant message before it",
     "a function_call_output item must answer a function_call item before it"),
    ("tool calls without a tool message answering them",
     "function calls without a function_call_output item answering them"),
    ("with an assistant reply to continue after a user message",
     "with assistant items to continue after a user message"),
    ("your messages resulted in", "your input resulted in"), ("in the messages,", "in the input,"),
    ("the length of the messages", "the length of the input"))
#: Chat request words outside quotes, and what the Responses API calls them.
_RENAMED = (("max_completion_tokens", "max_output_tokens"), ("max_tokens", "max_output_tokens"),
            ("response_format.json_schema", "text.format"), ("response_format", "text.format"),
            ("function.arguments", "arguments"), ("tool call id", "call_id"), ("tool calls", "function calls"),
            ("tool call", "function call"))
#: A value an error quotes (a repr or JSON string: a name, an id the client sent), which is left as it was written;
#: an apostrophe in a word ("model's") opens none.
_QUOTED = re.compile(r"""(?<!\w)'(?:[^'\\\n]|\\.)*'(?!\w)|(?<!\w)"(?:[^"\\\n]|\\.)*"(?!\w)""")


def in_responses_terms(err: ApiError, origins: list[str]) -> ApiError:
    """A chat request's error, said of the Responses request it came from (messages[3] is input.2, response_format
    is text.format); what it quotes of the request (names, ids) is left as written."""
    def place(match: re.Match[str]) -> str:
        k = int(match.group(1))
        return origins[k] if k < len(origins) else match.group(0)

    def renamed(text: str) -> str:
        text = re.sub(r"(?<![\w.])messages(?:\[|\.)(\d+)\]?", place, text)
        text = re.sub(r"(?<![\w.])tools(?:\[(\d+)\]|\.(\d+)\.function\b)", lambda m: f"tools.{m[1] or m[2]}", text)
        for old, new in _RENAMED:
            text = re.sub(rf"(?<![\w.]){re.escape(old)}(?!\w)", new, text)
        return re.sub(r"(?<![\w.])messages(?=:|$)", "input", text)

    def said(text: str) -> str:
        for old, new in _PHRASES:
            text = text.replace(old, new)
        pieces, last = [], 0
        for quoted in _QUOTED.finditer(text):
            pieces += [renamed(text[last:quoted.start()]), quoted.group(0)]
            last = quoted.end()
        return "".join([*pieces, renamed(text[last:])])

    param = None if err.param is None else renamed(err.param)
    return ApiError(err.status, said(err.message), param=param, code=err.code, kind=err.kind)


# --- the response ---------------------------------------------------------------------------------------------------
def response_id() -> str:
    return "resp_" + uuid.uuid4().hex


def _item_id(prefix: str) -> str:
    return prefix + "_" + uuid.uuid4().hex


class OutputItems:
    """A reply's events as the Response's output items, and the stream events that build them, in order.

    The text the reply shows is one message item and the thoughts a dialect writes in a field of their own (MOSS) one
    reasoning item, each opened at its first text and open together (a second round's thoughts may come after some
    of the answer, and the answer is one text, as a chat reply's content is); each call handed to the client is a
    function_call item after them. `feed` and `finish` return the stream events; `items` is the output either way.
    """

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.runs: dict[str, dict[str, Any]] = {}  # the server's tool runs, by id (the tool_runs extension)
        self._open: dict[str, dict[str, Any]] = {}  # the message and reasoning items still written to, by type
        self._last: str | None = None  # the type of the item written to last (the one a token limit cuts)

    def feed(self, kind: str, data: Any) -> list[dict[str, Any]]:
        if kind == "text":
            return self._write("message", data)
        if kind == "reasoning":
            return self._write("reasoning", data)
        if kind == "run":
            self.runs.setdefault(data["id"], {}).update(data)
            return [{"type": "toolcall.tool_run", "run": data}]
        if kind == "tool_calls":
            return self._close("completed") + [e for call in data for e in self._call(call)]
        return []

    def finish(self, finish: str) -> list[dict[str, Any]]:
        """The events that end the output: the open items close (incomplete where the token limit cut the reply); a
        reply that wrote nothing still has its (empty) message."""
        cut = self._last if finish == "length" else None
        events = self._close("completed", cut)
        if not self.items:
            events += self._write("message", "") + self._close("completed", "message" if cut else None)
        return events

    def tool_runs(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in run.items() if k != "status"} for run in self.runs.values()]

    def _write(self, kind: str, text: str) -> list[dict[str, Any]]:
        events = [] if kind in self._open else self._start(kind)
        self._last = kind
        item = self._open[kind]
        item["content"][0]["text"] += text
        if text:
            delta = "response.output_text.delta" if kind == "message" else "response.reasoning_text.delta"
            events.append({"type": delta, "item_id": item["id"], "output_index": self.items.index(item),
                           "content_index": 0, "delta": text, **({"logprobs": []} if kind == "message" else {})})
        return events

    def _start(self, kind: str) -> list[dict[str, Any]]:
        if kind == "message":
            item: dict[str, Any] = {"type": "message", "id": _item_id("msg"), "status": "in_progress",
                                    "role": "assistant", "content": []}
            part: dict[str, Any] = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        else:
            item = {"type": "reasoning", "id": _item_id("rs"), "status": "in_progress", "summary": [], "content": []}
            part = {"type": "reasoning_text", "text": ""}
        self.items.append(item)
        self._open[kind] = item
        index = len(self.items) - 1
        events = [{"type": "response.output_item.added", "output_index": index, "item": _copy(item)},
                  {"type": "response.content_part.added", "item_id": item["id"], "output_index": index,
                   "content_index": 0, "part": dict(part)}]
        item["content"].append(part)
        return events

    def _close(self, status: str, cut: str | None = None) -> list[dict[str, Any]]:
        """Close the open items with `status`; the one of type `cut` is incomplete (the token limit struck in it)."""
        events: list[dict[str, Any]] = []
        for kind, item in sorted(self._open.items(), key=lambda pair: self.items.index(pair[1])):
            item["status"] = "incomplete" if kind == cut else status
            index = self.items.index(item)
            part = item["content"][0]
            done = "response.output_text.done" if item["type"] == "message" else "response.reasoning_text.done"
            events += [{"type": done, "item_id": item["id"], "output_index": index, "content_index": 0,
                        "text": part["text"], **({"logprobs": []} if item["type"] == "message" else {})},
                       {"type": "response.content_part.done", "item_id": item["id"], "output_index": index,
                        "content_index": 0, "part": dict(part)},
                       {"type": "response.output_item.done", "output_index": index, "item": _copy(item)}]
        self._open.clear()
        return events

    def _call(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        function = call["function"]
        item = {"type": "function_call", "id": _item_id("fc"), "call_id": call["id"], "name": function["name"],
                "arguments": "", "status": "in_progress"}
        self.items.append(item)
        index = len(self.items) - 1
        events = [{"type": "response.output_item.added", "output_index": index, "item": dict(item)}]
        for piece in split_arguments(function["arguments"]):
            events.append({"type": "response.function_call_arguments.delta", "item_id": item["id"],
                           "output_index": index, "delta": piece})
        item.update(arguments=function["arguments"], status="completed")
        events += [{"type": "response.function_call_arguments.done", "item_id": item["id"], "output_index": index,
                    "name": item["name"], "arguments": item["arguments"]},
                   {"type": "response.output_item.done", "output_index": index, "item": dict(item)}]
        return events


def _copy(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "content": [dict(p) for p in item["content"]]}


def response_body(request: ResponsesRequest, ident: str, created: int, *, finish: str | None = None,
                  output: list[dict[str, Any]] | None = None, usage: dict[str, Any] | None = None,
                  error: dict[str, Any] | None = None, tool_runs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The Response object: the request's settings as this server applied them, the output and the usage (a chat
    usage body, renamed the Responses way). Its status follows from the reply's finish reason (None: still running)
    or the error that ended it; a reply the token limit cut is incomplete."""
    status = ("failed" if error is not None else "in_progress" if finish is None
              else "incomplete" if finish == "length" else "completed")
    fmt: dict[str, Any] = {"type": "text"}
    if request.text is not None and request.text.format is not None:
        fmt = request.text.format.model_dump(exclude_none=True, by_alias=True)
    choice: Any = request.tool_choice or "auto"
    body: dict[str, Any] = {
        "id": ident, "object": "response", "created_at": created, "status": status, "model": request.model,
        "output": output or [], "error": error,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": request.instructions, "max_output_tokens": request.max_output_tokens,
        "max_tool_calls": request.max_tool_calls, "metadata": request.metadata or {},
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "temperature": request.temperature, "top_p": request.top_p,
        "tool_choice": choice.model_dump() if isinstance(choice, FunctionChoice) else choice,
        "tools": [t.model_dump(exclude_none=True, by_alias=True) for t in request.tools or ()],
        "text": {"format": fmt}, "truncation": "disabled", "store": False,
        "previous_response_id": None, "reasoning": {"effort": None, "summary": None}, "background": False,
        "usage": None if usage is None else {
            "input_tokens": usage["prompt_tokens"],
            "input_tokens_details": {"cached_tokens": usage["prompt_tokens_details"]["cached_tokens"],
                                     "cache_write_tokens": 0},
            "output_tokens": usage["completion_tokens"], "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage["total_tokens"]},
    }
    if tool_runs is not None:
        body["tool_runs"] = tool_runs
    return body
