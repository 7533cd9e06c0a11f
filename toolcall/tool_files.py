"""Tools defined in a Python file or importable module (`--tools-from`): imported once, checked, and registered."""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, DuplicateNameError
from .schema import described

if TYPE_CHECKING:
    from .registry import ToolRegistry
    from .tool_type import Tool

__all__ = ["is_toolcall_source", "load_tools", "restore_user_tools"]


def load_tools(source: str) -> list[Tool]:
    """Import a Python file or module and return the tools it defines: its @toolcall.tool functions (also those
    not bound to a module-level name) and module-level Tool objects made from its own functions. Each joins the
    process-wide @tool registry. ConfigError (naming the source) when it does not exist, does not import, defines
    no tool, or defines a tool whose name or alias is a built-in tool's."""
    from .registry import builtin_tools, user_tools
    from .tool_type import Tool

    users = user_tools()
    before = {item.name: item for item in users}
    try:
        module = _import_source(source)
    except ConfigError:
        restore_user_tools(users, before)  # tools decorated before the failing line do not stay behind
        raise
    found = [item for item in users if before.get(item.name) is not item]
    for value in list(vars(module).values()):
        if (isinstance(value, Tool) and getattr(described(value.func), "__module__", None) == module.__name__
                and all(value is not item for item in found)):
            found.append(value)
    if not found:
        raise ConfigError(f"--tools-from {source}: defines no tool; decorate a typed, docstringed function with "
                          "@toolcall.tool (or assign a toolcall.Tool at module level)")
    builtin = {key.lower(): item.name for item in builtin_tools() for key in (item.name, *item.aliases)}
    for item in found:
        clash = next((key for key in (item.name, *item.aliases) if key.lower() in builtin), None)
        if clash is not None:
            restore_user_tools(users, before)
            raise ConfigError(f"--tools-from {source}: tool {item.name!r} clashes with the built-in tool "
                              f"{builtin[clash.lower()]!r}; give it another name, e.g. @toolcall.tool(name=...)")
    for item in found:
        if item.name not in users:
            users.add(item)
    return found


def restore_user_tools(users: ToolRegistry, before: dict[str, Tool]) -> None:
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
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # SystemExit too: a module that exits did not define tools (it quit silently)
        raise ConfigError(f"--tools-from {source}: importing it failed: {_short_trace(err)}") from err


def _import_file(path: Path, source: str) -> ModuleType:
    # Named after the file, as `python my_tools.py` would make it importable, so an isolated tool's worker process
    # can import it again (the directory joins sys.path, at the end so it shadows nothing installed); a stem that
    # names another module, loaded or not (email.py, ctypes.py), gets a unique name instead: registered under
    # "email", the file was what a later `import email.message` found.
    name = path.stem
    if not name.isidentifier() or _names_another_module(name, path):
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


def _names_another_module(name: str, path: Path) -> bool:
    """Whether `name` is a module other than the file `path`: loaded, in the standard library, or importable."""
    existing = sys.modules.get(name)
    if existing is not None:
        return getattr(existing, "__file__", None) != str(path)
    if name in sys.stdlib_module_names:
        return True
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return True
    return spec is not None and spec.origin != str(path)


def _taken(owner: str, err: BaseException) -> str:
    """Which earlier tool holds the name a decorated function asked for, and where it is defined: the registry's
    own message told a --tools-from user to pass replace=True."""
    from .registry import user_tools

    users = user_tools()
    source = tool_source(users.get(owner).func) if owner in users else None
    frame = _user_frame(err)
    at = f" at {frame.filename}:{frame.lineno}" if frame is not None else ""
    return (f"a tool{at} takes the name of the tool {owner!r}{f' of {source}' if source else ''}, loaded before it; "
            "give one of them another name, e.g. @toolcall.tool(name=...)")


def tool_source(func: Any) -> str | None:
    """The file that defines a tool's function (through its decorators), or None (a built-in or a C function)."""
    try:
        return inspect.getsourcefile(inspect.unwrap(described(func)))
    except TypeError:
        return None


def is_toolcall_source(filename: str) -> bool:
    """Whether a source file is toolcall's own (its package or its built-in tools), not a user's."""
    import toolcall
    import toolcall.tools

    return filename.startswith(tuple(str(Path(m.__file__).parent) for m in (toolcall, toolcall.tools) if m.__file__))


def _short_trace(err: BaseException) -> str:
    """The exception and the last line of the user's code it came from (file:line), not the import machinery nor
    toolcall's own code (a decorator that refused a function pointed at toolcall's schema reader)."""
    if isinstance(err, DuplicateNameError) and err.owner is not None:
        return _taken(err.owner, err)
    frame = _user_frame(err)
    where = f" (at {frame.filename}:{frame.lineno})" if frame is not None else ""
    if isinstance(err, SyntaxError) and err.filename:
        where = f" (at {err.filename}:{err.lineno})"
    return f"{type(err).__name__}: {err}{where}"


def _user_frame(err: BaseException) -> traceback.FrameSummary | None:
    """The last frame of `err`'s traceback in the user's code: neither the import machinery nor toolcall's own."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if "importlib" not in f.filename
              and not is_toolcall_source(f.filename)]
    return frames[-1] if frames else None
