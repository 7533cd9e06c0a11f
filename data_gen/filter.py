"""Stage 5: keep a call iff L- - L+ >= tau_f, scored with shared forwards (paper §2, §4.1).

L_i(z) = -sum_t w_t log p(x_{i+t} | z, x_{<i+t}); L+ = L_i(e(c, r)); L- = min(L_i(eps), L_i(e(c, eps))).
Work reuse: L_i(eps) for every i comes from one forward over x. In prefix placement a call string z is scored once
for every position that uses it (one forward over z + x); in inline placement each candidate branches from the KV
cache of x_{<i} and only its call tokens plus the 5 scored tokens are run, all candidates batched. L_i(e(c, eps)) is
scored only for calls it can still decide (those whose L_i(eps) - L+ reaches the threshold).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from toolcall.backends.base import Branch, Prefix, Scorer
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
    """record -> record whose executed candidates carry their losses, loss_reduction and kept (the others are dropped).

    L+ is scored for every candidate, L(e(c, eps)) only where it can change the decision (or for all, with
    exact_losses): L- = min(L_eps, L(e(c, eps))) <= L_eps, so a call whose L_eps - L+ is below its threshold fails
    whatever L(e(c, eps)) is. Such a call keeps loss_null and loss_minus unset, and loss_reduction = L_eps - L+, the
    bound it failed on."""
    cands = [c for c in record.candidates if c.result is not None]
    if not cands:
        return replace(record, candidates=tuple(cands))
    first = next(iter(configs.values()))
    placement, weights = first.placement, first.weights()
    tt = tokenize(scorer, record.text)
    start = scorer.start_token_id()
    base = scorer.prefix_state([start] + list(tt.ids))
    eps = base.token_logprobs                     # eps[j] = log p(x_j | x_<j), j = 0..n-1
    strings = [call_strings(c) for c in cands]
    config = [configs.get(c.tool.lower(), first) for c in cands]
    l_eps = [weighted_loss(eps[c.token:c.token + len(weights)], weights) for c in cands]
    l_plus = call_losses(scorer, tt, base, first, [(c, zp) for c, (_, zp) in zip(cands, strings)])
    undecided = [b for b, c in enumerate(cands)
                 if config[b].exact_losses or l_eps[b] - l_plus[b] >= config[b].threshold(c.source)]
    l_null: list[float | None] = [None] * len(cands)
    for b, loss in zip(undecided, call_losses(scorer, tt, base, first, [(cands[b], strings[b][0]) for b in undecided])):
        l_null[b] = loss
    out = []
    for b, c in enumerate(cands):
        null = l_null[b]
        l_minus = None if null is None else min(l_eps[b], null)
        reduction = (l_eps[b] if l_minus is None else l_minus) - l_plus[b]
        out.append(replace(c, text_call=strings[b][1], placement=placement, loss_eps=l_eps[b], loss_null=null,
                           loss_plus=l_plus[b], loss_minus=l_minus, loss_reduction=reduction,
                           kept=l_minus is not None and reduction >= config[b].threshold(c.source)))
    return replace(record, candidates=tuple(out))


def call_losses(scorer: Scorer, tt: TokenizedText, base: Prefix, config: FilterConfig,
                calls: Sequence[tuple[Candidate, str]]) -> list[float]:
    """L_i(z) for each (candidate, call string z), i the candidate's token, in `config`'s placement.

    Prefix placement: one sequence per distinct z, as long as its furthest user needs, scored from its nearest
    user's position on (the LM head runs only where a loss is read). Inline placement: each call branches from the
    KV cache of x_{<i} and only its tokens plus the scored ones are run, all batched."""
    if not calls:
        return []
    weights = config.weights()
    ids, n, span = list(tt.ids), len(tt.ids), len(weights)
    if config.placement == "prefix":
        need: dict[str, tuple[int, int]] = {}
        for c, z in calls:
            lo, hi = need.get(z, (c.token, 0))
            need[z] = (min(lo, c.token), max(hi, min(n, c.token + span)))
        zs = sorted(need)
        start = scorer.start_token_id()
        heads = [scorer.encode(z + config.prefix_separator) for z in zs]
        seqs = [([start] + h + ids[:need[z][1]], 1 + len(h) + need[z][0]) for z, h in zip(zs, heads)]
        lps = dict(zip(zs, scorer.sequence_logprobs(seqs)))
        return [weighted_loss(lps[z][c.token - need[z][0]:c.token - need[z][0] + span], weights) for c, z in calls]
    branches = []
    for c, z in calls:
        head = scorer.encode(inline_text(tt, c.token, z))
        branches.append(Branch(1 + c.token, tuple(head + ids[c.token:min(n, c.token + span)]), len(head)))
    return [weighted_loss(lps, weights) for lps in scorer.branch_logprobs(base, branches)]
