"""Parsing text that arrives in chunks (a decoding loop, a streaming server): calls reported as soon as they are final."""
from __future__ import annotations

import re

from ..calls import Parsed, ToolCall
from .base import Dialect

# What the bracket tracker looks at: quotes, backslashes, brackets, newlines; everything else is skipped in C.
_PIECE = re.compile(r"""["'\\\[\](){}\n]""")


class _Depth:
    """The bracket depth of a call still being written, outside its strings, kept up to date chunk by chunk, so that
    the text is parsed again only when the call may have closed (not at every inner bracket)."""

    def __init__(self, quotes: str, newline_ends_strings: bool) -> None:
        self.quotes = quotes
        self.newline_ends_strings = newline_ends_strings
        self.depth = 0
        self.quote: str | None = None
        self.escape = False  # the last chunk ended with a backslash inside a string

    def feed(self, text: str) -> bool:
        """Track `text`; whether the brackets were balanced outside a string at some point in it (or at its end)."""
        # Balanced before the chunk counts too: a signal completed by this chunk may end a call that was balanced
        # when the chunk began, though the chunk goes on to open a bracket (`</tool_call>{`).
        hit = self.depth <= 0 and self.quote is None
        skip = 1 if self.escape else 0  # positions below `skip` are escaped characters
        self.escape = False
        for m in _PIECE.finditer(text):
            p = m.start()
            if p < skip:
                continue
            c = m.group()
            if self.quote is not None:
                if c == "\\":
                    skip = p + 2
                    self.escape = p + 1 >= len(text)
                elif c == self.quote or (c == "\n" and self.newline_ends_strings):
                    self.quote = None
            elif c in self.quotes:
                self.quote = c
            elif c in "[({":
                self.depth += 1
            elif c in "])}":
                self.depth -= 1
                hit = hit or self.depth <= 0
        return hit or (self.depth <= 0 and self.quote is None)


class IncrementalParser:
    """Feed a dialect's text chunk by chunk; each `feed` returns the calls that became final with that chunk.

    A call is final when no text that may follow can change it (its block, list or object has closed); results that
    arrive later are not waited for, so reported calls carry no result. Where a dialect cannot know before the text
    ends (llama3_json: a call is a whole reply; toolformer and moss: results belong to the call), calls are reported by
    `finish`. After the last chunk, `finish()` returns `parse(whole text)`, whatever the chunking, and the reported
    calls are its calls (results aside) in order.

    The work is linear in the text, amortized per character: only the text from where a call may still start (the
    call being written, or the last few hundred characters) is parsed again, and only when a chunk brings text that
    can end a call while that call's brackets are balanced.
    """

    def __init__(self, dialect: Dialect | str) -> None:
        if isinstance(dialect, str):  # a name, as every other entry point takes one ("pythonic" found no calls)
            from . import get_dialect

            dialect = get_dialect(dialect)
        self.dialect = dialect
        self.reported: list[ToolCall] = []
        self._parts: list[str] = []  # every chunk so far (joined on demand)
        self._window: list[str] = []  # the text from `_base` on, in chunks
        self._base = 0
        self._tail = ""  # the last characters fed, so that a signal split across two chunks is seen
        self._tracker: _Depth | None = None
        self._signalled = False  # a signal arrived since the last parse (it is not lost while brackets are open)
        self._signals: tuple[str, ...] = tuple(getattr(dialect, "stream_signals", ()))
        self._reach = max((len(s) for s in self._signals), default=1) - 1

    @property
    def text(self) -> str:
        """Everything fed so far."""
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    def feed(self, chunk: str) -> list[ToolCall]:
        """Add `chunk`; the calls that became final with it, in text order."""
        if not chunk:
            return []
        self._parts.append(chunk)
        if not self._signals:
            return []
        self._window.append(chunk)
        seen = self._tail + chunk
        # The last `_reach` characters, or all of them while fewer were fed: a negative start (`len(seen) - _reach`
        # below 0) counted from the end and cut the tail, so a closing tag fed in small chunks was never seen whole.
        self._tail = seen[max(0, len(seen) - self._reach):] if self._reach else ""
        balanced = self._tracker.feed(chunk) if self._tracker is not None else True
        # Only text that ends a call (a closing tag or bracket, a turn token) can make one final, and only once the
        # call's brackets are balanced: otherwise nothing is parsed again. A signal that came while they were not is
        # kept until they are (it is no longer in `seen` then).
        self._signalled = self._signalled or any(s in seen for s in self._signals)
        if not balanced or not self._signalled:
            return []
        self._signalled = False
        window = "".join(self._window)
        final, resume, open_call = self.dialect.stream_scan(window)  # type: ignore[attr-defined]
        fresh = [ToolCall(c.tool, c.args, None, (c.span[0] + self._base, c.span[1] + self._base), c.id) for c in final]
        self.reported.extend(fresh)
        rest = window[resume:]
        self._base += resume
        self._window = [rest] if rest else []
        self._tracker = None
        quotes = getattr(self.dialect, "stream_quotes", "")
        if open_call and quotes:
            self._tracker = _Depth(quotes, getattr(self.dialect, "stream_newline_ends_strings", False))
            self._tracker.feed(rest)
        return fresh

    def finish(self) -> Parsed:
        """The parse of the whole text; calls not reported yet are added to `reported`."""
        parsed = self.dialect.parse(self.text)
        # Matched by span, not by count: a call is added only if no call at its place was reported (filling in by
        # index took the reported calls for a prefix of the parse's, and a call reported out of its turn made one
        # reported twice and another never).
        seen = {c.span for c in self.reported}
        self.reported.extend(c.with_result(None) for c in parsed.calls if c.span not in seen)
        self.reported.sort(key=lambda c: c.span)   # in the text's order, as parse gives them
        return parsed
