"""The typed records data_gen's stages hand each other: one text's record, its candidate positions and calls."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class Position(NamedTuple):
    """A place where the model may open a call (the positions stage, best first)."""

    token: int          # index of the token the call would go before
    char: int           # character offset of that token in the text
    p: float            # p_i: the probability of a call-open there, summed over the open spellings
    open_text: str      # the most likely call-open spelling there (" [" or "["), which sampling continues from


@dataclass(frozen=True)
class Candidate:
    """One call that may be written into the text: sampled or proposed, then executed, then scored."""

    tool: str                         # the tool's registry name
    args: tuple[Any, ...]             # the call's arguments as parsed
    call: str                         # the call without its result, in the bracket form: "[Calculator(3 * 4)]"
    token: int                        # the token it is scored before
    position: int                     # that token's character offset in the text
    source: str = "model"             # "model" (sampled), "proposer" (a tool's proposal) or "both"
    score: float | None = None        # the proposer's score; None for a call only the model wrote
    result: str | None = None         # the tool's output, once executed (restyled to the text's number style)
    text_call: str = ""               # the call with its result as scored and written: "[Calculator(3 * 4) -> 12]"
    placement: str = "prefix"         # where the filter scored it: "prefix" (z + newline + x) or "inline"
    loss_eps: float | None = None     # L_i(eps): the text's loss from token i with no call
    loss_null: float | None = None    # L_i(e(c, eps)): with the call but without its result
    loss_plus: float | None = None    # L+ = L_i(e(c, r)): with the call and its result
    loss_minus: float | None = None   # L- = min(L_i(eps), L_i(e(c, eps)))
    loss_reduction: float | None = None   # L- - L+; the filter keeps the call when it reaches the tool's threshold
    kept: bool = False                # whether the filter kept it

    @property
    def scored(self) -> bool:
        return self.loss_reduction is not None


@dataclass(frozen=True)
class TextRecord:
    """One text as it passes the stages; each stage returns a new record with its own fields filled in."""

    text: str                                                    # the input text x
    tools: tuple[str, ...] = ()                                  # tools whose prefilter accepted the text
    positions: Mapping[str, tuple[Position, ...]] = field(default_factory=dict)   # per tool, best first
    candidates: tuple[Candidate, ...] = ()                       # sampled and proposed calls, in stage order
    counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)         # per tool: samples, unclosed, ...
    rejected: tuple[dict[str, Any], ...] = ()                    # why samples and calls were dropped (debug log lines)


def bump(counts: Mapping[str, Mapping[str, int]], tool: str, key: str, by: int = 1) -> dict[str, dict[str, int]]:
    """A copy of `counts` with counts[tool][key] raised by `by`."""
    out = {t: dict(per) for t, per in counts.items()}
    per = out.setdefault(tool, {})
    per[key] = per.get(key, 0) + by
    return out
