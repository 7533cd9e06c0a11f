"""The loop's text as the client reads it, released incrementally so streamed and non-streamed replies are equal."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from ..dialects.base import CALL_HEAD_CHARS

#: How many characters after a possible call start are held back from the reply before they are released as prose.
HOLD_CHARS = 4000
#: How many possible call starts the end of a reply looks at for a call the model did not finish.
MAX_UNFINISHED_STARTS = 32


def marker_begun(text: str, markers: Iterable[str], shortest: int = 1) -> int:
    """How many characters at the end of `text` may begin one of `markers` (a proper prefix of one, at least
    `shortest` characters long); 0 for none. Text that may still become a marker is held back, not released."""
    return max((k for m in markers if m for k in range(min(len(m) - 1, len(text)), shortest - 1, -1)
                if text.endswith(m[:k])), default=0)


class ReplyFilter:
    """Turns the loop's text into the reply text.

    Text from a possible call start (`call_start`) is held back until it is known whether a call starts there; a call
    is cut out (with its result) unless `keep_markup`; a client's call is always cut (it comes back as tool_calls);
    the reply's leading and trailing whitespace is dropped; text from a stop sequence on is dropped and ends the reply.
    Offsets given to `cut_call` are in the session's text; `start` is where the first text fed to the filter stands.
    """

    def __init__(self, call_start: str, keep_markup: bool, stops: Sequence[str], *, one_line_calls: bool = False,
                 start: int = 0, open_marker: str = "", grouped: bool = False,
                 may_open: Callable[[str], bool] | None = None, prefixes: Sequence[str] = ()) -> None:
        self.opener = call_start
        # Whether the text from a call start may still begin a call (the dialect's may_open_call): "[1]" in prose is
        # released at its "1", not held back to the end of its line or of the reply.
        self.may_open = may_open
        # Markup written right before a call start that belongs to the call ("<|python_tag|>"): held and cut with it.
        self.prefixes = tuple(p for p in prefixes if p)
        self.marker = open_marker   # written before a group of calls ("[TOOL_CALLS]"): cut with the group
        self.grouped = grouped      # calls sit inside a list or object ("[f(x), g(y)]"): its bracket goes too
        self.one_line = one_line_calls
        self.keep = keep_markup
        self.stops = tuple(stops)
        self.held = ""         # text not yet released
        self.settled = 0       # held[:settled] holds no possible call start
        self.hidden = 0        # held[:hidden] is the client's own text (a prefill's open call): never released
        self.started = False   # something other than whitespace was released (leading space is dropped)
        self.mend = False      # a call was cut: one space of the text after it is redundant
        self.stopped = False
        self.scanned = 0       # held[:scanned] was searched for stops (up to a stop's length before it)
        self.floor = 0         # held[:floor] is never searched: it ends with a tool's output
        # Where held text stands in the session's text: (index in held, session offset) where a contiguous run of
        # held text begins; text cut or skipped between runs is in the session but not in held.
        self.marks: list[tuple[int, int]] = [(0, start)]
        self.end = start       # the session offset after the last text seen
        self.gap = False       # text was cut or skipped since the last run began

    def skip(self, text: str) -> None:
        """Text the session holds but the reply leaves out (a cut call's results)."""
        self.end += len(text)
        self.gap = True

    def _index(self, offset: int) -> int:
        """The index in held of a session offset (0 when it lies before what is held)."""
        for index, at in reversed(self.marks):
            if at <= offset:
                return max(0, min(index + offset - at, len(self.held)))
        return 0

    def prime(self, tail: str, answered: int = 0) -> None:
        """The assistant text the client asked to continue: an open call at its end is held (and cut with the call
        it starts), never released, since the client wrote it. A call in `tail[:answered]` is one whose results the
        client sent: closed, so the reply streams at once (held as open, the whole continuation came at the end)."""
        at = tail.rfind(self.opener) if self.opener else -1
        if at >= answered and self._live(tail, at):
            self.held = tail[at:]
            self.hidden = len(self.held)
            self.marks = [(0, self.end - len(self.held))]

    def _live(self, text: str, at: int) -> bool:
        """Whether a call opened at `at` may still be open at the end of `text`."""
        return (len(text) - at < HOLD_CHARS and not (self.one_line and "\n" in text[at:])
                and (self.may_open is None or self.may_open(text[at:at + CALL_HEAD_CHARS])))

    def _live_starts(self) -> Iterator[int]:
        """The live call starts in the held text, in order: a call's arguments may hold the same character (a
        pythonic list)."""
        at = self.held.find(self.opener, self.settled) if self.opener else -1
        while at >= 0:
            if self._live(self.held, at):
                yield at
            at = self.held.find(self.opener, at + 1)

    def _live_start(self) -> int:
        """Where the first live call start in the held text is (-1: none)."""
        return next(self._live_starts(), -1)

    def _last_live(self) -> int:
        """The last live call start in the held text (-1: none)."""
        return max(self._live_starts(), default=-1)

    def _hold_from(self) -> int:
        """Where the held text must stop being released: a live call start, a partial stop, trailing space."""
        end = len(self.held)
        if self.opener:
            at = self._live_start()
            if at >= 0:
                end = self._prefix_start(at)
            else:
                end -= marker_begun(self.held, (self.opener,))
        if self.prefixes:   # a call prefix the text ends with, whole or begun: a call start may follow
            end = min(end, self._prefix_start(len(self.held)), len(self.held) - marker_begun(self.held, self.prefixes))
        if self.stops:
            end = min(end, max(0, len(self.held) - max(len(s) for s in self.stops) + 1))
        end = max(end, self.hidden)
        while end > self.hidden and self.held[end - 1].isspace():
            end -= 1
        return end

    def _release(self, end: int) -> str:
        if end <= self.hidden:
            return ""
        out = self.held[self.hidden:end]
        self.held = self.held[end:]
        self.settled = max(0, self.settled - end)
        self.scanned = max(0, self.scanned - end)
        self.floor = max(0, self.floor - end)
        self.hidden = 0
        shifted = [(i - end, at) for i, at in self.marks]
        kept = [(i, at) for i, at in shifted if i > 0]
        before = [(i, at) for i, at in shifted if i <= 0]
        self.marks = ([(0, before[-1][1] - before[-1][0])] if before else []) + kept
        if not self.started:
            out = out.lstrip()
            self.started = bool(out)
        return out

    def text(self, delta: str, tool: bool = False) -> str:
        """Model text, or (`tool`) a kept call's result; returns what can be released now."""
        if self.stopped:
            return ""
        dropped = 0
        if self.mend and delta:
            # "is [Calculator(2 * 3) -> 6] 6" without its call would read "is  6": drop the second space.
            if self.held[-1:].isspace():
                dropped = len(delta) - len(delta.lstrip(" "))
            self.mend = len(delta) == dropped
        if self.gap or dropped:
            self.marks.append((len(self.held), self.end + dropped))
            self.gap = False
        self.held += delta[dropped:]
        self.end += len(delta)
        if tool:  # the model did not write it: a stop sequence in a tool's result does not end the reply
            self.floor = self.scanned = len(self.held)
        else:
            self._find_stop()
        if self.stopped:
            return self._release(len(self.held.rstrip()))
        return self._release(self._hold_from())

    def _find_stop(self) -> None:
        """End the held text at the first stop sequence in what the reply will show of the model's own text: not in
        a call still being written (cut, it is never shown; a stop inside its markup ended the reply before the
        call could run) nor in a tool's result."""
        if not self.stops:
            return
        limit = self._live_start()
        self._stop_before(len(self.held) if limit < 0 else limit)

    def _stop_before(self, limit: int) -> None:
        """End the held text at the first stop sequence that lies before `limit` in text not yet searched."""
        begin = max(self.hidden, self.floor, self.scanned - max(len(s) for s in self.stops) + 1)
        found = [at for at in (self.held.find(s, begin, limit) for s in self.stops) if at >= 0]
        if found:
            self.held = self.held[:min(found)]
            self.stopped = True
        self.scanned = max(self.scanned, limit)

    def cut_call(self, start: int | None = None) -> str:
        """The call ending the held text is removed, from `start` (its offset in the session's text) or else from its
        call start on; returns what can be released now."""
        if start is not None:
            at = self._group_start(self._index(start))
        else:   # the last start still held as a call's: one already released as prose is not cut, nor prose after it
            at = self._last_live()
        if at >= 0:
            self.held = self.held[:at]
            self.hidden = min(self.hidden, at)
            self.scanned, self.floor = min(self.scanned, at), min(self.floor, at)
            self.marks = [(i, o) for i, o in self.marks if i <= at] or [(0, self.end)]
            self.gap = True
            self.mend = True
        self.settled = len(self.held)
        return self._release(self._hold_from())

    def _prefix_start(self, at: int) -> int:
        """Where the call prefix ("<|python_tag|>") right before `at` (white space between) begins; `at` if none."""
        head = self.held[:at].rstrip(" \t")   # on the call's line, as the dialects join them
        found = next((p for p in self.prefixes if head.endswith(p)), None)
        return len(head) - len(found) if found is not None else at

    def _group_start(self, at: int) -> int:
        """Where the group holding a call that starts at `at` begins: the list bracket (white space between: "[
        get_weather(...)]"), the open marker and a call prefix before it."""
        while True:
            before = len(self.held[:at].rstrip())
            prefixed = self._prefix_start(at)
            # White space between only where that bracket is itself where calls start (pythonic's "["): a prose
            # bracket before a hermes block ("options: [\n<tool_call>") is the reply's.
            if self.grouped and before > 0 and self.held[before - 1] in "[{" and (
                    before == at or self.held[before - 1] == self.opener):
                at = before - 1
            elif self.marker and self.held.endswith(self.marker, 0, before):
                at = before - len(self.marker)  # "[TOOL_CALLS] [" and "<|Commands|>: f()"
            elif prefixed < at:
                at = prefixed
            else:
                return at

    def keep_call(self) -> str:
        """The call ending the held text stays in the reply: it is no longer a possible start."""
        self.settled = len(self.held)
        return ""

    def finish(self, is_call: Callable[[str], bool] | None = None) -> str:
        """The rest of the reply, trailing whitespace dropped. With `is_call` (whether a stretch of text from a
        possible call start to the next one holds call markup, finished or not), a call the reply ended in (the token
        limit struck inside it) is cut rather than shown as prose."""
        if is_call is not None and not self.keep:
            starts: list[int] = []
            at = self._live_start()
            while at >= 0:
                starts.append(at)
                at = self.held.find(self.opener, at + 1)
            starts = starts[-MAX_UNFINISHED_STARTS:]  # the call the limit struck in is the last thing written
            for k, at in enumerate(starts):
                if is_call(self.held[at:starts[k + 1] if k + 1 < len(starts) else len(self.held)]):
                    self.held = self.held[:max(self._prefix_start(at), self.hidden)]
                    break
            # The first characters of a marker such as "<tool_call>" at the very end: the call was being opened.
            partial = marker_begun(self.held, (self.opener,), shortest=2)
            self.held = self.held[:max(len(self.held) - partial, self.hidden)]
            # A call prefix the limit struck right after ("Sure. <|python_tag|>"): the call it began was not written.
            self.held = self.held[:max(self._prefix_start(len(self.held.rstrip())), self.hidden)]
        if self.stops and not self.stopped:
            # Held as a possible call start, it turned out prose: a stop sequence in it ends the reply there too.
            self._stop_before(len(self.held))
        return self._release(len(self.held.rstrip()))
