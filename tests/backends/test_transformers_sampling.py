"""The transformers backend on a tiny model: sampling settings that pass validation decode, never a RuntimeError after
the model loaded (a top-k past the vocabulary, a temperature too small to divide by, a seed that is no whole number)."""
from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("transformers")

from tiny_model import make_tiny_model  # noqa: E402

from toolcall.backends.base import Sampling, Steering  # noqa: E402
from toolcall.errors import ConfigError  # noqa: E402
from toolcall.loop import LoopConfig  # noqa: E402
from toolcall.registry import ToolRegistry  # noqa: E402
from toolcall.runner import run_loop  # noqa: E402

TEXTS = ["the cat sat on the mat [f(1) -> 2] and the dog ran", "one two three [f(2) -> 4] four five six"] * 3
PROMPT = "the cat sat on"


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from toolcall.backends.transformers import TransformersBackend

    return TransformersBackend(str(make_tiny_model(tmp_path_factory.mktemp("tiny_sampling"), TEXTS)))


def f(x: int) -> int:
    """Double a number.

    Args:
        x: The number.
    """
    return 2 * x


def test_a_trigger_top_k_past_the_vocabulary_is_the_whole_vocabulary(backend: Any) -> None:
    """torch.topk refused k > the vocabulary ("selected index k out of range") at the first free step."""
    vocabulary = backend.model.get_output_embeddings().weight.shape[0]
    whole = backend.start(PROMPT)
    want = whole.generate(["->"], 8, Steering("[", trigger_top_k=vocabulary))
    past = backend.start(PROMPT)
    assert past.generate(["->"], 8, Steering("[", trigger_top_k=10 ** 6)) == want and past.triggers == whole.triggers
    result = run_loop(backend, PROMPT, "toolformer", ToolRegistry([f]),
                      LoopConfig(trigger_top_k=100_000, max_new_tokens=12))
    assert result.stop_reason in ("eos", "length")


@pytest.mark.parametrize("temperature", [1e-300, 1e-45, 0.005])
def test_a_temperature_below_the_floor_decodes_greedily(backend: Any, temperature: float) -> None:
    """softmax(scores / 1e-300) was NaN and torch.multinomial raised, mid-reply (a server's 500)."""
    greedy = backend.start(PROMPT).generate([], 10)
    session = backend.start(PROMPT)
    session.sampling = Sampling(temperature=temperature, seed=7)   # a request's own, as the server sets it
    assert session.generate([], 10) == greedy


def test_a_backend_temperature_below_the_floor_decodes_greedily(backend: Any) -> None:
    from toolcall.backends.transformers import TransformersBackend

    tiny = TransformersBackend(lm=backend.model, tokenizer=backend.tokenizer, temperature=1e-45)
    assert tiny.start(PROMPT).generate([], 10) == backend.start(PROMPT).generate([], 10)


def test_sampled_branches_below_the_floor_are_the_greedy_ones(backend: Any) -> None:
    prefix = backend.prefix_state(backend.encode(PROMPT))
    branches = [(len(prefix.ids), backend.encode(" [f("))]
    greedy = backend.sample_branches(prefix, branches, 2, stop=["]"], max_new_tokens=6, temperature=0.0)
    assert backend.sample_branches(prefix, branches, 2, stop=["]"], max_new_tokens=6, temperature=1e-300,
                                   top_k=10 ** 6) == greedy


@pytest.mark.parametrize("seed", [1.5, True])
def test_a_seed_that_is_no_whole_number_is_refused_before_the_model_is_used(backend: Any, seed: Any) -> None:
    from toolcall.backends.transformers import TransformersBackend

    with pytest.raises(ConfigError, match="seed must be a whole number"):
        TransformersBackend(lm=backend.model, tokenizer=backend.tokenizer, seed=seed)
