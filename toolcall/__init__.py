"""toolcall: language models that use tools, Toolformer and MOSS style."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:  # what a type checker sees of the names imported lazily below
    from .api import generate
    from .backends import get_backend
    from .dialects import get_dialect, parse, render
    from .loop import LoopConfig, LoopResult
    from .registry import ToolRegistry, default_registry, tool
    from .runner import run_loop, stream_loop
    from .tool_type import Tool, ToolResult

# Public names that live in heavier modules, imported on first use (PEP 562) so `import toolcall` stays cheap.
_LAZY = {
    "parse": "toolcall.dialects",
    "render": "toolcall.dialects",
    "get_dialect": "toolcall.dialects",
    "tool": "toolcall.registry",
    "Tool": "toolcall.tool_type",
    "ToolRegistry": "toolcall.registry",
    "ToolResult": "toolcall.tool_type",
    "default_registry": "toolcall.registry",
    "get_backend": "toolcall.backends",
    "LoopConfig": "toolcall.loop",
    "LoopResult": "toolcall.loop",
    "run_loop": "toolcall.runner",
    "stream_loop": "toolcall.runner",
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
