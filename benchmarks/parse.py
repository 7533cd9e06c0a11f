"""Benchmark: every dialect's parser on clean and on malformed text at 1, 2, 4 and 8 MB, against a regex + json.loads scan.

One JSON line. The text is model-output-like: a few sentences of prose, a call in the dialect's own spelling with its
result, more prose, over and over (one call per ~700 characters). "Malformed" text has, besides the good calls, as
many broken ones (cut off, unclosed, a bad JSON escape, a non-finite number, a positional argument, deep nesting).
For each dialect and size: CPU seconds (wall seconds too) and MB/s of `dialect.parse`, and of a regex scan that finds the same kind of call
region (json.loads on it where the format is JSON), measured in the same run; the 8 MB / 1 MB time ratio (linear time
gives ~8); and the slowest single parse of hostile inputs under 10 KB (many brackets, deep nesting, many unclosed
openers, one long line, the shortest opener repeated, one call left open, many broken calls, dense calls the grammar
reads, calls quoted in the strings of broken calls). Targets (issue 19): >= 5 MB/s clean, >= 2 MB/s malformed, ratio <= 10, small < 50 ms.

    python benchmarks/parse.py [--sizes 1,2,4,8] [--dialects hermes,pythonic] [--repeat 2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolcall.calls import KeywordArgs, ToolCall  # noqa: E402
from toolcall.dialects import Dialect, get_dialect  # noqa: E402

DIALECTS = ("toolformer", "moss", "hermes", "pythonic", "llama3_json", "mistral")
WORDS = ("the", "flag", "of", "Ghana", "has", "red", "meaning", "[1]", "a", "total", "passed", "test", "1400",
         "participants", "(see above)", "was", "born", "in", "{x}", "weather", "in", "Paris", "is", "mild,", "and",
         "the", "answer", "should", "be", "\"checked\"", "twice", "because", "it's", "late", "→", "ü", "[a, b]")
RESULT = '{"temp": 21}'
CITIES = ("Paris", "São Paulo", "Dallas", "Tokyo", "Reykjavík")


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 20))]
    return " ".join(words).capitalize() + ". "


def _prose(rng: random.Random, sentences: int) -> str:
    return "".join(_sentence(rng) for _ in range(sentences))


def _good_call(name: str, dialect: Dialect, rng: random.Random) -> str:
    """A call as the dialect writes it, with its result where the format carries one."""
    a, b = rng.randint(1, 999), rng.randint(1, 999)
    if name == "toolformer":
        return rng.choice((f"[Calculator({a} * {b}) -> {a * b}]", f'[QA("Where was item {a} made?") -> Accra]',
                           f"[WikiSearch(Ghana flag {a}) -> red, gold and green]", "[Calendar()]",
                           f"<API>[Calculator({a}+{b})]->{a + b}</API>", f"<API> MT(sûreté {a}) → safety </API>"))
    if name == "moss":
        call = ToolCall("Calculate", (f"{a}*{b}",), str(a * b))
        return "".join(dialect.render_turn("What is it?", "I should compute it.", [call], f"It is {a * b}.").values())  # type: ignore[attr-defined]
    args: dict[str, Any] = rng.choice(({"city": rng.choice(CITIES), "unit": "celsius"}, {"a": a, "b": [b, {"c": 1.5}]},
                                       {"query": f"flag of Ghana {a}", "limit": 3}))
    call = ToolCall(rng.choice(("get_weather", "search", "add")), KeywordArgs(args))
    text = dialect.render_call(call)
    if name == "llama3_json":  # a call is a whole reply: between turn tokens, its result an ipython turn
        head = "<|start_header_id|>assistant<|end_header_id|>\n\n"
        closing = dialect.close(dialect.pending(head + text), [RESULT])  # type: ignore[arg-type]
        return f"<|eot_id|>{head}{text}{closing}"
    pending = dialect.pending(text)
    return text + (dialect.close(pending, [RESULT]) if pending is not None else "")


def _bad_call(name: str, rng: random.Random) -> str:
    """A broken call of the dialect: cut off, unclosed, a bad escape, a non-finite number, too deep, positional."""
    deep = "[" * 120 + "]" * 120
    if name == "toolformer":
        return rng.choice(("[Calculator(1, (2 ->", "[Calculator(3 * 4) -> 12", "<API> Calendar( </API>", "[QA(\"x)]"))
    if name == "moss":
        return rng.choice(("<|Commands|>: Search(\"a\"<eoc>", "<|Commands|>: Calculate(1+1)", "<|Results|>: x => <eor>"))
    if name == "hermes":
        return rng.choice(('<tool_call>\n{"name": "f", "arguments": {"p": "C:\\Users\\me"}}\n</tool_call>',
                           '<tool_call>\n{"name": "f", "arguments": {"a": 1}\n</tool_call>',
                           '<tool_call>{"name": "f", "arguments": {"x": 1e999}}</tool_call>',
                           f'<tool_call>{{"name": "f", "arguments": {{"d": {deep}}}}}</tool_call>',
                           '<tool_call>\n{"name": "f", "arguments": {"city": "Dal'))
    if name == "pythonic":
        return rng.choice(("[get_weather('Paris')]", "[f(x=1, y=g(2))]", "[f(x=[1, 2, ", f"[f(d={deep})]", "[f(x=1e999)]"))
    if name == "llama3_json":
        head = "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        return head + rng.choice(('{"name": "f", "parameters": {"a": 1}', '{"name": "f", "parameters": {"p": "C:\\x"}}',
                                  '<|python_tag|>{"name": "f"}', '{"name": "f", "parameters": {"x": 1e999}}'))
    return rng.choice(('[TOOL_CALLS][{"name": "f", "arguments": {"a": 1}]', "[TOOL_CALLS][{'name': 'f'}]",
                       '[TOOL_CALLS]f[ARGS]{"a": ', f'[TOOL_CALLS][{{"name": "f", "arguments": {{"d": {deep}}}}}]'))


def build_text(name: str, size: int, malformed: bool, seed: int = 0) -> str:
    """About `size` characters of prose with calls (and broken calls when `malformed`)."""
    rng = random.Random(seed)
    dialect = get_dialect(name)
    parts: list[str] = []
    total = 0
    while total < size:
        piece = _prose(rng, rng.randint(2, 5)) + _good_call(name, dialect, rng) + " " + _prose(rng, rng.randint(1, 3))
        if malformed:
            piece += _bad_call(name, rng) + " " + _prose(rng, 1)
        piece += "\n"
        parts.append(piece)
        total += len(piece)
    return "".join(parts)


# What a regex-only reader of each format would take as a call region.
_BASELINES: dict[str, tuple[re.Pattern[str], bool]] = {
    "toolformer": (re.compile(r"\[([A-Za-z_]\w*)\(([^()\n]*)\)(?:\s*(?:->|→)\s*([^\]\n]*))?\]|<API>(.*?)</API>"), False),
    "moss": (re.compile(r"<\|Commands\|>:(.*?)<eoc>", re.S), False),
    "hermes": (re.compile(r"<tool_call>(.*?)</tool_call>", re.S), True),
    "pythonic": (re.compile(r"\[([A-Za-z_]\w*)\(([^()\n]*)\)\]"), False),
    "llama3_json": (re.compile(r'(\{"name".*?\}\})'), True),
    "mistral": (re.compile(r"\[TOOL_CALLS\](\[.*?\}\]|\w+\[ARGS\]\{.*?\})"), True),
}


def baseline(name: str, text: str) -> int:
    """Call regions found by the regex (each decoded by json.loads where the format is JSON); how many decoded."""
    pattern, is_json = _BASELINES[name]
    found = 0
    for m in pattern.finditer(text):
        if is_json:
            body = m.group(1)
            body = body[body.find("{"):] if "[ARGS]" in body else body
            try:
                json.loads(body)
            except ValueError:
                continue
        found += 1
    return found


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds, CPU seconds of this process, and what `fn` returned. The targets are judged on CPU time, which
    other processes on a shared machine do not inflate; both are reported."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, max(time.process_time() - c0, 1e-6), out


def hostile(name: str) -> dict[str, str]:
    """Inputs under 10 KB shaped to make a parser slow: the slowest single parse of them must stay under 50 ms."""
    opener = {"toolformer": "[Calculator(1) -> ", "moss": "<|Commands|>: Search(\"", "hermes": '<tool_call>{"name": "f", ',
              "pythonic": "[f(x=[", "llama3_json": '{"name": {"name": ', "mistral": "[TOOL_CALLS][{"}[name]
    brackets = ", ".join(f"[{i}, {i + 1}]" for i in range(600))
    wrap = {"toolformer": "[Calculator({})]", "moss": "<|Commands|>: Calculate({})<eoc>",
            "hermes": '<tool_call>{{"name": "f", "arguments": {{"m": {}}}}}</tool_call>',
            "pythonic": "[f(m={})]", "llama3_json": '{{"name": "f", "parameters": {{"m": {}}}}}',
            "mistral": '[TOOL_CALLS][{{"name": "f", "arguments": {{"m": {}}}}}]'}[name]
    # The shortest opener, one call left open for the whole text, and many closed calls that break inside.
    short = {"toolformer": "[A(", "moss": "<|Commands|>:", "hermes": "<tool_call>", "pythonic": "[f(",
             "llama3_json": '{"name": ', "mistral": "[TOOL_CALLS]"}[name]
    broken = {"toolformer": "[A(1,) -> 2] ", "moss": "<|Commands|>: Calculate(1))<eoc>\n",
              "hermes": '<tool_call>{"name": "f" 1}</tool_call>', "pythonic": "[f(x=1 2)] ",
              "llama3_json": '{"name": "f", "parameters": {}} x\n<|eot_id|>', "mistral": '[TOOL_CALLS][{"name": "f"}, 1]'}[name]
    # Calls the C readers leave to the grammar (so they cost what the grammar costs): still calls, never budgeted away.
    dense = {"toolformer": "<API> Calculator(1, 2) → 3 </API> ", "moss": "<|Commands|>: Search(a, b)<eoc>\n",
             "hermes": '<tool_call>[{"name": "f", "arguments": {}}]</tool_call>', "pythonic": "[f(x=(1, 2))] ",
             "llama3_json": '{"name": "f", "parameters": {}}; ', "mistral": '[TOOL_CALLS]f[ARGS]{"a": 1}'}[name]
    # Calls quoted in the string arguments of calls that then break (`[g("[f(1) -> 2]" x`): a quoted call is text, and
    # telling so reads each broken call's arguments once.
    quoted = {"toolformer": '[g("[f(1) -> 2] \'[h(3) -> 4]\' " x ', "moss": '<|Commands|>: Search("a<eoc>b" x)<eoc>\n',
              "hermes": '<tool_call>{"name": "f", "arguments": {"s": "<tool_call>"} x}</tool_call>',
              "pythonic": '[g(s="[f(x=1)]" 2)] ', "llama3_json": '{"name": "f", "parameters": {"s": "{\\"name\\""} x}',
              "mistral": '[TOOL_CALLS][{"name": "f", "arguments": {"s": "[TOOL_CALLS]"} x}]'}[name]
    return {
        "quoted_calls_in_broken_calls": (quoted * 2000)[:9900],
        "many_brackets": wrap.format(f"[{brackets}]")[:9900],
        "deep_nesting": wrap.format("[" * 3000 + "]" * 3000)[:9900],
        "many_unclosed": (opener * 2000)[:9900],
        "long_line": ("word " * 1900 + wrap.format("[1]"))[:9900],
        "many_short_openers": (short * 5000)[:9900],
        "one_long_unclosed": (wrap.replace("{}", "[" + "1, " * 4000))[:9900],
        "many_broken": (broken * 2000)[:9900],
        "dense_grammar_calls": (dense * 2000)[:9900],
    }


def _counts(parsed: Any) -> tuple[int, int]:
    return len(parsed.calls), len(parsed.issues)


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--sizes", default="1,2,4,8", help="text sizes in MB, comma-separated (default 1,2,4,8)")
    cli.add_argument("--dialects", default=",".join(DIALECTS), help="dialects to measure (default: all)")
    cli.add_argument("--repeat", type=int, default=2, help="runs per measurement, the fastest kept (default 2)")
    args = cli.parse_args()
    sizes = [float(s) for s in args.sizes.split(",")]
    out: dict[str, Any] = {"benchmark": "parse", "sizes_mb": sizes, "repeat": args.repeat,
                           "load_average_start": [round(x, 2) for x in os.getloadavg()]}
    results: dict[str, Any] = {}
    for name in args.dialects.split(","):
        dialect = get_dialect(name)
        dialect.parse(build_text(name, 2000, True))  # build the Lark parsers outside the timing
        row: dict[str, Any] = {}
        for kind in ("clean", "malformed"):
            texts = [build_text(name, int(mb * 1_000_000), kind == "malformed") for mb in sizes]
            # The fastest of `--repeat` runs per size, the sizes taken in turn within each round: on a shared machine
            # the slower runs measure the neighbours, and a burst of their work then hits every size alike.
            best: list[tuple[float, float, tuple[int, int]] | None] = [None] * len(sizes)
            bases = [float("inf")] * len(sizes)
            for _ in range(args.repeat):
                for i, text in enumerate(texts):
                    # Only the counts are kept: a parse result held while the next run parses would make Python's
                    # cyclic collector walk it again and again, which times the benchmark's memory, not the parser.
                    got = timed(lambda d=dialect, t=text: _counts(d.parse(t)))
                    if best[i] is None or got[1] < best[i][1]:  # type: ignore[index]
                        best[i] = got
                    bases[i] = min(bases[i], timed(lambda n=name, t=text: baseline(n, t))[1])
            runs = []
            for text, got, base in zip(texts, best, bases):
                assert got is not None
                wall, seconds, (calls, issues) = got
                real_mb = len(text.encode("utf-8")) / 1e6
                runs.append({"mb": round(real_mb, 2), "seconds": round(seconds, 3), "mb_per_s": round(real_mb / seconds, 2),
                             "wall_seconds": round(wall, 3), "calls": calls, "issues": issues,
                             "baseline_mb_per_s": round(real_mb / base, 1), "slowdown_vs_baseline": round(seconds / base, 1)})
            del texts
            row[kind] = {"runs": runs, "min_mb_per_s": min(r["mb_per_s"] for r in runs),
                         "ratio_largest_smallest": round(runs[-1]["seconds"] / runs[0]["seconds"], 2)}
        small = {shape: round(1000 * min(timed(lambda d=dialect, t=text: d.parse(t))[1] for _ in range(args.repeat)), 1)
                 for shape, text in hostile(name).items()}
        row["small_inputs_ms"] = small
        row["targets_met"] = {
            "clean_5_mb_s": row["clean"]["min_mb_per_s"] >= 5, "malformed_2_mb_s": row["malformed"]["min_mb_per_s"] >= 2,
            "ratio_le_10": max(row["clean"]["ratio_largest_smallest"], row["malformed"]["ratio_largest_smallest"]) <= 10,
            "small_under_50_ms": max(small.values()) < 50}
        results[name] = row
    out["dialects"] = results
    out.update({"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                "load_average": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version()})
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
