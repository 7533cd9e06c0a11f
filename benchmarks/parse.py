"""Benchmark: `toolcall parse`'s parsing path on ~1 MB of prose with calls, against a regex-only scan."""
from __future__ import annotations

import json
import os
import platform
import random
import re
import time

from toolcall.cli.parse_cmd import call_lines
from toolcall.dialects import get_dialect

WORDS = ("the", "flag", "of", "Ghana", "has", "red", "meaning", "[1]", "[citation needed]", "a", "total",
         "passed", "test", "1400", "participants", "[a, b]", "[see](http://x.org)", "was", "born", "in")
CALLS = (
    "[Calculator({a} / {b}) → 0.{a}]", "[Calculator({a} + {b} * 3) -> {b}]", '[QA("Where was item {a} made?")]',
    "[WikiSearch(Ghana flag {a} meaning)]", "[Calendar()]", "<API>[Calculator({a}*{b})]->{b}</API>",
    '[WikiSearch("x {a}") -> snippet [{b}], with "quotes" ü]', "<API> MT(sûreté {a}) → nuclear safety </API>",
)
# Bracket-form calls a regex without nesting can still find: the baseline's job.
BASELINE = re.compile(r"\[([A-Za-z_]\w*)\(([^()\n]*)\)(?:\s*(?:->|→)\s*([^\]\n]*))?\]")


def build_text(size: int = 1_000_000, seed: int = 0) -> str:
    rng = random.Random(seed)
    parts: list[str] = []
    total = 0
    while total < size:
        words = [rng.choice(WORDS) for _ in range(rng.randint(20, 60))]
        words.insert(rng.randrange(len(words)), rng.choice(CALLS).format(a=rng.randint(1, 999), b=rng.randint(1, 999)))
        line = " ".join(words) + ".\n"
        parts.append(line)
        total += len(line)
    return "".join(parts)


def regex_scan(text: str) -> list[str]:
    return [json.dumps({"tool": m[1], "args": [m[2]], "result": m[3], "start": m.start(), "end": m.end()})
            for m in BASELINE.finditer(text)]


def best_of(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    text = build_text()
    mb = len(text.encode("utf-8")) / 1e6
    dialect = get_dialect("toolformer")
    dialect.parse("[Warm(up)]")  # build the Lark parser outside the timing
    parsed = dialect.parse(text)
    lark_s = best_of(lambda: call_lines(dialect.parse(text)))
    regex_s = best_of(lambda: regex_scan(text))
    print(json.dumps({
        "benchmark": "parse", "dialect": "toolformer", "megabytes": round(mb, 3), "calls": len(parsed.calls),
        "issues": len(parsed.issues), "lark_seconds": round(lark_s, 4), "lark_mb_per_s": round(mb / lark_s, 2),
        "regex_seconds": round(regex_s, 4), "regex_mb_per_s": round(mb / regex_s, 2),
        "regex_calls": len(regex_scan(text)), "slowdown_vs_regex": round(lark_s / regex_s, 2),
        "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
