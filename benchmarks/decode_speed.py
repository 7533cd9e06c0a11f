"""Decode speed with tools vs without: model tokens per second of model time (tool time excluded), same prompts, same run."""
from __future__ import annotations

import json
import time

from kv_prefill import DEMO, PROBLEMS, calculator, hardware

from toolcall.backends.transformers import TransformersBackend
from toolcall.dialects import get_dialect
from toolcall.loop import LoopConfig
from toolcall.registry import ToolRegistry
from toolcall.runner import run_loop


def main() -> None:
    backend = TransformersBackend()
    dialect = get_dialect("toolformer")
    registry = ToolRegistry([calculator])
    prompts = [f"{DEMO}Question: {q}\nAnswer: {a}" for q, a in PROBLEMS]
    backend.start(prompts[0]).generate([], 2)  # warm-up: first-call allocations are not decode speed
    runs: dict[str, list] = {"with_tools": [], "without_tools": []}
    walls = {"with_tools": 0.0, "without_tools": 0.0}
    # Interleaved per prompt, so a change in machine load hits both settings alike.
    for prompt in prompts:
        for name, enabled in (("with_tools", True), ("without_tools", False)):
            began = time.perf_counter()
            runs[name].append(run_loop(backend, prompt, dialect, registry,
                                       LoopConfig(max_new_tokens=30, max_calls=3, tools_enabled=enabled)))
            walls[name] += time.perf_counter() - began
    out: dict[str, dict[str, float]] = {}
    for name, results in runs.items():
        tokens = sum(r.counters.decoded_tokens for r in results)
        model_s = sum(r.counters.decode_seconds for r in results)
        tool_s = sum(c.seconds for r in results for c in r.calls)
        out[name] = {"decoded_tokens": tokens, "calls": sum(len(r.calls) for r in results),
                     "prefilled_tokens": sum(r.counters.prefilled_tokens for r in results),
                     "model_seconds": round(model_s, 2), "tool_seconds": round(tool_s, 3),
                     "wall_seconds": round(walls[name], 2), "tokens_per_second": round(tokens / max(model_s, 1e-9), 2)}
    print(json.dumps({"benchmark": "decode_speed", "hardware": hardware(),
                      "model": "SmolLM2-135M-Instruct (embedded GGUF, fp32)", **out,
                      "speed_ratio_with_vs_without": round(out["with_tools"]["tokens_per_second"]
                                                           / max(out["without_tools"]["tokens_per_second"], 1e-9), 2)}))


if __name__ == "__main__":
    main()
