"""data_gen's stages on the fake backend's toy LM: positions -> sample -> execute -> filter -> merge, no model needed."""
from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from toolcall.data_gen.config import DataGenConfig, FilterConfig, PositionConfig, SampleConfig
from toolcall.data_gen.execute import CallRunner, execute_calls
from toolcall.data_gen.filter import score_candidates
from toolcall.data_gen.merge import merge_record
from toolcall.data_gen.pipeline import Pipeline
from toolcall.data_gen.positions import PromptStates, add_positions, find_positions
from toolcall.data_gen.records import TextRecord
from toolcall.data_gen.reference import naive_losses
from toolcall.data_gen.sample import sample_calls

from toolcall.backends import as_scorer, get_scorer, scoring_backends
from toolcall.backends.base import Backend, DecodeSession
from toolcall.backends.fake import FakeBackend
from toolcall.backends.toy_lm import ToyLM
from toolcall.errors import ConfigError
from toolcall.registry import ToolRegistry

pytestmark = pytest.mark.usefixtures("pinned_date")  # Calendar calls answer as on 2023-01-30

# The toy LM learns where a Calculator call goes (after "a total of") and what it says, from these texts alone.
LM_TEXTS = [
    "The store sold 12 apples and 30 pears, a total of [Calculator(12 + 30) -> 42] 42 fruits.",
    "The farm has 12 cows and 30 sheep, a total of [Calculator(12 + 30) -> 42] 42 animals.",
    "We had 12 red and 30 blue pens, a total of [Calculator(12 + 30) -> 42] 42 pens.",
]
TEXT = "The shop sold 12 apples and 30 pears, a total of 42 fruits."


@pytest.fixture()
def fake() -> FakeBackend:
    return FakeBackend(lm=ToyLM(LM_TEXTS, order=5, smoothing=0.1))


def config(placement: str = "prefix", tau_f: float = -1e9, tau_p: float = 0.0) -> DataGenConfig:
    return DataGenConfig(positions=PositionConfig(tau_s=0.05, k=3), sample=SampleConfig(m=3, seed=1),
                         filter=FilterConfig(tau_f=tau_f, placement=placement, tau_p=tau_p), overrides={})


def run_stages(fake: FakeBackend, registry: Any, placement: str) -> TextRecord:
    cfg = config(placement)
    states = PromptStates(fake, cfg.positions.open_texts, registry)
    rec = find_positions(TextRecord(TEXT, tools=("Calculator",)), "Calculator", states, cfg.positions)
    rec = sample_calls(rec, "Calculator", states, cfg.sample, registry.canonical, ("Calculator", "Calculate"))
    rec = execute_calls(rec, CallRunner(registry, cfg.execute))
    return score_candidates(rec, fake, {"calculator": cfg.filter})


def test_the_likeliest_position_is_where_the_texts_put_the_call(fake: FakeBackend, registry: Any) -> None:
    states = PromptStates(fake, PositionConfig.open_texts, registry)
    rec = find_positions(TextRecord(TEXT), "Calculator", states, PositionConfig(tau_s=0.05, k=3))
    (tok, char, p, opener), *_ = rec.positions["Calculator"]
    assert TEXT[:char] == "The shop sold 12 apples and 30 pears, a total of" and opener == " ["
    assert p > 0.3


def test_positions_are_added_where_a_tool_proposes_a_call(fake: FakeBackend, registry: Any) -> None:
    states = PromptStates(fake, PositionConfig.open_texts, registry)
    own = find_positions(TextRecord(TEXT), "Calculator", states, PositionConfig(tau_s=0.05, k=1))
    (best, *_), = [own.positions["Calculator"]]
    plen, tt, _, open_p = states.get("Calculator", TEXT)
    at = max(i for i, start in enumerate(tt.starts) if start <= TEXT.index("30"))   # the token holding "30"
    rec = add_positions(own, "Calculator", states, [at, best.token, at, 0])
    # the model's own position first and once; token 0 has no context to predict a call-open from
    assert [p.token for p in rec.positions["Calculator"]] == [best.token, at]
    added = rec.positions["Calculator"][1]
    row = open_p[plen + at - 1]
    assert added.char == tt.starts[at] and added.p == pytest.approx(sum(row))
    assert added.open_text == states.opens[row.index(max(row))][0]
    assert add_positions(own, "Calculator", states, []).positions == own.positions
    # After a space the open without one is taken, however unlikely the model finds both there.
    text = "The shop sold 12 apples and 30 pears, a total of\n42 fruits."
    plen, tt, _, open_p = states.get("Calculator", text)
    at = tt.starts.index(text.index("42"))
    (added,) = add_positions(TextRecord(text), "Calculator", states, [at]).positions["Calculator"]
    assert text[added.char - 1] == "\n" and added.open_text == "["


@pytest.mark.parametrize("placement", ["prefix", "inline"])
def test_stages_sample_run_score_and_merge_a_call(fake: FakeBackend, registry: Any, placement: str) -> None:
    rec = run_stages(fake, registry, placement)
    calls = {(c.call, c.result) for c in rec.candidates}
    assert ("[Calculator(12 + 30)]", "42") in calls
    for cand in rec.candidates:
        # The filter's shared, batched scores agree with scoring every sequence on its own.
        minus, plus = naive_losses(fake, TEXT, cand, placement=placement)
        assert cand.loss_minus == pytest.approx(minus, abs=1e-9)
        assert cand.loss_plus == pytest.approx(plus, abs=1e-9)
    out = merge_record(rec)
    assert out is not None and "a total of [Calculator(12 + 30) -> 42] 42 fruits." in out["text"]


def test_inline_result_lowers_the_loss_of_what_follows(fake: FakeBackend, registry: Any) -> None:
    # Right before " 42", "-> 42]" makes the next tokens likely (the texts say so): loss reduction > 0.
    rec = run_stages(fake, registry, "inline")
    best = next(c for c in rec.candidates if c.call == "[Calculator(12 + 30)]" and TEXT[c.position:].startswith(" 42"))
    assert best.loss_reduction > 1.0


def test_pipeline_accepts_the_fake_backend(fake: FakeBackend, registry: Any) -> None:
    out, summary = Pipeline(fake, registry, config("inline", tau_f=1.0)).process(TEXT)
    assert out is not None and out["original"] == TEXT
    assert [(c["tool"], c["result"]) for c in out["calls"]] == [("Calculator", "42")]
    assert summary["kept"] == 1 and summary["counts"]["Calculator"]["samples"] > 0
    assert sum(1 for scored in summary["scored"] if scored[3]) == summary["kept"]  # each written call counted once


def test_pipeline_with_an_untrained_toy_lm_runs_and_keeps_nothing(registry: Any) -> None:
    out, summary = Pipeline(FakeBackend(), registry, config(tau_f=1.0, tau_p=0.1)).process(TEXT)
    assert out is None and summary["kept"] == 0
    # A call that changes nothing does not raise the loss: tau_p 0.0 keeps a proposed one.
    out, summary = Pipeline(FakeBackend(), registry, config(tau_f=1.0)).process(TEXT)
    assert summary["kept"] == 1 and out is not None and out["calls"][0]["loss_reduction"] == 0.0


class _DecodeOnly(Backend):
    """A backend that decodes but cannot score."""

    name = "decode-only"

    def start(self, prompt: str) -> DecodeSession:
        raise AssertionError("not used")


def test_a_backend_that_cannot_score_is_refused_with_what_it_lacks(registry: Any) -> None:
    assert {"fake", "transformers", "vllm"} <= set(scoring_backends()) and "decode-only" not in scoring_backends()
    with pytest.raises(ConfigError) as err:
        Pipeline(_DecodeOnly(), registry, config())
    message = str(err.value)
    assert "'decode-only'" in message and "prefix_state" in message and "sample_branches" in message
    assert "encode," not in message            # Backend's own encode counts: only what is really missing is named
    assert "backends that can: fake, transformers, vllm" in message
    fake = FakeBackend()
    assert as_scorer(fake) is fake


def test_get_scorer_refuses_a_decode_only_backend_before_building_it() -> None:
    # A decode-only engine is refused by name, without building it.
    from toolcall.backends import backends

    def factory(model: Any = None, **options: Any) -> Backend:
        raise AssertionError("a backend that cannot score must not be built")

    factory.engine_class = lambda: _DecodeOnly  # type: ignore[attr-defined]
    backends.register("decode-only", factory)
    try:
        with pytest.raises(ConfigError, match="backend 'decode-only' cannot score.*lacks .*prefix_state"):
            get_scorer("decode-only", None, max_batch_tokens=64)
    finally:
        backends.unregister("decode-only")
    fake = get_scorer("FAKE", None, max_batch_tokens=64)
    assert isinstance(fake, FakeBackend) and fake.max_batch_tokens == 64
    with pytest.raises(ConfigError, match="max_batch_tokens must be a whole number >= 1"):
        get_scorer("fake", None, max_batch_tokens=0)


def test_a_sampled_call_using_numbers_written_only_after_it_is_dropped(fake: FakeBackend, registry: Any) -> None:
    # The toy LM writes "12 + 30" after "a total of"; here 30 is written only after that place.
    text = "The shop sold 12 apples, a total of 42 fruits with the 30 pears."
    cfg = config()
    states = PromptStates(fake, cfg.positions.open_texts, registry)
    found = find_positions(TextRecord(text, tools=("Calculator",)), "Calculator", states, cfg.positions)

    def sampled(admissible_only: bool, tools: Any = registry) -> TextRecord:
        sample = SampleConfig(m=3, seed=1, admissible_only=admissible_only)
        return sample_calls(found, "Calculator", PromptStates(fake, cfg.positions.open_texts, tools), sample,
                            tools.canonical, ("Calculator", "Calculate"))

    # Without the Calculator's admissible grammar the call is sampled, and the admissible rule drops it.
    ruled = ToolRegistry([dataclasses.replace(registry.get(name), admissible_grammar=None)
                          for name in ("Calculator", "Calendar")])
    loose, strict = sampled(False, ruled), sampled(True, ruled)
    assert "[Calculator(12 + 30)]" in {c.call for c in loose.candidates}
    assert "[Calculator(12 + 30)]" not in {c.call for c in strict.candidates}
    assert strict.counts["Calculator"]["inadmissible"] >= 1
    assert any(r["reason"].startswith("not admissible") for r in strict.rejected)
    # With it, each position's grammar offers only numbers written before it: the call is never sampled.
    restricted = sampled(True)
    assert "[Calculator(12 + 30)]" not in {c.call for c in restricted.candidates}
    assert restricted.counts["Calculator"]["samples"] == strict.counts["Calculator"]["samples"]
    assert restricted.counts["Calculator"].get("inadmissible", 0) == 0
    # The paper's procedure judges every sample by the loss alone.
    assert DataGenConfig(sampling="paper").for_tool("Calculator")[1].admissible_only is False
    assert DataGenConfig().for_tool("Calculator")[1].admissible_only is True


def test_the_sampler_writes_the_calls_and_the_scorer_judges_them(fake: FakeBackend, registry: Any) -> None:
    # The trained toy samples the call; an untrained scorer judges it: its losses, not the sampler's, decide.
    untrained = FakeBackend()
    pipeline = Pipeline(untrained, registry, config("prefix"), sampler=fake)
    out, summary = pipeline.process(TEXT)
    assert summary["counts"]["Calculator"]["samples"] > 0
    calls = {c.call for c in pipeline.last_scored}
    assert "[Calculator(12 + 30)]" in calls
    for cand in pipeline.last_scored:
        minus, plus = naive_losses(untrained, TEXT, cand)
        assert cand.loss_plus == pytest.approx(plus, abs=1e-9)
        # L(e(c, eps)) is scored only where it can decide; elsewhere the reduction is the bound L_eps - L+.
        assert cand.loss_minus is None or cand.loss_minus == pytest.approx(minus, abs=1e-9)
    sampled = {(c.call, c.position) for c in pipeline.last_scored if c.source != "proposer"}
    assert sampled
    # The untrained model as its own sampler does not write that call (what it keeps there was proposed).
    alone = Pipeline(untrained, registry, config("prefix"))
    alone.process(TEXT)
    assert not {(c.call, c.position) for c in alone.last_scored if c.source != "proposer"} & sampled


def test_resume_refuses_other_models(fake: FakeBackend, registry: Any, tmp_path: Any) -> None:
    from toolcall.data_gen.pipeline import run_data_gen

    texts = tmp_path / "t.txt"
    texts.write_text(TEXT + "\n")
    pipeline = Pipeline(fake, registry, config("prefix"))
    run_data_gen(texts, tmp_path / "out", pipeline, progress=False, models={"sampler": "a", "scorer": "a"})
    with pytest.raises(ConfigError, match="models differs"):
        run_data_gen(texts, tmp_path / "out", pipeline, resume=True, progress=False,
                     models={"sampler": "a", "scorer": "b"})
    run_data_gen(texts, tmp_path / "out", pipeline, resume=True, progress=False, models={"sampler": "a", "scorer": "a"})


def test_resume_refuses_another_dtype_and_reads_older_runs_as_float32(fake: FakeBackend, registry: Any,
                                                                       tmp_path: Any) -> None:
    import json

    from toolcall.data_gen.pipeline import run_data_gen

    texts = tmp_path / "t.txt"
    texts.write_text(TEXT + "\n")
    pipeline = Pipeline(fake, registry, config("prefix"))
    models = {"sampler": "a", "scorer": "a"}
    run_data_gen(texts, tmp_path / "out", pipeline, progress=False, models={**models, "dtype": "auto"})
    with pytest.raises(ConfigError, match=r"models differs.*the dtype \(that run: auto; now: float32\).*--dtype"):
        run_data_gen(texts, tmp_path / "out", pipeline, resume=True, progress=False, models={**models, "dtype": "float32"})
    # A run written before --dtype existed computed in float32: it resumes with --dtype float32 and no other.
    run_file = tmp_path / "out" / "run.json"
    run_file.write_text(json.dumps({**json.loads(run_file.read_text()), "models": models}))
    with pytest.raises(ConfigError, match="models differs"):
        run_data_gen(texts, tmp_path / "out", pipeline, resume=True, progress=False, models={**models, "dtype": "auto"})
    run_data_gen(texts, tmp_path / "out", pipeline, resume=True, progress=False, models={**models, "dtype": "float32"})


def test_without_a_prompt_a_model_trained_on_calls_finds_and_writes_them_from_the_text_alone(
        fake: FakeBackend, registry: Any) -> None:
    """--prompt none: the model reads only the text (as the toy LM was trained, on annotated texts), no P(x)."""
    positions = PositionConfig(tau_s=0.05, k=3, prompt="none")
    states = PromptStates(fake, positions.open_texts, registry, prompt="none")
    plen, tt, _, _ = states.get("Calculator", TEXT)
    assert plen == 0 and fake.decode_ids(list(tt.ids)) == TEXT
    assert states.get("Calendar", TEXT) is states.get("Calculator", TEXT)  # no P(x): one forward serves every tool
    rec = find_positions(TextRecord(TEXT, tools=("Calculator",)), "Calculator", states, positions)
    (_, char, _, _), *_ = rec.positions["Calculator"]
    assert TEXT[:char] == "The shop sold 12 apples and 30 pears, a total of"
    rec = sample_calls(rec, "Calculator", states, SampleConfig(m=3, seed=1), registry.canonical)
    assert ("12 + 30",) in {c.args for c in rec.candidates}


def test_the_prompt_is_few_shot_or_none_and_the_paper_sampling_keeps_its_own() -> None:
    with pytest.raises(ConfigError, match="prompt 'zero-shot' is not allowed; use one of: few-shot, none"):
        PositionConfig(prompt="zero-shot")
    with pytest.raises(ConfigError, match="--sampling paper prompts the model with the paper's P"):
        DataGenConfig(sampling="paper", positions=PositionConfig(prompt="none"))


def test_call_markup_the_author_wrote_never_trains_as_a_call(fake: FakeBackend, registry: Any) -> None:
    """An author's `[Calculator(12 + 30) -> 41]` stayed in the corpus: read as a call (its wrong result masked as
    the tool's) beside the one data_gen wrote; and `<|endoftext|>` was read as the end of the text."""
    from toolcall.dialects.toolformer import ToolformerDialect

    written = "[Calculator(12 + 30) -> 41] <API>Calculator(1+1)</API> " + TEXT
    out, _ = Pipeline(fake, registry, config("inline", tau_f=1.0)).process(written)
    assert out is not None and len(out["calls"]) == 1
    for spelling in ("bracket", "tagged"):
        calls = ToolformerDialect(spelling=spelling).parse(out["text"]).calls
        assert [c.result for c in calls] == ["42"]  # only the call data_gen wrote
    assert out["original"].replace("\u200b", "") == written
