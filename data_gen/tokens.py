"""A text's token ids and the character offset where each token starts."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from toolcall.backends.base import Scorer

# How many tokens past the last one whose decoded prefix matched the text we keep trying: a token that ends inside
# a character (half a UTF-8 sequence) is completed by the next few; past that, the prefix no longer round-trips.
MAX_UNMATCHED = 8

#: Characters that belong to the one before them: a combining mark, a joiner, a variation selector, a skin tone, a tag
#: (nothing may come between them and it: a call there splits a letter from its accent, or an emoji sequence).
JOINING = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f\u200d\ufe00-\ufe0f"
                     r"\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f]")


def joins_previous(text: str, at: int) -> bool:
    """Whether the character at `at` belongs to the one before it (JOINING, any combining mark, the character after a
    zero-width joiner, or the LF of a CR LF), so that nothing may be put between them."""
    return 0 < at < len(text) and (JOINING.match(text, at) is not None or unicodedata.combining(text[at]) != 0
                                   or text[at - 1] == "\u200d" or text[at - 1:at + 1] == "\r\n")


@dataclass(frozen=True)
class TokenizedText:
    text: str
    ids: tuple[int, ...]
    starts: tuple[int, ...]     # char offset of token i in text; a call inserted "before token i" goes there

    def leading_space(self, i: int) -> bool:
        """Token i begins with whitespace, so a call inserted before it is written as " [..." (like ` [` the token)."""
        start = self.starts[i]
        return start < len(self.text) and self.text[start].isspace()

    def splits_character(self, i: int) -> bool:
        """Token i begins inside a character (a byte-level vocabulary cuts "😀", "é" or "ע" into byte tokens, each
        after the first starting where the one before it starts) or before a mark that belongs to the character before
        it (`joins_previous`): no call can be written there. Such positions were sampled and scored, and the call was
        written before the whole character, or between a letter and its accent."""
        return (0 < i < len(self.starts) and self.starts[i] <= self.starts[i - 1]) \
            or joins_previous(self.text, self.starts[i])


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
