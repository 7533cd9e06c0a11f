"""The tool registry that calls tools safely, the @tool decorator, and the default set (built-ins, entry points, @tool)."""
from __future__ import annotations

import datetime as dt
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, overload

from .binding import bind_arguments
from .errors import (
    ConfigError,
    ToolArgumentError,
    ToolcallError,
    ToolError,
    ToolTimeoutError,
    UnknownNameError,
)
from .executor import check_timeout, error_text, run_in_thread, run_isolated
from .name_registry import NameRegistry
from .schema import described, python_arguments
from .specs import ToolSpecs
from .tool_type import (
    DEFAULT_TIMEOUT,
    Admissible,
    AdmissibleGrammar,
    Proposer,
    Restyler,
    Setup,
    Tool,
    ToolResult,
    make_tool,
)

ENTRY_POINT_GROUP = "toolcall.tools"
CACHE_SIZE = 1024
#: The most characters of one tool result (or error message) that reach the model: about the whole context of the
#: embedded model. A tool or an MCP server that returns megabytes would otherwise be prefilled token by token, far
#: past any context, and kept in every cache and transcript; the cut says how much there was.
MAX_RESULT_CHARS = 32_768

__all__ = [
    "DEFAULT_TIMEOUT",
    "ENTRY_POINT_GROUP",
    "MAX_RESULT_CHARS",
    "Tool",
    "ToolRegistry",
    "ToolResult",
    "default_registry",
    "entry_point_tools",
    "make_tool",
    "tool",
    "user_tools",
]


class ToolRegistry(NameRegistry[Tool]):
    """Tools by case-insensitive name or alias; `call` runs one with coercion, a time limit and a cache, and never raises."""

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = (), cache_size: int = CACHE_SIZE,
                 max_result_chars: int | None = MAX_RESULT_CHARS) -> None:
        super().__init__("tool")
        if max_result_chars is not None and (isinstance(max_result_chars, bool) or not isinstance(max_result_chars, int)
                                             or max_result_chars < 1):
            raise ConfigError(f"max_result_chars must be a whole number >= 1 (or None: no limit), got {max_result_chars!r}")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ConfigError(f"cache_size must be a whole number >= 0 (0: no cache), got {cache_size!r}")
        self.cache_size = cache_size
        self.max_result_chars = max_result_chars
        self._cache: OrderedDict[tuple[Any, ...], str] = OrderedDict()
        self._cache_lock = threading.Lock()
        for item in tools:
            self.add(item)

    def add(self, func_or_tool: Callable[..., Any] | Tool, name: str | None = None, *, replace: bool = False,
            **opts: Any) -> Tool:
        """Register a function or Tool (options as in make_tool) and return the Tool."""
        item = make_tool(func_or_tool, name, **opts) if (opts or name or not isinstance(func_or_tool, Tool)) else func_or_tool
        self.register(item.name, item, aliases=item.aliases, replace=replace)
        self.clear_cache()
        return item

    def schemas(self) -> list[dict[str, Any]]:
        return [t.schema for t in self]

    def specs(self) -> ToolSpecs:
        """The tools as a model is offered them (plain data for dialects and the decoding loop)."""
        return ToolSpecs(t.spec() for t in self)

    def subset(self, names: Iterable[str]) -> ToolRegistry:
        """A registry with only these tools (names or aliases, any case); unknown names raise UnknownNameError."""
        out = ToolRegistry(cache_size=self.cache_size, max_result_chars=self.max_result_chars)
        for name in (names,) if isinstance(names, str) else names:  # one name, not its letters
            item = self.get(name)
            if item.name not in out:
                out.register(item.name, item, aliases=item.aliases)
        return out

    def clear_cache(self) -> None:
        with self._cache_lock:
            self._cache.clear()

    def call(self, name: str, args: Sequence[Any] | Mapping[str, Any] = (), timeout: float | None = None, *,
             typed: bool | None = None) -> ToolResult:
        """Run tool `name` on model-written arguments. Every failure comes back as ok=False with text "Error: ...".
        `typed`: whether the values carry their JSON types (default: when `args` is a mapping; see bind_arguments)."""
        start = time.perf_counter()
        if not isinstance(name, str):
            return self._failure(repr(name)[:64], (), f"a tool name is text, not {type(name).__name__}", start)
        if isinstance(args, str):  # a bare string is one argument, not a sequence of characters
            shown_args: Any = (args,)
        elif isinstance(args, Mapping):
            shown_args = dict(args)
        elif isinstance(args, Sequence) and not isinstance(args, (bytes, bytearray)):
            shown_args = tuple(args)
        else:
            return self._failure(name, (), f"{name}: arguments are a list or an object, not "
                                           f"{type(args).__name__}", start)
        try:
            item = self.get(name)
        except UnknownNameError as err:
            return self._failure(name, shown_args, str(err), start)
        try:
            kwargs = bind_arguments(shown_args, item.parameters, tool=item.name, joiner=item.joiner, typed=typed)
            # Checked here, so a wrong argument is an error before anything starts; made the function's types where
            # the call runs (records are built by the tool's own code, which runs under the call's time limit).
            checked = python_arguments(item.func, kwargs, tool=item.name, build=False)
        except ToolArgumentError as err:
            return self._failure(item.name, shown_args, str(err), start)
        except (ValueError, TypeError, OverflowError, RecursionError) as err:
            # Arguments given directly (not written by a model, whose text the binding reads with bounds): nested
            # past what Python's recursion takes, or an int past str()'s 4,300 digits.
            return self._failure(item.name, (), f"{item.name}: the arguments could not be read: "
                                                f"{type(err).__name__}: {str(err)[:200]}", start)
        # Keyed by the values the function gets (1 and 1.0 for a float are one call), records as all their fields.
        key = _cache_key(item.name, checked) if item.cacheable else None
        if key is not None:
            with self._cache_lock:
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                    return ToolResult(item.name, shown_args, hit, True, None, time.perf_counter() - start, True)
        runner = run_isolated if item.isolated else run_in_thread
        try:
            limit = item.timeout if timeout is None else check_timeout(timeout, f"{item.name}'s call")
            text = self._bounded(runner(item.func, kwargs, limit, item.name))
        except ToolTimeoutError as err:
            return self._failure(item.name, shown_args, str(err), start)
        except ToolError as err:
            message = str(err)
            return self._failure(item.name, shown_args, message if message.startswith(item.name + ":") else f"{item.name}: {message}", start)
        except ToolcallError as err:
            return self._failure(item.name, shown_args, f"{item.name}: {err}", start)
        except Exception as err:  # noqa: BLE001 - a bug or bad input inside the tool is the model's result, not our crash
            return self._failure(item.name, shown_args, f"{item.name}: {type(err).__name__}: {error_text(err)}", start)
        if key is not None and self.cache_size:
            with self._cache_lock:
                self._cache[key] = text
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return ToolResult(item.name, shown_args, text, True, None, time.perf_counter() - start, False)

    def _bounded(self, text: str) -> str:
        """`text` cut to max_result_chars, saying how long it was; a lone surrogate (no character: it cannot be written
        as UTF-8, and crashed whatever printed or saved the result) becomes U+FFFD."""
        if not text.isascii():
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        limit = self.max_result_chars
        if limit is None or len(text) <= limit:
            return text
        return f"{text[:limit]} [... cut: {len(text):,} characters, the first {limit:,} shown]"

    def _failure(self, tool_name: str, args: Any, message: str, start: float) -> ToolResult:
        message = self._bounded(message)
        return ToolResult(tool_name, args, f"Error: {message}", False, message, time.perf_counter() - start, False)


#: Characters of arguments past which a call is not cached: the cache bounds its entries, not their keys, so 1,024
#: calls with a megabyte of argument each held a gigabyte.
MAX_CACHED_ARGUMENT_CHARS = 4_096


def _cacheable(kwargs: Mapping[str, Any]) -> bool:
    """Whether the arguments are small enough to be kept as a cache key (counted without building their text)."""
    budget = MAX_CACHED_ARGUMENT_CHARS
    stack: list[Any] = [kwargs]
    while stack:
        value = stack.pop()
        if isinstance(value, Mapping):
            stack.extend(value.keys())
            stack.extend(value.values())
            budget -= 2 * len(value)
        elif isinstance(value, (list, tuple, set)):
            stack.extend(value)
            budget -= 1 + len(value)
        elif isinstance(value, (str, bytes)):
            budget -= len(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            budget -= max(1, value.bit_length() // 3)  # about its digits, without writing it
        else:
            budget -= 8
        if budget < 0:
            return False
    return True


def _cache_key(name: str, kwargs: Mapping[str, Any]) -> Any:
    """The call's cache key, or None (not cached) for arguments too large or too deep to keep as one."""
    if not _cacheable(kwargs):
        return None
    try:
        return (name, _freeze(kwargs))
    except RecursionError:
        return None


def _freeze(value: Any) -> Any:
    """A hashable cache key for coerced arguments: each value with its type, so True, 1 and 1.0 (equal, and equal
    keys, in Python) and 0.0 and -0.0 are different calls, as they may be to the tool."""
    if isinstance(value, Mapping):
        return ("{", tuple(sorted((str(k), _freeze(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple, set, frozenset)):
        items = (_freeze(v) for v in value)
        return (type(value).__name__, tuple(sorted(items, key=repr)) if isinstance(value, (set, frozenset))
                else tuple(items))
    if isinstance(value, float):
        return ("float", repr(value))
    if isinstance(value, dt.date | dt.time):
        return (type(value).__qualname__, value.isoformat())  # 15:30+01:00 and 14:30+00:00 are equal, not alike
    try:
        hash(value)
    except TypeError:
        return (type(value).__qualname__, repr(value))
    return (type(value).__qualname__, value)


# ---------------------------------------------------------------------------------------------- user tools

_USER = ToolRegistry()


def user_tools() -> ToolRegistry:
    """The process-wide registry that @tool adds to (merged into default_registry())."""
    return _USER


@overload
def tool(func: Callable[..., Any], /) -> Tool: ...
@overload
def tool(*, name: str | None = None, timeout: float | None = None, cache: bool | None = None,
         aliases: Sequence[str] = (), example: str | None = None, isolated: bool | None = None,
         proposer: Proposer | None = None, argument_grammar: str | None = None,
         admissible: Admissible | None = None, admissible_grammar: AdmissibleGrammar | None = None,
         setup: Setup | None = None, restyle: Restyler | None = None,
         replace: bool = False) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(func: Callable[..., Any] | None = None, /, *, name: str | None = None, timeout: float | None = None,
         cache: bool | None = None, aliases: Sequence[str] = (), example: str | None = None,
         isolated: bool | None = None, proposer: Proposer | None = None, argument_grammar: str | None = None,
         admissible: Admissible | None = None, admissible_grammar: AdmissibleGrammar | None = None,
         setup: Setup | None = None, restyle: Restyler | None = None, replace: bool = False) -> Any:
    """Decorator: `@tool` or `@tool(name=..., timeout=..., cache=..., aliases=..., proposer=...)` turns a function
    into a Tool and registers it in the process-wide user registry. The Tool is still callable like the function.
    `proposer(text) -> list[Proposal]` lets data_gen propose calls of it by reading a text (toolcall.tool_type.Proposal).
    `argument_grammar` (Lark with a `start` rule) is what constrained sampling lets a model write as its arguments;
    by default it follows the function's parameters. `admissible(args, before)` lets data_gen drop sampled calls that
    could not be written from the text before them, and `admissible_grammar(before)` restricts sampling to such
    calls (toolcall.tool_type.Tool). `setup(backend)` declares that it decodes with a model: it is
    handed the one a command has loaded (see toolcall.toolset). `restyle(result, following)` writes a result the way
    the text after the call writes the same value (data_gen)."""
    def wrap(f: Callable[..., Any]) -> Tool:
        made = make_tool(f, name, timeout=timeout, cache=cache, aliases=aliases, example=example, isolated=isolated,
                         proposer=proposer, argument_grammar=argument_grammar, admissible=admissible,
                         admissible_grammar=admissible_grammar, setup=setup, restyle=restyle)
        again = made.name in _USER and _same_function(_USER.get(made.name).func, f)
        return _USER.add(made, replace=replace or again)  # re-running a definition (a notebook cell) replaces it

    if isinstance(func, str):  # `@tool("search_web")`: the name is a keyword, and the decorator got no function
        raise ConfigError(f"@tool({func!r}): give the name as a keyword, @toolcall.tool(name={func!r})")
    return wrap(func) if func is not None else wrap


def _same_function(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    """Whether two callables are one definition made again (a partial or an object by the function it calls)."""
    a, b = described(a), described(b)
    return (getattr(a, "__module__", None), getattr(a, "__qualname__", None)) == (getattr(b, "__module__", None), getattr(b, "__qualname__", None))


# ---------------------------------------------------------------------------------------------- defaults

def builtin_tools() -> list[Tool]:
    """Calculator (alias Calculate), Calendar, Solve, WikiSearch, Search, QA, MT from the `tools` package."""
    from toolcall.tools import builtin_tools as load

    return load()


def entry_point_tools() -> list[Tool]:
    """Tools that installed packages declare in the "toolcall.tools" entry-point group.

    An entry point may name a function (the tool takes the entry point's name), a Tool, or a list of either.
    One that fails to load is skipped with a warning, so one broken plug-in does not disable the others.
    """
    from importlib.metadata import entry_points

    found: list[Tool] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            items = list(obj) if isinstance(obj, (list, tuple)) else [obj]
            for item in items:
                if isinstance(item, Tool):
                    found.append(item)
                elif callable(item):
                    found.append(make_tool(item, ep.name if len(items) == 1 else None))
                else:
                    raise ConfigError(f"{type(item).__name__} is neither a function nor a Tool")
        except KeyboardInterrupt:
            raise
        except BaseException as err:  # noqa: BLE001 - any plug-in failure, SystemExit too, is reported, not fatal
            warnings.warn(f"toolcall: skipping tool entry point {ep.name!r} ({ep.value}): {err}", RuntimeWarning, stacklevel=2)
    return found


def default_registry(names: Sequence[str] | None = None, *, entry_points: bool = True) -> ToolRegistry:
    """Built-ins, then entry-point tools, then @tool-decorated ones (a later one with the same name replaces an
    earlier one, with a warning); `names` selects a subset (any case; unknown names raise UnknownNameError)."""
    reg = ToolRegistry()
    sources: list[tuple[str, list[Tool]]] = [("built-in", builtin_tools())]
    if entry_points:
        sources.append(("entry point", entry_point_tools()))
    sources.append(("@tool", list(_USER)))
    for source, items in sources:
        for item in items:
            clash = [n for n in (item.name, *item.aliases) if n in reg]
            if clash:
                warnings.warn(f"toolcall: {source} tool {item.name!r} replaces the tool already named {clash[0]!r}",
                              RuntimeWarning, stacklevel=2)
                for old in {reg.canonical(n) for n in clash}:
                    reg.unregister(old)
            reg.register(item.name, item, aliases=item.aliases)
    return reg.subset(names) if names is not None else reg
