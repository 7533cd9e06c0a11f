"""A reply's fields before its answer (MOSS: inner thoughts, commands, results) kept out of the content a client reads."""
from __future__ import annotations

from typing import Literal

#: What a piece of the loop's text is to the client: the model's reasoning, markup it never reads, or the answer
#: (the model's own text, or a tool's text spliced into it).
Kind = Literal["reasoning", "skip", "model", "tool"]


class AnswerField:
    """Splits the loop's text into reasoning, the fields between it and the answer, and the answer.

    For a dialect whose replies write fields before the answer (`Dialect.answer_opener`): the first field, up to
    `thoughts_end` (or a call's opener, or the answer opener), is the model's reasoning, given whole once it ends; from
    there to the answer opener (calls and their results) nothing is the client's content; after it, everything is
    the answer. A reply that ends without writing any field was all answer (a model that ignored the format). Each
    character fed comes back exactly once, so the reply filter's offsets stay those of the session.
    """

    def __init__(self, answer_opener: str, thoughts_end: str = "", call_opener: str = "") -> None:
        self.opener = answer_opener
        self.ends = tuple(m for m in (thoughts_end, call_opener, answer_opener) if m)
        self.thoughts_end = thoughts_end
        self.phase = "thoughts" if answer_opener else "answer"
        self.held = ""

    def prime(self, tail: str) -> None:
        """The assistant text the client asked to continue: the phase it leaves the reply in."""
        if tail.strip():
            self.feed(tail)
            self.held = ""

    def feed(self, text: str, tool: bool = False) -> list[tuple[Kind, str]]:
        """The pieces of `text` as the client sees them, in order."""
        if self.phase == "answer":
            return [("tool" if tool else "model", text)] if text else []
        self.held += text
        out: list[tuple[Kind, str]] = []
        if self.phase == "thoughts":
            found = [(at, m) for m in self.ends if (at := self.held.find(m)) >= 0]
            if not found and not tool:
                return out
            at, marker = min(found) if found else (len(self.held), "")
            out.append(("reasoning", self.held[:at]))
            self.held = self.held[at:]
            if marker == self.thoughts_end:
                out.append(("skip", marker))
                self.held = self.held[len(marker):]
            self.phase = "fields"
        at = self.held.find(self.opener)
        if at < 0:
            keep = next((k for k in range(min(len(self.opener) - 1, len(self.held)), 0, -1)
                         if self.held.endswith(self.opener[:k])), 0)
            skipped, self.held = self.held[:len(self.held) - keep], self.held[len(self.held) - keep:]
            return out + ([("skip", skipped)] if skipped else [])
        rest = self.held[at + len(self.opener):]
        out.append(("skip", self.held[:at + len(self.opener)]))
        self.held, self.phase = "", "answer"
        return out + ([("tool" if tool else "model", rest)] if rest else [])

    def finish(self) -> list[tuple[Kind, str]]:
        """What is still held when the reply ends: thoughts that never ended were the answer itself."""
        held, self.held = self.held, ""
        if not held:
            return []
        return [("model", held)] if self.phase == "thoughts" else [("skip", held)]
