"""Token masks over a vocabulary of single characters and chosen pieces, for grammar tests without a real tokenizer."""
from __future__ import annotations

from collections.abc import Sequence

from toolcall.backends.constraint import TokenMasks


def char_masks(vocab: Sequence[str]) -> TokenMasks:
    """llguidance masks over `vocab` (ids = positions; 0 ends a sequence), encoding text one character at a time."""
    index = {t: i for i, t in enumerate(vocab)}
    return TokenMasks.for_tokens(list(vocab), 1, lambda text: [index[c] for c in text if c in index], [0])
