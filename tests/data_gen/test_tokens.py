"""tokenize: token start offsets, computed in linear time, equal to decoding every prefix (the quadratic definition)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from script_module import TESTS, load_script
from toolcall.data_gen.tokens import TokenizedText, tokenize

from toolcall.backends.fake import FakeBackend
from toolcall.backends.toy_lm import ToyLM

TEXTS = [
    "The store sold 12 apples and 30 pears, a total of 42 fruits.",
    "  Two  spaces,\ttabs and\nnew lines\n\n end ",
    "Prices: 1,240.50 $ + 3.5% = 1,283.92; 2 ** 10 = 1024",
    "Ünïcödé: naïve café, 東京 is big, emoji 🎉 and ß.",
    "",
]


def quadratic_starts(scorer: Any, text: str) -> list[int]:
    """The definition: token i starts where decode(ids[:i]) ends, when that is a prefix of the text, else its offset."""
    ids, offsets = scorer.encode_with_offsets(text)
    out = []
    for i in range(len(ids)):
        prefix = scorer.decode_ids(ids[:i])
        out.append(len(prefix) if text.startswith(prefix) else int(offsets[i][0]))
    return out


class Counting:
    """A scorer wrapper that counts how many token ids were decoded in all."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.decoded = inner, 0

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        return self.inner.encode_with_offsets(text)

    def decode_ids(self, ids: Sequence[int]) -> str:
        self.decoded += len(ids)
        return self.inner.decode_ids(ids)


def test_toy_tokens_start_where_their_text_starts() -> None:
    scorer = FakeBackend(lm=ToyLM())
    for text in TEXTS:
        tt = tokenize(scorer, text)
        assert list(tt.starts) == quadratic_starts(scorer, text)
        assert "".join(scorer.decode_ids([i]) for i in tt.ids) == text
    tt = tokenize(scorer, "a total of 42")
    assert [tt.leading_space(i) for i in range(len(tt.ids))] == [False, True, True, True, False]


def test_decoding_work_grows_linearly() -> None:
    scorer = Counting(FakeBackend(lm=ToyLM()))
    text = " ".join(TEXTS) * 20
    tt = tokenize(scorer, text)
    assert scorer.decoded <= 4 * len(tt.ids)     # decoding every prefix would be len(ids) ** 2 / 2


def _tiny_lm() -> Any:
    return load_script(TESTS / "data_gen" / "tiny_lm.py")


def _metaspace_tokenizer() -> Any:
    # A SentencePiece-style tokenizer: decoding drops the space of the first token of each decode call.
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace()])
    alphabet = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>", *alphabet], show_progress=False)
    tok.train_from_iterator(TEXTS * 3, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["byte-level", "metaspace"])
def test_hf_tokenizers_match_the_quadratic_definition(kind: str) -> None:
    pytest.importorskip("transformers")
    from toolcall.backends.hf_scoring import HFScorer

    tok = _tiny_lm().tiny_model_and_tokenizer()[1] if kind == "byte-level" else _metaspace_tokenizer()
    scorer = HFScorer(None, tok)
    for text in TEXTS + [" ".join(TEXTS)]:
        assert list(tokenize(scorer, text).starts) == quadratic_starts(scorer, text), text


@pytest.mark.model
def test_embedded_tokenizer_matches_the_quadratic_definition() -> None:
    from toolcall.backends.hf_loading import load_model_and_tokenizer
    from toolcall.backends.hf_scoring import HFScorer

    scorer = HFScorer(*load_model_and_tokenizer(None))
    for text in TEXTS + [" ".join(TEXTS)]:
        tt = tokenize(scorer, text)
        assert isinstance(tt, TokenizedText) and list(tt.starts) == quadratic_starts(scorer, text), text
