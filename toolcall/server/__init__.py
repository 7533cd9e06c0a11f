"""An OpenAI-compatible server (chat completions and the Responses API) that runs tools mid-generation, with a web chat
page (`toolcall serve`)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app
    from .planning import ServerSettings
    from .shared_model import SharedModel

__all__ = ["ServerSettings", "SharedModel", "create_app"]

_HOMES = {"create_app": "app", "SharedModel": "shared_model", "ServerSettings": "planning"}


def __getattr__(name: str) -> Any:
    # Imported on first use: the CLI reads the server's option dataclasses (guard.GuardConfig) without loading
    # FastAPI and pydantic, which only the [serve] extra installs.
    if name in _HOMES:
        from importlib import import_module

        return getattr(import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
