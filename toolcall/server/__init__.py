"""An OpenAI-compatible chat-completions server that runs tools mid-generation, with a web chat page (`toolcall serve`)."""
from __future__ import annotations

from .app import create_app
from .engine import Engine
from .planning import ServerSettings

__all__ = ["Engine", "ServerSettings", "create_app"]
