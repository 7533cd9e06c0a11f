"""The parse result types: a tool call with its span, a syntax issue, a parsed text, the calls awaiting results."""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


def _frozen(value: Any) -> Any:
    """A hashable value equal where `value`s are equal (dicts as sets of frozen items, lists as tuples)."""
    if isinstance(value, Mapping):
        return frozenset((k, _frozen(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


class KeywordArgs(Mapping[str, Any]):
    """Keyword arguments of a call (a JSON object's fields, in order): read-only, hashable, equal to a dict with
    the same items. Values stay plain JSON values (str, int, float, bool, None, list, dict)."""

    __slots__ = ("_items", "_hash")

    def __init__(self, items: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        if type(items) is dict and not more and all(type(k) is str for k in items):  # a decoded JSON object: one copy
            self._items: dict[str, Any] = dict(items)
        else:
            self._items = {str(k): v for k, v in {**dict(items or {}), **more}.items()}
        self._hash: int | None = None

    @classmethod
    def adopt(cls, items: dict[str, Any]) -> "KeywordArgs":
        """KeywordArgs over a dict nobody else holds (a freshly decoded JSON object), without copying it."""
        if not all(type(k) is str for k in items):
            return cls(items)
        made = cls.__new__(cls)
        made._items, made._hash = items, None
        return made

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        # Equal mappings must hash alike, and == says {"n": 1} == {"n": 1.0} == {"n": True} (their JSON differed, so
        # a set held both); values may be lists or dicts, frozen into tuples that hash as Python's numbers do.
        if self._hash is None:
            self._hash = hash(_frozen(self._items))
        return self._hash

    def __repr__(self) -> str:
        return repr(self._items)

    def to_dict(self) -> dict[str, Any]:
        return dict(self._items)


def args_json(args: Any) -> list[Any] | dict[str, Any]:
    """Arguments as JSON shows them: an object for keyword arguments, a list for positional ones."""
    return dict(args) if isinstance(args, Mapping) else list(args)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call found in a text: tool name, arguments, result, character span, and the call id some formats carry.

    `args` is a tuple of positional values (Toolformer and MOSS: strings, quotes removed) or `KeywordArgs`, the
    named values of a JSON-argument format (hermes, pythonic, llama3_json, mistral). A dict or list given here is
    turned into KeywordArgs or a tuple, so a call stays hashable. `registry.call(call.tool, call.args)` takes both.
    """

    tool: str
    args: tuple[Any, ...] | KeywordArgs = ()
    result: str | None = None
    span: tuple[int, int] = (0, 0)
    id: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.args, Mapping) and not isinstance(self.args, KeywordArgs):
            object.__setattr__(self, "args", KeywordArgs(self.args))
        elif isinstance(self.args, str):  # a bare string is one argument, not a sequence of characters
            object.__setattr__(self, "args", (self.args,))
        elif not isinstance(self.args, (tuple, KeywordArgs)):
            object.__setattr__(self, "args", tuple(self.args))

    @property
    def keyword(self) -> bool:
        """Whether the arguments are named (a JSON object) rather than positional."""
        return isinstance(self.args, KeywordArgs)

    def with_result(self, result: str | None) -> "ToolCall":
        if result is self.result:
            return self
        return ToolCall(self.tool, self.args, result, self.span, self.id)


def request_key(call: ToolCall) -> tuple[str, str]:
    """What makes two calls the same request: the tool and its arguments with their JSON types (`1`, `1.0` and `true`
    differ here, though Python's == takes them for one). A list's order counts; an object's field order does not
    (keys that cannot be ordered, a pythonic `{1: 2, "a": 3}`, keep theirs)."""
    args = args_json(call.args)
    try:
        return call.tool, json.dumps(args, sort_keys=True, ensure_ascii=False, default=repr)
    except TypeError:
        return call.tool, repr(args)


def until_repeat(calls: Sequence[ToolCall], earlier: Sequence[ToolCall] = ()) -> list[ToolCall]:
    """`calls` up to the first that repeats a request made before it in the same group (`earlier`'s calls, then
    `calls`' own): where repeat_calls is off, such a call is taken for a model going round, not a request (a small
    model writes `f(x)` a second time where one call was asked for)."""
    seen = {request_key(c) for c in earlier}
    kept: list[ToolCall] = []
    for call in calls:
        key = request_key(call)
        if key in seen:
            break
        seen.add(key)
        kept.append(call)
    return kept


@dataclass(frozen=True)
class SyntaxIssue:
    """A span that looked like a call but did not parse: where, and what was expected."""

    message: str
    line: int
    column: int
    pos: int
    expected: tuple[str, ...] = ()
    context: str = ""

    def __str__(self) -> str:
        want = f"; expected one of: {', '.join(self.expected)}" if self.expected else ""
        return f"{self.line}:{self.column}: {self.message}{want}"


@dataclass(frozen=True)
class Parsed:
    """A text and the calls (and malformed spans) found in it; `render(parsed)` gives `text` back."""

    text: str
    calls: list[ToolCall]
    dialect: str
    issues: list[SyntaxIssue] = field(default_factory=list)
    # The calls exactly as parsed, so render can copy unchanged spans verbatim.
    original_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class PendingCalls:
    """The calls awaiting results where a text stops at a call marker, found in one parse.

    `issues` is non-empty when the pending call is malformed: it gets one error result instead of running.
    `closing` is the dialect's own note of how to close the call after its results (spacing, the closing
    bracket), so closing needs no second parse; only the dialect that made it reads it.
    """

    calls: tuple[ToolCall, ...] = ()
    issues: tuple[SyntaxIssue, ...] = ()
    closing: Any = None

    @property
    def malformed(self) -> bool:
        return bool(self.issues)
