"""data_gen's sample stage under the tool's call grammar: every finished sample is a well-formed call of that tool."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

pytest.importorskip("llguidance")

from toolcall.data_gen.config import DataGenConfig, PositionConfig, SampleConfig  # noqa: E402
from toolcall.data_gen.positions import PromptStates, find_positions  # noqa: E402
from toolcall.data_gen.records import TextRecord
from toolcall.data_gen.sample import call_grammar, sample_calls, sampled_call  # noqa: E402

from toolcall.backends.fake import FakeBackend  # noqa: E402
from toolcall.backends.toy_lm import ToyLM  # noqa: E402
from toolcall.errors import ConfigError  # noqa: E402

CALC = ("Calculator", "Calculate")
# A toy LM that has seen calls, and a lot of prose that is no call at all: free samples often stray into prose.
LM_TEXTS = [
    "The store sold 12 apples and 30 pears, a total of [Calculator(12 + 30) -> 42] 42 fruits.",
    "We drove 3 hours at 60 miles per hour, so [Calculator(3 * 60)] 180 miles in all.",
    "The store sold apples and pears, and a total of people came to see the farm in the morning.",
    "We drove home, and the pears were sold by the hour in the store, a total of joy [ for all ].",
]
TEXT = "The shop sold 12 apples and 30 pears, a total of 42 fruits."


def sample(backend: Any, registry: Any, config: SampleConfig, tool: str = "Calculator") -> TextRecord:
    states = PromptStates(backend, PositionConfig.open_texts, registry)
    rec = find_positions(TextRecord(TEXT, tools=(tool,)), tool, states, PositionConfig(tau_s=0.0, k=4))
    return sample_calls(rec, tool, states, config, registry.canonical, CALC)


def after_the_first_number(rec: TextRecord) -> int:
    """The Calculator positions that can admit a calculation: those after the text's first number."""
    return len([p for p in rec.positions["Calculator"] if p.char > TEXT.index("12")])


def test_constrained_samples_are_all_calls_of_the_tool(registry: Any) -> None:
    backend = FakeBackend(lm=ToyLM(LM_TEXTS, order=3))
    free = sample(backend, registry, SampleConfig(m=8, seed=2, constrain=False))
    constrained = sample(backend, registry, SampleConfig(m=8, seed=2, max_new_tokens=48))
    assert free.counts["Calculator"]["unparsed"] > 0          # the toy strays when it samples freely
    counts = constrained.counts["Calculator"]
    assert counts["samples"] == 8 * after_the_first_number(constrained) and counts.get("unparsed", 0) == 0
    assert counts.get("unclosed", 0) <= 3                         # only a sample cut short by max_new_tokens fails
    assert constrained.candidates and all(c.tool == "Calculator" for c in constrained.candidates)
    for cand in constrained.candidates:
        assert cand.call.startswith("[Calculator(") and cand.call.endswith(")]")


def test_constrained_calendar_samples_take_no_argument(registry: Any) -> None:
    backend = FakeBackend(lm=ToyLM(LM_TEXTS, order=3))
    rec = sample(backend, registry, SampleConfig(m=4, seed=1), tool="Calendar")
    assert {c.call for c in rec.candidates} == {"[Calendar()]"}
    assert rec.counts["Calendar"].get("unparsed", 0) == 0


def test_a_closed_sample_keeps_an_arrow_that_sits_inside_its_quoted_argument(registry: Any) -> None:
    call, why = sampled_call('WikiSearch("a -> b") ->', True, "WikiSearch", None, ("WikiSearch",), closed=True)
    assert why == "" and call is not None and call.args == ("a -> b",) and call.result is None
    call, _ = sampled_call("Calculator(2 * 3)]", True, "Calculator", registry.canonical, CALC, closed=True)
    assert call is not None and call.args == ("2 * 3",)
    assert sampled_call("Calculator(2 *", False, "Calculator", registry.canonical, CALC, closed=True)[1] == "unclosed"


def test_constraint_needs_the_registry_and_is_a_flag(registry: Any) -> None:
    with pytest.raises(ConfigError, match="needs the tool registry"):
        call_grammar("Calculator", None)
    assert '"Calculate("' in call_grammar("Calculator", registry)    # aliases are spelled too
    assert SampleConfig().constrain and not replace(SampleConfig(), constrain=False).constrain
    assert DataGenConfig().to_dict()["sample"]["constrain"] is True


@pytest.mark.slow
def test_tiny_llama_constrained_samples_all_parse(tiny_scorer: Any, registry: Any) -> None:
    # Every sample is judged here, admissible or not: this is about the grammar.
    rec = sample(tiny_scorer, registry, SampleConfig(m=6, seed=5, max_new_tokens=24, admissible_only=False))
    counts = rec.counts["Calculator"]
    assert counts["samples"] == 24 and counts.get("unparsed", 0) == 0 and counts.get("unclosed", 0) == 0
    assert rec.candidates


@pytest.mark.model
def test_embedded_model_samples_fifty_calls_that_all_parse(registry: Any) -> None:
    # SmolLM2-135M sampling freely at temperature 1 wrote ~60% unparsable calls on worked math solutions; under the
    # constraint every sample must be a Calculator call.
    from toolcall.backends.hf_loading import load_model_and_tokenizer
    from toolcall.backends.hf_scoring import HFScorer

    scorer = HFScorer(*load_model_and_tokenizer(None))
    text = "Each hen eats 3 cups of feed a day, so 20 hens eat 3*20=60 cups, and in a week 60*7=420 cups of feed."
    states = PromptStates(scorer, registry=registry)
    rec = find_positions(TextRecord(text, tools=("Calculator",)), "Calculator", states, PositionConfig(tau_s=0.0, k=5))
    assert len(rec.positions["Calculator"]) == 5
    rec = sample_calls(rec, "Calculator", states, SampleConfig(m=10, temperature=1.0, seed=0, admissible_only=False),
                       registry.canonical, CALC)
    counts = rec.counts["Calculator"]
    assert counts["samples"] == 50
    assert counts.get("unparsed", 0) == 0 and counts.get("unclosed", 0) == 0, rec.rejected
    assert len(rec.candidates) + counts.get("duplicates", 0) == 50
    assert all(c.tool == "Calculator" for c in rec.candidates)


def _without_admissible_grammar(registry: Any) -> Any:
    from toolcall.registry import ToolRegistry

    return ToolRegistry([replace(registry.get(name), admissible_grammar=None) for name in ("Calculator", "Calendar")])


def test_each_position_samples_only_calls_its_text_admits(registry: Any) -> None:
    from toolcall.tools.calculator import calculator_admissible

    backend = FakeBackend(lm=ToyLM(LM_TEXTS, order=3))
    config = SampleConfig(m=8, seed=2, max_new_tokens=48)
    unrestricted = sample(backend, _without_admissible_grammar(registry), config)
    assert unrestricted.counts["Calculator"]["inadmissible"] > 0      # the toy copies numbers written after the call
    restricted = sample(backend, registry, config)
    counts = restricted.counts["Calculator"]
    # The positions before the first number admit no calculation: they are not sampled at all.
    assert counts["samples"] == 8 * after_the_first_number(restricted)
    assert counts["samples"] > 0 and counts.get("inadmissible", 0) == 0 and counts.get("unparsed", 0) == 0
    assert restricted.candidates
    assert all(calculator_admissible(c.args, TEXT[:c.position]) for c in restricted.candidates)
    assert len(restricted.candidates) > len(unrestricted.candidates)
    # The rule is kept after sampling: it rejects nothing the grammar lets through. Without admissible_only neither
    # the rule nor the restricted grammar applies.
    free = sample(backend, registry, replace(config, admissible_only=False))
    assert free.counts["Calculator"].get("inadmissible", 0) == 0
    assert any(not calculator_admissible(c.args, TEXT[:c.position]) for c in free.candidates)


def test_call_grammar_restricts_to_the_text_before_the_call(registry: Any) -> None:
    assert '"12"' in call_grammar("Calculator", registry, "The shop sold 12 apples")
    assert '"12"' not in call_grammar("Calculator", registry, "The shop sold")
    assert call_grammar("Calendar", registry, "12 apples") == call_grammar("Calendar", registry)
