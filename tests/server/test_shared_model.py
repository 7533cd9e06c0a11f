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
