"""The Toolformer dialect: inline calls in prose, `[Tool(args) -> result]` and the `<API>` spellings."""
from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from string import Template

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

from ..calls import Parsed, PendingCalls, SyntaxIssue, ToolCall
from ..errors import ConfigError
from ..specs import ToolSpec, ToolSpecs
from .base import (
    BARE_ARGUMENT,
    CALL_HEAD_CHARS,
    CALL_NAME,
    Dialect,
    GrammarBudget,
    ResultSpan,
    _display_terminal,
    apply_edits,
    args_from_tree,
    defuse,
    find_child,
    format_call,
    has_token,
    in_open_string,
    issue_from_error,
    line_column,
    load_parser,
    make_issue,
    name_then_paren,
    opens_string_to_end,
    paused_gc,
    positional,
    raise_issue,
    rule,
    unquote,
    writable_name,
)
from .prompt_data import (
    ChatTemplate,
    PromptSource,
    builtin_key,
    by_relevance,
    read_json,
    read_override,
    signature,
)

# Where a call may start: `<API>`, or `[` right before `Name(`. Prose brackets ([1], [citation needed],
# [text](url), [a, b]) never match, so they are neither calls nor issues.
CANDIDATE = re.compile(r"<API>|\[(?=[A-Za-z_][A-Za-z0-9_]*\()")
# A call lives on one line and is at most this long; it bounds the text handed to Lark per candidate.
MAX_CALL_CHARS = 8192
# How much of a candidate's line is read first (most calls, and most faults, lie within it).
_WINDOW = 512
_BRACKET = re.compile(r"[\[\]]")
# The most common call shape, `[Tool(bare or quoted arguments, or none) -> result]`, exactly as grammars/toolformer.lark reads it
# (the argument is common.lark's BARE, the result its RESULT_TEXT, the spaces its WS); anything else goes to Lark.
_QUOTED = r"(?:\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*')"
_ARG = rf"(?:{BARE_ARGUMENT}|{_QUOTED}[ \t]*)"
_SIMPLE_HEAD = rf"\[(?P<tool>[A-Za-z_][A-Za-z0-9_]*)\([ \t]*(?P<args>{_ARG}(?:,[ \t]*{_ARG})*)?\)[ \t]*"
# One argument of a simple call's list, and the comma after it.
_ARG_ITEM = re.compile(rf"(?:(?P<bare>{BARE_ARGUMENT})|(?P<quoted>{_QUOTED})[ \t]*)(?:,[ \t]*)?")
_SIMPLE_CALL = re.compile(_SIMPLE_HEAD + r"(?:(?P<arrow>->|→)(?P<result>[^\[\]\n]*))?\]")
# A simple call's head up to its arrow: when no "]" closes it on its line, the call is reported without the parser.
_SIMPLE_OPEN = re.compile(_SIMPLE_HEAD + r"(?:->|→)")
_API_CLOSE = re.compile(re.escape("</API>"))
SPELLINGS = ("auto", "bracket", "tagged", "paper")
# How the lines of a multi-line result (e.g. search snippets) are joined, because a call lives on one line.
LINE_JOINER = " | "
PROMPT_FILE = "toolformer_chat.json"
# A tool name as the call grammar spells it (the NAME terminal of common.lark).


def _parser() -> Lark:
    return load_parser("toolformer.lark", ("start", "call", "pending"))


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


def _result_span(call_tree: Tree, offset: int) -> ResultSpan | None:
    """The arrow and the result of a parsed call (the holder whose result _call_from_tree keeps), None without one."""
    inner = find_child(call_tree, "inner_bracket")
    span: ResultSpan | None = None
    for holder in (inner, call_tree) if inner is not None else (call_tree,):
        arrow = next((c for c in holder.children if isinstance(c, Token) and c.type == "ARROW"), None)
        if arrow is None:
            continue
        if rule(holder) == "tagged_call":
            close = next(c.start_pos or 0 for c in holder.children if isinstance(c, Token) and c.type == "API_CLOSE")
        else:
            close = holder.meta.end_pos - 1  # the closing "]"
        begin, end = arrow.start_pos or 0, arrow.end_pos or 0
        span = ((offset + begin, offset + end), (offset + end, offset + close))
    return span


def _closer_length(text: str, at: int) -> int:
    """The length of the closer ("]" or "</API>") of a call whose result ends at `at` (result_spans)."""
    for closer in ("]", "</API>"):
        if text.startswith(closer, at):
            return len(closer)
    return 0


def _simple_call(m: re.Match[str]) -> tuple[ToolCall, ResultSpan | None]:
    """The call and result span of a _SIMPLE_CALL match, as _call_from_tree and _result_span make them."""
    listed = m.group("args")
    args = () if listed is None else tuple(
        a.group("bare").strip() if a.group("bare") is not None else unquote(a.group("quoted"))
        for a in _ARG_ITEM.finditer(listed))
    if m.group("arrow") is None:
        return ToolCall(m.group("tool"), args, None, m.span()), None
    call = ToolCall(m.group("tool"), args, m.group("result").strip(), m.span())
    return call, (m.span("arrow"), (m.end("arrow"), m.end() - 1))


def one_line(result: str) -> str:
    """A result as it is written inside a call: the lines of a multi-line result joined with " | "."""
    if "\n" not in result and "\r" not in result:
        return result
    return LINE_JOINER.join(line.strip() for line in result.splitlines() if line.strip())


def _fitted(result: str, room: int) -> str:
    """A result as written inside a call (defused) cut to `room` characters with a note of how long it was: parse
    reads no call longer than MAX_CALL_CHARS, so a longer result (a tool may give 32,768 characters) made its call
    prose to every reader of the text (training masked none of it)."""
    if len(result) <= room:
        return result
    note = f" … (cut: {len(result):,} characters in all)"
    if room < len(note):   # arguments that leave no room even for the note: the first `room` characters alone
        return _paired(result[:max(0, room)])
    return _paired(result[:room - len(note)].rstrip()) + note


def _paired(result: str) -> str:
    """A result whose square brackets all pair up (paired ones nest inside a call's): an unpaired "[" or "]" becomes
    its full-width form, which no reader takes for the bracket that closes the call or opens one."""
    if "[" not in result and "]" not in result:
        return result
    chars = list(result)
    open_at: list[int] = []
    for i, c in enumerate(result):
        if c == "[":
            open_at.append(i)
        elif c == "]":
            if open_at:
                open_at.pop()
            else:
                chars[i] = "\uff3d"
    for i in open_at:
        chars[i] = "\uff3b"
    return "".join(chars)


class _Resulted(Exception):
    """A call read up to its arrow whose result is known to close (see _parse_call): where its arrow and closer are."""

    def __init__(self, arrow: int, after: int, close: int) -> None:
        super().__init__()
        self.arrow, self.after, self.close = arrow, after, close


class _Unclosed(Exception):
    """A call whose result runs to the end of its line: no closing bracket or </API> follows it there."""

    def __init__(self, expected: tuple[str, ...]) -> None:
        super().__init__("unclosed")
        self.expected = expected


class _Closers:
    """Where the results in one text can end, found once per text: so a line with many unclosed calls is not read to
    its end once per call. Built on first use (text without an arrow never needs it), from text[lo:hi] only when
    asked about no other part (one pending call: the rest of a long text is not read)."""

    def __init__(self, text: str, lo: int = 0, hi: int | None = None) -> None:
        self.text = text
        self._lo, self._hi = lo, len(text) if hi is None else hi
        self._brackets: list[int] | None = None
        self._by_depth: dict[int, list[int]] = {}
        self._depth_before: list[int] = []
        self._tags: list[int] | None = None

    def bracket(self, pos: int, stop: int) -> bool:
        """Whether a "]" in text[pos:stop] closes a bracket open at `pos` (brackets between them nest)."""
        return self.bracket_at(pos, stop) >= 0

    def bracket_at(self, pos: int, stop: int) -> int:
        """Where the "]" in text[pos:stop] that closes a bracket open at `pos` stands; -1 for none."""
        if self._brackets is None:
            self._brackets = []
            depth = 0
            for m in _BRACKET.finditer(self.text, self._lo, self._hi):
                self._brackets.append(m.start())
                self._depth_before.append(depth)
                if m.group() == "[":
                    depth += 1
                else:
                    self._by_depth.setdefault(depth, []).append(m.start())
                    depth -= 1
        k = bisect.bisect_left(self._brackets, pos)
        if k >= len(self._brackets):
            return -1
        depth = self._depth_before[k]
        # The first "]" after pos that leaves the depth pos had: the one that closes the open bracket.
        closes = self._by_depth.get(depth, [])
        j = bisect.bisect_left(closes, pos)
        return closes[j] if j < len(closes) and closes[j] < stop else -1

    def tag_at(self, pos: int, stop: int) -> int:
        """Where the first "</API>" in text[pos:stop] stands; -1 for none."""
        if self._tags is None:
            self._tags = [m.start() for m in _API_CLOSE.finditer(self.text, self._lo, self._hi)]
        j = bisect.bisect_left(self._tags, pos)
        return self._tags[j] if j < len(self._tags) and self._tags[j] + len("</API>") <= stop else -1


# What the call grammar expects right after the arrow of a bracket call, as Lark lists it (learnt from the first one).
_EXPECTED: dict[str, tuple[str, ...]] = {}


def _edge_fault(err: UnexpectedInput, text: str, start: int, edge: int) -> bool:
    """Whether a fault found in text[start:edge] may be the edge's doing: the text ran out, a token may have gone on
    past it, or a quote's string may close after it."""
    if isinstance(err, UnexpectedCharacters):
        pos = start + (err.pos_in_stream or 0)
        return pos >= edge - 8 or text[pos] in "\"'"
    token = getattr(err, "token", None)
    if isinstance(err, UnexpectedEOF) or token is None or token.type == "$END" or token.start_pos is None:
        return True
    # The unexpected token's own length does not matter (Lark's fallback lexer may match one up to the edge): no
    # terminal the grammar allowed there could have matched, unless it needed text past the edge.
    pos = start + token.start_pos
    return pos >= edge - 8 or text[pos] in "\"'"


def _parse_call(parser: Lark, chunk: str, offset: int, stop: int, closers: _Closers) -> Tree:
    """Parse the call that starts `chunk` (at `offset` in the text; its line or MAX_CALL_CHARS ends at `stop`), reading
    no further than its end.

    Stops at the "]" that closes a bracket call or at the "</API>" of a tagged one; at an arrow, checks that the
    result closes on the line before reading it, so an unclosed call costs its head, not the rest of its line.
    Raises UnexpectedInput, or _Unclosed.
    """
    interactive = parser.parse_interactive(chunk, start="call")
    tagged = chunk.startswith("<API>")
    depth = 0
    for token in interactive.lexer_thread.lex(interactive.parser_state):
        interactive.feed_token(token)
        if token.type == "ARROW":
            after = offset + token.end_pos
            close = closers.bracket_at(after, stop) if depth > 0 else closers.tag_at(after, stop)
            if close < 0:
                expected = tuple(sorted({_display_terminal(parser, n) for n in interactive.choices() if n.isupper()}))
                if depth == 1 and not tagged:
                    _EXPECTED["bracket"] = expected
                raise _Unclosed(expected)
            if depth == (0 if tagged else 1):
                # The call's own result: whatever stands up to its closer is one (the grammar takes any text there
                # whose brackets pair, or any without "</API>"), so it is not read token by token. A long one ran
                # past the parser's window and budget, and its call (a search result citing "[1]") was lost.
                raise _Resulted(offset + (token.start_pos or 0), after, close)
        elif token.value == "[":
            depth += 1
        elif token.value == "]":
            depth -= 1
            if depth == 0 and not tagged:
                return interactive.feed_eof(token)
        elif token.type == "API_CLOSE":
            return interactive.feed_eof(token)
    return interactive.feed_eof()


def _resulted_call(parser: Lark, text: str, start: int, got: _Resulted) -> tuple[ToolCall, ResultSpan, int]:
    """The call at `text[start]` whose head up to its arrow parsed and whose result ends at `got.close`: the head read
    again (it is short) as the call it makes with an empty result, which the grammar takes after any arrow it took
    (an inner bracket's own arrow and result, a space before its "]"), the result as the text up to the closer."""
    closer = "</API>" if text.startswith("<API>", start) else "]"
    head = text[start:got.after] + closer
    call_tree = parser.parse(head, start="call").children[0]
    assert isinstance(call_tree, Tree)
    empty = _call_from_tree(call_tree, head, start)
    end = got.close + len(closer)
    call = ToolCall(empty.tool, empty.args, text[got.after:got.close].strip(), (start, end))
    return call, ((got.arrow, got.after), (got.after, got.close)), end


def _undiagnosed(text: str, start: int) -> SyntaxIssue:
    """The issue of a candidate the grammar's budget could not cover (see GrammarBudget): at its start."""
    line, column = line_column(text, start)
    return make_issue(text, start, f"a Toolformer call starting at line {line}, column {column} does not parse (where it "
                                   "breaks is not worked out: this text holds more broken calls than the parser "
                                   "examines in detail)")


def _longer_reads(text: str, start: int, edge: int, stop: int, closers: _Closers) -> list[int]:
    """Where to end the reads of a candidate that parsed without a fault up to the window's `edge`: just past its
    closer when one stands between the edge and `stop` (a good call's parse stops there, and a long call is not
    charged the rest of a long line), then `stop`."""
    if text.startswith("<API>", start):
        close = closers.tag_at(start, stop)
        end = close + len("</API>") if close >= 0 else -1
    else:
        close = closers.bracket_at(start + 1, stop)
        end = close + 1 if close >= 0 else -1
    return [end, stop] if edge < end < stop else [stop]


def _unread(text: str, start: int, read: int) -> SyntaxIssue:
    """The issue of a candidate whose first `read` characters parsed and that goes on past what the budget lets the
    grammar read in this text (see GrammarBudget): it may be a good call, so no fault is claimed."""
    line, column = line_column(text, start)
    return make_issue(text, start, f"a Toolformer call starting at line {line}, column {column} is not read: it goes "
                                   f"on without a fault past its first {read} characters, and this text lets "
                                   "the parser read no more of it (a call of L characters past about 1,000 is read "
                                   "in a text of at least 10 x (L - 1,000) characters)")


def _read_candidate(parser: Lark, text: str, start: int, stop: int, closers: _Closers,
                    budget: GrammarBudget) -> tuple[ToolCall, ResultSpan | None, int] | SyntaxIssue:
    """The call at the candidate `text[start]` (its line or MAX_CALL_CHARS ends at `stop`), its result span and where
    it ends; or the issue of a broken one."""
    simple = _SIMPLE_CALL.match(text, start, stop)
    if simple is not None:  # the common shape, read without the parser (tests check both agree)
        call, span = _simple_call(simple)
        return call, span, simple.end()
    opened = _SIMPLE_OPEN.match(text, start, stop)
    if opened is not None and "bracket" in _EXPECTED and not closers.bracket(opened.end(), stop):
        line, column = line_column(text, start)
        return make_issue(text, stop, f"unexpected end of input in a Toolformer call starting at line {line}, "
                                      f"column {column}", _EXPECTED["bracket"])
    # Read a window first: Lark's error path matches its longest terminals to the end of what it is given, so a
    # broken call costs the window, not its whole line. Only a fault the window's edge may have caused (the
    # text ran out, or a quote's string closes past it) is read again, up to the candidate's closer and then, if
    # that edge faults too, its whole line.
    edge = min(stop, start + _WINDOW)
    chunk = text[start:edge]
    if not budget.spend(len(chunk)):  # given back below when it is a call
        return _undiagnosed(text, start)
    charged = len(chunk)
    tree: Tree | None = None
    resulted: _Resulted | None = None   # a call whose result is read up to its closer (see _parse_call)
    try:
        try:
            tree = _parse_call(parser, chunk, start, stop, closers)
        except UnexpectedInput as err:
            if edge == stop or not _edge_fault(err, text, start, edge):
                raise
            # The window found no fault of its own, so the longer reads alone are charged: charging the window too
            # lost every good call longer than about half the budget (a 600-character expression in a short text).
            # A candidate's reads cost at most twice what it is charged, so the grammar's reading stays linear.
            budget.refund(charged)
            charged = 0
            for end in _longer_reads(text, start, edge, stop, closers):
                if not budget.spend(end - start):
                    if not charged:
                        budget.spend(len(chunk))  # the window's read, charged after all
                    return _unread(text, start, len(chunk))
                charged += end - start + (budget.START_COST if charged else 0)   # a second read's start too
                chunk = text[start:end]
                try:
                    tree = _parse_call(parser, chunk, start, stop, closers)
                    break
                except UnexpectedInput as longer:
                    if end == stop or not _edge_fault(longer, text, start, end):
                        raise
            assert tree is not None  # the last read is the whole line's, whose faults are raised
    except _Resulted as got:
        resulted = got
    except _Unclosed as err:
        line, column = line_column(text, start)
        return make_issue(text, stop, f"unexpected end of input in a Toolformer call starting at line {line}, "
                                      f"column {column}", err.expected)
    except UnexpectedInput as err:
        return issue_from_error(err, parser, text, start, len(chunk), "a Toolformer call")
    budget.refund(charged)
    if resulted is not None:
        return _resulted_call(parser, text, start, resulted)
    assert tree is not None
    call_tree = tree.children[0]
    return _call_from_tree(call_tree, chunk, start), _result_span(call_tree, start), start + call_tree.meta.end_pos


@dataclass(frozen=True)
class _Closing:
    """What goes around the result of a pending call: the space after the arrow, and what closes the call."""

    lead: str
    closer: str


def _spelling_of(source: str) -> str:
    """Which spelling a call's text uses."""
    if not source.startswith("<API>"):
        return "bracket"
    return "tagged" if source[5:].lstrip().startswith("[") else "paper"


_ARROWS = ("->", "→")


def _last_opening(text: str, lo: int, hi: int) -> int | None:
    """The last candidate starting in text[lo:hi] that opens a call itself: a "[" right after "<API>" (spaces between)
    is the tagged call's, whose "<API>" opens it."""
    if (text.find("[", lo, hi) < 0 or text.find("(", lo) < 0) and text.find("<API>", lo, hi) < 0:
        return None  # prose: no regex reads it
    starts = []
    for m in CANDIDATE.finditer(text, lo):
        if m.start() >= hi:
            break
        starts.append(m.start())
    for start in reversed(starts):
        if text[start] == "[" and _after_tag(text, start):
            continue
        return start
    return None


def _opening(text: str, arrow: int) -> int | None:
    """Where the call that the arrow at `text[arrow]` may end begins: the nearest call opening before it on its line,
    or None.

    Only the last MAX_CALL_CHARS characters are searched in full: a call is no longer (parse reads no further), so
    an opening further back is found only for the first arrow after it, whose call then breaks at the cap; for a later
    arrow, the text past the cap is prose, and the search stops at the arrow before it. So each pause reads at most
    MAX_CALL_CHARS characters back and, beyond them, only text after the previous arrow: the decoding loop, pausing at
    every arrow of a long line, reads it in linear time (collecting every candidate from the line's start at each
    pause took 17.5 s for 32,000 arrows on one line).
    """
    lo = max(0, arrow - MAX_CALL_CHARS)
    newline = text.rfind("\n", lo, arrow)
    if newline >= 0:
        return _last_opening(text, newline + 1, arrow)
    start = _last_opening(text, lo, arrow)
    if start is not None or lo == 0 or any(text.find(a, lo, arrow) >= 0 for a in _ARROWS):
        return start
    hi, step = lo, _WINDOW
    while hi > 0:  # further back, in growing steps, up to the line's start or the arrow before this one
        begin = max(0, hi - step)
        bound = max(text.rfind("\n", begin, hi), *(text.rfind(a, begin, hi + len(a) - 1) for a in _ARROWS))
        start = _last_opening(text, max(begin, bound + 1), hi)
        if start is not None or bound >= 0:
            return start
        hi, step = begin, step * 2
    return None


def _line_start(text: str, pos: int) -> int:
    """Where the line of `text[pos]` begins, looking no further back than a call's length (MAX_CALL_CHARS)."""
    lo = max(0, pos - MAX_CALL_CHARS)
    return text.rfind("\n", lo, pos) + 1 or lo


# A candidate's head up to its argument list's "(", as grammars/toolformer.lark reads it: `[Tool(`, `<API> Tool(`,
# `<API>[Tool(`.
_HEAD = re.compile(r"(?:<API>[ \t]*\[?|\[)[A-Za-z_][A-Za-z0-9_]*\([ \t]*")
# common.lark's argument pieces: a quoted string, a bare argument's first piece (BARE) and a later one (BARE_MORE),
# the spaces after a comma, and inside a parenthesised group the characters that end or break it.
_STRING_ARG = {q: re.compile(rf"{q}(?:[^{q}\\\n]|\\.)*{q}[ \t]*") for q in "\"'"}
_BARE_FIRST = re.compile(r"""[^\s(),\[\]"'](?:[^(),\[\]\n]|(?<=\d),(?=\d{3}(?!\d)))*""")
_BARE_MORE = re.compile(r"(?:[^(),\[\]\n]|(?<=\d),(?=\d{3}(?!\d)))+")
_AFTER_COMMA = re.compile(r",[ \t]*")
_IN_GROUP = re.compile(r"[()\[\]\n]")


def _group_end(text: str, pos: int, end: int) -> int:
    """Where the parenthesised group at `text[pos]` of a bare argument closes, or -1 (it breaks, or `end` comes first):
    inside it anything but brackets and line breaks is plain text."""
    depth = 0
    for m in _IN_GROUP.finditer(text, pos, end):
        c = m.group()
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return m.end()
        else:
            return -1
    return -1


def _quoted_arguments(text: str, start: int, end: int) -> tuple[list[tuple[int, int]], bool]:
    """The spans of the quoted arguments of the candidate at `text[start]`, read as the grammar reads its argument list
    and no further than `end`, up to where the list closes or breaks; and whether the last of them is still being
    written at `end` (open there, on its line). A string that a line break ends is its span up to the break: while
    it was being written the loop saw it open. Bare arguments hold no brackets, so a candidate inside another is in
    one of these spans: text that the argument quotes."""
    head = _HEAD.match(text, start, end)
    spans: list[tuple[int, int]] = []
    if head is None:
        return spans, False
    pos = head.end()
    while pos < end and text[pos] != ")":
        quote = text[pos]
        if quote in "\"'":
            closed = _STRING_ARG[quote].match(text, pos, end)
            if closed is None:
                line_end = text.find("\n", pos, end)
                spans.append((pos, end if line_end < 0 else line_end))
                return spans, line_end < 0 and opens_string_to_end(text, pos, end)
            spans.append((pos, closed.end()))
            pos = closed.end()
        else:
            piece = _BARE_FIRST.match(text, pos, end)
            if piece is None and quote != "(":
                break
            pos = piece.end() if piece is not None else pos
            while pos < end:
                if text[pos] == "(":
                    pos = _group_end(text, pos, end)
                    if pos < 0:
                        return spans, False
                elif (more := _BARE_MORE.match(text, pos, end)) is not None:
                    pos = more.end()
                else:
                    break
        comma = _AFTER_COMMA.match(text, pos, end)
        if comma is None:
            break
        pos = comma.end()
    return spans, False


def _live_openings(text: str, lo: int, hi: int, end: int) -> tuple[int | None, bool]:
    """Of the candidates in `text[lo:hi]` that lie in no quoted argument of a candidate before them (read to `end`,
    where the text ends at an arrow), the last one (a "[" right after "<API>" is that tag's); and whether the arrow
    lies in a quoted argument still being written there (then the loop runs nothing: that argument quotes text)."""
    covered = -1
    last = None
    for m in CANDIDATE.finditer(text, lo):
        at = m.start()
        if at >= hi:
            break
        if at < covered:
            continue
        # Outside its strings an argument list ends at the first "[" after the head: a candidate with no quote before
        # that (or before `end`) quotes nothing, and is not read.
        bracket = text.find("[", at + 1, end)
        stop = end if bracket < 0 else bracket
        if text.find('"', at, stop) >= 0 or text.find("'", at, stop) >= 0:
            spans, open_at_end = _quoted_arguments(text, at, end)
            if open_at_end:
                return at, True
            if spans:
                covered = max(covered, spans[-1][1])
        if not (text[at] == "[" and _after_tag(text, at)):
            last = at
    return last, False


def _open_quote_with_arrow(text: str, end: int) -> int | None:
    """Where the call begins whose quoted argument runs, open, to `end` on the line `end` is on, holding an arrow (a
    call marker the model wrote inside it); None if no candidate on that line is so (read back no further than a
    call's length, as `pending` reads)."""
    start, quoted = _live_openings(text, _line_start(text, end), end, end)
    if not quoted or start is None:
        return None
    spans, _ = _quoted_arguments(text, start, end)
    at = spans[-1][0] if spans else start
    return start if any(text.find(arrow, at, end) >= 0 for arrow in _ARROWS) else None


def _after_tag(text: str, at: int) -> bool:
    """Whether the "[" at `text[at]` follows "<API>" (spaces between): the tagged call's own. A call is at most
    MAX_CALL_CHARS long, so no further than that is looked back.

    Only spaces and tabs count, as the grammar's WS between "<API>" and "[": a call lives on one line, so after
    `<API>\\n` the "[" opens a bracket call of its own, which parse reads (and pairs with the result after its
    arrow). Skipping any whitespace made the loop run nothing at that arrow, and the result the model wrote
    itself there was parsed as the call's."""
    j = at
    while j > 0 and at - j < MAX_CALL_CHARS and text[j - 1] in " \t":
        j -= 1
    return text.startswith("<API>", j - 5) and j >= 5


class ToolformerDialect(Dialect):
    """Toolformer inline calls (Schick et al. 2023) in every spelling seen in the wild.

    `spelling` picks the canonical form for replaced or new calls: "bracket" `[Tool(args) -> result]`,
    "tagged" `<API>[Tool(args)]->result</API>`, "paper" `<API> Tool(args) → result </API>`, or "auto"
    (default): a replaced call keeps the spelling it had, a new call is written "bracket".
    """

    name = "toolformer"
    call_markers = ("->", "→")
    span_closers = ("]",)
    reserved = ("<API>", "</API>")  # and unpaired brackets: see _paired
    one_line_calls = True
    end_markers = ()

    def __init__(self, spelling: str = "auto") -> None:
        if spelling not in SPELLINGS:
            raise ConfigError(f"unknown toolformer spelling {spelling!r}; valid spellings: {', '.join(SPELLINGS)}")
        self.spelling = spelling
        self.open_marker = "<API>" if spelling in ("tagged", "paper") else "["
        # Where "[" starts calls, a tagged call's "<API>" stands before it ("<API>[f(x)]->"): cut with the call.
        self.call_prefixes = ("<API>",) if self.open_marker == "[" else ()

    def __repr__(self) -> str:
        return f"ToolformerDialect(spelling={self.spelling!r})"

    # -- parsing -------------------------------------------------------------------------------
    @staticmethod
    def _found(text: str, issues: list[SyntaxIssue], strict: bool) -> Iterator[tuple[ToolCall, ResultSpan | None]]:
        """Each call and the span of its arrow and result (None without an arrow); broken candidates go to `issues`."""
        parser = _parser()
        closers = _Closers(text)
        budget = GrammarBudget(len(text))
        pos = 0
        line_end = -1
        covered = -1  # candidates before this lie in a quoted argument of a broken candidate on their line
        while (match := CANDIDATE.search(text, pos)) is not None:
            start = match.start()
            if line_end < start:  # the end of the candidate's line, found once per line
                line_end = text.find("\n", start)
                line_end = len(text) if line_end < 0 else line_end
            if start < covered:
                pos = start + 1  # text the argument quotes: the loop, pausing at its arrow, ran nothing there
                continue
            stop = min(line_end, start + MAX_CALL_CHARS)
            read = _read_candidate(parser, text, start, stop, closers, budget)
            if isinstance(read, SyntaxIssue):
                if strict:
                    raise_issue(read)
                issues.append(read)
                pos = start + 1  # a bracket call may still start inside a broken <API> span
                spans, _ = _quoted_arguments(text, start, stop)
                covered = max(covered, spans[-1][1]) if spans else covered
                continue
            call, span, pos = read
            yield call, span

    def parse(self, text: str, strict: bool = False) -> Parsed:
        issues: list[SyntaxIssue] = []
        with paused_gc(len(text)):
            calls = [call for call, _ in self._found(text, issues, strict)]
        return Parsed(text, calls, self.name, issues, tuple(calls))

    def result_spans(self, text: str) -> list[ResultSpan]:
        """The arrow ("->" or "→"), and everything after it through the closing "]" or "</API>", spaces included:
        at inference the model writes the arrow and the program writes the rest (`close`: the result and the closer).
        Training learned the "]" the loop always writes, and a token fusing it with the prose after it (`].`)."""
        spans = []
        for _, span in self._found(text, [], False):
            if span is not None:
                marker, (begin, end) = span
                spans.append((marker, (begin, end + _closer_length(text, end))))
        return spans

    # -- rendering -----------------------------------------------------------------------------
    def render_call(self, call: ToolCall, spelling: str | None = None) -> str:
        """The call in `spelling` (default: the dialect's). A single argument is written bare whenever it parses
        back unchanged (`[Calculator(1,240 + 1,560)]`, as the worked examples write it), else "quoted"."""
        spelling = spelling or ("bracket" if self.spelling == "auto" else self.spelling)
        writable_name(call.tool, self.name)
        result = None if call.result is None else self.defuse_result(one_line(call.result))
        quoted = format_call(call)
        args = positional(call)
        if len(args) == 1:
            bare = f"{call.tool}({args[0]})"
            if bare != quoted:
                text = self._spell(bare, self._fit(bare, result, spelling), spelling)
                if self._reads_back(text, str(args[0])):
                    return text
        return self._spell(quoted, self._fit(quoted, result, spelling), spelling)

    def _fit(self, invocation: str, result: str | None, spelling: str) -> str | None:
        """`result` cut so that the call written around it is no longer than a call parse reads."""
        if result is None:
            return None
        return _fitted(result, MAX_CALL_CHARS - len(self._spell(invocation, "", spelling)))

    def write_calls(self, calls: Sequence[ToolCall]) -> str:
        """One call up to its arrow (`[Calculator(2 * 3) ->`): the loop pauses at every call of this dialect."""
        if len(calls) != 1:
            raise ConfigError(f"a Toolformer call pauses for its result alone: write one call at a time, got "
                              f"{len(calls)}")
        marker = "\ue000"  # a result no call holds: where the result would be is where the model's text ends
        text = self.render_call(calls[0].with_result(marker))
        return text[:text.index(marker)].rstrip()

    @staticmethod
    def _spell(invocation: str, result: str | None, spelling: str) -> str:
        if spelling == "tagged":
            return f"<API>[{invocation}]</API>" if result is None else f"<API>[{invocation}]->{result}</API>"
        if spelling == "paper":
            return f"<API> {invocation} </API>" if result is None else f"<API> {invocation} → {result} </API>"
        return f"[{invocation}]" if result is None else f"[{invocation} -> {result}]"

    @staticmethod
    def _reads_back(text: str, arg: str) -> bool:
        """Whether `text` is one whole call whose only argument parses as `arg`."""
        try:
            tree = _parser().parse(text, start="start")
        except UnexpectedInput:
            return False
        call_tree = tree.children[0]
        if len(tree.children) != 1 or not isinstance(call_tree, Tree):
            return False  # the call ended early and the rest is prose
        return _call_from_tree(call_tree, text, 0).args == (arg,)

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

    # -- constrained sampling ------------------------------------------------------------------
    def call_grammar(self, tools: Iterable[ToolSpec], closers: Sequence[str] | None = None) -> str:
        """An llguidance Lark grammar for what a model may write after the call-open "[": for each tool, under its
        name and each alias, `Name(` the tool's argument grammar `)`; then one of `closers` (default: "]" and the
        arrows). Everything it accepts parses as one call of this dialect, so a constrained sample always does."""
        from toolcall.argument_grammar import namespaced, read_grammar

        if self.open_marker != "[":
            raise ConfigError(f"constrained calls are written in the bracket spelling ([Tool(args)]); this dialect "
                              f"writes {self.spelling!r} calls, opened by {self.open_marker!r}")
        closers = tuple(closers) if closers is not None else ("]", *self.call_markers)
        if not closers or not all(c in ("]", *self.call_markers) for c in closers):
            raise ConfigError(f"a Toolformer call closes with ']' or an arrow ({', '.join(self.call_markers)}); "
                              f"got closers {closers!r}")
        invocations: list[str] = []
        arguments: list[str] = []
        for number, tool in enumerate(tools):
            lark = tool.arguments_grammar()
            inner = ""
            if lark.strip():
                arguments.append(namespaced(lark, f"t{number}", tool.name))
                inner = f" t{number}_start "
            for name in dict.fromkeys((tool.name, *tool.aliases)):
                if not CALL_NAME.fullmatch(name):
                    raise ConfigError(f"tool name {name!r} cannot be written in a Toolformer call; a name is letters, "
                                      "digits and _ and does not start with a digit")
                invocations.append(f'"{name}("{inner}")"' if inner else f'"{name}()"')
        if not invocations:
            raise ConfigError("a call grammar needs at least one tool")
        return Template(read_grammar("toolformer_call.lark")).substitute(
            invocations="\n          | ".join(invocations),
            closers=" | ".join(json.dumps(c, ensure_ascii=False) for c in closers),
            arguments="\n".join(arguments))

    # -- the decoding loop ---------------------------------------------------------------------
    def may_open_call(self, text: str) -> bool:
        # "[" opens a call only as "[Name(": "[1]", "[see the docs]" and "[Name (" are prose from their second word.
        return not text.startswith("[") or name_then_paren(text, 1, dotted=False, spaced=False)

    def _head_is_call(self, text: str) -> bool:
        # "[Name(" is a call begun; "[Note" at a cut may be prose as well as a call's name, and stays.
        return text.startswith("[") and self.may_open_call(text) and "(" in text[:CALL_HEAD_CHARS]

    def pending(self, text: str) -> PendingCalls | None:
        """The call whose arrow ends `text`, and how to close it: spaced like the text before the arrow.

        `[Calculator(3 * 4) ->` closes with " 12]", `[Calculator(3*4)->` with "12]", `<API>[Calculator(3*4)]->`
        with "12</API>", `<API> Calculator(3*4) →` with " 12 </API>". A malformed call (`[f(2, 3 ->`) is closed
        the same way, with what opened it, so its error result ends it. An arrow inside a quoted argument still being
        written (`[echo("a ->`) ends no call: None, as for an arrow in prose; if the line then ends with that
        argument still open (`call_breaks`: the loop stops at the line break), the call is malformed, and pending of
        the text ending with that line break says so.
        """
        found = self._at_arrow(text)
        if found is None and text.endswith("\n"):
            return self._quote_left_open(text)
        return found

    def call_breaks(self, text: str, start: int) -> tuple[str, ...]:
        """A line break, while an arrow lies in a quoted argument still open on the text's last line: a call lives on
        one line, so the line's end leaves that argument, and the call, unclosed for good. `[Calculator("3+4) -> then
        [Calculator(2+2) ->` ran neither call and gave no error: the quote took the rest of the line."""
        body = text.rstrip()
        if not body.endswith(self.call_markers) or _opening(body, len(body) - (1 if body.endswith("→") else 2)) is None:
            return ()  # no call on the line (read as cheaply as pending reads it): prose arrows cost no more
        return ("\n",) if _open_quote_with_arrow(body, len(body)) is not None else ()

    @staticmethod
    def _quote_left_open(text: str) -> PendingCalls | None:
        """At a line break that ends `text`: the call on the line before it whose quoted argument, holding an arrow,
        was still open there (see call_breaks), malformed with the issue parse reports for it; None if there is none.
        Its error goes on the next line ("Error: ..." and a line break): the call's own line is over."""
        end = len(text) - 1
        start = _open_quote_with_arrow(text, end)
        if start is None:
            return None
        stop = min(end, start + MAX_CALL_CHARS)
        read = _read_candidate(_parser(), text, start, stop, _Closers(text, start, stop), GrammarBudget(len(text)))
        if not isinstance(read, SyntaxIssue):
            return None
        return PendingCalls((), (read,), _Closing("", "\n"))

    def _at_arrow(self, text: str) -> PendingCalls | None:
        """`pending` at the arrow that ends `text` (trailing white space aside)."""
        body = text.rstrip()
        if not body.endswith(self.call_markers):
            return None
        start = _opening(body, len(body) - (1 if body.endswith("→") else 2))
        if start is None:
            return None
        closer = "</API>" if body.startswith("<API>", start) else "]"
        parser = _parser()
        if len(body) - start > MAX_CALL_CHARS:
            # Past the cap parse reads no call: the candidate is a call that closed within it (the arrow is prose after
            # it), or broken, with the issue parse reports. Lark never reads more than the cap (a megabyte of call
            # took 150 bytes of memory per character).
            line_end = body.find("\n", start, start + MAX_CALL_CHARS)
            stop = start + MAX_CALL_CHARS if line_end < 0 else line_end
            read = _read_candidate(parser, body, start, stop, _Closers(body, start, stop), GrammarBudget(len(body)))
            if not isinstance(read, SyntaxIssue):
                return None
            return PendingCalls((), (read,), _Closing(" ", closer))
        # The candidates in quoted arguments of others are text: the call the arrow may end is the last of the others,
        # unless it lies in a quoted argument still being written (`[WikiSearch("see [Calculator(2*3) ->`).
        live, quoted = _live_openings(body, _line_start(body, start), start + 1, len(body))
        if quoted or live is None:
            return None
        if live != start:
            if len(body) - live > MAX_CALL_CHARS:
                return None  # longer than a call may be: parse reads no call there either
            start = live
            closer = "</API>" if body.startswith("<API>", start) else "]"
        chunk = body[start:]
        try:
            tree = parser.parse(chunk, start="pending")
        except UnexpectedInput as err:
            if in_open_string(err, body, start):
                return None  # the arrow is part of a quoted argument: the call is still being written
            if self._is_complete_call(parser, chunk):
                return None  # the arrow follows a finished call: prose, nothing pending
            issue = issue_from_error(err, parser, body, start, len(chunk), "a pending Toolformer call")
            return PendingCalls((), (issue,), _Closing(" ", closer))
        return self._pending_call(tree, body, start, chunk, closer)

    @staticmethod
    def _pending_call(tree: Tree, body: str, start: int, chunk: str, closer: str) -> PendingCalls:
        """The pending call the grammar's `pending` rule read at `body[start:]` (`chunk`), and how to close it."""
        opening, arrow = tree.children[0], tree.children[-1]
        assert isinstance(opening, Tree) and isinstance(arrow, Token)  # the grammar's `pending` rule
        invocation = find_child(opening, "invocation")
        assert invocation is not None
        call = ToolCall(str(invocation.children[0]), args_from_tree(invocation.children[1], chunk), None,
                        (start, len(body)))
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
        return PendingCalls((call,), (), _Closing(" " if spaced else "", closer))

    @staticmethod
    def _is_complete_call(parser: Lark, chunk: str) -> bool:
        try:
            parser.parse(chunk, start="start")
        except UnexpectedInput:
            return False
        return True

    def close(self, pending: PendingCalls, results: Sequence[str]) -> str:
        """The result (on one line) and the closing `]` or `</API>` that `pending` noted."""
        if len(results) != 1:
            raise ConfigError(f"a Toolformer call takes exactly one result, got {len(results)}")
        closing = pending.closing
        if not isinstance(closing, _Closing):
            raise ConfigError("close() needs the PendingCalls that ToolformerDialect.pending returned")
        start, arrow = pending.calls[0].span if pending.calls else (0, 0)
        room = MAX_CALL_CHARS - (arrow - start) - len(closing.lead) - len(closing.closer)
        return f"{closing.lead}{_fitted(self.defuse_result(one_line(str(results[0]))), room)}{closing.closer}"

    def defuse_result(self, result: str) -> str:
        """Reserved tags broken, and unpaired brackets made full-width (see _paired): the result ends where it should."""
        return defuse(_paired(result), self.reserved)

    # -- prompts and replies -------------------------------------------------------------------
    def messages(self, question: str, tools: Iterable[ToolSpec], history: Sequence[Mapping[str, str]] | None = None,
                 few_shot: int | bool = True, instruction: PromptSource = None) -> list[dict[str, str]]:
        """Chat messages: a system instruction listing the tools, worked examples as earlier turns, then the question.

        A custom tool (no built-in entry) gets a line built from its signature and description, plus its example.
        `instruction` is a file replacing the instruction text; `{tools}` in it is replaced by the tool lines.
        """
        data = read_json(PROMPT_FILE)
        lines: list[str] = []
        per_tool: list[list[tuple[str, str]]] = []
        for t in tools:
            key = builtin_key((t.name, *t.aliases), data["tools"])
            if key is not None:
                lines.append(f"- {data['tools'][key]['line']}")
                per_tool.append([(user, assistant) for user, assistant in data["tools"][key]["examples"]])
                continue
            description = t.description.strip() or "no description"
            line = data["custom_line"].format(signature=signature(t), description=description)
            if t.example:
                line += " " + data["custom_example"].format(example=t.example.strip())
            lines.append(f"- {line}")
        template = read_override(instruction) or data["instruction"]
        messages = [{"role": "system", "content": template.replace("{tools}", "\n".join(lines))}]
        for user, assistant in by_relevance(question, per_tool, few_shot):
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        messages += [dict(m) for m in history or []]
        messages.append({"role": "user", "content": question})
        return messages

    def prompt(self, question: str, tools: ToolSpecs | None, chat: ChatTemplate,
               history: Sequence[Mapping[str, str]] | None = None, few_shot: int | bool = True,
               instruction: PromptSource = None) -> str:
        """`messages` in the model's chat template; with no tools (None or none offered), the plain conversation."""
        if tools is None or len(tools) == 0:
            return chat([*(dict(m) for m in history or []), {"role": "user", "content": question}])
        return chat(self.messages(question, tools, history, few_shot, instruction))
