"""The vLLM backend: offline `vllm.LLM` or the async engine, with prefix caching, so resubmitting a text after a tool call prefills only the new tokens.

A session keeps the token ids it has so far (prompt, decoded, appended) and resubmits them whole on every
`stream()` as a token prompt; vLLM's automatic prefix caching finds the blocks it already computed, so only the
tokens after the last cached block are prefilled. Submitting ids rather than text keeps the decoded tokens
exactly as the model produced them (re-tokenizing the text can cut the seam differently).

Steering is the transformers backend's, applied inside vLLM by toolcall's logits processor (vllm_steering), whose
per-request rule travels in `SamplingParams.extra_args`: `disable` gives every token that begins the call opener
-inf, the top-k trigger forces the opener when it is among the top k next tokens, and constrained calls ban tokens
that glue the opener to more text. Constrained calls (`Steering.constrain`) use vLLM's structured outputs with its
llguidance ("guidance") backend, which reads the same Lark text: a decode stops at the call-open marker, and the
call is then decoded as a second request under the call grammar. The backend also implements the Scorer protocol
(vllm_scoring), so `data-gen --backend vllm` runs on it.

Two engines. The offline `vllm.LLM` (the default: data-gen's scoring needs it) returns whole outputs, so `stream()`
yields one delta per decode (a segment up to the next call marker or the end); concurrent sessions are decoded together
when `batch_concurrent()` is on (vllm_gather), and such a batch returns when its longest decode does. With
`engine="async"` (what `toolcall serve --backend vllm` uses) the backend runs vLLM's `AsyncLLM` (vllm_async): each
decode is its own engine request, streamed token by token, and the engine batches all running requests continuously;
it cannot score (data-gen). Where the loop will look on past a call marker for another call (`read_on_markers`), the
async engine does not stop the request there: it reads the look's few tokens in the same request (a call held to its
grammar is then decoded under the grammar followed by free text, `with_free_tail`, and ends at the dialect's
`held_call_end`) and the look's decode takes them, so the look costs no request of its own (tokens read that no decode
takes are charged to the next decode, so max_new_tokens bounds the engine's work). An `LLM` built by
the caller without toolcall's logits processor (`from_vllm(llm)`) gets `disable` as a -100 `logit_bias` and no
trigger.
"""
from __future__ import annotations

import json
import os
import time
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BackendError, ConfigError
from . import stop_at_end
from .base import Backend, Checkpoint, DecodeSession, Sampling, Steering, check_batch_tokens, sampling_temperature
from .vllm_async import AsyncEngine
from .vllm_gather import RequestGatherer
from .vllm_scoring import VLLMScoringMixin
from .vllm_steering import EXTRA_KEY, fired_triggers
from .vllm_support import guidance_engine_options, import_vllm, structured_grammar, with_free_tail

DEFAULT_ENGINE = {"max_model_len": 2048, "enable_prefix_caching": True, "enforce_eager": True, "dtype": "bfloat16"}
#: toolcall's logits processor, by import path: vLLM's engine-core process imports it there.
LOGITS_PROCESSOR = "toolcall.backends.vllm_steering:ToolcallLogitsProcessor"
#: Raw top tokens asked per step while the trigger is armed, to count afterwards whether it fired.
TRIGGER_LOGPROBS = 20


def export_embedded_checkpoint(directory: str | os.PathLike[str] | None = None, model: str | None = None) -> Path:
    """Write the embedded SmolLM2 GGUF (or `model`: a shipped adapter's name, a LoRA adapter directory over it, or
    another .gguf) as an ordinary safetensors checkpoint vLLM can load (once; reused after).

    GGUF-loaded models refuse save_pretrained, so: the de-quantized state dict (an adapter merged into it) without the
    tied lm_head, the config without its quantization entry, and the tokenizer.
    """
    target = Path(directory) if directory else _cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    from safetensors.torch import save_file

    from .hf_loading import embedded_model_path, gguf_checkpoint, load_model_and_tokenizer

    lm, tok = load_model_and_tokenizer(model)
    if directory is None and model is None:
        import transformers

        # Loading kept the GGUF's checkpoint, in this very form: vLLM reads that one, and no second copy is made.
        kept = gguf_checkpoint(embedded_model_path(), transformers)
        if kept is not None and (kept / "model.safetensors").is_file():
            return kept
    target.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in lm.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(target / "model.safetensors"))
    config = lm.config.to_dict()
    config.pop("quantization_config", None)
    (target / "config.json").write_text(json.dumps(config), encoding="utf-8")
    tok.save_pretrained(str(target))
    return target


def vllm_checkpoint(model: str | None) -> str:
    """What vLLM loads for `model`: the embedded model, a shipped adapter (`schema-tools-smollm2`), a LoRA adapter
    directory or a .gguf file become a plain checkpoint exported once (keyed by the source's name and time); a
    checkpoint directory or hub name is passed through."""
    from ..models import resolve_model

    resolved = resolve_model(model)
    if resolved is None:
        return str(export_embedded_checkpoint())
    path = Path(resolved)
    if path.suffix == ".gguf" or (path / "adapter_config.json").is_file():
        stamp = int(max((f.stat().st_mtime for f in path.iterdir() if f.is_file()), default=0) if path.is_dir()
                    else path.stat().st_mtime)
        return str(export_embedded_checkpoint(_cache_dir() / f"{path.stem or path.name}-{stamp}", model=resolved))
    return resolved


def _cache_dir() -> Path:
    from .hf_loading import cache_dir

    return cache_dir()


class VLLMSession(DecodeSession):
    """Token ids so far; each stream resubmits them all and lets the prefix cache skip what it has."""

    def __init__(self, backend: "VLLMBackend", prompt: str, ids: list[int]) -> None:
        super().__init__(text=prompt, prompt_chars=len(prompt))
        self._backend = backend
        self.ids = ids
        self.cached_tokens = 0  # prompt tokens the prefix cache served, summed over streams
        self._unsent = len(ids)  # input tokens (prompt, appended results) no request has carried yet
        self.counters.input_tokens = len(ids)
        self._decoded_before = 0  # decoded_tokens when the current decode began (budget of a constrained call)
        self.triggers = 0  # how often the top-k trigger forced a call open in this reply
        self._read: _ReadOn | None = None  # tokens the last request decoded past its call marker, for the next decode
        self._unpaid = 0  # tokens read on that no decode took: engine work the next decode pays for

    def stream(self, stop: Sequence[str], max_new_tokens: int, steering: Steering | None = None) -> Iterator[str]:
        if self._backend.async_engine is not None:
            yield from self._stream_async(stop, max_new_tokens, steering)
            return
        before = len(self.text)
        gatherer = self._backend.gatherer
        if gatherer is None:
            self._backend.generate_batch([self], [stop], [max_new_tokens], [steering])
        else:
            with self.released():  # the caller's hold on the shared engine, given up while decodes are gathered
                gatherer.decode(self, stop, max_new_tokens, steering)
        if len(self.text) > before:
            yield self.text[before:]

    def _stream_async(self, stop: Sequence[str], budget: int, steering: Steering | None) -> Iterator[str]:
        """One decode on the async engine, as `generate_batch` does it for one session: a call the loop opened is
        decoded under its grammar; a constrained call that opens goes on under its grammar in a second request."""
        if not self._begin(budget):
            return
        self._decoded_before = self.counters.decoded_tokens
        grammar = _opened_grammar(steering)
        decision = self._backend._held_decision(steering)
        if decision is not None:
            grammar = decision.grammar(self._probe(decision.params))
        seam = ""
        if grammar is None:
            before = len(self.text)
            yield from self._serve_read_on(stop, budget, steering)
            seam = self.text[before:]
        if self.stop_reason is None:  # not all of this decode from tokens read on: a request (for the rest)
            if self._read is not None and len(self.ids) <= self._read.origin:
                self._drop_read()  # this request decodes from there itself
            # Tokens read on that no decode took were the engine's work: they count against this decode's tokens, so
            # max_new_tokens bounds all the work a reply makes the engine do.
            spent = self.counters.decoded_tokens - self._decoded_before
            paid, self._unpaid = min(self._unpaid, budget - spent), 0
            self.counters.decoded_tokens += paid
            if spent + paid >= budget:
                self.stop_reason = "length"
                return
            yield from self._request(stop, budget - spent - paid, steering, grammar, seam)
        left = self._constrained_left(budget, steering)
        if left > 0 and steering is not None:
            yield from self._request(stop, left, steering, steering.constrain)

    def _probe(self, params: Any) -> Any:
        """The output of one request on the async engine over the ids so far that adds nothing to the reply, its
        prefill counted (the caller's hold on the engine given up while it works, as `_request` gives it up)."""
        backend = self._backend
        assert backend.async_engine is not None
        began = time.perf_counter()
        with self.released():
            outputs = list(backend.async_engine.stream(list(self.ids), params))
        if not outputs:
            raise BackendError("the vLLM engine returned nothing for a one-token request")
        self._count_probe(outputs[-1], time.perf_counter() - began)
        return outputs[-1]

    def _count_prefill(self, output: Any) -> tuple[int, int]:
        """Count the prompt one request carried: what it prefilled, and of the input no request had carried yet, what
        the cache served; (its length, the tokens the cache served)."""
        prompt_len = len(output.prompt_token_ids or self.ids)
        cached = getattr(output, "num_cached_tokens", None) or 0
        self.cached_tokens += cached
        self.counters.prefilled_tokens += prompt_len - cached
        # Of the input this request carried for the first time (at the end of its prompt), what the cache served.
        self.counters.cached_tokens += max(0, min(self._unsent, cached - (prompt_len - self._unsent)))
        self._unsent = 0
        return prompt_len, cached

    def _count_probe(self, output: Any, seconds: float) -> None:
        """A one-token request that decided a held decode's grammar: its prefill and its forward are work this reply
        did (the decode after it finds that prefill in the cache), its token no part of the reply."""
        self._count_prefill(output)
        self.counters.forward_passes += 1
        self.counters.decode_seconds += seconds

    def _begin(self, budget: int) -> bool:
        """Start a decode of `budget` tokens (its stop not known yet); False, and a "length" stop, for none at all."""
        self.stop_reason, self.matched_stop = None, None
        if budget <= 0:
            self.stop_reason = "length"
        return budget > 0

    def _constrained_left(self, budget: int, steering: Steering | None) -> int:
        """After a decode of `budget` tokens: what is left of it for a constrained call that opened in that decode,
        to go on under its grammar; 0 when none did (a call the loop opened was under its grammar already)."""
        if steering is None or steering.call_open or not steering.constrain or self.matched_stop != steering.open_text:
            return 0
        return max(0, budget - (self.counters.decoded_tokens - self._decoded_before))

    def _request(self, stop: Sequence[str], budget: int, steering: Steering | None, grammar: str | None,
                 seam: str = "") -> Iterator[str]:
        """One engine request over the ids so far, its text yielded as it comes; the caller's hold on the shared
        engine (a server's lock) is given up while the engine works. `seam`: what this decode took from tokens read
        on just before (the request goes on from there): a stop string begun in it and completed in the request's
        text ends the decode, as within one request."""
        backend = self._backend
        assert backend.async_engine is not None
        seam_stops = tuple(m for m in (*stop, _engine_opener(steering)) if m) if seam else ()
        seam_reach = max((len(m) for m in seam_stops), default=0)  # a stop begun in the seam ends this early
        watch = self._read_on_markers(stop, budget, steering, grammar)
        held = grammar is not None and bool(watch)  # a call's grammar, followed by free text to read on in
        params = backend._params([m for m in stop if m not in watch], budget, steering,
                                 with_free_tail(grammar) if held and grammar is not None else grammar, self)
        began = time.perf_counter()
        outputs = backend.async_engine.stream(list(self.ids), params)
        last, shown, tokens = None, 0, 0
        cut: _Cut | None = None  # where a watched marker ended the decode, and what was read past it
        try:
            while True:
                with self.released():
                    out = next(outputs, None)
                if out is None:
                    break
                last = out
                completion = out.outputs[0]
                text = completion.text
                if cut is None and shown < seam_reach and len(text) > shown:
                    cut = self._seam_stop(completion, seam, seam_stops, tokens)
                if cut is None and watch:
                    cut = self._find_marker(completion, watch, shown, tokens, budget, bare=held)
                tokens = len(completion.token_ids)
                visible = text if cut is None else text[:cut.chars]
                if len(visible) > shown:
                    delta, shown = visible[shown:], len(visible)
                    self.text += delta
                    yield delta
                if cut is not None and cut.read_past(completion):
                    break
        finally:
            outputs.close()
            if last is not None:
                # Also when the caller stopped reading early (the loop, once what it looks at is no call): the tokens
                # decoded so far are counted (usage, the reply's budget) and the ids match the text.
                seconds = time.perf_counter() - began
                if cut is None:
                    self._absorb(last, seconds, closers=stop if grammar is not None else (), streamed=shown)
                    backend._count_triggers(self, params, last)
                else:
                    self._absorb(cut.head(last), seconds, streamed=shown)
                    self._keep_read_on(cut, stop, steering)
        if last is None:
            raise BackendError("the vLLM engine finished a request without any output")

    def _read_on_markers(self, stop: Sequence[str], budget: int, steering: Steering | None,
                         grammar: str | None) -> dict[str, str]:
        """What this request reads past where it would end (the read_on hint), each with the call marker it counts as:
        in a free decode the call markers; under an opened call's grammar (then followed by free text), the text that
        ends such a call (`Steering.constrain_end`). Nothing under the top-k trigger (its firings are counted per
        request), and under a grammar nothing where the look's own decode would steer in a way the free text after
        the call is not (the call threshold), for a forced call (the look's steering is another) or another grammar."""
        if (self.read_on_tokens <= 0 or budget <= 1
                or (steering is not None and not steering.disable and steering.trigger_top_k > 0)):
            return {}
        if grammar is None:
            return {m: m for m in self.read_on_markers if m and m in stop}
        if (steering is None or grammar != steering.constrain or not steering.constrain_end or steering.call_open
                or steering.min_open_prob > 0):
            return {}
        end = steering.constrain_end
        marker = next((m for m in self.read_on_markers if m and m in stop and end.endswith(m)), None)
        return {} if marker is None else {end: marker}

    def _find_marker(self, completion: Any, watch: dict[str, str], shown: int, before: int, budget: int,
                     bare: bool) -> "_Cut | None":
        """Where the text first reaches the end of a watched text (searched from where the last output could have
        begun one; `shown` characters and `before` tokens came in earlier outputs), as a `_Cut` (`bare`: what follows
        was decoded without the decode's steering); None where none has yet."""
        text = completion.text
        hits = [(at + len(w), w) for w in watch if (at := text.find(w, max(0, shown - len(w) + 1))) >= 0]
        if not hits:
            return None
        end, seen = min(hits)
        return self._cut_at(completion, end, watch[seen], before, budget, bare)

    def _seam_stop(self, completion: Any, seam: str, stops: tuple[str, ...], before: int) -> "_Cut | None":
        """Where a stop string begun in `seam` ends in the request's text, as a `_Cut` that reads nothing past it."""
        text = completion.text
        hits = []
        for s in stops:
            carried = seam[max(0, len(seam) - len(s) + 1):] if len(s) > 1 else ""
            at = (carried + text).find(s)
            if carried and 0 <= at < len(carried):
                hits.append((at + len(s) - len(carried), s))
        if not hits:
            return None
        end, marker = min(hits)
        return self._cut_at(completion, end, marker, before, 0, False)

    def _cut_at(self, completion: Any, end: int, marker: str, before: int, budget: int, bare: bool) -> "_Cut":
        """The request's text cut at character `end`, as the stop `marker`, reading on past it within `budget`."""
        ids = list(completion.token_ids)
        # The token that completes the marker (an output may bring several: the rest are past it). Where the marker
        # ends inside it, the tokens after it are no continuation of the text up to the marker, and none are read.
        covering = self._tokens_to(ids, before, end)
        between = self._backend.decode_ids(ids[:covering]) == completion.text[:end]
        return _Cut(end, marker, covering, min(self.read_on_tokens, budget - covering) if between else 0, bare)

    def _tokens_to(self, ids: list[int], before: int, chars: int) -> int:
        """The fewest of `ids` (more than `before`, whose text is shorter) whose text reaches `chars` characters; all
        of them where none does."""
        return next((k for k in range(before + 1, len(ids) + 1) if len(self._backend.decode_ids(ids[:k])) >= chars),
                    len(ids))

    def _keep_read_on(self, cut: "_Cut", stop: Sequence[str], steering: Steering | None) -> None:
        """Keep what the request decoded past the marker for the next decode from here; its tokens were the engine's
        work (forward passes) whether or not a decode takes them."""
        self._drop_read()
        if cut.steps:
            self._read = _ReadOn(len(self.ids), tuple(stop), steering, cut.steps, cut.tail_ids, cut.end, cut.bare)
            self.counters.forward_passes += cut.steps[-1][0]

    def _serve_read_on(self, stop: Sequence[str], budget: int, steering: Steering | None) -> Iterator[str]:
        """Decode from the tokens the last request read past its call marker, when this decode starts where that
        marker ended, under the same stops and steering: output by output as the engine streamed them, so a reader
        that stops early has taken, and been charged, only what it read, as from a request of its own; up to a stop
        string, the budget or the request's own end (stop_reason says how), else all of them (stop_reason stays None:
        a request goes on from there)."""
        read = self._read
        if read is None or read.origin != len(self.ids) or read.stop != tuple(stop) or read.steering != steering:
            return
        steps = self._read_on_steps(read, tuple(stop), budget, steering)
        if not steps:
            return
        read.taken = True
        taken, served = 0, ""
        try:
            for n, text, ended in steps:
                delta, served = text[len(served):], text
                self.text += delta
                self.counters.decoded_tokens += n - taken
                taken = n
                if ended is not None:
                    self.stop_reason, self.matched_stop = ended
                if delta:
                    yield delta
        finally:
            ids = read.ids[:taken]
            if self._backend.decode_ids(ids) != served:
                ids = self._backend.encode(served)
            self.ids += ids

    def _read_on_steps(self, read: "_ReadOn", stop: tuple[str, ...], budget: int,
                       steering: Steering | None) -> list[tuple[int, str, tuple[str, str | None] | None]]:
        """The outputs a decode of `budget` tokens takes from `read`, (tokens, text, how the decode ends there, None
        where it goes on)."""
        stops, banned = stop, frozenset[int]()
        if read.bare and (opener := _engine_opener(steering)):
            # Read after a call under its grammar, without the steering this decode has: as its own request would,
            # it stops at the opener (a call's grammar takes over there) and takes no token that glues the opener to
            # more text.
            stops += (opener,)
            banned = frozenset(self._backend._open_sets(opener)[2])
        steps: list[tuple[int, str, tuple[str, str | None] | None]] = []
        taken = 0
        for n, step in read.steps:
            hits = [(at + len(m), m) for m in stops if m and (at := step.find(m)) >= 0]
            if hits:  # up to the token that completes the stop (a step may hold several)
                n = self._tokens_to(read.ids[:n], taken, min(hits)[0])
            if n > budget:  # the budget ends inside an output of several tokens: as many as it allows
                text = self._backend.decode_ids(read.ids[:budget])
                if not step.startswith(text) or not banned.isdisjoint(read.ids[taken:budget]):
                    return steps
                return [*steps, (budget, text, ("length", None))]
            if not banned.isdisjoint(read.ids[taken:n]):
                return steps  # from a token the decode's steering refuses on, a request decodes
            taken = n
            if hits:
                end, marker = min(hits)
                return [*steps, (n, step[:end], ("stop", marker))]
            if n == budget:
                return [*steps, (n, step, ("length", None))]
            steps.append((n, step, None))
        if read.end is None:
            return steps
        n, step, _ = steps[-1]
        return [*steps[:-1], (n, step, read.end)]

    def _absorb(self, output: Any, seconds: float, closers: Sequence[str] = (), streamed: int = 0) -> None:
        """Take one RequestOutput: text (after the `streamed` characters already appended), ids, stop reason and
        counters. A decode under a grammar ends when the grammar is complete, not at a stop string: one of `closers`
        that ends its text counts as the stop it matched."""
        completion = output.outputs[0]
        prompt_len, cached = self._count_prefill(output)
        produced = len(completion.token_ids)
        eos = getattr(self._backend.tokenizer, "eos_token_id", None)
        if closers and produced and completion.token_ids[-1] == eos:
            # vLLM ends a request whose grammar is complete with an EOS it adds; the call itself ended a token before
            # (the transformers backend closes it there), so that EOS is no token of the budget.
            produced -= 1
        self.counters.decoded_tokens += produced
        self.counters.forward_passes += produced + (1 if prompt_len > cached else 0)
        self.counters.decode_seconds += seconds
        text = completion.text
        new_ids = list(completion.token_ids)
        # Past a stop string vLLM truncates the text, not the ids: re-encode when the ids say more than the text.
        if self._backend.decode_ids(new_ids) != text:
            new_ids = self._backend.encode(text)
        self.ids += new_ids
        self.text += text[streamed:]
        self.matched_stop = completion.stop_reason if isinstance(completion.stop_reason, str) else None
        if self.matched_stop is None and completion.finish_reason != "length":
            self.matched_stop = stop_at_end(text, closers)
        if completion.finish_reason == "length":
            self.stop_reason = "length"
        elif self.matched_stop is not None:
            self.stop_reason = "stop"
        else:
            self.stop_reason = "eos"

    def append(self, text: str) -> None:
        self._drop_read()
        self.text += text
        ids = self._backend.encode(text)
        self.ids += ids
        self._unsent += len(ids)
        self.counters.input_tokens += len(ids)

    def _reset_reply(self) -> None:
        self.triggers = 0  # the top-k trigger's limit counts per reply
        self._unpaid = 0

    def _drop_read(self) -> None:
        """Forget the tokens read on; where no decode took them, the next decode pays for them (`_unpaid`)."""
        if self._read is not None and not self._read.taken:
            self._unpaid += len(self._read.ids)
        self._read = None

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(len(self.text), self.stop_reason, self.matched_stop, (len(self.ids), self.triggers))

    def rewind(self, point: Checkpoint) -> None:
        ids, triggers = point.state
        if ids > len(self.ids):
            raise BackendError(f"cannot rewind to a checkpoint {ids} tokens in: the session holds {len(self.ids)} "
                               "(a checkpoint from another session)")
        self._cut_text(point)
        # Each request resubmits every id (the prefix cache skips what it has), so dropping them is the whole rewind;
        # tokens read past a call marker stay for a decode from there again (`_serve_read_on` checks where it starts).
        del self.ids[ids:]
        self._unsent = min(self._unsent, len(self.ids))
        self.triggers = triggers


@dataclass
class _Cut:
    """Where a watched text (a call marker, or a held call's end) ended a request's text, counted as the call marker
    it stands for, and the tokens the request decoded past it (its tail)."""

    chars: int              # the marker's end, in the request's text
    marker: str
    covering: int           # tokens up to the one that completes the marker (all of it, where it ends between two)
    cap: int                # tokens to read past it (0 where it ends inside a token: none are its continuation)
    bare: bool = False      # the tail is decoded without the decode's steering (free text after a call's grammar)
    steps: list[tuple[int, str]] = field(default_factory=list)  # (tokens, text) past it, cumulative, as streamed
    tail_ids: list[int] = field(default_factory=list)
    end: tuple[str, str | None] | None = None  # how the request ended by itself within the tail (reason, stop matched)

    def read_past(self, completion: Any) -> bool:
        """Take one more output of the request; whether reading is done (the tail is as long as asked for, the request
        ended, or the marker ends inside a token)."""
        if self.cap <= 0:
            return True  # nothing to read past it (tokens an output brought past it are the engine's running ahead)
        ids = list(completion.token_ids)
        n = len(ids) - self.covering
        if n > 0:
            self.steps.append((n, completion.text[self.chars:]))
            self.tail_ids = ids[self.covering:]
        if completion.finish_reason is not None:
            # The model's own end (a stop string, EOS) ends any decode from here; the request's max_tokens only its own.
            stopped = completion.stop_reason if isinstance(completion.stop_reason, str) else None
            if completion.finish_reason != "length":
                self.end = ("stop", stopped) if stopped is not None else ("eos", None)
            return True
        return n >= self.cap

    def head(self, output: Any) -> Any:
        """The request's output as if it had stopped at the marker (as vLLM reports a stop string it stopped at)."""
        completion = output.outputs[0]
        ids = list(completion.token_ids)
        done = types.SimpleNamespace(text=completion.text[:self.chars], token_ids=ids[:self.covering],
                                     finish_reason="stop", stop_reason=self.marker)
        return types.SimpleNamespace(prompt_token_ids=output.prompt_token_ids,
                                     num_cached_tokens=getattr(output, "num_cached_tokens", None), outputs=[done])


@dataclass
class _ReadOn:
    """What a request decoded past the call marker it reached, kept for the session's next decode from there (the loop's
    look for another call), under the stops and steering that request had."""

    origin: int                          # the session's ids at the marker's end
    stop: tuple[str, ...]
    steering: Steering | None
    steps: list[tuple[int, str]]         # (tokens, text) past the marker, cumulative
    ids: list[int]
    end: tuple[str, str | None] | None   # how the request ended within them; None: it was read no further
    bare: bool                           # decoded without the steering (free text after a call's grammar)
    taken: bool = False                  # a decode took (some of) them


class VLLMBackend(VLLMScoringMixin, Backend):
    """Offline vLLM: pass a checkpoint path (None: the embedded SmolLM2, exported once), or a built `llm`."""

    name = "vllm"

    def __init__(self, model: str | None = None, *, llm: Any = None, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int | None = None, logits_processor: bool | None = None, max_batch_tokens: int | None = None,
                 engine: str = "offline", **engine_options: Any) -> None:
        """`logits_processor`: whether `llm` was built with toolcall's (LOGITS_PROCESSOR); an LLM built here always
        is. `max_batch_tokens` (data-gen's --max-batch-tokens) becomes vLLM's max_num_batched_tokens. `engine`:
        "offline" (`vllm.LLM`) or "async" (`AsyncLLM`, streamed and continuously batched; no scoring)."""
        Sampling(temperature, top_p, seed)   # checked before any model loads
        self.temperature, self.top_p, self.seed = temperature, top_p, seed
        if max_batch_tokens is not None:
            engine_options["max_num_batched_tokens"] = check_batch_tokens(max_batch_tokens)
        if engine not in ("offline", "async"):
            raise ConfigError(f"unknown vLLM engine {engine!r}; valid engines: offline, async")
        if engine == "async" and llm is not None:
            raise ConfigError("engine='async' builds its own AsyncLLM: pass a model path, not an offline `llm`")
        # The async engine (vllm_async), when asked for; None: the offline LLM.
        self.async_engine: AsyncEngine | None = None
        if llm is None:
            vllm = import_vllm()
            path = vllm_checkpoint(model)
            options = {**DEFAULT_ENGINE, **guidance_engine_options(), "logits_processors": [LOGITS_PROCESSOR],
                       **engine_options}
            try:
                if engine == "async":
                    self.async_engine = AsyncEngine(path, options)
                else:
                    llm = vllm.LLM(model=path, **options)
            except Exception as err:  # engine start-up fails in many library-specific ways
                raise BackendError(f"vLLM could not load {path}: {type(err).__name__}: {err}") from err
            logits_processor = LOGITS_PROCESSOR in options["logits_processors"]
        self.llm = llm
        self.steers = bool(logits_processor)
        self.tokenizer = self.async_engine.tokenizer() if self.async_engine is not None else llm.get_tokenizer()
        self._open_ids: dict[str, tuple[list[int], list[int], list[int]]] = {}
        self._runs: dict[str, list[list[int]]] = {}
        self._marks: dict[str, dict[str, bool]] = {}
        self._vocab_texts: list[str] | None = None
        # Concurrent sessions' decodes sent to the offline engine together (a server's replies); None: one at a time.
        self.gatherer: RequestGatherer | None = None

    def batch_concurrent(self) -> None:
        """From now on, decode concurrent sessions together: in one offline engine call (see vllm_gather); the async
        engine batches its running requests already."""
        if self.gatherer is None and self.async_engine is None:
            self.gatherer = RequestGatherer(self)

    def close(self) -> None:
        """Shut the async engine down (the offline engine goes with the process)."""
        if self.async_engine is not None:
            self.async_engine.close()

    @classmethod
    def from_vllm(cls, llm: Any, **options: Any) -> "VLLMBackend":
        """Wrap an `LLM` the caller built (it should have enable_prefix_caching=True)."""
        return cls(llm=llm, **options)

    # --- tokens ---------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode_ids(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False))

    # --- sessions ---------------------------------------------------------------------------------
    def start(self, prompt: str) -> VLLMSession:
        tok = self.tokenizer
        special = not (getattr(tok, "bos_token", None) and prompt.startswith(tok.bos_token))
        return VLLMSession(self, prompt, list(tok.encode(prompt, add_special_tokens=special)))

    def prompt_tokens(self, prompt: str) -> int:
        tok = self.tokenizer
        special = not (getattr(tok, "bos_token", None) and prompt.startswith(tok.bos_token))  # as start() does
        return len(tok.encode(prompt, add_special_tokens=special))

    def context_size(self) -> int | None:
        engine = getattr(self.llm, "llm_engine", None)
        config = (self.async_engine.model_config if self.async_engine is not None else
                  getattr(engine, "model_config", None) or getattr(getattr(engine, "vllm_config", None),
                                                                   "model_config", None))
        size = getattr(config, "max_model_len", None)
        return size if isinstance(size, int) and size > 0 else None

    def _ban_ids(self, open_text: str) -> list[int]:
        """Tokens to ban to disable the opener: those that begin it and those that hold all of it, anywhere."""
        return self._open_sets(open_text)[1]

    def _open_sets(self, open_text: str) -> tuple[list[int], list[int], list[int]]:
        """(tokens that begin `open_text`, tokens to ban to disable it, tokens that glue it to more text), as the
        transformers backend's open_token_ids and glued_open_ids define them."""
        if open_text not in self._open_ids:
            begin, ban, glued = [], [], []
            for i, text in enumerate(self._vocab()):
                core = text.lstrip()
                if core and open_text.startswith(core):
                    begin.append(i)
                    ban.append(i)
                elif open_text in text:
                    ban.append(i)
                if open_text in text and not text.endswith(open_text):
                    glued.append(i)
            self._open_ids[open_text] = (begin, ban, glued)
        return self._open_ids[open_text]

    def _trigger_rule(self, steering: Steering, left: int) -> dict[str, Any]:
        """The logits processor's trigger arguments: the opener tokens, k, how many triggers are left, and the
        tokens that complete the opener after each of them."""
        begin, _, _ = self._open_sets(steering.open_text or "")
        vocab = [self._vocab()[i] for i in begin]
        opener = steering.open_text or ""
        rest = {str(i): self.encode(opener[len(t.lstrip()):]) if opener[len(t.lstrip()):] else []
                for i, t in zip(begin, vocab)}
        return {"begin": begin, "top_k": steering.trigger_top_k, "triggers": left, "rest": rest}

    def _vocab(self) -> list[str]:
        if self._vocab_texts is None:
            self._vocab_texts = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))],
                                                            skip_special_tokens=False,
                                                            clean_up_tokenization_spaces=False)
        return self._vocab_texts

    def _marker_runs(self, marker: str, glued_end: bool = False) -> list[list[int]]:
        """The runs of several tokens that end by writing `marker`, as this engine may write it: its own encoding,
        and each token whose text ends with a start of it (` <`, `.<`, `([`, `\n</`) followed by the encoding of the
        rest (a token holding all of it is in `_token_marks`). With `glued_end`, the runs whose last token holds the
        marker's end and more text after it (`>\n`, `><`): the encoding of the marker's start, then that token. Where
        a request's output ends with an opener's run a call is open, and the threshold and the trigger do not apply
        until a close text's run ends it, as the transformers backend reads the same from the text (a marker written
        in tokens none of these runs holds is not seen: the call stays as it was taken to be)."""
        key = ("\x00end" if glued_end else "") + marker
        if key not in self._runs:
            parts: dict[str, list[int]] = {}

            def encoded(text: str) -> list[int]:
                if text not in parts:
                    parts[text] = self.encode(text) if text else []
                return parts[text]

            runs = set() if glued_end else {tuple(self.encode(marker))}
            for i, text in enumerate(self._vocab()):
                if glued_end:
                    k = next((k for k in range(1, len(marker)) if text.startswith(marker[k:])
                              and len(text) > len(marker) - k), 0)
                    if k:
                        runs.add((*encoded(marker[:k]), i))
                    continue
                k = next((k for k in range(min(len(text), len(marker) - 1), 0, -1) if text.endswith(marker[:k])), 0)
                if k:
                    runs.add((i, *encoded(marker[k:])))
            self._runs[key] = sorted(list(r) for r in runs if len(r) > 1)
        return self._runs[key]

    def _token_marks(self, steering: Steering) -> dict[str, bool]:
        """Tokens whose own text holds a whole opener or close text, with what the last of them says (a call opens,
        or ends: `Steering.call_mark`), keyed by the token id as text (the rule crosses a process boundary)."""
        key = "\x00".join((steering.open_text or "", *steering.close_texts))
        if key not in self._marks:
            marks = {}
            for i, text in enumerate(self._vocab()):
                mark = steering.call_mark(text)
                if mark is not None:
                    marks[str(i)] = mark
            self._marks[key] = marks
        return self._marks[key]

    def _need_processor(self, what: str) -> None:
        if not self.steers:
            raise ConfigError(f"{what} needs toolcall's logits processor in the vLLM engine: build the LLM with "
                              f"logits_processors=[{LOGITS_PROCESSOR!r}] and pass logits_processor=True, or let "
                              "VLLMBackend build it")

    def _params(self, stop: Sequence[str], max_new_tokens: int, steering: Steering | None,
                grammar: str | None = None, session: VLLMSession | None = None) -> Any:
        """SamplingParams for one decode; with `grammar`, the decode of an open call under that grammar (no steering
        inside a call, as in the transformers backend)."""
        vllm = import_vllm()
        own = session.sampling if session is not None else None
        options: dict[str, Any] = {"stop": list(stop), "include_stop_str_in_output": True,
                                   "max_tokens": max(1, max_new_tokens),
                                   # Below GREEDY_BELOW greedy, as in every engine (vLLM itself would raise it
                                   # to 0.01 and sample).
                                   "temperature": sampling_temperature(self.temperature if own is None
                                                                       or own.temperature is None else own.temperature),
                                   "top_p": self.top_p if own is None or own.top_p is None else own.top_p,
                                   "seed": self.seed if own is None or own.seed is None else own.seed}
        if grammar is not None:
            options["stop"] = []  # the grammar ends the call; an arrow inside a quoted argument is not its end
            options.update(structured_grammar(grammar))
        elif steering is not None and steering.open_text:
            begin, ban, glued = self._open_sets(steering.open_text)
            rule: dict[str, Any] = {}
            if steering.constrain and not steering.disable:
                options["stop"] = [*stop, steering.open_text]  # pause where a call opens; its grammar takes over
                rule["ban"] = glued   # a call opens only at a token's end, where the grammar takes over
            if steering.disable:
                rule["ban"] = ban
            elif steering.min_open_prob > 0:
                self._need_processor("call_threshold")
                rule.update(min_open=steering.min_open_prob, begin=begin, ban_open=ban)
            if not steering.disable and steering.trigger_top_k > 0:
                self._need_processor("trigger_top_k")
                left = steering.max_triggers - (session.triggers if session is not None else 0)
                if left > 0:
                    rule.update(self._trigger_rule(steering, left))
                    options["logprobs"] = TRIGGER_LOGPROBS  # raw top tokens: how the trigger's firings are counted
            if rule.get("begin"):
                rule["opened"] = self._marker_runs(steering.open_text)
                rule["closed"] = [run for c in steering.close_texts if c for run in self._marker_runs(c)]
                rule["opened_in"] = self._marker_runs(steering.open_text, glued_end=True)
                rule["closed_in"] = [run for c in steering.close_texts if c for run in self._marker_runs(c, True)]
                rule["marks"] = self._token_marks(steering)
                rule["open"] = session is not None and steering.call_open_after(session.text,
                                                                                 floor=session.prompt_chars)
                if session is not None and len(session.text) > session.prompt_chars:
                    # A marker begun in the reply may end in this request: the rule reads on from its last tokens.
                    longest = max(map(len, [*rule["opened"], *rule["closed"], *rule["opened_in"],
                                            *rule["closed_in"]]), default=1)
                    rule["tail"] = list(session.ids[-(longest - 1):]) if longest > 1 else []
            if rule.get("ban") or rule.get("begin"):
                if self.steers:
                    options["extra_args"] = {EXTRA_KEY: rule}
                elif steering.disable:
                    options["logit_bias"] = {i: -100.0 for i in ban}   # the nearest a plain engine offers
        return vllm.SamplingParams(**options)

    def generate_batch(self, sessions: Sequence[DecodeSession], stops: Sequence[Sequence[str]],
                       budgets: Sequence[int], steerings: Sequence[Steering | None]) -> None:
        """Decode several sessions in one `LLM.generate` call (vLLM schedules them together); the calls that opened
        under constrained steering are then decoded together in a second one, under their grammar."""
        todo = [(s, st, b, sg) for s, st, b, sg in zip(_own_sessions(sessions), stops, budgets, steerings)
                if s._begin(b)]
        if not todo:
            return
        self._decode(todo, self._start_grammars([(s, sg) for s, _, _, sg in todo]))
        # A constrained call that opened in that decode goes on under its grammar, within what is left of the budget.
        opened: list[tuple[VLLMSession, Sequence[str], int, Steering | None]] = []
        for s, st, b, sg in todo:
            left = s._constrained_left(b, sg)
            if left > 0:
                opened.append((s, st, left, sg))
        if opened:
            self._decode(opened, [sg.constrain if sg is not None else None for _, _, _, sg in opened])

    def _decode(self, todo: list[tuple[VLLMSession, Sequence[str], int, Steering | None]],
                grammars: list[str | None]) -> None:
        """One `LLM.generate` call for the sessions in `todo`; each one's output is appended to it."""
        for s, _, _, _ in todo:
            s._decoded_before = s.counters.decoded_tokens
        prompts = [{"prompt_token_ids": list(s.ids)} for s, _, _, _ in todo]
        params = [self._params(st, b, sg, g, s) for (s, st, b, sg), g in zip(todo, grammars)]
        began = time.perf_counter()
        outputs = self.offline_llm().generate(prompts, params, use_tqdm=False)
        seconds = (time.perf_counter() - began) / len(todo)  # one batched call: its wall time shared out
        for (s, st, _, _), out, g, p in zip(todo, outputs, grammars, params):
            s._absorb(out, seconds, closers=st if g is not None else ())
            self._count_triggers(s, p, out)

    def _start_grammars(self, todo: list[tuple[VLLMSession, Steering | None]]) -> list[str | None]:
        """The grammar each decode starts under (_opened_grammar); a reply held to a grammar that may open calls,
        where the call threshold does not let one open at its first token, is held to its answer alone. The held
        replies' one-token requests go to the offline engine together, under the caller's hold on it."""
        grammars = [_opened_grammar(sg) for _, sg in todo]
        asked = [(k, s, d) for k, (s, sg) in enumerate(todo) if (d := self._held_decision(sg)) is not None]
        if asked:
            began = time.perf_counter()
            outputs = self.offline_llm().generate([{"prompt_token_ids": list(s.ids)} for _, s, _ in asked],
                                                  [d.params for _, _, d in asked], use_tqdm=False)
            seconds = (time.perf_counter() - began) / len(asked)
            for (k, s, d), out in zip(asked, outputs):
                s._count_probe(out, seconds)
                grammars[k] = d.grammar(out)
        return grammars

    def _held_decision(self, steering: Steering | None) -> "_HeldDecision | None":
        """For a decode held to a grammar that may open calls before its answer, under a call threshold: the
        one-token request that decides it. vLLM applies the grammar's mask before its logits processors see the
        logits, so the opener's probability is read by a request without the grammar (the prefix cache serves its
        prompt), whose processor says which side of the threshold it is on by the token it produces."""
        if steering is None or not steering.held_opener or steering.min_open_prob <= 0:
            return None
        self._need_processor("call_threshold")
        if steering.held_answer is None or steering.constrain is None:
            raise ConfigError("a held reply's call threshold needs Steering.held_answer (the answer's grammar alone) "
                              "on the vLLM engine")
        begin, _, _ = self._open_sets(steering.held_opener)
        # Two ordinary tokens (a special one, such as the end of text, may not come back among the output's ids);
        # with nothing that begins the opener, no call can open, and `no` is what the rule gives.
        yes = begin[0] if begin else None
        no = next(i for i in self.encode("x") + self.encode("y") if i not in begin)
        params = import_vllm().SamplingParams(max_tokens=1, temperature=0.0, extra_args={
            EXTRA_KEY: {"decide": [no if yes is None else yes, no], "min_open": steering.min_open_prob,
                        "begin": begin}})
        return _HeldDecision(params, no, steering.constrain, steering.held_answer)

    @staticmethod
    def _count_triggers(session: VLLMSession, params: Any, out: Any) -> None:
        """The rule ran in the engine process: replay it on the raw top tokens to count its firings (a rule without
        the trigger, the call threshold's alone, has none)."""
        rule = (getattr(params, "extra_args", None) or {}).get(EXTRA_KEY, {})
        if rule.get("begin") and rule.get("top_k"):
            completion = out.outputs[0]
            tops = [[t for t, _ in sorted(step.items(), key=lambda kv: -kv[1].logprob)]
                    for step in (completion.logprobs or [])]
            session.triggers += fired_triggers(frozenset(rule["begin"]), rule.get("ban", ()), rule["top_k"],
                                               list(completion.token_ids), tops, rule)


@dataclass(frozen=True)
class _HeldDecision:
    """The one-token request that decides a held decode's grammar, and the grammars either side of the threshold."""

    params: Any
    no: int
    calls: str     # the reply's grammar: calls or the answer
    answer: str    # the answer's alone, below the threshold

    def grammar(self, output: Any) -> str:
        # An empty output (the engine's own end) leaves the reply's grammar, as before the threshold was read.
        produced = list(output.outputs[0].token_ids[:1]) if output.outputs else []
        return self.answer if produced == [self.no] else self.calls


def _engine_opener(steering: Steering | None) -> str:
    """The call opener a free decode under constrained calls also stops at (where the call's grammar takes over;
    `_params` adds it to the request's stops); "" where there is none."""
    if steering is not None and steering.open_text and steering.constrain and not steering.disable:
        return steering.open_text
    return ""


def _opened_grammar(steering: Steering | None) -> str | None:
    """The grammar a decode starts under: a call the loop opened already (a forced call) is decoded under its grammar
    from its first token; anything else starts free."""
    return steering.constrain if steering is not None and steering.call_open else None


def _own_sessions(sessions: Sequence[DecodeSession]) -> list[VLLMSession]:
    """The sessions as this backend's own (a session of another engine cannot be decoded here)."""
    own = [s for s in sessions if isinstance(s, VLLMSession)]
    if len(own) != len(sessions):
        raise BackendError("the vLLM backend decodes only the sessions it started")
    return own
