"""The filter's batched, KV-sharing losses agree with a naive one-forward-per-sequence reference to 1e-4."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from toolcall.data_gen.config import DataGenConfig, FilterConfig, PositionConfig, SampleConfig
from toolcall.data_gen.execute import CallRunner, execute_calls
from toolcall.data_gen.filter import score_candidates
from toolcall.data_gen.merge import merge_record
from toolcall.data_gen.pipeline import Pipeline
from toolcall.data_gen.positions import PromptStates, find_positions
from toolcall.data_gen.prefilter import prefilter
from toolcall.data_gen.records import Candidate, TextRecord
from toolcall.data_gen.reference import naive_losses
from toolcall.data_gen.sample import sample_calls

TEXTS = [
    "Out of 1400 participants, 400 passed, a total of 1800 people on Monday, January 30, 2023.",
    "The store sold 12 apples and 30 pears, a total of 42 fruits on Friday.",
]


def unscored(cand: Candidate) -> Candidate:
    """The candidate as the filter receives it: executed, not yet scored."""
    return replace(cand, text_call="", loss_eps=None, loss_null=None, loss_plus=None, loss_minus=None,
                   loss_reduction=None, kept=False)


def reduction(cand: Candidate) -> float:
    assert cand.loss_reduction is not None
    return cand.loss_reduction


def run_stages(scorer: Any, registry: Any, text: str, placement: str, k: int = 4, m: int = 3) -> TextRecord:
    cfg = DataGenConfig(positions=PositionConfig(tau_s=0.0, k=k), sample=SampleConfig(m=m, seed=3),
                        filter=FilterConfig(tau_f=-1e9, placement=placement), overrides={})
    tools = tuple(registry.canonical(t) for t in cfg.tools)
    states = PromptStates(scorer, cfg.positions.open_texts, registry)
    rec = prefilter(TextRecord(text), tools, cfg.prefilter)
    for tool in rec.tools:
        rec = find_positions(rec, tool, states, cfg.positions)
        rec = sample_calls(rec, tool, states, cfg.sample, registry.canonical)
    rec = execute_calls(rec, CallRunner(registry, cfg.execute))
    return score_candidates(rec, scorer, {t.lower(): cfg.filter for t in tools})


@pytest.mark.slow
@pytest.mark.parametrize("placement", ["prefix", "inline"])
def test_losses_match_naive_reference(tiny_scorer: Any, registry: Any, placement: str) -> None:
    checked = 0
    for text in TEXTS:
        rec = run_stages(tiny_scorer, registry, text, placement)
        for cand in rec.candidates:
            minus, plus = naive_losses(tiny_scorer, text, cand, placement=placement)
            assert cand.loss_minus == pytest.approx(minus, abs=1e-4)
            assert cand.loss_plus == pytest.approx(plus, abs=1e-4)
            assert cand.loss_reduction == pytest.approx(minus - plus, abs=2e-4)
            checked += 1
        out = merge_record(rec)
        assert out is not None and out["calls"]   # tau_f = -inf keeps every call
    assert checked >= 6, "the trained tiny model should sample several parseable calls"


@pytest.mark.slow
def test_threshold_decides_kept(tiny_scorer: Any, registry: Any) -> None:
    rec = run_stages(tiny_scorer, registry, TEXTS[0], "prefix")
    reductions = sorted(reduction(c) for c in rec.candidates)
    assert len(reductions) >= 2
    mid = (reductions[0] + reductions[-1]) / 2
    cfg = FilterConfig(tau_f=mid)
    again = score_candidates(replace(rec, candidates=tuple(unscored(c) for c in rec.candidates)),
                             tiny_scorer, {"calculator": cfg, "calendar": cfg})
    for c in again.candidates:
        assert c.kept is (reduction(c) >= mid)


@pytest.mark.slow
def test_identical_calls_share_one_scored_sequence(tiny_scorer: Any, registry: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Same call at three positions (prefix placement): e(c, eps) and e(c, r) are scored once each, not three times.
    text = TEXTS[1]
    ids = tiny_scorer.encode(text)
    cands = tuple(Candidate("Calculator", ("12 + 30",), "[Calculator(12 + 30)]", t, 0, result="42")
                  for t in (3, 6, len(ids) - 2))
    seen: list[int] = []
    real = tiny_scorer.sequence_logprobs
    monkeypatch.setattr(tiny_scorer, "sequence_logprobs", lambda seqs: seen.append(len(seqs)) or real(seqs))
    cfg = FilterConfig(tau_f=0.0, exact_losses=True)
    out = score_candidates(TextRecord(text, candidates=cands), tiny_scorer, {"calculator": cfg})
    assert seen == [1, 1]    # e(c, r) for the decision, then e(c, eps)
    for cand in out.candidates:
        minus, plus = naive_losses(tiny_scorer, text, cand)
        assert cand.loss_minus == pytest.approx(minus, abs=1e-4) and cand.loss_plus == pytest.approx(plus, abs=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("placement", ["prefix", "inline"])
def test_calls_that_cannot_pass_skip_the_call_without_result_and_the_same_calls_are_kept(
        tiny_scorer: Any, registry: Any, placement: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = run_stages(tiny_scorer, registry, TEXTS[0], placement)
    bare = tuple(unscored(c) for c in rec.candidates)
    bounds = sorted(c.loss_eps - c.loss_plus for c in rec.candidates if c.loss_eps is not None and c.loss_plus is not None)
    assert len(bounds) >= 3
    tau = (bounds[len(bounds) // 2] + bounds[len(bounds) // 2 - 1]) / 2   # about half the calls cannot pass
    scored: list[int] = []
    for method in ("sequence_logprobs", "branch_logprobs"):
        real = getattr(tiny_scorer, method)
        monkeypatch.setattr(tiny_scorer, method, lambda *a, real=real: scored.append(len(a[-1])) or real(*a))

    def run(exact: bool) -> tuple[Candidate, ...]:
        cfg = FilterConfig(tau_f=tau, tau_p=tau, placement=placement, exact_losses=exact)
        scored.clear()
        return score_candidates(replace(rec, candidates=bare), tiny_scorer, {"calculator": cfg, "calendar": cfg}).candidates

    exact = run(True)
    exact_work = sum(scored)
    lazy = run(False)
    assert sum(scored) < exact_work
    assert [c.kept for c in lazy] == [c.kept for c in exact] and any(c.kept for c in lazy)
    merged = [merge_record(replace(rec, candidates=c)) or {} for c in (lazy, exact)]
    assert merged[0]["text"] == merged[1]["text"]    # the losses differ only in the last bits (other packs)
    assert [(c["args"], c["result"], c["position"]) for c in merged[0]["calls"]] == \
        [(c["args"], c["result"], c["position"]) for c in merged[1]["calls"]]
    for a, b in zip(lazy, exact):
        assert a.loss_plus == pytest.approx(b.loss_plus, abs=1e-4) and a.loss_eps == pytest.approx(b.loss_eps, abs=1e-4)
        if a.loss_null is None:   # skipped: its reduction is the bound it failed on, never below the true one
            assert a.loss_minus is None and not a.kept
            assert reduction(a) == pytest.approx(b.loss_eps - b.loss_plus, abs=1e-4) and reduction(a) < tau
            assert reduction(a) >= reduction(b) - 1e-4
        else:
            assert a.loss_minus == pytest.approx(b.loss_minus, abs=1e-4)
            assert reduction(a) == pytest.approx(reduction(b), abs=1e-4)
    assert any(a.loss_null is None for a in lazy) and any(a.loss_null is not None for a in lazy)


@pytest.mark.slow
def test_pipeline_samples_and_keeps_parseable_calls(tiny_scorer: Any, registry: Any) -> None:
    cfg = DataGenConfig(positions=PositionConfig(tau_s=0.0, k=4), sample=SampleConfig(m=4),
                        filter=FilterConfig(tau_f=-1e9), overrides={})
    out, summary = Pipeline(tiny_scorer, registry, cfg).process(TEXTS[1])
    assert out is not None and out["original"] == TEXTS[1]
    # m samples at each of the k positions that follow a number (before the first one no calculation is admissible)
    samples = summary["counts"]["Calculator"]["samples"]
    assert samples % 4 == 0 and 0 < samples <= 4 * summary["positions"]["Calculator"]
    for call in out["calls"]:
        assert call["tool"] in ("Calculator", "Calendar")
        assert call["result"] and "[" + call["tool"] in out["text"]


@pytest.mark.model
def test_embedded_model_losses_match_naive_reference(registry: Any) -> None:
    from toolcall.backends.hf_loading import load_model_and_tokenizer
    from toolcall.backends.hf_scoring import HFScorer

    scorer = HFScorer(*load_model_and_tokenizer(None))
    text = "A box holds 12 eggs, so 3 boxes hold 36 eggs."
    cands = [Candidate("Calculator", ("12 * 3",), "[Calculator(12 * 3)]", t, 0, result="36") for t in (9, 11)]
    cands.append(Candidate("Calendar", (), "[Calendar()]", 4, 0, result="Today is Monday, January 30, 2023."))
    for placement in ("prefix", "inline"):
        cfg = FilterConfig(tau_f=0.0, placement=placement, exact_losses=True)
        out = score_candidates(TextRecord(text, candidates=tuple(cands)), scorer, {"calculator": cfg, "calendar": cfg})
        for cand in out.candidates:
            minus, plus = naive_losses(scorer, text, cand, placement=placement)
            assert cand.loss_minus == pytest.approx(minus, abs=1e-4)
            assert cand.loss_plus == pytest.approx(plus, abs=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("placement", ["prefix", "inline"])
def test_candidates_scored_together_keep_what_one_at_a_time_keeps(tiny_scorer: Any, registry: Any, placement: str) -> None:
    # All of a text's candidates share packed forwards (shared heads once, several call strings per pack); scoring
    # each candidate alone must give the same losses and so the same kept calls.
    rec = run_stages(tiny_scorer, registry, TEXTS[0], placement)
    bare = [unscored(c) for c in rec.candidates]
    assert len(bare) >= 3
    # A threshold halfway between two reductions, so that no candidate sits on it.
    reductions = sorted(reduction(c) for c in rec.candidates)
    gap, mid = max((b - a, (a + b) / 2) for a, b in zip(reductions, reductions[1:]))
    assert gap > 1e-3
    cfg = FilterConfig(tau_f=mid, placement=placement)
    configs = {"calculator": cfg, "calendar": cfg}
    together = score_candidates(replace(rec, candidates=tuple(bare)), tiny_scorer, configs).candidates
    alone = [score_candidates(replace(rec, candidates=(c,)), tiny_scorer, configs).candidates[0] for c in bare]
    assert [c.kept for c in together] == [c.kept for c in alone]
    assert any(c.kept for c in together) and not all(c.kept for c in together)
    for a, b in zip(together, alone):
        assert a.loss_minus == pytest.approx(b.loss_minus, abs=1e-5)
        assert a.loss_plus == pytest.approx(b.loss_plus, abs=1e-5)
