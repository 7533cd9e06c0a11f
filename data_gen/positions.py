"""Stage 2: candidate positions, p_i = p(call-open | P(x), x_{1:i-1}) from one scoring run over prompt + text."""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from toolcall.backends.base import Prefix, Scorer

from .config import PositionConfig
from .prompts import split_prompt
from .records import Position, TextRecord
from .tokens import TokenizedText, tokenize

if TYPE_CHECKING:
    from toolcall.registry import ToolRegistry


def open_token_ids(scorer: Scorer, open_texts: tuple[str, ...]) -> list[tuple[str, int]]:
    """The call-open spellings that are one token each (SmolLM2: " [" and "["), with their ids."""
    found = []
    for text in open_texts:
        ids = scorer.encode(text)
        if len(ids) == 1:
            found.append((text, ids[0]))
    if not found:
        # Fall back to the first token of the bare marker; p_i is then a lower bound on opening a call.
        found.append((open_texts[-1], scorer.encode(open_texts[-1])[0]))
    return found


class PromptStates:
    """The prefix state of P(x) + x per (tool, text), shared by the position and sampling stages (one run each)."""

    def __init__(self, scorer: Scorer, open_texts: tuple[str, ...] = PositionConfig.open_texts, registry: ToolRegistry | None = None,
                 maxsize: int = 2, prompt: str = "few-shot") -> None:
        self.scorer = scorer
        self.opens = open_token_ids(scorer, open_texts)
        self.registry = registry
        self.prompt = prompt  # "few-shot": P(x) before the text; "none": the text alone (PositionConfig.prompt)
        self.maxsize = maxsize
        self._items: OrderedDict[tuple[str, str], tuple[int, TokenizedText, Prefix, list[list[float]]]] = OrderedDict()

    def get(self, tool: str, text: str) -> tuple[int, TokenizedText, Prefix, list[list[float]]]:
        """(prompt length in tokens, tokenized text, prefix state, per position the probability of each open token)."""
        key = ("" if self.prompt == "none" else tool.lower(), text)  # without P(x), one state serves every tool
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        # P(x) holds x as its Input and ends with "Output:\n"; the copy of x that follows is where calls go, as in
        # the demonstrations (calls appear only in Outputs, never in Inputs). Without a prompt, the model reads the
        # text alone, as it was trained on annotated texts.
        prompt_ids = [] if self.prompt == "none" else self.scorer.encode(split_prompt(tool, text, self.registry))
        tt = tokenize(self.scorer, text)
        prefix = self.scorer.prefix_state(prompt_ids + list(tt.ids), [i for _, i in self.opens])
        open_p = [[math.exp(lp) for lp in row] for row in prefix.candidate_logprobs]
        self._items[key] = (len(prompt_ids), tt, prefix, open_p)
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)
        return self._items[key]


def call_may_start(tt: TokenizedText, i: int) -> bool:
    """Token i is a sensible place for a call: not inside a word ("o[..]n") nor inside a number ("1,[..]240", "2[..].5").

    A token after a bare " " token stays a candidate (SmolLM2 cuts " 2,800" into " " "2" ...): the paper scores every
    token, and there the weighted loss starts at the digits rather than at the space, which carries almost no loss."""
    text, at = tt.text, tt.starts[i]
    if not 0 < at < len(text):
        return True
    before, here = text[at - 1], text[at]
    if before.isalnum() and here.isalnum():
        return False
    if before in ",." and here.isdigit() and at >= 2 and text[at - 2].isdigit():
        return False
    return not (here in ",." and before.isdigit() and at + 1 < len(text) and text[at + 1].isdigit())


def find_positions(record: TextRecord, tool: str, states: PromptStates, config: PositionConfig) -> TextRecord:
    """record -> record with positions[tool]: the k best Positions with p_i > tau_s, best first."""
    opens = states.opens
    plen, tt, _, open_p = states.get(tool, record.text)
    scored = []
    # Token i's p_i is read from the row before it: without a prompt, token 0 has none (open_p[-1] is the row after
    # the whole text, which --prompt none --min-token 0 read as p_0).
    for i in range(max(config.min_token, 0 if plen else 1), len(tt.ids)):
        if tt.splits_character(i) or (config.word_start_only and not call_may_start(tt, i)):
            continue
        row = open_p[plen + i - 1]   # what prompt + x_{<i} predicts for the token at i
        p = sum(row)
        if p > config.tau_s:
            best = row.index(max(row))
            scored.append(Position(i, tt.starts[i], p, opens[best][0]))
    scored.sort(key=lambda s: (-s.p, s.token))
    return replace(record, positions={**record.positions, tool: tuple(scored[:config.k])})


def add_positions(record: TextRecord, tool: str, states: PromptStates, tokens: Iterable[int]) -> TextRecord:
    """record -> record with positions[tool] += a Position at each of `tokens` not already there (after the model's
    own), each with the model's p_i and the call-open that fits there: where a tool proposes a call, the model
    writes its own (PositionConfig.at_proposals).

    The model may find a call unlikely there, so its likeliest open spelling is noise: after a space the open
    without one is taken ("= [Calculator(" rather than "=  [Calculator(", after which SmolLM2 wrote `13 / 13`
    for "13 + 6 = 19"); elsewhere the likeliest."""
    plen, tt, _, open_p = states.get(tool, record.text)
    have = list(record.positions.get(tool, ()))
    taken = {p.token for p in have}
    for i in sorted(set(tokens)):
        if i in taken or not 0 < i < len(tt.ids) or tt.splits_character(i):
            continue   # token 0 has nothing before it to predict the call-open from; no call goes inside a character
        row = open_p[plen + i - 1]
        spaced = tt.text[:tt.starts[i]][-1:].isspace()
        fits = [j for j, (text, _) in enumerate(states.opens) if not (spaced and text[:1].isspace())] \
            or list(range(len(states.opens)))
        best = max(fits, key=lambda j: row[j])
        have.append(Position(i, tt.starts[i], sum(row), states.opens[best][0]))
        taken.add(i)
    return replace(record, positions={**record.positions, tool: tuple(have)})
