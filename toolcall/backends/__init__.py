"""Backend lookup by name: a Registry of factories, so new engines plug in without touching an if/elif chain."""
from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from ..naming import Registry
from .base import Backend, Counters, DecodeSession, Steering

BackendFactory = Callable[..., Backend]

#: name -> factory(model=None, **options) -> Backend. Register your own engine here.
backends: Registry[BackendFactory] = Registry("backend")


def _lazy(module: str, cls: str) -> BackendFactory:
    """A factory that imports its module on first use, so `import toolcall.backends` stays light."""

    def factory(model: str | None = None, **options: Any) -> Backend:
        return getattr(importlib.import_module(module, __name__), cls)(model, **options)

    factory.__name__ = f"make_{cls}"
    return factory


backends.register("transformers", _lazy(".transformers", "TransformersBackend"), aliases=("hf",))
backends.register("vllm", _lazy(".vllm", "VLLMBackend"))
backends.register("fake", _lazy(".fake", "FakeBackend"))


def find_stop(text: str, stop: Sequence[str], new_from: int) -> tuple[int, str] | None:
    """The earliest-ending stop string in `text` that includes at least one character at or after `new_from`.

    Returns (end offset, stop string) or None. Stop strings are matched on text, not tokens, because markers
    arrive glued to other characters (`)]`, ` ->`); a stop already complete before `new_from` is old text.
    """
    best: tuple[int, str] | None = None
    for s in stop:
        if not s:
            continue
        at = text.find(s, max(0, new_from - len(s) + 1))
        if at >= 0 and (best is None or at + len(s) < best[0]):
            best = (at + len(s), s)
    return best


def get_backend(name: str = "transformers", model: str | None = None, **options: Any) -> Backend:
    """Build the backend registered as `name` (case-insensitive); `model` is a path or None for the default."""
    return backends.get(name)(model, **options)


__all__ = ["Backend", "BackendFactory", "Counters", "DecodeSession", "Steering", "backends", "find_stop", "get_backend"]
