"""Rendering and parsing single calls in the bracket form `[Tool(args) -> result]`, through the Toolformer dialect."""
from __future__ import annotations

from functools import lru_cache

from toolcall.calls import ToolCall
from toolcall.dialects.toolformer import ToolformerDialect


@lru_cache(maxsize=1)
def _dialect() -> ToolformerDialect:
    return ToolformerDialect(spelling="bracket")


def render_call(call: ToolCall) -> str:
    """The canonical bracket form `[Tool(args) -> result]` (or `[Tool(args)]` when result is None).

    A single argument is written bare when it parses back the same (`[Calculator(1,240 + 1,560)]`), as the
    demonstrations write it, so the model sees calls (prefix when scoring, corpus when training) in the form
    it was shown.
    """
    return _dialect().render_call(call)


def parse_call(text: str) -> ToolCall | None:
    """The single call that `text` (e.g. `[Calculator(400 / 1400)]`) holds, or None when it holds none, several or a broken one."""
    parsed = _dialect().parse(text)
    if len(parsed.calls) != 1 or parsed.issues:
        return None
    return parsed.calls[0]
