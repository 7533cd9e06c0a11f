"""The llama3_json dialect (Llama 3.1/3.2 JSON tool calls): `{"name": "f", "parameters": {...}}`, `; `-separated."""
from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace

from lark import Lark, Tree
from lark.exceptions import UnexpectedInput

from ..calls import SyntaxIssue, ToolCall
from .base import (
    CALL_HEAD_CHARS,
    MAX_CALL_CHARS,
    GrammarBudget,
    QuietString,
    QuietValue,
    issue_from_error,
    load_parser,
    make_issue,
    rule,
)
from .structured import (
    PLAIN_JSON,
    Fault,
    Group,
    JsonStop,
    ResultBlock,
    Scan,
    StructuredDialect,
    Truncated,
    call_from_object,
    call_from_value,
    cut_off,
    decode_json,
    dump_call_json,
    json_break,
    keyword_args,
    raw_decode,
    refused_number_token,
    skip_space,
)

PYTHON_TAG = "<|python_tag|>"
_HEADER_OPEN = "<|start_header_id|>"
HEADER = "<|start_header_id|>{role}<|end_header_id|>\n\n"
END_OF_TURN = "<|eot_id|>"
# Llama's turn tokens: they delimit the replies (a call is a whole reply) and the ipython turns that hold results.
# What the JSON of a call still being written may not hold for QuietValue: a special token ("<|": a turn, the python
# tag) and an escape of a lone surrogate half, which the grammar reads and a decoder may not. (A call-shaped object in
# its data is its data while it is written, `{"name": "Bob", ...}`: see `_groups`.)
_UNSURE = re.compile(r"<\||\\u[dD][89a-fA-F]")
_TURN_TOKEN = re.compile(r"<\|start_header_id\|>[^<]*<\|end_header_id\|>|<\|eot_id\|>|<\|eom_id\|>|<\|begin_of_text\|>")
_RESULT = re.compile(r"<\|start_header_id\|>ipython<\|end_header_id\|>[ \t]*\n?[ \t]*\n?(.*?)(?=<\|eot_id\|>|<\|eom_id\|>|<\|start_header_id\|>|$)", re.S)
# A reply that means to be a JSON call: `{"name"` first (or the python tag), so a malformed one is reported. Meta's
# own examples of Llama 3.1/3.3 replies write `{"type": "function", "name": ...}`: that is a call's start too.
_TYPE_FIRST = r'(?:"type"[ \t\r\n]*:[ \t\r\n]*"function"[ \t\r\n]*,[ \t\r\n]*)?'
_LOOKS_LIKE_CALL = re.compile(rf'\s*(?:<\|python_tag\|>|\{{\s*{_TYPE_FIRST}"name"\s*:)')
# The keys of a call's object, one of which it writes first.
_CALL_KEYS = ("name", "parameters", "arguments", "type")
# Where calls may start after prose.
_CALL_START = re.compile(rf'<\|python_tag\|>|\{{[ \t\r\n]*{_TYPE_FIRST}"name"[ \t\r\n]*:')


# Whole JSON strings, and a quote that starts one running to the end of the text.
_JSON_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|"', re.S)


def _break(text: str, start: int, end: int) -> Fault | Truncated | None:
    """Where the calls of the reply `text[start:end]` stop being calls, read in C (for when the grammar's budget is
    spent): a JSON fault, where text other than ";" follows an object, or None when each object decodes."""
    pos = skip_space(text, start + len(PYTHON_TAG)) if text.startswith(PYTHON_TAG, start) else start
    while True:
        where = json_break(text, pos, end)
        decoded = decode_json(text, pos, end) if where is None else where
        if not isinstance(decoded, tuple):
            return decoded
        pos = skip_space(text, decoded[1])
        if pos >= end:
            return None
        if not text.startswith(";", pos):
            return Fault(pos, 'expected ";" between calls')
        pos = skip_space(text, pos + 1)


def _reply_calls(reply: str, pos: int, breaks: list[int] | None = None
                 ) -> tuple[list[ToolCall], str] | Fault | Truncated | None:
    """The calls written from `reply[pos]` to its end (optionally after the python tag, separated by ";"), decoded in
    C, with spans in `reply`; a Fault the grammar does not see; Truncated when the reply ends inside a value (more text
    may make them calls); None when they are not all calls (the grammar and call_from_object then say why, where a
    reply means to be calls). Where a run of calls broke on other text, its position is added to `breaks`: a look from
    any later call of the run breaks there too."""
    style = ""
    if reply.startswith(PYTHON_TAG, pos):
        pos, style = skip_space(reply, pos + len(PYTHON_TAG)), "tag"
    calls: list[ToolCall] = []
    while True:
        decoded = decode_json(reply, pos, len(reply))
        if decoded is None and _open_string(reply, pos):
            return Truncated(len(reply))
        if not isinstance(decoded, tuple):
            if decoded is None and calls and breaks is not None:
                breaks.append(pos)
            return decoded
        value, stop = decoded
        call = call_from_value(value, (pos, stop), ("parameters", "arguments"), require_args=True)
        if call is None:
            if calls and breaks is not None:
                breaks.append(pos)
            return None
        calls.append(call)
        pos = skip_space(reply, stop)
        if pos >= len(reply):
            return calls, style
        if not reply.startswith(";", pos):
            if breaks is not None:
                breaks.append(pos)
            return None
        pos = skip_space(reply, pos + 1)
        if pos >= len(reply):
            return calls, style


_LENIENT = json.JSONDecoder(strict=False)


def _open_string(text: str, pos: int) -> bool:
    """Whether the JSON value at `text[pos]` breaks only where a string in it runs on to the end of the text."""
    try:
        raw_decode(_LENIENT, text, pos, len(text))
    except JsonStop as err:
        return err.msg.startswith("Unterminated string")
    return False


def _inside_reply(text: str, pos: int) -> bool:
    """Whether `pos` is inside a reply: neither the start of the text nor at a turn token."""
    return pos > 0 and _TURN_TOKEN.match(text, pos) is None


def _json_start(text: str, start: int) -> tuple[int, int]:
    """Where the reply a look from `start` reads begins (after its turn token and blanks), and where its JSON begins
    there (after the python tag, if it opens with one)."""
    turn = _TURN_TOKEN.match(text, start)
    begin = pos = skip_space(text, turn.end() if turn is not None else start)
    if text.startswith(PYTHON_TAG, pos):
        pos = skip_space(text, pos + len(PYTHON_TAG))
    return begin, pos


class _Nesting:
    """Which parts of a prose reply lie inside a JSON object, read forward once: a `{"name":` inside an object (an
    example config, `{"service": {"name": "prod", "parameters": {...}}, ...}`, or OpenAI's wrapper) is that object's
    data, not a call. An object is a `{` from which JSON decodes, whole (its inside is skipped) or up to the end of
    the reply (still being written: everything after it is inside); a `{` from which no JSON decodes (`{1, 2`, a quoted
    "{") is prose, and reading goes on where the decoder stopped."""

    _BRACE = re.compile(r"\{")

    def __init__(self, text: str) -> None:
        self.text, self.pos, self.inside_until = text, 0, 0
        self.outer: int | None = None  # where an object still open at the end of the text begins
        self.text_end = len(text.rstrip())  # once: stripped at each failed object, a long text was copied each time

    def open_at(self, target: int) -> bool:
        """Whether `target` (never going back) lies inside an object that begins before it."""
        text = self.text
        while self.outer is None and self.pos < target:
            m = self._BRACE.search(text, self.pos, target)
            if m is None:
                self.pos = target
                break
            self._object_at(m.start())
        return target < self.inside_until or (self.outer is not None and self.outer < target)

    def _object_at(self, at: int) -> None:
        """Read the object that may begin at `at`; self.pos moves past it, or past where it stopped being JSON."""
        try:
            _, end = raw_decode(_LENIENT, self.text, at, len(self.text))
        except JsonStop as err:
            if err.pos >= self.text_end or err.msg.startswith("Unterminated string"):
                self.outer = at  # it runs to the end of the text (a string in it too): still being written
            self.pos = max(err.pos, at + 1)
        except RecursionError:  # nested past what the decoder reads (no call nests so deep): data to the end
            self.outer = at
            self.pos = len(self.text)
        else:
            self.pos = self.inside_until = end


def _prose_calls(reply: str, nesting: _Nesting | None = None) -> Iterator[re.Match[str]]:
    """The places in a prose reply where calls may start: `_CALL_START`s inside no object before them (each one
    decoded to the reply's end made the look quadratic in `{"name": "a", "parameters": {` repeated)."""
    nesting = nesting if nesting is not None else _Nesting(reply)
    for m in _CALL_START.finditer(reply):
        if not nesting.open_at(m.start()):
            yield m


def _shift(call: ToolCall, offset: int) -> ToolCall:
    return replace(call, span=(call.span[0] + offset, call.span[1] + offset))


def _parser() -> Lark:
    return load_parser("llama3_json.lark", ("start",))


class LlamaResults:
    """Results as Llama writes `role: tool` messages: ipython turns, one per call, after the assistant's turn."""

    name = ""
    reserved: tuple[str, ...] = (PYTHON_TAG, "<|start_header_id|>", "<|end_header_id|>", END_OF_TURN, "<|eom_id|>",
                                 "<|begin_of_text|>", "<|end_of_text|>")

    def _result_blocks(self, text: str, start: int = 0) -> list[ResultBlock]:
        blocks = []
        for m in _RESULT.finditer(text, start):
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
    call_start = "{"
    call_prefixes = (PYTHON_TAG,)
    trailers = ("<|eot_id|>", "<|eom_id|>")

    def may_open_call(self, text: str) -> bool:
        # A call is a JSON object whose first key is one a call has (its keys in any order after the python tag or at
        # a reply's start): `{ return x; }`, `{1}` and `{"host": "a"}` are no call from the first character that
        # cannot begin one of those keys, and stream on from there.
        if not text.startswith("{"):
            return True
        rest = text[1:CALL_HEAD_CHARS].lstrip()
        if not rest:
            return True
        if not rest.startswith('"'):
            return False
        key, quote, _ = rest[1:].partition('"')
        return any(k == key if quote else k.startswith(key) for k in _CALL_KEYS)

    def _head_is_call(self, text: str) -> bool:
        # `{"name":` is a call begun; `{"a": 1` at a cut may be any JSON in prose, and stays.
        return _CALL_START.match(text) is not None

    def continues_calls(self, text: str) -> bool:
        # The calls of a reply are one ";"-separated run: `{...}; {...}`.
        rest = text.lstrip()
        if not rest:
            return True
        if not rest.startswith(";"):
            return False
        rest = rest[1:].lstrip()
        return not rest or rest.startswith("{")

    def _groups(self, text: str, issues: list[SyntaxIssue], failed: list[tuple[int, int]],
                budget: GrammarBudget, start: int = 0) -> tuple[list[Group], bool]:
        parser = _parser()
        groups: list[Group] = []
        cut = False
        # A look that starts inside a reply starts where `_resume` found that reply to be prose: no call reply.
        prose_head = _inside_reply(text, start)
        window = start
        bounds = [start] + [p for m in _TURN_TOKEN.finditer(text, start) for p in m.span()] + [len(text)]
        results = self._result_blocks(text, start)
        result_starts = [b.span[0] for b in results]
        for seg_start, seg_end in zip(bounds[::2], bounds[1::2]):
            at = bisect.bisect_right(result_starts, seg_start) - 1
            if at >= 0 and seg_start < results[at].span[1]:
                continue  # an ipython turn: a result, not a reply
            segment = text[seg_start:seg_end]
            stripped = segment.strip()
            if not stripped:
                continue
            start = seg_start + len(segment) - len(segment.lstrip())
            end = seg_start + len(segment.rstrip())
            reply = text[start:end]
            cut = False
            if reply.startswith((PYTHON_TAG, "{")) and not (prose_head and seg_start == window):
                made = _reply_calls(reply, 0)
                if isinstance(made, tuple):
                    calls, style = made
                    groups.append(Group((start, end), [_shift(c, start) for c in calls], style))
                    continue
                looks = _LOOKS_LIKE_CALL.match(reply) is not None
                if looks and isinstance(made, Fault):
                    issues.append(make_issue(text, start + made.pos, made.message + " in a JSON tool call"))
                    failed.append((start, end))
                    continue
                if looks:
                    cut = self._report(parser, text, start, end, seg_end, issues, failed, groups, budget)
                    continue
            # Prose first: the calls are the JSON that runs from a call's `{"name":` to the end of the reply.
            breaks: list[int] = []
            for m in _prose_calls(reply):
                if breaks and m.start() < breaks[-1]:
                    continue  # a later call of a run that broke on text: it breaks at the same place
                made = _reply_calls(reply, m.start(), breaks)
                if isinstance(made, tuple):
                    calls, style = made
                    groups.append(Group((start + m.start(), end), [_shift(c, start) for c in calls], style))
                    break
                if isinstance(made, Fault):  # call-shaped, with a value no call may carry (a bad escape, 1e999)
                    issues.append(make_issue(text, start + made.pos, made.message + " in a JSON tool call"))
                    failed.append((start + m.start(), end))
                    break
                if isinstance(made, Truncated) and seg_end == len(text):
                    # A call still being written: a call-shaped object in its arguments is its data, not a call (the
                    # loop ran `g` of `Sure. {"name": "batch", "parameters": {"calls": [{"name": "g", ...}` at once).
                    break
        return groups, cut

    def _report(self, parser: Lark, text: str, start: int, end: int, seg_end: int, issues: list[SyntaxIssue],
                failed: list[tuple[int, int]], groups: list[Group], budget: GrammarBudget) -> bool:
        """A reply that means to be calls but did not decode as such: its issues by the grammar (and its good calls, when
        a sibling is broken); whether it was cut off by the end of the text. Past the grammar's budget, it is reported
        where the C decoder finds it breaks."""
        chunk = text[start:min(end, start + MAX_CALL_CHARS)]
        # A reply longer than the grammar reads is reported where the C decoder finds it breaks: read in part, its
        # first 64 KiB could parse as good calls, and the broken rest (and its issue) was dropped without a word.
        if end - start > MAX_CALL_CHARS or not budget.spend(len(chunk)):
            at_end = seg_end == len(text)
            return self._undiagnosed(text, start, len(text) if at_end else end, "a JSON tool call",
                                     _break(text, start, end) or Fault(start, 'no call (each needs a "name" string and '
                                                                       '"parameters", a JSON object)'),
                                     issues, failed) is False
        try:
            tree = parser.parse(chunk)
        except UnexpectedInput as err:
            issue = issue_from_error(err, parser, text, start, len(chunk), "a JSON tool call")
            issues.append(issue)
            failed.append((start, end))
            return seg_end == len(text) and cut_off(err, parser, text[issue.pos:end])
        objects = [c for c in tree.children if isinstance(c, Tree) and rule(c) == "object"]
        calls: list[ToolCall] = []
        faults: list[Fault] = []
        for obj in objects:
            made = call_from_object(obj, start, (start + obj.meta.start_pos, start + obj.meta.end_pos),
                                    ("parameters", "arguments"), require_args=True)
            (faults if isinstance(made, Fault) else calls).append(made)  # type: ignore[arg-type]
        # A JSON reply that is not a call (`{"name": "Bob"}`) is just a reply; after the tag, or beside good calls,
        # it is a broken call.
        if faults and (calls or chunk.startswith(PYTHON_TAG)):
            for fault in faults:
                issues.append(make_issue(text, fault.pos, fault.message + " in a JSON tool call"))
            failed.append((start, end))
        if calls:
            groups.append(Group((start, end), calls, "tag" if chunk.startswith(PYTHON_TAG) else ""))
        return False

    stream_signals = ("<|start_header_id|>", "<|eot_id|>", "<|eom_id|>")

    def _settled(self, text: str, found: Scan) -> int:
        """Up to the last turn token: a call is a whole reply, so the reply being written may still turn into prose."""
        starts = [m.start() for m in _TURN_TOKEN.finditer(text)]
        return starts[-1] if starts else 0

    stream_quotes = ""  # replies are parsed again only at turn tokens, which never sit inside a call

    def stream_scan(self, text: str) -> tuple[list[ToolCall], int, bool]:
        """The calls of the replies before the last turn token, which is where a later parse starts."""
        found = self.scan(text)
        limit = self._settled(text, found)
        return [c for g in found.groups if g.span[1] <= limit for c in g.calls], limit, False

    def _resume(self, text: str, end: int, found: Scan, start: int) -> int:
        """The reply being written is looked at again from its turn token while it may be a call reply; once it is
        prose (it did not start like a call), from its first candidate that more text may still make calls, so the
        loop does not decode every `{"name": ...}` of a long prose reply again at each "}"."""
        last = max(_TURN_TOKEN.finditer(text, start), key=lambda m: m.start(), default=None)
        boundary = last.start() if last is not None else start
        head = last.end() if last is not None else start
        # A turn header still being written (a "}" in its role the marker) is a turn token once written: look from
        # there. One with a "<" in it never is.
        header = text.rfind(_HEADER_OPEN, head)
        limit = end if header < 0 or text.find("<", header + len(_HEADER_OPEN)) >= 0 else min(header, end)
        if found.groups and found.groups[-1].span[1] > head:
            group = found.groups[-1]
            reply_start = skip_space(text, head)
            return min(boundary if group.span[0] <= reply_start else group.span[0], limit)
        reply = text[head:limit]
        body = reply.lstrip()
        if not (last is None and _inside_reply(text, start)) and body.startswith((PYTHON_TAG, "{")) \
                and _LOOKS_LIKE_CALL.match(body):
            return min(boundary, limit)
        nesting = _Nesting(reply)
        breaks: list[int] = []
        for m in _prose_calls(reply, nesting):
            if breaks and m.start() < breaks[-1]:
                continue
            if _reply_calls(reply, m.start(), breaks) is not None:
                return head + m.start()
        # A later look starts where no object is open, or a call-shaped object in one would look like a call to it.
        nesting.open_at(len(reply))
        return head + nesting.outer if nesting.outer is not None else limit

    def quiet_string(self, text: str, start: int) -> QuietString | None:
        """Quiet where the reply from `start` (its turn token, or its first call in prose) is JSON, written from its
        first "{" to the end of the text with no turn token, that ends inside a string whose content so far is plain."""
        pos = _json_start(text, start)[1]
        if not text.startswith("{", pos) or _TURN_TOKEN.search(text, pos) is not None:
            return None
        for m in _JSON_STRINGS.finditer(text, pos):
            if m.end() - m.start() == 1:  # the string still being written
                if PLAIN_JSON.fullmatch(text, m.end()) is None:
                    return None
                return QuietString(len(text), m.end(), start + MAX_CALL_CHARS - 1, PLAIN_JSON)
        return None

    def quiet_value(self, text: str, start: int) -> QuietValue | None:
        """Quiet where the reply from `start` is JSON, written from its first "{" (or its python tag) to the end of the
        text with no turn token, that the grammar reads so far and that ends inside a call's arguments (data:
        `{"name": "plot", "parameters": {"points": [[1, 2], [3, 4], `)."""
        begin, pos = _json_start(text, start)
        opener = _CALL_START.match(text, pos)
        if opener is None:
            return None
        return QuietValue.after(_parser(), "start", text, begin, opener.end(), start + MAX_CALL_CHARS - 1, _UNSURE,
                                {'"': PLAIN_JSON}, refused_number_token)

    def _render_group(self, calls: Sequence[ToolCall], style: str) -> str:
        body = "; ".join(dump_call_json({"name": c.tool, "parameters": keyword_args(c, self.name)}, self.reserved)
                         for c in calls)
        return f"{PYTHON_TAG if style == 'tag' else ''}{body}"
