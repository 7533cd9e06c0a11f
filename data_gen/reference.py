"""A deliberately naive reference for the filter's losses: one un-batched full forward (naive_logprobs) per scored sequence."""
from __future__ import annotations

from toolcall.backends.base import ReferenceScorer

from .filter import call_strings, inline_text
from .records import Candidate
from .tokens import tokenize


def naive_losses(scorer: ReferenceScorer, text: str, cand: Candidate, placement: str = "prefix", decay: float = 0.2,
                 separator: str = "\n") -> tuple[float, float]:
    """(loss_minus, loss_plus) for one candidate, every sequence scored from scratch, weights applied by hand."""
    tt = tokenize(scorer, text)
    ids, i = list(tt.ids), cand.token
    start = scorer.start_token_id()
    raw = [max(0.0, 1.0 - decay * t) for t in range(int(1 / decay) + 1)]
    weights = [w / sum(raw) for w in raw if w > 0]
    zm, zp = call_strings(cand)

    def loss_of(seq: list[int], first_scored: int) -> float:
        lps = scorer.naive_logprobs(seq)      # lps[j - 1] is token j, from one plain full forward
        total = 0.0
        for t, w in enumerate(weights):
            j = first_scored + t
            if j >= len(seq) or first_scored + t >= first_scored + len(ids) - i:
                break
            total -= w * lps[j - 1]
        return total

    def with_call(z: str) -> float:
        if placement == "prefix":
            head = [start] + scorer.encode(z + separator)
            return loss_of(head + ids, len(head) + i)
        head = [start] + ids[:i] + scorer.encode(inline_text(tt, i, z))
        return loss_of(head + ids[i:], len(head))

    l_eps = loss_of([start] + ids, 1 + i)
    return min(l_eps, with_call(zm)), with_call(zp)
