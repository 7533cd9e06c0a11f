"""What the dialects' prompts are made of: their data files, a user's override file, and how a tool is named."""
from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError
from ..specs import ToolSpec

#: A file that replaces a dialect's instruction text, or None for the dialect's own.
PromptSource = str | os.PathLike[str] | None


class ChatTemplate(Protocol):
    """Renders chat messages with the model's chat template, e.g. a bound `Backend.chat_prompt`; `tools` are JSON
    schemas for a template that shows tools its own way."""

    def __call__(self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True,
                 tools: Sequence[dict[str, Any]] | None = None) -> str: ...


def read_data(name: str) -> str:
    """A data file of the dialects (toolcall/dialects/prompts), read relative to the package, never the working directory."""
    return resources.files("toolcall.dialects").joinpath("prompts", name).read_text(encoding="utf-8")


@cache
def read_json(name: str) -> dict[str, Any]:
    return dict(json.loads(read_data(name)))


def read_override(path: PromptSource) -> str | None:
    """The text of a user's prompt file, or None when no file is given."""
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"prompt file {path} could not be read: {err}") from err


def signature(t: ToolSpec) -> str:
    """`name(param, ...)` from the tool's JSON schema: how a prompt names a tool it has no text for."""
    return f"{t.name}({', '.join(t.parameters.get('properties', {}))})"


def first_line(text: str) -> str:
    stripped = text.strip()
    return stripped.splitlines()[0] if stripped else ""


def builtin_key(names: Sequence[str], table: Mapping[str, Any]) -> str | None:
    """The key of `table` that one of `names` spells, in any case (Calculator is also Calculate); None for a custom tool."""
    for name in names:
        for key in table:
            if key.lower() == name.lower():
                return key
    return None


def by_relevance(question: str, per_tool: Sequence[Sequence[tuple[str, str]]], few_shot: int | bool = True
                 ) -> list[tuple[str, str]]:
    """Worked examples (user, assistant), each tool's together and in its own order, the tool whose example requests
    share the most content words with `question` last, nearest it; ties keep the offered order. `few_shot` picks the
    examples first, as before (the first K, in the offered order).

    A small model calls the tool of the examples just before the question. Offered calculator, calendar and WikiSearch
    (toolformer-smollm2, held-out template questions): grouped in the offered order, the Calendar's and WikiSearch's
    examples last, it called on 84 of 100 math problems (50% right; 62% with the calculator alone); taken in turn, on
    all 100 (62%) but with Calculator calls for 10 of 24 date questions (16.7%, grouped 58.3%); placed this way, 98
    calls and 62% on math, 58.3% on dates. One tool's prompt is the same for every question (a prefix cache serves it)."""
    flat = [(tool, example) for tool, examples in enumerate(per_tool) for example in examples]
    flat = flat[:shots(few_shot, len(flat))]
    asked = _words(question)

    def relevance(tool: int) -> int:
        """How many of the question's content words the tool's example requests use (any of them)."""
        return len(asked & set().union(*(_words(user) for user, _ in per_tool[tool])))

    order = sorted(range(len(per_tool)), key=relevance)
    return [example for tool in order for which, example in flat if which == tool]


# Words any request may use, whatever it asks for.
_GLUE = frozenset([
    "a", "an", "the", "is", "are", "was", "were", "be", "it", "its", "this", "that", "of", "in", "on", "at", "to", "for",
    "from", "by", "with", "and", "or", "but", "as", "what", "which", "who", "where", "when", "how", "do", "does", "did",
    "i", "you", "we", "he", "she", "they", "me", "my", "your", "our",
])


def _words(text: str) -> set[str]:
    """Lower-case content words, every number as one word "0" (24 and 15 are alike: both ask for arithmetic)."""
    found = re.findall(r"[a-z]+|\d[\d,.]*", text.lower())
    return {"0" if word[0].isdigit() else word for word in found if word not in _GLUE}


def shots(few_shot: int | bool, available: int) -> int:
    """How many worked examples a prompt shows: True all of them, False none, K the first K."""
    if isinstance(few_shot, bool):
        return available if few_shot else 0
    return max(0, min(int(few_shot), available))
