"""Helpers for the server tests: uvicorn on a free 127.0.0.1 port in a thread, over a scripted fake backend."""
from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the server needs the [serve] extra: pip install 'toolcall[serve]'")
uvicorn = pytest.importorskip("uvicorn", reason="the server needs the [serve] extra: pip install 'toolcall[serve]'")

from toolcall.api import make_registry  # noqa: E402
from toolcall.backends.fake import FakeBackend, FakeSession  # noqa: E402
from toolcall.dialects import get_dialect  # noqa: E402
from toolcall.loop import LoopConfig  # noqa: E402
from toolcall.server import ServerSettings, create_app  # noqa: E402

MODEL = "fake"
#: A client function the tests offer, and a request that needs it.
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city now.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["city"]}}}
ASK_WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]
LONG = "word " * 400


def question(text: str) -> str:
    """The last user turn of a prompt the fake backend's plain template wrote ("user: ..." lines)."""
    found = re.findall(r"^user: (.*)$", text, re.M)
    return found[-1] if found else ""


def script(text: str) -> str:
    """The fake model: answers by the last question and by where the reply stands (before or after a call)."""
    asked = question(text)
    reply = text[text.rfind("\nassistant:") + len("\nassistant:"):]
    if "17 * 23" in asked:
        if reply.endswith("]"):
            return " so the answer is 391."
        return "Let me compute: [Calculator(17 * 23) -> 1] and so on"
    if "weather" in asked:
        if reply.rstrip().endswith("]"):
            return " It is sunny in Paris."
        return "I will look it up. [get_weather(Paris, celsius) -> whatever"
    if "broken" in asked:
        if reply.endswith("]"):
            return " Done."
        return "Try [Calculator(3 + ->"
    if "long" in asked:
        return LONG
    return f"You said: {asked}"


class SlowSession(FakeSession):
    """A fake session that takes `delay` seconds per token, so a reply lasts long enough to be interrupted."""

    def stream(self, stop, max_new_tokens, steering=None):  # type: ignore[no-untyped-def]
        for piece in super().stream(stop, max_new_tokens, steering):
            time.sleep(self._backend.delay)
            self._backend.pieces += 1
            yield piece


class SlowFake(FakeBackend):
    delay = 0.0
    pieces = 0  # tokens decoded by all sessions

    def start(self, prompt: str) -> SlowSession:
        self.prompts.append(prompt)
        return SlowSession(self, prompt)


@dataclass
class Live:
    url: str
    backend: SlowFake
    app: Any

    def client(self, **kwargs: Any) -> Any:
        import openai

        return openai.OpenAI(base_url=self.url + "/v1", api_key=kwargs.pop("api_key", "none"), max_retries=0,
                             timeout=kwargs.pop("timeout", 30), **kwargs)


def serve(backend: Any, settings: ServerSettings, dialect: str = "toolformer", *,
          config: Callable[[Any], Any] | None = None, **options: Any) -> Iterator[Live]:
    """The app on a free 127.0.0.1 port in a uvicorn thread; `config(app)` gives its uvicorn.Config (default: plain)."""
    app = create_app(backend, get_dialect(dialect), settings, **options)
    made = config(app) if config is not None else uvicorn.Config(app, log_level="warning", lifespan="off")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(made)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield Live(f"http://127.0.0.1:{port}", backend, app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def settings(**changes: Any) -> ServerSettings:
    return ServerSettings(MODEL, make_registry(["calculator"]), LoopConfig(**changes))
