"""The shared engine: a FIFO lock, and sampling that travels with each session."""
from __future__ import annotations

import threading
import time

from toolcall.backends.base import Sampling
from toolcall.backends.fake import FakeBackend
from toolcall.server.shared_model import FairLock, SharedModel


def test_fair_lock_serves_waiters_in_order() -> None:
    lock = FairLock()
    order: list[int] = []
    lock.__enter__()
    threads = []
    for i in range(5):
        t = threading.Thread(target=lambda i=i: (lock.__enter__(), order.append(i), lock.__exit__()))
        t.start()
        threads.append(t)
        time.sleep(0.02)  # queue them one after another
    lock.__exit__()
    for t in threads:
        t.join(timeout=5)
    assert order == [0, 1, 2, 3, 4]


def test_sampling_travels_with_the_session_not_the_backend() -> None:
    engine = SharedModel(FakeBackend(script=["hi"]))
    session = engine.start("P", threading.Event(), Sampling(temperature=0.7, seed=3))
    assert session.sampling == Sampling(temperature=0.7, seed=3)
    assert not hasattr(engine.backend, "temperature")


def test_a_cancelled_session_stops_decoding() -> None:
    cancel = threading.Event()
    engine = SharedModel(FakeBackend(script=["a long reply " * 20], chars_per_token=1))
    session = engine.start("P", cancel, Sampling())
    stream = session.stream((), 500)
    next(stream)
    cancel.set()
    rest = list(stream)
    assert rest == [] and session.stop_reason == "cancelled"


def test_a_rewind_under_the_step_batcher_leaves_the_engine_lock_free(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`toolcall serve` (the step batcher, the default) with a reply whose look for more calls found none: the rewind
    cropped the cache giving up the engine lock it was not holding, took it back for good, and every later step of
    every session waited forever."""
    import pytest

    pytest.importorskip("transformers")
    from tiny_model import make_tiny_model

    from toolcall.backends.transformers import TransformersBackend

    path = make_tiny_model(tmp_path, ["the cat sat on the mat and the dog ran to the park"] * 8)
    engine = SharedModel(TransformersBackend(str(path), batch_steps=True, prefill_chunk=0))
    done = threading.Event()

    def reply() -> None:  # in a thread: a deadlock fails the test instead of hanging it
        session = engine.start("the cat", threading.Event(), Sampling(temperature=0.0))
        session.generate([], 5)
        point = session.checkpoint()
        assert point is not None
        session.generate([], 5)
        session.rewind(point)
        session.append(" -> 42]")
        session.generate([], 3)
        engine.start("the dog", threading.Event(), Sampling(temperature=0.0)).generate([], 3)
        done.set()

    worker = threading.Thread(target=reply, daemon=True)
    worker.start()
    worker.join(30)
    assert done.is_set()
