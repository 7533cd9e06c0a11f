"""Iterated Toolformer on real text: corpus i -> LoRA -> model i+1 samples and judges corpus i+1, and so on.

The paper's pipeline is one pass of a model that has never seen a call: it samples calls, and its own loss keeps those
whose results help. A 135M model that has never seen a call writes few usable ones, so iteration 0 is seeded by the
tools' proposers (`--propose`); from iteration 1 on, the model trained on the previous corpus both samples the calls
(`--no-propose`: every kept call is one it wrote) and scores them (`--scorer-model`: the paper's M is both sampler and
judge, and a model that has seen calls tells right ones from wrong far better; data_gen/README.md has the figures).
It reads the text alone (`--prompt none`), as it was trained: shown the whole text in the paper's few-shot prompt, a
model that has learned to call at answers copies the answer written after the call instead of computing it.
Each model i+1 is a LoRA over the base trained on corpus i alone, as the paper fine-tunes M on C*.

Per iteration, on real, human-written text (GSM8K training solutions, benchmarks/data/real/, MIT):
- the corpus's precision and recall against the texts' own calculator annotations (removed from the input);
- who wrote the kept calls: the model (sampled) or a proposer, from data-gen's stats.json;
- the trained model's accuracy on held-out word problems written by people (SVAMP, MIT), tools on and off.

Writes DIR/report.json and prints it as one JSON line; a step whose output is there is skipped (resume), --fresh
starts over. `--backend fake` runs the whole loop on the toy model in seconds (the test does that).

    python benchmarks/toolformer_iterate.py --out runs/iterate --iterations 2 --texts 120
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from toolformer_effect import call_quality, eval_summary, run, run_dir, toolcall  # noqa: E402

REAL = Path(__file__).resolve().parent / "data" / "real"
POOL = REAL / "gsm8k_train_pool.jsonl"
PUBLIC_MATH = REAL / "svamp_math.jsonl"


def corpus_quality(texts: Path, datagen: Path, limit: int) -> dict[str, Any]:
    """Precision and recall of data-gen's corpus against the gold spots of its input texts (benchmarks/datagen_quality.py's
    scoring: a kept call is right when it sits at a gold spot and its result is the gold value)."""
    from datagen_quality import score

    records = [json.loads(line) for line in texts.read_text(encoding="utf-8").split("\n")[:limit] if line.strip()]
    kept: dict[str, dict[str, Any]] = {}
    corpus = datagen / "corpus.jsonl"
    for line in corpus.read_text(encoding="utf-8").split("\n") if corpus.is_file() else []:
        if line.strip():
            out = json.loads(line)
            kept[out["original"]] = out
    return score(records, [kept.get(r["text"]) for r in records])


def who_wrote(datagen: Path) -> dict[str, Any]:
    """Kept calls by who wrote them, and the model's share (a call both wrote alike counts as the model's)."""
    stats = json.loads((datagen / "stats.json").read_text(encoding="utf-8"))
    by = stats.get("calls_kept_by_source", {})
    kept = sum(by.values())
    model = by.get("model", 0) + by.get("both", 0)
    return {"calls_kept": stats["calls_kept"], "by_source": by,
            "model_written_share": round(model / kept, 4) if kept else 0.0,
            "texts_kept": stats["texts_kept"], "texts_in": stats["texts_in"]}


def evaluate(out: Path, name: str, model: list[str], args: argparse.Namespace, timings: dict[str, float],
             log: Path) -> dict[str, Any]:
    """Accuracy on the held-out public word problems, tools off and on, and how the calls went."""
    summary_log, items = out / f"eval_{name}.log", out / f"eval_{name}.jsonl"
    if not items.is_file():
        cmd = toolcall("eval", "--task", "math", "--input", str(args.problems), "--limit", str(args.problems_limit),
                       "--output", str(items), "--json", "--quiet", *backend_args(args), *model,
                       *shlex.split(args.eval_args))
        run(cmd, summary_log, timings, f"eval_{name}")
    summary = eval_summary(summary_log)
    return {mode: summary[mode] for mode in ("no_tools", "tools")} | {"calls": call_quality(items)}


def backend_args(args: argparse.Namespace) -> list[str]:
    return ["--backend", args.backend] if args.backend != "transformers" else []


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="run directory (resumed when it exists)")
    p.add_argument("--iterations", type=int, default=2, help="corpora to make (iteration 0 is proposer-seeded)")
    p.add_argument("--texts", type=int, default=120, help="texts of the pool each iteration annotates")
    p.add_argument("--pool", type=Path, default=POOL, help="real texts with gold spots (jsonl: text, gold)")
    p.add_argument("--problems", type=Path, default=PUBLIC_MATH, help="held-out word problems (jsonl: question, answer)")
    p.add_argument("--problems-limit", type=int, default=60, help="how many of them")
    p.add_argument("--tools", default="calculator", help="tools data-gen annotates with")
    p.add_argument("--epochs", type=float, default=3.0, help="LoRA epochs per iteration")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="transformers", help="fake: the toy model, to check the loop end to end")
    p.add_argument("--data-gen-args", default="", help="extra `toolcall data-gen` flags for every iteration")
    p.add_argument("--later-args", default="", help="extra data-gen flags from iteration 1 on, e.g. \"--tau-f 0.5\"")
    p.add_argument("--eval-args", default="", help="extra `toolcall eval` flags, e.g. \"--few-shot 0\" (the paper "
                                                   "evaluates zero-shot)")
    p.add_argument("--fresh", action="store_true", help="delete DIR first")
    args = p.parse_args(argv)
    out: Path = args.out
    timings_file, timings = run_dir(out, args.fresh)
    log = out / "commands.log"
    began = time.perf_counter()
    iterations: list[dict[str, Any]] = []
    model: list[str] = []  # the base model: the backend's default
    base = evaluate(out, "base", model, args, timings, log)
    for i in range(args.iterations):
        datagen = out / f"corpus_{i}"
        flags = (["--propose"] if i == 0 else
                 ["--no-propose", "--prompt", "none", "--scorer-model", model[-1], *shlex.split(args.later_args)])
        if not (datagen / "stats.json").is_file():
            resume = ["--resume"] if (datagen / "progress.jsonl").is_file() else []
            run(toolcall("data-gen", "--input", str(args.pool), "--output", str(datagen), "--tools", args.tools,
                         "--limit", str(args.texts), "--seed", str(args.seed + i), "--no-progress", *backend_args(args),
                         *model, *flags, *resume, *shlex.split(args.data_gen_args)), log, timings, f"data_gen_{i}")
        corpus = who_wrote(datagen) | {"quality": corpus_quality(args.pool, datagen, args.texts)}
        if not corpus["texts_kept"]:  # nothing to train on: the loop ends here, and the report says so
            iterations.append({"iteration": i, "sampler_and_scorer": "base (+ proposers)" if i == 0 else f"model_{i}",
                               "corpus": corpus, "stopped": f"corpus {i} kept no text, so no model {i + 1} was trained"})
            break
        adapter = out / f"model_{i + 1}"
        if not any(adapter.glob("*.json")):
            run(toolcall("train", "--corpus", str(datagen), "--output", str(adapter), "--lora", "--epochs",
                         str(args.epochs), "--lr", str(args.lr), "--lora-r", str(args.lora_r), "--lora-alpha",
                         str(2 * args.lora_r), "--lora-targets", "q_proj,k_proj,v_proj,o_proj", "--batch-size",
                         str(args.batch_size), "--seed", str(args.seed), *backend_args(args)), log, timings, f"train_{i}")
        model = ["--model", str(adapter)]
        iterations.append({
            "iteration": i, "sampler_and_scorer": "base (+ proposers)" if i == 0 else f"model_{i}",
            "corpus": corpus,
            f"model_{i + 1}_on_held_out_problems": evaluate(out, f"model_{i + 1}", model, args, timings, log)})
        timings_file.write_text(json.dumps(timings, indent=2) + "\n", encoding="utf-8")
    report = {"benchmark": "toolformer_iterate", "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "fresh"},
              "base_on_held_out_problems": base, "iterations": iterations, "seconds": timings,
              "seconds_this_run": round(time.perf_counter() - began, 1)}
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
