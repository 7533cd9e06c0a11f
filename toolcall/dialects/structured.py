"""What the JSON-argument dialects share: Lark prefix parsing, JSON and Python literal values, calls paired with results."""
from __future__ import annotations

import bisect
import hashlib
import json
import math
import re
import string
import sys
import unicodedata
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ..calls import KeywordArgs, Parsed, PendingCalls, SyntaxIssue, ToolCall
from ..errors import ConfigError
from ..specs import ToolSpecs
from .base import (
    MAX_CALL_CHARS,
    MAX_DEPTH,
    Dialect,
    GrammarBudget,
    Pieces,
    ResultSpan,
    _display_terminal,
    apply_edits,
    cut_spans,
    issue_from_error,
    line_column,
    make_issue,
    nesting_fault,
    paused_gc,
    raise_issue,
    rule,
)
from .chat import tools_prompt
from .prompt_data import ChatTemplate, PromptSource

ID_ALPHABET = string.ascii_letters + string.digits


# ---------------------------------------------------------------------------------------------- parsing
_OPENERS = frozenset("[{(")
_CLOSERS = frozenset("]})")


def parse_prefix(parser: Lark, text: str, start: int, closers: Iterable[str], rule_name: str = "start",
                 end: int | None = None) -> tuple[Tree, int]:
    """Parse the call that starts at `text[start]` (reading no further than `end`) and return its tree and where it ends.

    The parser reads token by token and stops at the first closing token (one of `closers`, e.g. "]") that leaves no
    bracket open, so text after the call is never read and brackets inside strings (one token each) are text.
    Raises Lark's UnexpectedInput (positions relative to `start`) when the call is malformed or cut off.
    """
    closing = frozenset(closers)
    interactive = parser.parse_interactive(text[start:end], start=rule_name)
    depth = 0
    for token in interactive.lexer_thread.lex(interactive.parser_state):
        interactive.feed_token(token)
        value = token.value
        if value in _OPENERS:
            depth += 1
        elif value in _CLOSERS:
            depth -= 1
        if value in closing and depth <= 0:
            # Every bracket the call opened is closed: the call ends here or is malformed (feed_eof says which).
            return interactive.feed_eof(token), start + token.end_pos
    interactive.feed_eof()  # the text ended inside the call: raises "unexpected end of input"
    raise AssertionError("feed_eof accepted a call without its closing token")  # pragma: no cover


def cut_off(err: UnexpectedInput, parser: Lark, rest: str) -> bool:
    """Whether a parse failed only because the text ended inside the call (more may follow); `rest` is the text from
    the fault on: an unclosed string, or the start of a keyword or tag, is cut off too."""
    if isinstance(err, UnexpectedEOF) or (isinstance(err, UnexpectedToken) and err.token.type == "$END"):
        return True
    if not isinstance(err, UnexpectedCharacters) or not rest:
        return False
    if rest[0] in "\"'":
        return re.search(r"(?<!\\)(?:\\\\)*" + rest[0], rest[1:]) is None
    return any(t.pattern.type == "str" and t.pattern.value.startswith(rest) for t in parser.terminals)


@dataclass(frozen=True)
class Fault:
    """Why a call object parsed as JSON is not a call, and where."""

    pos: int
    message: str


@dataclass(frozen=True)
class Truncated:
    """The text ended inside a JSON value, at `pos`: more text may complete it."""

    pos: int


# JSON strings (skipped) and single brackets, for measuring how deep a JSON text nests.
JSON_PIECES = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_NUMBER_OR_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?', re.S)
_SPACE = re.compile(r"[ \t\r\n]+")
_BLANK = re.compile(r"\s*")
_MAX_DIGITS = 4000  # Python refuses longer digit strings (int's conversion limit is 4300)


class ValueFault(ValueError):
    """A JSON value that parses but cannot be a call's argument (a number that is not finite, or too long)."""


def finite_float(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        raise ValueFault(f"the number {raw[:40]} is too large to be finite (JSON has no infinity)")
    return value


def bounded_int(raw: str) -> int:
    if len(raw) > _MAX_DIGITS:
        raise ValueFault(f"an integer of {len(raw)} digits is too long (at most {_MAX_DIGITS})")
    return int(raw)


def _no_constant(raw: str) -> Any:
    raise ValueFault(f"{raw} is not a JSON value")


_DECODER = json.JSONDecoder(strict=False, parse_float=finite_float, parse_int=bounded_int, parse_constant=_no_constant)


# A decode reads at first this much of the text after the value's start (its window grows four times over while the
# reading reaches the window's end), and the decoder looks at most this far past where it reports a fault (a literal
# such as -Infinity, a \uXXXX escape).
_WINDOW = 1024
_LOOKAHEAD = 16
# A window never ends in these: a cut through a number would make it another (a shorter one, a float without its
# exponent), with another fault.
_NUMBER_CHARS = "0123456789.eE+-"


class JsonStop(ValueError):
    """Where in the whole text (`pos`) and why (`msg`) the JSON decoder stopped: a JSONDecodeError's pos and msg."""

    def __init__(self, msg: str, pos: int) -> None:
        super().__init__(msg)
        self.msg, self.pos = msg, pos


def raw_decode(decoder: json.JSONDecoder, text: str, pos: int, end: int) -> tuple[Any, int]:
    """`decoder.raw_decode` of the value at `text[pos]`, read no further than `end`; JsonStop where it fails.

    A JSONDecodeError counts the lines of its whole text up to where it stops, so each failed decode cost the length
    of the text before it (a megabyte of `x{"name": "f", "parameters": {` took 22 s, one failed decode per "{"). The
    value is decoded from a window of the text after `pos` instead, which grows while the reading reaches its end: a
    reading that ends inside the window (a fault well before its end, not a string running to it) is the reading of
    the whole text.
    """
    end = min(end, len(text))
    size = _WINDOW
    while True:
        cut = min(pos + size, end)
        source = text if pos == 0 and cut == len(text) else text[pos:cut]
        if cut < end:
            source = source.rstrip(_NUMBER_CHARS)
            if not source:  # a number all through, which may go on
                size *= 4
                continue
        try:
            value, stop = decoder.raw_decode(source)
        except json.JSONDecodeError as err:
            if cut == end or (err.pos < len(source) - _LOOKAHEAD and not err.msg.startswith("Unterminated")):
                raise JsonStop(err.msg, pos + err.pos) from None
        else:
            return value, pos + stop
        size *= 4


def decode_json(text: str, pos: int, end: int) -> tuple[Any, int] | Fault | Truncated | None:
    """The JSON value starting at `text[pos]` (read no further than `end`) and where it ends, decoded in C.

    A fault the grammar does not describe (a bad escape, a number that is not finite or too long, nesting deeper than
    MAX_DEPTH, a lone surrogate) is a Fault at its position; any other syntax error is None, so that the Lark grammar
    reports it with what was expected there; Truncated when the text ran out inside the value (but not inside a
    string, whose opening quote is the better place to point at). The text is read from `pos` on only as far as the
    value reaches (see `raw_decode`).
    """
    end = min(end, len(text))
    try:
        value, stop = raw_decode(_DECODER, text, pos, end)
    except JsonStop as err:
        if err.pos >= end and not err.msg.startswith("Unterminated"):
            return Truncated(err.pos)
        if err.msg.startswith("Invalid \\escape"):
            return Fault(err.pos, f"invalid escape {text[err.pos:min(err.pos + 2, end)]!r} in a JSON string (JSON "
                                  r'allows \" \\ \/ \b \f \n \r \t \uXXXX; a backslash itself is written \\)')
        return None
    except ValueFault as err:
        return Fault(bad_number(text, pos, end), str(err))
    except RecursionError:  # far deeper than MAX_DEPTH
        where = nesting_fault(text, pos, end, JSON_PIECES)
        return Fault(pos if where is None else where, f"arguments nested deeper than {MAX_DEPTH} levels")
    # Nesting within what the decoder allows, but deeper than the rest of the program may recurse into.
    where = nesting_fault(text, pos, stop, JSON_PIECES)
    if where is not None:
        return Fault(where, f"arguments nested deeper than {MAX_DEPTH} levels")
    if _SURROGATE_ESCAPE.search(text, pos, stop):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return Fault(pos, r"a \u escape in a JSON string is half of a surrogate pair, which is no character")
    return value, stop


# JSON strings, a quote that opens a string never closed, and single brackets: for finding where a value closes.
JSON_CLOSE_PIECES = re.compile(r'"(?:[^"\\]|\\.)*"|"|[\[\]{}]', re.S)


def closing_bracket(text: str, pos: int, end: int, pieces: Pieces = JSON_CLOSE_PIECES,
                    newline_ends_strings: bool = False) -> int | None:
    """Where the brackets opened from `text[pos]` on are all closed again (just past the closing one), reading no
    further than `end`; None when some are still open there (more text may close them). `pieces` matches strings
    (skipped), a lone quote (a string that does not close) and single brackets. A string that does not close runs to
    `end`, or to its line's end where `newline_ends_strings` (Python), after which counting goes on. One pass, in C
    but for one step per bracket: where a malformed call too long or too deep for the parser ends."""
    depth = 0
    i: int | None = pos
    while i is not None:
        start, i = i, None
        for m in pieces.finditer(text, start, end):
            c = m.group()
            if c in "[{(":
                depth += 1
            elif c in "]})":
                depth -= 1
                if depth <= 0:
                    return m.end()
            elif len(c) == 1:  # a string that does not close
                line_end = text.find("\n", m.end(), end) if newline_ends_strings else -1
                if line_end < 0:
                    return None
                i = line_end + 1  # counting goes on from the next line
                break
    return None


def json_break(text: str, pos: int, end: int) -> Fault | Truncated | None:
    """Where the JSON value at `text[pos]` (read no further than `end`) stops being JSON, as the C decoder says: a
    Truncated when the text ran out inside it, a Fault at the place and with the decoder's reason otherwise, None
    when it decodes (its fault, if any, is not in its syntax). The cheap reading of a broken JSON call."""
    end = min(end, len(text))
    try:
        raw_decode(_DECODER, text, pos, end)
    except JsonStop as err:
        if err.pos >= end and not err.msg.startswith("Unterminated"):
            return Truncated(err.pos)
        return Fault(err.pos, err.msg[0].lower() + err.msg[1:])
    except (ValueFault, RecursionError):  # decode_json reports these before any grammar reading
        return Fault(pos, "a value that cannot be a call's")
    return None


def bad_number(text: str, pos: int = 0, end: int | None = None) -> int:
    """Where the first number from `text[pos]` on (up to `end`) that cannot be a value is (strings are skipped); `pos`
    if none."""
    for m in _NUMBER_OR_STRING.finditer(text, pos, len(text) if end is None else end):
        raw = m.group()
        if raw[0] == '"':
            continue
        if refused_number(raw):
            return m.start()
    return pos


def refused_number(raw: str) -> bool:
    """Whether a JSON number the grammar reads is one the decoder refuses: too long, or not finite as a float."""
    return len(raw) > _MAX_DIGITS or (not raw.lstrip("-").isdigit() and not math.isfinite(float(raw)))


def refused_number_token(token: Token) -> bool:
    """`refused_number` of a JSON grammar's NUMBER token (False for any other token)."""
    return token.type.endswith("NUMBER") and refused_number(str(token))


#: The content of a JSON string still being written that text added inside it cannot change: no closing quote (an
#: escaped one is content), no control character, only JSON's escapes, no special token ("<|": a turn token ends a
#: Llama reply).
PLAIN_JSON = re.compile(r'(?:[^"\\\x00-\x1f<]|<(?!\|)|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*+')


def skip_space(text: str, pos: int) -> int:
    """The first position at or after `pos` that is not JSON whitespace."""
    m = _SPACE.match(text, pos)
    return m.end() if m else pos


def dump(value: Any) -> str:
    """Canonical JSON: one line, ", " and ": " separators, unicode kept."""
    return json.dumps(value, ensure_ascii=False)


def dump_call_json(value: Any, reserved: Sequence[str]) -> str:
    """`value` as canonical JSON inside a dialect's text, written so the text parses back to it: the dialect's
    `reserved` markup inside a string has its first character escaped (`\\u003ctool_call>`: a string cannot hold it
    as written, and an argument "<tool_call>" rendered as it is broke the call), and NaN or Infinity, which JSON
    has not, are a ConfigError. Markup starts with a character JSON writes only inside strings (`<`, or `[` before a
    letter), so the escape never touches the JSON's own brackets."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except ValueError as err:
        raise ConfigError(f"cannot render a call: its arguments hold a number JSON cannot write ({err})") from None
    for marker in reserved:
        if marker in text:
            text = text.replace(marker, f"\\u{ord(marker[0]):04x}{marker[1:]}")
    return text


def call_id(call: ToolCall, index: int = 0) -> str:
    """A call's id, or a stable 9-character alphanumeric one made from the call (Mistral's id shape)."""
    if call.id:
        return call.id
    digest = hashlib.sha256(f"{index}:{call.tool}:{dump(dict(call.args) if call.keyword else list(call.args))}"
                            .encode("utf-8", "surrogatepass")).digest()   # a lone surrogate raised UnicodeEncodeError
    return "".join(ID_ALPHABET[b % len(ID_ALPHABET)] for b in digest[:9])


def keyword_args(call: ToolCall, dialect: str) -> dict[str, Any]:
    """A call's arguments as a JSON object; positional arguments cannot be written in a JSON-argument format."""
    if call.keyword:
        return dict(call.args)
    if call.args:
        raise ConfigError(f"the {dialect} dialect writes arguments as a JSON object of named values; call "
                          f"{call.tool!r} has positional arguments {list(call.args)!r}: give args as a mapping")
    return {}


def json_value(tree: Tree | Token) -> Any:
    """The Python value of a JSON tree from grammars/json.lark (strings decoded by json, never evaluated).

    Raises ValueFault for a number that is not finite or too long (the caller reports it where the value is)."""
    if isinstance(tree, Token):
        return {"TRUE": True, "FALSE": False, "NULL": None}[tree.type.rsplit("__", 1)[-1]]
    kind = rule(tree)
    if kind == "string":
        # One string token, already checked by the grammar; raw control characters (a newline a model wrote
        # inside a string) are allowed, as json's non-strict mode does.
        return json.loads(str(tree.children[0]), strict=False)
    if kind == "number":
        raw = str(tree.children[0])
        return finite_float(raw) if any(c in raw for c in ".eE") else bounded_int(raw)
    if kind == "array":
        return [json_value(c) for c in tree.children if isinstance(c, (Tree, Token))]
    if kind == "object":
        return {json_value(pair.children[0]): json_value(pair.children[1]) for pair in tree.children if isinstance(pair, Tree)}
    raise AssertionError(f"unexpected JSON rule {kind}")  # pragma: no cover


def object_fields(tree: Tree) -> dict[str, Tree | Token]:
    """A JSON object tree's fields, name -> value subtree (later duplicates win, as in json.loads)."""
    return {json_value(pair.children[0]): pair.children[1] for pair in tree.children if isinstance(pair, Tree)}


def _object_from_string(value: str) -> dict[str, Any] | None:
    """The JSON object a string holds (arguments in OpenAI's wire form), or None when it holds anything else."""
    start = skip_space(value, 0)
    got = decode_json(value, start, len(value))
    if not isinstance(got, tuple) or skip_space(value, got[1]) != len(value) or not isinstance(got[0], dict):
        return None
    return got[0]


def call_from_value(value: Any, span: tuple[int, int], args_keys: Sequence[str] = ("arguments", "parameters"),
                    require_args: bool = False) -> ToolCall | None:
    """A ToolCall from a decoded call object, or None when it is not one (call_from_object then says why and where)."""
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    key = next((k for k in args_keys if k in value), None)
    if key is None and require_args:
        return None
    args = value[key] if key is not None else {}
    if isinstance(args, str):
        args = _object_from_string(args)
    if not isinstance(args, dict):
        return None
    ident = value.get("id")
    return ToolCall(value["name"], KeywordArgs.adopt(args), None, span, ident if isinstance(ident, str) else None)


def call_from_object(tree: Tree, offset: int, span: tuple[int, int], args_keys: Sequence[str] = ("arguments", "parameters"),
                     require_args: bool = False) -> ToolCall | Fault:
    """A ToolCall from a JSON object {"name": ..., "arguments": {...}} (the first of `args_keys` present).

    Arguments written as a string holding a JSON object (OpenAI's wire form) are read too; missing arguments are {}
    unless `require_args`. A string that holds anything but a JSON object is a fault: a wire format knows no tools,
    so it cannot tell which parameter a bare string would be.
    """
    start = offset + tree.meta.start_pos
    try:
        fields = object_fields(tree)
        name = fields.get("name")
        if name is None or not (isinstance(name, Tree) and rule(name) == "string"):
            return Fault(start, 'a tool call object needs a "name" string')
        tool = json_value(name)
        key = next((k for k in args_keys if k in fields), None)
        if key is None and require_args:
            return Fault(start, f'tool call {tool!r} needs its arguments as "{args_keys[0]}"')
        args: Any = {}
        if key is not None:
            node = fields[key]
            args = json_value(node)
            where = offset + (node.meta.start_pos if isinstance(node, Tree) else node.start_pos or 0)
            if isinstance(args, str):
                held = _object_from_string(args)
                if held is None:
                    return Fault(where, f'"{key}" of tool call {tool!r} is a string that is not a JSON object')
                args = held
            if not isinstance(args, dict):
                return Fault(where, f'"{key}" of tool call {tool!r} must be a JSON object of named arguments, '
                                    f'got {type(args).__name__}')
        ident = fields.get("id")
        ident_value = json_value(ident) if ident is not None else None
    except ValueFault as err:
        return Fault(start, str(err))
    return ToolCall(str(tool), KeywordArgs(args), None, span, ident_value if isinstance(ident_value, str) else None)


def decode_items(text: str, pos: int, end: int) -> tuple[list[tuple[Any, int, int]], int] | Fault | Truncated | None:
    """The items of the JSON array at `text[pos]` (read no further than `end`): (value, start, end) each, and where
    the array ends; a Fault or None as decode_json says."""
    if not text.startswith("[", pos):
        return None
    i = skip_space(text, pos + 1)
    items: list[tuple[Any, int, int]] = []
    if text.startswith("]", i):
        return items, i + 1
    while True:
        got = decode_json(text, i, end)
        if not isinstance(got, tuple):
            return got
        items.append((got[0], i, got[1]))
        i = skip_space(text, got[1])
        if text.startswith(",", i):
            i = skip_space(text, i + 1)
        elif text.startswith("]", i):
            return items, i + 1
        elif i >= min(end, len(text)):
            return Truncated(i)
        else:
            return None


# ---------------------------------------------------------------------------------------------- Python literals
_PY_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b", "f": "\f",
               "v": "\v", "\n": ""}
# An escape as Python reads it: a fixed number of hex digits, one to three octal digits (`\0`, `\01`, `\101`: NUL,
# U+0001, "A"), a named character (`\N{BULLET}`; no name is longer than 100 characters, and a bound keeps a string of
# many unclosed `\N{` linear), or one other character.
_PY_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{1,3}|N\{[^}]{0,100}\}|.)", re.S)


def _py_escape(code: str) -> str | None:
    """What Python reads for the escape `\\` + `code` (`_PY_ESCAPE`'s group), or None for one it refuses: a \\x, \\u or
    \\U with too few hex digits or past U+10FFFF, a \\N that names no character. An unknown escape is kept as written,
    as in Python."""
    if code[0] in "xuU":
        value = int(code[1:], 16) if len(code) > 1 else sys.maxunicode + 1
        return chr(value) if value <= sys.maxunicode else None
    if code[0] in "01234567":
        return chr(int(code, 8))
    if code[0] == "N":
        try:
            char = unicodedata.lookup(code[2:-1]) if len(code) > 1 else ""
        except KeyError:
            return None
        return char if len(char) == 1 else None  # a named sequence is several characters: Python refuses it
    return _PY_ESCAPES.get(code, "\\" + code)


def py_string(token: str) -> str:
    """The value of a quoted Python string literal (the grammar checked it): escapes resolved as Python resolves them,
    nothing evaluated. An escape Python refuses stays as written: `py_string_fault` says where it is."""
    def sub(m: re.Match[str]) -> str:
        char = _py_escape(m.group(1))
        return m.group() if char is None else char

    return _PY_ESCAPE.sub(sub, token[1:-1])


def py_string_fault(token: str) -> tuple[int, str] | None:
    """Where in a quoted Python string literal (an offset in `token`) the first escape Python refuses is, and why."""
    for m in _PY_ESCAPE.finditer(token, 1, len(token) - 1):
        if _py_escape(m.group(1)) is None:
            escape = m.group()
            why = ("names no Unicode character" if escape[1] == "N" else
                   "is past U+10FFFF, the last character" if len(escape) == 10 else
                   f"needs {dict(x=2, u=4, U=8)[escape[1]]} hex digits")
            return m.start(), f"the escape {escape} {why} (Python refuses it)"
    return None


def py_value(tree: Tree | Token) -> Any:
    """The value of a literal tree from grammars/pythonic.lark: tuples become lists (JSON has no tuples)."""
    if isinstance(tree, Token):
        return {"true": True, "false": False, "null": None, "none": None}[str(tree).lower()]
    kind = rule(tree)
    if kind == "string":  # adjacent literals concatenate, as in Python
        return "".join(py_string(str(t)) for t in tree.children)
    if kind == "number":
        raw = str(tree.children[0]).replace("_", "")
        return float(raw) if any(c in raw for c in ".eE") else int(raw)
    if kind in ("list", "tuple"):
        return [py_value(c) for c in tree.children if isinstance(c, (Tree, Token))]
    if kind == "dict":
        out: dict[Any, Any] = {}
        for pair in tree.children:
            if isinstance(pair, Tree):
                key = py_value(pair.children[0])
                out[key if isinstance(key, (str, int, float, bool)) or key is None else dump(key)] = py_value(pair.children[1])
        return out
    raise AssertionError(f"unexpected literal rule {kind}")  # pragma: no cover


def py_literal(value: Any) -> str:
    """A JSON value written as a Python literal that grammars/pythonic.lark reads back to the same value."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return repr(value)  # repr's escapes are the ones py_string resolves
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{py_literal(k)}: {py_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    return repr(str(value))


# ---------------------------------------------------------------------------------------------- calls and results
@dataclass
class Group:
    """One stretch of text the model wrote to call tools (a <tool_call> block, a [..] call list): its calls."""

    span: tuple[int, int]
    calls: list[ToolCall]
    style: str = ""  # the dialect's note of how the group is spelled (kept when it is re-rendered)


@dataclass(frozen=True)
class ResultBlock:
    """One tool result in the text: the whole block, the marker that opens it, its body, and the result text."""

    span: tuple[int, int]
    marker: tuple[int, int]
    body: tuple[int, int]
    text: str
    call_id: str | None = None


@dataclass
class Scan:
    """A text's call groups, result blocks and issues; `answers[k]` is the result block of the k-th call in text order
    (over all groups), -1 for none."""

    groups: list[Group]
    results: list[ResultBlock]
    issues: list[SyntaxIssue]
    failed: list[tuple[int, int]] = field(default_factory=list)  # spans of call candidates that did not parse
    answers: list[int] = field(default_factory=list)
    cut: bool = False  # the last candidate was cut off by the end of the text (more may follow)

    def calls(self) -> list[ToolCall]:
        results, answers = self.results, self.answers
        out = [call for group in self.groups for call in group.calls]
        for k, r in enumerate(answers):
            if r >= 0:
                out[k] = out[k].with_result(results[r].text)
        return out


class _Latest:
    """Items 0..n-1, some removed: the latest one still there at or before an index, found in near-constant time
    (removed items point past themselves, the pointers shortened as they are followed)."""

    def __init__(self, n: int) -> None:
        self._next = list(range(n))

    def find(self, k: int) -> int:
        """The largest index <= k not removed, or -1."""
        root = k
        while root >= 0 and self._next[root] != root:
            root = self._next[root]
        while k >= 0 and self._next[k] != k:  # shorten the path for the next search
            self._next[k], k = root, self._next[k]
        return root

    def remove(self, k: int) -> None:
        self._next[k] = k - 1


class _SharedId:
    """The calls that share one id, (group end, call number, run) each in text order, taken by the results naming it:
    the runs are taken latest first, the calls of a run in order; each call is looked at once."""

    def __init__(self, calls: list[tuple[int, int, int]]) -> None:
        self._calls = calls
        self._segment: list[int] = []  # the segment (the calls of one run) each call is in
        self._ends: list[int] = []  # where each segment's calls end (exclusive)
        for i, call in enumerate(calls):
            if i and call[2] == calls[i - 1][2]:
                self._ends[-1] = i + 1
            else:
                self._ends.append(i + 1)
            self._segment.append(len(self._ends) - 1)
        self._next = [0] + self._ends[:-1]  # each segment's first call not taken yet
        self._left = _Latest(len(self._ends))

    def take(self, last: int, answers: list[int]) -> int:
        """The index of the call a result answers, given the last call (index) before it; -1 for none. A call that
        `answers` shows answered otherwise (by a result naming no id) is passed over."""
        if last < 0:
            return -1
        s = self._left.find(self._segment[last])
        while s >= 0:
            k = self._next[s]
            while k < self._ends[s] and answers[self._calls[k][1]] >= 0:
                k += 1
            self._next[s] = k
            if k < self._ends[s] and k <= last:
                self._next[s] = k + 1
                return k
            if k >= self._ends[s]:
                self._left.remove(s)
            s = self._left.find(s - 1)
        return -1


@dataclass(frozen=True)
class _Closing:
    """How pending calls are closed: the ids of the calls (for results that name their call)."""

    ids: tuple[str | None, ...] = ()


class StructuredDialect(Dialect):
    """A dialect whose calls are groups of structured calls (JSON or Python literals) and whose results are blocks
    of their own (`<tool_response>`, `[TOOL_RESULTS]`, an ipython turn) somewhere after the calls.

    A result answers the first unanswered call of the latest run of call groups before it that still has one (a
    run: groups separated only by whitespace, e.g. parallel <tool_call> blocks); a result naming a call id answers
    that call. Subclasses find the groups and result blocks and spell them.
    """

    named_arguments = True

    #: Text that may end a reply after its calls and still leave them pending (an end-of-turn token).
    trailers: tuple[str, ...] = ()
    #: Whether a malformed call takes the result that follows it (the loop's error text). True where a candidate is
    #: surely a call attempt (a tag); False where prose can look like one, so prose never takes a call's result. Even
    #: then, as the loop answers them, only a candidate that ends its run and is not an item of a group takes one.
    failed_take_results: bool = True
    #: Styles of groups whose calls never ran (hermes: a block the model did not close), so no result answers them.
    unanswered_styles: frozenset[str] = frozenset()
    _forged_message = "a result block after a call the model did not close answers nothing (that call never ran)"

    # -- what subclasses provide ---------------------------------------------------------------
    @abstractmethod
    def _groups(self, text: str, issues: list[SyntaxIssue], failed: list[tuple[int, int]],
                budget: GrammarBudget, start: int = 0) -> tuple[list[Group], bool]:
        """The call groups of `text` from `start` on; malformed candidates go to `issues` and their spans to `failed`
        (the grammar reading them within `budget`); and whether the last candidate was cut off by the end of the text.
        `start` is 0 or a place `_resume` gave: no candidate begins before it that is not settled."""

    @abstractmethod
    def _result_blocks(self, text: str, start: int = 0) -> list[ResultBlock]:
        """Every result block in `text` that begins at or after `start`, in order."""

    def write_calls(self, calls: Sequence[ToolCall]) -> str:
        """The calls as one group, the way the model writes parallel calls."""
        return self._render_group([c.with_result(None) for c in calls], "")

    @abstractmethod
    def _render_group(self, calls: Sequence[ToolCall], style: str) -> str:
        """The canonical text of a group of calls, in `style` ("" for the dialect's default)."""

    @abstractmethod
    def _render_results(self, calls: Sequence[ToolCall], results: Sequence[str]) -> str:
        """The canonical text that carries `results` for `calls`, written right after them."""

    def _failed_span(self, text: str, start: int, err_pos: int, end: int) -> tuple[int, int]:
        """The text a malformed candidate takes: up to the first call marker at or after the fault and before `end`
        (the model meant the call to end there), else the fault itself."""
        stop = -1
        if err_pos < end:
            for marker in self.call_markers:
                found = text.find(marker, err_pos, end)
                if found >= 0 and (stop < 0 or found + len(marker) < stop):
                    stop = found + len(marker)
        return start, max(start + 1, stop if stop >= 0 else min(len(text), err_pos + 1))

    @staticmethod
    def _unfinished(text: str, start: int, end: int, what: str, expected: tuple[str, ...] = ()) -> SyntaxIssue:
        """The issue of a candidate read up to `end` (the next candidate, or MAX_CALL_CHARS) and still open there."""
        line, column = line_column(text, start)
        reason = (f"is longer than {MAX_CALL_CHARS} characters" if end - start >= MAX_CALL_CHARS
                  else "is not closed before the next one opens")
        return make_issue(text, end, f"{what} starting at line {line}, column {column} {reason}", expected)

    @staticmethod
    def _ended(text: str, start: int, what: str, expected: tuple[str, ...] = ()) -> SyntaxIssue:
        """The issue of a candidate the end of the text cut off (more may follow)."""
        line, column = line_column(text, start)
        return make_issue(text, len(text), f"unexpected end of input in {what} starting at line {line}, column {column}",
                          expected)

    def _candidate(self, parser: Lark, text: str, start: int, end: int, closers: Iterable[str], what: str,
                   issues: list[SyntaxIssue], failed: list[tuple[int, int]], budget: GrammarBudget,
                   cheap: Callable[[], Fault | Truncated | None], chunk: str | None = None) -> tuple[Tree, int] | None | bool:
        """Parse the candidate at `text[start]`, reading no further than `end` (the next candidate, MAX_CALL_CHARS, or
        the end of the text), or `chunk` in its place; return (tree, end), or None after recording its issue, or False
        when it was cut off by the end of the text (more may follow). Past the grammar's `budget`, the candidate
        (known not to be a call by a faster reading) is reported where `cheap` says it breaks."""
        if not budget.spend(min(end, len(text)) - start if chunk is None else len(chunk)):
            return self._undiagnosed(text, start, min(end, len(text)), what, cheap(), issues, failed)
        source = text[start:end] if chunk is None else chunk
        try:
            tree, stop = parse_prefix(parser, source, 0, closers)
            return tree, start + stop
        except UnexpectedInput as err:
            at_end = start + len(source) >= len(text)
            if not at_end and (isinstance(err, UnexpectedEOF) or getattr(getattr(err, "token", None), "type", "") == "$END"):
                # It runs into the next candidate (or MAX_CALL_CHARS): what the grammar expected there is all we need.
                expected = tuple(sorted({_display_terminal(parser, n) for n in getattr(err, "expected", None) or ()}))
                issues.append(self._unfinished(text, start, start + len(source), what, expected))
                failed.append(self._failed_span(text, start, start + len(source), start + len(source)))
                return None
            issue = issue_from_error(err, parser, text, start, len(source), what)
            cut = at_end and cut_off(err, parser, text[issue.pos:end])
            if cut and isinstance(err, UnexpectedCharacters):  # an unclosed string: the text ended inside it
                issue = self._ended(text, start, what, issue.expected)
            elif not at_end and issue.pos >= start + len(source):
                issue = self._unfinished(text, start, start + len(source), what, issue.expected)
            issues.append(issue)
            failed.append(self._failed_span(text, start, issue.pos, start + len(source)))
            return False if cut else None

    def _undiagnosed(self, text: str, start: int, end: int, what: str, where: Fault | Truncated | None,
                     issues: list[SyntaxIssue], failed: list[tuple[int, int]]) -> None | bool:
        """Report a candidate the grammar's budget could not cover (see GrammarBudget) where a cheap reading found its
        fault: open where it stops (cut off when that is the end of the text), a fault's place, or its start."""
        if isinstance(where, Truncated) and end < len(text):  # the commonest: it runs into the next candidate
            issues.append(self._unfinished(text, start, end, what))
            failed.append(self._failed_span(text, start, end, end))
            return None
        if isinstance(where, Truncated):  # cut off by the end of the text: more may follow
            issues.append(self._ended(text, start, what))
            failed.append(self._failed_span(text, start, len(text), len(text)))
            return False
        line, column = line_column(text, start)
        if isinstance(where, Fault):
            issues.append(make_issue(text, where.pos, f"{where.message} in {what} starting at line {line}, column {column}"))
            failed.append(self._failed_span(text, start, where.pos, end))
            return None
        issues.append(make_issue(text, start, f"{what} starting at line {line}, column {column} does not parse (where it "
                                              "breaks is not worked out: this text holds more broken calls than the "
                                              "parser examines in detail)"))
        failed.append(self._failed_span(text, start, start, end))
        return None

    # -- scanning ------------------------------------------------------------------------------
    def scan(self, text: str, strict: bool = False, start: int = 0) -> Scan:
        """The groups, result blocks and issues of `text` from `start` on (see `_groups`), results paired with calls."""
        issues: list[SyntaxIssue] = []
        failed: list[tuple[int, int]] = []
        groups, cut = self._groups(text, issues, failed, GrammarBudget(len(text) - start), start)
        if strict and issues:
            raise_issue(min(issues, key=lambda i: i.pos))
        found = Scan(groups, self._result_blocks(text, start), sorted(issues, key=lambda i: i.pos), failed, cut=cut)
        self._pair(text, found)
        return found

    def _pair(self, text: str, found: Scan) -> None:
        # Calls are numbered in text order over all groups (flat lists, not dicts of (group, call) pairs: on megabytes
        # of text the hash tables were most of the pairing's time). Runs of adjacent groups (and failed candidates,
        # which take a result of their own: the error text) are ranges of slots; a failed candidate's slot is -1.
        groups = found.groups
        first = [0] * (len(groups) + 1)
        for g, grp in enumerate(groups):
            first[g + 1] = first[g] + len(grp.calls)
        # Calls of a group the model never closed (hermes: the reply ended before </tool_call>) never ran, so no
        # result answers them: a result that would is forged, and is an issue rather than their result.
        unanswerable = bytearray(first[-1])
        for g, grp in enumerate(groups):
            if grp.style in self.unanswered_styles:
                unanswerable[first[g]:first[g + 1]] = b"\x01" * len(grp.calls)
        units: list[tuple[int, int, int]] = [(g.span[0], g.span[1], n) for n, g in enumerate(groups)]
        if self.failed_take_results:
            for s, e in found.failed:
                # A broken item of a group (`[good, 3]`) is no candidate of its own: the loop ran the group's good calls
                # and answered only them, so the item's slot would take a good call's result.
                g = bisect.bisect_right(groups, s, key=lambda grp: grp.span[0]) - 1
                if g < 0 or groups[g].span[1] < e:
                    units.append((s, e, -1))
        units.sort(key=lambda u: u[:2])
        runs: list[list[int]] = []  # each slot: a call's number, or -1 for a failed candidate
        run_ends: list[int] = []
        run_of = [0] * len(groups)  # the run each group is in
        last_end = -1
        # Failed candidates after the current run's last group. The loop answers a failed candidate only when it ends
        # the text (pending reports it then), and its result then ends the run; one that a group follows in its run
        # (an unclosed block before a good one) was never answered, so it takes a slot only if the run ends with it.
        failed_tail = 0
        for start, end, n in units:
            if not runs or _BLANK.fullmatch(text, last_end, start) is None:  # no copy of the prose between
                if runs:
                    runs[-1].extend([-1] * failed_tail)
                failed_tail = 0
                runs.append([])
                run_ends.append(end)
            if n >= 0:
                failed_tail = 0
                runs[-1].extend(range(first[n], first[n + 1]))
                run_of[n] = len(runs) - 1
            else:
                failed_tail += 1
            run_ends[-1] = end
            last_end = end
        if runs:
            runs[-1].extend([-1] * failed_tail)
        # Calls that carry an id, by id, in text order (ids made from a call repeat for equal calls): (end of its
        # group, call number, its run) each.
        by_id: dict[str, list[tuple[int, int, int]]] = {}
        for g, grp in enumerate(groups):
            for i, c in enumerate(grp.calls):
                if c.id is not None:
                    by_id.setdefault(c.id, []).append((grp.span[1], first[g] + i, run_of[g]))
        named_left: dict[str, _SharedId] = {}  # made when an id that several calls share is first answered
        by_id_done = bytearray(first[-1])  # calls with an id of their own that a result naming it answered
        runs_left = _Latest(len(runs))
        taken = [0] * len(runs)  # unanswered slots of a run are answered in order
        answers = found.answers = [-1] * first[-1]
        forged: list[int] = []  # results that would answer a call that never ran
        for r, block in enumerate(found.results):
            if block.call_id is not None and block.call_id in by_id:
                calls = by_id[block.call_id]
                if len(calls) == 1:  # the usual case: ids are unique
                    k = 0 if calls[0][0] <= block.span[0] and not by_id_done[calls[0][1]] else -1
                    if k == 0:
                        by_id_done[calls[0][1]] = 1
                else:
                    # Several calls share the id (a model reused one): the latest run before the result that has
                    # one unanswered, and in it the first, so the results of one run pair in order, never crosswise.
                    shared = named_left.get(block.call_id) or named_left.setdefault(block.call_id, _SharedId(calls))
                    k = shared.take(bisect.bisect_right(calls, block.span[0], key=lambda c: c[0]) - 1, answers)
                if k >= 0:
                    if unanswerable[calls[k][1]]:
                        forged.append(r)
                    else:
                        answers[calls[k][1]] = r
                    continue
            # The latest run that ends before the result and still has an unanswered slot.
            k = runs_left.find(bisect.bisect_right(run_ends, block.span[0]) - 1)
            while k >= 0:
                slots = runs[k]
                while taken[k] < len(slots) and slots[taken[k]] >= 0 and answers[slots[taken[k]]] >= 0:
                    taken[k] += 1
                if taken[k] < len(slots):
                    slot = slots[taken[k]]
                    taken[k] += 1
                    if slot >= 0 and unanswerable[slot]:
                        forged.append(r)
                    elif slot >= 0:
                        answers[slot] = r
                    break
                runs_left.remove(k)  # every slot answered (some by id): never looked at again
                k = runs_left.find(k - 1)
        if forged:
            for r in forged:
                found.issues.append(make_issue(text, found.results[r].span[0], self._forged_message))
            found.issues.sort(key=lambda i: i.pos)

    def parse(self, text: str, strict: bool = False) -> Parsed:
        with paused_gc(len(text)):
            found = self.scan(text, strict)
            calls = found.calls()
            issues = found.issues
            del found  # freed before the collector resumes, so its first collection walks the calls only
        return Parsed(text, calls, self.name, issues, tuple(calls))

    def result_spans(self, text: str) -> list[ResultSpan]:
        """For each run of result blocks (blocks apart only by white space, as `close` writes the results of a group
        of calls): the text the program writes there, from the first block's body through the last block and what
        `close` writes after it (hermes: the line break; Llama: the assistant's header), and before it the marker.

        The marker is the first block's opener when it is one of `result_markers` (hermes `<tool_response>`, mistral
        `[TOOL_RESULTS]`): decoding freely, a model says with it that its calls are done (BFCL's replies end there, a
        server's handed-back calls too), so it stays in the loss. Elsewhere (Llama's ipython header, which the model
        never writes: its turn ends with `<|eot_id|>`) the opener is the program's too and the marker is empty. Training
        learned every `</tool_response>`, and every later block's opener, before results covered the whole run."""
        blocks = self._result_blocks(text)
        trail = self._after_results()
        spans: list[ResultSpan] = []
        i = 0
        while i < len(blocks):
            first, last = blocks[i], i
            while last + 1 < len(blocks) and _BLANK.fullmatch(text, blocks[last].span[1], blocks[last + 1].span[0]):
                last += 1
            end = blocks[last].span[1]
            if trail and text.startswith(trail, end):
                end += len(trail)
            if text[first.marker[0]:first.marker[1]] in self.result_markers:
                spans.append((first.marker, (first.marker[1], end)))
            else:
                spans.append(((first.span[0], first.span[0]), (first.span[0], end)))
            i = last + 1
        return spans

    def _after_results(self) -> str:
        """What `close` writes after the last result block of a run (result_spans), read off a rendering."""
        probe = self._render_results([ToolCall("", ())], ["\ue000"])
        blocks = self._result_blocks(probe)
        return probe[blocks[-1].span[1]:] if blocks else ""

    # -- rendering -----------------------------------------------------------------------------
    def render_call(self, call: ToolCall) -> str:
        return self._render_group([call], "")

    def render(self, parsed: Parsed) -> str:
        """Groups whose calls are unchanged stay verbatim; a changed group is re-spelled in its own style, a changed
        result replaces its block (or gets one right after the calls), calls that are gone leave with their results."""
        text = parsed.text
        found = self.scan(text)
        originals = found.calls()
        where = {c.span: (g, i) for g, grp in enumerate(found.groups) for i, c in enumerate(grp.calls)}
        mine: list[list[ToolCall]] = [[] for _ in found.groups]
        new: list[ToolCall] = []
        for call in parsed.calls:
            home = where.get(call.span)
            if home is None:
                new.append(call)
            else:
                mine[home[0]].append(call)
        edits: list[tuple[int, int, str]] = []
        flat = 0
        for g, group in enumerate(found.groups):
            before = originals[flat:flat + len(group.calls)]
            flat += len(group.calls)
            now = mine[g]
            if now == before:
                continue
            kept = {c.span for c in now}
            same_calls = [(c.tool, c.args, c.id) for c in now] == [(c.tool, c.args, c.id) for c in before]
            if not same_calls:
                edits.append((*group.span, self._render_group(now, group.style) if now else ""))
            missing: list[ToolCall] = []
            for i, call in enumerate(group.calls):
                r = found.answers[flat - len(group.calls) + i]
                block = found.results[r] if r >= 0 else None
                updated = next((c for c in now if c.span == call.span), None)
                if updated is None or call.span not in kept:
                    if block is not None:
                        edits.append((*block.span, ""))
                    continue
                if updated.result == (block.text if block else None):
                    continue
                if block is not None:
                    edits.append((*block.span, "" if updated.result is None
                                  else self._render_results([updated], [updated.result])))
                elif updated.result is not None:
                    missing.append(updated)
            if missing:
                end = group.span[1]
                edits.append((end, end, self._render_results(missing, [str(c.result) for c in missing])))
        for call in new:
            body = self._render_group([call], "")
            if call.result is not None:
                body += self._render_results([call], [call.result])
            edits.append((call.span[0], call.span[1], body))
        return apply_edits(text, edits)

    # -- streaming -----------------------------------------------------------------------------
    #: The quotes that open strings inside a call (IncrementalParser counts brackets outside them), and whether a
    #: newline ends such a string (it does in Python literals, not in JSON, whose strings models break across lines).
    stream_quotes: str = '"'
    stream_newline_ends_strings: bool = False
    #: How far back from the end a call may have started without being found yet (its opener still being written).
    stream_lookback: int = 256

    @property
    def stream_signals(self) -> tuple[str, ...]:
        """Text whose arrival can make a call final (IncrementalParser parses again only then): the call markers."""
        return self.call_markers

    def settled(self, text: str) -> int:
        """How much of `text` more text cannot change: up to the end of its last call group (a closed block, list or
        object stays what it is). Used by IncrementalParser; a dialect that cannot tell before the end says 0."""
        return self._settled(text, self.scan(text))

    def _settled(self, text: str, found: Scan) -> int:
        return found.groups[-1].span[1] if found.groups else 0

    def _unsettled_starts(self, text: str, found: Scan) -> list[int]:
        """Where the groups more text may still change begin (past `_settled`), and the last candidate if it is open at
        the end (cut; one nested too deep reports where, not the end)."""
        limit = self._settled(text, found)
        starts = [g.span[0] for g in found.groups if g.span[1] > limit]
        if found.cut and found.failed:
            starts.append(found.failed[-1][0])
        return starts

    def stream_scan(self, text: str) -> tuple[list[ToolCall], int, bool]:
        """For IncrementalParser: the calls of `text` that more text cannot change; where a later parse must start
        (no text before it can still become a call: a failed candidate stays failed however the text goes on); and
        whether a call is being written there (rather than only, perhaps, its opener)."""
        found = self.scan(text)
        limit = self._settled(text, found)
        final = [c for g in found.groups if g.span[1] <= limit for c in g.calls]
        done = max((g.span[1] for g in found.groups if g.span[1] <= limit), default=0)
        starts = self._unsettled_starts(text, found)
        if starts:
            return final, max(done, min(starts)), True
        return final, max(done, len(text) - self.stream_lookback), False

    # -- the decoding loop ---------------------------------------------------------------------
    def _reply_end(self, text: str) -> int:
        """Where the model's call text ends: trailing whitespace and end-of-turn tokens left out."""
        end = len(text.rstrip())
        changed = True
        while changed:
            changed = False
            for trailer in self.trailers:
                if text.startswith(trailer, end - len(trailer)) and end >= len(trailer):
                    end = len(text[:end - len(trailer)].rstrip())
                    changed = True
        return end

    def pending(self, text: str) -> PendingCalls | None:
        """The unanswered calls of the run of groups that ends the text; a malformed last call is pending with its
        issue; a call still being written (the marker was a bracket inside it) is not pending yet."""
        return self.pending_from(text, 0)[0]

    def pending_from(self, text: str, start: int) -> tuple[PendingCalls | None, int]:
        if not 0 <= start <= len(text):  # a negative start would read from the end (str.find's indexing)
            raise ConfigError(f"pending_from: start {start} lies outside the text (0 to {len(text)}); pass 0, or what "
                              "the last look at a text this one continues returned")
        end = self._reply_end(text)
        if not text.endswith(self.call_markers, 0, end):
            return None, start
        found = self.scan(text, start=start)
        return self._pending(text, end, found), max(start, self._resume(text, end, found, start))

    def _resume(self, text: str, end: int, found: Scan, start: int) -> int:
        """Where the next look at a longer text may start: the first candidate still being written or not settled, or
        that ends the text (its calls or its error are pending now), and before it the run of groups that ends there
        (calls written next to them join their run); else the end. The text ends with a call marker, which no call
        opener can be partly written before, so no candidate starts before that and is not seen yet."""
        starts = self._unsettled_starts(text, found) + [s for s, e in found.failed if e >= end]
        anchor = min(starts, default=end)
        g = bisect.bisect_right(found.groups, anchor, key=lambda group: group.span[1]) - 1
        while g >= 0 and _BLANK.fullmatch(text, found.groups[g].span[1], anchor):
            anchor = found.groups[g].span[0]
            g -= 1
        return anchor

    def _pending(self, text: str, end: int, found: Scan) -> PendingCalls | None:
        if found.cut:
            return None
        last_group = found.groups[-1] if found.groups else None
        last_fail = max(found.failed, default=None)
        if last_fail is not None and last_fail[1] >= end and (last_group is None or last_fail[0] >= last_group.span[1]):
            issue = next((i for i in reversed(found.issues) if i.pos >= last_fail[0]), found.issues[-1])
            return PendingCalls((), (issue,), _Closing((None,)))
        if last_group is None or last_group.span[1] != end:
            return None
        if any(block.span[0] >= last_group.span[1] for block in found.results):
            return None
        # The run of adjacent groups that ends the text, walked back: `k` numbers the first call of group g (calls are
        # numbered over all groups, as in `found.answers`), and the groups' calls are joined once at the end (joining
        # them at each step, and looking calls up in the list of answers, made a run of n handed-off calls cost n³).
        answers = found.answers
        k = len(answers)
        parts: list[list[ToolCall]] = []
        g = len(found.groups) - 1
        while g >= 0:
            group = found.groups[g]
            k -= len(group.calls)
            parts.append([c for i, c in enumerate(group.calls) if answers[k + i] < 0])
            if g == 0 or not _BLANK.fullmatch(text, found.groups[g - 1].span[1], group.span[0]):
                break
            g -= 1
        calls = [c for part in reversed(parts) for c in part]
        if not calls:
            return None
        return PendingCalls(tuple(calls), (), _Closing(tuple(c.id for c in calls)))

    def close(self, pending: PendingCalls, results: Sequence[str]) -> str:
        """The result blocks for the pending calls (one error text for a malformed call)."""
        if pending.malformed:
            if len(results) != 1:
                raise ConfigError(f"a malformed {self.name} call takes one error text, got {len(results)}")
            return self._render_results([ToolCall("", ())], [self.defuse_result(str(results[0]))])
        if len(results) != len(pending.calls):
            raise ConfigError(f"close needs one result per pending call: {len(pending.calls)} calls, {len(results)} results")
        return self._render_results(pending.calls, [self.defuse_result(str(r)) for r in results])

    # -- replies -------------------------------------------------------------------------------
    def reply(self, generated: str, keep_calls: bool = True) -> str:
        """The generation as a person reads it; keep_calls=False cuts the calls and their result blocks out."""
        if keep_calls:
            return self._answer_part(generated)
        found = self.scan(generated)
        kept = cut_spans(generated, [g.span for g in found.groups] + [b.span for b in found.results] + found.failed)
        return re.sub(r"\s+", " ", self._strip_turns(kept)).strip()

    def _strip_turns(self, text: str) -> str:
        """`text` without the chat-format tokens the dialect's results bring (Llama's turn headers)."""
        return text

    # -- prompts ---------------------------------------------------------------------------------
    def prompt(self, question: str, tools: ToolSpecs | None, chat: ChatTemplate,
               history: Sequence[Mapping[str, str]] | None = None, few_shot: int | bool = True,
               instruction: PromptSource = None) -> str:
        """The conversation in the model's chat template with the tools handed to the template (`tools=`), as the model
        was trained to see them; when the template shows no tools (or `instruction` names a file), a system message of
        the dialect's own lists them. `few_shot` is unused: these formats are the model's own, taught in training."""
        return tools_prompt(self, question, tools, chat, history, instruction)

    def tool_instruction(self, schemas: Sequence[Mapping[str, Any]]) -> str:
        """A system message offering `schemas` in this format, for a chat template that shows no tools."""
        tools = "\n".join(dump(s) for s in schemas)
        example = self._render_group([ToolCall("tool_name", KeywordArgs({"argument": "value"}))], "")
        return (f"You can call these tools, described as JSON schemas:\n{tools}\n\nTo call a tool, write exactly:\n"
                f"{example}\nwith the tool's name and its arguments, then stop; the result is given to you. "
                "Then answer with the result.")

    def tool_message_text(self, content: str) -> str:
        """A `role: tool` message's content as this format writes a result (for a template without a tool role)."""
        return self._render_results([ToolCall("", ())], [content]).strip()
