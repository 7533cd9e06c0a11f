"""The Dialect interface and the helpers every dialect shares: Lark loading, issues, argument quoting."""
from __future__ import annotations

import bisect
import functools
import gc
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lexer import LexerThread

from ..calls import Parsed, PendingCalls, SyntaxIssue, ToolCall
from ..errors import ConfigError, DialectSyntaxError
from ..specs import ToolSpec, ToolSpecs
from .prompt_data import ChatTemplate, PromptSource

#: ((marker start, marker end), (result start, result end)) character offsets of one tool result in a text.
ResultSpan = tuple[tuple[int, int], tuple[int, int]]

# Characters that force a canonical argument into double quotes: without them the grammar would split
# or end the argument there, or strip them away.
_NEEDS_QUOTES = re.compile(r"""[,()\[\]"'\\\n]|^\s|\s$|^$""")
_ESCAPE = re.compile(r"\\(.)", re.S)
_NEWLINE = re.compile("\n")

#: The most characters one call candidate may span. Text past it is not read as part of the call (the candidate is
#: reported), so no call, however hostile, makes a parse read more than this per candidate.
MAX_CALL_CHARS = 65_536
#: The deepest nesting of brackets a call's arguments may have; deeper is reported, never recursed into.
MAX_DEPTH = 100


_GC_GUARD = threading.Lock()
_gc_holders = 0
_gc_was_enabled = False
#: Texts at least this long are parsed with Python's cyclic collector paused (see paused_gc).
PAUSE_GC_CHARS = 262_144


@contextmanager
def paused_gc(chars: int) -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a long text is parsed.

    A parse makes objects in proportion to its text (calls, values, issues) and no reference cycles, but the collector
    walks every live object at each full collection, so on megabytes of text it costs more than linear time (the 8 MB /
    1 MB time ratio was 9.6 with it, 8.6 without). Parses on several threads share one pause; it ends with the last.
    """
    global _gc_holders, _gc_was_enabled
    if chars < PAUSE_GC_CHARS:
        yield
        return
    with _GC_GUARD:
        if _gc_holders == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_holders += 1
    try:
        yield
    finally:
        with _GC_GUARD:
            _gc_holders -= 1
            if _gc_holders == 0 and _gc_was_enabled:
                gc.enable()


class GrammarBudget:
    """How much more text the grammar may read, in one parse, to say why call candidates failed.

    Lark reads dense call text at ~100,000 characters/s and spends ~30 µs starting each parse, so a text made of many
    broken candidates would cost far more per character than text of good calls (which are read in C). Each grammar
    read is charged its characters plus a start cost (given back when it finds calls); past the budget a broken
    candidate is still reported, at a
    place a cheap reading finds (where the JSON decoder stops, where the brackets are left open, or its start),
    without the grammar's list of what was expected. The budget grows with the text, so every parse stays linear
    with a small constant: at most ~25 ms of grammar reading for a 10 KB text.
    """

    START_COST = 32  # a parse's fixed cost, in characters of reading
    BASE = 1_024
    SHARE = 10  # a text may spend one character of grammar reading per this many of its own

    def __init__(self, text_chars: int) -> None:
        self.left = self.BASE + text_chars // self.SHARE

    def spend(self, chars: int) -> bool:
        """Charge a read of `chars` characters; False (nothing charged) when the budget cannot cover it."""
        cost = chars + self.START_COST
        if cost > self.left:
            return False
        self.left -= cost
        return True

    def refund(self, chars: int) -> None:
        """Give back a read that found calls (where the C readers leave valid calls to the grammar: Toolformer's tagged
        spellings, pythonic tuples): only broken candidates use the budget up, so no call is lost to it."""
        self.left += chars + self.START_COST


@functools.cache
def load_parser(grammar: str, starts: tuple[str, ...]) -> Lark:
    """Build the LALR parser of one grammar file in the `grammars` package, once per process."""
    return Lark.open_from_package(
        "toolcall.grammars", grammar, ("",), parser="lalr", lexer="contextual", start=list(starts),
        propagate_positions=True, maybe_placeholders=False,
    )


def rule(tree: Tree) -> str:
    """A tree's rule name without the namespace Lark gives rules imported from common.lark."""
    return str(tree.data).rsplit("__", 1)[-1]


def unquote(token: str) -> str:
    """The value of a quoted argument: outer quotes dropped, backslash escapes resolved."""
    return _ESCAPE.sub(r"\1", token[1:-1])


def quote_arg(value: Any, always: bool = False) -> str:
    """Canonical spelling of one argument: bare when the grammar reads it back unchanged, else "quoted".

    Newlines become spaces, because a call lives on one line.
    """
    text = str(value).replace("\r", " ").replace("\n", " ")
    if not always and not _NEEDS_QUOTES.search(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def positional(call: ToolCall) -> list[Any]:
    """A call's arguments in order: its values, when they are named (a positional format writes only the values)."""
    return list(call.args.values()) if isinstance(call.args, Mapping) else list(call.args)


def format_call(call: ToolCall, always_quote: bool = False) -> str:
    """`Tool(arg1, arg2)` in canonical form."""
    return f"{call.tool}({', '.join(quote_arg(a, always_quote) for a in positional(call))})"


def args_from_tree(arguments: Tree, source: str) -> tuple[str, ...]:
    """Argument values of an `arguments` subtree; `source` is the text the positions refer to."""
    values: list[str] = []
    for child in arguments.children:
        if not isinstance(child, Tree):
            continue  # whitespace tokens
        if rule(child) == "arg":  # `string WS?` keeps its own node when the space is there
            child = child.children[0]
        kind = rule(child)
        if kind == "string":
            values.append(unquote(str(child.children[0])))
        elif kind == "bare":
            values.append(source[child.meta.start_pos:child.meta.end_pos].strip())
    return tuple(values)


def find_child(tree: Tree, name: str) -> Tree | None:
    for child in tree.children:
        if isinstance(child, Tree) and rule(child) == name:
            return child
    return None


def has_token(tree: Tree, kind: str) -> bool:
    return any(isinstance(c, Token) and c.type == kind for c in tree.children)


class _LineStarts:
    """Where the lines of recent texts start, so that locating many issues stays linear.

    A text is found again by identity, never by its hash: hashing a text reads all of it, and the decoding loop asks
    about a new, longer text at every pause (`pending` of a text holding many malformed calls rebuilt the index of the
    whole text per issue: 16,000 of them took 15 s). A text that extends a remembered one (the loop's text only grows)
    takes over its index and scans only the characters added since.
    """

    KEEP = 8

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recent: list[tuple[str, list[int]]] = []  # most recent last

    def __call__(self, text: str) -> list[int]:
        with self._lock:
            for i in range(len(self._recent) - 1, -1, -1):
                known, starts = self._recent[i]
                if known is text:
                    return starts
            grown = max((i for i, (known, _) in enumerate(self._recent)
                         if len(known) < len(text) and text.startswith(known)),
                        key=lambda i: len(self._recent[i][0]), default=None)
            if grown is None:
                starts, scanned = [0], 0
            else:  # the remembered text's index is handed over: its entries stay right for it, and only it used them
                known, starts = self._recent.pop(grown)
                scanned = len(known)
            # Appended in place: a reader of the shorter text looks up offsets within it, before every new start.
            starts.extend(m.end() for m in _NEWLINE.finditer(text, scanned))
            self._recent.append((text, starts))
            del self._recent[:-self.KEEP]
            return starts


_line_starts = _LineStarts()


def line_column(text: str, pos: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    if pos < 256:  # a short prefix is counted directly, without indexing the whole text
        return text.count("\n", 0, pos) + 1, pos - (text.rfind("\n", 0, pos) + 1) + 1
    starts = _line_starts(text)
    line = bisect.bisect_right(starts, pos)
    return line, pos - starts[line - 1] + 1


def caret_context(text: str, pos: int, span: int = 40) -> str:
    """The text around `pos` on its line (at most `span` characters each side), and a caret under `pos`."""
    newline = text.rfind("\n", max(0, pos - span), pos)
    start = newline + 1 if newline >= 0 else max(0, pos - span)
    line_end = text.find("\n", pos, pos + span)
    line_end = min(len(text), pos + span) if line_end < 0 else line_end
    before, after = text[start:pos], text[pos:line_end]
    return f"{before}{after}\n{' ' * len(before.expandtabs())}^\n"


class Pieces(Protocol):
    """What finds the pieces of a text (strings, brackets, ...): a compiled regex, or an object that finds the same in
    linear time where the regex alone would not (pythonic's)."""

    def finditer(self, string: str, pos: int = ..., endpos: int = ...) -> Iterator[re.Match[str]]: ...


def nesting_fault(text: str, start: int, end: int, pieces: Pieces) -> int | None:
    """Where the brackets of the value starting at `text[start]` (read no further than `end`) first nest deeper than
    MAX_DEPTH, or None. `pieces` matches the dialect's strings (skipped) and single brackets; the scan stops where the
    value's brackets close. Cheap when the span holds few brackets."""
    if text.count("[", start, end) + text.count("{", start, end) + text.count("(", start, end) <= MAX_DEPTH:
        return None
    depth = 0
    for m in pieces.finditer(text, start, end):
        c = m.group()
        if c in "[{(":
            depth += 1
            if depth > MAX_DEPTH:
                return m.start()
        elif c in "]})":
            depth -= 1
            if depth <= 0:
                return None
    return None


def make_issue(text: str, pos: int, message: str, expected: tuple[str, ...] = ()) -> SyntaxIssue:
    """An issue at `pos` in `text`, located by line and column, with a caret under it."""
    line, column = line_column(text, pos)
    return SyntaxIssue(message, line, column, pos, expected, caret_context(text, pos))


@functools.lru_cache(maxsize=1024)
def _display_terminal(parser: Lark, name: str) -> str:
    """A terminal as a person reads it: the literal for fixed strings, the name for patterns."""
    if name == "$END":
        return "end of input"
    try:
        pattern = parser.get_terminal(name).pattern
    except KeyError:
        return name
    if pattern.type == "str":
        return repr(pattern.value)
    return name.rsplit("__", 1)[-1]


def issue_from_error(err: UnexpectedInput, parser: Lark, text: str, offset: int, chunk_len: int,
                     what: str) -> SyntaxIssue:
    """Turn Lark's error on `text[offset:offset+chunk_len]` into an issue located in the whole `text`."""
    if isinstance(err, UnexpectedCharacters):
        rel = err.pos_in_stream or 0
        expected = err.allowed or set()
        found = f"unexpected character {text[offset + rel]!r}" if offset + rel < len(text) else "unexpected end"
    elif isinstance(err, UnexpectedToken) and err.token.type != "$END":
        rel = err.token.start_pos if err.token.start_pos is not None else chunk_len
        expected = err.expected or set()
        found = f"unexpected {err.token.value!r}"
    else:  # end of the span reached: Lark reports $END as a token borrowing the last token's position
        rel = chunk_len
        expected = getattr(err, "expected", None) or set()
        found = "unexpected end of input"
    pos = offset + rel
    line, column = line_column(text, pos)
    start_line, start_column = line_column(text, offset)
    names = tuple(sorted({_display_terminal(parser, n) for n in expected}))
    message = f"{found} in {what} starting at line {start_line}, column {start_column}"
    return SyntaxIssue(message, line, column, pos, names, caret_context(text, pos))


# A quoted argument from its opening quote to the end of the text, not closed there (common.lark's DQ_STRING and
# SQ_STRING, less the closing quote). Possessive: no backtracking state is kept per character.
_OPEN_STRING = {q: re.compile(rf"{q}(?:[^{q}\\\n]++|\\.)*+\\?") for q in "\"'"}


def in_open_string(err: UnexpectedInput, text: str, offset: int) -> bool:
    """Whether the parse of `text[offset:]` failed because its end lies inside a quoted argument still being written:
    at a quote where the grammar takes a quoted string (an argument's start, after "(" or "," and spaces), whose string
    runs to the end of the text on its line without closing. The call marker that ends the text is then part of the
    argument, not the end of the call. A quote inside bare text (`Joe's house`) or after an argument is no such
    start."""
    if isinstance(err, UnexpectedCharacters):
        rel, expected = err.pos_in_stream, err.allowed or set()
    elif isinstance(err, UnexpectedToken):
        rel, expected = err.token.start_pos, err.expected or set()
    else:
        return False
    if rel is None or offset + rel >= len(text):
        return False
    pos = offset + rel
    quote = text[pos]
    if quote not in _OPEN_STRING:
        return False
    terminal = "DQ_STRING" if quote == '"' else "SQ_STRING"
    if not any(str(name).rsplit("__", 1)[-1] == terminal for name in expected):
        return False
    return opens_string_to_end(text, pos)


def opens_string_to_end(text: str, pos: int, end: int | None = None) -> bool:
    """Whether the quote at `text[pos]` opens a quoted argument that runs to the end of the text (or to `end`), on its
    line, without closing."""
    pattern = _OPEN_STRING.get(text[pos:pos + 1])
    return pattern is not None and pattern.fullmatch(text, pos, len(text) if end is None else end) is not None


def raise_issue(issue: SyntaxIssue) -> None:
    raise DialectSyntaxError(issue.message, line=issue.line, column=issue.column, pos=issue.pos,
                             expected=issue.expected, context=issue.context)


def apply_edits(text: str, edits: list[tuple[int, int, str]]) -> str:
    """Replace non-overlapping (start, end) ranges of `text`."""
    out: list[str] = []
    pos = 0
    for start, end, replacement in sorted(edits, key=lambda e: (e[0], e[1])):
        if start < pos or not 0 <= start <= end <= len(text):
            raise ConfigError(f"cannot render: call span ({start}, {end}) overlaps another or lies outside "
                              f"the text (0..{len(text)}); give each call its own span")
        out.append(text[pos:start])
        out.append(replacement)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def cut_spans(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """`text` without the (start, end) spans; a span starting inside an earlier cut one is already gone. Where a cut
    leaves two letters or digits side by side, a space stands between them: a call cut from "The total
    is[Calculator(3 * 4) -> 12]12" left "is12", in which the first-number rule reads no number."""
    pieces: list[str] = []
    pos = 0
    for start, end in sorted(spans):
        if start >= pos and end > start:
            _keep(pieces, text[pos:start])
            pos = end
    _keep(pieces, text[pos:])
    return "".join(pieces)


def _keep(pieces: list[str], piece: str) -> None:
    """Add a kept piece after a cut (cut_spans), apart from the one before it when both sides are letters or digits."""
    if not piece:
        return
    if pieces and pieces[-1][-1].isalnum() and piece[0].isalnum():
        pieces.append(" ")
    pieces.append(piece)


#: common.lark's BARE argument as a regex, for the dialects' fast paths (Toolformer's simple calls, MOSS's fields):
#: possessive (`*+`), as Lark's longest-match lexer reads it. With backtracking, `1,000,` repeated could be split at
#: every thousands comma: 21 of them in an unclosed Toolformer call took 4.9 s, each one more doubling it.
BARE_ARGUMENT = r"[^\s(),\[\]\"'](?:[^(),\[\]\n]|(?<=\d),(?=\d{3}(?!\d)))*+"


#: What `defuse` puts after the first character of reserved markup in a tool result: invisible when read, and no parser
#: or tokenizer reads the markup any more.
ZERO_WIDTH_SPACE = "\u200b"


@functools.lru_cache(maxsize=64)
def _reserved_pattern(markers: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(m) for m in sorted(markers, key=len, reverse=True)))


def defuse(text: str, markers: tuple[str, ...]) -> str:
    """`text` with every occurrence of `markers` broken by a zero-width space after its first character."""
    if not markers:
        return text
    return _reserved_pattern(markers).sub(lambda m: m.group()[0] + ZERO_WIDTH_SPACE + m.group()[1:], text)


#: A name as the call grammars read it (common.lark's NAME): a tool's in a positional call, a keyword in pythonic.
CALL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: How much of a possible call's start `Dialect.may_open_call` reads: enough for a tool's name (at most 64 characters
#: where toolcall registers it; BFCL's dotted names are longer) and its opening bracket.
CALL_HEAD_CHARS = 256


def name_then_paren(text: str, at: int, *, dotted: bool, spaced: bool) -> bool:
    """Whether `text[at:]` may still begin `NAME(` (`spaced`: white space around the name and its dots, as Python
    allows; `dotted`: `a.b.c(` too), reading at most CALL_HEAD_CHARS: False at the first character that cannot."""
    end = min(len(text), at + CALL_HEAD_CHARS)

    def skip(i: int) -> int:
        while spaced and i < end and text[i].isspace():
            i += 1
        return i

    i = skip(at)
    while True:
        name = CALL_NAME.match(text, i, end)
        if name is None:
            return i >= end
        i = skip(name.end())
        if i >= end or text[i] == "(":
            return True
        if not (dotted and text[i] == "."):
            return False
        i = skip(i + 1)
        if i >= end:
            return True


def writable_name(name: str, dialect: str, pattern: re.Pattern[str] = CALL_NAME) -> str:
    """`name` when `pattern` (the names the dialect's calls can spell) takes it whole, else a ConfigError: rendered as
    it is, `[my tool(1) -> 1]` parsed back to no call and no issue."""
    if not pattern.fullmatch(name):
        raise ConfigError(f"cannot render a call of {name!r} in the {dialect} dialect: its calls name a tool with "
                          "letters, digits and _, not starting with a digit")
    return name


class QuietString:
    """What a look at a reply found at its end: one call still being written, its text ending inside a string
    argument (code, a document). Text the model adds there leaves the call open and nothing pending while all of it is
    `plain`, the string's own content (no closing quote, line break or special token, no escape that may end or break
    the string, no call opener), and the call is under the length cap; till then a call marker inside the string (a
    "]" of the code) needs no look, which would read the whole call again."""

    #: How far before the text already read the new text is read from: an escape or a special token that the end of
    #: the last look cut in two is read whole (a look ends at a call marker, so two characters are enough).
    BACK = 2

    def __init__(self, text_end: int, floor: int, limit: int, plain: re.Pattern[str]) -> None:
        self._checked = text_end  # the text up to here is plain from `floor` on
        self._floor = floor  # where the string's content begins
        self._limit = limit  # a text longer than this may make the call too long: look again
        self._plain = plain  # what the string's content may be (fullmatched from a place between two of its pieces)

    def holds(self, text: str) -> bool:
        """Whether `text`, which continues the text of the last look, is still quiet (only the new part is read)."""
        if len(text) > self._limit or self._plain.fullmatch(text, max(self._floor, self._checked - self.BACK)) is None:
            return False
        self._checked = len(text)
        return True


class QuietValue:
    """What a look at a reply found at its end: one call still being written, its text ending inside its arguments
    (data: `[plot(points=[[1, 2], [3, 4], ...`, perhaps inside a string of it). Text the model adds there leaves the
    call open and nothing pending while the call's grammar reads all of it as more of the call, no bracket closes the
    call, its nesting stays under MAX_DEPTH, it holds nothing `unsure` (a call opener, a special token, what the
    dialect's cheap reading and its grammar might read apart), a string left open at its end holds only `plain`
    content (as in QuietString), and the call is under the length cap. The grammar reads only the added text: its LALR
    parser is kept where the last look left it, so the stops at the brackets of a long argument cost what their text
    does, not the whole call again."""

    def __init__(self, parser: Any, text_end: int, limit: int, unsure: re.Pattern[str],
                 plain: Mapping[str, re.Pattern[str]], refused: Callable[[Token], bool] | None = None) -> None:
        _build_nothing(parser)
        self._parser = parser  # a Lark InteractiveParser that has read the call up to `_read_to`
        self._depth = 0  # brackets open there, the call's own among them
        self._read_to = 0  # where the parser's reading stopped: the text's end, or the quote of a string open there
        self._checked = text_end  # the text up to here is read (what of it is an open string, plain)
        self._limit = limit
        self._unsure = unsure
        self._plain = plain  # by quote: what an open string's content may be
        self._refused = refused  # a token the grammar takes and the dialect's reading of an open call does not (1e999)

    @classmethod
    def after(cls, parser: Lark, start: str, text: str, begin: int, opened: int, limit: int,
              unsure: re.Pattern[str], plain: Mapping[str, re.Pattern[str]],
              refused: Callable[[Token], bool] | None = None) -> QuietValue | None:
        """Quiet for a call written from `text[begin]` to the end of `text` (its own opener, which `unsure` may match,
        ending at `opened`), or None where `parser` (LALR, from rule `start`) does not read it as a call still being
        written inside its brackets."""
        if len(text) > limit or unsure.search(text, opened) is not None:
            return None
        quiet = cls(parser.parse_interactive(text[begin:], start=start), len(text), limit, unsure, plain, refused)
        return quiet if quiet._read(text, begin, closed_ends=False) else None

    def holds(self, text: str) -> bool:
        """Whether `text`, which continues the text of the last look, is still quiet (only the new part is read)."""
        if len(text) > self._limit or self._unsure.search(text, self._checked) is not None:
            return False
        if self._read_to < self._checked:  # a string open at the last look's end: does it go on, plain?
            quote = text[self._read_to]
            if self._plain[quote].fullmatch(text, self._checked) is not None:
                self._checked = len(text)
                return True
        self._parser.lexer_thread = LexerThread.from_text(self._parser.lexer_thread.lexer, text[self._read_to:])
        if not self._read(text, self._read_to, closed_ends=True):
            return False
        self._checked = len(text)
        return True

    def _read(self, text: str, base: int, closed_ends: bool) -> bool:
        """Feed the parser the text its lexer holds (`text` from `base` on); False where that is no more of the call
        still open (or, with `closed_ends`, where a call closes in it: a look finds what it makes pending)."""
        self._read_to = len(text)
        try:
            for token in self._parser.lexer_thread.lex(self._parser.parser_state):
                if self._refused is not None and self._refused(token):
                    return False
                self._parser.feed_token(token)
                kind = token.type
                self._depth += kind in _OPENERS
                self._depth -= kind in _CLOSERS
                if self._depth > MAX_DEPTH or (closed_ends and self._depth <= 0):
                    return False
        except UnexpectedCharacters as err:  # a string still open at the end is read once it closes
            at = base + (err.pos_in_stream or 0)
            plain = self._plain.get(text[at])
            if plain is None or plain.fullmatch(text, at + 1) is None:
                return False
            self._read_to = at
        except LarkError:
            return False
        return self._depth > 0


def _build_nothing(parser: Any) -> None:
    """Have a Lark InteractiveParser keep its state and build no tree: a reader kept the whole tree of the call it
    read (about 250 bytes a character, 15 MiB for a 60 KB call, per reply). A Lark whose parser is laid out otherwise
    keeps its tree."""
    try:
        conf = parser.parser_state.parse_conf
        parser.parser_state.parse_conf = type(conf)(conf.parse_table, dict.fromkeys(conf.callbacks, _no_tree),
                                                    conf.start)
    except (AttributeError, TypeError):
        pass


def _no_tree(children: Any) -> None:
    return None


#: Lark's names of the bracket terminals the call grammars write as literals.
_OPENERS = frozenset({"LSQB", "LPAR", "LBRACE"})
_CLOSERS = frozenset({"RSQB", "RPAR", "RBRACE"})


class ReplyReader:
    """The pending calls at each call marker of one growing reply (the decoding loop holds one per reply). Each look
    reads from where a call may still begin (`Dialect.pending_from`), and none is needed while the text goes on inside
    an open string of a call (`Dialect.quiet_string`) or inside the data of its arguments (`Dialect.quiet_value`), so
    the loop's work stays linear in the reply."""

    def __init__(self, dialect: "Dialect") -> None:
        self.dialect = dialect
        self.start = 0  # where the next look reads from
        self._quiet: QuietString | QuietValue | None = None
        self._value_after = 0  # no QuietValue is tried for a text shorter than this
        # What, written next, leaves the call the text ends inside malformed (`Dialect.call_breaks` after the last
        # look): the loop stops there too, to give the model its error.
        self.breaks: tuple[str, ...] = ()

    def pending(self, text: str) -> PendingCalls | None:
        """`dialect.pending(text)`; `text` continues the text of the last call (or is the reply's first look)."""
        if self._quiet is not None and self._quiet.holds(text):
            return None
        pending, self.start = self.dialect.pending_from(text, self.start)
        self._quiet = None
        if pending is not None:
            self.breaks = ()
        elif not self.breaks or text.endswith(self.breaks):
            self.breaks = self.dialect.call_breaks(text, self.start)
        # Else no break was written since they were asked for (each is a stop): they stand, and are not asked for again
        # at every marker of a long quoted argument. Should the call have closed meanwhile, a break is one more stop,
        # where `pending` finds nothing.
        if pending is None:
            # A QuietValue first: it also goes on through the strings of the data, where a QuietString ends at each
            # one's closing quote (data whose every string holds a "]" took a look at every stop).
            if len(text) >= self._value_after:
                self._quiet = self.dialect.quiet_value(text, self.start)
                # Reading the call with the grammar costs more than a look: after one that found no quiet, or whose
                # quiet broke, the next is tried once the text has grown by a quarter, so the tries cost a few reads
                # of the reply in all however often the text breaks quiet.
                self._value_after = len(text) + max(len(text) - self.start, 256) // 4
            if self._quiet is None:
                self._quiet = self.dialect.quiet_string(text, self.start)
        return pending


class Dialect(ABC):
    """One way of writing tool calls into text; it answers every question about its wire format.

    Parse and render calls; find the calls pending at a call marker and close them with their results;
    write the prompt that offers the tools; say what of a generation a person reads; and say which
    characters are tool results, which training leaves out of the loss.
    """

    name: str = ""
    call_markers: tuple[str, ...] = ()
    end_markers: tuple[str, ...] = ()
    open_marker: str = ""
    #: Text with which a model starts writing a tool's result itself, which the program writes: a reply that is judged
    #: only on the calls it makes (BFCL) is complete there.
    result_markers: tuple[str, ...] = ()
    #: Text from which a call may begin, for a streaming reader that must not show a call as prose before it knows
    #: (empty: the open marker; a dialect without one names the character its calls start with).
    call_start: str = ""
    #: Markup a model may write right before a call start, which belongs to the call (Llama's `<|python_tag|>`; the
    #: `<API>` of a tagged Toolformer call where "[" starts calls): a reader showing the reply cuts it with the call.
    call_prefixes: tuple[str, ...] = ()
    #: Whether a call is written on one line, so a newline after `call_start` means it was prose after all.
    one_line_calls: bool = False
    #: Whether calls name their arguments (a JSON object) rather than list them in order.
    named_arguments: bool = False
    #: For a dialect whose replies write fields before the answer (MOSS: inner thoughts, then commands and results,
    #: then the answer): the text that opens the answer, and the ones that open and end the thoughts the reply begins
    #: with (the prompt writes the first opener). Empty: the whole reply is the answer.
    answer_opener: str = ""
    thoughts_opener: str = ""
    thoughts_end: str = ""
    #: The dialect's markup that would end a tool's result or start a call or turn if a result held it as written
    #: (`</tool_response>`, `<|eot_id|>`): close() breaks each with a zero-width space (see `defuse`), so a result
    #: (a web page, an MCP server's answer) cannot write calls, results or turns of its own into the text.
    reserved: tuple[str, ...] = ()
    #: The roles an earlier message may have in `prompt`'s history; None: any, as the model's chat template takes them.
    history_roles: tuple[str, ...] | None = None
    #: Text that ends a call held to this dialect's call grammar and that the grammar lets no call hold before its end,
    #: so its first occurrence after the opener is where the call ends ("" where none: a Toolformer call's quoted
    #: argument may hold its arrow). An engine may then decode on past the call in the same request.
    held_call_end: str = ""
    #: Text after which no call this dialect's opener began is still open (besides its call markers): Toolformer's
    #: `]`, which ends a bracket that was prose (`[1]`, `x[0]`), so steering does not take it for an open call.
    span_closers: tuple[str, ...] = ()

    @property
    def call_closers(self) -> tuple[str, ...]:
        """What ends an open call for the decoding's steering (`Steering.close_texts`): the call markers, then
        `span_closers`."""
        return tuple(dict.fromkeys((*self.call_markers, *self.span_closers)))

    def check_history(self, history: object) -> None:
        """A ConfigError unless `history` is a list of {"role": str, "content": str} messages whose roles this dialect
        writes (a message missing its content was a KeyError deep in the prompt, one of a role MOSS has no turn for
        was left out without a word)."""
        if history is None:
            return
        if isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
            raise ConfigError(f"history is a list of {{'role', 'content'}} messages, not {type(history).__name__}")
        for i, message in enumerate(history):
            if not isinstance(message, Mapping) or not isinstance(message.get("role"), str) \
                    or not isinstance(message.get("content"), str):
                raise ConfigError(f"history[{i}] must be a message {{'role': str, 'content': str}}, got {message!r:.80}")
            if self.history_roles is not None and message["role"] not in self.history_roles:
                raise ConfigError(f"history[{i}]: the {self.name} dialect writes turns of "
                                  f"{' and '.join(self.history_roles)}, not {message['role']!r}")

    def defuse_result(self, result: str) -> str:
        """A tool's result as close() writes it: the dialect's reserved markup in it broken (see `reserved`)."""
        return defuse(result, self.reserved)

    # -- parsing and rendering -------------------------------------------------------------------
    @abstractmethod
    def parse(self, text: str, strict: bool = False) -> Parsed:
        """Every call in `text`; malformed call-like spans become issues (or raise when strict)."""

    @abstractmethod
    def render(self, parsed: Parsed) -> str:
        """The text with its calls: unchanged calls verbatim, replaced or new ones in canonical form."""

    @abstractmethod
    def render_call(self, call: ToolCall) -> str:
        """The canonical spelling of one call."""

    # -- the decoding loop -----------------------------------------------------------------------
    @abstractmethod
    def pending(self, text: str) -> PendingCalls | None:
        """The calls awaiting results at the end of `text`, which ends with a call marker (or with one of the texts
        `call_breaks` named for it).

        None when the marker opens no call (an arrow in prose): there is nothing to close.
        """

    def pending_from(self, text: str, start: int) -> tuple[PendingCalls | None, int]:
        """`pending(text)`, reading `text` from `start` on, and where the next look may start. `text` continues a text
        for which this returned `start` (0 for the first look): the decoding loop looks at every call marker of a
        reply, and reading only from where a call may still begin keeps its work linear in the reply. A dialect
        whose `pending` is already cheap at every marker reads what it needs and says 0."""
        return self.pending(text), 0

    def call_breaks(self, text: str, start: int) -> tuple[str, ...]:
        """After a look from `start` (what `pending_from` returned) found nothing pending in `text`, which ends with a
        call marker: the texts that, written next, leave the call that marker lies in malformed for good (a model that
        wrote the marker meant the call to end there). The loop stops at them too, and `pending` of the text ending
        with one reports that call malformed, so the model reads an error where it would have read nothing (the call
        and any after it skipped without a word). Empty where no such text is known: only call markers stop the
        loop."""
        return ()

    def quiet_string(self, text: str, start: int) -> QuietString | None:
        """After a look from `start` (what `pending_from` returned) found nothing pending in `text`: whether the text
        ends inside a string argument of a call still being written, and what added text could change that. None where
        the dialect cannot tell cheaply (then every call marker is looked at)."""
        return None

    def quiet_value(self, text: str, start: int) -> QuietValue | None:
        """After a look from `start` found nothing pending in `text`: whether the text ends inside the arguments of a
        call still being written (its data, perhaps inside a string of it) that the call's grammar reads so far. None
        where the dialect cannot tell (then a QuietString is tried, else every call marker is looked at)."""
        return None

    def write_calls(self, calls: Sequence[ToolCall]) -> str:
        """The text a model writes to make these calls, up to and including the call marker: `pending` of a text
        ending with it finds exactly these calls (how a conversation whose calls a client answered is written back)."""
        return "".join(self.render_call(c.with_result(None)) for c in calls)

    def may_open_call(self, text: str) -> bool:
        """Whether `text`, which starts where a call may start (`call_start`, else `open_marker`), may still be the
        start of a call: False once what follows cannot begin one ("[1]", "[see the docs]" where a tool's name and
        its "(" must follow), so a streaming reader shows it as prose at once instead of holding it back. Only a head
        of `text` is read (CALL_HEAD_CHARS). A dialect that cannot tell from a head says True."""
        return True

    def begins_call(self, text: str) -> bool:
        """Whether `text`, which starts where a call may start, is a call, finished or not (a reply the token limit
        cut inside one): a call is read there, the start of one that then breaks ("<tool_call> tags" breaks at
        once, and is prose), the opener alone, or what `may_open_call` reads as a call begun ("[get_weather")."""
        parsed = self.parse(text)
        if any(c.span[0] == 0 for c in parsed.calls):
            return True
        opener = self.call_start or self.open_marker
        if not text.startswith(opener):
            return False
        body = len(text) - len(text[len(opener):].lstrip())
        if body == len(text) and len(opener) > 1:   # the limit struck right after the opener ("<tool_call>\n"); a
            return True                             # lone "[" may as well be prose
        return any(issue.pos > body for issue in parsed.issues) or self._head_is_call(text)

    def _head_is_call(self, text: str) -> bool:
        """Whether a `text` that neither parses nor breaks as a call is the start of one (see begins_call): only a
        dialect whose may_open_call reads the head exactly can say so (the base's says True for anything)."""
        return False

    def continues_calls(self, text: str) -> bool:
        """Whether `text`, written right after a call group, may still be (the start of) more calls of the same
        group: a model that hands its calls to a client writes them all before its reply ends (hermes writes one
        block per call), so the loop, having handed one back, decodes on only while this holds. Most dialects write
        a group whole before its marker: no."""
        return False

    @abstractmethod
    def close(self, pending: PendingCalls, results: Sequence[str]) -> str:
        """The text to append after the call marker so that the pending calls carry their results.

        One result per call; a malformed pending call takes one error text.
        """

    # -- prompts and replies ---------------------------------------------------------------------
    @abstractmethod
    def prompt(self, question: str, tools: ToolSpecs | None, chat: ChatTemplate,
               history: Sequence[Mapping[str, str]] | None = None, few_shot: int | bool = True,
               instruction: PromptSource = None) -> str:
        """The whole prompt for one question: the instruction offering the tools, worked examples, the conversation.

        `chat` renders chat messages with the model's template (e.g. `backend.chat_prompt`) for dialects that
        use it. `few_shot`: True for every worked example, False or 0 for none, K for the first K.
        `instruction` is a file replacing the dialect's instruction text. A tool the dialect has no text for
        gets a line made from its name, description and schema.
        """

    def reply(self, generated: str, keep_calls: bool = True) -> str:
        """What a person reads of a generation: its answer part, with the calls in it, or without them
        (keep_calls=False: calls and their results cut out, spacing mended; what evaluation scores)."""
        if keep_calls:
            return self._answer_part(generated)
        kept = cut_spans(generated, (call.span for call in self.parse(generated).calls))
        # Cutting "[Calculator(2 * 3) -> 6]" out of "is [...] 6" leaves a double space.
        return re.sub(r"[ \t]+", " ", self._answer_part(kept)).strip()

    def _answer_part(self, generated: str) -> str:
        """The part of a generation that answers the person (all of it, unless the dialect has an answer field)."""
        return generated.strip()

    # -- training --------------------------------------------------------------------------------
    @abstractmethod
    def result_spans(self, text: str) -> list[ResultSpan]:
        """For each tool result in `text`: the span of the marker before it and the span of the result.

        The result is what the program writes at inference, so the model need not learn to predict it;
        the marker is what the model writes to ask for it.
        """

    # -- constrained decoding --------------------------------------------------------------------
    def call_grammar(self, tools: Iterable[ToolSpec], closers: Sequence[str] | None = None) -> str:
        """An llguidance Lark grammar for what follows the call-open marker: a well-formed call of one of `tools`,
        ended by one of `closers`. A dialect without one cannot constrain its calls."""
        raise ConfigError(f"constrained calls are available for the toolformer dialect; the {self.name} dialect has "
                          "no call grammar, so leave --constrain-calls off with it")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
