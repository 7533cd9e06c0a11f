"""The Toolformer effect, end to end: our corpus -> data-gen -> LoRA fine-tune -> eval, base vs trained x tools off vs on.

Runs the documented `toolcall` commands one after the other (each printed with its time) on this machine:

1. `python -m toolcall.data_gen.corpora.tool_texts` writes the training texts and the held-out test split;
2. `toolcall data-gen` annotates the first --texts training texts with Calculator and Calendar calls;
3. `toolcall train --lora` fine-tunes the base model on the annotated corpus (result tokens masked);
4. `toolcall eval` runs the base and the trained model on the test split, tools off and on (math and dates);

then writes DIR/report.json and DIR/report.png (the 2x2 table as bars) and prints one JSON line: the four accuracies,
the call rate, how often the call computed the right answer, the two target gaps, and the seconds of each step.
A step whose output is already there is skipped (so a run can be resumed); --fresh starts over.

    python benchmarks/toolformer_effect.py --out runs/effect
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MODES = ("no_tools", "tools")
ROOT = Path(__file__).resolve().parents[1]
#: Where the shipped model lives in the package (toolcall.models.NAMED_MODELS["toolformer-smollm2"]).
SHIPPED = ROOT / "toolcall" / "models" / "toolformer-smollm2"
#: The issue's targets, in accuracy points: trained+tools over base without tools, and over trained without tools.
TARGET_OVER_BASE, TARGET_OVER_TRAINED = 0.15, 0.10
#: Word problems written by people (SVAMP, MIT; benchmarks/data/real/README.md), never trained on, and the targets there.
PUBLIC_MATH = Path(__file__).parent / "data" / "real" / "svamp_math.jsonl"
PUBLIC_OVER_BASE, PUBLIC_OVER_TRAINED = 0.20, 0.10


def run(cmd: list[str], log: Path, timings: dict[str, float], step: str) -> None:
    """Run one command, its output appended to `log`; stop the whole run if it fails."""
    print(f"$ {shlex.join(cmd)}", file=sys.stderr, flush=True)
    began = time.perf_counter()
    with log.open("a", encoding="utf-8") as fh:
        fh.write(f"\n$ {shlex.join(cmd)}\n")
        fh.flush()
        done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    timings[step] = round(timings.get(step, 0.0) + time.perf_counter() - began, 1)
    (log.parent / "timings.json").write_text(json.dumps(timings, indent=2) + "\n", encoding="utf-8")
    if done.returncode != 0:
        raise SystemExit(f"step {step} failed (exit {done.returncode}); see {log}")


def run_dir(out: Path, fresh: bool) -> tuple[Path, dict[str, float]]:
    """Make the run directory (emptied first when `fresh`); its timings file and the seconds per step recorded there,
    kept across resumed runs (a step skipped now keeps the time it took when it ran)."""
    if fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    timings_file = out / "timings.json"
    return timings_file, json.loads(timings_file.read_text()) if timings_file.is_file() else {}


def toolcall(*args: str) -> list[str]:
    return [sys.executable, "-m", "toolcall", *args]


def eval_summary(path: Path) -> dict[str, Any]:
    """The summary JSON line `toolcall eval --json` printed last into `path`."""
    for line in reversed(path.read_text(encoding="utf-8").split("\n")):
        if line.startswith("{"):
            return json.loads(line)
    raise SystemExit(f"no summary line in {path}")


def _has_summary(path: Path) -> bool:
    return any(line.startswith("{") for line in path.read_text(encoding="utf-8").split("\n"))


def call_quality(items_path: Path, task: str = "math") -> dict[str, float]:
    """Of the tools-on items: the share with a call, and the share whose call returned the answer (math: the call's
    result is the gold number, i.e. its expression was right; dates: the Calendar's answer names the gold answer),
    overall and among those with a call."""
    from toolcall.grading import normalize_answer, numbers_match, parse_number

    def answered(call: dict[str, Any], gold: str) -> bool:
        if not call.get("ok"):
            return False
        result = str(call.get("result", ""))
        if task == "math":
            return numbers_match(parse_number(result), parse_number(gold))
        return normalize_answer(gold) in normalize_answer(result)

    rows = [json.loads(line) for line in items_path.read_text(encoding="utf-8").split("\n") if line.strip()]
    on = [r for r in rows if r["mode"] == "tools"]
    with_call = [r for r in on if r["calls"]]
    right = [r for r in with_call if any(answered(c, r["gold"]) for c in r["calls"])]
    n = max(len(on), 1)
    return {"call_rate": round(len(with_call) / n, 4), "right_call_rate": round(len(right) / n, 4),
            "right_given_call": round(len(right) / max(len(with_call), 1), 4)}


def corpus_quality(train: Path, datagen: Path, n: int) -> dict[str, Any]:
    """Precision and recall of the annotated corpus against the gold spots the corpus script marks in each text
    (where a computed number or today's date starts), scored as benchmarks/datagen_quality.py scores its dev set."""
    sys.path.insert(0, str(Path(__file__).parent))
    from datagen_quality import score

    records = [json.loads(line) for line in train.read_text(encoding="utf-8").split("\n")[:n] if line.strip()]
    if not all("gold" in r for r in records):
        return {}
    kept = {}
    for line in (datagen / "corpus.jsonl").read_text(encoding="utf-8").split("\n"):
        if line.strip():
            out = json.loads(line)
            kept[out["original"]] = out
    return score(records, [kept.get(r["text"]) for r in records])


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in ("math", "dates") if t in report["results"]]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        res = report["results"][task]
        labels = ["base", "trained"]
        width = 0.38
        for j, mode in enumerate(MODES):
            values = [100 * res[m][mode]["accuracy"] for m in labels]
            bars = ax.bar([i + (j - 0.5) * width for i in range(2)], values, width,
                          label="tools off" if mode == "no_tools" else "tools on", color=("#9aa5b1", "#2f6fde")[j])
            for b, v in zip(bars, values):
                ax.text(b.get_x() + b.get_width() / 2, v + 1, f"{v:.0f}", ha="center", fontsize=8)
        ax.set_xticks(range(2), labels)
        ax.set_ylim(0, 100)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{task} (n={res['base']['tools']['n']})")
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle("SmolLM2-135M-Instruct: base vs fine-tuned on the toolcall corpus", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ship(adapter: Path, dest: Path, report: dict[str, Any]) -> None:
    """The adapter as the package ships it: its config, its weights in float16 (half the size; the loader casts them
    to the model's dtype) and a README with the recipe and the table; no tokenizer (the base model's is used)."""
    import torch
    from safetensors.torch import load_file, save_file

    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(adapter / "adapter_config.json", dest / "adapter_config.json")
    weights = {k: v.to(torch.float16).contiguous() for k, v in load_file(adapter / "adapter_model.safetensors").items()}
    save_file(weights, dest / "adapter_model.safetensors")
    (dest / "README.md").write_text(recipe(report), encoding="utf-8")


#: The settings that make the adapter and its table, as this script's flags: a rebuild names every one of them, so a
#: default changed since (600 texts where 400 were annotated) cannot make another adapter and ship it in this one's place.
REBUILD_FLAGS = {"model": "--model", "train_texts": "--train-texts", "texts": "--texts", "math": "--math",
                 "dates": "--dates", "today": "--today", "epochs": "--epochs", "lr": "--lr", "lora_r": "--lora-r",
                 "lora_targets": "--lora-targets", "batch_size": "--batch-size", "seed": "--seed",
                 "public_limit": "--public-limit", "data_gen_args": "--data-gen-args"}


def rebuild_flags(settings: dict[str, Any]) -> str:
    """The flags that rebuild a run with `settings` (its report's), each given explicitly."""
    return "".join(f" {flag} {shlex.quote(str(settings[key]))}" for key, flag in REBUILD_FLAGS.items()
                   if settings.get(key) not in (None, ""))


def recipe(report: dict[str, Any]) -> str:
    """How the shipped adapter was made, and what it scored."""
    s = report["settings"]
    rows = []
    for task, res in report["results"].items():
        for model in ("base", "trained"):
            cells = " | ".join(f"{100 * res[model][mode]['accuracy']:.1f}% ({100 * res[model][mode]['exact_accuracy']:.0f}%)"
                               for mode in MODES)
            calls = res[model]["calls"]
            rows.append(f"| {task} | {model} | {cells} | {100 * calls['call_rate']:.0f}% | "
                        f"{100 * calls['right_call_rate']:.0f}% |")
    table = "\n".join(rows)
    rebuild_args = rebuild_flags(s)
    return f"""# toolformer-smollm2

A LoRA adapter over the embedded SmolLM2-135M-Instruct, fine-tuned on a Toolformer corpus that toolcall made itself:
it writes `[Calculator(expression) -> ` where a number is computed from earlier ones and `[Calendar() -> ` where
today's date is written. Use it with `--model toolformer-smollm2`.

## How it was made (rebuild: `python benchmarks/toolformer_effect.py --out runs/effect --ship{rebuild_args}`)
1. Corpus: `python -m toolcall.data_gen.corpora.tool_texts --out DIR/corpus --train {s['train_texts']} --test-math {s['math']} --test-dates {max(s['dates'], 1)} --seed {s['seed']}`
   (templates and word lists written for toolcall; the test split uses other templates, names and objects).
2. Annotation: `toolcall data-gen --input DIR/corpus/train.jsonl --output DIR/datagen --tools calculator,calendar --limit {s['texts']} {s['data_gen_args']}`
   (default sampling: tool proposals and constrained model samples, kept by the paper's loss filter as data-gen's
   judge scores them) —
   {report['data_gen']['texts_kept']} of {report['data_gen']['texts_in']} texts kept, {report['data_gen']['calls_kept']} calls ({report['data_gen']['kept_per_tool']}).
3. Fine-tune: `toolcall train --corpus DIR/datagen --output DIR/adapter --lora --epochs {s['epochs']} --lr {s['lr']} --lora-r {s['lora_r']} --lora-alpha {2 * s['lora_r']} --lora-targets {s['lora_targets']} --batch-size {s['batch_size']} --seed {s['seed']}`
   (tool results masked out of the loss); weights stored here in float16.
4. Evaluation: `toolcall eval --task math --input DIR/corpus/test_math.jsonl` and `--task dates --input DIR/corpus/test_dates.jsonl --today {s['today']} --limit {s['dates']}`, base and trained, tools off and on.

## Results on the held-out split (accuracy by the paper's scoring — first number for math, the answer within the first words for dates — and exact match of the answer line in brackets)

| task | model | tools off | tools on | call rate (tools on) | call returned the answer |
|---|---|---|---|---|---|
{table}

Trained with tools minus base without tools: {100 * report['targets']['trained_tools_minus_base_no_tools']:.1f} points; minus trained
without tools: {100 * report['targets']['trained_tools_minus_trained_no_tools']:.1f} points. Seconds per step: {report['seconds']}.
Machine: {report['machine']}.

Licence: Apache-2.0 (the adapter); the base model is SmolLM2-135M-Instruct (Apache-2.0).
"""


def public_targets(res: dict[str, Any] | None) -> dict[str, Any] | None:
    """On the public word problems: trained with tools over the base without tools (+20 points needed) and over
    itself without tools (+10)."""
    if res is None:
        return None
    over_base = res["trained"]["tools"]["accuracy"] - res["base"]["no_tools"]["accuracy"]
    over_trained = res["trained"]["tools"]["accuracy"] - res["trained"]["no_tools"]["accuracy"]
    return {"trained_tools_minus_base_no_tools": round(over_base, 4), "needed": PUBLIC_OVER_BASE,
            "trained_tools_minus_trained_no_tools": round(over_trained, 4), "needed_2": PUBLIC_OVER_TRAINED,
            "met": over_base >= PUBLIC_OVER_BASE and over_trained >= PUBLIC_OVER_TRAINED}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/effect"), help="run directory")
    p.add_argument("--model", default=None, help="base checkpoint (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--train-texts", type=int, default=3000, help="training texts the corpus script writes")
    p.add_argument("--texts", type=int, default=600, help="of those, how many data-gen annotates")
    p.add_argument("--math", type=int, default=150, help="math word problems in the test split")
    p.add_argument("--dates", type=int, default=36, help="date questions in the test split (0: no dates table)")
    p.add_argument("--today", default="2025-06-18", help="the date the date questions are asked on")
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-targets", default="q_proj,k_proj,v_proj,o_proj")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--public-math", type=Path, default=PUBLIC_MATH,
                   help="held-out word problems written by people, evaluated as a third task (public_math)")
    p.add_argument("--public-limit", type=int, default=80, help="how many of them (0: skip the task)")
    p.add_argument("--data-gen-args", default="", help="extra `toolcall data-gen` flags, e.g. \"--tau-p 0.2\"")
    p.add_argument("--fresh", action="store_true", help="delete DIR first instead of reusing finished steps")
    p.add_argument("--ship", action="store_true",
                   help=f"copy the trained adapter (weights in float16) and its recipe into {SHIPPED.relative_to(ROOT)}")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    out: Path = args.out
    timings_file, timings = run_dir(out, args.fresh)
    log = out / "run.log"
    model = ["--model", args.model] if args.model else []
    began = time.perf_counter()

    # 1. The corpus and its held-out test split (deterministic for a seed).
    corpus = out / "corpus"
    if not (corpus / "overlap.json").is_file():
        run([sys.executable, "-m", "toolcall.data_gen.corpora.tool_texts", "--out", str(corpus), "--train",
             str(args.train_texts), "--test-math", str(args.math), "--test-dates", str(max(args.dates, 1)),
             "--seed", str(args.seed), "--force"], log, timings, "corpus")   # its own folder: a cut run's files go
    # 2. data-gen on the first --texts training texts (resumes a run that was cut short).
    datagen = out / "datagen"
    if not (datagen / "stats.json").is_file():
        resume = ["--resume"] if datagen.is_dir() and any(datagen.iterdir()) else []
        run(toolcall("data-gen", "--input", str(corpus / "train.jsonl"), "--output", str(datagen), "--tools",
                     "calculator,calendar", "--limit", str(args.texts), "--no-progress", *model, *resume,
                     *shlex.split(args.data_gen_args)), log, timings, "data_gen")
    # 3. LoRA fine-tune on the annotated texts.
    adapter = out / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        run(toolcall("train", "--corpus", str(datagen), "--output", str(adapter), "--lora", "--epochs",
                     str(args.epochs), "--lr", str(args.lr), "--lora-r", str(args.lora_r), "--lora-alpha",
                     str(2 * args.lora_r), "--lora-targets", args.lora_targets, "--batch-size", str(args.batch_size),
                     "--seed", str(args.seed), *model), log, timings, "train")
    # 4. Both models, tools off and on, on the held-out split.
    tasks = {"math": (corpus / "test_math.jsonl", [])}
    if args.dates > 0:
        tasks["dates"] = (corpus / "test_dates.jsonl", ["--today", args.today, "--limit", str(args.dates)])
    if args.public_limit > 0:
        tasks["public_math"] = (args.public_math, ["--limit", str(args.public_limit)])
    results: dict[str, Any] = {}
    for task, (items, extra) in tasks.items():
        results[task] = {}
        for name, which in (("base", model), ("trained", ["--model", str(adapter)])):
            summary_path, items_path = out / f"eval_{task}_{name}.log", out / f"eval_{task}_{name}.jsonl"
            # An eval writes its items as it grades them: only one that printed its summary is done (a stopped one
            # left part of its items, which a rerun would have taken as the whole).
            if not (items_path.is_file() and summary_path.is_file() and _has_summary(summary_path)):
                cmd = toolcall("eval", "--task", "dates" if task == "dates" else "math", "--input", str(items), "--output", str(items_path), "--json",
                               "--quiet", *which, *extra)
                print(f"$ {shlex.join(cmd)}", file=sys.stderr, flush=True)
                t0 = time.perf_counter()
                with summary_path.open("w", encoding="utf-8") as fh:
                    done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT)
                timings[f"eval_{task}_{name}"] = round(time.perf_counter() - t0, 1)
                timings_file.write_text(json.dumps(timings, indent=2) + "\n", encoding="utf-8")
                if done.returncode != 0:
                    items_path.unlink(missing_ok=True)
                    raise SystemExit(f"eval {task} {name} failed; see {summary_path}")
            summary = eval_summary(summary_path)
            results[task][name] = {mode: summary[mode] for mode in MODES}
            results[task][name]["calls"] = call_quality(items_path, "dates" if task == "dates" else "math")

    math = results["math"]
    gap_base = math["trained"]["tools"]["accuracy"] - math["base"]["no_tools"]["accuracy"]
    gap_trained = math["trained"]["tools"]["accuracy"] - math["trained"]["no_tools"]["accuracy"]
    datagen_stats = json.loads((datagen / "stats.json").read_text())
    report = {
        "benchmark": "toolformer_effect", "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "fresh"},
        "corpus": json.loads((corpus / "overlap.json").read_text()),
        "data_gen": {k: datagen_stats[k] for k in ("texts_in", "texts_kept", "calls_kept")}
                    | {"kept_per_tool": {t: v["kept"] for t, v in datagen_stats["per_tool"].items()},
                       "quality": corpus_quality(corpus / "train.jsonl", datagen, args.texts)},
        "results": results,
        "targets": {"trained_tools_minus_base_no_tools": round(gap_base, 4), "needed": TARGET_OVER_BASE,
                    "trained_tools_minus_trained_no_tools": round(gap_trained, 4), "needed_2": TARGET_OVER_TRAINED,
                    "met": gap_base >= TARGET_OVER_BASE and gap_trained >= TARGET_OVER_TRAINED},
        "public_targets": public_targets(results.get("public_math")),
        # data-gen's own count of the seconds its texts took, whatever resumes cut the run into
        "seconds": {**timings, "data_gen": round(datagen_stats["seconds"], 1)},
        "seconds_total_this_run": round(time.perf_counter() - began, 1),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plot(report, out / "report.png")
    if args.ship:
        ship(adapter, SHIPPED, report)
    line = {"benchmark": "toolformer_effect",
            **{f"{task}_{m}_{mode}": results[task][m][mode]["accuracy"] for task in results for m in ("base", "trained")
               for mode in MODES},
            "math_trained_call_rate": math["trained"]["calls"]["call_rate"],
            "math_trained_right_call_rate": math["trained"]["calls"]["right_call_rate"],
            "gap_over_base": round(gap_base, 4), "gap_over_trained": round(gap_trained, 4),
            "targets_met": report["targets"]["met"], "public_targets": report["public_targets"],
            "seconds": report["seconds"]}
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
