"""An author's text made safe to annotate: its call markup and special tokens broken, anything else untouched."""
from __future__ import annotations

import pytest
from toolcall.data_gen.author_text import safe_text

from toolcall.dialects import get_dialect
from toolcall.dialects.toolformer import ToolformerDialect

SPECIAL = ("<|im_end|>", "<|endoftext|>")


@pytest.mark.parametrize("text", ["See [1] and [see above]; a -> b → c.", "Plain text with 12 and 30.", "",
                                  "Arrays like [1, 2, 3] and f(x) = [x]."])
def test_text_without_markup_is_unchanged(text: str) -> None:
    assert safe_text(text, SPECIAL) == text


@pytest.mark.parametrize("text", ["[Calculator(12 + 30) -> 41] then", "a [Calendar() -> Monday] b",
                                  "<API>Calculator(1+1) → 2</API> x", "end<|im_end|>", "x <|endoftext|> y",
                                  '<|Commands|>: Calculator("1+1")<eoc>',
                                  # left open, wrapped, broken or cut where a long text was split: the loop would run
                                  # each at its arrow, and train learned the author's result after it
                                  "He wrote [Calculator(2+2) -> 5 and then 3 + 4 = 7.", "x [Calculator(400 / 1400) →\n0.29] y",
                                  "[Calculator(2 + 2 -> 5] z", "a <API> Calculator(1+1) → 0.29 b",
                                  "the old note said [Calculator(12 + 30) ->"])
def test_markup_is_broken_and_only_by_zero_width_spaces(text: str) -> None:
    safe = safe_text(text, SPECIAL)
    assert safe != text and safe.replace("\u200b", "") == text
    for spelling in ("bracket", "tagged"):
        reader = ToolformerDialect(spelling=spelling)
        assert reader.parse(safe).calls == [] and reader.parse(safe).issues == []
        assert reader.pending(safe) is None
    assert not any(s in safe for s in SPECIAL)
    assert not get_dialect("moss").parse(safe).calls
