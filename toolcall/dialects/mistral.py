"""The Mistral dialect: `[TOOL_CALLS][{"name": ..., "arguments": {...}, "id": ...}]` and `[TOOL_CALLS]name[ARGS]{...}`."""
from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from lark import Lark, Token, Tree

from ..calls import KeywordArgs, SyntaxIssue, ToolCall
from ..errors import ConfigError
from .base import MAX_CALL_CHARS, GrammarBudget, QuietValue, load_parser, make_issue, rule
from .structured import (
    PLAIN_JSON,
    Fault,
    Group,
    ResultBlock,
    StructuredDialect,
    Truncated,
    ValueFault,
    call_from_object,
    call_from_value,
    call_id,
    closing_bracket,
    decode_items,
    decode_json,
    dump,
    dump_call_json,
    json_break,
    json_value,
    keyword_args,
    refused_number_token,
    skip_space,
)

TOOL_CALLS = "[TOOL_CALLS]"
RESULTS_OPEN = "[TOOL_RESULTS]"
RESULTS_CLOSE = "[/TOOL_RESULTS]"
SPELLINGS = ("auto", "list", "args")
# What the calls of a [TOOL_CALLS] still being written may not hold for QuietValue: another [TOOL_CALLS], a result, a
# turn or a special token (also inside a string: the dialect finds them anywhere), "\r", a lone surrogate's escape.
_UNSURE = re.compile(r"\[/?(?:TOOL_CALLS|TOOL_RESULTS|INST)\]|</?s>|<\||\r|\\u[dD][89a-fA-F]")
# The v11 spelling's head, `name[ARGS]` or `name[CALL_ID]id[ARGS]`, as grammars/mistral.lark spells it.
_NAMED = re.compile(r"[ \t\r\n]*([A-Za-z_][A-Za-z0-9_.\-]*)[ \t\r\n]*(?:\[CALL_ID\][ \t\r\n]*([A-Za-z0-9]+)[ \t\r\n]*)?"
                    r"\[ARGS\][ \t\r\n]*")


def _blocks_between(text: str, opener: str, closer: str,
                    start: int = 0) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(block span, body span) of each `opener ... closer` block from `start` on, found with str.find: an opener whose
    closer never comes ends the search (no later one has a closer either), so it stays linear. A closer closes the
    nearest opener before it: an earlier one is a stray the model wrote (close() breaks markup in results), and
    pairing with it swallowed the calls after it."""
    out = []
    pos = start
    while (start := text.find(opener, pos)) >= 0:
        body = start + len(opener)
        close = text.find(closer, body)
        if close < 0:
            break
        start = max(start, text.rfind(opener, body, close))  # reads only what find just read: still linear
        body = start + len(opener)
        pos = close + len(closer)
        out.append(((start, pos), (body, close)))
    return out


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
    reserved = (TOOL_CALLS, RESULTS_OPEN, RESULTS_CLOSE, "[ARGS]", "[CALL_ID]", "[INST]", "[/INST]", "<s>", "</s>")
    call_markers = ("]", "}")
    end_markers = ()
    open_marker = TOOL_CALLS
    result_markers = (RESULTS_OPEN,)

    @property
    def call_closers(self) -> tuple[str, ...]:
        """None: its call markers are JSON's own brackets, inside arguments too (and `[ARGS]` ends in one), so a
        call it opens is taken to be open until its decode ends (the loop's ends at a marker that closes it)."""
        return ()

    def __init__(self, spelling: str = "auto") -> None:
        if spelling not in SPELLINGS:
            raise ConfigError(f"unknown mistral spelling {spelling!r}; valid spellings: {', '.join(SPELLINGS)}")
        self.spelling = spelling

    def __repr__(self) -> str:
        return f"MistralDialect(spelling={self.spelling!r})"

    def _groups(self, text: str, issues: list[SyntaxIssue], failed: list[tuple[int, int]],
                budget: GrammarBudget, start: int = 0) -> tuple[list[Group], bool]:
        parser = _parser()
        groups: list[Group] = []
        cut = False
        start = text.find(TOOL_CALLS, start)
        while start >= 0:
            # Read no further than the next [TOOL_CALLS] (or MAX_CALL_CHARS), so many unclosed ones stay linear.
            following = text.find(TOOL_CALLS, start + len(TOOL_CALLS))
            end = min(len(text) if following < 0 else following, start + MAX_CALL_CHARS)
            region = len(text) if following < 0 else following
            made = self._fast(text, start, end)
            stop = end
            cut = False
            if isinstance(made, Truncated):
                if end < len(text):  # it runs into the next [TOOL_CALLS]: no need for the grammar to say so
                    issues.append(self._unfinished(text, start, end, "a [TOOL_CALLS] call"))
                    # Longer than the parser reads: it ends where its brackets close, or is still being written.
                    close, cut = self._close(text, start, region) if end < region else (None, False)
                    failed.append((start, end if close is None else close))
                    start = following
                    continue
                made = None  # cut off by the end of the text: the grammar says what was expected
            if isinstance(made, Fault):
                issues.append(make_issue(text, made.pos, made.message + " in a [TOOL_CALLS] call"))
                # A value no call may carry (nested too deep, a bad escape): the call ends where its brackets close,
                # so the loop gives the model its error once it is written; cut off while they are open at the end.
                close, cut = self._close(text, start, region)
                failed.append((start, max(start + 1, min(end, made.pos + 1), close or 0)))
            elif made is not None:
                group, stop = made
                groups.append(group)
            else:
                got = self._candidate(parser, text, start, end, ("]", "}"), "a [TOOL_CALLS] call", issues, failed, budget,
                                      functools.partial(self._break, text, start, end))
                cut = got is False
                if got is None and end < region and failed and failed[-1][0] == start:
                    # Longer than the parser reads: malformed whatever it made of the start, and ending where its
                    # brackets close, or still being written while they are open at the end of the text.
                    close, cut = self._close(text, start, region)
                    failed[-1] = (start, max(failed[-1][1], close or 0))
                if isinstance(got, tuple):
                    tree, stop = got
                    body = next(c for c in tree.children if isinstance(c, Tree))
                    calls = self._calls(body, start, stop, text, issues, failed)
                    if calls:
                        groups.append(Group((start, stop), calls, "args" if rule(body) == "named" else "list"))
            start = following if following >= stop or following < 0 else text.find(TOOL_CALLS, stop)
        return groups, cut

    @staticmethod
    def _fast(text: str, start: int, end: int) -> tuple[Group, int] | Fault | Truncated | None:
        """The group at `start` decoded in C when it is well formed; a Fault the grammar cannot see; else None."""
        pos = skip_space(text, start + len(TOOL_CALLS))
        if text.startswith("[", pos):
            items = decode_items(text, pos, end)
            if not isinstance(items, tuple):
                return items
            values, stop = items
            calls = [call_from_value(v, (s, e)) for v, s, e in values]
            if not calls or any(c is None for c in calls):
                return None
            return Group((start, stop), [c for c in calls if c is not None], "list"), stop
        m = _NAMED.match(text, pos, end)
        if m is None:
            return None
        decoded = decode_json(text, m.end(), end)
        if not isinstance(decoded, tuple):
            return decoded
        args, stop = decoded
        if not isinstance(args, dict):
            return None
        return Group((start, stop), [ToolCall(m.group(1), KeywordArgs.adopt(args), None, (start, stop), m.group(2))], "args"), stop

    @staticmethod
    def _close(text: str, start: int, end: int) -> tuple[int | None, bool]:
        """Where the malformed group at `start` ends (its list's or arguments' brackets closed, before `end`), or None,
        and whether it is cut off by the end of the text there (still open)."""
        pos = skip_space(text, start + len(TOOL_CALLS))
        m = None if text.startswith("[", pos) else _NAMED.match(text, pos, end)
        close = closing_bracket(text, pos if m is None else m.end(), end)
        return close, close is None and end >= len(text)

    @staticmethod
    def _break(text: str, start: int, end: int) -> Fault | Truncated:
        """Where the group at `start` stops being one, read in C (for when the grammar's budget is spent)."""
        pos = skip_space(text, start + len(TOOL_CALLS))
        if text.startswith("[", pos):
            where = json_break(text, pos, end)
            return where if where is not None else Fault(pos, "a [TOOL_CALLS] list holds call objects only (each "
                                                              'with a "name" string and "arguments", a JSON object)')
        m = _NAMED.match(text, pos, end)
        if m is None:
            return Truncated(pos) if pos >= len(text) else Fault(pos, "expected a JSON list of calls or name[ARGS]")
        where = json_break(text, m.end(), end)
        return where if where is not None else Fault(m.end(), "the arguments must be a JSON object")

    @staticmethod
    def _calls(body: Tree, start: int, end: int, text: str, issues: list[SyntaxIssue],
               failed: list[tuple[int, int]]) -> list[ToolCall]:
        """The calls of a parsed group; a broken call object goes to `issues` and its siblings are kept."""
        def fault(made: Fault) -> None:
            issues.append(make_issue(text, made.pos, made.message + " in a [TOOL_CALLS] call"))
            failed.append((start, end))

        try:
            if rule(body) == "named":
                tokens = {t.type.rsplit("__", 1)[-1]: str(t) for t in body.children if isinstance(t, Token)}
                args = json_value(body.children[-1])
                return [ToolCall(tokens["FUNC_NAME"], KeywordArgs(args), None, (start, end), tokens.get("CALL_ID_VALUE"))]
        except ValueFault as err:
            fault(Fault(start, str(err)))
            return []
        calls: list[ToolCall] = []
        objects = [obj for obj in body.children if isinstance(obj, Tree)]
        for obj in objects:
            if rule(obj) != "object":
                fault(Fault(start + obj.meta.start_pos, "a [TOOL_CALLS] list holds call objects only"))
                continue
            made = call_from_object(obj, start, (start + obj.meta.start_pos, start + obj.meta.end_pos))
            if isinstance(made, Fault):
                fault(made)
            else:
                calls.append(made)
        if not objects:
            fault(Fault(start, "a [TOOL_CALLS] list holds no call"))
        return calls

    def _result_blocks(self, text: str, start: int = 0) -> list[ResultBlock]:
        blocks = []
        for span, body_span in _blocks_between(text, RESULTS_OPEN, RESULTS_CLOSE, start):
            body = text[body_span[0]:body_span[1]].strip()
            result, ident = body, None
            decoded = decode_json(body, 0, len(body))
            value = decoded[0] if isinstance(decoded, tuple) and decoded[1] == len(body) else None
            if isinstance(value, dict) and "content" in value:
                content = value["content"]
                result = content if isinstance(content, str) else dump(content)
                ident = value.get("call_id") if isinstance(value.get("call_id"), str) else None
            blocks.append(ResultBlock(span, (span[0], body_span[0]), body_span, result, ident))
        return blocks

    def _spelling(self, style: str) -> str:
        if self.spelling != "auto":
            return self.spelling
        return style or "list"

    def quiet_value(self, text: str, start: int) -> QuietValue | None:
        """Quiet where the text from `start` holds one `[TOOL_CALLS]`, whose calls the grammar reads so far and whose
        text ends inside a call's arguments (data: `{"points": [[1, 2], [3, 4], `)."""
        first = text.find(TOOL_CALLS, start)
        if first < 0 or text.find(TOOL_CALLS, first + 1) >= 0:
            return None  # one alone: a second may lie in a string of the first
        return QuietValue.after(_parser(), "start", text, first, first + len(TOOL_CALLS), start + MAX_CALL_CHARS - 1,
                                _UNSURE, {'"': PLAIN_JSON}, refused_number_token)

    def _render_group(self, calls: Sequence[ToolCall], style: str) -> str:
        if self._spelling(style) == "args":
            return "".join(f"{TOOL_CALLS}{c.tool}" + (f"[CALL_ID]{c.id}" if c.id else "")
                           + f"[ARGS]{dump_call_json(keyword_args(c, self.name), self.reserved)}" for c in calls)
        items = [{"name": c.tool, "arguments": keyword_args(c, self.name), "id": call_id(c, n)} for n, c in enumerate(calls)]
        return f"{TOOL_CALLS}{dump_call_json(items, self.reserved)}"

    def _render_results(self, calls: Sequence[ToolCall], results: Sequence[str]) -> str:
        out = []
        for call, result in zip(calls, results):
            if call.id:
                out.append(f"{RESULTS_OPEN}{dump({'content': result, 'call_id': call.id})}{RESULTS_CLOSE}")
            else:
                out.append(f"{RESULTS_OPEN}{result}{RESULTS_CLOSE}")
        return "".join(out)
