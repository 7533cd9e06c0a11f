"""Stage 5: keep a call iff L- - L+ >= tau_f, scored with shared forwards (paper §2, §4.1).

L_i(z) = -sum_t w_t log p(x_{i+t} | z, x_{<i+t}); L+ = L_i(e(c, r)); L- = min(L_i(eps), L_i(e(c, eps))).
Work reuse: L_i(eps) for every i comes from one forward over x. In prefix placement a call string z is scored once
for every position that uses it (one forward over z + x); in inline placement each candidate branches from the KV
cache of x_{<i} and only its call tokens plus the 5 scored tokens are run, all candidates batched.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from toolcall.backends.base import Branch, Scorer
from toolcall.calls import ToolCall

from .calls_text import render_call
from .config import FilterConfig
from .records import Candidate, TextRecord
from .tokens import TokenizedText, tokenize


def weighted_loss(logprobs: Sequence[float], weights: Sequence[float]) -> float:
    return -sum(w * lp for w, lp in zip(weights, logprobs))


def call_strings(cand: Candidate) -> tuple[str, str]:
    """(e(c, eps), e(c, r)) in the bracket form."""
    call = ToolCall(cand.tool, tuple(cand.args), None)
    return render_call(call), render_call(call.with_result(str(cand.result)))


def inline_text(tt: TokenizedText, i: int, z: str) -> str:
    """What is inserted before token i: the call, with the space the token i carries kept in front (" [..]")."""
    return (" " if tt.leading_space(i) else "") + z


def score_candidates(record: TextRecord, scorer: Scorer, configs: Mapping[str, FilterConfig]) -> TextRecord:
    """record -> record whose executed candidates carry their losses, loss_reduction and kept (the others are dropped)."""
    cands = [c for c in record.candidates if c.result is not None]
    if not cands:
        return replace(record, candidates=tuple(cands))
    first = next(iter(configs.values()))
    placement, weights = first.placement, first.weights()
    tt = tokenize(scorer, record.text)
    ids, n, span = list(tt.ids), len(tt.ids), len(weights)
    start = scorer.start_token_id()
    base = scorer.prefix_state([start] + ids)
    eps = base.token_logprobs                     # eps[j] = log p(x_j | x_<j), j = 0..n-1
    strings = [call_strings(c) for c in cands]
    if placement == "prefix":
        # One sequence per distinct call string, as long as its furthest user needs, scored from its nearest user's
        # position on (the LM head runs only where a loss is read).
        need: dict[str, tuple[int, int]] = {}
        for c, (zm, zp) in zip(cands, strings):
            i = c.token
            for z in (zm, zp):
                lo, hi = need.get(z, (i, 0))
                need[z] = (min(lo, i), max(hi, min(n, i + span)))
        zs = sorted(need)
        heads = [scorer.encode(z + first.prefix_separator) for z in zs]
        seqs = [([start] + h + ids[:need[z][1]], 1 + len(h) + need[z][0]) for z, h in zip(zs, heads)]
        lps = dict(zip(zs, scorer.sequence_logprobs(seqs)))

        def loss(c: Candidate, z: str) -> float:
            i = c.token - need[z][0]
            return weighted_loss(lps[z][i:i + span], weights)
    else:
        branches: list[Branch] = []
        for c, (zm, zp) in zip(cands, strings):
            i = c.token
            for z in (zm, zp):
                head = scorer.encode(inline_text(tt, i, z))
                branches.append(Branch(1 + i, tuple(head + ids[i:min(n, i + span)]), len(head)))
        scored = scorer.branch_logprobs(base, branches)
        table: dict[tuple[int, str], list[float]] = {}
        for b, (c, (zm, zp)) in enumerate(zip(cands, strings)):
            table[(id(c), zm)], table[(id(c), zp)] = scored[2 * b], scored[2 * b + 1]

        def loss(c: Candidate, z: str) -> float:
            return weighted_loss(table[(id(c), z)], weights)
    out = []
    for c, (zm, zp) in zip(cands, strings):
        i = c.token
        l_eps = weighted_loss(eps[i:i + span], weights)
        l_null, l_plus = loss(c, zm), loss(c, zp)
        l_minus = min(l_eps, l_null)
        tau = configs.get(c.tool.lower(), first).threshold(c.source)
        out.append(replace(c, text_call=zp, placement=placement, loss_eps=l_eps, loss_null=l_null, loss_plus=l_plus,
                           loss_minus=l_minus, loss_reduction=l_minus - l_plus, kept=l_minus - l_plus >= tau))
    return replace(record, candidates=tuple(out))
