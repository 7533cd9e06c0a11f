"""A text's token ids and the character offset where each token starts."""
from __future__ import annotations

from dataclasses import dataclass

from toolcall.backends.base import Scorer

# How many tokens past the last one whose decoded prefix matched the text we keep trying: a token that ends inside
# a character (half a UTF-8 sequence) is completed by the next few; past that, the prefix no longer round-trips.
MAX_UNMATCHED = 8


@dataclass(frozen=True)
class TokenizedText:
    text: str
    ids: tuple[int, ...]
    starts: tuple[int, ...]     # char offset of token i in text; a call inserted "before token i" goes there

    def leading_space(self, i: int) -> bool:
        """Token i begins with whitespace, so a call inserted before it is written as " [..." (like ` [` the token)."""
        start = self.starts[i]
        return start < len(self.text) and self.text[start].isspace()


def tokenize(scorer: Scorer, text: str) -> TokenizedText:
    """Token i starts where the decoded ids[:i] end, when that decoded prefix is a prefix of `text`, else at its
    offset-map start (byte-level offset maps trim a token's leading space, so the decoded length is preferred).

    Decoding every prefix would be quadratic in the text's length; instead the text grows by the decoded new
    tokens from the last matched point, decoded with one token of left context (decoders treat a call's first token
    specially: SentencePiece drops its leading space), and that context's own text is subtracted.
    """
    ids, offsets = scorer.encode_with_offsets(text)
    starts: list[int] = []
    matched, at = 0, 0          # decode(ids[:matched]) == text[:at]
    for i in range(len(ids)):
        if i - matched <= MAX_UNMATCHED:
            lead = max(matched - 1, 0)
            context = scorer.decode_ids(ids[lead:matched]) if lead < matched else ""
            grown = scorer.decode_ids(ids[lead:i]) if lead < i else ""
            new = grown[len(context):]
            if grown.startswith(context) and text.startswith(new, at):
                at, matched = at + len(new), i
                starts.append(at)
                continue
        starts.append(int(offsets[i][0]))
    return TokenizedText(text, tuple(ids), tuple(starts))
