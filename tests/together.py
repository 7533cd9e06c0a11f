"""Run calls at the same moment in threads: what concurrency tests need to make requests really overlap."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def together(work: Callable[[int], T], n: int, timeout: float = 120.0) -> list[T]:
    """`work(0)` ... `work(n - 1)`, each in its own thread, released at once by a barrier; their results in order."""
    results: list[T | None] = [None] * n
    go = threading.Barrier(n)

    def run(i: int) -> None:
        go.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    return results  # type: ignore[return-value]  # every thread has set its slot
