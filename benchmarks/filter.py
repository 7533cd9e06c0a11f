"""Benchmark: filter-stage candidates scored per second, batched/KV-sharing path vs the naive reference, one JSON line.

Same model (the embedded SmolLM2-135M-Instruct through transformers, float32, CPU) and same texts/candidates for
both. Candidates: for each text of the shipped corpus that passes the calculator prefilter, the first POSITIONS
word-start positions that begin a number, times the first CALLS arithmetic calls built from pairs of the text's
numbers (executed by the real Calculator tool) - the shape sampling gives (m calls at k positions, the same call
string often recurring across positions). The naive path runs one un-batched full forward per scored sequence
(L(eps), L(e(c, eps)), L(e(c, r)) for every candidate); the optimised path is data_gen.filter.score_candidates.
"""
from __future__ import annotations

import itertools
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TEXTS = 3
POSITIONS = 4
CALLS = 4


def candidates(scorer, registry, text: str) -> list[dict]:
    from toolcall.data_gen.tokens import tokenize

    tt = tokenize(scorer, text)
    spots = [i for i in range(1, len(tt.ids)) if tt.leading_space(i) and text[tt.starts[i] + 1:tt.starts[i] + 2].isdigit()]
    numbers = [n.replace(",", "") for n in re.findall(r"\d[\d,]*(?:\.\d+)?", text)]
    calls = []
    for a, b in itertools.combinations(dict.fromkeys(numbers), 2):
        for op in ("+", "*", "-", "/"):
            calls.append(f"{a} {op} {b}")
    out = []
    for expr in calls[:CALLS]:
        result = registry.call("Calculator", [expr]).text
        out += [{"tool": "Calculator", "args": [expr], "result": result, "token": i, "position": tt.starts[i]} for i in spots[:POSITIONS]]
    return out


def main() -> None:
    from toolcall.data_gen.config import FilterConfig
    from toolcall.data_gen.corpora import FACTS
    from toolcall.data_gen.filter import score_candidates
    from toolcall.data_gen.prefilter import calculator_heuristic
    from toolcall.data_gen.reference import naive_losses
    from toolcall.backends.hf_loading import load_model_and_tokenizer
    from toolcall.backends.hf_scoring import HFScorer
    from toolcall.registry import default_registry

    scorer = HFScorer(*load_model_and_tokenizer(None))
    registry = default_registry(["calculator"])
    texts = [t for t in FACTS.read_text().splitlines() if calculator_heuristic(t)][:TEXTS]
    work = [(t, candidates(scorer, registry, t)) for t in texts]
    n = sum(len(c) for _, c in work)
    score_candidates({"text": texts[0], "candidates": work[0][1][:2]}, scorer, {"calculator": FilterConfig()})  # warm-up
    result = {"benchmark": "filter", "model": "SmolLM2-135M-Instruct (embedded GGUF, transformers, float32)",
              "hardware": f"{platform.machine()} CPU, {os.cpu_count()} cores, torch threads "
                          f"{__import__('torch').get_num_threads()}",
              "texts": len(texts), "candidates": n}
    worst = 0.0
    for placement in ("prefix", "inline"):
        cfg = {"calculator": FilterConfig(placement=placement)}
        began = time.perf_counter()
        fast = [score_candidates({"text": t, "candidates": c}, scorer, cfg)["candidates"] for t, c in work]
        fast_s = time.perf_counter() - began
        began = time.perf_counter()
        slow = [[naive_losses(scorer, t, cand, placement=placement) for cand in c] for t, c in work]
        slow_s = time.perf_counter() - began
        for f_row, s_row in zip(fast, slow):
            for cand, (minus, plus) in zip(f_row, s_row):
                worst = max(worst, abs(cand["loss_minus"] - minus), abs(cand["loss_plus"] - plus))
        key = "" if placement == "prefix" else "_inline"
        result[f"optimised_cands_per_s{key}"] = round(n / fast_s, 2)
        result[f"naive_cands_per_s{key}"] = round(n / slow_s, 2)
        result[f"ratio{key}"] = round(slow_s / fast_s, 2)
    result["max_abs_loss_diff"] = worst
    print(json.dumps(result))


if __name__ == "__main__":
    main()
