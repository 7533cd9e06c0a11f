"""Prompts from the model's own chat template: tools handed to the template, and the dialect a template implies."""
from __future__ import annotations

import inspect
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..specs import ToolSpecs
from .prompt_data import ChatTemplate, PromptSource, read_override


class ToolMessages(Protocol):
    """What a dialect says when the chat template cannot show tools: its instruction and how a result reads."""

    def tool_instruction(self, schemas: Sequence[Mapping[str, Any]]) -> str: ...

    def tool_message_text(self, content: str) -> str: ...

# What a chat template's text says about the call format it was trained on, most specific first.
_TEMPLATE_SIGNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("pythonic", re.compile(r"\[func_name\d*\(params?_name")),
    ("mistral", re.compile(r"\[TOOL_CALLS\]|\[AVAILABLE_TOOLS\]")),
    ("hermes", re.compile(r"<tool_call>")),
    ("llama3_json", re.compile(r"<\|python_tag\|>|\"parameters\": dictionary of argument name|<\|eom_id\|>")),
)


def dialect_for_template(template: str | Mapping[str, str] | None) -> str | None:
    """The dialect a chat template was trained with, read from its text; None when it shows no known call format.

    `<tool_call>` → hermes (Hermes, Qwen2.5, Qwen3); `[TOOL_CALLS]` or `[AVAILABLE_TOOLS]` → mistral;
    `<|python_tag|>` or `<|eom_id|>` → llama3_json (Llama 3.1/3.2 JSON tools); a `[func_name1(...)]` instruction →
    pythonic (Llama 3.2/4 pythonic templates, checked first: they also carry `<|python_tag|>` for built-in tools).
    A tokenizer's named templates (a dict, e.g. Hermes 2 Pro's "default" and "tool_use") are read together.
    """
    if isinstance(template, Mapping):
        template = "\n".join(str(t) for t in template.values())
    if not template:
        return None
    for name, sign in _TEMPLATE_SIGNS:
        if sign.search(template):
            return name
    return None


def _takes_tools(chat: ChatTemplate) -> bool:
    try:
        params = inspect.signature(chat).parameters.values()
    except (TypeError, ValueError):  # builtins and C callables without a signature
        return False
    return any(p.name == "tools" or p.kind is p.VAR_KEYWORD for p in params)


def _mentions(text: str, name: str) -> int:
    return len(re.findall(r"(?<![A-Za-z0-9_])" + re.escape(name) + r"(?![A-Za-z0-9_])", text))


def render_with_tools(chat: ChatTemplate, messages: Sequence[Mapping[str, str]],
                      schemas: Sequence[Mapping[str, Any]]) -> str | None:
    """`messages` rendered by the template with the tools (`chat(messages, tools=schemas)`), or None when the
    template does not show them: every tool's name must appear more often than in the rendering without tools (a
    template without tool support, or a backend without a template, ignores them)."""
    if not _takes_tools(chat):
        return None
    with_tools = chat(list(messages), tools=[dict(s) for s in schemas])
    without = chat(list(messages))
    names = [str(s.get("function", s).get("name", "")) for s in schemas]
    if all(n and _mentions(with_tools, n) > _mentions(without, n) for n in names):
        return with_tools
    return None


def tools_prompt(dialect: ToolMessages, question: str, tools: ToolSpecs | None, chat: ChatTemplate,
                 history: Sequence[Mapping[str, str]] | None = None, instruction: PromptSource = None) -> str:
    """The conversation (history, which may hold `role: tool` results, then the question) with the tools offered:
    through the chat template when it shows them, else with the dialect's own system message listing them.

    `instruction` is a file whose text becomes the system message (`{tools}` in it is replaced by the tools' JSON
    schemas, one per line); then the template is given no tools, so they are not shown twice.
    """
    messages = [dict(m) for m in history or []] + [{"role": "user", "content": question}]
    if tools is None or len(tools) == 0:
        return chat(messages)
    schemas = [t.schema for t in tools]
    override = read_override(instruction)
    if override is None:
        rendered = render_with_tools(chat, messages, schemas)
        if rendered is not None:
            return rendered
        system = dialect.tool_instruction(schemas)
    else:
        system = override.replace("{tools}", "\n".join(json.dumps(s, ensure_ascii=False) for s in schemas))
    if messages and messages[0].get("role") == "system":
        messages[0] = {**messages[0], "content": f"{messages[0]['content']}\n\n{system}"}
    else:
        messages.insert(0, {"role": "system", "content": system})
    # Without tool support in the template, a result is shown as the dialect writes it, in a user turn.
    messages = [{"role": "user", "content": dialect.tool_message_text(m["content"])} if m.get("role") == "tool" else m
                for m in messages]
    return chat(messages)
