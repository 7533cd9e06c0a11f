"""Typed, Google-docstringed functions → JSON schemas (as transformers' get_json_schema makes them) and text → typed values."""
from __future__ import annotations

import contextvars
import dataclasses
import datetime as dt
import decimal
import enum
import functools
import inspect
import json
import math
import pathlib
import re
import sys
import threading
import types
import typing
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from .binding import Mismatch, integer_text, json_value, number_text
from .errors import ConfigError, MissingDependencyError, ToolArgumentError

# JSON type names of the Python scalars a schema "enum" may hold.
_SCALARS: dict[type, str] = {int: "integer", float: "number", str: "string", bool: "boolean", type(None): "null"}
# Bare types we know how to describe; anything else (a custom class) is refused rather than guessed.
_BARE: dict[Any, dict[str, Any]] = {
    int: {"type": "integer"}, float: {"type": "number"}, str: {"type": "string"}, bool: {"type": "boolean"},
    type(None): {"type": "null"}, list: {"type": "array"}, tuple: {"type": "array"}, dict: {"type": "object"}, Any: {},
}
_SECTION_HEADS = ("Args:", "Returns:", "Raises:")
# One "name (type): description" line of an Args block; the "(type)" part is optional and ignored.
_ARG_HEAD = re.compile(r"([ \t]*)(\w+)(?:[ \t]*\([^()\n]*\))?:")
_CHOICES = re.compile(r"\(choices:\s*(.*?)\)\s*$", re.IGNORECASE)


class SchemaError(ConfigError):
    """A function's type hints or docstring cannot be turned into a tool schema."""


#: The most tools one prompt is offered (OpenAI's limit on a request's tools: a chat request to `toolcall serve`, or one
#: MCP server's listing), and how deep a tool's parameter schema from elsewhere may nest (objects in arrays in ...).
MAX_OFFERED_TOOLS = 128
MAX_SCHEMA_DEPTH = 32
#: The most objects and lists the parameter schemas of one request's functions may hold together: each is checked
#: against JSON Schema's meta-schema, at about 0.2 ms an object, so a 1 MB body of `{"allOf": [{}, {}, ...]}` held
#: the server for 80 s. 128 functions of 64 each fit.
MAX_SCHEMA_NODES = 8_192


def nesting_depth(value: Any, limit: int) -> int:
    """How deeply a JSON value (a schema from elsewhere) nests lists and objects, counted without recursion, so a
    hostile one cannot exhaust the stack; past `limit` counting stops, and the result is then over `limit`."""
    deepest, todo = 0, [(value, 1)]
    while todo and deepest <= limit:
        item, level = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            todo.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def meta_schema_problem(schema: Any) -> str | None:
    """Why `schema` is not a valid JSON Schema (checked against the 2020-12 meta-schema, with `jsonschema`, which
    the serve and mcp extras bring), or None. Bound its size first (json_nodes): the check takes ~0.2 ms an object."""
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped, unused-ignore]
    from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped, unused-ignore]

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as err:
        where = "/".join(str(p) for p in err.path) or "the schema"
        return f"not a valid JSON Schema at {where}: {short_json(err.instance)} ({err.validator} {short_json(err.validator_value)})"
    return None


#: Keyword checks one validation may make: BASE_CHECKS, and CHECKS_PER_PAIR for each pair of a part of the value (an
#: object, list or scalar) and an object of the schema, up to MAX_CHECKS (about 10 s). A schema read once per part of
#: the value fits (a list of 150 codes against a oneOf of 250 documented consts takes ~110,000); one whose anyOf
#: options lead through `$ref`s to the same definitions again takes time exponential in its depth (42 s for 18 levels
#: of a 2 KB schema) and is stopped.
BASE_CHECKS = 20_000
CHECKS_PER_PAIR = 4
MAX_CHECKS = 1_000_000

_checks_left: contextvars.ContextVar[list[int]] = contextvars.ContextVar("toolcall_schema_checks")


class _TooManyChecks(Exception):
    pass


def schema_violation(value: Any, schema: Any) -> str | None:
    """Where and how `value` breaks the JSON schema `schema` (the first error jsonschema finds, cut to 200
    characters), or None when it follows it. `schema` passed meta_schema_problem; its regexes run as Python's. A
    schema that needs more than BASE_CHECKS + CHECKS_PER_NODE per part of the value to check it is a violation."""
    pairs = _parts(value, MAX_CHECKS) * _parts(schema, MAX_CHECKS, objects_only=True)
    budget = min(MAX_CHECKS, BASE_CHECKS + CHECKS_PER_PAIR * pairs)
    token = _checks_left.set([budget])
    try:
        error = next(iter(_budgeted_validator()(schema).iter_errors(value)), None)
    except _TooManyChecks:
        return (f"the arguments: checking them against this schema took more than {budget:,} steps (its anyOf/oneOf "
                "options, followed through $ref, multiply); a schema that branches less, or smaller arguments, can "
                "be checked")
    finally:
        _checks_left.reset(token)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "the arguments"
    message = f"{where}: {error.message}"
    return message if len(message) <= 200 else message[:197] + "..."


@functools.cache
def _budgeted_validator() -> Any:
    """Draft 2020-12's validator whose every keyword check spends one of the steps schema_violation allows."""
    from jsonschema import Draft202012Validator, validators  # type: ignore[import-untyped, unused-ignore]

    def budgeted(check: Callable[..., Any]) -> Callable[..., Any]:
        def run(validator: Any, wanted: Any, instance: Any, schema: Any) -> Any:
            left = _checks_left.get()
            left[0] -= 1
            if left[0] < 0:
                raise _TooManyChecks
            errors = check(validator, wanted, instance, schema)
            if errors is not None:
                yield from errors
        return run

    return validators.extend(Draft202012Validator, {keyword: budgeted(check) for keyword, check
                                                    in Draft202012Validator.VALIDATORS.items()})


def _parts(value: Any, limit: int, *, objects_only: bool = False) -> int:
    """How many objects, lists and scalars (`objects_only`: objects) a JSON value holds, counted up to `limit`."""
    count, todo = 0, [value]
    while todo and count < limit:
        item = todo.pop()
        count += 1 if not objects_only or isinstance(item, dict) else 0
        if isinstance(item, dict | list):
            todo.extend(item.values() if isinstance(item, dict) else item)
    return count


def short_json(value: Any) -> str:
    """`value` as JSON for an error message, cut to 60 characters (a pydantic model as its own JSON)."""
    dump = getattr(value, "model_dump_json", None)
    text = dump() if callable(dump) else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def json_nodes(value: Any, limit: int) -> int:
    """How many objects and lists a JSON value holds, counted without recursion; past `limit` counting stops, and the
    result is then over `limit`."""
    count, todo = 0, [value]
    while todo and count <= limit:
        item = todo.pop()
        if isinstance(item, dict | list):
            count += 1
            todo.extend(item.values() if isinstance(item, dict) else item)
    return count


# ---------------------------------------------------------------------------------------------- docstrings

def _first(text: str, markers: Sequence[str], start: int = 0) -> int:
    """Index of the earliest of `markers` in text[start:], or len(text)."""
    hits = [i for i in (text.find(m, start) for m in markers) if i >= 0]
    return min(hits) if hits else len(text)


def parse_docstring(doc: str) -> tuple[str, dict[str, str], str | None]:
    """Split a Google-style docstring into (description, {arg: description}, returns description or None)."""
    description = doc[:_first(doc, _SECTION_HEADS)].strip()
    args: dict[str, str] = {}
    head = re.search(r"\n\s*Args:\n", doc)
    if head:
        block = doc[head.end():_first(doc, ("Returns:", "Raises:"), head.end())]
        args = _parse_args_block(block)
    returns = None
    head = re.search(r"\n\s*Returns:\n", doc)
    if head:
        returns = doc[head.end():_first(doc, ("Raises:",), head.end())].strip()
    return description, args, returns


def other_style_docstring(doc: str, names: Sequence[str] = ()) -> tuple[str, dict[str, str], str | None] | None:
    """(description, {arg: description}, returns description) of a Sphinx (`:param name: ...`), NumPy
    (`Parameters` / `----------`), Epydoc (`@param name: ...`) or Google docstring with another head (`Arguments:`,
    `Parameters:`), read by docstring_parser: the style that describes the most of the function's arguments `names`
    (any entries, without names); None for a docstring in none of them. A class's `Attributes:` are not arguments,
    nor is a `Yields:` its return. Each description is joined onto one line, as a Google one is read."""
    try:
        import docstring_parser
    except ImportError as err:   # a core dependency; an install that lost it still reads Google docstrings
        raise MissingDependencyError("docstring_parser", None, "Sphinx and NumPy docstrings") from err
    wanted = set(names)
    best: Any = None
    best_args: dict[str, str] = {}
    best_covered = -1
    styles = docstring_parser.DocstringStyle
    # Google's own too: transformers reads only an "Args:" head, not "Arguments:" or "Parameters:".
    for style in (styles.REST, styles.NUMPYDOC, styles.GOOGLE, styles.EPYDOC):
        try:
            parsed = docstring_parser.parse(doc, style=style)
        except Exception:  # noqa: BLE001 - ParseError, and an IndexError of its own for a line such as ": :"
            continue
        args: dict[str, str] = {}
        for param in parsed.params:
            if param.args and param.args[0] == "attribute":
                continue
            text = _SECTION_AFTER.split(param.description or "", 1)[0]   # not the Attributes: block after it
            if style is styles.GOOGLE:
                text = _numpy_body(doc, param.arg_name, text)
            for name in param.arg_name.split(","):   # NumPy's `x, y : float` describes both
                if name.strip() and text.strip():
                    args.setdefault(name.strip(), _one_line(text))
        covered = len(wanted & set(args)) if wanted else len(args)
        if args and covered > best_covered:
            best, best_args, best_covered = parsed, args, covered
    if best is None:
        return None
    returns = best.returns
    text = returns.description if returns is not None and not returns.is_generator and returns.description else None
    return (best.description or "").strip(), best_args, None if text is None else _one_line(text)


#: A line that is alone the head of a section no argument's description goes on into (`Attributes:`), which ends
#: the entry before it: the Sphinx reader takes it, and what follows, as more of that entry.
_SECTION_AFTER = re.compile(r"\n[ \t]*(?:Attributes|Returns|Raises|Yields):[ \t]*(?:\n|$)")


def _numpy_body(doc: str, name: str, text: str) -> str:
    """A Google reading's description of `name` without its first line where the docstring writes the entry as
    NumPy does under a Google head (`query : str`, then the description below): that line is its type."""
    first, _, rest = text.partition("\n")
    entry = re.compile(rf"^[ \t]*{re.escape(name.strip())}[ \t]+:[ \t]*{re.escape(first.strip())}[ \t]*$", re.MULTILINE)
    return rest if rest.strip() and first.strip() and entry.search(doc) else text


_SPHINX_FIELD = re.compile(r"(?:^|\s):(?:param|type|arg|argument|key|keyword|raises?|returns?|rtype)\b")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def annotated_docs(func: Callable[..., Any]) -> dict[str, str]:
    """{arg: description} from the arguments' hints: `Annotated[str, "The city"]` (as LangChain and AutoGen read
    it), `Annotated[str, Field(description=...)]` (pydantic, as FastMCP reads it) or `Annotated[str, Doc(...)]`
    (PEP 727's typing_extensions.Doc); the first such metadata of each."""
    try:
        hints = get_type_hints(described(func), include_extras=True)
    except Exception:  # noqa: BLE001 - parameters_schema has already said why the hints cannot be read
        return {}
    out: dict[str, str] = {}
    for name, hint in hints.items():
        if name == "return":
            continue
        # `Optional[Annotated[int, "..."]]` and `Annotated[int, "..."] | None` describe the argument too.
        options = [hint, *get_args(hint)] if get_origin(hint) in (Union, types.UnionType) else [hint]
        for option in options:
            text = _annotated_text(option)
            if text is not None:
                out[name] = text
                break
    return out


def _annotated_text(hint: Any) -> str | None:
    if get_origin(hint) is not typing.Annotated:
        return None
    for meta in hint.__metadata__:
        text = meta if isinstance(meta, str) else getattr(meta, "description", None)
        if text is None and type(meta).__name__ == "Doc":
            text = getattr(meta, "documentation", None)
        if isinstance(text, str) and text.strip():
            return _one_line(text)
    return None


def _parse_args_block(block: str) -> dict[str, str]:
    """Entries start at a `name:` line; a later `name:` line ends one unless it is indented deeper than it."""
    lines = [line for line in block.split("\n") if line.strip()]
    entries: list[tuple[str, str, list[str]]] = []  # (indent, name, description pieces)
    for line in lines:
        m = _ARG_HEAD.match(line)
        current = entries[-1] if entries else None
        deeper = current is not None and line.startswith(current[0]) and line[len(current[0]):][:1] in (" ", "\t")
        if m and not deeper:
            entries.append((m.group(1), m.group(2), [line[m.end():].strip()]))
        elif current is not None:
            current[2].append(line.strip())
    return {name: " ".join(p for p in pieces if p) for _, name, pieces in entries}


# ---------------------------------------------------------------------------------------------- type hints

def _enum_schema(values: list[Any]) -> dict[str, Any]:
    kinds = list(dict.fromkeys(_SCALARS[type(v)] for v in values))
    return {"type": kinds[0] if len(kinds) == 1 else kinds, "enum": values}


def type_schema(hint: Any) -> dict[str, Any]:
    """The JSON schema fragment for one type hint (raises SchemaError for hints with no JSON equivalent)."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is None and isinstance(hint, type) and issubclass(hint, enum.Enum):
        values = [member.value for member in hint]
        if not values or any(type(v) not in _SCALARS for v in values):
            raise SchemaError(f"Enum {hint.__name__} needs members whose values are JSON scalars (str, int, float, bool, None)")
        return _enum_schema(values)
    if origin is None:
        try:
            found = _BARE.get(hint)
        except TypeError:  # unhashable annotation objects
            found = None
        if found is None:
            fields = record_fields(hint)
            if fields is not None:
                return _record_schema(hint, fields)
            written = _WRITTEN.get(hint) if isinstance(hint, type) else None
            if written is not None:
                return dict(written[0])
            if hint is decimal.Decimal:  # money: a number in the call, exact in the function
                return {"type": "number"}
            raise SchemaError(f"cannot describe type hint {hint!r} in JSON schema; use str, int, float, bool, "
                              "Enum, Literal, a Decimal, date, time, datetime, UUID or Path, a dataclass, TypedDict or "
                              "pydantic model, or list/tuple/dict/Union of those")
        return dict(found)
    if origin is Union or origin is types.UnionType:
        parts = [type_schema(t) for t in args if t is not type(None)]
        if len(parts) == 1:
            out = parts[0]
        elif all(p.keys() == {"type"} and isinstance(p["type"], str) for p in parts):
            kinds = sorted({p["type"] for p in parts})
            out = {"type": kinds[0] if len(kinds) == 1 else kinds}
        else:
            out = {"anyOf": parts}  # parts with items/enum keys would lose them in a plain type list
        if type(None) in args:
            out["nullable"] = True
        return out
    if origin is Literal and args:
        if any(type(a) not in _SCALARS for a in args):
            raise SchemaError(f"Literal values must be JSON scalars, got {args!r}")
        return _enum_schema(list(args))
    if origin is list:
        return {"type": "array", "items": type_schema(args[0])} if args else {"type": "array"}
    if origin is tuple:
        if not args:
            return {"type": "array"}
        if len(args) == 1 or ... in args:
            raise SchemaError(f"tuple hint {hint!r} is not supported: use list[...] for variable length, or two or more fixed items")
        return {"type": "array", "prefixItems": [type_schema(t) for t in args]}
    if origin is dict:
        out = {"type": "object"}
        if len(args) == 2:
            out["additionalProperties"] = type_schema(args[1])
        return out
    raise SchemaError(f"cannot describe type hint {hint!r} in JSON schema")


#: Types a call writes as a string in a set form (transformers refuses them): each with its schema and how its text
#: is read. A datetime is not a date here: the table is looked up by the exact type.
#: Patterns, not JSON Schema's formats, for dates and times: a constrained call is held to the schema, and the
#: formats are RFC 3339's (a time must carry an offset; "14:30" is refused, "23:59:60Z" and "0000-01-01" allowed),
#: not what `fromisoformat` reads. These allow what it reads, an offset optional (February 29 in any year).
_YEAR = r"(?:[0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})"
_MONTH_DAY = r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-9])|(?:0[13-9]|1[0-2])-30|(?:0[13578]|1[02])-31)"
_CLOCK = r"(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?"
_WRITTEN: dict[type, tuple[dict[str, Any], Callable[[str], Any], str]] = {
    dt.date: ({"type": "string", "pattern": f"^{_YEAR}-{_MONTH_DAY}$"}, dt.date.fromisoformat,
              "a date written YYYY-MM-DD"),
    dt.datetime: ({"type": "string", "pattern": f"^{_YEAR}-{_MONTH_DAY}[T ]{_CLOCK}$"}, dt.datetime.fromisoformat,
                  "a date and time written as ISO 8601 (2026-12-07T14:30:00, an offset such as +01:00 optional)"),
    dt.time: ({"type": "string", "pattern": f"^{_CLOCK}$"}, dt.time.fromisoformat,
              "a time written HH:MM or HH:MM:SS (an offset such as +01:00 optional)"),
    uuid.UUID: ({"type": "string", "format": "uuid"}, uuid.UUID, "a UUID"),
    pathlib.Path: ({"type": "string"}, pathlib.Path, "a path"),
}


@dataclasses.dataclass(frozen=True)
class RecordFields:
    """The fields of a dataclass, TypedDict or pydantic model as a call writes them: by the key a JSON object holds
    each under (a pydantic field's alias), its type hint, whether it is required, its description if it has one."""

    hints: dict[str, Any]
    required: tuple[str, ...]
    descriptions: dict[str, str]


def record_fields(hint: Any) -> RecordFields | None:
    """The fields of `hint` if it is a dataclass, TypedDict or pydantic model type, else None. transformers refuses
    these; a tool that takes one is described as an object of its fields, and a call's object becomes one."""
    if not isinstance(hint, type) or hint in _BARE_TYPES:
        return None
    try:
        return _FIELDS[hint]
    except (KeyError, TypeError):
        pass
    fields = _read_fields(hint)
    try:
        _FIELDS[hint] = fields
    except TypeError:  # a type that cannot be weakly referenced is read again each time
        pass
    return fields


try:  # pydantic asks for typing_extensions' TypedDict on Python < 3.12; its classes are TypedDicts too
    import typing_extensions as _te
except ImportError:  # pragma: no cover - it comes with pydantic and most installs
    _te = None  # type: ignore[assignment]
_NOT_REQUIRED = {typing.NotRequired} | ({_te.NotRequired} if _te else set())
_REQUIRED = {typing.Required} | ({_te.Required} if _te else set())


def _is_typeddict(hint: Any) -> bool:
    return typing.is_typeddict(hint) or (_te is not None and _te.is_typeddict(hint))


def _dataclass_fields(hint: type) -> RecordFields:
    """What a dataclass's constructor takes (its InitVars too, not its `init=False` fields; a constructor of its
    own by its own parameters), each by its hint."""
    own: dict[str, Any] = {}
    try:
        own = get_type_hints(getattr(hint, "__init__"))  # noqa: B009 - mypy refuses hint.__init__ on a type
    except Exception:  # noqa: BLE001 - a generated constructor's hints are the fields'
        pass
    fields = get_type_hints(hint)
    hints: dict[str, Any] = {}
    required: list[str] = []
    for param in list(inspect.signature(hint).parameters.values()):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise SchemaError(f"{hint.__name__}: its constructor takes *{param.name}, which a call's object cannot "
                              "describe")
        found = own.get(param.name, fields.get(param.name))
        if found is None:
            raise SchemaError(f"{hint.__name__}: its constructor's argument {param.name!r} has no type hint")
        hints[param.name] = found.type if isinstance(found, dataclasses.InitVar) else found
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
    described = {f.name: f.metadata["description"] for f in dataclasses.fields(hint)
                 if isinstance(f.metadata.get("description"), str) and f.name in hints}
    return RecordFields(hints, tuple(required), described)


def _validation_key(hint: type, name: str, field: Any) -> str:
    """The key pydantic reads a field under: its validation alias, its alias, or its name."""
    alias = getattr(field, "validation_alias", None)
    if alias is not None and not isinstance(alias, str):
        raise SchemaError(f"{hint.__name__}.{name}: a validation alias of several names or a path "
                          f"({type(alias).__name__}) cannot be written as one key; give it a str alias")
    return alias or getattr(field, "alias", None) or name


#: Weakly, as _HINTS: a class made per session goes with its session.
_FIELDS: weakref.WeakKeyDictionary[type, RecordFields | None] = weakref.WeakKeyDictionary()
_BARE_TYPES = (int, float, str, bool, list, tuple, dict, type(None))


def _read_fields(hint: type) -> RecordFields | None:
    try:
        if dataclasses.is_dataclass(hint):
            return _dataclass_fields(hint)
        if _is_typeddict(hint):
            hints = get_type_hints(hint)
            required = set(getattr(hint, "__required_keys__", hints))
            # Under postponed annotations the class saw NotRequired[...] as text and counted the key required.
            for key, marked in get_type_hints(hint, include_extras=True).items():
                while get_origin(marked) is typing.Annotated:
                    marked = get_args(marked)[0]
                if get_origin(marked) in _NOT_REQUIRED:
                    required.discard(key)
                elif get_origin(marked) in _REQUIRED:
                    required.add(key)
            return RecordFields(hints, tuple(n for n in hints if n in required), {})
        model_fields = getattr(hint, "model_fields", None)
        if isinstance(model_fields, dict) and callable(getattr(hint, "model_validate", None)):
            keys = {name: _validation_key(hint, name, f) for name, f in model_fields.items()}
            return RecordFields({keys[n]: f.annotation for n, f in model_fields.items()},
                                tuple(keys[n] for n, f in model_fields.items() if f.is_required()),
                                {keys[n]: f.description for n, f in model_fields.items()
                                 if isinstance(getattr(f, "description", None), str)})
    except SchemaError:
        raise
    except Exception as err:  # noqa: BLE001 - a hint naming what cannot be imported here, and the like
        raise SchemaError(f"cannot read the fields of {hint.__name__} ({err})") from err
    return None


#: The record types being described on this thread: a type that holds itself (a tree of nodes) has no finite schema.
_DESCRIBING = threading.local()


def _record_schema(hint: type, fields: RecordFields) -> dict[str, Any]:
    within: list[type] = _DESCRIBING.__dict__.setdefault("types", [])
    if hint in within:
        raise SchemaError(f"{hint.__name__} holds itself (through {' -> '.join(t.__name__ for t in within)}): "
                          "a recursive type has no JSON schema here; take its JSON as a dict or a str")
    within.append(hint)
    try:
        properties: dict[str, Any] = {}
        for key, field_hint in fields.hints.items():
            properties[key] = type_schema(field_hint)
            if key in fields.descriptions:
                properties[key]["description"] = fields.descriptions[key]
    finally:
        within.pop()
    # No other keys: a call's object with one is refused when it is read, so a constrained call must not write one.
    out: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if fields.required:
        out["required"] = list(fields.required)
    return out


def _receiver(sig: inspect.Signature) -> str | None:
    """The implicit `self`/`cls` of a method (first parameter, unannotated), which the model never fills."""
    first = next(iter(sig.parameters.values()), None)
    if first is not None and first.name in ("self", "cls") and first.annotation is inspect.Parameter.empty:
        return first.name
    return None


def described(func: Callable[..., Any]) -> Callable[..., Any]:
    """The function whose name, docstring and type hints describe a tool's callable: a `functools.partial`'s function
    (a bound key or client is the caller's), an object's own `__call__` method (an object made with its settings), a
    wrapper object's function where the wrapper keeps no annotations of its own (a `toolcall.Tool`); `func` itself for
    a function, a method, a class or a decorated function."""
    for _ in range(64):   # partials flatten when made, but one built by hand can wrap another
        if isinstance(func, functools.partial):
            func = func.func
        elif _bare_wrapper(func):
            func = typing.cast(Any, func).__wrapped__
        else:
            call = object_call(func)
            return func if call is None else call
    return func


def _bare_wrapper(func: object) -> bool:
    """An object (not a function or a class) that says what it wraps (`__wrapped__`) but keeps none of its annotations,
    as `functools.update_wrapper` copies them: a Tool, whose own class annotations are its dataclass fields."""
    return (not inspect.isroutine(func) and not inspect.isclass(func) and hasattr(func, "__wrapped__")
            and "__annotations__" not in getattr(func, "__dict__", {}))


def partial_keywords(func: Any) -> set[str]:
    """The names of the keywords a `functools.partial` (and any partial it wraps) binds; none for anything else."""
    names: set[str] = set()
    for _ in range(64):
        if not isinstance(func, functools.partial):
            break
        names.update(func.keywords)
        func = func.func
    return names


def _unpartial(func: Any) -> Any:
    for _ in range(64):
        if not isinstance(func, functools.partial):
            break
        func = func.func
    return func


def object_call(func: object) -> Callable[..., Any] | None:
    """An instance's own `__call__`, bound as calling the instance binds it (a plain function, a staticmethod or a
    classmethod of a class of the user's), for an object that is not a function, a method, a class, a C callable or a
    decorator's wrapper (which says what it wraps through __wrapped__); None otherwise."""
    if inspect.isroutine(func) or inspect.isclass(func) or hasattr(func, "__wrapped__"):
        return None
    raw = next((vars(base)["__call__"] for base in type(func).__mro__ if "__call__" in vars(base)), None)
    if isinstance(raw, staticmethod | classmethod) and inspect.isfunction(raw.__func__):
        bound: Callable[..., Any] = raw.__get__(func, type(func))
        return bound
    return types.MethodType(raw, func) if inspect.isfunction(raw) else None


def _docstring(func: Callable[..., Any]) -> str | None:
    """What describes `func`: the docstring of what `described` finds, or for a callable object its __call__'s own
    docstring, else its class's (not one inspect finds on a base class: `type.__call__`'s "Call self as a function")."""
    target = _unpartial(func)
    while _bare_wrapper(target):
        target = _unpartial(target.__wrapped__)
    call = object_call(target)
    if call is not None:
        raw = getattr(call, "__func__", call).__doc__ or type(target).__doc__
        return inspect.cleandoc(raw) if raw else None
    return inspect.getdoc(described(func))


def tool_signature(func: Callable[..., Any]) -> inspect.Signature:
    """The parameters a call fills: `func`'s signature without the keywords a `functools.partial` bound (an API key
    given there is not the model's to see, or to set), which inspect keeps as keyword-only parameters with the bound
    value as their default."""
    target = _unpartial(func)
    call = object_call(target)
    if call is not None:   # inspect reads an object's staticmethod __call__ as if its first parameter were self
        if func is target:
            func = call
        elif isinstance(func, functools.partial) and func.func is target:
            func = functools.partial(call, *func.args, **func.keywords)
    sig = inspect.signature(func)
    bound = partial_keywords(func)
    if bound:
        sig = sig.replace(parameters=[p for p in sig.parameters.values() if p.name not in bound])
    return sig


def default_name(func: Callable[..., Any]) -> str:
    """The name a tool made from `func` has unless one is given: a function's own, a partial's function's, a callable
    object's class name."""
    inner = _unpartial(func)
    if object_call(inner) is not None:
        return type(inner).__name__
    return str(getattr(inner, "__name__", "operation"))


def parameters_schema(func: Callable[..., Any]) -> dict[str, Any]:
    """The "parameters" object (plus a "return" entry in properties when the return hint is describable)."""
    name = default_name(func)
    sig = tool_signature(func)
    skip = _receiver(sig)
    required = []
    for pname, param in sig.parameters.items():
        if pname == skip:
            continue
        if param.annotation is inspect.Parameter.empty:
            raise SchemaError(f"tool function {name}: argument {pname!r} has no type hint")
        if param.default is inspect.Parameter.empty:
            required.append(pname)
    try:
        hints = get_type_hints(described(func))
    except Exception as err:  # NameError for a hint naming something not importable here, and the like
        raise SchemaError(f"tool function {name}: cannot resolve its type hints ({err})") from err
    properties: dict[str, Any] = {}
    for pname, hint in hints.items():
        if pname == skip:
            continue
        if pname == "return":
            try:  # the model never writes the return value, so an odd return hint is left out, not an error
                properties[pname] = type_schema(hint)
            except SchemaError:
                pass
        elif pname in sig.parameters:   # a bound method's signature leaves out its receiver, annotated or not
            properties[pname] = type_schema(hint)
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    return out


def function_schema(func: Callable[..., Any], name: str | None = None) -> dict[str, Any]:
    """{"type": "function", "function": {name, description, parameters[, return]}}, equal to transformers' get_json_schema(func)."""
    fname = default_name(func)
    doc = _docstring(func)
    if not doc:
        raise SchemaError(f"tool function {fname} has no docstring; write a Google-style one with an Args: section")
    description, arg_docs, return_doc = parse_docstring(doc.strip())
    params = parameters_schema(func)
    ret = params["properties"].pop("return", None)
    if any(arg not in arg_docs for arg in params["properties"]):
        # transformers refuses this function; read what else the function says of its arguments, as a user expects.
        other = other_style_docstring(doc, list(params["properties"]))
        if other is not None:
            if not arg_docs:   # no Args: section, so the Google reading took the `:param` lines for description
                description = other[0]
            # A Google entry read on into the Sphinx lines after it ends where they start.
            arg_docs = {**other[1], **{k: _SPHINX_FIELD.split(v, 1)[0].strip() for k, v in arg_docs.items()}}
            return_doc = return_doc if return_doc is not None else other[2]
        arg_docs = {**annotated_docs(func), **arg_docs}
    if ret is not None and return_doc is not None:
        ret["description"] = return_doc
    for arg, schema in params["properties"].items():
        if arg not in arg_docs:
            raise SchemaError(f"tool function {fname}: the docstring has no description for argument {arg!r}; write "
                              "one in its Args: section (Google style; a Sphinx `:param name:` line or a NumPy "
                              "Parameters section is read too), or give the argument's hint as "
                              "Annotated[type, \"description\"]")
        text = arg_docs[arg]
        choices = _CHOICES.search(text)
        if choices:
            try:
                values = json.loads(choices.group(1))
            except json.JSONDecodeError as err:
                raise SchemaError(f"tool function {fname}: argument {arg!r} has choices that are not a JSON list: {choices.group(1)!r}") from err
            if not isinstance(values, list):   # (choices: 5) was a bare TypeError
                raise SchemaError(f"tool function {fname}: argument {arg!r} has choices that are not a JSON list: "
                                  f"{choices.group(1)!r}")
            schema["enum"] = [v.strip() if isinstance(v, str) else v for v in values]
            text = text[:choices.start()].strip()
        schema["description"] = text
    function: dict[str, Any] = {"name": name or fname, "description": description, "parameters": params}
    if ret is not None:
        function["return"] = ret
    return {"type": "function", "function": function}


# ---------------------------------------------------------------------------------------------- Python values

_TRUE = {"true", "yes", "y", "on", "1", "t"}
_FALSE = {"false", "no", "n", "off", "0", "f"}
_NONE = {"none", "null", "nil", ""}


def _kind_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint)


#: Key types read from a JSON key's text; any other key hint (str, a NewType or Annotated of it, a class) gets the
#: text as it is, as before keys were typed.
_KEY_TYPES = (int, float, bool, decimal.Decimal)


def _key(key: Any, hint: Any) -> Any:
    """An object's key (JSON's keys are text) as the key type of a `dict[K, V]` hint: `dict[int, str]` gets int keys,
    and a key that is no K is a Mismatch (string keys reached the function, and "x" was taken for an int). A key hint
    that is not a number, a boolean, an Enum or a Literal (or a union of them) takes the key as text."""
    while get_origin(hint) is typing.Annotated:
        hint = get_args(hint)[0]
    while hasattr(hint, "__supertype__"):   # a NewType
        hint = hint.__supertype__
    kinds = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
    if not all(k in _KEY_TYPES or k is type(None) or get_origin(k) is Literal
               or (isinstance(k, type) and issubclass(k, enum.Enum)) for k in kinds):
        return str(key)
    try:
        return _coerce(str(key), hint)
    except Mismatch as err:
        raise Mismatch(f"an object whose keys are each {err} (got the key {json.dumps(str(key))[:60]})") from None


def _coerce(value: Any, hint: Any) -> Any:
    """`value` (a bound JSON value, or text where the schema said less than the hint) converted to `hint`, or
    Mismatch naming what was expected."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any or hint is inspect.Parameter.empty:
        return value
    text = value.strip() if isinstance(value, str) else None
    if origin is Union or origin is types.UnionType:
        if any(type(value) is a for a in args):
            return value  # already one of the types: "02134" for str | int stays the string it was bound as
        # "None" or "" for a Path is a path, as for a str (the str case returned above).
        if type(None) in args and (value is None or (text is not None and text.lower() in _NONE
                                                     and pathlib.Path not in args)):
            return None
        wanted = []
        for sub in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, sub)
            except Mismatch as err:
                wanted.append(str(err))
        raise Mismatch(" or ".join(wanted))
    if origin is Literal:
        for choice in args:
            try:
                if _coerce(value, type(choice)) == choice:
                    return choice
            except Mismatch:
                continue
        raise Mismatch("one of " + ", ".join(json.dumps(c) for c in args))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        for member in hint:
            if value == member.value or value is member or (text is not None and text in (str(member.value), member.name)):
                return member
        raise Mismatch("one of " + ", ".join(json.dumps(m.value) for m in hint))
    if hint is str:
        return value if isinstance(value, str) else (json.dumps(value) if isinstance(value, (list, dict)) else str(value))
    if hint is bool:
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise Mismatch("a boolean (true/false, yes/no)")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if text is not None and (whole := integer_text(text)) is not None:
            return whole
        raise Mismatch("an integer")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, int) and abs(value) > sys.float_info.max:
                raise Mismatch("a number within a float's range (about ±1.8e308)")
            if isinstance(value, float) and not math.isfinite(value):
                raise Mismatch("a finite number (within about ±1.8e308)")
            return float(value)
        if text is not None:
            return float(number_text(text))
        raise Mismatch("a number")
    if hint is type(None):
        if value is None or (text is not None and text.lower() in _NONE):
            return None
        raise Mismatch("null")
    if hint in (list, tuple) or origin in (list, tuple, Sequence, typing.Sequence):
        items = value
        if text is not None:
            items = json_value(text, "a list") if text.startswith("[") else [p.strip() for p in text.split(",")] if text else []
        if not isinstance(items, (list, tuple)):
            raise Mismatch("a list")
        if origin is tuple and args and ... not in args:
            if len(items) != len(args):
                raise Mismatch(f"a list of {len(args)} items")
            return tuple(_coerce(v, a) for v, a in zip(items, args))
        item_hint = args[0] if args else Any
        out = [_coerce(v, item_hint) for v in items]
        return tuple(out) if (hint is tuple or origin is tuple) else out
    if hint is dict or origin in (dict, Mapping, typing.Mapping):
        mapping = json_value(text, "an object") if text is not None else value
        if not isinstance(mapping, dict):
            raise Mismatch("an object written as JSON")
        if len(args) == 2:
            keyed: dict[Any, Any] = {}
            for k, v in mapping.items():
                key = _key(k, args[0])
                if key in keyed:   # "1" and "01" for dict[int, ...]: one would silently replace the other
                    raise Mismatch(f"an object whose keys are different {_kind_name(args[0])}s (two keys are {key!r})")
                keyed[key] = _coerce(v, args[1])
            return keyed
        return mapping
    fields = record_fields(hint)
    if fields is not None:
        return _record(value, text, hint, fields)
    if isinstance(hint, type) and isinstance(value, hint):
        return value
    if hint is decimal.Decimal:
        return _decimal(value, text)
    written = _WRITTEN.get(hint) if isinstance(hint, type) else None
    if written is not None:
        written_as = value if hint is pathlib.Path else text  # a path's spaces are its own
        if not isinstance(written_as, str) or not written_as or "\0" in written_as:
            raise Mismatch(written[2])
        try:
            return written[1](written_as)
        except ValueError:
            raise Mismatch(written[2]) from None
    raise Mismatch(f"a value of type {getattr(hint, '__name__', hint)}")


def _decimal(value: Any, text: str | None) -> decimal.Decimal:
    """A number as a Decimal: a whole number exactly, a JSON double as it prints (19.99, not its binary value)."""
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if number is None and text is not None:
        number = number_text(text)
    if number is None:
        raise Mismatch("a number")
    if isinstance(number, float) and not math.isfinite(number):
        raise Mismatch("a finite number")
    return decimal.Decimal(number if isinstance(number, int) else repr(number))


def _record(value: Any, text: str | None, hint: type, fields: RecordFields) -> Any:
    """A call's object as the dataclass, TypedDict or pydantic model `hint` (its fields converted one by one)."""
    if not _is_typeddict(hint) and isinstance(value, hint):
        return value
    mapping = json_value(text, "an object") if text is not None else value
    if not isinstance(mapping, dict):
        raise Mismatch(f"an object of {hint.__name__}'s fields")
    missing = [key for key in fields.required if key not in mapping]
    if missing:
        raise Mismatch(f"an object with {', '.join(repr(k) for k in missing)} ({hint.__name__}'s required fields)")
    unknown = [key for key in mapping if key not in fields.hints]
    if unknown:
        raise Mismatch(f"an object of {hint.__name__}'s fields ({', '.join(repr(k) for k in fields.hints)}), "
                       f"not {', '.join(repr(str(k)) for k in unknown[:5])}")
    converted: dict[str, Any] = {}
    for key, item in mapping.items():
        try:
            converted[key] = _coerce(item, fields.hints[key])
        except Mismatch as err:
            raise Mismatch(f"an object whose {key!r} is {err}") from None
    if not _BUILD_RECORDS.get():
        return converted
    try:
        if dataclasses.is_dataclass(hint):
            return hint(**converted)
        if _is_typeddict(hint):
            return converted
        return hint.model_validate(converted)  # type: ignore[attr-defined]
    except Exception as err:  # noqa: BLE001 - the type's own checks (__post_init__, validators) refusing the values
        reason = _validation_errors(err) or error_line(err)
        raise Mismatch(f"a valid {hint.__name__}{f' ({reason})' if reason else ''}") from None


def _validation_errors(err: Exception) -> str:
    """A pydantic ValidationError's first errors as `field: message`, its first line saying only how many."""
    errors = getattr(err, "errors", None)
    if not callable(errors):
        return ""
    try:
        found = errors()
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in found[:3]]
    except Exception:  # noqa: BLE001 - not pydantic's after all
        return ""
    more = f"; and {len(found) - 3} more" if len(found) > 3 else ""
    return "; ".join(parts)[:300] + more


def error_line(err: BaseException) -> str:
    """The first line of an exception's message, at most 200 characters."""
    try:
        line = str(err).strip().splitlines()[0] if str(err).strip() else ""
    except BaseException:  # noqa: BLE001 - a message that cannot be written (SystemExit in __str__) is no message
        return ""
    return line if len(line) <= 200 else line[:197] + "..."


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


#: Weakly: a tool that is dropped (a bound method of a per-session object, a closure) takes its entry with it; held
#: strongly, every such function and what it held stayed alive for the process's life.
_HINTS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    """The resolved type hints of `func`, computed once per function ({} when they cannot be resolved)."""
    key = _hint_source(func)
    try:
        return _HINTS[key]
    except (KeyError, TypeError):
        pass
    try:
        hints = get_type_hints(described(func))
    except Exception:  # noqa: BLE001 - unresolvable forward references: convert nothing rather than fail the call
        hints = {}
    try:
        _HINTS[key] = hints
    except TypeError:  # callables that cannot be hashed or weakly referenced are simply not cached
        pass
    return hints


def python_arguments(func: Callable[..., Any], bound: Mapping[str, Any], *, tool: str,
                     build: bool = True) -> dict[str, Any]:
    """Arguments bound to a tool's JSON schema (toolcall.binding) as the Python types `func`'s hints name: JSON has
    no Enum, tuple or float-that-looks-like-an-int, so `Color.GREEN` arrives as "green" and a `tuple[int, int]` as
    a list. Raises ToolArgumentError when a value cannot become its hint's type or breaks its hint's constraints
    (`constraint_checks`). `build=False` checks the values without building records (dataclasses, pydantic models)
    or checking constraints: record constructors and pydantic validators are the tool's code, and run where the call
    runs, under its time limit (`toolcall.executor.invoke`)."""
    hints, checks = _hints(func), (constraint_checks(func) if build else {})
    out: dict[str, Any] = {}
    token = _BUILD_RECORDS.set(build)
    try:
        for key, value in bound.items():
            try:
                out[key] = _coerce(value, hints.get(key, Any))
            except Mismatch as err:
                raise ToolArgumentError(f"{tool}: argument {key!r} = {_shown(value)} is not valid: "
                                        f"expected {err}") from None
            broken = checks[key](out[key]) if key in checks else None
            if broken is not None:
                raise ToolArgumentError(f"{tool}: argument {key!r} = {_shown(value)} is not valid: {broken}")
    finally:
        _BUILD_RECORDS.reset(token)
    return out


#: Per function, weakly (as _HINTS): {argument: check} for the arguments whose hints carry constraints.
_CHECKS: weakref.WeakKeyDictionary[Any, dict[str, Callable[[Any], str | None]]] = weakref.WeakKeyDictionary()


def constraint_checks(func: Callable[..., Any]) -> dict[str, Callable[[Any], str | None]]:
    """{argument: check(value) -> what is wrong, or None} for each argument whose hint holds constraints in an
    `Annotated` (annotated_types' `Ge(1)`, `Len(1, 3)`, `Predicate`; pydantic's `Field(ge=1, pattern=...)`,
    `StringConstraints`, `constr(...)`, its validators), at any depth (`list[Annotated[int, Field(ge=1)]]`), checked by
    pydantic as pydantic-based tool frameworks check them. The schema stays transformers' (which leaves them out), so
    a value out of bounds is an argument error the model reads. A hint that holds a record (a dataclass, TypedDict or
    pydantic model) is not checked: its record's own code checks its fields. SchemaError when pydantic cannot read a
    constrained hint (a pattern with look-around), MissingDependencyError when pydantic is not installed: checked when
    the tool is made, so no constraint is dropped without a word."""
    key = _hint_source(func)
    try:
        return _CHECKS[key]
    except (KeyError, TypeError):
        pass
    out: dict[str, Callable[[Any], str | None]] = {}
    try:
        hints = get_type_hints(described(func), include_extras=True)
    except Exception:  # noqa: BLE001 - the schema said why already; convert and check nothing
        hints = {}
    for name, hint in hints.items():
        if name != "return" and _constrained(hint):
            out[name] = _pydantic_check(hint, f"tool function {default_name(func)}: argument {name!r}")
    try:
        _CHECKS[key] = out
    except TypeError:
        pass
    return out


def _hint_source(func: Callable[..., Any]) -> Any:
    """What a function's hints are cached by: the function under a partial, a bound method or a callable object
    (one that cannot be hashed, a dataclass with __call__, would otherwise be read again at every call)."""
    inner = described(func)
    return getattr(inner, "__func__", inner)


def _constrained(hint: Any) -> bool:
    """Whether `hint` holds constraint metadata anywhere in it and no record type."""
    found, todo, seen = False, [hint], 0
    while todo and seen < 1_000:
        item, seen = todo.pop(), seen + 1
        if get_origin(item) is typing.Annotated:
            found = found or any(_is_constraint(m) for m in item.__metadata__)
            todo.append(get_args(item)[0])
            continue
        if isinstance(item, type) and record_fields(item) is not None:
            return False
        todo.extend(a for a in get_args(item) if not isinstance(a, str | int | float | bool | enum.Enum | type(None))
                    or isinstance(a, type))
    return found


def _is_constraint(meta: Any) -> bool:
    """annotated_types' metadata and pydantic's (StringConstraints, validators, a Field() with constraints or
    validators in it); not a bare description (a str, Doc, Field(description=...))."""
    module = type(meta).__module__
    if module.startswith("annotated_types"):
        return type(meta).__name__ not in ("DocInfo", "doc")
    if not module.startswith("pydantic"):
        return False
    inner = getattr(meta, "metadata", None)
    if isinstance(inner, list) and type(meta).__name__ == "FieldInfo":
        return bool(inner)
    return True


def _pydantic_check(hint: Any, what: str) -> Callable[[Any], str | None]:
    try:
        from pydantic import TypeAdapter, ValidationError
    except ImportError as err:
        raise MissingDependencyError("pydantic", None, f"checking the constraints of {what}") from err
    try:
        adapter: Any = TypeAdapter(hint)
    except Exception as err:  # noqa: BLE001 - pydantic's own errors: a look-around pattern, a type it cannot read
        raise SchemaError(f"{what}: its constraints cannot be checked ({type(err).__name__}: "
                          f"{str(err).splitlines()[0][:200]})") from None

    def check(value: Any) -> str | None:
        try:
            adapter.validate_python(value)
        except ValidationError as err:
            problems = err.errors(include_url=False)
            message = str(problems[0].get("msg", err)) if problems else str(err)
            return message[:1].lower() + message[1:]
        return None

    return check


#: Whether _coerce builds records or only checks their fields (python_arguments' `build`).
_BUILD_RECORDS: contextvars.ContextVar[bool] = contextvars.ContextVar("toolcall_build_records", default=True)
