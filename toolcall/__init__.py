"""toolcall: language models that use tools, Toolformer and MOSS style."""
from __future__ import annotations

import importlib
from typing import Any

from .calls import Parsed, SyntaxIssue, ToolCall
from .errors import (
    BackendError,
    ConfigError,
    DialectSyntaxError,
    DuplicateNameError,
    MissingDependencyError,
    ToolArgumentError,
    ToolcallError,
    ToolError,
    ToolTimeoutError,
    UnknownNameError,
)

__version__ = "0.1.0"

# `toolcall.tool` names both a submodule (the Tool type) and the @tool decorator. The submodule is loaded now and
# the attribute the import system bound for it dropped, so `toolcall.tool` stays the decorator (via __getattr__)
# even when toolcall.registry or toolcall.tool was imported first (as `--tools-from` files see it).
from . import tool as _tool_module  # noqa: E402,F401
del tool  # noqa: F821

# Public names that live in heavier modules, imported on first use (PEP 562) so `import toolcall` stays cheap.
_LAZY = {
    "parse": "toolcall.dialects",
    "render": "toolcall.dialects",
    "get_dialect": "toolcall.dialects",
    "tool": "toolcall.registry",
    "Tool": "toolcall.tool",
    "ToolRegistry": "toolcall.registry",
    "ToolResult": "toolcall.tool",
    "default_registry": "toolcall.registry",
    "get_backend": "toolcall.backends",
    "LoopConfig": "toolcall.loop",
    "LoopResult": "toolcall.loop",
    "run_loop": "toolcall.loop",
    "stream_loop": "toolcall.loop",
    "generate": "toolcall.api",
}

__all__ = [
    "BackendError",
    "ConfigError",
    "DialectSyntaxError",
    "DuplicateNameError",
    "LoopConfig",
    "LoopResult",
    "MissingDependencyError",
    "Parsed",
    "SyntaxIssue",
    "Tool",
    "ToolArgumentError",
    "ToolCall",
    "ToolError",
    "ToolRegistry",
    "ToolResult",
    "ToolTimeoutError",
    "ToolcallError",
    "UnknownNameError",
    "__version__",
    "default_registry",
    "generate",
    "get_backend",
    "get_dialect",
    "parse",
    "render",
    "run_loop",
    "stream_loop",
    "tool",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'toolcall' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
