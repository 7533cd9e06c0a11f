"""Benchmark: data-gen texts per minute - the default sampling vs `--sampling paper` vs the old path (commit 72a4e04).

One JSON line. Every run is `python -m toolcall data-gen --tools calculator` on the same texts (the first LIMIT
worked solutions of benchmarks/data/datagen_dev.jsonl, or of --input: benchmarks/data/real/gsm8k_train_tune.jsonl
holds GSM8K's, written by people) with the embedded SmolLM2-135M-Instruct, one after another in
this run: `--sampling default`, the same computed in float32 (default_float32: the default's `--dtype auto` is
bfloat16 on a CPU with AVX512-BF16), the same with `--placement inline` (default_inline), `--sampling paper`, and the old
path: the code as it was when issue 10 was filed, `git archive 72a4e04` unpacked into a temporary folder and put
first on PYTHONPATH, so its top-level `toolcall`, `data_gen`, `tools` and `grammars` packages are the ones imported
(checked before it runs; reading git objects changes nothing in the repository). The old path's defaults are the
paper's calculator settings (k 20, m 10, tau_f 0.5, prefix placement).

Texts per minute = 60 x texts / the summed per-text seconds each run records in progress.jsonl (the model load is
left out, it is the same for all). Timings on a shared machine are noisy: `--threads 1` (OMP_NUM_THREADS for every
run) keeps one busy neighbour from stalling every parallel operation.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEV = Path(__file__).with_name("data") / "datagen_dev.jsonl"
OLD_COMMIT = "72a4e04"


def write_texts(path: Path, limit: int, source: Path = DEV) -> int:
    """The first `limit` texts of `source` whose gold spots are Calculator calls, as the data-gen input (.jsonl,
    "text")."""
    records = [json.loads(line) for line in source.read_text(encoding="utf-8").split("\n") if line.strip()]
    texts = [r["text"] for r in records if any(g["tool"] == "Calculator" for g in r["gold"])][:limit]
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return len(texts)


def unpack_old(into: Path) -> None:
    """The repository's tree at OLD_COMMIT, unpacked into `into` (git archive only reads)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", OLD_COMMIT], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)


def imported_from(env: dict[str, str], cwd: Path) -> str:
    """Where `toolcall` is imported from under `env`: the check that the old run really runs the old code."""
    probe = "import toolcall, os; print(os.path.dirname(os.path.abspath(toolcall.__file__)))"
    return subprocess.run([sys.executable, "-c", probe], env=env, cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def run_datagen(name: str, texts: Path, out: Path, extra: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """One `data-gen` run; its texts/min from the per-text seconds it recorded, and what it kept."""
    cmd = [sys.executable, "-m", "toolcall", "data-gen", "--input", str(texts), "--output", str(out),
           "--tools", "calculator", "--no-progress", *extra]
    began = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{name} run failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-3000:]}")
    progress = [json.loads(line) for line in (out / "progress.jsonl").read_text(encoding="utf-8").split("\n") if line.strip()]
    seconds = sum(p.get("seconds", 0.0) for p in progress)
    stats = json.loads((out / "stats.json").read_text())
    return {"texts": len(progress), "seconds": round(seconds, 1), "wall_s": round(wall, 1),
            "texts_per_min": round(60.0 * len(progress) / seconds, 2) if seconds else None,
            "calls_kept": stats.get("calls_kept")}


def default_dtype() -> str:
    """What data-gen's default `--dtype auto` computes in on this machine's CPU."""
    from toolcall.backends.hf_loading import resolve_dtype

    return resolve_dtype("auto", "cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=8, help="texts per run (the first worked solutions of the dev set)")
    parser.add_argument("--input", type=Path, default=DEV,
                        help="texts with gold spots (jsonl), e.g. benchmarks/data/real/gsm8k_train_tune.jsonl for "
                             "worked solutions written by people (default: the self-written dev set)")
    parser.add_argument("--skip-paper", action="store_true", help="leave out --sampling paper")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for every run (default: torch's own)")
    parser.add_argument("--skip-old", action="store_true", help="leave out the old path (no ratio)")
    parser.add_argument("--skip-inline", action="store_true",
                        help="leave out the default sampling with inline placement (default_inline)")
    parser.add_argument("--skip-float32", action="store_true",
                        help="leave out the default sampling computed in float32 (default_float32), the type the old "
                             "path computes in: where the default computes in bfloat16 it shows what that type gives")
    args = parser.parse_args()

    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    result: dict[str, Any] = {
        "benchmark": "datagen_throughput", "model": "SmolLM2-135M-Instruct (embedded GGUF, transformers)",
        "dtype": {"default": default_dtype(), "old": "float32"},
        "hardware": f"{platform.machine()} CPU, {os.cpu_count()} cores, threads {args.threads or 'torch default'}",
        "tools": "calculator"}
    with tempfile.TemporaryDirectory(prefix="datagen_throughput_") as tmp:
        work = Path(tmp)
        texts = work / "texts.jsonl"
        result["texts"] = write_texts(texts, args.limit, args.input)
        result["input"] = str(args.input.resolve().relative_to(ROOT) if args.input.resolve().is_relative_to(ROOT)
                              else args.input)
        result["new_code"] = imported_from(env, ROOT)
        result["default"] = run_datagen("default", texts, work / "default", ["--sampling", "default"], env, ROOT)
        if not args.skip_float32:
            result["default_float32"] = run_datagen("default_float32", texts, work / "default_float32",
                                                    ["--sampling", "default", "--dtype", "float32"], env, ROOT)
        if not args.skip_paper:
            result["paper"] = run_datagen("paper", texts, work / "paper", ["--sampling", "paper"], env, ROOT)
        if not args.skip_inline:
            result["default_inline"] = run_datagen("default_inline", texts, work / "default_inline",
                                                   ["--sampling", "default", "--placement", "inline"], env, ROOT)
        if not args.skip_old:
            old = work / "old"
            old.mkdir()
            unpack_old(old)
            old_env = {**env, "PYTHONPATH": str(old)}
            where = imported_from(old_env, old)
            if Path(where) != old / "toolcall":
                raise SystemExit(f"the old run would import toolcall from {where}, not from the archive in {old}")
            result["old_code"] = f"{OLD_COMMIT} (git archive)"
            result["old"] = run_datagen("old", texts, work / "old_out", [], old_env, old)
            base = result["old"]["texts_per_min"]
            for name in ("default", "default_float32", "paper", "default_inline"):
                if name not in result:
                    continue
                mine = result[name]["texts_per_min"]
                result[f"{name}_vs_old"] = round(mine / base, 2) if mine and base else None
    print(json.dumps(result))


if __name__ == "__main__":
    main()
