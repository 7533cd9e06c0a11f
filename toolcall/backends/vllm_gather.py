"""Concurrent sessions of one vLLM engine decoded together: the decodes that wait at the same moment go to the engine
in one `LLM.generate` call, which schedules them as one batch (continuous batching inside it, prefix caching across).

Each reply is still its own engine request per segment: it ends at a call marker, the tool runs outside the engine,
and the reply resumes as a new request over the same token prefix, which the prefix cache serves. A decode waits at
most `gather_seconds` for the other decoding sessions to ask for theirs.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Steering
    from .vllm import VLLMBackend, VLLMSession


@dataclass
class _Decode:
    session: "VLLMSession"
    stop: Sequence[str]
    budget: int
    steering: "Steering | None"
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class RequestGatherer:
    """Sends the decodes that concurrent sessions ask for at the same moment to the engine in one call."""

    def __init__(self, backend: "VLLMBackend", max_batch: int = 64, gather_seconds: float = 0.02) -> None:
        self.backend = backend
        self.max_batch = max_batch
        self.gather_seconds = gather_seconds
        self._cv = threading.Condition()
        self._waiting: list[_Decode] = []
        self._thread: threading.Thread | None = None
        self.calls = 0      # generate calls made
        self.requests = 0   # decodes they held

    def decode(self, session: "VLLMSession", stop: Sequence[str], budget: int, steering: "Steering | None") -> None:
        """Decode `session` (its text and ids grow) together with whatever other sessions ask at the same time."""
        job = _Decode(session, stop, budget, steering)
        with self._cv:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="toolcall-vllm-gatherer", daemon=True)
                self._thread.start()
            self._waiting.append(job)
            self._cv.notify_all()
        job.done.wait()
        if job.error is not None:
            raise job.error

    def _serve(self) -> None:
        while True:
            with self._cv:
                while not self._waiting:
                    self._cv.wait()
                deadline = time.monotonic() + self.gather_seconds
                while len(self._waiting) < self.max_batch:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
                jobs, self._waiting = self._waiting[:self.max_batch], self._waiting[self.max_batch:]
            try:
                self.backend.generate_batch([j.session for j in jobs], [j.stop for j in jobs],
                                            [j.budget for j in jobs], [j.steering for j in jobs])
                self.calls += 1
                self.requests += len(jobs)
            except BaseException as err:  # noqa: BLE001  # each waiting session raises it
                for job in jobs:
                    job.error = err
            for job in jobs:
                job.done.set()
