"""An author's text made safe to annotate: call markup and special tokens it already holds are broken, so the corpus's
only calls are the ones data_gen writes, and a tokenizer reads the author's words as words."""
from __future__ import annotations

import re
from collections.abc import Sequence

from toolcall.dialects.base import ZERO_WIDTH_SPACE, defuse
from toolcall.dialects.moss import MossDialect
from toolcall.dialects.toolformer import ToolformerDialect

#: The call spellings a corpus is written or read in: Toolformer's brackets (data_gen's own) and the paper's tags.
_READERS = (ToolformerDialect(spelling="bracket"), ToolformerDialect(spelling="tagged"))
#: Where a call could begin, whether or not one follows in full: `[Name(` and the paper's `<API>`. A call left open
#: (`[Calculator(2+2) -> 5 and then`, one wrapped onto the next line, one cut where a long text was split) parses
#: as no call, yet the loop runs it at its arrow and `train` would learn the author's result after it.
_OPENER = re.compile(r"\[(?=[A-Za-z_][A-Za-z0-9_]*\s*\()|<(?=API>)", re.IGNORECASE)


def safe_text(text: str, special_texts: Sequence[str] = ()) -> str:
    """`text` with every call a Toolformer reader finds in it, and every call opener left (`_OPENER`), broken by a
    zero-width space after its first character (`[Calculator(12 + 30) -> 41]` an author wrote would train as a
    call, its wrong result and all), and with the tokenizer's special texts (`<|endoftext|>` would be read as the
    end of the text) and MOSS's fields (the corpus is exported as MOSS turns too) broken the same way. Text that
    holds none of them comes back unchanged."""
    text = defuse(text, tuple(special_texts) + MossDialect.reserved)
    for reader in _READERS:
        for at in sorted({call.span[0] for call in reader.parse(text).calls}, reverse=True):
            text = text[:at + 1] + ZERO_WIDTH_SPACE + text[at + 1:]
    return _OPENER.sub(lambda m: m.group() + ZERO_WIDTH_SPACE, text)
