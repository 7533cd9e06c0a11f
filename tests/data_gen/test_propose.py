"""The propose stage: tools' proposals become candidates at token starts, capped, deduplicated, judged like samples."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from toolcall.data_gen.config import DataGenConfig, FilterConfig, PositionConfig, ProposeConfig, SampleConfig
from toolcall.data_gen.execute import CallRunner, execute_calls
from toolcall.data_gen.pipeline import Pipeline
from toolcall.data_gen.propose import proposal_token, propose_calls
from toolcall.data_gen.records import Candidate, TextRecord
from toolcall.data_gen.tokens import TokenizedText

from toolcall.backends.fake import FakeBackend
from toolcall.backends.toy_lm import ToyLM
from toolcall.registry import ToolRegistry, default_registry, user_tools
from toolcall.tool_type import Proposal, make_tool

pytestmark = pytest.mark.usefixtures("pinned_date")  # Calendar calls answer as on 2023-01-30

# " 2,800" is cut " " + "2" + ",800" and " $180" is " $" + "180", as SmolLM2 does.
TEXT = "We sold 1,240 and 1,560, so 2,800 in all for $180."
PIECES = ["We", " sold", " ", "1", ",240", " and", " ", "1", ",560", ",", " so", " ", "2", ",800", " in", " all",
          " for", " $", "180", "."]


def tokenized(text: str = TEXT, pieces: list[str] = PIECES) -> TokenizedText:
    assert "".join(pieces) == text
    starts, at = [], 0
    for piece in pieces:
        starts.append(at)
        at += len(piece)
    return TokenizedText(text, tuple(range(len(pieces))), tuple(starts))


def adder(a: str) -> str:
    """Add numbers.

    Args:
        a: The sum to compute.
    """
    return str(sum(float(x.replace(",", "")) for x in a.split("+")))


def registry_with(proposer: Any) -> ToolRegistry:
    return ToolRegistry([make_tool(adder, "Adder", proposer=proposer)])


def test_a_proposal_goes_to_the_token_where_its_number_starts() -> None:
    tt = tokenized()
    at = TEXT.index("2,800")
    assert proposal_token(tt, at) == 12 and tt.starts[12] == at
    assert proposal_token(tt, at + 2) == 13                  # inside a token: the token holding it
    assert proposal_token(tt, at, "inline") == 11            # inline: the lone space before it, " [..] 2,800"
    assert proposal_token(tt, TEXT.index("180"), "inline") == 17 and proposal_token(tt, TEXT.index("180")) == 18


SAMPLED = Candidate("Adder", ("2 + 2",), "[Adder(2 + 2)]", 12, 28)


def test_proposals_become_candidates_shaped_like_samples() -> None:
    reg = registry_with(lambda text: [Proposal(text.index("2,800"), ("1,240 + 1,560",), 0.9)])
    rec = propose_calls(TextRecord(TEXT, candidates=(SAMPLED,)), "Adder", reg, tokenized(), ProposeConfig())
    model, proposed = rec.candidates
    assert model == SAMPLED and model.source == "model"
    assert proposed == Candidate("Adder", ("1,240 + 1,560",), "[Adder(1,240 + 1,560)]", 12, TEXT.index("2,800"),
                                 source="proposer", score=0.9)
    assert rec.counts["Adder"]["proposed"] == 1


def test_a_proposal_equal_to_a_model_sample_is_not_added_again() -> None:
    reg = registry_with(lambda text: [Proposal(text.index("2,800"), ("2 + 2",), 0.7)])
    rec = propose_calls(TextRecord(TEXT, candidates=(SAMPLED,)), "Adder", reg, tokenized(), ProposeConfig())
    assert rec.candidates == (replace(SAMPLED, source="both", score=0.7),)    # judged as a proposal
    assert rec.counts["Adder"] == {"proposal_duplicates": 1, "proposed": 0}
    assert FilterConfig(tau_f=0.5, tau_p=0.1).threshold("both") == 0.1
    # the same call spaced otherwise is the same call; the model's spelling is kept
    tight = replace(SAMPLED, args=("2+2",), call="[Adder(2+2)]")
    rec = propose_calls(TextRecord(TEXT, candidates=(tight,)), "Adder", reg, tokenized(), ProposeConfig())
    assert rec.candidates == (replace(tight, source="both", score=0.7),)
    other = replace(SAMPLED, args=("2 + 3",), call="[Adder(2 + 3)]")
    assert [c.source for c in propose_calls(TextRecord(TEXT, candidates=(other,)), "Adder", reg, tokenized(),
                                            ProposeConfig()).candidates] == ["model", "proposer"]


def test_min_score_and_the_caps_keep_the_best() -> None:
    at, other = TEXT.index("2,800"), TEXT.index("180")
    proposals = [Proposal(at, (f"{k} + 1",), score) for k, score in ((1, 0.3), (2, 0.9), (3, 0.8), (4, 0.7))]
    proposals.append(Proposal(other, ("90 + 90",), 0.6))
    reg = registry_with(lambda text: proposals)
    cfg = ProposeConfig(min_score=0.5, per_position=2, per_text=3)
    kept = propose_calls(TextRecord(TEXT), "Adder", reg, tokenized(), cfg).candidates
    assert [c.args for c in kept] == [("2 + 1",), ("3 + 1",), ("90 + 90",)]
    fewer = propose_calls(TextRecord(TEXT), "Adder", reg, tokenized(), ProposeConfig(min_score=0.5, per_text=1))
    assert [c.args for c in fewer.candidates] == [("2 + 1",)]


def test_off_or_without_a_proposer_leaves_the_samples_alone() -> None:
    reg = registry_with(None)
    rec = propose_calls(TextRecord(TEXT, candidates=(SAMPLED,)), "Adder", reg, tokenized(), ProposeConfig())
    assert rec.candidates == (SAMPLED,) and rec.candidates[0].source == "model"
    busy = registry_with(lambda text: [Proposal(3, ("1 + 1",))])
    off = propose_calls(TextRecord(TEXT), "Adder", busy, tokenized(), ProposeConfig(enabled=False))
    assert off.candidates == () and off.counts == {}


def test_a_failing_proposer_names_its_tool_and_proposes_nothing() -> None:
    from toolcall.data_gen import user_hooks

    user_hooks._warned.clear()
    reg = registry_with(lambda text: 1 / 0)
    # It ended the run, and --resume ended again on the same text.
    with pytest.warns(RuntimeWarning, match="Adder's proposer raised ZeroDivisionError"):
        rec = propose_calls(TextRecord(TEXT), "Adder", reg, tokenized(), ProposeConfig())
    assert rec.candidates == ()


def test_the_tool_decorator_takes_a_proposer() -> None:
    from toolcall.registry import tool

    def propose(text: str) -> list[Proposal]:
        return [Proposal(text.index("!"), (text.upper(),))]

    @tool(name="Shout", proposer=propose, replace=True)
    def shout(words: str) -> str:
        """Shout.

        Args:
            words: What to shout.
        """
        return words.upper() + "!"

    try:
        assert user_tools().get("shout").proposer is propose
        assert make_tool(shout).proposer is propose                 # a copy keeps it
    finally:
        user_tools().unregister("Shout")


def test_results_follow_the_number_style_of_the_text() -> None:
    reg = default_registry(["calculator"], entry_points=False)
    at = TEXT.index("2,800")
    cands = (Candidate("Calculator", ("1,240 + 1,560",), "x", 12, at),
             Candidate("Calculator", ("100 + 80",), "y", 17, TEXT.index(" $")),
             Candidate("Calculator", ("2 + 2",), "z", 12, at))
    rec = execute_calls(TextRecord(TEXT, candidates=cands), CallRunner(reg))
    assert [c.result for c in rec.candidates] == ["2,800", "180", "4"]   # 4 is not 2,800: left alone
    runner = CallRunner(reg, DataGenConfig(sampling="paper").execute_config())     # the paper keeps "2800"
    assert [c.result for c in execute_calls(TextRecord(TEXT, candidates=cands), runner).candidates] == \
        ["2800", "180", "4"]
    again = execute_calls(TextRecord(TEXT, candidates=cands[:1]), runner)    # a second batch, same workers
    assert again.candidates[0].result == "2800"


# The toy LM has seen the call after "a total of", so the filter keeps it wherever it is proposed there.
LM_TEXTS = [
    "The store sold 12 apples and 30 pears, a total of [Calculator(12 + 30) -> 42] 42 fruits.",
    "The farm has 12 cows and 30 sheep, a total of [Calculator(12 + 30) -> 42] 42 animals.",
    "We had 12 red and 30 blue pens, a total of [Calculator(12 + 30) -> 42] 42 pens.",
]
SHOP = "The shop sold 12 apples and 30 pears, a total of 42 fruits. It was Monday, January 30."


def pipeline_config(sampling: str, at_proposals: bool = True) -> DataGenConfig:
    return DataGenConfig(sampling=sampling, positions=PositionConfig(tau_s=0.9, k=1, at_proposals=at_proposals),
                         sample=SampleConfig(m=1, seed=1), filter=FilterConfig(tau_f=1e9, tau_p=-1e9), overrides={})


def test_the_pipeline_judges_proposals_in_default_sampling_only() -> None:
    fake = FakeBackend(lm=ToyLM(LM_TEXTS, order=5, smoothing=0.1))
    reg = default_registry(["calculator", "calendar"], entry_points=False)
    out, summary = Pipeline(fake, reg, pipeline_config("default")).process(SHOP)
    assert out is not None
    # The model sampled "12 + 30" there too ("both", at its own top position): judged as a proposal, by tau_p. Its
    # only position (k=1) is not the Calendar's; it samples there because the Calendar proposes a call there.
    assert [(c["tool"], c["args"], c["result"], c["source"]) for c in out["calls"]] == [
        ("Calculator", ["12 + 30"], "42", "both"),
        ("Calendar", [], "Today is Monday, January 30, 2023.", "both")]
    assert out["text"] == ("The shop sold 12 apples and 30 pears, a total of [Calculator(12 + 30) -> 42] 42 fruits. "
                           "It was [Calendar() -> Today is Monday, January 30, 2023.] Monday, January 30.")
    assert summary["counts"]["Calculator"]["proposal_duplicates"] == 1
    assert summary["counts"]["Calendar"] == {"samples": 2, "executed": 2, "proposal_duplicates": 1, "proposed": 0}
    assert summary["positions"] == {"Calculator": 1, "Calendar": 2}
    alone, summary = Pipeline(fake, reg, pipeline_config("default", at_proposals=False)).process(SHOP)
    assert alone is not None and [c["source"] for c in alone["calls"]] == ["both", "proposer"]
    assert summary["counts"]["Calendar"]["proposed"] == 1 and summary["positions"]["Calendar"] == 1
    paper, summary = Pipeline(fake, reg, pipeline_config("paper")).process(SHOP)
    assert paper is None and "proposed" not in summary["counts"].get("Calculator", {})


def test_a_texts_own_date_is_what_calendar_answers_and_proposes_for_it() -> None:
    fake = FakeBackend(lm=ToyLM(LM_TEXTS, order=5, smoothing=0.1))
    reg = default_registry(["calculator", "calendar"], entry_points=False)
    text = "The shop opened early. It was Tuesday, March 4, and the queue was long."
    out, _ = Pipeline(fake, reg, pipeline_config("default")).process(text, fields={"date": "2025-03-04"})
    assert out is not None and out["date"] == "2025-03-04"
    assert [(c["tool"], c["result"]) for c in out["calls"]] == [("Calendar", "Today is Tuesday, March 4, 2025.")]
    # Without the date the text's weekday is not today's (the tests pin Monday, January 30, 2023): no proposal.
    plain, summary = Pipeline(fake, reg, pipeline_config("default")).process(text)
    assert plain is None and not summary["counts"].get("Calendar", {}).get("proposed")


def test_the_tool_decorator_takes_a_restyle() -> None:
    from toolcall.registry import tool

    @tool(name="Plain", restyle=lambda result, following: result.upper(), replace=True)   # it was a TypeError
    def plain(words: str) -> str:
        """Plain.

        Args:
            words: Words.
        """
        return words

    try:
        assert plain.restyle is not None and plain.restyle("ab", "") == "AB"
    finally:
        user_tools().unregister("Plain")
