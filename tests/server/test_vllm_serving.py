"""`toolcall serve --backend vllm`: the server on vLLM's async engine, with tools running in the server mid-reply."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

pytest.importorskip("vllm")

from live_server import Live, serve  # noqa: E402
from together import together  # noqa: E402

from toolcall.api import make_registry  # noqa: E402
from toolcall.loop import LoopConfig  # noqa: E402
from toolcall.server import ServerSettings  # noqa: E402

MODEL = "smollm2"
QUESTIONS = ["A shop sells 17 boxes with 23 pens in each box. How many pens is that?",
             "Tom had 45 marbles and gave 18 away. How many are left?",
             "What is 12 times 12?", "A class has 28 pupils in 4 rows. How many in each row?"]


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    from toolcall.backends.vllm import VLLMBackend

    backend = VLLMBackend(os.environ.get("TOOLCALL_VLLM_MODEL"), dtype="float32", engine="async")
    try:
        yield from serve(backend, ServerSettings(MODEL, make_registry(["calculator"]),
                                                 LoopConfig(max_new_tokens=32, trigger_top_k=10)))
    finally:
        backend.close()


def ask(live: Live, question: str, stream: bool = False) -> tuple[str, int]:
    """The reply's text, and how many content chunks it came in."""
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": question}], "temperature": 0,
                            "stream": stream}
    if not stream:
        response = httpx.post(live.url + "/v1/chat/completions", json=body, timeout=300)
        assert response.status_code == 200, response.text
        return str(response.json()["choices"][0]["message"]["content"]), 1
    parts = []
    with httpx.stream("POST", live.url + "/v1/chat/completions", json=body, timeout=300) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                delta = json.loads(line[6:])["choices"][0]["delta"].get("content")
                if delta:
                    parts.append(delta)
    return "".join(parts), len(parts)


@pytest.mark.vllm
@pytest.mark.slow
def test_concurrent_tool_using_replies_equal_each_served_alone(live: Live) -> None:
    alone = [ask(live, q)[0] for q in QUESTIONS]
    assert any("391" in a or "27" in a or "144" in a for a in alone)  # the calculator ran inside some replies
    assert [r[0] for r in together(lambda i: ask(live, QUESTIONS[i]), len(QUESTIONS))] == alone
    streamed, chunks = ask(live, QUESTIONS[0], stream=True)
    assert streamed == alone[0] and chunks > 2  # streamed as the engine decodes, not one chunk per segment


@pytest.mark.vllm
@pytest.mark.slow
def test_the_responses_api_gives_the_chat_reply_on_the_async_engine(live: Live) -> None:
    chat, _ = ask(live, QUESTIONS[0])
    body = {"model": MODEL, "input": QUESTIONS[0], "temperature": 0}
    response = httpx.post(live.url + "/v1/responses", json=body, timeout=300)
    assert response.status_code == 200, response.text
    whole = response.json()
    assert whole["output"][0]["content"][0]["text"] == chat and whole["status"] == "completed"
    deltas = []
    with httpx.stream("POST", live.url + "/v1/responses", json={**body, "stream": True}, timeout=300) as streamed:
        for line in streamed.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                if event["type"] == "response.output_text.delta":
                    deltas.append(event["delta"])
    assert "".join(deltas) == chat and event["type"] == "response.completed"
    def runs(body: dict[str, Any]) -> list[tuple[str, str]]:
        return [(r["tool"], r["result"]) for r in body["tool_runs"]]

    assert runs(event["response"]) == runs(whole)
