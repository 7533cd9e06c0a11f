"""The `--tools` option the commands share, and the registry it names."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..api import make_registry

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..registry import ToolRegistry


def add_tool_options(parser: argparse.ArgumentParser, default: str = "calculator") -> None:
    """Add `--tools NAMES` (comma-separated; 'all' for every registered tool)."""
    parser.add_argument("--tools", default=default, metavar="NAMES",
                        help=f"comma-separated tool names (default: {default}); 'all' for every registered tool")


def tool_names(args: argparse.Namespace) -> list[str] | None:
    """The names `--tools` gave; None means every registered tool."""
    text = args.tools.strip()
    if text.lower() == "all":
        return None
    return [name.strip() for name in text.split(",") if name.strip()]


def registry_from_args(args: argparse.Namespace, backend: "Backend | None" = None) -> "ToolRegistry | None":
    """The registry the tool options name (None when they name no tool); unknown names raise before a model loads."""
    return make_registry(tool_names(args), backend)
