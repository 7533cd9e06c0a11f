"""The Tool type: a Python function with its name, JSON schema and how it runs; and what one call of it produced."""
from __future__ import annotations

import functools
import importlib
import inspect
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .backends.base import Backend
from .errors import ConfigError
from .executor import check_timeout, function_ref
from .schema import (
    constraint_checks,
    default_name,
    described,
    function_schema,
    partial_keywords,
    tool_signature,
)
from .specs import TOOL_NAME, ToolSpec

DEFAULT_TIMEOUT = 10.0

__all__ = ["DEFAULT_TIMEOUT", "Admissible", "AdmissibleGrammar", "Proposal", "Proposer", "Restyler", "Setup", "Tool", "ToolResult", "about_text",
           "make_tool", "text_context"]

#: What the caller knows about the text a call is made for, e.g. {"date": "2025-03-04"}: data_gen sets it from each
#: input record, so a tool whose answer depends on the document (Calendar: the paper dates each text by its own
#: date) answers for that text. Such a tool must not be cached (cache=True).
text_context: ContextVar[Mapping[str, Any]] = ContextVar("toolcall_text_context", default=MappingProxyType({}))


@contextmanager
def about_text(fields: Mapping[str, Any] | None) -> Iterator[None]:
    """Run the enclosed calls (and proposers) for a text with these `fields` (see `text_context`)."""
    token = text_context.set(MappingProxyType(dict(fields or {})))
    try:
        yield
    finally:
        text_context.reset(token)


@dataclass(frozen=True)
class Proposal:
    """A call a tool proposes for a text by reading it: where it goes and with which arguments.

    `position` is the character offset where the call is inserted, i.e. where the text it computes starts (the
    "6" of "3*2=6"); `score` ranks a tool's proposals (higher first) when data_gen keeps only the best few.
    """

    position: int
    args: tuple[Any, ...]
    score: float = 1.0


#: text -> the calls a tool proposes for it (data_gen judges them with the same loss filter as sampled calls).
Proposer = Callable[[str], list[Proposal]]
#: (result, text that follows the call) -> the result written in the style of that text, same value.
Restyler = Callable[[str, str], str]
#: (arguments, text before the call) -> whether one who has read only that text could write the call (Calculator:
#: its operands are numbers written there). A model sampling calls sees the whole text, so it can copy numbers
#: from after the call; a call it could not make at inference time is not worth training on.
Admissible = Callable[[tuple[Any, ...], str], bool]
#: text before a call -> the argument grammar (Lark, a `start` rule, like `argument_grammar`) of the calls one who
#: has read only that text could write, or None for the tool's own argument grammar.
AdmissibleGrammar = Callable[[str], str | None]
#: backend -> None, or the function to run instead, bound to that model: hands a tool that decodes with a model the one
#: the caller has loaded (MT), before its first call. A function returned replaces the tool's in that registry alone.
Setup = Callable[[Backend], "Callable[..., Any] | None"]


@dataclass
class Tool:
    """A callable tool: the function plus its name, description, JSON schema and how to run it.

    `cacheable=True` (`cache=True` in `@tool` and make_tool) lets a registry answer a call it has answered before
    from its cache: only for a pure function (Calculator). Off by default, since a plain function may read a clock, a
    file or a service, and a server or chat would go on answering with its first result.
    `isolated=True` runs it in a worker process that is killed on timeout (for CPU-heavy tools; the function
    must then be importable by module and name). `joiner` glues positional pieces back together for a tool
    whose only parameter is a string. `proposer` reads a text and proposes calls of this tool (data_gen's
    candidates besides the model's samples); `restyle` writes a result in the style of the text that follows it
    (Calculator: "2800" before "2,800" becomes "2,800"). `argument_grammar` is the Lark grammar (llguidance's
    dialect, a `start` rule) of what may stand between the call's parentheses when calls are sampled under a
    constraint; None derives it from the JSON schema, "" means no arguments. `admissible(args, before)` says
    whether a call could be written from the text before it alone; data_gen drops sampled calls that fail it.
    `admissible_grammar(before)` is the argument grammar restricted to what one who has read `before` could write
    (None, or None from it: the tool's own argument grammar; "" from it: no call is admissible there); data_gen
    samples each position's calls under it, so a constrained sample already passes `admissible` (Calculator: only
    numbers written before the call, at least one of them), and samples nothing where it is "".
    `setup(backend)` declares that the tool decodes with a model: whoever assembles the tools (toolcall.toolset)
    hands it the loaded one, and a server runs its calls under that model's lock (`uses_model`).
    """

    name: str
    description: str
    parameters: dict[str, Any]
    func: Callable[..., Any] = field(repr=False)  # a partial's repr shows what it binds (an API key)
    timeout: float = DEFAULT_TIMEOUT
    cacheable: bool = False
    aliases: tuple[str, ...] = ()
    example: str | None = None
    isolated: bool = False
    joiner: str = ", "
    returns: dict[str, Any] | None = None
    proposer: Proposer | None = None
    restyle: Restyler | None = None
    admissible: Admissible | None = None
    argument_grammar: str | None = None
    admissible_grammar: AdmissibleGrammar | None = None
    setup: Setup | None = None

    def __post_init__(self) -> None:
        # What a decorated function showed of itself stays readable on the Tool that replaced it: its name, its
        # docstring, and (inspect.signature follows __wrapped__) its parameters, which read (*args, **kwargs).
        self.__wrapped__ = self.func
        self.__name__ = getattr(self.func, "__name__", self.name)
        self.__doc__ = getattr(described(self.func), "__doc__", None)
        if isinstance(self.func, functools.partial):
            # What the call fills, not the partial's signature: that shows each bound keyword's value (an API key) as
            # its default, in help() and inspect.signature.
            try:
                self.__signature__ = tool_signature(self.func)
            except (TypeError, ValueError):
                pass

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Pickled by reference when a module's name holds it (a decorated function: pickling it by value found the
        function's own module name holding the Tool, and failed with "not the same object"), else by value."""
        module, qualname = getattr(self.func, "__module__", None), getattr(self.func, "__qualname__", "")
        loaded = sys.modules.get(module) if isinstance(module, str) else None   # pickling imports nothing
        if loaded is not None and "<locals>" not in qualname and _attribute(loaded, qualname) is self:
            return (_named, (module, qualname))
        return super().__reduce_ex__(protocol)

    @property
    def uses_model(self) -> bool:
        """Whether a call decodes with the model given to `setup` (so it must not run beside that model's replies)."""
        return self.setup is not None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    @property
    def schema(self) -> dict[str, Any]:
        """{"type": "function", "function": {...}} in the form of transformers' get_json_schema."""
        return self.spec().schema

    def spec(self) -> ToolSpec:
        """The tool as a model is offered it: plain data, nothing to run."""
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters,
                        aliases=self.aliases, example=self.example, argument_grammar=self.argument_grammar,
                        joiner=self.joiner, returns=self.returns)

    def enums(self) -> dict[str, list[Any]]:
        """Allowed values per argument, from docstring `(choices: [...])` blocks."""
        return {k: v["enum"] for k, v in self.parameters.get("properties", {}).items() if "enum" in v}

    def arguments_grammar(self) -> str:
        """What constrained sampling lets a model write between this tool's parentheses: Lark text whose `start`
        rule is the argument list ("" for none). `argument_grammar` when set, else derived from the JSON schema."""
        return self.spec().arguments_grammar()


def _named(module: str, qualname: str) -> Any:
    """What `module`'s `qualname` holds (None when it holds nothing): how a pickled Tool is found again."""
    return _attribute(sys.modules.get(module) or importlib.import_module(module), qualname)


def _attribute(holder: Any, qualname: str) -> Any:
    for part in qualname.split("."):
        holder = getattr(holder, part, None)
    return holder


@dataclass(frozen=True)
class ToolResult:
    """What one call produced: `text` is what goes back to the model ("Error: ..." when ok is False)."""

    tool: str
    args: Any
    text: str
    ok: bool = True
    error: str | None = None
    seconds: float = 0.0
    cached: bool = False


def make_tool(func: Callable[..., Any] | Tool, name: str | None = None, *, timeout: float | None = None,
              cache: bool | None = None, aliases: Sequence[str] = (), example: str | None = None,
              isolated: bool | None = None, joiner: str | None = None, description: str | None = None,
              proposer: Proposer | None = None, restyle: Restyler | None = None,
              argument_grammar: str | None = None, admissible: Admissible | None = None,
              admissible_grammar: AdmissibleGrammar | None = None, setup: Setup | None = None) -> Tool:
    """A Tool from a typed, Google-docstringed function (or a copy of a Tool with options changed)."""
    if isinstance(func, Tool):
        base = func
        new_name = base.name if name is None else _tool_name(name)
        if isolated and not base.isolated:
            function_ref(base.func)  # fail now, not at the first call
        return Tool(name=new_name, description=description or base.description, parameters=base.parameters,
                    func=base.func, timeout=base.timeout if timeout is None else check_timeout(timeout, f"tool {new_name}"),
                    cacheable=base.cacheable if cache is None else cache,
                    aliases=_aliases(aliases, new_name) or base.aliases,
                    example=example or base.example, isolated=base.isolated if isolated is None else isolated,
                    joiner=base.joiner if joiner is None else joiner, returns=base.returns,
                    proposer=proposer or base.proposer, restyle=restyle or base.restyle,
                    argument_grammar=base.argument_grammar if argument_grammar is None else argument_grammar,
                    admissible=admissible or base.admissible,
                    admissible_grammar=admissible_grammar or base.admissible_grammar, setup=setup or base.setup)
    _check_callable(func)
    for flag, value in (("cache", cache), ("isolated", isolated)):
        if value is not None and not isinstance(value, bool):   # cache="no" counted as true
            raise ConfigError(f"a tool's {flag} is true or false, got {value!r}")
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"a tool's name is text, got {type(name).__name__}")
    schema = function_schema(func, name)["function"]
    _tool_name(schema["name"])
    constraint_checks(func)   # a constraint pydantic cannot check is refused now, not dropped at every call
    names = _aliases(aliases, schema["name"])
    if isolated:
        function_ref(func)  # fail now, not at the first call
    return Tool(name=schema["name"], description=description or schema["description"], parameters=schema["parameters"],
                func=func, timeout=DEFAULT_TIMEOUT if timeout is None else check_timeout(timeout, f"tool {schema['name']}"),
                cacheable=bool(cache), aliases=names, example=example,
                isolated=bool(isolated), joiner=", " if joiner is None else joiner, returns=schema.get("return"),
                proposer=proposer, restyle=restyle, argument_grammar=argument_grammar, admissible=admissible,
                admissible_grammar=admissible_grammar, setup=setup)


def _tool_name(name: object) -> str:
    """`name` if a call can write it (specs.TOOL_NAME), else a ConfigError saying what a name may be."""
    if not isinstance(name, str):
        raise ConfigError(f"a tool's name is text, got {type(name).__name__}")
    if not TOOL_NAME.fullmatch(name):
        raise ConfigError(f"tool name {name!r} cannot be written in a call: a name is 1-64 ASCII letters, digits and "
                          "_, and does not start with a digit")
    return name


def _aliases(aliases: Sequence[str] | str, name: str) -> tuple[str, ...]:
    """The aliases as a tuple of names (one string is one alias, not its letters), each checked as a name is."""
    items = (aliases,) if isinstance(aliases, str) else tuple(aliases)
    return tuple(_tool_name(a) for a in items if a != name)


def _check_callable(func: object) -> None:
    """A ConfigError unless a call's named arguments can run `func` and its return value is the result."""
    if not callable(func):
        raise ConfigError(f"a tool must be a function or a Tool, got {type(func).__name__}")
    # Not repr(func): a partial's repr shows the values it binds, an API key among them.
    label = getattr(func, "__qualname__", None) or default_name(func)
    if inspect.isclass(func) or inspect.isclass(described(func)):   # a partial of a class makes an object too
        raise ConfigError(f"{label} is a class: a tool is a function (one that makes and uses the object)")
    if inspect.isgeneratorfunction(described(func)) or inspect.isasyncgenfunction(described(func)):
        raise ConfigError(f"{label} is a generator function: a tool returns its result (collect the items into a "
                          "list and return it)")
    try:
        parameters = list(tool_signature(func).parameters.values())
    except (TypeError, ValueError) as err:
        if isinstance(func, functools.partial):
            # Not err: inspect's message holds the partial's repr, with the values it binds (an API key).
            keywords = ", ".join(sorted(partial_keywords(func)))
            raise ConfigError(f"{label}: the partial's arguments ({len(func.args)} by position; by keyword: "
                              f"{keywords or 'none'}) do not fit its function's parameters") from None
        raise ConfigError(f"{label}: its signature cannot be read ({err}), so a call cannot be bound to it: wrap it in "
                          "a typed function") from None
    for p in parameters:
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise ConfigError(f"{label}: a call gives named arguments, so *{p.name} or **{p.name} would get none: "
                              "name each parameter")
    if parameters and parameters[0].name in ("self", "cls") and parameters[0].annotation is inspect.Parameter.empty:
        raise ConfigError(f"{label}: its first parameter {parameters[0].name!r} would never be given; register the "
                          f"bound method (an_object.{getattr(func, '__name__', 'method')}) instead")
