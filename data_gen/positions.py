"""Stage 2: candidate positions, p_i = p(call-open | P(x), x_{1:i-1}) from one forward pass over prompt + text."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

from .config import PositionConfig
from .prompts import build_prompt
from .tokens import TokenizedText, tokenize


def open_token_ids(scorer: Any, open_texts: tuple[str, ...]) -> list[tuple[str, int]]:
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
    """The KV state of P(x) + x per (tool, text), shared by the position and sampling stages (one forward each)."""

    def __init__(self, scorer: Any, open_texts: tuple[str, ...] = PositionConfig.open_texts, registry: Any | None = None,
                 maxsize: int = 2) -> None:
        self.scorer = scorer
        self.opens = open_token_ids(scorer, open_texts)
        self.registry = registry
        self.maxsize = maxsize
        self._items: OrderedDict[tuple[str, str], tuple[int, TokenizedText, Any, Any]] = OrderedDict()

    def get(self, tool: str, text: str) -> tuple[int, TokenizedText, Any, Any]:
        """(prompt length in tokens, tokenized text, prefix state, [len, len(self.opens)] open-token probabilities)."""
        key = (tool.lower(), text)
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        head = build_prompt(tool, self.registry).split("{text}")[0]
        prompt_ids = self.scorer.encode(head)
        tt = tokenize(self.scorer, text)
        state = self.scorer.prefix_state(prompt_ids + list(tt.ids), keep_logits=True)
        open_lp = self.scorer.open_token_logprobs(state, [i for _, i in self.opens]).exp()
        state.logits = None   # only the open-token columns are needed; free the [len, vocab] block
        self._items[key] = (len(prompt_ids), tt, state, open_lp)
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)
        return self._items[key]


def find_positions(record: dict[str, Any], tool: str, states: PromptStates, config: PositionConfig) -> dict[str, Any]:
    """record -> record with positions[tool] = [[token index, char offset, p_i, open text], ...] best first."""
    opens = states.opens
    plen, tt, _, open_p = states.get(tool, record["text"])
    scored = []
    text = record["text"]
    for i in range(max(config.min_token, 0), len(tt.ids)):
        at = tt.starts[i]
        if config.word_start_only and 0 < at < len(text) and text[at - 1].isalnum() and text[at].isalnum():
            continue
        row = open_p[plen + i - 1]   # logits at prompt+x_{<i} predict the token at i
        p = float(row.sum())
        if p > config.tau_s:
            best = int(row.argmax())
            scored.append([i, tt.starts[i], p, opens[best][0]])
    scored.sort(key=lambda s: (-s[2], s[0]))
    positions = dict(record.get("positions", {}))
    positions[tool] = scored[:config.k]
    return {**record, "positions": positions}
