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
    assert stats.ridden_tokens > 0  # appended results rode along in batched steps rather than running alone


def test_a_lone_session_runs_as_without_the_batcher(tiny: Path) -> None:
    assert reply(backend(tiny, batch=True), "the cat", ["e"]) == reply(backend(tiny, batch=False), "the cat", ["e"])


def test_the_packed_cache_writes_steps_in_place_and_grows_when_its_room_is_spent() -> None:
    import torch

    from toolcall.backends.step_batcher import _roomy_layer_class

    layer = _roomy_layer_class()()
    seen = torch.randn(2, 3, 70, 4)
    keys, _ = layer.update(seen[:, :, :5], seen[:, :, :5])
    room = layer._room_keys
    for at in range(5, 69):  # one position per step: written into the room, no new buffer
        keys, values = layer.update(seen[:, :, at:at + 1], -seen[:, :, at:at + 1])
    assert layer._room_keys is room and torch.equal(keys, seen[:, :, :69])
    assert torch.equal(values[:, :, 5:], -seen[:, :, 5:69])
    keys, _ = layer.update(seen[:, :, 69:], seen[:, :, 69:])  # the room is spent: a larger buffer, same contents
    assert layer._room_keys is not room and torch.equal(keys, seen)
    layer.crop(-10)  # the base class's crop takes a shorter view; the next step lands right after it
    keys, _ = layer.update(seen[:, :, :1], seen[:, :, :1])
    assert keys.shape[2] == 61 and torch.equal(keys[:, :, 60], seen[:, :, 0])


def test_long_replies_decoded_together_equal_each_alone(tiny: Path) -> None:
    """Past the packed cache's first room (64 positions): every step still lands where it belongs."""
    def long_reply(b: Any, prompt: str) -> str:
        s = b.start(prompt)
        s.sampling = Sampling(temperature=0.0)
        return s.generate([], 90)

    alone = backend(tiny, batch=False)
    expected = [long_reply(alone, p) for p in PROMPTS[:3]]
    batched = backend(tiny, batch=True)
    assert together(lambda i: long_reply(batched, PROMPTS[i]), 3) == expected
    assert batched.batcher.batches > 0


def test_a_session_that_starts_later_takes_the_row_of_one_sitting_steps_out(tiny: Path) -> None:
    """The row of a packed session that is not stepping is given back to make room (its keys copied out): no re-pack
    of every row."""
    import torch

    b = backend(tiny, batch=True)
    batcher = b.batcher

    def prefilled(prompt: str) -> Any:
        s = b.start(prompt)
        s._forward(s._fresh)
        s.token_ids, s._fresh = s._fresh, []
        return s

    with torch.inference_mode():
        first, second = prefilled("one two three four"), prefilled("the dog ran to the park and")
        keys = [layer.keys.clone() for layer in first._cache.layers]
        packed = batcher._place([first, second])
        later = prefilled("the cat")
        assert batcher._place([second, later]) is packed and batcher.packs == 1
    assert packed.member(0) is later and first._cache is not None  # `first` has its own keys back, as they were
    assert all(layer.keys.equal(k) for layer, k in zip(first._cache.layers, keys))


def test_prompts_arriving_together_are_prefilled_in_one_forward_and_decode_as_alone(tiny: Path) -> None:
    """Prompts that share a prefix (the prefix cache's) and differ after it, of different lengths: their remainders
    run as one left-padded forward; each reply is the one decoded alone, and each prompt is stored for the next."""
    from toolcall.backends.transformers import TransformersBackend

    shared = "one two three four five six seven eight nine ten " * 4
    prompts = [shared + p for p in PROMPTS]

    def run(b: Any, prompt: str) -> tuple[str, str]:
        return reply(b, prompt, ["e"])

    alone = backend(tiny, batch=False)
    expected = [run(alone, p) for p in prompts]
    batched: Any = TransformersBackend(str(tiny), batch_steps=True, prefix_cache=True, prefill_chunk=0)
    run(batched, shared + "x")  # stores the shared prefix
    batched.batcher.gather_seconds = 0.5  # the prompts surely arrive in one gathering
    assert together(lambda i: run(batched, prompts[i]), len(prompts)) == expected
    assert batched.batcher.prefill_batches >= 1 and batched.batcher.prefill_rows >= 2


def test_a_batched_prefill_takes_prompts_while_rows_times_length_fit_its_budget() -> None:
    from toolcall.backends.step_batcher import _within

    batch: list[Any] = [("a", [1] * 30), ("b", [1] * 20), ("c", [1] * 40), ("d", [1] * 10)]
    assert [job for job, _ in _within(90, batch)] == ["a", "b"]  # a third row of 40 would make 120
    assert [job for job, _ in _within(160, batch)] == ["a", "b", "c", "d"]
    assert _within(10, batch) == []  # a prompt longer than the budget prefills alone


def test_prompts_arriving_together_at_a_cold_prefix_cache_start_from_the_first_ones_prefix(tiny: Path) -> None:
    """Nothing stored yet: the first prompt prefills alone and is stored, and the others start from it."""
    from toolcall.backends.transformers import TransformersBackend

    shared = "one two three four five six seven eight nine ten " * 4
    prompts = [shared + p for p in PROMPTS]
    alone = backend(tiny, batch=False)
    expected = [reply(alone, p, ["e"]) for p in prompts]
    batched: Any = TransformersBackend(str(tiny), batch_steps=True, prefix_cache=True, prefill_chunk=0)
    batched.batcher.gather_seconds = 0.5
    assert together(lambda i: reply(batched, prompts[i], ["e"]), len(prompts)) == expected
    assert batched.prefix_cache.hits == len(prompts) - 1


@pytest.mark.parametrize("batch", [False, True], ids=["alone", "batched"])
@pytest.mark.parametrize("stop", [[], ["e"]], ids=["token-boundary", "stop-inside-a-token"])
def test_a_rewound_session_decodes_as_if_the_detour_never_happened(tiny: Path, batch: bool, stop: list[str]) -> None:
    """The loop decodes ahead after a call group to see whether the model writes another call, and rewinds when it
    does not: the cache drops the detour's tokens (a stop's rollback may have cut into the tokens cached before), and
    what comes next is what a session that never took it decodes."""
    b = backend(tiny, batch=batch)
    straight = b.start("the cat")
    straight.sampling = Sampling(temperature=0.0)
    first = straight.generate(stop, 12)
    straight.append(" -> 42]")
    ids = list(straight.ids)
    expected = straight.generate([], 10)

    s = b.start("the cat")
    s.sampling = Sampling(temperature=0.0)
    assert s.generate(stop, 12) == first
    point = s.checkpoint()
    detour = s.generate(["o"], 7)
    assert detour and s.text.endswith(detour)
    s.rewind(point)
    assert s.text == "the cat" + first and s.stop_reason == point.stop_reason
    s.append(" -> 42]")
    assert s.ids == ids  # the model sees the very tokens the straight session does
    assert s.generate([], 10) == expected
    # A rewind to the same point again, after more was decoded and appended, works as well.
    s.rewind(point)
    s.append(" -> 42]")
    assert s.ids == ids and s.generate([], 10) == expected
    if not batch:
        s._prefill()
        assert s._cache.get_seq_length() == len(s.token_ids)  # the cache holds exactly the session's tokens
    # A checkpoint with nothing queued, and a detour that cut into the tokens cached then (as a stop's rollback does
    # when it drops the last cached token to re-run it): those tokens are queued again.
    s.rewind(point)
    s._prefill()
    point = s.checkpoint()
    last = s.token_ids[-1]
    s._crop(len(s.token_ids) - 1)
    s._fresh = [last]  # the detour ended here, its last token queued to run again
    s.rewind(point)
    s.append(" -> 42]")
    assert s.ids == ids and s.generate([], 10) == expected
