"""A tool's own hooks (proposer, admissible, admissible_grammar, restyle) called so that one failing costs its answer,
not the run: a hook is user code, and one that raised (or returned the wrong kind of value) ended the whole run, which
--resume then ended again on the same text."""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from toolcall.errors import ToolRaised
from toolcall.executor import call_in_thread, error_text
from toolcall.registry import MAX_RESULT_CHARS
from toolcall.tool_type import Proposal

T = TypeVar("T")

_warned: set[tuple[str, str]] = set()


def hook_value(tool: str, hook: str, call: Callable[[], Any], fallback: T, usable: Callable[[Any], bool], *,
               timeout: float | None = None, owner: Callable[..., Any] | None = None) -> Any:
    """call(), or `fallback` when it raises or returns what `usable` refuses; said once per tool and hook.

    With `timeout` (the tool's own time limit) call() runs in a thread and is given up after that many seconds, a
    timeout counting as a failure: a hook that hung held the whole run. `owner`, the hook function itself, is what
    calls still running past their limit are counted by (toolcall.executor.call_in_thread)."""
    try:
        if timeout is None:
            value = call()
        else:
            value = call_in_thread(call, timeout, f"{tool}'s {hook}", owner or call)
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # noqa: BLE001 - SystemExit too: a proposer that exits ended the run with status 0
        kind, text = (err.kind, err.text) if isinstance(err, ToolRaised) else (type(err).__name__, error_text(err))
        _warn(tool, hook, f"raised {kind}: {text[:200]}")
        return fallback
    if not usable(value):
        _warn(tool, hook, f"returned {value!r:.80}, which it may not")
        return fallback
    return value


def _warn(tool: str, hook: str, what: str) -> None:
    if (tool, hook) not in _warned:
        _warned.add((tool, hook))
        warnings.warn(f"toolcall data-gen: {tool}'s {hook} {what}; its answer is left out where it fails (said once)",
                      RuntimeWarning, stacklevel=3)


def usable_proposal(value: object, text_chars: int) -> bool:
    """A Proposal whose position is a place in the text, whose score is a finite number, and whose arguments a call
    can be written with (a tuple or list of text, numbers, booleans, lists and objects: a NaN was written as a bare
    NaN into the corpus, a lone surrogate or an object failed the write, and a string was split into its letters)."""
    if not isinstance(value, Proposal):
        return False
    position, score, args = value.position, value.score, value.args
    return (isinstance(position, (int, float)) and not isinstance(position, bool) and 0 <= position < text_chars
            and isinstance(score, (int, float)) and not isinstance(score, bool) and math.isfinite(score)
            and isinstance(args, (tuple, list)) and all(_writable(a) for a in args))


def _writable(value: object, depth: int = 0) -> bool:
    if depth > 32:
        return False
    if value is None or isinstance(value, (bool, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, (list, tuple)):
        return all(_writable(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _text(k) and _writable(v, depth + 1) for k, v in value.items())
    return False


def _text(value: str) -> bool:
    """Text UTF-8 can write: no lone surrogate."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def usable_restyle(result: str) -> Callable[[object], bool]:
    """What a restyle of `result` may return: text UTF-8 can write, about as long as the result (the same value in
    another style: a 10 MB one made a 440 MB corpus)."""
    room = min(MAX_RESULT_CHARS, 2 * len(result) + 64)
    return lambda value: isinstance(value, str) and len(value) <= room and _text(value)
