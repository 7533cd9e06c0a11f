"""Tokens re-prefilled per tool call: the KV-kept transformers session vs re-encoding the whole text after each call."""
from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Iterator, Sequence

from toolcall.backends.base import Backend, Counters, DecodeSession, Steering
from toolcall.backends.transformers import TransformersBackend
from toolcall.dialects import get_dialect
from toolcall.loop import LoopConfig
from toolcall.registry import ToolRegistry
from toolcall.runner import run_loop

DEMO = "Question: A box holds 24 rows of 15 eggs. How many eggs?\nAnswer: The box holds [Calculator(24 * 15) -> 360] 360 eggs.\n"
PROBLEMS = [  # each prompt ends inside a call, so every run makes at least one call
    ("A crate holds 17 rows of 23 bottles. How many bottles?", "The crate holds [Calculator(17 * 23)"),
    ("A farmer has 412 sheep and sells 158. How many are left?", "He has [Calculator(412 - 158)"),
    ("Six friends share 354 dollars equally. How much does each get?", "Each gets [Calculator(354 / 6)"),
    ("A car drives 63 km per hour for 9 hours. How far does it go?", "It goes [Calculator(63 * 9)"),
]


def hardware() -> str:
    model = platform.processor()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as info:
            model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), model)
    return f"{model}, {os.cpu_count()} cores, CPU only"


def calculator(expression: str) -> str:
    """Evaluate + - * / on numbers.

    Args:
        expression: The arithmetic expression.
    """
    value = eval(expression, {"__builtins__": {}}, {})  # benchmark-only: the prompts above are fixed
    return f"{round(float(value), 2):g}"


class _ReencodeSession(DecodeSession):
    """The naive path: after every splice, start over from the whole text (re-tokenized, fully prefilled)."""

    def __init__(self, inner: Backend, prompt: str) -> None:
        super().__init__(text=prompt, prompt_chars=len(prompt))
        self._inner = inner
        self._session = inner.start(prompt)
        self._done = Counters()

    def stream(self, stop: Sequence[str], max_new_tokens: int, steering: Steering | None = None) -> Iterator[str]:
        yield from self._session.stream(stop, max_new_tokens, steering)
        self.text = self._session.text
        self.stop_reason, self.matched_stop = self._session.stop_reason, self._session.matched_stop
        self.counters = Counters()
        self.counters.add(self._done)
        self.counters.add(self._session.counters)

    def append(self, text: str) -> None:
        self._done.add(self._session.counters)
        self._session = self._inner.start(self.text + text)
        self.text += text


class _Reencode(Backend):
    name = "reencode"

    def __init__(self, inner: Backend) -> None:
        self.inner = inner

    def start(self, prompt: str) -> DecodeSession:
        return _ReencodeSession(self.inner, prompt)


def main() -> None:
    backend = TransformersBackend()
    dialect = get_dialect("toolformer")
    registry = ToolRegistry([calculator])
    config = LoopConfig(max_new_tokens=40, max_calls=3)
    prompts = [f"{DEMO}Question: {q}\nAnswer: {a}" for q, a in PROBLEMS]
    out: dict[str, dict[str, float]] = {}
    texts: dict[str, list[str]] = {}
    for name, engine in (("kv_kept", backend), ("reencode", _Reencode(backend))):
        began = time.perf_counter()
        results = [run_loop(engine, p, dialect, registry, config) for p in prompts]
        seconds = time.perf_counter() - began
        prompt_tokens = sum(len(backend.encode(p)) for p in prompts)
        calls = sum(len(r.calls) for r in results)
        prefilled = sum(r.counters.prefilled_tokens for r in results)
        out[name] = {"calls": calls, "prefilled_tokens": prefilled,
                     "prefilled_per_call": round((prefilled - prompt_tokens) / max(calls, 1), 1),
                     "model_seconds": round(sum(r.counters.decode_seconds for r in results), 2),
                     "wall_seconds": round(seconds, 2)}
        texts[name] = [r.text for r in results]
    kv, naive = out["kv_kept"], out["reencode"]
    print(json.dumps({
        "benchmark": "kv_prefill", "hardware": hardware(), "model": "SmolLM2-135M-Instruct (embedded GGUF, fp32)",
        "prompts": len(prompts), "kv_kept": kv, "reencode": naive,
        "reprefill_ratio": round(naive["prefilled_per_call"] / max(kv["prefilled_per_call"], 1e-9), 1),
        "model_time_ratio": round(naive["model_seconds"] / max(kv["model_seconds"], 1e-9), 2),
        "same_text": texts["kv_kept"] == texts["reencode"],
    }))


if __name__ == "__main__":
    main()
