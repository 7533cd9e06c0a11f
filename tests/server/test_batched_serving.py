"""`toolcall serve` with the step batcher: concurrent replies decode together, each what it is when served alone."""
from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

pytest.importorskip("transformers")

from live_server import MODEL, Live, serve  # noqa: E402
from tiny_model import make_tiny_model  # noqa: E402
from together import together  # noqa: E402

from toolcall.loop import LoopConfig  # noqa: E402
from toolcall.server import ServerSettings  # noqa: E402

TEXTS = ["the cat sat on the mat and the dog ran to the park", "one two three four five six seven eight nine ten",
         "Calculator(17 * 23) -> 391 so the crate holds 391 bottles", "user: hi\nassistant: hello there"] * 3
QUESTIONS = ["the cat", "one two three", "What is 17 * 23?", "a dog ran", "seven eight", "hello"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    from toolcall.backends.transformers import TransformersBackend

    path = make_tiny_model(tmp_path_factory.mktemp("tiny_serve"), TEXTS)
    # No few-shot examples and no tools: the tiny model's context is 512 tokens of a 400-token vocabulary.
    yield from serve(TransformersBackend(str(path), batch_steps=True),
                     ServerSettings(MODEL, None, LoopConfig(max_new_tokens=16), few_shot=False))


def ask(live: Live, question: str) -> str:
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": question}], "temperature": 0}
    response = httpx.post(live.url + "/v1/chat/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


def test_concurrent_replies_are_batched_and_each_is_the_reply_served_alone(live: Live) -> None:
    alone = [ask(live, q) for q in QUESTIONS]
    batcher = live.backend.batcher  # type: ignore[attr-defined]  # the transformers backend, not the fake
    before = batcher.batches
    assert together(lambda i: ask(live, QUESTIONS[i]), len(QUESTIONS)) == alone
    assert batcher.batches > before  # decode steps of different replies ran in one forward


def ask_and_leave(live: Live, question: str) -> str:
    """A streamed request whose client goes away after its first few lines."""
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": question}], "temperature": 0,
                            "stream": True}
    with httpx.stream("POST", live.url + "/v1/chat/completions", json=body, timeout=120) as response:
        for n, _ in enumerate(response.iter_lines()):
            if n >= 2:
                break
    return "left"


def test_replies_ended_or_abandoned_free_their_sessions_and_the_shared_cache(live: Live,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Each session (its KV cache) goes with its reply, a client's that went away too: the shared cache held the
    sessions of the last batched steps until later steps gave their rows back (never, on a server gone quiet), and
    the server's wrappers made every session hold itself, so it lived on until the cycle collector ran."""
    alone = [ask(live, q) for q in QUESTIONS[:4]]
    backend: Any = live.backend  # the transformers backend, not the fake `Live` names
    sessions: list[Any] = []
    start = backend.start

    def tracked(prompt: str) -> Any:
        session = start(prompt)
        sessions.append(weakref.ref(session))
        return session

    monkeypatch.setattr(backend, "start", tracked)
    gc.disable()  # what goes, goes as its reply ends, not when the cycle collector runs
    try:
        got = together(lambda i: ask(live, QUESTIONS[i]) if i < 4 else ask_and_leave(live, QUESTIONS[i - 4]), 7)
        assert got == [*alone, "left", "left", "left"]
        ends = time.monotonic() + 10
        while (any(ref() is not None for ref in sessions) or backend.batcher._packed is not None) \
                and time.monotonic() < ends:
            time.sleep(0.02)
        assert len(sessions) == 7 and [ref() for ref in sessions] == [None] * 7
        assert backend.batcher._packed is None
    finally:
        gc.enable()
