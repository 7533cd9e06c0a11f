"""The pythonic dialect (Llama 3.2/4, ToolACE, BFCL): `[get_weather(city='Paris'), get_time()]`, never evaluated."""
from __future__ import annotations

import re
from collections.abc import Sequence

from lark import Lark, Token, Tree

from ..calls import KeywordArgs, SyntaxIssue, ToolCall
from .base import load_parser, rule
from .llama3_json import LlamaResults
from .structured import Group, StructuredDialect, keyword_args, py_literal, py_value

PYTHON_TAG = "<|python_tag|>"
# Where a call list may start: "[" before `name(` (dotted names too), or the python tag before such a list.
# Prose brackets ([1], [a, b], [link](url)) never match.
_CANDIDATE = re.compile(r"(?:<\|python_tag\|>\s*)?\[(?=\s*[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\s*\()")


def _parser() -> Lark:
    return load_parser("pythonic.lark", ("start",))


class PythonicDialect(LlamaResults, StructuredDialect):
    """Calls written as a Python list of keyword-argument calls with literal values, anywhere in the text.

    The list is parsed with Lark (grammars/pythonic.lark) and its literals are turned into values; nothing is
    evaluated. A positional argument or a non-literal value (a variable, an expression) is a syntax issue. Results
    are Llama's `ipython` turns (`<|start_header_id|>ipython<|end_header_id|>\\n\\n{result}<|eot_id|>`), one per call
    in order, as Llama 3.2/4's chat template writes `role: tool` messages; `close` ends the assistant turn, writes
    them, and opens the next assistant turn. The loop pauses at every "]" and runs the calls once the list closes.
    """

    name = "pythonic"
    call_markers = ("]",)
    end_markers = ()
    open_marker = ""  # "[" also opens prose brackets and lists, so it is never banned or triggered
    trailers = ("<|eot_id|>", "<|eom_id|>")
    failed_take_results = False  # "[see(above)]" in prose is an issue, not a call awaiting a result

    def _groups(self, text: str, issues: list[SyntaxIssue], failed: list[tuple[int, int]]) -> tuple[list[Group], bool]:
        parser = _parser()
        groups: list[Group] = []
        cut = False
        pos = 0
        while (match := _CANDIDATE.search(text, pos)) is not None:
            start = match.start()
            got = self._candidate(parser, text, start, ("]",), "a pythonic call list", issues, failed)
            cut = got is False
            if not isinstance(got, tuple):
                pos = match.end()
                continue
            tree, end = got
            calls = [self._call(c, start) for c in tree.children if isinstance(c, Tree) and rule(c) == "call"]
            groups.append(Group((start, end), calls, "tag" if text.startswith(PYTHON_TAG, start) else ""))
            pos = end
        return groups, cut

    @staticmethod
    def _call(tree: Tree, offset: int) -> ToolCall:
        name = ".".join(str(c) for c in tree.children if isinstance(c, Token))
        kwargs = {str(k.children[0]): py_value(k.children[1]) for k in tree.children if isinstance(k, Tree)}
        return ToolCall(name, KeywordArgs(kwargs), None, (offset + tree.meta.start_pos, offset + tree.meta.end_pos))

    def _render_group(self, calls: Sequence[ToolCall], style: str) -> str:
        body = ", ".join(f"{c.tool}({', '.join(f'{k}={py_literal(v)}' for k, v in keyword_args(c, self.name).items())})"
                         for c in calls)
        return f"{PYTHON_TAG if style == 'tag' else ''}[{body}]"
