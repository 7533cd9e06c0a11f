"""The public API is exactly `toolcall.__all__`, and every name in it resolves."""
from __future__ import annotations

import toolcall

EXPECTED = {
    "BackendError", "ConfigError", "DialectSyntaxError", "DuplicateNameError", "LoopConfig", "LoopResult",
    "MissingDependencyError", "Parsed", "SyntaxIssue", "Tool", "ToolArgumentError", "ToolCall", "ToolError",
    "ToolRegistry", "ToolResult", "ToolTimeoutError", "ToolcallError", "UnknownNameError", "__version__",
    "default_registry", "generate", "get_backend", "get_dialect", "parse", "render", "run_loop", "stream_loop", "tool",
}


def test_all_is_pinned() -> None:
    assert set(toolcall.__all__) == EXPECTED


def test_every_public_name_resolves() -> None:
    for name in toolcall.__all__:
        assert getattr(toolcall, name) is not None, name


def test_errors_share_one_root() -> None:
    for name in toolcall.__all__:
        obj = getattr(toolcall, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, toolcall.ToolcallError), name
