"""The prefix cache: a session whose prompt begins like an earlier one's prefills only the rest, and decodes the same."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")

from tiny_model import make_tiny_model  # noqa: E402

from toolcall.backends.base import Sampling  # noqa: E402

TEXTS = ["the cat sat on the mat and the dog ran to the park", "one two three four five six seven eight nine ten"] * 4
SHARED = "one two three four five six seven eight nine ten " * 6  # an instruction every request starts with


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny_prefix"), TEXTS)


def decode(b: Any, prompt: str) -> tuple[str, int]:
    s = b.start(prompt)
    s.sampling = Sampling(temperature=0.0)
    text = s.generate([], 12)
    return text, s.counters.prefilled_tokens


def test_a_shared_prompt_prefix_is_prefilled_once(tiny: Path) -> None:
    from toolcall.backends.transformers import TransformersBackend

    plain = TransformersBackend(str(tiny), prefill_chunk=0)
    cached = TransformersBackend(str(tiny), prefill_chunk=0, prefix_cache=True)
    first, second = SHARED + "the cat", SHARED + "the dog ran"
    assert decode(cached, first)[1] == decode(plain, first)[1]  # nothing stored yet: the whole prompt
    text, prefilled = decode(cached, second)
    whole = len(plain.encode(second))
    assert text == decode(plain, second)[0]
    assert prefilled < whole // 4 and cached.prefix_cache is not None and cached.prefix_cache.hits == 1
    # The same prompt again: all of it but the last token comes from the cache.
    assert decode(cached, second) == (text, 1)
    again = cached.start(second)
    again.generate([], 1)
    assert (again.counters.input_tokens, again.counters.cached_tokens) == (whole, whole - 1)


def test_short_or_unrelated_prompts_are_not_served_from_the_cache(tiny: Path) -> None:
    from toolcall.backends.transformers import TransformersBackend

    cached = TransformersBackend(str(tiny), prefill_chunk=0, prefix_cache=True)
    decode(cached, SHARED + "the cat")
    decode(cached, "the cat sat on the mat")
    assert cached.prefix_cache is not None and cached.prefix_cache.hits == 0


def test_a_stored_prompt_is_untouched_by_the_session_that_stored_it(tiny: Path) -> None:
    """Stored without a copy: decoding on, appending and rolling back the storing session leave the entry as it was."""
    from toolcall.backends.transformers import TransformersBackend

    cached = TransformersBackend(str(tiny), prefill_chunk=0, prefix_cache=True)
    assert cached.prefix_cache is not None
    s = cached.start(SHARED + "the cat")
    s.sampling = Sampling(temperature=0.0)
    s.generate([], 4)
    ((_, stored),) = cached.prefix_cache._stored.items()
    before = [(k.clone(), v.clone()) for k, v in stored]
    s.generate([], 8)
    s.append(" -> 42]")
    s.generate([], 4)
    s._crop(len(s.token_ids) - 6)
    s.generate([], 4)
    assert all(k.equal(k0) and v.equal(v0) for (k, v), (k0, v0) in zip(stored, before))


def test_a_prompt_longer_than_what_is_kept_is_stored_as_a_copy_of_its_start(tiny: Path) -> None:
    """Only max_tokens positions are kept, in tensors of their own (a view would keep the whole prompt's alive)."""
    from toolcall.backends.prefix_cache import PrefixCache
    from toolcall.backends.transformers import TransformersBackend

    cached = TransformersBackend(str(tiny), prefill_chunk=0, prefix_cache=True)
    cached.prefix_cache = PrefixCache(min_tokens=4, max_tokens=20)
    decode(cached, SHARED + "the cat")
    ((key, stored),) = cached.prefix_cache._stored.items()
    assert len(key) == 20
    for tensor in (t for pair in stored for t in pair):
        assert tensor.shape[2] == 20 and tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
