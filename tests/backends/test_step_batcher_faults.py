"""The step batcher when things go wrong: a batched forward that fails halfway, one session's bad step, sessions
dropped while their keys are packed. The other sessions go on, each reply the one served alone, and nothing is kept."""
from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

pytest.importorskip("transformers")

from tiny_model import make_tiny_model  # noqa: E402

from toolcall.backends.base import Sampling  # noqa: E402

T = TypeVar("T")
TEXTS = ["the cat sat on the mat and the dog ran to the park", "one two three four five six seven eight nine ten",
         "Calculator(17 * 23) -> 391 so the crate holds 391 bottles", "a b c d e f g h i j k l m n o p"] * 3
PROMPTS = ["the cat", "one two three four", "Calculator(17", "a b"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny_faults"), TEXTS)


def backend(path: Path, batch: bool, **options: Any) -> Any:
    from toolcall.backends.transformers import TransformersBackend

    return TransformersBackend(str(path), batch_steps=batch, prefill_chunk=0, **options)


def reply(b: Any, prompt: str) -> tuple[str, str]:
    s = b.start(prompt)
    s.sampling = Sampling(temperature=0.0)
    first = s.generate([], 8)
    s.append(" -> 42]")
    return first, s.generate([], 8)


def together(work: Callable[[int], T], n: int, timeout: float = 60.0) -> list[T | None]:
    """`work(i)` in n daemon threads released at once; a thread still waiting after `timeout` (a stalled batcher) leaves
    None and does not hold the test run."""
    results: list[T | None] = [None] * n
    go = threading.Barrier(n)

    def run(i: int) -> None:
        go.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    ends = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, ends - time.monotonic()))
    return results


@contextmanager
def failing(b: Any, layer: int, when: Callable[[Any], bool], times: int = 1) -> Iterator[list[int]]:
    """Layer `layer` of the model raises (as out of memory would) on its next `times` inputs that `when` picks."""
    module = b.model.model.layers[layer]
    inner, raised = module.forward, [0]

    def forward(*args: Any, **kwargs: Any) -> Any:
        hidden = args[0] if args else kwargs["hidden_states"]
        if raised[0] < times and when(hidden):
            raised[0] += 1
            raise RuntimeError("out of memory (a test's)")
        return inner(*args, **kwargs)

    module.forward = forward
    try:
        yield raised
    finally:
        del module.forward


def test_a_batched_step_that_fails_halfway_through_the_layers_is_run_alone_by_each_session(tiny: Path) -> None:
    """The second layer raises on a batched step, after the first wrote its keys: the batcher's thread died on
    unpacking (a mask one position longer than that layer) and every reply, and every later one, waited forever."""
    expected = [reply(backend(tiny, batch=False), p) for p in PROMPTS]
    b = backend(tiny, batch=True)
    with failing(b, 1, lambda hidden: hidden.shape[0] > 1 and hidden.shape[1] == 1) as raised:
        assert together(lambda i: reply(b, PROMPTS[i]), len(PROMPTS)) == expected
    assert raised == [1] and b.batcher.failed_batches == 1 and b.batcher.batches > 0
    assert together(lambda i: reply(b, PROMPTS[i]), 2) == expected[:2]  # the batcher still serves


def test_a_session_whose_step_cannot_run_fails_alone_and_the_others_go_on(tiny: Path) -> None:
    """A token the model has no embedding for (a tokenizer with more tokens than the model) in one session's appended
    result, riding in a batched step: that session gets the error, the others their replies."""
    expected = [reply(backend(tiny, batch=False), p) for p in PROMPTS]
    b = backend(tiny, batch=True)
    vocab = b.model.get_input_embeddings().weight.shape[0]

    def run(i: int) -> Any:
        if i:
            return reply(b, PROMPTS[i])
        s = b.start(PROMPTS[0])
        s.sampling = Sampling(temperature=0.0)
        s.generate([], 8)
        s.append(" -> 42]")
        s._fresh.append(vocab + 3)
        with pytest.raises(IndexError):
            s.generate([], 8)
        return "failed alone"

    assert together(run, len(PROMPTS)) == ["failed alone", *expected[1:]]
    assert b.batcher.failed_batches >= 1


def test_prompts_prefilled_together_in_a_forward_that_fails_are_each_prefilled_alone(tiny: Path) -> None:
    """Before, every prompt of the batched prefill got its error, their keys lost with the batch's cache."""
    shared = "one two three four five six seven eight nine ten " * 4
    prompts = [shared + p for p in PROMPTS]
    expected = [reply(backend(tiny, batch=False), p) for p in prompts]
    b = backend(tiny, batch=True, prefix_cache=True)
    reply(b, shared + "x")  # stores the shared prefix
    b.batcher.gather_seconds = 0.5  # the prompts surely arrive in one gathering
    with failing(b, 1, lambda hidden: hidden.shape[0] > 1 and hidden.shape[1] > 1) as raised:
        assert together(lambda i: reply(b, prompts[i]), len(prompts)) == expected
    assert raised == [1] and b.batcher.failed_batches == 1


def test_sessions_dropped_by_their_callers_are_freed_with_their_packed_keys(tiny: Path) -> None:
    """The shared cache held its sessions (and their keys) until a later batched step gave their rows back: after a
    burst, never, when no other replies came."""
    b = backend(tiny, batch=True)
    gone: list[Any] = []

    def run(i: int) -> tuple[str, str]:
        s = b.start(PROMPTS[i])
        gone.append(weakref.ref(s))
        s.sampling = Sampling(temperature=0.0)
        return s.generate([], 8), s.generate([], 8)

    gc.disable()  # freed as they are dropped, not by the cycle collector
    try:
        assert None not in together(run, len(PROMPTS))
        assert b.batcher.batches > 0
        assert [ref() for ref in gone] == [None] * len(PROMPTS)
    finally:
        gc.enable()
    ends = time.monotonic() + 5
    while b.batcher._packed is not None and time.monotonic() < ends:
        time.sleep(0.01)
    assert b.batcher._packed is None  # no session left in the shared cache: it is freed


def test_sessions_idle_past_release_seconds_take_their_keys_back_and_go_on_as_alone(tiny: Path) -> None:
    """Replies that all wait (on tools) give the shared cache back; they come back, each with its own keys."""
    expected = [reply(backend(tiny, batch=False), p) for p in PROMPTS]
    b = backend(tiny, batch=True)
    b.batcher.release_seconds = 0.05
    paused = threading.Barrier(len(PROMPTS))

    def run(i: int) -> tuple[str, str]:
        s = b.start(PROMPTS[i])
        s.sampling = Sampling(temperature=0.0)
        first = s.generate([], 8)
        paused.wait(10)  # every reply waits on its tool now
        ends = time.monotonic() + 5
        while s._cache is None and time.monotonic() < ends:
            time.sleep(0.01)
        assert s._cache is not None  # its own keys, out of the shared cache
        s.append(" -> 42]")
        return first, s.generate([], 8)

    assert together(run, len(PROMPTS)) == expected
    assert b.batcher.packs >= 2  # packed again after the pause


def test_a_session_whose_keys_are_lost_after_a_failed_batch_says_so_instead_of_decoding_without_them(
        tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Giving a failed batch's rows back can itself run out of memory: that session's keys are lost, and its step then
    ran the pending token at position 0 with an empty cache and sampled from that, without a word."""
    from toolcall.backends.step_batcher import StepBatcher

    b = backend(tiny, batch=True)
    release, lost = StepBatcher._release_row, [0]
    armed = [False]

    def release_row(self: StepBatcher, packed: Any, row: int) -> None:
        if armed[0] and packed.member(row) is not None and not lost[0]:
            lost[0] += 1
            raise RuntimeError("out of memory copying a row back (a test's)")
        release(self, packed, row)

    def batched_step(hidden: Any) -> bool:
        armed[0] = armed[0] or (hidden.shape[0] > 1 and hidden.shape[1] == 1)
        return hidden.shape[0] > 1 and hidden.shape[1] == 1

    def work(i: int) -> str:
        try:
            reply(b, PROMPTS[i])
            return "replied"
        except Exception as err:  # noqa: BLE001 - the one whose keys were lost says so
            return f"{type(err).__name__}: {err}"

    monkeypatch.setattr(StepBatcher, "_release_row", release_row)
    with failing(b, 1, batched_step):
        got = together(work, len(PROMPTS))
    assert lost == [1] and None not in got
    errors = [g for g in got if g != "replied"]
    assert len(errors) == 1 and errors[0].startswith("BackendError") and "cache was lost" in errors[0]
