"""Rendering and parsing single calls in the bracket form, through toolcall.dialects when it is installed."""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from toolcall.calls import ToolCall


@lru_cache(maxsize=1)
def _dialect() -> Any | None:
    try:
        from toolcall.dialects import get_dialect
    except ImportError:
        return None
    try:
        return get_dialect("toolformer", spelling="bracket")
    except Exception:  # noqa: BLE001 - a half-built dialect package: fall back to the local form
        return None


# Tools whose few-shot demonstrations (prompts.py, paper App. A.2) write the argument unquoted.
BARE_ARG_TOOLS = frozenset({"calculator", "solve"})


def render_call(call: ToolCall) -> str:
    """The canonical bracket form `[Tool(args) -> result]` (or `[Tool(args)]` when result is None)."""
    dialect = _dialect()
    if dialect is not None:
        if len(call.args) == 1 and call.tool.lower() in BARE_ARG_TOOLS:
            # An expression is written bare, as the demonstrations write it (`[Calculator(1,240 + 1,560)]`), when it
            # parses back to the same call; the dialect's canonical form would quote it ("1,240 + 1,560"), which the
            # model then sees (prefix when scoring, corpus when training) in a form it was never shown.
            tail = f" -> {call.result}" if call.result is not None else ""
            bare = f"[{call.tool}({call.args[0]}){tail}]"
            back = parse_call(bare)
            if back is not None and back.tool == call.tool and tuple(back.args) == tuple(call.args) and back.result == call.result:
                return bare
        return str(dialect.render_call(call))
    args = ", ".join(str(a) for a in call.args)
    tail = f" -> {call.result}" if call.result is not None else ""
    return f"[{call.tool}({args}){tail}]"


_SIMPLE = re.compile(r"^\s*\[\s*([A-Za-z_][\w.]*)\s*\((.*)\)\s*(?:(?:->|→)(.*))?\]\s*$", re.S)


def parse_call(text: str) -> ToolCall | None:
    """The single call that `text` (e.g. `[Calculator(400 / 1400)]`) consists of, or None when it is not one."""
    dialect = _dialect()
    if dialect is not None:
        parsed = dialect.parse(text)
        if len(parsed.calls) != 1 or parsed.issues:
            return None
        return parsed.calls[0]
    match = _SIMPLE.match(text)
    if not match:
        return None
    body = match.group(2).strip()
    args = tuple(a.strip().strip("\"'") for a in body.split(",")) if body and match.group(1).lower() != "calculator" else ((body,) if body else ())
    result = match.group(3).strip() if match.group(3) is not None else None
    return ToolCall(match.group(1), args, result, (0, len(text)))
