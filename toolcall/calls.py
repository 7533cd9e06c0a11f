"""The parse result types: a tool call with its span, a syntax issue, a parsed text, the calls awaiting results."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolCall:
    """One call found in a text: tool name, argument values (quotes removed), result, character span."""

    tool: str
    args: tuple[Any, ...] = ()
    result: str | None = None
    span: tuple[int, int] = (0, 0)

    def with_result(self, result: str | None) -> "ToolCall":
        return ToolCall(self.tool, self.args, result, self.span)


@dataclass(frozen=True)
class SyntaxIssue:
    """A span that looked like a call but did not parse: where, and what was expected."""

    message: str
    line: int
    column: int
    pos: int
    expected: tuple[str, ...] = ()
    context: str = ""

    def __str__(self) -> str:
        want = f"; expected one of: {', '.join(self.expected)}" if self.expected else ""
        return f"{self.line}:{self.column}: {self.message}{want}"


@dataclass(frozen=True)
class Parsed:
    """A text and the calls (and malformed spans) found in it; `render(parsed)` gives `text` back."""

    text: str
    calls: list[ToolCall]
    dialect: str
    issues: list[SyntaxIssue] = field(default_factory=list)
    # The calls exactly as parsed, so render can copy unchanged spans verbatim.
    original_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class PendingCalls:
    """The calls awaiting results where a text stops at a call marker, found in one parse.

    `issues` is non-empty when the pending call is malformed: it gets one error result instead of running.
    `closing` is the dialect's own note of how to close the call after its results (spacing, the closing
    bracket), so closing needs no second parse; only the dialect that made it reads it.
    """

    calls: tuple[ToolCall, ...] = ()
    issues: tuple[SyntaxIssue, ...] = ()
    closing: Any = None

    @property
    def malformed(self) -> bool:
        return bool(self.issues)
