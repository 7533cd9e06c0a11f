"""The Scorer protocol on vLLM (what data_gen needs): log-probs through forced decode steps, samples through `n`.

Why forced decoding and not `prompt_logprobs`: requests that ask for prompt log-probs skip vLLM's prefix cache and
recompute their whole prompt, so scoring a hundred branches of one text would run its head a hundred times
(benchmarks/vllm_prefix.py measures it). Here a scored continuation is produced as output instead: the request's
prompt is the shared head (served from the prefix cache after its first run), toolcall's logits processor
(vllm_steering) forces each token of the continuation, and vLLM returns the raw log-prob of every produced token —
raw meaning before any processor, i.e. the model's own log p(token | everything before). The call-open candidates
come the same way, from `logprob_token_ids` at each step. A long prefix is cut into chunks decoded side by side, so
the sequential decode steps number about `score_chunk`, not the prefix length.

All requests of one Scorer call go to vLLM in one `LLM.generate`, which schedules them together.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import BackendError
from .base import Branch, Prefix, branch_grammars, sampling_temperature, scoring_start_id
from .vllm_steering import EXTRA_KEY
from .vllm_support import import_vllm, structured_grammar


@dataclass(frozen=True)
class _VLLMState:
    """A Prefix's state from vLLM: the engine that made it (its prefix cache holds the work, keyed by the ids)."""

    owner: Any


@dataclass
class _Scored:
    """One forced-decode request: its prompt, the tokens it must produce, and how many steps it runs."""

    prompt: list[int]
    forced: list[int]
    steps: int


class VLLMScoringMixin:
    """Scorer methods for a backend holding `self.llm` (a vllm.LLM built with toolcall's logits processor; None on
    the async engine, which cannot score) and `self.tokenizer`."""

    llm: Any
    tokenizer: Any
    score_chunk: int = 32   # tokens per forced-decode request of prefix_state (its sequential steps)

    def offline_llm(self) -> Any:
        """The offline `vllm.LLM` (batched generation and scoring), or a clear error on the async engine."""
        if self.llm is None:
            raise BackendError("this vLLM backend runs the async engine, which serves decoding only; scoring and "
                               "batched generation need engine='offline' (the default)")
        return self.llm

    # --- tokens ----------------------------------------------------------------------
    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]

    def start_token_id(self) -> int:
        """The token every scored text starts from (BOS, else EOS): the context of the text's first token."""
        return scoring_start_id(self.tokenizer)

    # --- forced decoding ---------------------------------------------------------------
    def _run_forced(self, requests: Sequence[_Scored], candidates: Sequence[int] = ()) -> list[tuple[list[float], list[list[float]]]]:
        """For each request: (raw log-prob of each forced token, per step the raw log-prob of each candidate)."""

        vllm = import_vllm()
        todo = [i for i, r in enumerate(requests) if r.steps > 0]
        out: list[tuple[list[float], list[list[float]]]] = [([], []) for _ in requests]
        if not todo:
            return out
        params, prompts = [], []
        for i in todo:
            r = requests[i]
            options: dict[str, Any] = {"max_tokens": r.steps, "temperature": 0.0, "ignore_eos": True,
                                       "detokenize": False, "extra_args": {EXTRA_KEY: {"force": list(r.forced)}}}
            # The produced token's log-prob always comes back; with logprob_token_ids, the candidates' too.
            options.update({"logprob_token_ids": list(candidates)} if candidates else {"logprobs": 0})
            params.append(vllm.SamplingParams(**options))
            prompts.append({"prompt_token_ids": list(r.prompt)})
        results = self.offline_llm().generate(prompts, params, use_tqdm=False)
        for i, result in zip(todo, results):
            r, completion = requests[i], result.outputs[0]
            steps = completion.logprobs or []
            if len(steps) < r.steps or list(completion.token_ids[:len(r.forced)]) != list(r.forced):
                raise BackendError("vLLM did not produce the forced tokens: was the LLM built without toolcall's "
                                   "logits processor? (VLLMBackend builds it with one; from_vllm needs "
                                   "logits_processors=[toolcall.backends.vllm_steering.logits_processor_class()])")
            own = [steps[s][tok].logprob for s, tok in enumerate(r.forced)]
            cands = [[steps[s][c].logprob for c in candidates] for s in range(r.steps)] if candidates else []
            out[i] = (own, cands)
        return out

    # --- the Scorer protocol -------------------------------------------------------------
    def prefix_state(self, ids: Sequence[int], candidates: Sequence[int] = ()) -> Prefix:
        ids = [int(i) for i in ids]
        if not ids:
            raise BackendError("a prefix state needs at least one token")
        n, size = len(ids), max(1, int(self.score_chunk))
        # Chunk [a, b) runs from the prompt ids[:a + 1] and produces ids[a + 1 : b + 1]: its step s (context
        # ids[:a + 1 + s]) gives log p(ids[a + 1 + s]) and the candidates' row a + s. The last chunk has one free
        # step at the end, for the candidates after the whole prefix.
        chunks = [(a, min(a + size, n)) for a in range(0, n, size)]
        requests = [_Scored(ids[:a + 1], ids[a + 1:b + 1], b - a) for a, b in chunks]
        results = self._run_forced(requests, [int(c) for c in candidates])
        token_lps = tuple(lp for own, _ in results for lp in own)
        rows = tuple(tuple(row) for _, cand in results for row in cand) if candidates else ()
        return Prefix(tuple(ids), token_lps, rows, _VLLMState(self))

    def _own(self, prefix: Prefix) -> Prefix:
        if not (isinstance(prefix.state, _VLLMState) and prefix.state.owner is self):
            raise BackendError("this prefix was made by another scorer; pass a Prefix from this backend's prefix_state")
        return prefix

    def branch_logprobs(self, prefix: Prefix, branches: Sequence[Branch]) -> list[list[float]]:
        ids = list(self._own(prefix).ids)
        requests = []
        for br in branches:
            if br.score_from == 0 and br.cut < 1:
                raise BackendError("scoring a branch's first token needs cut >= 1: nothing before it predicts it")
            new = list(br.new_ids)
            head = ids[:br.cut] + new[:br.score_from]
            forced = new[br.score_from:]
            requests.append(_Scored(head, forced, len(forced)))
        return [own for own, _ in self._run_forced(requests)]

    def sequence_logprobs(self, sequences: Sequence[tuple[Sequence[int], int]]) -> list[list[float]]:
        requests = []
        for seq, start in sequences:
            seq, begin = list(seq), max(int(start), 1)
            forced = seq[begin:]
            requests.append(_Scored(seq[:begin], forced, len(forced)))
        return [own for own, _ in self._run_forced(requests)]

    def naive_logprobs(self, ids: Sequence[int]) -> list[float]:
        """The reference: one plain request whose prompt log-probs vLLM computes in a single prefill (no forcing,
        no prefix cache)."""

        vllm = import_vllm()
        ids = [int(i) for i in ids]
        result = self.offline_llm().generate([{"prompt_token_ids": ids}],
                                   [vllm.SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)],
                                   use_tqdm=False)[0]
        return [result.prompt_logprobs[j][ids[j]].logprob for j in range(1, len(ids))]

    def sample_branches(self, prefix: Prefix, branches: Sequence[tuple[int, Sequence[int]]], n: int, *,
                        stop: Sequence[str] = ("]",), max_new_tokens: int = 32, temperature: float = 1.0,
                        top_k: int = 0, seed: int = 0,
                        keep_going: Callable[[str], bool] | None = None,
                        grammar: str | Sequence[str] | None = None) -> list[list[tuple[str, bool]]]:
        """n samples per branch in one request each (vLLM's parallel sampling, seeds seed + i); greedy asks for one
        and repeats it. `keep_going` is applied to the finished samples token by token (vLLM cannot stop a request
        from outside mid-decode), which gives the same texts it would have cut; `grammar` goes through structured
        outputs (vLLM's llguidance backend reads the same Lark), a sequence of them one per branch's request."""

        vllm = import_vllm()
        ids = list(self._own(prefix).ids)
        if not branches or n < 1:
            return [[] for _ in branches]
        temperature = sampling_temperature(temperature)   # below GREEDY_BELOW: greedy, as in every engine
        greedy = temperature <= 0
        per = 1 if greedy else n
        grammars = branch_grammars(grammar, len(branches))
        params, prompts = [], []
        for b, ((cut, first), own) in enumerate(zip(branches, grammars)):
            options: dict[str, Any] = {"n": per, "max_tokens": max(1, max_new_tokens), "seed": seed + 1000 * b,
                                       "temperature": 0.0 if greedy else temperature}
            if top_k > 0 and not greedy:
                options["top_k"] = top_k
            if own is not None:
                options.update(structured_grammar(own))
            else:
                options["stop"] = list(stop)
            params.append(vllm.SamplingParams(**options))
            prompts.append({"prompt_token_ids": ids[:cut] + [int(t) for t in first]})
        results = self.offline_llm().generate(prompts, params, use_tqdm=False)
        out = []
        for result, own in zip(results, grammars):
            rows = [self._sample_result(c, own is not None, keep_going) for c in result.outputs]
            out.append(rows * n if greedy else rows)
        return out

    def _sample_result(self, completion: Any, grammar: bool, keep_going: Callable[[str], bool] | None) -> tuple[str, bool]:
        text = completion.text
        tokens = list(completion.token_ids)
        if keep_going is not None:
            # What a step-by-step decode would have asked after each token short of the end (the end itself is
            # returned as it is, stopped or not, as the transformers engine does).
            for k in range(1, len(tokens)):
                so_far = self.decode_ids(tokens[:k])  # type: ignore[attr-defined]  # the backend's own decode
                if len(so_far) >= len(text):
                    break
                if not so_far.endswith("\ufffd") and not keep_going(so_far):
                    return so_far, False
        if grammar:
            return text, completion.finish_reason == "stop"   # the grammar completed (vLLM ends it with EOS)
        if isinstance(completion.stop_reason, str):
            return text, True    # text ends just before the stop string (not included in the output)
        return text, False
