"""Stage 4: run the sampled calls through the tool registry, in parallel, each distinct call once."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .config import ExecuteConfig


class Executor:
    """Runs (tool, args) pairs; results are cached for the run, so repeated calls across texts cost nothing."""

    def __init__(self, registry: Any, config: ExecuteConfig = ExecuteConfig()) -> None:
        self.registry = registry
        self.config = config
        self._cache: dict[str, Any] = {}

    def run_many(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        keys = [json.dumps([tool, args], default=str) for tool, args in calls]
        todo = {k: c for k, c in zip(keys, calls) if k not in self._cache}
        if todo:
            workers = max(1, min(self.config.workers, len(todo)))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                # registry.call never raises: failures come back as ok=False with an error text.
                results = pool.map(lambda c: self.registry.call(c[0], c[1], timeout=self.config.timeout), todo.values())
                for key, result in zip(todo, results):
                    self._cache[key] = result
        return [self._cache[k] for k in keys]


def execute_calls(record: dict[str, Any], executor: Executor) -> dict[str, Any]:
    """record -> record whose candidates carry "result" (and failures are dropped and counted when drop_errors)."""
    cands = record.get("candidates", [])
    counts = {k: dict(v) for k, v in record.get("counts", {}).items()}
    pending = [c for c in cands if "result" not in c]
    results = executor.run_many([(c["tool"], list(c["args"])) for c in pending])
    done = [c for c in cands if "result" in c]
    rejected = list(record.get("rejected", []))
    for cand, res in zip(pending, results):
        per = counts.setdefault(cand["tool"], {})
        per["executed"] = per.get("executed", 0) + 1
        if not res.ok:
            per["errors"] = per.get("errors", 0) + 1
            if executor.config.drop_errors:
                rejected.append({"stage": "execute", "tool": cand["tool"], "position": cand["position"],
                                 "call": cand["call"], "reason": res.error or res.text})
                continue
        done.append({**cand, "result": res.text if res.ok else (res.error or res.text)})
    return {**record, "candidates": done, "counts": counts, "rejected": rejected}
