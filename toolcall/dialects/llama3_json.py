"""The llama3_json dialect (Llama 3.1/3.2 JSON tool calls): `{"name": "f", "parameters": {...}}`, `; `-separated."""
from __future__ import annotations

import re
from collections.abc import Sequence

from lark import Lark, Tree
from lark.exceptions import UnexpectedInput

from ..calls import SyntaxIssue, ToolCall
from .base import issue_from_error, load_parser, rule
from .structured import (
    Fault, Group, ResultBlock, StructuredDialect, call_from_object, cut_off, dump, keyword_args, make_issue,
)

PYTHON_TAG = "<|python_tag|>"
HEADER = "<|start_header_id|>{role}<|end_header_id|>\n\n"
END_OF_TURN = "<|eot_id|>"
# Llama's turn tokens: they delimit the replies (a call is a whole reply) and the ipython turns that hold results.
_TURN_TOKEN = re.compile(r"<\|start_header_id\|>[^<]*<\|end_header_id\|>|<\|eot_id\|>|<\|eom_id\|>|<\|begin_of_text\|>")
_RESULT = re.compile(r"<\|start_header_id\|>ipython<\|end_header_id\|>[ \t]*\n?[ \t]*\n?(.*?)(?=<\|eot_id\|>|<\|eom_id\|>|<\|start_header_id\|>|$)", re.S)
# A reply that means to be a JSON call: `{"name"` first (or the python tag), so a malformed one is reported.
_LOOKS_LIKE_CALL = re.compile(r'\s*(?:<\|python_tag\|>|\{\s*"name"\s*:)')


def _parser() -> Lark:
    return load_parser("llama3_json.lark", ("start",))


class LlamaResults:
    """Results as Llama writes `role: tool` messages: ipython turns, one per call, after the assistant's turn."""

    name = ""

    def _result_blocks(self, text: str) -> list[ResultBlock]:
        blocks = []
        for m in _RESULT.finditer(text):
            header_end = text.find("<|end_header_id|>", m.start()) + len("<|end_header_id|>")
            end = m.end() + (len(END_OF_TURN) if text.startswith(END_OF_TURN, m.end()) else 0)
            blocks.append(ResultBlock((m.start(), end), (m.start(), header_end), (header_end, m.end()), m.group(1).strip()))
        return blocks

    def _strip_turns(self, text: str) -> str:
        return _TURN_TOKEN.sub(" ", text)

    def _render_results(self, calls: Sequence[ToolCall], results: Sequence[str]) -> str:
        turns = "".join(f"{HEADER.format(role='ipython')}{r}{END_OF_TURN}" for r in results)
        return f"{END_OF_TURN}{turns}{HEADER.format(role='assistant')}"


class Llama3JsonDialect(LlamaResults, StructuredDialect):
    """JSON calls as Llama 3.1/3.2 write them for custom tools.

    The rule for telling a call from prose: a call is a reply that is nothing but one or more JSON objects with a
    "name" string and a "parameters" (or "arguments") object, separated by ";", optionally after `<|python_tag|>`.
    A reply is the whole text, or the stretch between Llama's turn tokens (`<|start_header_id|>…<|end_header_id|>`,
    `<|eot_id|>`, `<|eom_id|>`). So JSON inside prose, or a JSON reply that is not call-shaped, is no call; a reply
    that starts like a call (`{"name":` or the python tag) but does not parse is a syntax issue. Results are ipython
    turns, as in the pythonic dialect. The loop pauses at every "}" and runs the calls once the reply is whole.
    """

    name = "llama3_json"
    call_markers = ("}",)
    end_markers = ()
    open_marker = ""  # "{" is too common in text to ban or trigger
    trailers = ("<|eot_id|>", "<|eom_id|>")

    def _groups(self, text: str, issues: list[SyntaxIssue], failed: list[tuple[int, int]]) -> tuple[list[Group], bool]:
        parser = _parser()
        groups: list[Group] = []
        cut = False
        bounds = [0] + [p for m in _TURN_TOKEN.finditer(text) for p in m.span()] + [len(text)]
        results = [b.span for b in self._result_blocks(text)]
        for seg_start, seg_end in zip(bounds[::2], bounds[1::2]):
            segment = text[seg_start:seg_end]
            stripped = segment.strip()
            if not stripped or any(a <= seg_start < b for a, b in results):
                continue
            start = seg_start + len(segment) - len(segment.lstrip())
            end = seg_start + len(segment.rstrip())
            looks = _LOOKS_LIKE_CALL.match(segment) is not None
            if not (looks or stripped.startswith("{")):
                continue
            chunk = text[start:end]
            try:
                tree = parser.parse(chunk)
            except UnexpectedInput as err:
                if not looks:
                    continue  # prose that starts with "{": only call-like replies are reported
                issue = issue_from_error(err, parser, text, start, len(chunk), "a JSON tool call")
                issues.append(issue)
                failed.append((start, end))
                cut = seg_end == len(text) and cut_off(err, parser, text[issue.pos:end])
                continue
            cut = False
            objects = [c for c in tree.children if isinstance(c, Tree) and rule(c) == "object"]
            calls: list[ToolCall] = []
            fault: Fault | None = None
            for obj in objects:
                span = (start + obj.meta.start_pos, start + obj.meta.end_pos)
                made = call_from_object(obj, start, span, ("parameters", "arguments"), require_args=True)
                if isinstance(made, Fault):
                    fault = made
                    break
                calls.append(made)
            if fault is not None:
                if chunk.startswith(PYTHON_TAG):  # a JSON reply that is not a call (`{"name": "Bob"}`) is just a reply
                    issues.append(make_issue(text, fault.pos, fault.message + " in a JSON tool call"))
                    failed.append((start, end))
                continue
            style = "tag" if chunk.startswith(PYTHON_TAG) else ""
            groups.append(Group((start, end), calls, style))
        return groups, cut

    stream_signals = ("<|start_header_id|>", "<|eot_id|>", "<|eom_id|>")

    def settled(self, text: str) -> int:
        """Up to the last turn token: a call is a whole reply, so the reply being written may still turn into prose."""
        last = None
        for last in _TURN_TOKEN.finditer(text):
            pass
        return last.start() if last is not None else 0

    def _render_group(self, calls: Sequence[ToolCall], style: str) -> str:
        body = "; ".join(dump({"name": c.tool, "parameters": keyword_args(c, self.name)}) for c in calls)
        return f"{PYTHON_TAG if style == 'tag' else ''}{body}"
