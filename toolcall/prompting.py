"""Prompts that teach a model the call syntax: Toolformer demos per tool, MOSS's meta-instruction, custom-tool lines."""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .calls import ToolCall
from .errors import ConfigError

if TYPE_CHECKING:
    from .backends.base import Backend
    from .dialects.base import Dialect
    from .registry import Tool, ToolRegistry

PromptSource = str | os.PathLike[str] | None


def read_prompt_file(name: str) -> str:
    """A data file of toolcall/prompts, read relative to the package (never the working directory)."""
    return resources.files("toolcall.prompts").joinpath(name).read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def _json(name: str) -> dict[str, Any]:
    return dict(json.loads(read_prompt_file(name)))


def _override(path: PromptSource) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"prompt file {path} could not be read: {err}") from err


def paper_prompt(tool_name: str, text: str, path: PromptSource = None) -> str:
    """The Toolformer data-generation prompt P(x) for one tool ("Your task is to add calls to a ... API ...")."""
    template = _override(path)
    if template is None:
        try:
            template = read_prompt_file(f"paper_{tool_name.lower()}.txt")
        except FileNotFoundError as err:
            raise ConfigError(f"no paper-style prompt for tool {tool_name!r}; pass a prompt file with an "
                              "{input} placeholder") from err
    return template.rstrip("\n").replace("{input}", text)  # ends with "Output:" for the model to continue


def signature(t: "Tool") -> str:
    """`name(param, ...)` from the tool's JSON schema."""
    return f"{t.name}({', '.join(t.parameters.get('properties', {}))})"


def _builtin_key(t: "Tool", table: dict[str, Any]) -> str | None:
    # Built-ins are found by name or alias (Calculator is also Calculate); a custom tool has no entry.
    for name in (t.name, *t.aliases):
        for key in table:
            if key.lower() == name.lower():
                return key
    return None


# --- Toolformer ----------------------------------------------------------------------------------------
def toolformer_messages(question: str, registry: "ToolRegistry", history: Sequence[dict[str, str]] | None = None,
                        few_shot: bool = True, instruction: PromptSource = None) -> list[dict[str, str]]:
    """Chat messages: a system instruction listing the tools, worked examples as earlier turns, then the question.

    A custom tool (no built-in entry) gets a line built from its signature and description, plus its example.
    `instruction` is a file replacing the instruction text; `{tools}` in it is replaced by the tool lines.
    """
    data = _json("toolformer_chat.json")
    lines: list[str] = []
    demos: list[tuple[str, str]] = []
    for t in registry:
        key = _builtin_key(t, data["tools"])
        if key is not None:
            lines.append(f"- {data['tools'][key]['line']}")
            demos += [tuple(pair) for pair in data["tools"][key]["examples"]]
            continue
        line = data["custom_line"].format(signature=signature(t), description=t.description.strip() or "no description")
        if t.example:
            line += " " + data["custom_example"].format(example=t.example.strip())
        lines.append(f"- {line}")
    template = _override(instruction) or data["instruction"]
    messages = [{"role": "system", "content": template.replace("{tools}", "\n".join(lines))}]
    if few_shot:
        for user, assistant in demos:
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    messages += list(history or [])
    messages.append({"role": "user", "content": question})
    return messages


# --- MOSS ----------------------------------------------------------------------------------------------
def moss_meta_instruction(registry: "ToolRegistry | None", path: PromptSource = None) -> str:
    """MOSS's meta-instruction with one line per plugin: enabled ones with their API, the rest disabled.

    Custom tools get an enable line of their own: `- name: enabled. API: name(params) - description`.
    """
    data = _json("moss_plugins.json")
    plugins: dict[str, dict[str, str]] = data["plugins"]
    tools = list(registry) if registry is not None else []
    enabled: dict[str, "Tool"] = {}
    custom: list["Tool"] = []
    for t in tools:
        key = _builtin_key(t, plugins)
        if key is None:
            custom.append(t)
        else:
            enabled[key] = t
    lines = []
    for key, info in plugins.items():
        state = f"enabled. API: {info['api']}" if key in enabled else "disabled."
        lines.append(f"- {info['label']}: {state}")
    for t in custom:
        description = t.description.strip().splitlines()[0] if t.description.strip() else ""
        lines.append(f"- {t.name}: enabled. API: {signature(t)}" + (f" - {description}" if description else ""))
    template = _override(path) or read_prompt_file("moss_meta.txt")
    return template.replace("{plugins}", "\n".join(lines)).rstrip("\n") + "\n"


def moss_example_turns(registry: "ToolRegistry") -> str:
    """One worked MOSS turn per enabled built-in plugin that has an example, in MOSS's layout."""
    from .dialects.moss import render_commands, render_results

    data = _json("moss_plugins.json")
    turns = []
    for t in registry:
        key = _builtin_key(t, data["examples"])
        if key is None:
            continue
        ex = data["examples"][key]
        call = ToolCall(ex["tool"], tuple(ex["args"]))
        turns.append(f"<|Human|>: {ex['human']}<eoh>\n<|Inner Thoughts|>: {ex['thoughts']}<eot>\n"
                     f"<|Commands|>: {render_commands([call])}<eoc>\n"
                     f"<|Results|>:\n{render_results([call], [ex['result']])}\n<eor>\n"
                     f"<|MOSS|>: {ex['reply']}<eom>\n")
    return "".join(turns)


def moss_prompt(question: str, registry: "ToolRegistry | None", history: Sequence[dict[str, str]] | None = None,
                few_shot: bool = True, meta: PromptSource = None) -> str:
    """Meta-instruction, worked turns, earlier turns, then `<|Human|>: question<eoh>` and the model's first field."""
    parts = [moss_meta_instruction(registry, meta)]
    if few_shot and registry is not None:
        parts.append(moss_example_turns(registry))
    for message in history or []:
        if message["role"] == "user":
            parts.append(f"<|Human|>: {message['content']}<eoh>\n")
        elif message["role"] == "assistant":
            parts.append(f"<|MOSS|>: {message['content']}<eom>\n")
    parts.append(f"<|Human|>: {question}<eoh>\n<|Inner Thoughts|>:")
    return "".join(parts)


def build_prompt(question: str, dialect: "Dialect", registry: "ToolRegistry | None", backend: "Backend",
                 history: list[dict[str, str]] | None = None, few_shot: bool = True,
                 prompt_path: PromptSource = None) -> str:
    """The full prompt for one question: MOSS's own turn layout, or the model's chat template for Toolformer.

    With no registry (or an empty one) the Toolformer prompt is the plain conversation.
    `prompt_path` overrides the instruction (Toolformer) or the meta-instruction (MOSS).
    """
    if dialect.name == "moss":
        return moss_prompt(question, registry, history, few_shot, prompt_path)
    if registry is None or len(registry) == 0:
        messages = [*(history or []), {"role": "user", "content": question}]
        return backend.chat_prompt(messages)
    return backend.chat_prompt(toolformer_messages(question, registry, history, few_shot, prompt_path))


def reply_text(dialect: "Dialect", generated: str) -> str:
    """The part of a generation a person reads: MOSS's final `<|MOSS|>:` field, or the Toolformer text as is."""
    if dialect.name == "moss":
        at = generated.rfind("<|MOSS|>:")
        body = generated[at + len("<|MOSS|>:"):] if at >= 0 else generated
        return body.replace("<eom>", "").strip()
    return generated.strip()
