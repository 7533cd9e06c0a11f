"""An author's text made safe to annotate: call markup and special tokens it already holds are broken, so the corpus's
only calls are the ones data_gen writes, and a tokenizer reads the author's words as words."""
from __future__ import annotations

from collections.abc import Sequence

from toolcall.dialects.base import ZERO_WIDTH_SPACE, defuse
from toolcall.dialects.moss import MossDialect
from toolcall.dialects.toolformer import ToolformerDialect

#: The call spellings a corpus is written or read in: Toolformer's brackets (data_gen's own) and the paper's tags.
_READERS = (ToolformerDialect(spelling="bracket"), ToolformerDialect(spelling="tagged"))


def safe_text(text: str, special_texts: Sequence[str] = ()) -> str:
    """`text` with every call a Toolformer reader finds in it broken by a zero-width space after its opener
    (`[Calculator(12 + 30) -> 41]` an author wrote would train as a call, its wrong result and all), and with the
    tokenizer's special texts (`<|endoftext|>` would be read as the end of the text) and MOSS's fields (the corpus
    is exported as MOSS turns too) broken the same way. Text that holds none of them comes back unchanged."""
    text = defuse(text, tuple(special_texts) + MossDialect.reserved)
    for reader in _READERS:
        for at in sorted({call.span[0] for call in reader.parse(text).calls}, reverse=True):
            text = text[:at + 1] + ZERO_WIDTH_SPACE + text[at + 1:]
    return text
