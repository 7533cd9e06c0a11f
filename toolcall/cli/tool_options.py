"""The tool options the commands share (`--tools`, `--tools-from`, `--mcp` and its settings), read into a Toolset.

Which tools a command gets:
- `--tools NAMES` selects built-in, entry-point and @toolcall.tool tools by name ('all' for every one).
- `--tools-from FILE|MODULE` (repeatable) imports a Python file or module; every tool it defines is added.
- `--mcp SERVER` (repeatable) connects to an MCP server; every tool it lists is added (`--mcp-timeout`, `--mcp-env`).
- `--wiki-corpus FILE` is what WikiSearch and QA search.
- Without `--tools`, a command's default (`calculator` for generate, chat, serve) applies only when neither
  `--tools-from` nor `--mcp` is given: `--tools-from my_tools.py` alone offers exactly my_tools' tools.
What the flags mean once read is toolcall.toolset's business; this module only parses them.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from types import EllipsisType
from typing import TYPE_CHECKING

from ..toolset import MCP_CONNECT_TIMEOUT, Toolset

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..registry import ToolRegistry

TOOLS_FROM_HELP = ("a Python file (my_tools.py) or importable module (package.tools) whose @toolcall.tool functions "
                   "and Tool objects are added to the tools; repeatable")
MCP_HELP = ("an MCP server whose tools are added: a command line run as a subprocess over stdio "
            "(\"python server.py\") or an http(s) URL of a streamable HTTP server; repeatable. A tool it lists under "
            "a built-in tool's name replaces that one, with a warning")
MCP_TIMEOUT_HELP = (f"seconds each --mcp server has to start, initialize and list its tools "
                    f"(default: {MCP_CONNECT_TIMEOUT:g})")
WIKI_CORPUS_HELP = ("the passages WikiSearch and QA search: a .jsonl with title and text per line (compressed or "
                    "not: .gz, .bz2, .xz) or a .txt of paragraphs separated by blank lines (default: "
                    "$TOOLCALL_WIKI_CORPUS, else a demo corpus of 34 passages)")
MCP_ENV_HELP = ("pass only this environment variable to stdio --mcp servers (NAME copies ours, NAME=VALUE sets it); "
                "repeatable. Without it a server inherits the whole environment")


def add_tool_options(parser: argparse.ArgumentParser, default: str = "calculator",
                     sources_replace_default: bool = True) -> None:
    """Add `--tools NAMES` (comma-separated; 'all' for every registered tool), `--tools-from` and `--mcp`."""
    # None means "not typed", so tool sources can replace the default instead of adding to it.
    unless = ", or none when --tools-from or --mcp is given" if sources_replace_default else ""
    parser.add_argument("--tools", default=None, metavar="NAMES",
                        help=f"comma-separated tool names; 'all' for every registered tool; '' for none "
                             f"(default: {default}{unless})")
    parser.set_defaults(tools_default=default)
    add_tool_source_options(parser)


def add_tool_source_options(parser: argparse.ArgumentParser) -> None:
    """Add `--tools-from`, `--mcp`, `--mcp-timeout` and `--mcp-env` alone (for commands whose `--tools` comes from a
    config dataclass)."""
    parser.add_argument("--tools-from", action="append", default=[], metavar="FILE|MODULE", help=TOOLS_FROM_HELP)
    parser.add_argument("--mcp", action="append", default=[], metavar="SERVER", help=MCP_HELP)
    parser.add_argument("--mcp-timeout", type=float, default=MCP_CONNECT_TIMEOUT, metavar="SECONDS",
                        help=MCP_TIMEOUT_HELP)
    parser.add_argument("--mcp-env", action="append", default=None, metavar="NAME[=VALUE]", help=MCP_ENV_HELP)
    parser.add_argument("--wiki-corpus", default=None, metavar="FILE", help=WIKI_CORPUS_HELP)


def tool_names(args: argparse.Namespace) -> list[str] | None:
    """The names `--tools` gave (or its default when it was not typed); None means every registered tool."""
    text = args.tools if args.tools is not None else getattr(args, "tools_default", "calculator")
    return split_names(text)


def split_names(text: str) -> list[str] | None:
    """`a, b` as names; 'all' as None (every registered tool)."""
    if text.strip().lower() == "all":
        return None
    return [name.strip() for name in text.split(",") if name.strip()]


def toolset_from_args(args: argparse.Namespace, *, names: Sequence[str] | None | EllipsisType = ...,
                      names_given: bool | None = None) -> Toolset:
    """The Toolset the flags describe. `names` (None: every tool) replaces what `--tools` says, for a command that
    reads it into a config dataclass; `names_given` says whether they were typed (default: whether `--tools` was)."""
    chosen = tool_names(args) if names is ... else names
    given = getattr(args, "tools", None) is not None if names_given is None else names_given
    env = getattr(args, "mcp_env", None)
    return Toolset(names=None if chosen is None else tuple(chosen), tools_from=tuple(getattr(args, "tools_from", ())),
                   mcp=tuple(getattr(args, "mcp", ())), names_given=given,
                   mcp_timeout=getattr(args, "mcp_timeout", MCP_CONNECT_TIMEOUT),
                   mcp_env=None if env is None else tuple(env), wiki_corpus=getattr(args, "wiki_corpus", None))


def registry_from_args(args: argparse.Namespace, backend: Backend | None = None) -> ToolRegistry | None:
    """The registry the tool options name (None when they name no tool); unknown names and broken tool files raise
    before a model loads."""
    registry = toolset_from_args(args).build(backend)
    return registry if len(registry) else None
