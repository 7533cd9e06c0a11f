"""OpenAI messages as the model's conversation: tool calls a client answered are written back in the dialect's form."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..binding import positional_arguments
from ..calls import KeywordArgs, PendingCalls, ToolCall
from ..dialects.base import CALL_NAME, defuse
from ..errors import ConfigError, ToolArgumentError
from ..specs import ToolSpecs
from .handoffs import HandedReply, HandoffMemory, MessageDigest
from .protocol import ApiError, Message

if TYPE_CHECKING:
    from ..dialects.base import Dialect


@dataclass
class Conversation:
    """What the prompt is made of: the history, the last user message, and the assistant text to continue."""

    question: str
    history: list[dict[str, str]]
    tail: str = ""
    answered: int = 0  # tail[:answered] ends with the client's calls and their results: no call is open there
    digest: str = ""   # of the messages (toolcall.server.handoffs.MessageDigest)


@dataclass
class _OpenCalls:
    """The calls of one assistant message, waiting for the tool messages that answer them."""

    calls: list[tuple[str, ToolCall]] = field(default_factory=list)  # (tool_call_id, call) in the message's order
    results: dict[str, str] = field(default_factory=dict)
    ids: set[str] = field(default_factory=set)   # the calls' ids: a message of 12,000 calls was read in quadratic time
    # The reply as the model wrote it, when the server remembers it, and its calls awaiting results.
    remembered: tuple[HandedReply, PendingCalls] | None = None


def _call(dialect: "Dialect", name: str, arguments: str, client: ToolSpecs, where: str, call_id: str) -> ToolCall:
    """A client's tool call as the dialect writes calls: named arguments, or positional in the schema's order (for a
    function this request no longer offers, as OpenAI takes one in the history: in the order the arguments are
    written)."""
    spec = client.find(name)
    if spec is None and not dialect.named_arguments and not CALL_NAME.fullmatch(name):
        raise ApiError(400, f"{where}: tool call {call_id!r} names {name!r}, which cannot be written in a "
                       f"{dialect.name} call (letters, digits and _, not starting with a digit)", param="messages")
    try:
        data = json.loads(arguments or "{}")
        # Nested JSON can carry what the body's own reader refuses: a lone surrogate (written \ud800 in the
        # arguments' own JSON), which no tokenizer can encode.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, f"{where}: function.arguments of tool call {call_id!r} holds a lone surrogate "
                       "(\\ud800-\\udfff), which is no character", param="messages") from None
    except ValueError:
        raise ApiError(400, f"{where}: function.arguments of tool call {call_id!r} is not valid JSON",
                       param="messages") from None
    except RecursionError:
        raise ApiError(400, f"{where}: function.arguments of tool call {call_id!r} nests too deeply",
                       param="messages") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"{where}: function.arguments of tool call {call_id!r} must be a JSON object",
                       param="messages")
    tool = spec.name if spec is not None else name
    if dialect.named_arguments:
        return ToolCall(tool, KeywordArgs(data), id=call_id)
    parameters = spec.parameters if spec is not None else {"type": "object", "properties": {k: {} for k in data}}
    try:
        args = positional_arguments(data, parameters, tool=tool)
    except ToolArgumentError as err:
        raise ApiError(400, f"{where}: tool call {call_id!r}: {err}", param="messages") from None
    return ToolCall(tool, args, id=call_id)


def _write_back(dialect: "Dialect", text: str, group: _OpenCalls, start: int = 0) -> tuple[str, int]:
    """`text` followed by the group's calls and their results, as the model would have written and been given them,
    and where a later look at the text may start (`Dialect.pending_from`; `start` is where this one may, 0 for a text
    no look has read): each look at the whole turn made a history of many calls quadratic (1,023 calls: 27 s)."""
    calls = [c for _, c in group.calls]
    results = [group.results[i] for i, _ in group.calls]
    try:
        batches = [(calls, results)] if len(calls) == 1 or dialect.write_calls(calls) else []
    except ConfigError:  # the dialect pauses after every call (Toolformer): one at a time
        batches = [([c], [r]) for c, r in zip(calls, results)]
    for batch, answers in batches:
        separator = "" if not text or text[-1].isspace() else (" " if dialect.one_line_calls else "\n")
        text += separator + dialect.write_calls(batch)
        pending, start = dialect.pending_from(text, start)
        if pending is None or len(pending.calls) != len(batch) or pending.malformed:
            raise ApiError(400, f"messages: the tool calls {', '.join(c.tool for c in batch)} cannot be written back "
                           f"in the {dialect.name} dialect", param="messages")
        text += dialect.close(pending, answers)
    return text, start


def _recall(memory: HandoffMemory | None, dialect: "Dialect", m: Message, before: str,
            context: str) -> tuple[HandedReply, PendingCalls] | None:
    """The reply this assistant message shows, as the model wrote it, if the server remembers it: made after the
    same messages (`context`, their digest), shown as this message shows it (content, calls, reasoning), continuing
    `before` (the turn's text so far), with the same calls at its end."""
    if memory is None or not m.tool_calls:
        return None
    reply = memory.recall([tc.id for tc in m.tool_calls], m.text())
    if (reply is None or reply.context != context or not reply.text.startswith(before)
            or [(i, n, _json_or_text(a)) for i, n, a in reply.tool_calls]
            != [(tc.id, tc.function.name, _json_or_text(tc.function.arguments)) for tc in m.tool_calls]
            or m.reasoning_content not in (None, reply.reasoning)):
        return None
    pending = dialect.pending(reply.text)
    if pending is None or pending.malformed or [c.span[0] for c in pending.calls] != [c.start for c in reply.calls]:
        return None
    return reply, pending


def _json_or_text(arguments: str) -> Any:
    """A call's arguments as the value they write, so the same arguments sent back re-serialised (the AI SDK writes
    `{"city":"Paris"}` where the server wrote `{"city": "Paris"}`) are the same; text that is no JSON, as written."""
    try:
        return ("json", json.loads(arguments))
    except (ValueError, RecursionError):
        return ("text", arguments)


def conversation(messages: Sequence[Message], dialect: "Dialect", client: ToolSpecs,
                 special_texts: tuple[str, ...] = (), memory: HandoffMemory | None = None) -> Conversation:
    """The conversation from OpenAI messages.

    An assistant message with tool_calls, the tool messages answering them and the assistant message after them are
    one reply to the model: the calls go back into its text with their results, in the dialect's own form (the same
    text the loop writes when it runs a call itself). When the messages end inside such a reply (the client just
    sent results), that text is what the model continues.

    `special_texts` (the tokenizer's, `Backend.special_texts`) are broken wherever a message holds one, as OpenAI
    reads them in messages as plain text: a tool result quoting `<|im_end|>` would otherwise end a turn in the
    model's context; a result's dialect markup is broken too, as in every result (`Dialect.close`).

    An assistant message that `memory` holds (a reply of this server that ended with these calls, shown as the
    message says) is continued from the text the model wrote, server tools' calls and results included.
    """
    turns: list[dict[str, str]] = []
    answered = 0  # how much of the last turn's text ends with written-back results (0: none)
    group: _OpenCalls | None = None
    continuing = False  # the last assistant turn got its results: the next assistant message continues it
    look_from = 0  # where the next look at the last assistant turn's text may start (_write_back)
    digest = MessageDigest()  # of the messages before the one read

    def text(m: Message) -> str:
        return defuse(m.text(), special_texts)

    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if group is not None and m.role != "tool":
            missing = [cid for cid, _ in group.calls if cid not in group.results]
            if missing:
                raise ApiError(400, f"{where}: an assistant message with 'tool_calls' must be followed by tool "
                               f"messages answering each 'tool_call_id' (missing: {', '.join(missing)})",
                               param="messages")
        if m.role in ("system", "developer", "user"):
            turns.append({"role": "system" if m.role == "developer" else m.role, "content": text(m)})
            continuing, answered = False, 0
        elif m.role == "assistant":
            joined = continuing and bool(turns) and turns[-1]["role"] == "assistant"
            remembered = _recall(memory, dialect, m, turns[-1]["content"] if joined else "", digest.hexdigest())
            if remembered is not None:
                if joined:
                    turns[-1]["content"] = remembered[0].text
                else:
                    turns.append({"role": "assistant", "content": remembered[0].text})
                    answered = 0
                look_from = 0
            elif joined:
                turns[-1]["content"] += text(m)
            else:
                content = text(m)
                if m.tool_calls and dialect.thoughts_end and dialect.thoughts_end not in content:
                    # The dialect's reply begins with a thoughts field (MOSS) that the client read as reasoning.
                    thoughts = defuse(m.reasoning_content or "", special_texts + dialect.reserved)
                    content = f" {thoughts.strip()}{dialect.thoughts_end}\n{content.lstrip()}"
                turns.append({"role": "assistant", "content": content})
                answered, look_from = 0, 0
            continuing = False
            if m.tool_calls:
                group = _OpenCalls(remembered=remembered)
                for tc in m.tool_calls:
                    if tc.id in group.ids:   # the same id in another turn is another call
                        raise ApiError(400, f"{where}: tool call id {tc.id!r} is used twice there; the calls of an "
                                       "assistant message each need an id of their own", param="messages")
                    group.ids.add(tc.id)
                    group.calls.append((tc.id, _call(dialect, tc.function.name, tc.function.arguments, client,
                                                     where, tc.id)))
        else:  # tool
            if group is None or m.tool_call_id not in group.ids:
                raise ApiError(400, f"{where}: a tool message must answer a tool call of the assistant message before "
                               f"it; no open call has id {m.tool_call_id!r}", param="messages")
            if m.tool_call_id in group.results:
                raise ApiError(400, f"{where}: tool call {m.tool_call_id!r} is answered twice", param="messages")
            group.results[m.tool_call_id] = text(m)
            if len(group.results) == len(group.calls):
                if group.remembered is not None:
                    reply, pending = group.remembered
                    turns[-1]["content"] = reply.text + dialect.close(pending, reply.results(group.results))
                    look_from = 0
                else:
                    turns[-1]["content"], look_from = _write_back(dialect, turns[-1]["content"], group, look_from)
                answered = len(turns[-1]["content"])
                group, continuing = None, True
        digest.add(m.model_dump(mode="json", exclude_none=True))
    if group is not None:
        missing = [cid for cid, _ in group.calls if cid not in group.results]
        raise ApiError(400, f"messages: tool calls without a tool message answering them: {', '.join(missing)}",
                       param="messages")
    tail, tail_answered = "", 0
    if turns and turns[-1]["role"] == "assistant":
        tail, tail_answered = turns.pop()["content"], answered
    if not turns or turns[-1]["role"] != "user":
        raise ApiError(400, "messages: the conversation must end with a user message (or with an assistant reply "
                       "to continue after a user message)", param="messages")
    question = turns.pop()["content"]
    return Conversation(question, turns, tail, tail_answered, digest.hexdigest())


def json_arguments(arguments: dict[str, Any] | None) -> str:
    """A call's bound arguments as the JSON text OpenAI's tool_calls carry."""
    return json.dumps(arguments or {}, ensure_ascii=False)
