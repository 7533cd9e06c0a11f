"""A scripted backend for fast tests: canned continuations, real stop-string and token-budget handling."""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ..errors import ConfigError
from . import find_stop
from .base import Backend, DecodeSession, Steering

#: A script: continuations handed out one per `stream()` call, in order, across the whole backend
#: (so a chat's successive turns get successive items), or a function of the session text so far.
Script = Sequence[str] | Callable[[str], str]

DEFAULT_REPLY = "This is the fake backend; give it a script to say something useful."


class FakeSession(DecodeSession):
    """A session whose 'model' is the backend's script; a token is `chars_per_token` characters."""

    def __init__(self, backend: "FakeBackend", prompt: str) -> None:
        super().__init__(text=prompt, prompt_chars=len(prompt))
        self._backend = backend
        self._unprefilled = len(prompt)  # characters appended since the last stream, "prefilled" on the next one

    def _tokens(self, chars: int) -> int:
        return math.ceil(chars / self._backend.chars_per_token)

    def stream(self, stop: Sequence[str], max_new_tokens: int, steering: Steering | None = None) -> Iterator[str]:
        backend = self._backend
        backend.calls.append((tuple(stop), max_new_tokens, steering))
        began = time.perf_counter()
        self.stop_reason, self.matched_stop = None, None
        # Prefill what was appended since the last stream: one forward pass, like a real engine.
        if self._unprefilled:
            self.counters.prefilled_tokens += self._tokens(self._unprefilled)
            self.counters.forward_passes += 1
            self._unprefilled = 0
        more = backend._next_continuation(self.text)
        if more is None:
            self.stop_reason = "eos"
            return
        if steering is not None and steering.disable and steering.open_text:
            more = more.replace(steering.open_text, "")  # a banned call-open token never appears
        size = backend.chars_per_token
        pieces = [more[i:i + size] for i in range(0, len(more), size)]
        for n, piece in enumerate(pieces):
            if n >= max_new_tokens:
                self.stop_reason = "length"
                break
            before = len(self.text)
            self.text += piece
            self.counters.decoded_tokens += 1
            self.counters.forward_passes += 1
            hit = find_stop(self.text, stop, before)
            if hit is not None:
                # The stop string may end inside this piece: keep text only up to its end.
                end, self.matched_stop = hit
                self.text = self.text[:end]
                self.stop_reason = "stop"
                self.counters.decode_seconds += time.perf_counter() - began
                yield self.text[before:]
                return
            yield piece
        else:
            self.stop_reason = "eos"
        self.counters.decode_seconds += time.perf_counter() - began

    def append(self, text: str) -> None:
        self.text += text
        self._unprefilled += len(text)


class FakeBackend(Backend):
    """Scripted outputs; `model` may name a JSON file holding a list of continuations (for the CLI)."""

    name = "fake"

    def __init__(self, model: str | None = None, *, script: Script | None = None, chars_per_token: int = 4) -> None:
        if chars_per_token < 1:
            raise ConfigError(f"chars_per_token must be >= 1, got {chars_per_token}")
        if script is None and model is not None:
            script = _load_script(Path(model))
        self.script: Script = script if script is not None else [DEFAULT_REPLY]
        self.chars_per_token = chars_per_token
        self.position = 0  # next item of a list script
        self.prompts: list[str] = []  # every prompt a session was started with
        self.calls: list[tuple[tuple[str, ...], int, Steering | None]] = []  # (stop, max_new_tokens, steering) per stream

    def _next_continuation(self, text: str) -> str | None:
        if callable(self.script):
            return self.script(text)
        if self.position >= len(self.script):
            return None
        self.position += 1
        return self.script[self.position - 1]

    def start(self, prompt: str) -> FakeSession:
        self.prompts.append(prompt)
        return FakeSession(self, prompt)


def _load_script(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"fake backend script {path} could not be read as JSON: {err}") from err
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise ConfigError(f"fake backend script {path} must be a JSON list of strings")
    return data
