"""Which tools a run offers, as picklable data (names, `--tools-from`, `--mcp`), and the one place they are assembled."""
from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    from .backends.base import Backend
    from .registry import ToolRegistry
    from .tool_type import Tool

#: Seconds an MCP server has to start, initialize and list its tools (`--mcp-timeout`).
MCP_CONNECT_TIMEOUT = 30.0

__all__ = ["MCP_CONNECT_TIMEOUT", "Toolset", "mcp_environment", "set_up_tools"]


@dataclass(frozen=True)
class Toolset:
    """The tools a run offers, described by name so that it pickles (a Ray actor builds its own registry from it).

    - `names`: built-in, entry-point and @toolcall.tool tools by name or alias, any case; None for every one.
    - `tools_from`: Python files or modules whose tools are added (toolcall.tool_files.load_tools).
    - `mcp`: MCP servers (a command line run over stdio, or an http(s) URL) whose tools are added.
    - `names_given`: False when `names` is a command's default, which `tools_from` or `mcp` then replace.
    - `mcp_timeout`: seconds each server has to start, initialize and list its tools.
    - `mcp_env`: None lets stdio servers inherit this process's whole environment; a tuple passes only these
      variables (`NAME` copies ours, `NAME=VALUE` sets one) besides the few the MCP SDK always passes (PATH, HOME...).
    - `wiki_corpus`: the passages WikiSearch and QA search (a file), set for the process when the registry is built;
      None leaves them as they are ($TOOLCALL_WIKI_CORPUS, else the demo corpus).

    A tool an MCP server lists under the name (or alias) of a built-in, entry-point or @tool tool replaces that tool,
    with a warning: a server is asked for by name, the built-ins come by default. A clash with a `tools_from` tool or
    another server's tool is a ConfigError, since both were asked for.
    """

    names: tuple[str, ...] | None = ("calculator",)
    tools_from: tuple[str, ...] = ()
    mcp: tuple[str, ...] = ()
    names_given: bool = True
    mcp_timeout: float = MCP_CONNECT_TIMEOUT
    mcp_env: tuple[str, ...] | None = None
    wiki_corpus: str | None = None

    def __post_init__(self) -> None:
        for name in ("names", "tools_from", "mcp", "mcp_env"):
            value = getattr(self, name)
            if isinstance(value, str):  # one name, file, server or variable, not its characters
                object.__setattr__(self, name, (value,))
            elif value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        if not self.mcp_timeout > 0:
            raise ConfigError(f"--mcp-timeout must be more than 0 seconds, got {self.mcp_timeout:g}")
        for entry in self.mcp_env or ():  # a malformed entry fails now, before any server starts
            _env_entry(entry)

    def build(self, backend: Backend | None = None, *, read_corpus: bool = True) -> ToolRegistry:
        """The registry these tools make (empty when they name none). Unknown names and broken tool files raise
        before any MCP server starts; `backend` is handed to every tool that declares `setup` (MT). A `wiki_corpus`
        is read (its index built) now, where WikiSearch or QA is among the tools, unless `read_corpus` is False (a
        listing of the tools, which searches nothing)."""
        from .registry import ToolRegistry, default_registry
        from .tool_files import load_tools

        if self.wiki_corpus is not None:
            from .tools import wikisearch

            wikisearch.configure(self.wiki_corpus)
        # One import per file however it is named (./t.py, t.py, its absolute path): a second ran its side effects
        # again.
        sources: dict[str, str] = {}
        for src in self.tools_from:
            sources.setdefault(str(Path(src).resolve()) if Path(src).is_file() else src, src)
        loaded = [item for source in sources.values() for item in load_tools(source)]
        names = self.names
        if (self.tools_from or self.mcp) and not self.names_given:
            names = ()
        # The loaded tools are in the @tool registry by now, so a name in `names` and None (every tool) find them.
        registry = default_registry(names) if names is None or names else ToolRegistry()
        chosen = set(registry.names())   # what came by name or by default, which a server's tool may replace
        for item in loaded:
            if item.name not in registry:
                registry.add(item)
        # MCP servers start last, after every local name has been checked.
        # The same server named twice is one server (its connection is shared anyway), not a clash with itself.
        for server in dict.fromkeys(entry.strip() for entry in self.mcp):
            self._add_mcp_tools(registry, server, chosen)
        if read_corpus and self._searches(registry):
            from .tools import _corpus

            _corpus.index()   # a file that cannot be read is an error now, not every call's result
        if backend is not None:
            set_up_tools(registry, backend)
        return registry

    def check_corpus(self, registry: ToolRegistry) -> None:
        """Read a `wiki_corpus` through, where WikiSearch or QA is among the tools, without indexing it: what a
        process that builds the tools for others checks (a Ray driver: a broken file is one error before any actor
        starts, and the index is built only where it is searched)."""
        if self._searches(registry):
            from .tools import _corpus

            _corpus.check()

    def _searches(self, registry: ToolRegistry) -> bool:
        return self.wiki_corpus is not None and any(name in registry for name in ("WikiSearch", "QA"))

    def _add_mcp_tools(self, registry: ToolRegistry, server: str, replaceable: set[str]) -> list[Tool]:
        from .mcp.client import connect

        client = connect(server, self.mcp_timeout, env=mcp_environment(self.mcp_env))
        added = []
        for item in client.registry_tools():
            taken = {registry.canonical(key) for key in (item.name, *item.aliases) if key in registry}
            for old in sorted(taken):
                if old not in replaceable:
                    raise ConfigError(f"--mcp {server}: its tool {item.name!r} has the name of a tool already "
                                      f"offered ({old!r}, from --tools-from or another --mcp); leave that one out")
                # Every built-in is offered where no names were given (`tools`, `tool`): there is no --tools to mend.
                hint = ("; name the built-in tools to keep with --tools (--tools '' for none)" if self.names is None
                        else "; leave that one out of --tools to keep both apart")
                warnings.warn(f"toolcall: --mcp {server}: its tool {item.name!r} replaces the tool {old!r}{hint}",
                              RuntimeWarning, stacklevel=3)
                registry.unregister(old)
            added.append(registry.add(item))
        return added


def set_up_tools(registry: ToolRegistry, backend: Backend) -> None:
    """Hand `backend` (a model the caller has loaded) to every tool that declares `setup`, so it decodes with that
    model instead of loading its own; a setup that returns a function makes it the tool's in this registry alone."""
    for item in list(registry):
        if item.setup is not None:
            bound = item.setup(backend)
            if bound is not None:  # the function to run in this registry, bound to this model
                registry.add(replace(item, func=bound), replace=True)


def mcp_environment(chosen: tuple[str, ...] | None, environ: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """The environment a stdio MCP server gets: None (inherit ours) when `chosen` is None, else only the chosen
    variables, `NAME` copied from ours (left out, with a warning, when we have none) and `NAME=VALUE` as given."""
    if chosen is None:
        return None
    source = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for entry in chosen:
        name, value = _env_entry(entry)
        if value is not None:
            out[name] = value
        elif name in source:
            out[name] = source[name]
        else:
            warnings.warn(f"toolcall: --mcp-env {name}: not set in this environment, so not passed", RuntimeWarning,
                          stacklevel=2)
    return out


def _env_entry(entry: str) -> tuple[str, str | None]:
    """(NAME, VALUE) of `NAME=VALUE`, (NAME, None) of `NAME`; ConfigError for anything else."""
    name, sep, value = entry.partition("=")
    if not name or not name.replace("_", "a").isalnum() or not name.isascii() or name[0].isdigit():
        raise ConfigError(f"--mcp-env {entry!r}: expected NAME (copied from this environment) or NAME=VALUE, where "
                          "NAME is ASCII letters, digits and _")
    return name, (value if sep else None)
