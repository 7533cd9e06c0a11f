"""Precision and recall of data_gen's kept calls against the gold spots of benchmarks/data/datagen_dev.jsonl.

Runs the real pipeline (embedded SmolLM2 unless --model) on every text, Calendar pinned to the text's `today`
(texts without one are pinned to 2000-01-01, a date none of them writes). A kept call matches a gold spot of its
tool when it is inserted at the spot's start, or where only white space and a currency sign separate it from the
start (" $180"), and its result is the gold value: as a number for Calculator (within 0.01 or 0.5%, or equal at the
value's decimals, the checker's rule), today's date for Calendar. Precision = kept calls that match a spot / kept
calls; recall = spots matched / spots. One JSON line: the default sampling's figures, and with --sampling
default,paper the paper mode's too, each measured in this run.

    python benchmarks/datagen_quality.py [--limit N] [--kinds date,...] [--sampling default,paper] [--model PATH]
                                         [--details kept.jsonl]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from toolcall.data_gen.config import DataGenConfig
from toolcall.data_gen.pipeline import Pipeline
from toolcall.tools import calendar

sys.path.insert(0, str(Path(__file__).parent / "data"))
from check_datagen_dev import value_matches  # noqa: E402  (the gold checker's own matching rule)

DATA = Path(__file__).parent / "data" / "datagen_dev.jsonl"
NO_TODAY = "2000-01-01"
TOOLS = ("Calculator", "Calendar", "QA")
GAP = " \t\n$€£¥"


def hardware() -> str:
    model = platform.processor()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), model)
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
    return f"{model}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, {device}"


def spot_of(text: str, call: dict[str, Any], gold: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The gold spot of the call's tool that the call sits at (its start, or white space / currency before it); a
    spot with several "starts" (SQuAD: where each crowd worker's answer begins) is met at any of them."""
    at = call["position"]
    for spot in gold:
        if spot["tool"] != call["tool"]:
            continue
        if any(at <= start and not text[at:start].strip(GAP) for start in spot.get("starts", [spot["start"]])):
            return spot
    return None


def right(call: dict[str, Any], spot: dict[str, Any]) -> bool:
    """Whether a call at `spot` returned its gold value (Calendar: today's date, as pinned for the text; QA: an
    answer that contains one of the crowd workers' answers, ignoring case)."""
    if spot["tool"] == "Calendar":
        return str(call["result"]) == calendar.calendar()
    if spot["tool"] == "QA":
        return any(answer.lower() in str(call["result"]).lower() for answer in spot.get("answers", [spot["value"]]))
    try:
        return value_matches(float(str(call["result"]).replace(",", "")), spot["value"])
    except ValueError:
        return False


def today_of(rec: dict[str, Any]) -> str:
    """The date a gold text is about: its "today" (the dev set) or "date" (data_gen/corpora/tool_texts.py)."""
    return rec.get("today") or rec.get("date") or NO_TODAY


def measure(records: list[dict[str, Any]], pipeline: Pipeline, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run the pipeline on every gold text (Calendar pinned to the text's date) and score what it kept."""
    outputs = []
    began = time.perf_counter()
    for rec in records:
        calendar.set_today(today_of(rec))
        try:
            outputs.append(pipeline.process(rec["text"])[0])
        finally:
            calendar.set_today(None)
    seconds = time.perf_counter() - began
    return {**score(records, outputs, details), "seconds": round(seconds, 1),
            "texts_per_min": round(len(records) / seconds * 60, 2)}


def score(records: list[dict[str, Any]], outputs: list[dict[str, Any] | None],
          details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Precision and recall of the kept calls in `outputs` (data-gen output records, None for a text that kept
    none) against the gold spots of the same `records`."""
    kept = {t: 0 for t in TOOLS}
    matched = {t: 0 for t in TOOLS}
    gold_n = {t: 0 for t in TOOLS}
    covered = {t: 0 for t in TOOLS}
    by_source: dict[str, list[int]] = {}
    for rec, out in zip(records, outputs):
        text, gold = rec["text"], rec["gold"]
        calendar.set_today(today_of(rec))
        try:
            hit: set[int] = set()
            judged: list[tuple[dict[str, Any], bool]] = []
            for call in (out or {}).get("calls", []):
                spot = spot_of(text, call, gold)
                ok = spot is not None and right(call, spot)
                judged.append((call, ok))
                kept[call["tool"]] = kept.get(call["tool"], 0) + 1
                matched[call["tool"]] = matched.get(call["tool"], 0) + ok
                by_source.setdefault(call.get("source", "model"), [0, 0])[0] += 1
                by_source[call.get("source", "model")][1] += ok
                if ok:
                    hit.add(id(spot))
            for spot in gold:
                gold_n[spot["tool"]] += 1
                covered[spot["tool"]] += id(spot) in hit
            if details is not None:
                details.append({"id": rec.get("id"), "text": text, "missed": [s for s in gold if id(s) not in hit],
                                "kept": [{**{k: c[k] for k in ("tool", "args", "result", "position", "source")},
                                          "loss_reduction": round(c["loss_reduction"], 3), "right": ok}
                                         for c, ok in judged]})
        finally:
            calendar.set_today(None)
    n_kept, n_matched = sum(kept.values()), sum(matched.values())
    return {
        "precision": round(n_matched / n_kept, 3) if n_kept else None,
        "recall": round(sum(covered.values()) / sum(gold_n.values()), 3) if sum(gold_n.values()) else None,
        "kept": n_kept, "kept_right": n_matched, "gold": sum(gold_n.values()), "gold_covered": sum(covered.values()),
        "per_tool": {t: {"precision": round(matched[t] / kept[t], 3) if kept.get(t) else None,
                         "recall": round(covered[t] / gold_n[t], 3) if gold_n[t] else None,
                         "kept": kept.get(t, 0), "kept_right": matched.get(t, 0), "gold": gold_n[t],
                         "gold_covered": covered[t]} for t in TOOLS},
        "kept_by_source": {s: {"kept": k, "right": r} for s, (k, r) in sorted(by_source.items())},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="gold texts (jsonl)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N texts")
    parser.add_argument("--kinds", default=None, help="only texts of these kinds, comma-separated (e.g. date,receipt)")
    parser.add_argument("--details", type=Path, default=None,
                        help="write each text's kept calls (right or not) and missed spots to this jsonl file")
    parser.add_argument("--sampling", default="default", help="modes to measure, comma-separated: default, paper")
    parser.add_argument("--backend", default="transformers")
    parser.add_argument("--model", default=None, help="model path (default: the embedded SmolLM2)")
    parser.add_argument("--dtype", default="auto", help="what the model computes in (data-gen's --dtype)")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.sampling.split(",") if m.strip()]
    records = [json.loads(line) for line in args.data.read_text(encoding="utf-8").split("\n") if line.strip()]
    if args.kinds:
        records = [r for r in records if r.get("kind") in set(args.kinds.split(","))]
    records = records[:args.limit] if args.limit else records

    from toolcall.backends import get_scorer
    from toolcall.registry import default_registry

    began = time.perf_counter()
    from toolcall.cli.datagen_cmd import dtype_option

    scorer = get_scorer(args.backend, args.model, **dtype_option(args.backend, args.dtype))
    load_seconds = time.perf_counter() - began
    registry = default_registry(["calculator", "calendar"], entry_points=False)
    details: list[dict[str, Any]] = []
    results = {mode: measure(records, Pipeline(scorer, registry, DataGenConfig(sampling=mode)),
                             details if mode == modes[0] else None) for mode in modes}
    if args.details is not None:
        args.details.write_text("".join(json.dumps(d) + "\n" for d in details), encoding="utf-8")
    first = results[modes[0]]
    line = {"benchmark": "datagen_quality", "data": args.data.name, "texts": len(records), "sampling": modes[0],
            **first, **{f"{mode}_sampling": results[mode] for mode in modes[1:]},
            "model": args.model or "SmolLM2-135M (embedded GGUF)", "dtype": args.dtype, "model_load_seconds": round(load_seconds, 1),
            "hardware": hardware()}
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
