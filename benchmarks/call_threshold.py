"""Choose a model's call threshold on BFCL's non-live categories: the probability it gives the call opener at the
reply's first token, per category, and the share of right decisions (open a call on the call categories, none on
irrelevance) for each threshold; items of the report sample (`--exclude-seed`) are left out, so the choice is not made
on the items it is reported on. Prints one JSON line (the grid and the chosen threshold); `--out` keeps the per-item
probabilities.

    python benchmarks/call_threshold.py --model schema-tools-smollm2 --seed 1 --limit 60 --exclude-seed 0 --exclude-limit 30
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

CATEGORIES = ("simple", "multiple", "parallel", "parallel_multiple", "irrelevance")
GRID = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.96, 0.97, 0.98, 0.985, 0.99, 0.995)


def open_probability(backend: Any, prompt: str, begin: frozenset[int]) -> float:
    """The probability the model gives any token that begins the call opener, next after `prompt`."""
    import torch

    ids = backend.encode(prompt)
    with torch.no_grad():
        logits = backend.model(torch.tensor([ids], device=backend.model.device)).logits[0, -1].float()
    return float(torch.softmax(logits, -1)[sorted(begin)].sum())


def right_decisions(probs: dict[str, list[float]], threshold: float) -> dict[str, float]:
    """Per category, the share of items decided right at `threshold`: a call opened, or none on irrelevance."""
    return {c: (sum(p < threshold for p in ps) if c == "irrelevance" else sum(p >= threshold for p in ps)) / len(ps)
            for c, ps in probs.items() if ps}


#: Thresholds whose mean share of right decisions is this close to the best make the plateau; its median is chosen,
#: so the choice does not rest on one item of the tuning sample.
PLATEAU = 0.005


def choose(probs: dict[str, list[float]], grid: tuple[float, ...] = GRID) -> tuple[float, list[dict[str, Any]]]:
    """The median threshold of the plateau around the best mean share of right decisions, and the whole grid."""
    rows = []
    for t in grid:
        per = right_decisions(probs, t)
        rows.append({"threshold": t, "mean": round(sum(per.values()) / len(per), 4),
                     **{c: round(v, 4) for c, v in per.items()}})
    best = max(r["mean"] for r in rows)
    plateau = [r["threshold"] for r in rows if r["mean"] >= best - PLATEAU]
    return plateau[len(plateau) // 2], rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model to measure (default: the embedded one)")
    parser.add_argument("--dialect", default="hermes")
    parser.add_argument("--seed", type=int, default=1, help="the tuning sample's seed")
    parser.add_argument("--limit", type=int, default=60, help="items per category in the tuning sample")
    parser.add_argument("--exclude-seed", type=int, default=0, help="the report sample's seed (its items are left out)")
    parser.add_argument("--exclude-limit", type=int, default=30, help="items per category in the report sample")
    parser.add_argument("--out", type=Path, default=None, help="per-item probabilities (.jsonl)")
    args = parser.parse_args(argv)

    from toolcall.backends import get_backend
    from toolcall.bfcl import item_prompt, load_bfcl_items
    from toolcall.dialects import get_dialect

    dialect = get_dialect(args.dialect)
    if not dialect.open_marker:
        parser.error(f"the {dialect.name} dialect has no call-open marker")
    backend = get_backend("transformers", args.model)
    begin, _ = backend.open_token_ids(dialect.open_marker)
    probs: dict[str, list[float]] = {}
    rows = []
    for category in CATEGORIES:
        held_out = {it.id for it in load_bfcl_items(category, args.exclude_limit, args.exclude_seed)}
        probs[category] = []
        for item in load_bfcl_items(category, args.limit, args.seed):
            if item.id in held_out:
                continue
            p = open_probability(backend, item_prompt(item, dialect, backend.chat_prompt), begin)
            probs[category].append(p)
            rows.append({"category": category, "id": item.id, "p_open": p})
    if args.out is not None:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    chosen, grid = choose(probs)
    print(json.dumps({"model": args.model or "embedded", "dialect": dialect.name, "seed": args.seed,
                      "items": {c: len(p) for c, p in probs.items()}, "chosen": chosen, "grid": grid}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
