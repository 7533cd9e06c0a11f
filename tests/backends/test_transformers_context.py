"""The transformers backend keeps a session within the model's context: a prompt that fills it is refused before any
prefill, and a reply (or a resume after spliced results) ends by its length at the context's end."""
from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("transformers")

from tiny_model import make_tiny_model  # noqa: E402

from toolcall.errors import ConfigError  # noqa: E402

TEXTS = ["the cat sat on the mat and the dog ran to the park", "one two three four five six seven eight nine ten"] * 3


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from toolcall.backends.transformers import TransformersBackend

    return TransformersBackend(str(make_tiny_model(tmp_path_factory.mktemp("tiny_context"), TEXTS)))


def words_of(backend: Any, tokens: int) -> str:
    """A text of about `tokens` tokens."""
    text = ""
    while backend.prompt_tokens(text) < tokens:
        text += " the cat sat on the mat"
    return text


def test_a_prompt_that_fills_the_context_is_refused_before_prefill(backend: Any) -> None:
    limit = backend.context_size()
    assert limit == 512
    # It was prefilled whole (14,410 tokens took 166 s on the embedded model) and decoded noise past the context.
    with pytest.raises(ConfigError, match=r"the prompt is \d+ tokens; this model reads at most 512"):
        backend.start(words_of(backend, limit))


def test_a_reply_ends_by_its_length_at_the_contexts_end(backend: Any) -> None:
    session = backend.start(words_of(backend, 500))
    held = len(session.ids)
    session.generate([], 100)
    assert session.stop_reason == "length" and len(session.ids) <= 512 and len(session.ids) >= held
    session.append(words_of(backend, 40))   # spliced results past the context: nothing more is decoded
    assert session.generate([], 100) == "" and session.stop_reason == "length"
