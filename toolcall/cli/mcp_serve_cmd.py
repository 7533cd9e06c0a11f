"""`toolcall mcp-serve`: the registered tools as an MCP server, over stdio or streamable HTTP."""
from __future__ import annotations

import argparse
import contextlib
from typing import Any

from ..mcp import DEFAULT_PORT, TRANSPORTS
from ..terminal import stdout_to_stderr
from .tool_options import add_tool_options, registry_from_args

DESCRIPTION = """\
Serve tools to any MCP client (Claude Desktop, IDEs, agents, `toolcall generate --mcp`). tools/list gives each
tool's name, description and inputSchema (exactly the "parameters" of `toolcall tools --json`'s schema); tools/call
runs it through the registry (argument coercion, its time limit), and a failed call is a result with isError set
and the error text.

  toolcall mcp-serve --tools all                          stdio: a client starts this command itself
  toolcall mcp-serve --tools-from my_tools.py --transport http --port 8766
                                                          streamable HTTP at http://127.0.0.1:8766/mcp
  toolcall mcp-serve --transport http --host 0.0.0.0 --allowed-host tools.lan
                                                          on every interface, for clients that call it tools.lan

Over HTTP on a loopback address (or with --allowed-host given), a request whose Host header is not a loopback name
or an --allowed-host, or that comes from a web page (Origin) other than a loopback one or an --allowed-origin, is
refused; so is a body not declared JSON. On another address without --allowed-host nothing is checked (a warning
says so).
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("mcp-serve", help="serve the tools as an MCP server (stdio or streamable HTTP)",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_tool_options(parser, default="all")
    parser.add_argument("--transport", choices=TRANSPORTS, default="stdio",
                        help="stdio (default: JSON-RPC on stdin/stdout) or http (streamable HTTP)")
    parser.add_argument("--host", default="127.0.0.1", help="http: address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"http: port (default {DEFAULT_PORT}; 0 picks a free one, printed on stderr)")
    parser.add_argument("--allowed-host", default="", metavar="HOST[:PORT],...",
                        help="http: host names this server may be reached by besides loopback's (comma-separated; a "
                             "name without :PORT on any port); requests naming another Host are refused (421). Give "
                             "this machine's names when --host is not a loopback address: without it nothing is "
                             "checked there")
    parser.add_argument("--allowed-origin", default="", metavar="ORIGIN,...",
                        help="http: web page origins (scheme://host[:port], comma-separated) whose pages may call the "
                             "tools besides loopback pages; other pages are refused (403)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..mcp.server import serve

    # Over stdio, stdout is the JSON-RPC channel: a tools file that prints while it is imported must not write there.
    with stdout_to_stderr() if args.transport == "stdio" else contextlib.nullcontext():
        registry = registry_from_args(args)
    if registry is None:
        raise ConfigError("no tools to serve; name some with --tools, --tools-from or --mcp")
    try:
        serve(registry, args.transport, args.host, args.port, allowed_hosts=args.allowed_host.split(","),
              allowed_origins=args.allowed_origin.split(","))
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a server is stopped, not an error
    return 0
