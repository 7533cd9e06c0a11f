"""data-gen's peak memory against the size of its input and of its corpus: a run of N texts against one of 10 N.

Runs `toolcall data-gen --backend fake` (no model: what is measured is the pipeline's own holding of texts, records
and summaries) in fresh processes on generated texts of ~3.5 KB, and reads each process's peak resident memory:
- "inputs": prose the prefilter drops (no number in it), so the run reads its input and does little else;
- "exports": texts with a computation, each kept with a call, so the corpus and its exports grow with the input.
Prints one JSON line: for each family, each size's peak (MB), and how much the peak grew per MB the file grew
(`growth_per_input_mb`; ~1 or more where a run holds what it reads, ~0 where it streams).

    python benchmarks/datagen_memory.py --texts 2000 --export-texts 500
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from datagen_quality import hardware

WORDS = ("the", "river", "house", "old", "green", "walked", "quietly", "under", "bright", "morning", "light", "across",
         "field", "where", "children", "played", "long", "ago", "stories", "told")


def write_texts(path: Path, count: int, numbers: bool, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as fh:
        for _ in range(count):
            text = " ".join(rng.choice(WORDS) for _ in range(300 if numbers else 600))
            if numbers:
                a, b = rng.randint(2, 99), rng.randint(2, 99)
                text += f" They had {a} boxes of {b} pens, {a * b} pens in all."
            fh.write(json.dumps({"text": text}) + "\n")


def peak_mb(texts: Path, out: Path) -> float:
    """The peak resident memory of one data-gen run, in MB (its own process, read from the kernel's count)."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    command = [sys.executable, "-m", "toolcall", "data-gen", "--backend", "fake", "--input", str(texts),
               "--output", str(out), "--no-progress"]
    done = subprocess.run([sys.executable, "-c", code, *command], capture_output=True, text=True, timeout=1800,
                          check=True)
    return int(done.stdout.strip().splitlines()[-1]) / 1024


def family(folder: Path, name: str, small: int, numbers: bool) -> dict[str, object]:
    sizes = {}
    for count in (small, 10 * small):
        texts = folder / f"{name}{count}.jsonl"
        write_texts(texts, count, numbers)
        out = folder / f"{name}{count}.out"
        sizes[count] = (texts.stat().st_size / 1e6, peak_mb(texts, out),
                        (out / "corpus.jsonl").stat().st_size / 1e6)
    (a_in, a_peak, a_corpus), (b_in, b_peak, b_corpus) = sizes[small], sizes[10 * small]
    return {"texts": [small, 10 * small], "input_mb": [round(a_in, 1), round(b_in, 1)],
            "corpus_mb": [round(a_corpus, 1), round(b_corpus, 1)], "peak_mb": [round(a_peak, 1), round(b_peak, 1)],
            "growth_per_input_mb": round((b_peak - a_peak) / (b_in - a_in), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=2000, help="the smaller input of the inputs family")
    parser.add_argument("--export-texts", type=int, default=500, help="the smaller input of the exports family")
    args = parser.parse_args(argv)
    assert resource.RUSAGE_CHILDREN   # Linux and macOS: a child's peak is what the kernel kept for it
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        report = {"benchmark": "datagen_memory",
                  "inputs": family(folder, "prose", args.texts, numbers=False),
                  "exports": family(folder, "sums", args.export_texts, numbers=True),
                  "hardware": hardware()}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
