"""The step batcher: concurrent sessions of one model decode together, each reply exactly what it is alone (greedy),
with KV kept across appended results and rollbacks while packed."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")

from tiny_model import make_tiny_model  # noqa: E402
from together import together  # noqa: E402

from toolcall.backends.base import Sampling  # noqa: E402

TEXTS = ["the cat sat on the mat and the dog ran to the park", "one two three four five six seven eight nine ten",
         "Calculator(17 * 23) -> 391 so the crate holds 391 bottles", "a b c d e f g h i j k l m n o p"] * 3
PROMPTS = ["the cat", "one two three four", "Calculator(17", "a b", "the dog ran to the park and", "seven"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny_batch"), TEXTS)


def backend(path: Path, batch: bool) -> Any:
    from toolcall.backends.transformers import TransformersBackend

    return TransformersBackend(str(path), batch_steps=batch, prefill_chunk=0)


def reply(b: Any, prompt: str, stop: list[str]) -> tuple[str, str]:
    """Decode, append a 'tool result', decode again: the KV of the first part is kept across the append."""
    s = b.start(prompt)
    s.sampling = Sampling(temperature=0.0)
    first = s.generate(stop, 12)
    s.append(" -> 42]")
    return first, s.generate([], 10)


@pytest.mark.parametrize("idle_steps", [16, 0], ids=["rows-kept", "rows-given-back-at-once"])
def test_concurrent_replies_batched_equal_each_served_alone(tiny: Path, idle_steps: int) -> None:
    """Replies leave the batch (their appended result runs alone) and rejoin in a free row; rows that sit out steps
    ride along masked, or give their keys back (idle_steps 0): every reply is still the one served alone."""
    alone = backend(tiny, batch=False)
    expected = [reply(alone, p, ["e"]) for p in PROMPTS]
    batched = backend(tiny, batch=True)
    batched.batcher.idle_steps = idle_steps
    assert together(lambda i: reply(batched, PROMPTS[i], ["e"]), len(PROMPTS)) == expected
    stats = batched.batcher
    assert stats.batches > 0 and stats.batched_rows > stats.batches  # steps really ran together


def test_a_lone_session_runs_as_without_the_batcher(tiny: Path) -> None:
    assert reply(backend(tiny, batch=True), "the cat", ["e"]) == reply(backend(tiny, batch=False), "the cat", ["e"])
