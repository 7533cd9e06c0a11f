"""Parsing text that arrives in chunks (a decoding loop, a streaming server): calls reported as soon as they are final."""
from __future__ import annotations

from ..calls import Parsed, ToolCall
from .base import Dialect


class IncrementalParser:
    """Feed a dialect's text chunk by chunk; each `feed` returns the calls that became final with that chunk.

    A call is final when no text that may follow can change it (its block, list or object has closed); results that
    arrive later are not waited for, so reported calls carry no result. Where a dialect cannot know before the text
    ends (llama3_json: a call is a whole reply; toolformer and moss: results belong to the call), calls are reported by
    `finish`. After the last chunk, `finish()` returns `parse(whole text)`, whatever the chunking, and the reported
    calls are its calls (results aside) in order.
    """

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.text = ""
        self.reported: list[ToolCall] = []

    def _final(self, parsed: Parsed) -> list[ToolCall]:
        """Calls of `parsed` (a parse of the text so far) that more text cannot change."""
        limit = self.dialect.settled(parsed.text)  # type: ignore[attr-defined]
        out = []
        for call in parsed.calls:
            if call.span[1] > limit:
                break
            out.append(call.with_result(None))
        return out

    def feed(self, chunk: str) -> list[ToolCall]:
        """Add `chunk`; the calls that became final with it, in text order."""
        before = len(self.text)
        self.text += chunk
        # Only the text that ends a call (a closing tag or bracket, a turn token) can make one final: without it in
        # the new text (or straddling its start) nothing is parsed again.
        signals = tuple(getattr(self.dialect, "stream_signals", ()))
        if not signals:
            return []
        reach = max(len(s) for s in signals) - 1
        if not any(s in self.text[max(0, before - reach):] for s in signals):
            return []
        final = self._final(self.dialect.parse(self.text))
        fresh = final[len(self.reported):]
        self.reported.extend(fresh)
        return fresh

    def finish(self) -> Parsed:
        """The parse of the whole text; calls not reported yet are added to `reported`."""
        parsed = self.dialect.parse(self.text)
        self.reported.extend(c.with_result(None) for c in parsed.calls[len(self.reported):])
        return parsed
