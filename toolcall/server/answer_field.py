"""A reply's fields before its answer (MOSS: inner thoughts, commands, results) kept out of the content a client reads."""
from __future__ import annotations

from typing import Literal

from .reply_filter import marker_begun

#: What a piece of the loop's text is to the client: the model's reasoning, markup it never reads, or the answer
#: (the model's own text, or a tool's text spliced into it).
Kind = Literal["reasoning", "skip", "model", "tool"]


class AnswerField:
    """Splits the loop's text into reasoning, the fields between it and the answer, and the answer.

    For a dialect whose replies write fields before the answer (`Dialect.answer_opener`): the first field, up to
    `thoughts_end` (or a call's opener, or the answer opener), is the model's reasoning, given whole once it ends; from
    there to the answer opener (calls and their results) nothing is the client's content; after it, everything is
    the answer, until the model opens a thoughts field or a call again (a second round). A reply that ends without
    writing any field was all answer (a model that ignored the format), unless the token limit cut its thoughts.
    Each character fed comes back exactly once, so the reply filter's offsets stay those of the session.
    """

    def __init__(self, answer_opener: str, thoughts_end: str = "", call_opener: str = "",
                 thoughts_opener: str = "") -> None:
        self.opener = answer_opener
        self.thoughts_end, self.call_opener, self.thoughts_opener = thoughts_end, call_opener, thoughts_opener
        self.phase = "thoughts" if answer_opener else "answer"
        self.held = ""

    def prime(self, tail: str) -> None:
        """The assistant text the client asked to continue: the phase it leaves the reply in."""
        if tail.strip():
            self.feed(tail)
            self.held = ""

    def feed(self, text: str, tool: bool = False) -> list[tuple[Kind, str]]:
        """The pieces of `text` as the client sees them, in order."""
        if not self.opener:
            return [("tool" if tool else "model", text)] if text else []
        out: list[tuple[Kind, str]] = []
        if tool and self.held and self.phase != "fields":
            # A tool's text (the loop closing calls) ends what the model was writing: its thoughts, or the answer
            # held back for a marker that did not come.
            out.append(("reasoning" if self.phase == "thoughts" else "model", self.held))
            self.held = ""
            if self.phase == "thoughts":
                self.phase = "fields"
        self.held += text
        while self.held:
            more = self._step(tool, out)
            if not more:
                break
        return [(kind, piece) for kind, piece in out if piece]

    @staticmethod
    def _first(text: str, markers: tuple[str, ...]) -> tuple[int, str] | None:
        found = [(at, m) for m in markers if m and (at := text.find(m)) >= 0]
        return min(found) if found else None

    def _step(self, tool: bool, out: list[tuple[Kind, str]]) -> bool:
        """Move through the held text in the current phase; whether a phase changed (go on)."""
        held = self.held
        if self.phase == "thoughts":
            found = self._first(held, (self.thoughts_end, self.call_opener, self.opener))
            if found is None:
                return False  # thoughts are given whole, once they end
            at, marker = found
            out.append(("reasoning", held[:at]))
            if marker == self.call_opener:
                self.held, self.phase = held[at:], "fields"
            else:
                out.append(("skip", marker))
                self.held = held[at + len(marker):]
                self.phase = "fields" if marker == self.thoughts_end else "answer"
            return True
        if self.phase == "fields":
            found = self._first(held, (self.opener,))
            if found is None:
                keep = marker_begun(held, (self.opener,))
                out.append(("skip", held[:len(held) - keep]))
                self.held = held[len(held) - keep:]
                return False
            end = found[0] + len(self.opener)
            out.append(("skip", held[:end]))
            self.held, self.phase = held[end:], "answer"
            return True
        if tool:  # the model opens fields, not a tool's result
            out.append(("tool", held))
            self.held = ""
            return False
        found = self._first(held, (self.thoughts_opener, self.call_opener))
        if found is None:
            keep = marker_begun(held, (self.thoughts_opener, self.call_opener))
            out.append(("model", held[:len(held) - keep]))
            self.held = held[len(held) - keep:]
            return False
        at, marker = found
        out.append(("model", held[:at]))
        if marker == self.thoughts_opener:
            out.append(("skip", marker))
            self.held, self.phase = held[at + len(marker):], "thoughts"
        else:
            self.held, self.phase = held[at:], "fields"
        return True

    def finish(self, cut: bool = False) -> list[tuple[Kind, str]]:
        """What is still held when the reply ends (`cut`: by the token limit): thoughts that never ended were the
        answer itself, unless the limit cut them."""
        held, self.held = self.held, ""
        if not held:
            return []
        if self.phase == "thoughts":
            return [("reasoning" if cut else "model", held)]
        return [("skip" if self.phase == "fields" else "model", held)]
