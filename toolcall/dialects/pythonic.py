"""The pythonic dialect (Llama 3.2/4, ToolACE, BFCL): `[get_weather(city='Paris'), get_time()]`, never evaluated."""
from __future__ import annotations

import ast
import math
import re
import string
import sys
from collections.abc import Iterator, Sequence
from typing import Any, Literal, NamedTuple

from lark import Lark, Token, Tree

from ..calls import KeywordArgs, SyntaxIssue, ToolCall
from .base import (
    CALL_HEAD_CHARS,
    CALL_NAME,
    MAX_CALL_CHARS,
    MAX_DEPTH,
    ZERO_WIDTH_SPACE,
    GrammarBudget,
    QuietString,
    QuietValue,
    load_parser,
    make_issue,
    name_then_paren,
    nesting_fault,
    rule,
    writable_name,
)
from .llama3_json import LlamaResults
from .structured import (
    Fault,
    Group,
    StructuredDialect,
    Truncated,
    closing_bracket,
    dump,
    keyword_args,
    py_literal,
    py_string_fault,
    py_value,
)

PYTHON_TAG = "<|python_tag|>"
# Where a call list may start: "[" before `name(` (dotted names too), or the python tag before such a list.
# Prose brackets ([1], [a, b], [link](url)) never match.
_CALL_AHEAD = r"\s*[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\s*\("  # what follows the "["
_CALL_BRACKET = re.compile(rf"\[(?={_CALL_AHEAD})")
_CANDIDATE = re.compile(r"(?:<\|python_tag\|>\s*)?" + _CALL_BRACKET.pattern)


# A Python string on one line, by its quote. Possessive: its two kinds of piece never overlap, so nothing is lost.
_STRING = {q: rf"{q}(?:[^{q}\\\n]++|\\.)*+{q}" for q in "'\""}
_CLOSED_STRING = {q: re.compile(pattern) for q, pattern in _STRING.items()}


class _Pieces:
    """The pieces of a call list a regex finds with `finditer` (Python strings, then the alternatives `rest`), found in
    time linear in the text. A string that does not close on its line fails only at the line's end, and so does every
    later one on its line with the same quote (the first one's reading took each of them for an escaped quote, and a
    reading from one goes on as the first one's did): a plain regex tried each of them again, which made a line of
    `\\"` quadratic (40,000 characters took 7 s). Here such a quote is a lone quote without trying, up to the line's
    end. `lone`: whether a lone quote is a piece (else it is skipped, as the regex without `['"]` skips it)."""

    def __init__(self, rest: str, lone: bool) -> None:
        self._lone = lone
        # By which kinds of quote start no string where the search starts ("'", '"'): a lone quote matches last.
        self._patterns = {(single, double): re.compile("|".join((
            "'" if single else _STRING["'"], '"' if double else _STRING['"'], rest, "['\"]")))
            for single in (False, True) for double in (False, True)}

    def finditer(self, text: str, pos: int = 0, endpos: int = sys.maxsize) -> Iterator[re.Match[str]]:
        endpos = min(endpos, len(text))
        lone_to = {"'": -1, '"': -1}  # the quotes of each kind before this start no string
        while True:
            dead = {q: pos < lone_to[q] for q in lone_to}  # the kinds read as lone quotes from `pos` on
            for m in self._patterns[dead["'"], dead['"']].finditer(text, pos, endpos):
                c = m.group()
                if c != "'" and c != '"':
                    yield m
                    continue
                if dead[c] and m.start() >= lone_to[c]:
                    pos = m.start()  # past the line where its kind starts no string: read it as a string's quote
                    break
                if self._lone:
                    yield m
                if not dead[c]:  # its string does not close: nor do the later ones of its kind on its line
                    line_end = text.find("\n", m.start(), endpos)
                    lone_to[c] = endpos if line_end < 0 else line_end
                    pos = m.end()
                    break
            else:
                return


# Python strings (skipped) and single brackets, for measuring how deep a call list nests.
_PIECES = _Pieces(r"[\[\](){}]", lone=False)


# The same, with a lone quote (a string that does not close on its line): for finding where a call list closes.
_CLOSE_PIECES = _Pieces(r"[\[\](){}]", lone=True)


def _closes_before(text: str, pos: int, end: int) -> bool:
    """Whether the Python string literal whose quote is `text[pos]` closes on its line before `end`."""
    return _CLOSED_STRING[text[pos]].match(text, pos, end) is not None


#: What the pythonic grammar reads as a call's name: names joined by dots.
_DOTTED_NAME = re.compile(rf"{CALL_NAME.pattern}(\.{CALL_NAME.pattern})*")
#: What it reads as a keyword: an identifier in any script (the grammar's KEYWORD).
_KEYWORD = re.compile(r"[^\W\d]\w*")

class _ListFault(ValueError):
    """A call list the grammar reads but a caller cannot take: a number no JSON holds, a keyword given twice."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.pos = pos


# An integer of more than one digit whose first is 0 ("01"; "00" is 0, as Python reads it).
_LEADING_ZERO = re.compile(r"[+-]?0+[1-9]\d*")


def _check_numbers(tree: Tree | Token, offset: int) -> None:
    """Raise _ListFault at the first number literal in `tree` that is no finite JSON number (1e999, or thousands of
    digits), which could not be written back as JSON."""
    for token in (tree.scan_values(lambda t: isinstance(t, Token) and t.type == "NUMBER") if isinstance(tree, Tree)
                  else [tree] if tree.type == "NUMBER" else []):
        raw = str(token).replace("_", "")
        digits = len(raw.lstrip("+-"))
        if digits > 4000:
            raise _ListFault(f"a number of {digits} digits is too long", offset + (token.start_pos or 0))
        if any(c in raw for c in ".eE") and not math.isfinite(float(raw)):
            raise _ListFault(f"the number {raw[:40]} is too large to be finite", offset + (token.start_pos or 0))
        if _LEADING_ZERO.fullmatch(raw):
            sign = raw[0] if raw[0] in "+-" else ""
            raise _ListFault(f"an integer is written without leading zeros, as Python reads it: {raw[:40]} (write "
                             f"{sign}{raw.lstrip('+-').lstrip('0')[:40]}, or the text in quotes)",
                             offset + (token.start_pos or 0))


def _check_strings(tree: Tree | Token, offset: int) -> None:
    """Raise _ListFault at the first escape in a string of `tree` that Python refuses (`\\N{NO SUCH NAME}`, `\\x4`):
    kept as written, it made a value that Python never gives, and no issue said so."""
    for token in (tree.scan_values(lambda t: isinstance(t, Token) and t.type == "STRING") if isinstance(tree, Tree)
                  else [tree] if tree.type == "STRING" else []):
        fault = py_string_fault(str(token))
        if fault is not None:
            raise _ListFault(fault[1], offset + (token.start_pos or 0) + fault[0])


# Python's own parser reads the common call list in C; what the grammar would read differently (escapes, string
# prefixes, other number bases, comments, parenthesised values) is left to Lark.
# A quote that starts no string (last) is skipped: the list then fails in Python's parser, where it says why.
_LIST_PIECES = _Pieces(r"""[\[\](){}#\\]|[A-Za-z_]['"]|0[xXoObB]""", lone=True)
_CONSTANTS = {"true": True, "false": False, "null": None}
# The escapes left to Python's parser. An octal one (Python warns past \377), \N{name} (Python's error for an unknown
# name says not where) and an unknown escape (a warning) go to the grammar: py_string reads them as Python does, and
# `_check_strings` places an issue at one Python refuses.
_SHARED_ESCAPE = re.compile(r"""\\(?:[ntr\\'"abfv]|0(?![0-7])|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})""")


class _NotLiteral(Exception):
    """An AST the grammar would not read as a literal the same way."""


def _literal(node: ast.expr) -> Any:
    """The value of a literal node as py_value gives it (tuples become lists), or _NotLiteral."""
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, float) and not math.isfinite(value):
            raise _NotLiteral
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise _NotLiteral  # bytes, complex, Ellipsis
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, (ast.List, ast.Tuple)):  # a tuple has its own parentheses, which the caller counts
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        out: dict[Any, Any] = {}
        for key_node, value_node in zip(node.keys, node.values):
            if key_node is None:
                raise _NotLiteral  # **spread
            key = _literal(key_node)
            out[key if isinstance(key, (str, int, float, bool)) or key is None else dump(key)] = _literal(value_node)
        return out
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) and isinstance(node.operand, ast.Constant)
            and type(node.operand.value) in (int, float) and node.operand.col_offset == node.col_offset + 1):
        number = node.operand.value
        assert isinstance(number, (int, float))  # checked above
        return -number if isinstance(node.op, ast.USub) else number
    raise _NotLiteral


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name) and node.id.isascii():
        return node.id
    if isinstance(node, ast.Attribute) and node.attr.isascii():
        return f"{_dotted(node.value)}.{node.attr}"
    raise _NotLiteral


def _fast_list(text: str, start: int, end: int,
               limit: int) -> tuple[list[ToolCall], int] | Fault | Truncated | None:
    """The calls of the list whose "[" is at `text[start]` (read no further than `end`, the next candidate) and where
    it ends, read by Python's parser; else the grammar must read it, and this is where it breaks as a cheap reading
    sees it (still open at `end`, where Python's parser stops) or None (any shape the two might read differently). A
    list one of whose strings holds the next candidate (`[f(x="[g(")]`, which fails at `end`) is read on as far as it
    reaches, up to `limit`: a well-formed list is calls, read in C, however much text follows it and whatever is left
    of the grammar's budget."""
    got, open_quote = _window_list(text, start, end)
    if open_quote and not isinstance(got, tuple) and _quoted_to_end(text, start, end, end):
        return Truncated(end)
    if open_quote and limit > end and not isinstance(got, tuple):
        reach = _extent(text, start, end, limit)
        if reach.how == "closed" and reach.plain:
            whole = _parsed_list(text, start, reach.end, reach.parens)
            if isinstance(whole, tuple):
                return whole
    return got


def _window_list(text: str, start: int,
                 end: int) -> tuple[tuple[list[ToolCall], int] | Fault | Truncated | None, bool]:
    """`_fast_list` read no further than `end`, and whether a quote in it starts no string there (one that runs past
    `end` may hold the next candidate)."""
    depth = 0
    parens = 0
    stop = -1
    open_quote = False
    for m in _LIST_PIECES.finditer(text, start, end):
        c = m.group()
        if len(c) == 1:
            if c in "[({":
                depth += 1
                parens += c == "("
                if depth > MAX_DEPTH:
                    return None, open_quote  # the grammar's path reports it
            elif c in "])}":
                depth -= 1
                if depth == 0:
                    stop = m.end()
                    break
            elif c in "'\"":
                open_quote = True
            else:
                return None, open_quote  # a comment or a backslash outside a string
        elif c[0] not in "'\"" or ("\\" in c and "\\" in _SHARED_ESCAPE.sub("", c)):
            return None, open_quote  # a string prefix, another number base, an escape the two read differently
    if stop < 0:
        return Truncated(end), open_quote
    return _parsed_list(text, start, stop, parens), open_quote


def _parsed_list(text: str, start: int, stop: int, parens: int) -> tuple[list[ToolCall], int] | Fault | None:
    """The calls of the list `text[start:stop]` (its brackets closed there, `parens` of them "(") read by Python's
    parser, where that parser stops in it, or None (a shape the grammar might read differently)."""
    region = text[start:stop]
    if "\r" in region:
        return None  # Python's parser ends a line at a lone "\r" too; the positions below count "\n" only
    try:
        tree = ast.parse(region, mode="eval")
    except SyntaxError as err:
        return _syntax_fault(region, start, err)
    except (ValueError, RecursionError, MemoryError):
        return None
    if not isinstance(tree.body, ast.List) or not tree.body.elts:
        return None
    calls: list[ToolCall] = []
    ascii_only = ascii_region = region.isascii()
    lines = None if ascii_only else region.split("\n")
    line_starts = None
    if lines is not None:
        line_starts = [0]
        for line in lines[:-1]:
            line_starts.append(line_starts[-1] + len(line) + 1)

    def offset(lineno: int, col: int) -> int:
        if lines is None or line_starts is None:
            return start + (col if lineno == 1 else 0)
        return start + line_starts[lineno - 1] + len(lines[lineno - 1].encode("utf-8")[:col].decode("utf-8"))

    try:
        for node in tree.body.elts:
            if not isinstance(node, ast.Call) or node.args or any(k.arg is None for k in node.keywords):
                return None
            if not ascii_region and (
                    not text.startswith(_dotted(node.func), offset(node.func.lineno, node.func.col_offset))
                    or any(not text.startswith(k.arg, offset(k.lineno, k.col_offset))
                           for k in node.keywords if k.arg is not None)):
                # Python's parser normalises a name (NFKC: "ﬁle" is "file"); the grammar reads it as written (a tool's
                # name is ASCII, so `[ﬁle(a=1)]` is no call; a keyword is kept as written).
                return None
            if len({k.arg for k in node.keywords}) < len(node.keywords):
                return None  # a keyword repeated: the grammar's reading says where
            if ascii_only and (node.lineno != 1 or node.end_lineno != 1):
                lines = region.split("\n")  # a multi-line list: positions by line
                line_starts = [0]
                for line in lines[:-1]:
                    line_starts.append(line_starts[-1] + len(line) + 1)
                ascii_only = False
            kwargs = {str(k.arg): _literal(k.value) for k in node.keywords}
            span = (offset(node.lineno, node.col_offset), offset(node.end_lineno or 1, node.end_col_offset or 0))
            calls.append(ToolCall(_dotted(node.func), KeywordArgs(kwargs), None, span))
    except (_NotLiteral, RecursionError):
        return None
    if parens != len(calls) + sum(isinstance(n, ast.Tuple) for n in ast.walk(tree.body)):
        return None  # a parenthesised value, `(1)`: the grammar's reading of it is the one that counts
    return calls, stop


# Strings, a quote that starts none (a string that does not close on its line), single brackets, a backslash, and what
# Python's parser and the grammar read differently but that ends no string (a comment's "#", another number base).
_EXTENT_PIECES = _Pieces(r"[\[\](){}#\\]|0[xXoObB]", lone=True)
_PREFIX_CHARS = frozenset(string.ascii_letters + "_")  # before a quote: a string prefix (r'', b'') or no Python


class _Extent(NamedTuple):
    """How far a call list reaches as Python's tokenizer reads it (see `_extent`). `how`: "closed" (`end` is just past
    its closing bracket), "candidate" (it runs into a candidate outside its strings, which starts at `end`), "quote" (a
    quote at `end` starts no string), "backslash" (one at `end` outside strings), "open" (open at the limit, `end`)."""

    end: int
    how: Literal["closed", "candidate", "quote", "backslash", "open"]
    parens: int  # the "(" in it, which tell tuples and parenthesised values from calls
    plain: bool  # nothing in it that Python's parser and the grammar read differently (see `_window_list`)


def _extent(text: str, start: int, end: int, limit: int) -> _Extent:
    """How far the call list whose "[" is at `text[start]` reaches, no further than `limit`: to where its brackets
    close, or to the first candidate outside its strings (no value starts with a name), which is the next one, at
    `end`, unless a string of the list holds that. It stops where Python's tokenizer does, at a quote that starts no
    string and at a backslash outside strings; then at any place in the text at most three such readings are under way
    (one outside strings, one inside a '-string, one inside a "-string: a reading that starts inside another's string
    never falls into step with it, which would take the same quote as an opening and a closing one), so reading every
    candidate this way takes time linear in the text."""
    depth = 0
    parens = 0
    plain = True
    for m in _EXTENT_PIECES.finditer(text, start, limit):
        c = m.group()
        at = m.start()
        if c[0] in "'\"":
            if len(c) == 1:
                return _Extent(at, "quote", parens, plain)
            if plain and (text[at - 1] in _PREFIX_CHARS or ("\\" in c and "\\" in _SHARED_ESCAPE.sub("", c))):
                plain = False  # a string prefix, or an escape the two read differently
        elif c in "[({":
            if c == "[" and at >= end and _CALL_BRACKET.match(text, at):
                tag = text.rfind(PYTHON_TAG, start, at)
                begins = tag if tag >= 0 and not text[tag + len(PYTHON_TAG):at].strip() else at
                return _Extent(begins, "candidate", parens, plain)
            depth += 1
            parens += c == "("
            plain = plain and depth <= MAX_DEPTH
        elif c in "])}":
            depth -= 1
            if depth == 0:
                return _Extent(m.end(), "closed", parens, plain)
        elif c == "\\":
            return _Extent(at, "backslash", parens, plain)
        else:
            plain = False  # a comment, another number base
    return _Extent(limit, "open", parens, plain)


_LONG_NUMBER = re.compile(r"\d{4300,}")


def _syntax_fault(region: str, start: int, err: SyntaxError) -> Fault:
    """Where Python's parser stopped reading the call list `region` (at `start` in the text)."""
    digits = _LONG_NUMBER.search(region) if err.msg.startswith("Exceeds the limit") else None
    if digits is not None:
        return Fault(start + digits.start(), f"a number of {len(digits.group())} digits is too long")
    lines = region.split("\n")
    line = min(max(err.lineno or 1, 1), len(lines))
    at = sum(len(s) + 1 for s in lines[:line - 1]) + max((err.offset or 1) - 1, 0)
    return Fault(start + min(at, len(region) - 1), err.msg)


def _quoted_to_end(text: str, start: int, window: int, limit: int) -> bool:
    """Whether the call list whose "[" is at `text[start]` meets, before `window` (the next candidate, or the end of the
    text), a string still being written at the end of the text (`limit`, its last line): one that starts before any
    bracket closes the list, in a list that reads as calls up to it. The candidates after it lie in that string. A
    cheap reading that took that string's brackets for the list's (`"1) item]"`) called a long string argument
    malformed at the "]" where the model paused, mid-argument."""
    if limit != len(text):
        return False
    reach = _extent(text, start, window, limit)
    return (reach.how == "quote" and text.find("\n", reach.end, limit) < 0 and text[reach.end - 1] not in _PREFIX_CHARS
            and _calls_up_to(text, start, reach.end))


_CLOSER = {"[": "]", "(": ")", "{": "}"}


def _calls_up_to(text: str, start: int, quote: int) -> bool:
    """Whether the call list whose "[" is at `text[start]` reads, as Python's parser reads it, as calls with keyword
    arguments up to the string the quote at `text[quote]` opens (that string and the brackets open there closed for the
    test): a list still being written inside the string, not one broken before it (`[see(above) and "...`)."""
    stack: list[str] = []
    parens = 0
    for m in _PIECES.finditer(text, start, quote):
        c = m.group()
        if len(c) > 1:
            continue
        if c in _CLOSER:
            stack.append(c)
            parens += c == "("
        elif not stack or _CLOSER[stack.pop()] != c:
            return False
    if not stack or quote - start > MAX_CALL_CHARS:
        return False
    probe = text[start:quote] + text[quote] * 2 + "".join(_CLOSER[c] for c in reversed(stack))
    return isinstance(_parsed_list(probe, 0, len(probe), parens), tuple)


def _break(text: str, start: int, end: int) -> Fault | Truncated:
    """Where the call list at `text[start]` (read no further than `end`) breaks, read in C (for when the grammar's
    budget is spent): still open at `end`, where Python's parser stops, or its start."""
    if _quoted_to_end(text, start, end, end):
        return Truncated(end)
    close = closing_bracket(text, start, end, _PIECES)
    if close is None:
        return Truncated(end)
    region = text[start:close]
    try:
        ast.parse(region, mode="eval")
    except SyntaxError as err:
        return _syntax_fault(region, start, err)
    except (ValueError, RecursionError, MemoryError):
        pass
    return Fault(start, "a pythonic call list holds only calls with named literal arguments")


def _reread_end(text: str, start: int, end: int, limit: int) -> int:
    """How far the grammar reads again the call list whose "[" is at `text[start]` (`end`: the next candidate): as far
    as `_extent` finds it reaches, past a quote that starts no string or a backslash only by that character (the
    grammar fails there whatever follows), or to `limit` where that quote's line runs to it (more may follow)."""
    reach = _extent(text, start, end, limit)
    if reach.how == "quote" and text.find("\n", reach.end, limit) < 0:
        return limit
    return reach.end + 1 if reach.how in ("quote", "backslash") else reach.end


# The content of a string of a call list still being written that text added inside it cannot change: no quote of
# its kind (an escaped one is content), line break or NUL, no special token ("<|"), no call opener ("[" before
# `name(`); any other escape is content too while the string is open (the grammar and Python's tokenizer both read
# `\\.` so).
_PLAIN_IN = {q: re.compile(rf"(?:[^{q}\\\n\r\x00<\[]|<(?!\|)|\[(?!{_CALL_AHEAD})|\\[^\n\r\x00])*+") for q in "'\""}
# What a call list still being written may not hold for QuietValue: a call opener (a list the grammar would read on
# its own, or one quoted in a string), a special token or a result turn ("<|"), three quotes (one string to Python,
# three to the grammar) and "\r" (a line end to Python's parser, not to the grammar).
_UNSURE = re.compile(rf"""\[(?={_CALL_AHEAD})|<\||\r|'''|\"\"\"""")
# Whole strings, and outside them a quote that starts none (on its line), "#" or a backslash.
_STRING_STATE = _Pieces(r"[#\\]", lone=True)


def _outside_broken_lists(groups: list[Group], failed: list[tuple[int, int]]) -> list[Group]:
    """The groups that lie in no broken list's span begun before them: in `[f(x="[g(y=1)]" 2)]` the `[g(y=1)]` is text
    the broken list quotes, not a call (the loop stopped at its "]" while the string around it was open, and left it
    alone; read as a call afterwards, it would take the result of the next call the loop did run)."""
    if not failed or not groups:
        return groups
    spans = sorted(failed)
    kept: list[Group] = []
    reach, i = -1, 0
    for group in groups:
        while i < len(spans) and spans[i][0] < group.span[0]:
            reach = max(reach, spans[i][1])
            i += 1
        if reach < group.span[1]:
            kept.append(group)
    return kept


def _parser() -> Lark:
    return load_parser("pythonic.lark", ("start",))


class PythonicDialect(LlamaResults, StructuredDialect):
    """Calls written as a Python list of keyword-argument calls with literal values, anywhere in the text.

    The list is parsed with Lark (grammars/pythonic.lark) and its literals are turned into values; nothing is
    evaluated. A positional argument or a non-literal value (a variable, an expression) is a syntax issue. Results
    are Llama's `ipython` turns (`<|start_header_id|>ipython<|end_header_id|>\\n\\n{result}<|eot_id|>`), one per call
    in order, as Llama 3.2/4's chat template writes `role: tool` messages; `close` ends the assistant turn, writes
    them, and opens the next assistant turn. The loop pauses at every "]" and runs the calls once the list closes.
    """

    name = "pythonic"
    call_markers = ("]",)
    end_markers = ()
    open_marker = ""  # "[" also opens prose brackets and lists, so it is never banned or triggered
    call_start = "["
    call_prefixes = (PYTHON_TAG,)
    trailers = ("<|eot_id|>", "<|eom_id|>")
    failed_take_results = False  # "[see(above)]" in prose is an issue, not a call awaiting a result
    stream_quotes = "'\""
    stream_newline_ends_strings = True

    def _groups(self, text: str, issues: list[SyntaxIssue], failed: list[tuple[int, int]],
                budget: GrammarBudget, start: int = 0) -> tuple[list[Group], bool]:
        parser = _parser()
        groups: list[Group] = []
        cut = False
        match = _CANDIDATE.search(text, start)
        while match is not None:
            start = match.start()
            following = _CANDIDATE.search(text, match.end())
            # First read no further than the next candidate (so many unclosed lists are read once, not once each);
            # only a list that runs into it inside a string of its own (`[f(x="[g(")]`) is read on, as far as it
            # reaches (`_extent`), up to MAX_CALL_CHARS.
            end = len(text) if following is None else following.start()
            bracket = start + (text.index("[", start) - start if text.startswith(PYTHON_TAG, start) else 0)
            window, limit = min(end, start + MAX_CALL_CHARS), min(len(text), start + MAX_CALL_CHARS)
            fast = _fast_list(text, bracket, window, limit)
            if isinstance(fast, tuple):
                calls, stop = fast
                groups.append(Group((start, stop), calls, "tag" if text.startswith(PYTHON_TAG, start) else ""))
                cut = False
                match = following if following is not None and following.start() >= stop else _CANDIDATE.search(text, stop)
                continue
            left = budget.left
            got = self._list(parser, text, start, window, issues, failed, budget, fast, end)
            # Read again only when a string was open at the next candidate (it may hold `[name(`): a list that runs
            # into the next candidate otherwise fails there whatever follows (no value starts with a name). A string
            # the grammar refused but that closes before the next candidate (`[QA("a b")]`, positional) is not open
            # there, and reading the rest of the text again for it would spend the budget that later lists need.
            # It is read again only as far as it reaches: read to the end of the text, a broken list cost the budget
            # more the more text followed it, and later lists' answers depended on that.
            # Past the grammar's budget (nothing was spent on it) the issue is placed the cheap way, not at the quote: a
            # list whose string, still being written at the end of the text, holds the next candidate is read again all
            # the same (the candidate after it was read as a call and run, mid-argument).
            if (got is None and following is not None and issues and failed[-1][0] == start
                    and ((issues[-1].pos < end and text[issues[-1].pos] in "'\""
                          and not _closes_before(text, issues[-1].pos, end))
                         or (budget.left == left and _quoted_to_end(text, bracket, window, limit)))):
                issues.pop()
                failed.pop()
                got = self._list(parser, text, start, _reread_end(text, bracket, window, limit), issues, failed, budget)
            if got is None and end - start > MAX_CALL_CHARS and failed and failed[-1][0] == start:
                # Longer than the parser reads: the list is malformed (whatever the parser made of its start), and
                # ends where its brackets close (the loop then gives the model its error), or is still being written
                # while they are open at the end of the text.
                close = closing_bracket(text, start, end, _CLOSE_PIECES, newline_ends_strings=True)
                if close is not None:
                    failed[-1] = (start, max(failed[-1][1], close))
                elif end == len(text):
                    got = False
            cut = got is False
            if cut:
                # Still being written, it runs to the end of the text: the candidates after it lie inside it, and a
                # `[g(x=1)]` in its string argument is text it quotes, not a call (the loop ran it mid-argument).
                break
            stop = match.end()
            if isinstance(got, tuple):
                tree, stop = got
                calls = [self._call(c, start) for c in tree.children if isinstance(c, Tree) and rule(c) == "call"]
                if calls:  # a list the C reader left to the grammar (`;` between calls, `\d`): calls never use up
                    budget.refund(left - budget.left - budget.START_COST)  # the budget: all its reads, one or two
                groups.append(Group((start, stop), calls, "tag" if text.startswith(PYTHON_TAG, start) else ""))
            match = following if following is not None and following.start() >= stop else _CANDIDATE.search(text, stop)
        return _outside_broken_lists(groups, failed), cut

    def may_open_call(self, text: str) -> bool:
        # A call list is "[" and a (dotted) name and "(", white space allowed between them: "[1, 2]", "[see the docs]"
        # and "['a', 'b']" are lists or prose from their first character that cannot be one.
        return not text.startswith("[") or name_then_paren(text, 1, dotted=True, spaced=True)

    def _head_is_call(self, text: str) -> bool:
        # "[name(" is a call begun; "[x2" at a cut may be a list or prose as well as a call's name, and stays.
        return text.startswith("[") and self.may_open_call(text) and "(" in text[:CALL_HEAD_CHARS]

    def quiet_string(self, text: str, start: int) -> QuietString | None:
        """Quiet where the text from `start` (settled calls, then the list still being written) ends inside a plain
        string argument: one without a prefix, begun on the last line, whose text so far holds no break."""
        if text.find('"""', start) >= 0 or text.find("'''", start) >= 0:
            return None  # a triple-quoted string is read as three quotes here
        for m in _STRING_STATE.finditer(text, start):
            piece, at = m.group(), m.start()
            if len(piece) > 1:
                if text[at - 1] in _PREFIX_CHARS or _CANDIDATE.search(text, at, m.end()) is not None:
                    return None  # f"{x["y"]}" nests quotes; a list quoted in a string may be the one cut at the end
                continue
            if piece not in "'\"" or text[at - 1] in _PREFIX_CHARS or _PLAIN_IN[piece].fullmatch(text, at + 1) is None:
                return None
            return QuietString(len(text), at + 1, start + MAX_CALL_CHARS - 1, _PLAIN_IN[piece])
        return None

    def quiet_value(self, text: str, start: int) -> QuietValue | None:
        """Quiet where the text from `start` is one call list still being written that the grammar reads so far and
        that ends inside a call's arguments (data: `[plot(points=[[1, 2], [3, 4], `)."""
        first = _CANDIDATE.search(text, start)
        if first is None or _CANDIDATE.search(text, first.end()) is not None:
            return None  # one list alone: a second may lie in a string of the first, or the first may be broken
        return QuietValue.after(_parser(), "start", text, first.end() - 1, first.end(), start + MAX_CALL_CHARS - 1,
                                _UNSURE, _PLAIN_IN)

    def _list(self, parser: Lark, text: str, start: int, end: int, issues: list[SyntaxIssue],
              failed: list[tuple[int, int]], budget: GrammarBudget,
              known: Fault | Truncated | None = None, region_end: int | None = None) -> tuple[Tree, int] | None | bool:
        """The call list at `start` read no further than `end` (nor than its closing "]"), as `_candidate` gives it
        (`known`: where the C reader found it breaks, if it did); nesting deeper than MAX_DEPTH is an issue before any
        parse, the list taking the text up to where its brackets close (before `region_end`, the next candidate), or
        cut off while they are open at the end of the text: the loop gives the model its error once the list is
        written, as for any broken call."""
        # nesting_fault reads its pieces with `finditer` alone; its annotation names the compiled regex only.
        deep = nesting_fault(text, start, end, _PIECES)
        if deep is not None:
            issues.append(make_issue(text, deep, f"arguments nested deeper than {MAX_DEPTH} levels in a pythonic call "
                                                 "list"))
            region_end = end if region_end is None else region_end
            close = closing_bracket(text, start, region_end, _CLOSE_PIECES, newline_ends_strings=True)
            failed.append((start, deep + 1 if close is None else close))
            return False if close is None and region_end >= len(text) else None
        if not isinstance(known, Truncated):
            # No further than its closing "]" where it has one: charged up to the next candidate or the end of the
            # text, a list only the grammar reads (`;` between calls) was lost once about 1,100 characters followed it.
            reach = _extent(text, start, end, end)
            if reach.how == "closed" and text[reach.end - 1] == "]":
                end = reach.end
        got = self._candidate(parser, text, start, end, ("]",), "a pythonic call list", issues, failed, budget,
                              lambda: known if known is not None else _break(text, start, end))
        if not isinstance(got, tuple):
            return got
        try:
            for call in got[0].children:
                if isinstance(call, Tree):
                    named: set[str] = set()
                    for kwarg in call.children:
                        if isinstance(kwarg, Tree):
                            key = kwarg.children[0]
                            if str(key) in named:  # Python refuses the call; the last value must not win silently
                                raise _ListFault(f"keyword argument {str(key)!r} repeated",
                                                   start + (getattr(key, "start_pos", None) or 0))
                            named.add(str(key))
                            _check_numbers(kwarg.children[1], start)
                            _check_strings(kwarg.children[1], start)
        except _ListFault as err:
            issues.append(make_issue(text, err.pos, f"{err} in a pythonic call list"))
            failed.append((start, got[1]))
            return None
        return got

    @staticmethod
    def _call(tree: Tree, offset: int) -> ToolCall:
        name = ".".join(str(c) for c in tree.children if isinstance(c, Token))
        kwargs = {str(k.children[0]): py_value(k.children[1]) for k in tree.children if isinstance(k, Tree)}
        return ToolCall(name, KeywordArgs(kwargs), None, (offset + tree.meta.start_pos, offset + tree.meta.end_pos))

    def defuse_result(self, result: str) -> str:
        """Llama's turn tokens broken, and every `[` before `name(` too: calls are read anywhere in the text, so a
        result holding `[f(x=1)]` would otherwise be a call the model never wrote."""
        return _CANDIDATE.sub(lambda m: m.group() + ZERO_WIDTH_SPACE, super().defuse_result(result))

    def _render_group(self, calls: Sequence[ToolCall], style: str) -> str:
        for c in calls:   # a name or keyword Python cannot read made text that parsed back to no call
            writable_name(c.tool, self.name, _DOTTED_NAME)
            for key in keyword_args(c, self.name):
                writable_name(key, self.name, _KEYWORD)
        body = ", ".join(f"{c.tool}({', '.join(f'{k}={py_literal(v)}' for k, v in keyword_args(c, self.name).items())})"
                         for c in calls)
        return f"{PYTHON_TAG if style == 'tag' else ''}[{body}]"
