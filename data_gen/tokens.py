"""A text's token ids and the character offset where each token starts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TokenizedText:
    text: str
    ids: tuple[int, ...]
    starts: tuple[int, ...]     # char offset of token i in text; a call inserted "before token i" goes there

    def leading_space(self, i: int) -> bool:
        """Token i begins with whitespace, so a call inserted before it is written as " [..." (like ` [` the token)."""
        start = self.starts[i]
        return start < len(self.text) and self.text[start].isspace()


def tokenize(scorer: Any, text: str) -> TokenizedText:
    ids, offsets = scorer.encode_with_offsets(text)
    starts = []
    for i in range(len(ids)):
        # Decoded-prefix lengths are exact offsets when they round-trip; byte-level offset maps may trim spaces.
        prefix = scorer.decode_ids(ids[:i])
        starts.append(len(prefix) if text.startswith(prefix) else int(offsets[i][0]))
    return TokenizedText(text, tuple(ids), tuple(starts))
