"""MCP both ways: serve a ToolRegistry as an MCP server, and import an MCP server's tools into a registry.

The `mcp` SDK is optional (`pip install 'toolcall[mcp]'`): `toolcall.mcp.server` and `toolcall.mcp.client` import it
when they are first imported, and fail with MissingDependencyError and that install hint when it is missing.
"""
from __future__ import annotations

from typing import Any

#: `toolcall mcp-serve --transport`: JSON-RPC over stdin/stdout, or the streamable HTTP transport.
TRANSPORTS = ("stdio", "http")
#: The default port of `toolcall mcp-serve --transport http` (`toolcall serve` uses 8765).
DEFAULT_PORT = 8766
#: Where the streamable HTTP endpoint is mounted.
HTTP_PATH = "/mcp"
#: The `_meta` key of a listed tool that carries the "return" entry of toolcall's schema.
RETURN_META = "toolcall/return"

__all__ = ["DEFAULT_PORT", "HTTP_PATH", "RETURN_META", "TRANSPORTS", "MCPClient", "build_server", "close_all", "connect",
           "import_tools", "serve"]

_HOMES = {"build_server": "server", "serve": "server",
          "MCPClient": "client", "connect": "client", "close_all": "client", "import_tools": "client"}


def __getattr__(name: str) -> Any:
    # PEP 562: `from toolcall.mcp import connect` loads the SDK only then, so `import toolcall.mcp` stays cheap.
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
