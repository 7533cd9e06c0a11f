"""A command's start on the embedded model: reading the GGUF at every load (the baseline) against its kept checkpoint.

Runs the README's main command (`toolcall generate --model toolformer-smollm2 ...`) as a user does, in a fresh
process each time, alternately with TOOLCALL_GGUF_CACHE=off and with the kept checkpoint (written by a first,
untimed run), `--pairs` times; prints one JSON line with each side's median wall time, the ratio and whether both
printed the same answer.

    python benchmarks/model_load.py --pairs 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from datagen_quality import hardware

COMMAND = [sys.executable, "-m", "toolcall", "generate", "--model", "toolformer-smollm2", "--tools", "calculator",
           "A shop sells 17 boxes with 23 pens in each box. How many pens is that?"]


def timed(env: dict[str, str]) -> tuple[float, str]:
    began = time.perf_counter()
    done = subprocess.run(COMMAND, env=env, capture_output=True, text=True, timeout=600, check=True)
    return time.perf_counter() - began, done.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as cache:   # a cache of its own: the user's is neither used nor changed
        kept = {**os.environ, "TOOLCALL_CACHE_DIR": cache, "TOOLCALL_GGUF_CACHE": "on"}
        read = {**kept, "TOOLCALL_GGUF_CACHE": "off"}
        timed(kept)   # writes the kept checkpoint
        times: dict[str, list[float]] = {"gguf": [], "kept": []}
        answers: dict[str, set[str]] = {"gguf": set(), "kept": set()}
        for _ in range(args.pairs):
            for side, env in (("gguf", read), ("kept", kept)):
                seconds, answer = timed(env)
                times[side].append(seconds)
                answers[side].add(answer)
    gguf, cached = statistics.median(times["gguf"]), statistics.median(times["kept"])
    print(json.dumps({"benchmark": "model_load", "command": " ".join(COMMAND[2:]), "pairs": args.pairs,
                      "gguf_seconds": round(gguf, 2), "kept_seconds": round(cached, 2),
                      "speedup": round(gguf / cached, 2), "same_answer": answers["gguf"] == answers["kept"],
                      "answers": sorted(answers["gguf"] | answers["kept"]),
                      "runs": {k: [round(t, 2) for t in v] for k, v in times.items()}, "hardware": hardware()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
