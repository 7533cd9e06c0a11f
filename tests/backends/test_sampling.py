"""Sampling settings: refused where they are given when no engine could use them, and a temperature too small to divide
by decodes greedily in every engine that samples."""
from __future__ import annotations

import random
from typing import Any

import pytest

from toolcall.backends.base import GREEDY_BELOW, Sampling, sampling_temperature
from toolcall.backends.fake import FakeBackend
from toolcall.backends.toy_lm import ToyLM
from toolcall.errors import ConfigError

TEXTS = ["the cat sat on the mat", "the dog sat on the log", "a cat ran to the mat"] * 3


@pytest.mark.parametrize(("fields", "message"), [
    ({"seed": 1.5}, "seed must be a whole number in [0, 2^64), got 1.5"),
    ({"seed": True}, "seed must be a whole number in [0, 2^64), got True"),
    ({"seed": "3"}, "seed must be a whole number in [0, 2^64), got '3'"),
    ({"temperature": True}, "temperature must be a number in [0, 2] (0: greedy), not bool (True)"),
    ({"temperature": "0.5"}, "temperature must be a number in [0, 2] (0: greedy), not str ('0.5')"),
    ({"top_p": True}, "top_p must be a number in (0, 1], not bool (True)"),
])
def test_bools_strings_and_fractional_seeds_are_refused(fields: dict[str, Any], message: str) -> None:
    """A seed of 1.5 passed and failed in torch's manual_seed after the model loaded; True passed as a temperature of
    1 (the server's `"temperature": true`), "0.5" as a TypeError."""
    with pytest.raises(ConfigError) as err:
        Sampling(**fields)
    assert str(err.value) == message


def test_whole_seeds_and_numbers_of_any_kind_are_taken() -> None:
    assert Sampling(temperature=1, top_p=0.5, seed=2**64 - 1) == Sampling(1, 0.5, 2**64 - 1)
    assert Sampling(temperature=1e-300).temperature == 1e-300   # taken; it decodes greedily (below)
    seeded = Sampling(seed=7.0)   # a whole number written as a float (JSON, YAML) is that integer
    assert seeded.seed == 7 and type(seeded.seed) is int


@pytest.mark.parametrize(("asked", "used"), [(0, 0.0), (1e-300, 0.0), (1e-45, 0.0), (GREEDY_BELOW / 2, 0.0),
                                             (GREEDY_BELOW, GREEDY_BELOW), (0.7, 0.7), (2, 2.0)])
def test_a_temperature_below_the_floor_is_greedy(asked: float, used: float) -> None:
    assert sampling_temperature(asked) == used


@pytest.mark.parametrize("temperature", [1e-300, 1e-45, 0.001])
def test_the_toy_lm_samples_greedily_below_the_floor(temperature: float) -> None:
    """p ** (1 / 1e-300) is 0 for every token, and random.choices refused the weights ("Total of weights must be
    greater than zero")."""
    lm = ToyLM(TEXTS)
    context = lm.split("the cat")
    greedy = lm.pick([t for t, _, _ in context], random.Random(0), 0.0)
    assert all(lm.pick([t for t, _, _ in context], random.Random(seed), temperature) == greedy for seed in range(5))


def test_the_toy_lm_still_samples_at_the_floor_among_unlikely_tokens() -> None:
    """At the floor the weights are p ** 100: for tokens a grammar allows that the toy LM never saw (p ~ 4e-5) every
    weight underflowed to 0. They are now taken relative to the likeliest, so both tokens are drawn."""
    lm = ToyLM(TEXTS)
    context = [t for t, _, _ in lm.split("the cat")]
    drawn = {lm.pick(context, random.Random(seed), GREEDY_BELOW, among=["zzz", "qqq"]) for seed in range(20)}
    assert drawn == {"zzz", "qqq"}


def test_the_fake_backend_samples_branches_greedily_below_the_floor() -> None:
    backend = FakeBackend(lm=ToyLM(TEXTS))
    prefix = backend.prefix_state(backend.encode("the cat"))
    greedy = backend.sample_branches(prefix, [(2, [])], 2, stop=["mat"], max_new_tokens=6, temperature=0.0)
    assert backend.sample_branches(prefix, [(2, [])], 2, stop=["mat"], max_new_tokens=6,
                                   temperature=1e-300, seed=3) == greedy


class _Vocab:
    """A tokenizer of a few tokens, as `_vocab` reads one."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def __len__(self) -> int:
        return len(self.texts)

    def batch_decode(self, ids: list[list[int]], **_: object) -> list[str]:
        return [self.texts[i] for (i,) in ids]


def test_banning_the_opener_bans_every_token_that_holds_it() -> None:
    """Tokens holding "[" after other text ("([", ".[": SmolLM2 has 39) were left open: a reply with tools off, or at a
    step below the call threshold, could still open a call through them."""
    from toolcall.backends.transformers import TransformersBackend

    texts = ["[", " [", "([", ".[", '["', "[[", "(", "a", "]"]
    backend = TransformersBackend.__new__(TransformersBackend)
    backend.tokenizer, backend._open_ids = _Vocab(texts), {}
    begin, ban = backend.open_token_ids("[")
    assert sorted(texts[i] for i in begin) == [" [", "["]
    assert sorted(texts[i] for i in ban) == sorted([" [", "([", ".[", '["', "[", "[["])
