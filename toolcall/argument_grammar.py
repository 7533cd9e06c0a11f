"""Argument grammars for constrained call sampling: packaged ones, one derived from a JSON schema, namespacing."""
from __future__ import annotations

import json
import math
import re
from importlib import resources
from typing import Any

from toolcall.binding import resolve
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


#: Enum values past which an argument is held to its type only: a literal per value compiled in time that grew
#: quadratically (60,000 took 10.5 s under the engine's lock, and 80,000 made llguidance panic).
MAX_ENUM_VALUES = 512
#: Parameters a call grammar holds at most: its rules chain one per optional parameter, and llguidance crashed the
#: process (a segmentation fault) on a chain of 4,000.
MAX_GRAMMAR_PARAMETERS = 256
#: Any value a parameter may take where its schema says nothing the grammar can hold it to (`true`, or no type).
ANY_VALUE = f"{QUOTED} | {NUMBER} | {BOOLEAN}"
# What a quoted enum value may hold to be written as the dialect reads it back: QUOTED's characters, and not the line
# and paragraph separators, which Lark's lexer takes as line breaks, nor a lone surrogate, which is no character.
_SPELLABLE = re.compile(r'[^"\\\x00-\x1F\x7F\u2028\u2029\ud800-\udfff]{0,80}')


def schema_argument_grammar(parameters: dict[str, Any]) -> str:
    """The argument grammar a tool's JSON-schema `parameters` imply, as Lark text whose `start` is the argument list.

    No parameters give "" (the call is `Name()`). Each parameter is a quoted string, a number, an integer, true/false
    or one of its enum values; the required ones come first, in order, comma-separated, and the optional ones may
    follow in order. An array or object is JSON text in a quoted string, its quotes escaped (`"{\\"city\\": \\"Paris\\"}"`,
    as the dialect reads a string back), held to the schema's properties, items and types (`_EscapedJson`). An enum
    value the dialect cannot write (a list, a string with a quote or a control character) is left out: such an enum,
    or one of more than MAX_ENUM_VALUES values, holds the argument to its type only, and binding then checks the value.
    """
    found = parameters.get("properties")
    properties: dict[str, Any] = found if isinstance(found, dict) else {}
    if not properties:
        return ""
    if len(properties) > MAX_GRAMMAR_PARAMETERS:
        raise ConfigError(f"a call grammar holds at most {MAX_GRAMMAR_PARAMETERS} parameters; this tool has "
                          f"{len(properties):,}")
    listed = parameters.get("required")
    required = {r for r in listed if isinstance(r, str)} if isinstance(listed, list) else set()
    names = [n for n in properties if n in required] + [n for n in properties if n not in required]
    rules: list[str] = []
    escaped = _EscapedJson(parameters, rules)
    pieces = [f"({_value_grammar(properties[n], escaped)})" for n in names]
    needed = sum(1 for n in names if n in required)
    start = "start: " + _sequence(pieces, needed, rules)
    return "\n".join([start, *rules]) + "\n"


def _optional_tail(pieces: list[str], first: int, rules: list[str], prefix: str = "opt") -> str:
    """` opt{first}?` and the rules `opt{i}: "," piece_i opt{i+1}?`: each optional argument may follow only when the
    one before it is there. One rule each, not nested brackets: 28 optional parameters nested past what Lark takes.
    `prefix` names the rules (an object's members in a JSON argument have their own)."""
    if first >= len(pieces):
        return ""
    for i in range(first, len(pieces)):
        follow = f" {prefix}{i + 1}?" if i + 1 < len(pieces) else ""
        rules.append(f'{prefix}{i}: "," {pieces[i]}{follow}')
    return f" {prefix}{first}?"


def _sequence(pieces: list[str], needed: int, rules: list[str], prefix: str = "opt") -> str:
    """The first `needed` pieces comma-separated, then the optional rest in order (see _optional_tail)."""
    if needed == 0:  # every piece optional: nothing, or the first one and then the others in order
        return f"({pieces[0]}{_optional_tail(pieces, 1, rules, prefix)})?"
    return ' "," '.join(pieces[:needed]) + _optional_tail(pieces, needed, rules, prefix)


def _value_grammar(schema: Any, escaped: "_EscapedJson | None" = None, depth: int = 0) -> str:
    """Lark for one argument value (arrays and objects through `escaped`, when given)."""
    if escaped is not None and isinstance(schema, dict):
        schema = resolve(schema, escaped.root)
    if not isinstance(schema, dict) or depth > MAX_JSON_DEPTH:  # `true` (anything), a schema that is no object, or
        return ANY_VALUE                                         # anyOf's that refer to themselves
    values = [schema["const"]] if "const" in schema else schema.get("enum")
    if isinstance(values, list):
        spelled = list(dict.fromkeys(_literal(v) for v in values if _spellable(v)))
        if spelled and len(values) <= MAX_ENUM_VALUES:
            return " | ".join(spelled)
    branches = schema.get("anyOf", schema.get("oneOf"))
    if isinstance(branches, list):
        # Each branch is counted, copies too: a branch that refers back to its anyOf repeats the work it names.
        made = (f"({_value_grammar(s, escaped, depth + 1)})" for s in branches if s is not False)
        parts = list(dict.fromkeys(escaped.spend(p) if escaped is not None else p for p in made))
        if parts:
            return " | ".join(parts)
    kinds = schema.get("type", "string")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    choices = []
    for kind in kinds:
        if not isinstance(kind, str):
            continue
        if kind in ("object", "array") and escaped is not None:
            choices.append(f'"\\"" ({escaped.value(dict(schema, type=kind), 0)}) "\\""')
        else:
            choices.append(_SPELLING.get(kind, QUOTED))
    return " | ".join(dict.fromkeys(choices)) or QUOTED


#: How deep the JSON of an array or object argument is held to its schema; deeper values are any JSON scalar.
MAX_JSON_DEPTH = 4
#: Characters of grammar one tool's schema may make: `$ref`s share a schema, so a small one can name an exponential
#: tree (an object whose 50 properties each refer to it again), which is refused instead of built.
MAX_GRAMMAR_CHARS = 200_000
#: Items an array argument may hold under the grammar (binding checks the schema's own bounds).
MAX_JSON_ITEMS = 16
# JSON scalars as they are written inside a quoted argument: a string's quotes escaped, its body QUOTED's characters.
_ESCAPED_STRING = r'/\\"[^"\\\x00-\x1F\x7F]{0,80}\\"/'
_ESCAPED_SCALAR = f'{_ESCAPED_STRING} | {NUMBER} | {BOOLEAN} | "null"'
#: How each JSON type is written: as an argument (null bare, read back as null where the parameter takes it; a quoted
#: "null" is the text), and inside an argument's escaped JSON.
_SPELLING = {"string": QUOTED, "number": NUMBER, "integer": INTEGER, "boolean": BOOLEAN, "null": '"null"'}
_ESCAPED_SPELLING = {**_SPELLING, "string": _ESCAPED_STRING}


def _escaped(text: str) -> str:
    """`text` quoted as it is written inside a quoted argument: `\\"text\\"`."""
    return chr(92) + chr(34) + text + chr(92) + chr(34)


class _EscapedJson:
    """Lark for JSON text written inside a Toolformer quoted argument (every `"` as `\\"`), held to a JSON schema:
    an object's properties in the schema's order (required first, each optional one only after the one before it,
    none other), an array's items, enums, anyOf, `$ref`s within `root`; past MAX_JSON_DEPTH, any scalar. The rules it
    needs go to `rules`."""

    def __init__(self, root: dict[str, Any], rules: list[str]) -> None:
        self.root, self.rules, self.count, self.spent = root, rules, 0, 0

    def spend(self, text: str) -> str:
        """`text`, counted against MAX_GRAMMAR_CHARS (a ConfigError past it)."""
        self.spent += len(text)
        if self.spent > MAX_GRAMMAR_CHARS:
            raise ConfigError(f"this tool's schema makes a call grammar of more than {MAX_GRAMMAR_CHARS:,} characters "
                              "(its $refs name the same schemas over and over); offer a smaller schema")
        return text

    def value(self, schema: Any, depth: int) -> str:
        return self.spend(self._value(schema, depth))

    def _value(self, schema: Any, depth: int) -> str:
        schema = resolve(schema, self.root) if isinstance(schema, dict) else schema
        if not isinstance(schema, dict):
            return _ESCAPED_SCALAR
        if depth > MAX_JSON_DEPTH:  # still its type: an empty object or list, or a scalar of the kind it names
            kinds = schema.get("type")
            kinds = kinds if isinstance(kinds, list) else [kinds]
            shallow = {**_ESCAPED_SPELLING, "object": '"{" "}"', "array": '"[" "]"'}
            return " | ".join(dict.fromkeys(shallow[k] for k in kinds if k in shallow)) or _ESCAPED_SCALAR
        values = [schema["const"]] if "const" in schema else schema.get("enum")
        if isinstance(values, list):
            spelled = list(dict.fromkeys(self._literal(v) for v in values if _spellable(v)))
            if spelled and len(values) <= MAX_ENUM_VALUES:
                return " | ".join(spelled)
        branches = schema.get("anyOf", schema.get("oneOf"))
        if isinstance(branches, list) and any(isinstance(b, dict) for b in branches):
            return " | ".join(dict.fromkeys(f"({self.value(b, depth + 1)})" for b in branches if isinstance(b, dict)))
        kinds = schema.get("type", ["string", "number", "boolean", "null"])
        kinds = kinds if isinstance(kinds, list) else [kinds]
        out = []
        for kind in kinds:
            if kind == "object":
                out.append(self._object(schema, depth))
            elif kind == "array":
                out.append(self._array(schema, depth))
            elif isinstance(kind, str):
                out.append(_ESCAPED_SPELLING.get(kind, _ESCAPED_SCALAR))
        return " | ".join(dict.fromkeys(out)) or _ESCAPED_SCALAR

    def _name(self) -> str:
        self.count += 1
        return f"json{self.count}"

    def _object(self, schema: dict[str, Any], depth: int) -> str:
        found = schema.get("properties")
        listed = schema.get("required")
        required = {r for r in listed if isinstance(r, str)} if isinstance(listed, list) else set()
        unwritable = [r for r in required if not _SPELLABLE.fullmatch(r)]
        if unwritable:
            raise ConfigError(f"the property name {unwritable[0]!r} cannot be written in a Toolformer call (a quote, "
                              "backslash or control character)")
        properties = {k: v for k, v in found.items() if _SPELLABLE.fullmatch(k)} if isinstance(found, dict) else {}
        if not properties:  # an object of keys the schema does not list: `{}`, or string keys with their values
            rest = schema.get("additionalProperties", True)
            if rest is False:
                return '"{" "}"'
            value = self.value(rest, depth + 1) if isinstance(rest, dict) else _ESCAPED_SCALAR
            pair = f'{_ESCAPED_STRING} ":" ({value})'
            return f'"{{" ({pair} ("," {pair}){{0,{MAX_JSON_ITEMS - 1}}})? "}}"'
        names = [n for n in properties if n in required] + [n for n in properties if n not in required]
        members = [f"{json.dumps(_escaped(n) + ':')} ({self.value(properties[n], depth + 1)})" for n in names]
        name = self._name()
        made = len(self.rules)
        body = _sequence(members, sum(1 for n in names if n in required), self.rules, f"{name}_opt")
        for rule in self.rules[made:]:
            self.spend(rule)
        self.rules.append(self.spend(f'{name}: "{{" {body} "}}"'))
        return name

    def _array(self, schema: dict[str, Any], depth: int) -> str:
        fixed = schema.get("prefixItems")
        if isinstance(fixed, list) and fixed:  # a tuple: exactly these items, in order
            name = self._name()
            items = ' "," '.join(f"({self.value(s, depth + 1)})" for s in fixed)
            self.rules.append(self.spend(f'{name}: "[" {items} "]"'))
            return name
        item = self.value(schema.get("items", True), depth + 1)
        name = self._name()
        self.rules.append(self.spend(f'{name}: "[" (({item}) ("," ({item})){{0,{MAX_JSON_ITEMS - 1}}})? "]"'))
        return name

    @staticmethod
    def _literal(value: Any) -> str:
        """An enum value as a Lark literal of its JSON, a string's quotes escaped."""
        text = _escaped(value) if isinstance(value, str) else json.dumps(value)
        return json.dumps(text, ensure_ascii=False)


def _spellable(value: Any) -> bool:
    """Whether an enum value can be written in a call and read back as itself."""
    if isinstance(value, str):
        return _SPELLABLE.fullmatch(value) is not None
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return abs(value) < 10**12
    if isinstance(value, float):
        return math.isfinite(value) and len(repr(value)) <= 24
    return False  # lists and objects: no spelling of their own


def _literal(value: Any) -> str:
    """A Lark literal for one enum value as the model writes it: strings quoted (as the dialect reads them back)."""
    if isinstance(value, str):
        text = f'"{value}"'  # _spellable: no quote, backslash or control character to escape
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
