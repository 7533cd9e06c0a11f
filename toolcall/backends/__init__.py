"""Backend lookup by name: a NameRegistry of factories, so new engines plug in without touching an if/elif chain."""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ConfigError
from ..name_registry import NameRegistry
from .base import Backend, Branch, Counters, DecodeSession, Prefix, Scorer, Steering, missing_scorer_methods

BackendFactory = Callable[..., Backend]

#: name -> factory(model=None, **options) -> Backend. Register your own engine here.
backends: NameRegistry[BackendFactory] = NameRegistry("backend")


def _lazy(module: str, cls: str) -> BackendFactory:
    """A factory that imports its module on first use, so `import toolcall.backends` stays light."""

    def factory(model: str | None = None, **options: Any) -> Backend:
        return getattr(importlib.import_module(module, __name__), cls)(model, **options)

    def engine_class() -> type:
        return getattr(importlib.import_module(module, __name__), cls)

    factory.__name__ = f"make_{cls}"
    factory.engine_class = engine_class  # type: ignore[attr-defined]  # lets scoring_backends() inspect the class
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


def stop_at_end(text: str, stop: Sequence[str]) -> str | None:
    """The stop string `text` ends with, if any: where a decode held to a grammar ended (the grammar, not a stop
    string, ends it, and a call's grammar ends with its marker)."""
    return next((s for s in stop if s and text.endswith(s)), None)


def get_backend(name: str = "transformers", model: str | None = None, **options: Any) -> Backend:
    """Build the backend registered as `name` (case-insensitive); `model` is a path or None for the default. An option
    the engine does not take is a ConfigError naming the ones it does (`--backend fake --temperature 0.7` was a
    TypeError from its constructor)."""
    factory = backends.get(name)
    engine_class = getattr(factory, "engine_class", None)
    if options and engine_class is not None:
        parameters = inspect.signature(engine_class().__init__).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            taken = [p for p in parameters if p not in ("self", "model")]
            unknown = [k for k in options if k not in taken]
            if unknown:
                raise ConfigError(f"the {name} backend takes no option {unknown[0]!r}; it takes: {', '.join(taken)}")
    return factory(model, **options)


def scoring_backends() -> list[str]:
    """Names of the registered backends whose engine implements the Scorer protocol (data_gen can use them).

    A factory is inspected through its `engine_class()` attribute (the built-in ones have it; importing an engine's
    module does not import its heavy libraries); a factory without it is not listed.
    """
    names = []
    for name in backends.names():
        engine_class = getattr(backends.get(name), "engine_class", None)
        if engine_class is not None and not missing_scorer_methods(engine_class()):
            names.append(name)
    return names


def as_scorer(engine: object) -> Scorer:
    """`engine` itself once it implements the Scorer protocol; otherwise a ConfigError naming what it lacks."""
    _require_scorer(engine, getattr(engine, "name", type(engine).__name__))
    return engine  # type: ignore[return-value]  # checked just above; Protocol isinstance only checks names too


def get_scorer(name: str = "transformers", model: str | None = None, **options: Any) -> Scorer:
    """Build the backend registered as `name` for scoring (data_gen); options such as max_batch_tokens go to it.

    An engine that cannot score is refused before it is built, so no model is loaded for nothing.
    """
    engine_class = getattr(backends.get(name), "engine_class", None)
    if engine_class is not None:
        _require_scorer(engine_class(), backends.canonical(name))
    return as_scorer(get_backend(name, model, **options))


def _require_scorer(engine: object, name: str) -> None:
    missing = missing_scorer_methods(engine)
    if missing:
        raise ConfigError(f"backend {name!r} cannot score log-probabilities for data generation: it lacks "
                          f"{', '.join(missing)}; backends that can: {', '.join(scoring_backends()) or '(none)'}")


__all__ = ["Backend", "BackendFactory", "Branch", "Counters", "DecodeSession", "Prefix", "Scorer", "Steering",
           "as_scorer", "backends", "find_stop", "get_backend", "get_scorer", "scoring_backends", "stop_at_end"]
