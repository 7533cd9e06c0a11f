"""Benchmark: the decoding loop on replies full of call markers, per dialect, against re-reading the whole reply at each.

One JSON line. The model (the fake backend, 4 characters a token) writes a reply of N characters that stops at a call
marker every few characters: prose full of `]`, `}`, `->`, `</tool_call>`, `<eoc>` ("prose"); candidates that break
("broken": `[a(x=1), [b] `, `{"name": "f"} } `, ...); one call left open while markers arrive inside it ("open": nested
lists); or code written into a call's string argument, its brackets and arrows stopping the loop ("code"). At each
stop the loop asks the dialect for the pending calls. Measured in the same run: the loop as shipped (its ReplyReader:
`Dialect.pending_from`, which reads from where a call may still begin, and no look while the text stays inside a
call's open string or in its data outside strings, `Dialect.quiet_string` and `Dialect.quiet_value`) and the baseline, the same loop reading the whole text at every stop
(`pending_from` always from 0, as the loop did before). Reported per dialect and shape: CPU
seconds at each size, the largest / smallest ratio (linear time gives the size ratio, 4 by default; the baseline's
grows with its square), the speed-up over the baseline at the largest size, and whether both loops wrote the same
text (they differ only where the baseline's grammar budget, which one read of the whole text spends on the candidates
before the last, runs out and leaves a broken call undiagnosed).

    python benchmarks/loop_markers.py [--sizes 8000,32000] [--dialects pythonic,llama3_json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolcall.backends.fake import FakeBackend  # noqa: E402
from toolcall.dialects import Dialect, get_dialect  # noqa: E402
from toolcall.dialects.base import PendingCalls  # noqa: E402
from toolcall.loop import LoopConfig, Result, answered, decode_with_tools  # noqa: E402

#: (text the reply starts with, the piece it repeats) per dialect and shape.
SHAPES: dict[str, dict[str, tuple[str, str]]] = {
    "prose": {"toolformer": ("", "a -> b, "), "moss": ("", "x <eoc> y "), "hermes": ("", "text </tool_call> more "),
              "pythonic": ("", "see [note] and (x] y "), "llama3_json": ("", "a } b {c} d "),
              "mistral": ("", "a ] b } c ")},
    "broken": {"toolformer": ("[x ", "a -> b, "), "moss": ("<|Commands|>: ", "x <eoc> y "),
               "hermes": ("<tool_call>", "a</tool_call> "), "pythonic": ("", "[a(x=1), [b] "),
               "llama3_json": ("", '{"name": "f"} } '), "mistral": ("[TOOL_CALLS]", "[a] {b} ")},
    "open": {"toolformer": ('[f("', "a -> "), "moss": ('<|Commands|>: f("', "x <eoc> "),
             "hermes": ('<tool_call>{"name": "f", "arguments": {"x": "', "a</tool_call> "),
             "pythonic": ("[f(x=[", "[1], "), "llama3_json": ('{"name": "f", "parameters": {"x": [', "{}, "),
             "mistral": ('[TOOL_CALLS][{"name": "f", "arguments": {"x": [', "[1], {}, ")},
    "code": {"toolformer": ('[Python("', "def f(x) -> int: return x[0]\\n"),
             "moss": ('<|Commands|>: Python("', "y = x[0] + {1: 2}[1]\\n"),
             "hermes": ('<tool_call>{"name": "write_file", "arguments": {"content": "', "y = x[0] + {1: 2}[1]\\n"),
             "pythonic": ('[write_file(path="a.py", content="', "y = x[0] + {1: 2}[1]\\n"),
             "llama3_json": ('{"name": "write_file", "parameters": {"content": "', "y = x[0] + {1: 2}[1]\\n"),
             "mistral": ('[TOOL_CALLS][{"name": "write_file", "arguments": {"content": "', "y = x[0] + {1: 2}[1]\\n")},
}


class WholeText:
    """The baseline: the dialect, its `pending_from` reading the whole text at every stop."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dialect, name)

    def pending_from(self, text: str, start: int) -> tuple[PendingCalls | None, int]:
        return self._dialect.pending_from(text, 0)[0], 0

    def quiet_string(self, text: str, start: int) -> None:
        return None  # a look at every stop

    def quiet_value(self, text: str, start: int) -> None:
        return None


def run_loop(dialect: Any, text: str) -> tuple[float, str]:
    """CPU seconds of the loop writing `text` (cut at each call marker, as a model's stop is), and the text it made."""
    # One script item per stop: each ends at the marker where the model stops, so the reply is `text` whatever the
    # loop splices between stops.
    markers = re.compile("|".join(re.escape(m) for m in sorted(dialect.call_markers, key=len, reverse=True)))
    cuts = [0] + [m.end() for m in markers.finditer(text)] + [len(text)]
    script = [text[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]
    session = FakeBackend(script=script, chars_per_token=4).start("Q: ")
    began = time.process_time()
    for _ in answered(decode_with_tools(session, dialect, None, LoopConfig(max_new_tokens=10 ** 7)),
                      lambda request: Result("ok")):
        pass
    return time.process_time() - began, session.text


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--sizes", default="8000,32000", help="reply sizes in characters, comma-separated")
    cli.add_argument("--dialects", default=",".join(SHAPES["prose"]), help="dialects to measure (default: all)")
    args = cli.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    out: dict[str, Any] = {"benchmark": "loop_markers", "sizes_chars": sizes,
                           "load_average_start": [round(x, 2) for x in os.getloadavg()]}
    rows: dict[str, Any] = {}
    for name in args.dialects.split(","):
        dialect = get_dialect(name)
        dialect.parse("[a(x=1)] <tool_call>{}</tool_call>")  # build the Lark parsers outside the timing
        for shape, pieces in SHAPES.items():
            head, piece = pieces[name]
            texts = [head + piece * (size // len(piece)) for size in sizes]
            shipped, baseline = [], []
            same = True
            for text in texts:
                seconds, made = run_loop(dialect, text)
                base_seconds, base_made = run_loop(WholeText(dialect), text)
                same = same and made == base_made
                shipped.append(round(seconds, 3))
                baseline.append(round(base_seconds, 3))
            rows[f"{name}/{shape}"] = {
                "seconds": shipped, "baseline_seconds": baseline,
                "ratio_largest_smallest": round(shipped[-1] / max(shipped[0], 1e-3), 2),
                "baseline_ratio_largest_smallest": round(baseline[-1] / max(baseline[0], 1e-3), 2),
                "speedup_at_largest": round(baseline[-1] / max(shipped[-1], 1e-3), 1), "same_text": same}
    out["replies"] = rows
    out.update({"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                "load_average": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version()})
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
