"""The Toolformer dialect: inline calls in prose, `[Tool(args) -> result]` and the `<API>` spellings."""
from __future__ import annotations

import re
from collections.abc import Sequence

from lark import Lark, Tree
from lark.exceptions import UnexpectedInput

from ..calls import Parsed, SyntaxIssue, ToolCall
from ..errors import ConfigError
from .base import (
    Dialect, apply_edits, args_from_tree, find_child, format_call, has_token, issue_from_error,
    load_parser, raise_issue, rule,
)

# Where a call may start: `<API>`, or `[` right before `Name(`. Prose brackets ([1], [citation needed],
# [text](url), [a, b]) never match, so they are neither calls nor issues.
CANDIDATE = re.compile(r"<API>|\[(?=[A-Za-z_][A-Za-z0-9_]*\()")
# A call lives on one line and is at most this long; it bounds the text handed to Lark per candidate.
MAX_CALL_CHARS = 8192
SPELLINGS = ("auto", "bracket", "tagged", "paper")


def _parser() -> Lark:
    return load_parser("toolformer.lark", ("start", "pending"))


def _call_from_tree(call_tree: Tree, chunk: str, offset: int) -> ToolCall:
    """A ToolCall from a bracket_call or tagged_call subtree parsed out of `chunk` (at `offset` in the text)."""
    inner = find_child(call_tree, "inner_bracket") or call_tree
    invocation = find_child(inner, "invocation") or find_child(call_tree, "invocation")
    assert invocation is not None  # the grammar requires one
    tool = str(invocation.children[0])
    args = args_from_tree(invocation.children[1], chunk)
    result: str | None = None
    holders = (call_tree,) if inner is call_tree else (inner, call_tree)
    for holder in holders:  # inner first, so an outer (tagged) result wins
        text = find_child(holder, "bracket_result") or find_child(holder, "tagged_result")
        if text is not None:
            result = chunk[text.meta.start_pos:text.meta.end_pos].strip()
        elif has_token(holder, "ARROW"):
            result = ""  # an arrow with nothing after it
    span = (offset + call_tree.meta.start_pos, offset + call_tree.meta.end_pos)
    return ToolCall(tool, args, result, span)


def _spelling_of(source: str) -> str:
    """Which spelling a call's text uses."""
    if not source.startswith("<API>"):
        return "bracket"
    return "tagged" if source[5:].lstrip().startswith("[") else "paper"


class ToolformerDialect(Dialect):
    """Toolformer inline calls (Schick et al. 2023) in every spelling seen in the wild.

    `spelling` picks the canonical form for replaced or new calls: "bracket" `[Tool(args) -> result]`,
    "tagged" `<API>[Tool(args)]->result</API>`, "paper" `<API> Tool(args) → result </API>`, or "auto"
    (default): a replaced call keeps the spelling it had, a new call is written "bracket".
    """

    name = "toolformer"
    call_markers = ("->", "→")
    end_markers = ()

    def __init__(self, spelling: str = "auto") -> None:
        if spelling not in SPELLINGS:
            raise ConfigError(f"unknown toolformer spelling {spelling!r}; valid spellings: {', '.join(SPELLINGS)}")
        self.spelling = spelling
        self.open_marker = "<API>" if spelling in ("tagged", "paper") else "["

    def __repr__(self) -> str:
        return f"ToolformerDialect(spelling={self.spelling!r})"

    # -- parsing -------------------------------------------------------------------------------
    def parse(self, text: str, strict: bool = False) -> Parsed:
        parser = _parser()
        calls: list[ToolCall] = []
        issues: list[SyntaxIssue] = []
        pos = 0
        while (match := CANDIDATE.search(text, pos)) is not None:
            start = match.start()
            line_end = text.find("\n", start)
            stop = min(len(text) if line_end < 0 else line_end, start + MAX_CALL_CHARS)
            chunk = text[start:stop]
            try:
                tree = parser.parse(chunk, start="start")
            except UnexpectedInput as err:
                issue = issue_from_error(err, parser, text, start, len(chunk), "a Toolformer call")
                if strict:
                    raise_issue(issue)
                issues.append(issue)
                pos = start + 1  # a bracket call may still start inside a broken <API> span
                continue
            call = _call_from_tree(tree.children[0], chunk, start)
            calls.append(call)
            pos = call.span[1]
        return Parsed(text, calls, self.name, issues, tuple(calls))

    # -- rendering -----------------------------------------------------------------------------
    def render_call(self, call: ToolCall, spelling: str | None = None) -> str:
        spelling = spelling or ("bracket" if self.spelling == "auto" else self.spelling)
        invocation = format_call(call)
        result = None if call.result is None else call.result.replace("\r", " ").replace("\n", " ")
        if spelling == "tagged":
            return f"<API>[{invocation}]</API>" if result is None else f"<API>[{invocation}]->{result}</API>"
        if spelling == "paper":
            return f"<API> {invocation} </API>" if result is None else f"<API> {invocation} → {result} </API>"
        return f"[{invocation}]" if result is None else f"[{invocation} -> {result}]"

    def render(self, parsed: Parsed) -> str:
        originals = {c.span: c for c in parsed.original_calls}
        kept: set[tuple[int, int]] = set()
        edits: list[tuple[int, int, str]] = []
        for call in parsed.calls:
            original = originals.get(call.span)
            if original is not None:
                kept.add(call.span)
                if original == call:
                    continue  # unchanged: copied verbatim, so render(parse(s)) == s
            spelling = None
            if original is not None and self.spelling == "auto":
                spelling = _spelling_of(parsed.text[call.span[0]:call.span[1]])
            edits.append((call.span[0], call.span[1], self.render_call(call, spelling)))
        # Calls dropped from parsed.calls are removed from the text.
        edits.extend((s, e, "") for (s, e) in originals if (s, e) not in kept)
        return apply_edits(parsed.text, edits)

    # -- the decoding loop ---------------------------------------------------------------------
    def _pending(self, text: str) -> tuple[ToolCall | None, str, str, list[SyntaxIssue]]:
        """The pending call at the end of `text`, what goes before and after its result, and issues."""
        body = text.rstrip()
        if not body.endswith(self.call_markers):
            return None, "", "", []
        parser = _parser()
        line_start = body.rfind("\n") + 1
        starts = [m.start() for m in CANDIDATE.finditer(body, line_start)]
        issues: list[SyntaxIssue] = []
        for start in reversed(starts):  # the nearest opening first
            if body[start] == "[" and body[:start].rstrip().endswith("<API>"):
                continue  # the <API> before it opens this call
            chunk = body[start:]
            try:
                tree = parser.parse(chunk, start="pending")
            except UnexpectedInput as err:
                if self._is_complete_call(parser, chunk):
                    break  # the arrow follows a finished call: prose, nothing pending
                issues = [issue_from_error(err, parser, body, start, len(chunk), "a pending Toolformer call")]
                # A malformed call is still closed after its (error) result, with what opened it.
                return None, " ", ("</API>" if body.startswith("<API>", start) else "]"), issues
            opening = tree.children[0]
            invocation = find_child(opening, "invocation")
            assert invocation is not None
            call = ToolCall(str(invocation.children[0]), args_from_tree(invocation.children[1], chunk), None,
                            (start, len(body)))
            arrow = tree.children[-1]
            before_arrow = chunk[:arrow.start_pos]
            # Mirror the spacing before the arrow: `) ->` gets " 12", a glued `)->` gets "12".
            spaced = before_arrow.endswith((" ", "\t"))
            if rule(opening) == "bracket_open":
                closer = "]"
            else:
                bracketed = before_arrow[5:].lstrip().startswith("[")
                closer = "</API>" if bracketed else (" </API>" if spaced else "</API>")
                if bracketed and not before_arrow.rstrip().endswith("]"):
                    closer = "]" + closer  # `<API>[Tool(x) ->` closes the bracket, then the tag
            return call, (" " if spaced else ""), closer, []
        return None, "", "", issues

    @staticmethod
    def _is_complete_call(parser: Lark, chunk: str) -> bool:
        try:
            parser.parse(chunk, start="start")
        except UnexpectedInput:
            return False
        return True

    def pending_calls(self, text: str) -> tuple[list[ToolCall], list[SyntaxIssue]]:
        call, _, _, issues = self._pending(text)
        return ([call] if call else []), issues

    def splice(self, text: str, calls: Sequence[ToolCall], results: Sequence[str]) -> str:
        """The result and the closing `]` or `</API>`, spaced like the text before the arrow.

        `[Calculator(3 * 4) ->` gives " 12]", `[Calculator(3*4)->` gives "12]", `<API>[Calculator(3*4)]->`
        gives "12</API>", `<API> Calculator(3*4) →` gives " 12 </API>". Newlines in a result become spaces.
        A malformed pending call (e.g. `[f(2, 3 ->`) is closed the same way, so its error result ends it.
        """
        call, lead, closer, issues = self._pending(text)
        if call is None and not issues:
            raise ConfigError("no Toolformer call awaits a result at the end of the text")
        if len(results) != 1:
            raise ConfigError(f"a Toolformer call takes exactly one result, got {len(results)}")
        result = str(results[0]).replace("\r", " ").replace("\n", " ")
        return f"{lead}{result}{closer}"
