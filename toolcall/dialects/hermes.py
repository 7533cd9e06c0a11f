"""The Hermes dialect (Hermes 2 Pro/3, Qwen2.5, Qwen3): `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`."""
from __future__ import annotations

import re
from collections.abc import Sequence

from lark import Lark, Tree
from lark.exceptions import UnexpectedInput

from ..calls import SyntaxIssue, ToolCall
from .base import load_parser, rule
from .structured import (
    Fault, Group, ResultBlock, StructuredDialect, call_from_object, dump, keyword_args, make_issue, parse_prefix,
)

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
RESPONSE_OPEN = "<tool_response>"
RESPONSE_CLOSE = "</tool_response>"
_RESPONSE = re.compile(r"<tool_response>(.*?)</tool_response>", re.S)


def _parser() -> Lark:
    return load_parser("hermes.lark", ("start",))


class HermesDialect(StructuredDialect):
    """Hermes-style calls: each call a JSON object in `<tool_call>` tags, parallel calls as blocks in a row.

    A result is a `<tool_response>` block (the format's own): `close` writes, for each call in order,
    `<tool_response>\\n{result}\\n</tool_response>` on lines of their own after the call, which is what the model's
    chat template writes for a `role: tool` message (Qwen puts it in a user turn; here it follows in the same
    reply). A `<tool_response>` answers the first unanswered call of the run of `<tool_call>` blocks before it.
    A JSON array of call objects inside one tag is read as several calls; a call object needs "name" and takes
    "arguments" (or "parameters"): a JSON object, or a string holding one. A last block whose JSON is whole but whose
    closing tag is missing (the model ended its reply there) is a call; one whose JSON is cut off is an issue.
    """

    name = "hermes"
    call_markers = (CALL_CLOSE,)
    end_markers = ()
    open_marker = CALL_OPEN

    def _groups(self, text: str, issues: list[SyntaxIssue], failed: list[tuple[int, int]]) -> tuple[list[Group], bool]:
        parser = _parser()
        groups: list[Group] = []
        cut = False
        pos = 0
        while (start := text.find(CALL_OPEN, pos)) >= 0:
            got = self._candidate(parser, text, start, (CALL_CLOSE,), "a <tool_call> block", issues, failed)
            cut = got is False
            style = ""
            if got is False and (whole := self._unclosed(parser, text, start)) is not None:
                # The JSON is whole and only the closing tag is missing at the end (the model stopped there):
                # a call, as the format's other readers take it, but not final while text may still come.
                issues.pop()
                failed.pop()
                got, cut, style = whole, False, "unclosed"
            if not isinstance(got, tuple):
                pos = start + len(CALL_OPEN)
                continue
            tree, end = got
            payload = next(c for c in tree.children if isinstance(c, Tree))
            objects = [payload] if rule(payload) == "object" else [c for c in payload.children if isinstance(c, Tree)]
            calls: list[ToolCall] = []
            fault: Fault | None = None
            for obj in objects:
                if rule(obj) != "object":
                    fault = Fault(start + obj.meta.start_pos, "a <tool_call> array holds call objects only")
                    break
                span = (start, end) if obj is payload else (start + obj.meta.start_pos, start + obj.meta.end_pos)
                made = call_from_object(obj, start, span)
                if isinstance(made, Fault):
                    fault = made
                    break
                calls.append(made)
            if fault is not None or not calls:
                fault = fault or Fault(start, "a <tool_call> block holds no call")
                issues.append(make_issue(text, fault.pos, fault.message + " in a <tool_call> block"))
                failed.append((start, end))
            else:
                groups.append(Group((start, end), calls, style))
            pos = end
        return groups, cut

    @staticmethod
    def _unclosed(parser: Lark, text: str, start: int) -> tuple[Tree, int] | None:
        """The block starting at `start` read as if "</tool_call>" followed the text, when that makes it whole; its
        end is then the end of the JSON."""
        body_end = len(text.rstrip())
        try:
            tree, _ = parse_prefix(parser, text[:body_end] + CALL_CLOSE, start, (CALL_CLOSE,))
        except UnexpectedInput:
            return None
        return tree, body_end

    def settled(self, text: str) -> int:
        """Up to the end of the last closed block (an unclosed one at the end may still get its closing tag)."""
        closed = [g for g in self.scan(text).groups if g.style != "unclosed"]
        return closed[-1].span[1] if closed else 0

    def _result_blocks(self, text: str) -> list[ResultBlock]:
        return [ResultBlock(m.span(), (m.start(), m.start(1)), m.span(1), m.group(1).strip())
                for m in _RESPONSE.finditer(text)]

    def _render_group(self, calls: Sequence[ToolCall], style: str) -> str:
        return "\n".join(f"{CALL_OPEN}\n{dump({'name': c.tool, 'arguments': keyword_args(c, self.name)})}\n{CALL_CLOSE}"
                         for c in calls)

    def _render_results(self, calls: Sequence[ToolCall], results: Sequence[str]) -> str:
        return "".join(f"\n{RESPONSE_OPEN}\n{r}\n{RESPONSE_CLOSE}" for r in results) + "\n"
