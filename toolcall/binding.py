"""Model-written call arguments bound to a tool's JSON schema: by name or by position, each value coerced to its type."""
from __future__ import annotations

import contextvars
import decimal
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ToolArgumentError

__all__ = ["bind_arguments", "integer_text", "parameter_order", "positional_arguments"]

# How models write booleans and nulls as text.
_TRUE = {"true", "yes", "y", "on", "1", "t"}
_FALSE = {"false", "no", "n", "off", "0", "f"}
_NULL = {"none", "null", "nil", ""}
# Integers and decimals with thousands separators, as models write them ("1,200", "2,800.5").
_GROUPED_INT = re.compile(r"[+-]?\d{1,3}(,\d{3})+")
#: The largest whole number a float holds: a "number" past it is refused rather than read as infinity.
_LARGEST_FLOAT = int(sys.float_info.max)
_GROUPED_NUMBER = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?")
# For a value written as text, the JSON types tried in this order; "string" last, so "5" for integer|string is 5,
# and numbers before booleans, so "1" for integer|boolean is 1 ("yes" is still true).
_TEXT_ORDER = ("null", "integer", "number", "boolean", "array", "object", "string")


class Mismatch(ValueError):
    """A value does not fit a schema or a type hint; the message says what was expected."""


#: The largest power of ten an integer written with an exponent may have ("1e300"); past it the text writes none
#: (building 10**(10**9) would take the process's memory).
MAX_INTEGER_EXPONENT = 400


def integer_text(text: str) -> int | None:
    """The integer a text writes ("42", "1,200", "1_000", "3.0", "1e3"), exactly, or None when it writes none
    ("3.5", and "3.0000000000000001", which a float would have rounded to 3)."""
    plain = text.replace("_", "")
    if _GROUPED_INT.fullmatch(plain):
        plain = plain.replace(",", "")
    try:
        return int(plain)
    except ValueError:
        try:
            number = decimal.Decimal(plain.strip())
        except decimal.InvalidOperation:
            return None
        if not number.is_finite() or number.adjusted() > MAX_INTEGER_EXPONENT or number != number.to_integral_value():
            return None
        return int(number)


def parameter_order(parameters: Mapping[str, Any]) -> list[str]:
    """The order positional arguments take: required parameters first, then the optional ones, each in schema order
    (the order toolcall.argument_grammar lets a constrained model write them in)."""
    properties = list(_properties(parameters))
    required = set(_required(parameters))
    return [p for p in properties if p in required] + [p for p in properties if p not in required]


def _properties(parameters: Mapping[str, Any]) -> Mapping[str, Any]:
    """The schema's properties; a malformed entry counts as none (a client's schema is checked where it arrives)."""
    found = parameters.get("properties")
    return found if isinstance(found, Mapping) else {}


def _required(parameters: Mapping[str, Any]) -> list[str]:
    found = parameters.get("required")
    return [n for n in found if isinstance(n, str)] if isinstance(found, (list, tuple)) else []


def bind_arguments(args: Sequence[Any] | Mapping[str, Any], parameters: Mapping[str, Any], *, tool: str,
                   joiner: str = ", ", typed: bool | None = None) -> dict[str, Any]:
    """The model-written arguments of a call of `tool` as the JSON object its `parameters` schema describes.

    A mapping is checked by name; a sequence is mapped in `parameter_order`, and pieces beyond the last parameter are
    joined with `joiner` onto it when it is a string (a dialect may have split `Paris, France` at the comma). Every
    value is coerced to its declared JSON type and checked against its enum. `typed` (default: whether `args` is a
    mapping, as JSON and Python-literal calls give them): the values carry their JSON types, so a string stays the
    string it is where the schema takes a string (`"02134"` for string|integer); a positional call's values are
    text, read as the first type they fit ("5" for integer|string is 5). Raises ToolArgumentError naming the tool,
    the argument, the value and what is allowed.
    """
    if typed is None:
        typed = isinstance(args, Mapping)
    properties = _properties(parameters)
    order = parameter_order(parameters)
    names = ", ".join(order) or "no arguments"
    if isinstance(args, str):  # a bare string is one argument, not a sequence of characters
        args = (args,)
    # A schema that says so takes arguments it does not list (`additionalProperties: true` or a schema for them), and
    # a name it requires is one it takes, listed or not: an MCP server's tool of `required: ["q"]` and no properties
    # could not be called at all ("missing 'q'" without it, "unexpected 'q'" with it).
    others = parameters.get("additionalProperties")
    required_names = _required(parameters)
    if isinstance(args, Mapping):
        known = set(properties) | (set(required_names) if others is not False else set())
        extra = [] if others is True or isinstance(others, Mapping) else [k for k in args if k not in known]
        if extra:
            raise ToolArgumentError(f"{tool}: unexpected argument {extra[0]!r}; it takes: {names}")
        bound = dict(args)
    else:
        values = list(args)
        if not order and len(values) == 1 and isinstance(values[0], str) and not values[0].strip():
            values = []  # `Calendar()` read as one empty argument: nothing was passed
        if len(values) > len(order) and order and "string" in json_kinds(properties.get(order[-1]) or {}):
            keep = len(order) - 1
            values = values[:keep] + [joiner.join(_text(v) for v in values[keep:])]
        if len(values) > len(order):
            raise ToolArgumentError(f"{tool}: takes at most {len(order)} argument(s) ({names}) but got {len(values)}: "
                                    + ", ".join(_shown(v) for v in values))
        bound = dict(zip(order, values))
    missing = [n for n in required_names if n not in bound]
    if missing:
        raise ToolArgumentError(f"{tool}: missing required argument {missing[0]!r}; it takes: {names}")
    out: dict[str, Any] = {}
    required = set(required_names)
    for key, value in bound.items():
        schema = properties.get(key, others if key not in properties and isinstance(others, Mapping) else None)
        try:
            out[key] = coerce(value, schema if isinstance(schema, Mapping) else {}, parameters, typed=typed)
        except Mismatch as err:
            if value is None and key not in required:
                continue  # null for an optional parameter that takes none: not given (its default applies)
            raise ToolArgumentError(f"{tool}: argument {key!r} = {_shown(value)} is not valid: expected {err}") from None
    return out


def positional_arguments(named: Mapping[str, Any], parameters: Mapping[str, Any], *, tool: str = "tool") -> tuple[Any, ...]:
    """The inverse of bind_arguments for dialects that write positional calls (Toolformer, MOSS): a JSON object's
    values in `parameter_order`, arrays and objects written as JSON text. An optional argument may be left out only
    when no later one is given (a positional call cannot skip one); unknown names raise ToolArgumentError."""
    order = parameter_order(parameters)
    extra = [k for k in named if k not in order]
    if extra:
        raise ToolArgumentError(f"{tool}: unexpected argument {extra[0]!r}; it takes: {', '.join(order) or 'no arguments'}")
    given = [n for n in order if n in named]
    if given != order[:len(given)]:
        gap = next(n for n in order if n not in named)
        raise ToolArgumentError(f"{tool}: argument {given[-1]!r} is given but {gap!r} before it is not, and a positional "
                                "call cannot skip one")
    return tuple(json.dumps(named[n], ensure_ascii=False) if isinstance(named[n], (dict, list)) else named[n]
                 for n in given)


# ---------------------------------------------------------------------------------------------- coercion

def json_kinds(schema: Mapping[str, Any]) -> list[str]:
    """The JSON types a schema declares, "null" added when it is nullable (HF's form of Optional)."""
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if isinstance(kind, str) else []
    if schema.get("nullable") and "null" not in kinds:
        kinds = [*kinds, "null"]
    return kinds


#: How many `$ref`s in a row one value's schema may go through (a reference to a reference ... to itself is a loop).
MAX_REF_HOPS = 32


def resolve(schema: Mapping[str, Any], root: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """`schema` with its local `$ref` (`#/$defs/Person`, as pydantic and FastMCP write every model and Enum
    parameter) and a lone `allOf` (pydantic v1's wrapper of one) followed, within `root`; a reference that leads
    nowhere, or elsewhere than this document, is left as it is."""
    for _ in range(MAX_REF_HOPS):
        ref = schema.get("$ref")
        parts = schema.get("allOf")
        if isinstance(ref, str) and ref.startswith("#") and root is not None:
            target: Any = root
            for part in ref[1:].split("/")[1:]:
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part) if isinstance(target, Mapping) else None
            if not isinstance(target, Mapping):
                return schema
            # The referring schema's own keywords (its description, an enum) stay beside the target's.
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        elif isinstance(parts, list) and len(parts) == 1 and isinstance(parts[0], Mapping):
            schema = {**parts[0], **{k: v for k, v in schema.items() if k != "allOf"}}
        else:
            return schema
    return schema


#: What one coercion (a value and everything in it) has found so far: (value, schema, root, typed) by their ids -> the
#: outcome, with the objects kept so that no id is reused meanwhile. anyOf options that lead, through `$ref`s, to the
#: same definitions were tried again on every path: 2**depth tries for a 2 KB schema (hours for 30 levels).
_found: contextvars.ContextVar[dict[tuple[int, int, int, bool], tuple[Any, ...]] | None] = contextvars.ContextVar(
    "toolcall_coercions", default=None)


def coerce(value: Any, schema: Mapping[str, Any], root: Mapping[str, Any] | None = None, *,
           typed: bool = False) -> Any:
    """`value` (model text, or a JSON value) as the JSON type `schema` declares; Mismatch says what was expected.
    A schema without a type (or one this binder does not know) takes the value as written. `root` is the document
    `schema` belongs to (the tool's parameters), in which its local `$ref`s are followed. `typed`: see
    bind_arguments. Each (part of the value, part of the schema) is tried once, so the time is at most the value's
    size times the schema's, however its options branch."""
    found = _found.get()
    if found is None:
        token = _found.set({})
        try:
            return coerce(value, schema, root, typed=typed)
        finally:
            _found.reset(token)
    key = (id(value), id(schema), id(root), typed)
    if key in found:
        outcome = found[key][-1]
        if isinstance(outcome, Mismatch):
            raise Mismatch(str(outcome))
        return outcome
    try:
        out = _coerce(value, schema, root, typed)
    except Mismatch as err:
        found[key] = (value, schema, root, err)
        raise
    found[key] = (value, schema, root, out)
    return out


def _coerce(value: Any, schema: Mapping[str, Any], root: Mapping[str, Any] | None, typed: bool) -> Any:
    schema = resolve(schema, root)
    if "anyOf" in schema or "oneOf" in schema:
        options = [s for s in schema.get("anyOf") or schema.get("oneOf") or () if isinstance(s, Mapping)]
        if schema.get("nullable"):
            options.append({"type": "null"})
        if typed:  # the options the value already is come first: "02134" for integer-or-string stays a string
            options.sort(key=lambda o: not any(_is(value, k) for k in json_kinds(resolve(o, root))))
        wanted = []
        for option in options:
            try:
                return coerce(value, option, root, typed=typed)
            except Mismatch as err:
                wanted.append(str(err))
        raise Mismatch(" or ".join(dict.fromkeys(wanted)) or "a value of another shape")
    kinds = json_kinds(schema)
    if not kinds:
        out = value
    elif len(kinds) == 1:
        out = _as(value, kinds[0], schema, root, typed)
    else:
        out = _first_fit(value, kinds, schema, root, typed)
    if out is None and "null" in kinds:
        return None  # null for a nullable enum (Optional[Literal[...]], Optional[Enum]): HF lists no null among them
    allowed = [schema["const"]] if "const" in schema else schema.get("enum")  # a const is an enum of one
    if isinstance(allowed, list) and allowed and not any(_same(out, a) for a in allowed):
        # An untyped enum, or a value the type did not change: the text may still spell a choice ("2" for 2).
        text = value.strip() if isinstance(value, str) else None
        match = [a for a in allowed if text is not None and text == (a if isinstance(a, str) else json.dumps(a))]
        if not match:
            raise Mismatch("one of " + ", ".join(json.dumps(a) for a in allowed))
        out = match[0]
    return out


def _same(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _first_fit(value: Any, kinds: list[str], schema: Mapping[str, Any], root: Mapping[str, Any] | None,
               typed: bool = False) -> Any:
    """A value for a type list: kept when it already is one of the types, else the first type it converts to. A
    text (not `typed`) is read as the first type in _TEXT_ORDER it writes, even where "string" is allowed."""
    if typed or not isinstance(value, str) or "string" not in kinds:
        for kind in kinds:
            if _is(value, kind):
                return value
    tried = [k for k in _TEXT_ORDER if k in kinds] + [k for k in kinds if k not in _TEXT_ORDER]
    wanted = []
    for kind in tried:
        try:
            return _as(value, kind, schema, root, typed)
        except Mismatch as err:
            wanted.append(str(err))
    raise Mismatch(" or ".join(wanted))


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    checks: dict[str, Any] = {"string": str, "boolean": bool, "array": (list, tuple), "object": Mapping,
                              "null": type(None)}
    return isinstance(value, checks.get(kind, object))


def _as(value: Any, kind: str, schema: Mapping[str, Any], root: Mapping[str, Any] | None = None,
        typed: bool = False) -> Any:
    """`value` as one JSON type."""
    text = value.strip() if isinstance(value, str) else None
    if kind == "string":
        if value is None:  # JSON's null is no string (it became the text "null")
            raise Mismatch("a string")
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else _text(value)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise Mismatch("a boolean (true/false, yes/no)")
    if kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if text is not None and (whole := integer_text(text)) is not None:
            return whole
        raise Mismatch("an integer")
    if kind == "number":
        if isinstance(value, float) and not math.isfinite(value):  # JSON's reader takes NaN and Infinity
            raise Mismatch("a finite number (within about ±1.8e308)")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        if text is not None:
            return number_text(text)
        raise Mismatch("a number")
    if kind == "null":
        if value is None or (text is not None and text.lower() in _NULL):
            return None
        raise Mismatch("null")
    if kind == "array":
        items: Any = value
        if text is not None:
            items = json_value(text, "a list") if text.startswith("[") else [p.strip() for p in text.split(",")] if text else []
            typed = text.startswith("[")  # values read from JSON carry their types; comma-split pieces are text
        if not isinstance(items, (list, tuple)):
            raise Mismatch("a list")
        fixed = schema.get("prefixItems")
        if isinstance(fixed, list) and fixed:
            if len(items) != len(fixed) and schema.get("items") is not True:
                raise Mismatch(f"a list of {len(fixed)} items")
            return [coerce(v, s, root, typed=typed) for v, s in zip(items, fixed)] + list(items[len(fixed):])
        each = schema.get("items")
        return [coerce(v, each, root, typed=typed) for v in items] if isinstance(each, Mapping) else list(items)
    if kind == "object":
        data: Any = value
        if text is not None:
            data = json_value(text, "an object")
            typed = True
        if not isinstance(data, Mapping):
            raise Mismatch("an object written as JSON" if text is not None else "an object")
        found = schema.get("properties")
        props: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        rest = schema.get("additionalProperties")
        return {k: coerce(v, props[k], root, typed=typed) if isinstance(props.get(k), Mapping)
                else coerce(v, rest, root, typed=typed) if isinstance(rest, Mapping) else v for k, v in data.items()}
    return value  # a type name JSON schema does not have: passed as written


def json_value(text: str, what: str) -> Any:
    """The value `text` writes as JSON, or Mismatch saying it should be `what` written so (JSON nested past what
    Python's reader takes included: a model can write 5,000 `[`)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise Mismatch(f"{what} written as JSON") from err
    except RecursionError:
        raise Mismatch(f"{what} written as JSON, nested less deep") from None
    except ValueError:  # an integer past Python's 4,300 digits: no JSON number a tool can be given
        raise Mismatch(f"{what} written as JSON with numbers of at most 4,300 digits") from None


def number_text(text: str) -> int | float:
    """The number a model's text writes, thousands separators and underscores allowed ("1,200.5", "1_000"); see
    finite_number."""
    plain = text.replace("_", "")
    if _GROUPED_NUMBER.fullmatch(plain):
        plain = plain.replace(",", "")
    return finite_number(plain)


def finite_number(text: str) -> int | float:
    """The number `text` writes ("3" an int, "3.0" and "1e3" floats, as written), or Mismatch: a number too large
    for a float (`1e999`, 400 digits), `nan` and `inf` are none JSON can hold."""
    if re.fullmatch(r"[+-]?\d+", text):
        whole = integer_text(text)
        if whole is None or abs(whole) > _LARGEST_FLOAT:
            raise Mismatch("a number within a float's range (about ±1.8e308)")
        return whole
    try:
        number = float(text)
    except ValueError:
        raise Mismatch("a number") from None
    if not math.isfinite(number):
        raise Mismatch("a finite number (within about ±1.8e308)")
    return number


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."
