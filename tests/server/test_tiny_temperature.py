"""A request's temperature goes to the engine's Sampling: one too small to divide logits by gets a normal (greedy)
reply from a sampling engine, not a 500."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

pytest.importorskip("transformers")

from live_server import MODEL, Live, serve  # noqa: E402
from tiny_model import make_tiny_model  # noqa: E402

from toolcall.loop import LoopConfig  # noqa: E402
from toolcall.server import ServerSettings  # noqa: E402

TEXTS = ["the cat sat on the mat and the dog ran to the park", "user: hi\nassistant: hello there"] * 3


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    from toolcall.backends.transformers import TransformersBackend

    path = make_tiny_model(tmp_path_factory.mktemp("tiny_temperature"), TEXTS)
    yield from serve(TransformersBackend(str(path)), ServerSettings(MODEL, None, LoopConfig(max_new_tokens=8),
                                                                     few_shot=False))


def ask(live: Live, **fields: Any) -> httpx.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "the cat"}], **fields}
    return httpx.post(live.url + "/v1/chat/completions", json=body, timeout=120)


@pytest.mark.parametrize("temperature", [1e-300, 1e-45, 0.005])
def test_a_temperature_too_small_to_divide_by_gets_the_greedy_reply(live: Live, temperature: float) -> None:
    """softmax(logits / 1e-300) was NaN: torch.multinomial raised and the request was a 500."""
    greedy = ask(live, temperature=0)
    assert greedy.status_code == 200, greedy.text
    response = ask(live, temperature=temperature, seed=5)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"] == greedy.json()["choices"][0]["message"]
