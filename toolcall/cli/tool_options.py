"""The tool options the commands share (`--tools`, `--tools-from`, `--mcp`), and the registry they name.

Which tools a command gets:
- `--tools NAMES` selects built-in, entry-point and @toolcall.tool tools by name ('all' for every one).
- `--tools-from FILE|MODULE` (repeatable) imports a Python file or module; every tool it defines is added.
- `--mcp SERVER` (repeatable) connects to an MCP server; every tool it lists is added.
- Without `--tools`, a command's default (`calculator` for generate, chat, serve) applies only when neither
  `--tools-from` nor `--mcp` is given: `--tools-from my_tools.py` alone offers exactly my_tools' tools.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from ..api import make_registry
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..registry import ToolRegistry
    from ..tool_type import Tool

TOOLS_FROM_HELP = ("a Python file (my_tools.py) or importable module (package.tools) whose @toolcall.tool functions "
                   "and Tool objects are added to the tools; repeatable")
MCP_HELP = ("an MCP server whose tools are added: a command line run as a subprocess over stdio "
            "(\"python server.py\") or an http(s) URL of a streamable HTTP server; repeatable")


def add_tool_options(parser: argparse.ArgumentParser, default: str = "calculator") -> None:
    """Add `--tools NAMES` (comma-separated; 'all' for every registered tool), `--tools-from` and `--mcp`."""
    # None means "not typed", so tool sources can replace the default instead of adding to it.
    parser.add_argument("--tools", default=None, metavar="NAMES",
                        help=f"comma-separated tool names; 'all' for every registered tool (default: {default}, "
                             "or none when --tools-from or --mcp is given)")
    parser.set_defaults(tools_default=default)
    add_tool_source_options(parser)


def add_tool_source_options(parser: argparse.ArgumentParser) -> None:
    """Add `--tools-from` and `--mcp` alone (for commands whose `--tools` comes from a config dataclass)."""
    parser.add_argument("--tools-from", action="append", default=[], metavar="FILE|MODULE", help=TOOLS_FROM_HELP)
    parser.add_argument("--mcp", action="append", default=[], metavar="SERVER", help=MCP_HELP)


def tool_names(args: argparse.Namespace) -> list[str] | None:
    """The names `--tools` gave (or its default when it was not typed); None means every registered tool."""
    text = args.tools if args.tools is not None else getattr(args, "tools_default", "calculator")
    if text.strip().lower() == "all":
        return None
    return [name.strip() for name in text.split(",") if name.strip()]


def registry_from_args(args: argparse.Namespace, backend: "Backend | None" = None) -> "ToolRegistry | None":
    """The registry the tool options name (None when they name no tool); unknown names and broken tool files raise
    before a model loads."""
    return build_registry(tool_names(args), tools_from=getattr(args, "tools_from", ()), mcp=getattr(args, "mcp", ()),
                          names_given=args.tools is not None, backend=backend)


def build_registry(names: Sequence[str] | None, *, tools_from: Sequence[str] = (), mcp: Sequence[str] = (),
                   names_given: bool = True, backend: "Backend | None" = None) -> "ToolRegistry | None":
    """`names` (None: all) plus every tool of `tools_from` and `mcp`; a default `names` (names_given=False) is
    dropped when there are tool sources. None when that is no tool at all."""
    from ..registry import ToolRegistry

    loaded = [item for source in tools_from for item in load_tools(source)]
    if (tools_from or mcp) and not names_given:
        names = []
    # The loaded tools are in the @tool registry by now, so `--tools my_tool` and 'all' find them too.
    registry = make_registry(names) or ToolRegistry()
    for item in loaded:
        if item.name not in registry:
            registry.add(item)
    # MCP servers are started last, after every local name has been checked.
    for server in mcp:
        add_mcp_tools(registry, server)
    if not len(registry):
        return None
    return make_registry(registry, backend)


def add_mcp_tools(registry: "ToolRegistry", server: str) -> list["Tool"]:
    """Connect to MCP server `server` and add its tools to `registry`; a name already there is a ConfigError."""
    from ..mcp.client import connect

    client = connect(server)
    added = []
    for item in client.registry_tools():
        if item.name in registry:
            raise ConfigError(f"--mcp {server}: its tool {item.name!r} has the name of a tool already offered "
                              f"({registry.canonical(item.name)!r}, from --tools, --tools-from or another --mcp); "
                              "leave that one out")
        added.append(registry.add(item))
    return added


# ---------------------------------------------------------------------------------------------- --tools-from


def load_tools(source: str) -> list["Tool"]:
    """Import a Python file or module and return the tools it defines: its @toolcall.tool functions (also those
    not bound to a module-level name) and module-level Tool objects made from its own functions. Each joins the
    process-wide @tool registry. ConfigError (naming the source) when it does not exist, does not import, defines
    no tool, or defines a tool whose name or alias is a built-in tool's."""
    from ..registry import builtin_tools, user_tools
    from ..tool_type import Tool

    users = user_tools()
    before = {item.name: item for item in users}
    try:
        module = _import_source(source)
    except ConfigError:
        _restore(users, before)  # tools decorated before the failing line do not stay behind
        raise
    found = [item for item in users if before.get(item.name) is not item]
    for value in list(vars(module).values()):
        if (isinstance(value, Tool) and getattr(value.func, "__module__", None) == module.__name__
                and all(value is not item for item in found)):
            found.append(value)
    if not found:
        raise ConfigError(f"--tools-from {source}: defines no tool; decorate a typed, docstringed function with "
                          "@toolcall.tool (or assign a toolcall.Tool at module level)")
    builtin = {key.lower(): item.name for item in builtin_tools() for key in (item.name, *item.aliases)}
    for item in found:
        clash = next((key for key in (item.name, *item.aliases) if key.lower() in builtin), None)
        if clash is not None:
            _restore(users, before)
            raise ConfigError(f"--tools-from {source}: tool {item.name!r} clashes with the built-in tool "
                              f"{builtin[clash.lower()]!r}; give it another name, e.g. @toolcall.tool(name=...)")
    for item in found:
        if item.name not in users:
            users.add(item)
    return found


def _restore(users: "ToolRegistry", before: "dict[str, Tool]") -> None:
    """Put the process-wide @tool registry back as it was before a failed load."""
    for item in list(users):
        if before.get(item.name) is not item:
            users.unregister(item.name)
    for name, item in before.items():
        if name not in users:
            users.add(item)


def _import_source(source: str) -> ModuleType:
    """The module of a path (anything ending in .py or naming an existing file) or of a dotted module name."""
    path = Path(source).expanduser()
    if source.endswith(".py") or path.is_file() or "/" in source or "\\" in source:
        if not path.is_file():
            raise ConfigError(f"--tools-from {source}: no such file")
        return _import_file(path.resolve(), source)
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as err:
        if err.name is not None and (source == err.name or source.startswith(err.name + ".")):
            raise ConfigError(f"--tools-from {source}: no such file or importable module") from err
        raise ConfigError(f"--tools-from {source}: importing it failed: {_short_trace(err)}") from err
    except Exception as err:
        raise ConfigError(f"--tools-from {source}: importing it failed: {_short_trace(err)}") from err


def _import_file(path: Path, source: str) -> ModuleType:
    # Named after the file, as `python my_tools.py` would make it importable, so an isolated tool's worker process
    # can import it again (the directory joins sys.path, at the end so it shadows nothing installed); a stem that
    # another module already uses gets a unique name instead.
    name = path.stem
    existing = sys.modules.get(name)
    if not name.isidentifier() or (existing is not None and getattr(existing, "__file__", None) != str(path)):
        name = f"toolcall_tools_from_{name if name.isidentifier() else 'file'}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.append(folder)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"--tools-from {source}: not a Python file that can be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name while it runs
    try:
        spec.loader.exec_module(module)
    except KeyboardInterrupt:
        sys.modules.pop(name, None)
        raise
    except BaseException as err:  # SystemExit too: a tools file that exits did not define tools
        sys.modules.pop(name, None)
        raise ConfigError(f"--tools-from {source}: importing it failed: {_short_trace(err)}") from err
    return module


def _short_trace(err: BaseException) -> str:
    """The exception and the last line of the user's code it came from (file:line), not the import machinery."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if "importlib" not in f.filename
              and not f.filename.endswith(("tool_options.py", "<frozen importlib._bootstrap>"))]
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    if isinstance(err, SyntaxError) and err.filename:
        where = f" (at {err.filename}:{err.lineno})"
    return f"{type(err).__name__}: {err}{where}"
