"""The one model every request shares: a FIFO lock taken per decode step, sessions that stop when their client goes.

Every request (every choice of it) runs the decoding loop in its own worker thread. The backend's model is shared, so
each decode step (one token, or the prefill before it) takes the lock and gives it back at once: concurrent replies
interleave token by token, and a tool running for one reply never holds up the others (tools run outside the lock,
except those that decode with the model themselves). Sampling settings travel with each session, never as
attributes of the shared backend.

A backend that batches the steps of concurrent sessions (the transformers backend's step batcher) gives the lock up
while a step waits for the others' (`DecodeSession.released`), so all the replies reach their next step and run it
as one forward.
"""
from __future__ import annotations

import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from ..backends.base import Backend, Checkpoint, DecodeSession, Sampling, Steering

T = TypeVar("T")


class FairLock:
    """A FIFO lock: a thread that releases it and asks again at once waits behind those already waiting.

    threading.Lock makes no such promise, and a decoding thread that re-acquires in a tight loop would starve the rest.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiters: deque[threading.Event] = deque()
        self._held = False

    def __enter__(self) -> "FairLock":
        with self._mutex:
            if not self._held:
                self._held = True
                return self
            turn = threading.Event()
            self._waiters.append(turn)
        turn.wait()  # handed over by release(); _held stays True across the hand-over
        return self

    def __exit__(self, *exc: object) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().set()
            else:
                self._held = False

    @contextmanager
    def released(self) -> Iterator[None]:
        """Give the lock up for a while (a step waiting for others to batch with), then take it again, in turn."""
        self.__exit__()
        try:
            yield
        finally:
            self.__enter__()


class SharedModel:
    """The backend behind a FIFO lock taken per decode step, and how many sessions are decoding now."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.lock = FairLock()
        self.active = 0  # sessions decoding now (a disconnected client's session leaves at once)
        self._count_lock = threading.Lock()

    def start(self, prompt: str, cancel: threading.Event, sampling: Sampling) -> DecodeSession:
        """A session for `prompt` with its own sampling, each step taken under the lock, ended when `cancel` is set."""
        with self.lock:
            session = self.backend.start(prompt)
        session.sampling = sampling
        _guard(self, session, cancel)
        return session

    def locked(self, work: Callable[[], T]) -> T:
        """Run `work` holding the model (a tool that decodes with it, such as MT)."""
        with self.lock:
            return work()

    def enter(self, delta: int) -> None:
        with self._count_lock:
            self.active += delta


def _guard(engine: SharedModel, session: DecodeSession, cancel: threading.Event) -> None:
    """Wrap the session's stream, append and rewind so each step holds the engine lock and decoding ends as soon as `cancel`
    is set (the client went away).

    The wrappers are the session's own attributes, so they hold it weakly: through a strong reference (its bound
    methods included) the session would hold itself, and a finished reply's session, its KV cache with it, would live
    on until the cycle collector ran, not end with its reply."""
    me = weakref.ref(session)
    inner_stream, inner_append = weakref.WeakMethod(session.stream), weakref.WeakMethod(session.append)
    inner_rewind = weakref.WeakMethod(session.rewind)

    def step(iterator: Iterator[str]) -> str | None:
        with engine.lock:
            return next(iterator, None)

    def stream(stop: Sequence[str], max_new_tokens: int, steering: Steering | None = None) -> Iterator[str]:
        own, method = me(), inner_stream()
        assert own is not None and method is not None  # reached through the session, which is therefore alive
        return guarded(own, method(stop, max_new_tokens, steering))

    def guarded(own: DecodeSession, iterator: Iterator[str]) -> Iterator[str]:
        try:
            while not cancel.is_set():
                delta = step(iterator)
                if delta is None:
                    return
                yield delta
            own.stop_reason, own.matched_stop = "cancelled", None
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                with engine.lock:
                    close()  # runs the backend's own clean-up (counters) under the lock too

    def append(text: str) -> None:
        method = inner_append()
        assert method is not None
        with engine.lock:  # tokenizes the text: the tokenizer is the backend's, shared like the model
            method(text)

    def rewind(point: Checkpoint) -> None:
        method = inner_rewind()
        assert method is not None
        with engine.lock:  # drops cached tokens: the model's cache is the engine's, and a step may give the lock up
            method(point)

    session.stream = stream  # type: ignore[method-assign]  # instance attributes shadow the methods
    session.append = append  # type: ignore[method-assign]
    session.rewind = rewind  # type: ignore[method-assign]
    session.released = engine.lock.released  # type: ignore[method-assign]  # a batched step waits without the lock
