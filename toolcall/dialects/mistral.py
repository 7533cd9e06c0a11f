"""The Mistral dialect: `[TOOL_CALLS][{"name": ..., "arguments": {...}, "id": ...}]` and `[TOOL_CALLS]name[ARGS]{...}`."""
from __future__ import annotations

import json
import re
from collections.abc import Sequence

from lark import Lark, Token, Tree

from ..calls import KeywordArgs, SyntaxIssue, ToolCall
from ..errors import ConfigError
from .base import load_parser, rule
from .structured import (
    Fault, Group, ResultBlock, StructuredDialect, call_from_object, call_id, dump, json_value, keyword_args, make_issue,
)

TOOL_CALLS = "[TOOL_CALLS]"
RESULTS_OPEN = "[TOOL_RESULTS]"
RESULTS_CLOSE = "[/TOOL_RESULTS]"
SPELLINGS = ("auto", "list", "args")
_RESULT = re.compile(r"\[TOOL_RESULTS\](.*?)\[/TOOL_RESULTS\]", re.S)


def _parser() -> Lark:
    return load_parser("mistral.lark", ("start",))


class MistralDialect(StructuredDialect):
    """Mistral's tool calls after the `[TOOL_CALLS]` token, in both spellings Mistral models write.

    "list" (v3 tokenizers: Mistral 7B v0.3, Mixtral, NeMo): `[TOOL_CALLS][{"name": "f", "arguments": {...}, "id":
    "a1B2c3D4e"}]`; "args" (v11 and later: Mistral Small 3.2, Magistral, Devstral): `[TOOL_CALLS]f[ARGS]{...}`, one
    `[TOOL_CALLS]` per call, optionally `[CALL_ID]id` before `[ARGS]`. `spelling` picks how new calls are written
    ("auto": a re-rendered group keeps its spelling, new calls are "list"). Call ids are 9 letters and digits; a call
    without one gets a stable id made from the call when it is written in the list spelling.

    A result is `[TOOL_RESULTS]{"content": ..., "call_id": ...}[/TOOL_RESULTS]` (the call id when the call has one) in
    the list spelling and `[TOOL_RESULTS]text[/TOOL_RESULTS]` in the args spelling; a result naming a call id answers
    that call, any other the first unanswered one before it. The loop pauses at "]" and "}" and runs the calls once
    the list or the arguments object closes.
    """

    name = "mistral"
    call_markers = ("]", "}")
    end_markers = ()
    open_marker = TOOL_CALLS

    def __init__(self, spelling: str = "auto") -> None:
        if spelling not in SPELLINGS:
            raise ConfigError(f"unknown mistral spelling {spelling!r}; valid spellings: {', '.join(SPELLINGS)}")
        self.spelling = spelling

    def __repr__(self) -> str:
        return f"MistralDialect(spelling={self.spelling!r})"

    def _groups(self, text: str, issues: list[SyntaxIssue], failed: list[tuple[int, int]]) -> tuple[list[Group], bool]:
        parser = _parser()
        groups: list[Group] = []
        cut = False
        pos = 0
        while (start := text.find(TOOL_CALLS, pos)) >= 0:
            got = self._candidate(parser, text, start, ("]", "}"), "a [TOOL_CALLS] call", issues, failed)
            cut = got is False
            if not isinstance(got, tuple):
                pos = start + len(TOOL_CALLS)
                continue
            tree, end = got
            body = next(c for c in tree.children if isinstance(c, Tree))
            made = self._calls(body, start, end)
            if isinstance(made, Fault):
                issues.append(make_issue(text, made.pos, made.message + " in a [TOOL_CALLS] call"))
                failed.append((start, end))
            else:
                groups.append(Group((start, end), made, "args" if rule(body) == "named" else "list"))
            pos = end
        return groups, cut

    @staticmethod
    def _calls(body: Tree, start: int, end: int) -> list[ToolCall] | Fault:
        if rule(body) == "named":
            tokens = {t.type.rsplit("__", 1)[-1]: str(t) for t in body.children if isinstance(t, Token)}
            args = json_value(body.children[-1])
            return [ToolCall(tokens["FUNC_NAME"], KeywordArgs(args), None, (start, end), tokens.get("CALL_ID_VALUE"))]
        calls: list[ToolCall] = []
        for obj in body.children:
            if not isinstance(obj, Tree):
                continue
            if rule(obj) != "object":
                return Fault(start + obj.meta.start_pos, "a [TOOL_CALLS] list holds call objects only")
            made = call_from_object(obj, start, (start + obj.meta.start_pos, start + obj.meta.end_pos))
            if isinstance(made, Fault):
                return made
            calls.append(made)
        if not calls:
            return Fault(start, "a [TOOL_CALLS] list holds no call")
        return calls

    def _result_blocks(self, text: str) -> list[ResultBlock]:
        blocks = []
        for m in _RESULT.finditer(text):
            body = m.group(1).strip()
            result, ident = body, None
            try:
                value = json.loads(body)
            except json.JSONDecodeError:
                value = None
            if isinstance(value, dict) and "content" in value:
                content = value["content"]
                result = content if isinstance(content, str) else dump(content)
                ident = value.get("call_id") if isinstance(value.get("call_id"), str) else None
            blocks.append(ResultBlock(m.span(), (m.start(), m.start(1)), m.span(1), result, ident))
        return blocks

    def _spelling(self, style: str) -> str:
        if self.spelling != "auto":
            return self.spelling
        return style or "list"

    def _render_group(self, calls: Sequence[ToolCall], style: str) -> str:
        if self._spelling(style) == "args":
            return "".join(f"{TOOL_CALLS}{c.tool}" + (f"[CALL_ID]{c.id}" if c.id else "")
                           + f"[ARGS]{dump(keyword_args(c, self.name))}" for c in calls)
        items = [{"name": c.tool, "arguments": keyword_args(c, self.name), "id": call_id(c, n)} for n, c in enumerate(calls)]
        return f"{TOOL_CALLS}{dump(items)}"

    def _render_results(self, calls: Sequence[ToolCall], results: Sequence[str]) -> str:
        out = []
        for call, result in zip(calls, results):
            if call.id:
                out.append(f"{RESULTS_OPEN}{dump({'content': result, 'call_id': call.id})}{RESULTS_CLOSE}")
            else:
                out.append(f"{RESULTS_OPEN}{result}{RESULTS_CLOSE}")
        return "".join(out)
