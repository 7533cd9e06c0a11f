"""CPU time of a call, for the tests that compare a parse's time at two sizes of input."""
from __future__ import annotations

import time
from collections.abc import Callable


def cpu_seconds(fn: Callable[[], object]) -> float:
    """The least CPU time of three runs of `fn` (other work on the machine adds wall time, not this)."""
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return max(best, 1e-3)  # below the clock's resolution both sizes are "instant"
