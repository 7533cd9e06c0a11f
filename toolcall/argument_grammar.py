"""Argument grammars for constrained call sampling: packaged ones, one derived from a JSON schema, namespacing."""
from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

from toolcall.errors import ConfigError

# A string argument: double-quoted, 1-80 characters, no quote, backslash or control character inside. The body class
# is exactly llguidance's "slice" class [^"\\\x00-\x1F\x7F]: a mask that allows nearly the whole vocabulary is then
# ~10x cheaper to compute than with any narrower class. The dialect reads it back as a quoted string.
QUOTED = r'/"[^"\\\x00-\x1F\x7F]{1,80}"/'
INTEGER = r"/-?(0|[1-9][0-9]{0,11})/"
NUMBER = r"/-?(0|[1-9][0-9]{0,11})(\.[0-9]{1,6})?/"
BOOLEAN = '"true" | "false"'

# Lark grammar text in pieces: comments, string literals, regexps, names, anything else.
_PIECES = re.compile(r'//[^\n]*|#[^\n]*|"(?:\\.|[^"\\\n])*"i?|/(?:\\.|[^/\\\n])+/[imslux]*'
                     r'|[A-Za-z_][A-Za-z0-9_]*|\s+|.', re.S)
# A rule or terminal definition at the start of a line: `name:`, `?name:`, `NAME.2:`, `name[lazy]:`.
_DEFINED = re.compile(r"^[ \t]*[?!]?([A-Za-z_][A-Za-z0-9_]*)(?=[ \t]*(?:\[[^\]\n]*\])?[ \t]*(?:\.-?\d+)?[ \t]*:)", re.M)


def read_grammar(name: str) -> str:
    """The text of a grammar file shipped in the `toolcall.grammars` package (e.g. "arithmetic.lark")."""
    try:
        return resources.files("toolcall.grammars").joinpath(name).read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError(f"no grammar {name!r} in the toolcall.grammars package") from err


def arithmetic_grammar() -> str:
    """Calculator's argument grammar: an arithmetic expression the Calculator tool evaluates."""
    return read_grammar("arithmetic.lark")


def schema_argument_grammar(parameters: dict[str, Any]) -> str:
    """The argument grammar a tool's JSON-schema `parameters` imply, as Lark text whose `start` is the argument list.

    No parameters give "" (the call is `Name()`). Each parameter is a quoted string, a number, an integer, true/false
    or one of its enum values; the required ones come first, in order, comma-separated, and the optional ones may
    follow in order. A type without a spelling of its own (array, object) is written as a quoted string.
    """
    properties: dict[str, Any] = parameters.get("properties", {}) or {}
    if not properties:
        return ""
    required = set(parameters.get("required", ()))
    names = [n for n in properties if n in required] + [n for n in properties if n not in required]
    pieces = [f"({_value_grammar(properties[n])})" for n in names]
    needed = sum(1 for n in names if n in required)
    if needed == 0:  # every parameter optional: nothing, or the first one and then the others in order
        return f"start: ({pieces[0]}{_optional_tail(pieces[1:])})?\n"
    separator = ' "," '
    return f"start: {separator.join(pieces[:needed])}{_optional_tail(pieces[needed:])}\n"


def _optional_tail(pieces: list[str]) -> str:
    """`("," a ("," b)?)?`: each optional argument may follow only when the one before it is there."""
    tail = ""
    for piece in reversed(pieces):
        tail = f' ("," {piece}{tail})?'
    return tail


def _value_grammar(schema: dict[str, Any]) -> str:
    """Lark for one argument value."""
    if "enum" in schema:
        return " | ".join(_literal(v) for v in schema["enum"])
    if "anyOf" in schema:
        return " | ".join(f"({_value_grammar(s)})" for s in schema["anyOf"])
    kinds = schema.get("type", "string")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    spelled = {"string": QUOTED, "number": NUMBER, "integer": INTEGER, "boolean": BOOLEAN}
    choices = list(dict.fromkeys(spelled.get(k, QUOTED) for k in kinds if k != "null"))
    return " | ".join(choices or [QUOTED])


def _literal(value: Any) -> str:
    """A Lark literal for one enum value as the model writes it: strings quoted (as the dialect reads them back)."""
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif value is None:
        text = "null"
    else:
        text = json.dumps(value)
    return json.dumps(text, ensure_ascii=False)


def namespaced(grammar: str, prefix: str, owner: str) -> str:
    """`grammar` with every rule and terminal it defines renamed `prefix_name` / `PREFIX_NAME`, so that several
    tools' argument grammars can live in one call grammar; `owner` names the tool in errors.

    Only names the grammar defines are renamed (not literals, regexps, comments, imported terminals or rule
    options such as [lazy]). It must define `start`, and may not set `%ignore`: spacing belongs to the call grammar.
    """
    defined = set(_DEFINED.findall(grammar))
    if "start" not in defined:
        raise ConfigError(f"the argument grammar of tool {owner} defines no `start` rule; it must have one that "
                          "matches the text between the call's parentheses")
    if re.search(r"^[ \t]*%ignore\b", grammar, re.M):
        raise ConfigError(f"the argument grammar of tool {owner} sets %ignore; spacing is set by the call grammar, "
                          "so leave %ignore out")
    out = []
    for m in _PIECES.finditer(grammar):
        piece = m.group()
        if piece in defined and not (m.start() > 0 and grammar[m.start() - 1] == "."):  # not `common.NAME`
            piece = f"{prefix.upper()}_{piece}" if piece.isupper() else f"{prefix.lower()}_{piece}"
        out.append(piece)
    return "".join(out)
