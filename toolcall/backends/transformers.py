"""The transformers backend: our own decode loop over a DynamicCache that survives tool calls.

How a session keeps its KV cache across a call:
- `token_ids` are the tokens whose keys/values are in the cache; `append(text)` tokenizes ONLY the appended text
  and queues those ids, so the already-decoded tokens are never re-tokenized (re-tokenizing the whole text can cut
  the seam differently from what the model decoded). The next `stream()` prefills just the queued ids.
- A sampled token is fed to the model lazily, at the next step; when decoding stops, the last token is "carried"
  and fed together with the next appended text in one forward pass.
- Stop strings are matched on decoded text. When a stop string ends inside a token (e.g. a hypothetical `->[`),
  `text` keeps only up to the end of the stop string; the token(s) holding the overhang are dropped from the
  session (cropped from the cache when already in it), and the kept characters of those tokens are re-encoded
  and queued for prefill. So the cache always holds exactly `text`, at the cost of re-prefilling a token or two
  (counted in `prefilled_tokens` and in `session.rollback_tokens`).
"""
from __future__ import annotations

import inspect
import time
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

from ..errors import BackendError, ConfigError, MissingDependencyError
from . import find_stop, stop_at_end
from .base import Backend, Checkpoint, DecodeSession, Sampling, Steering, check_batch_tokens, sampling_temperature
from .hf_loading import DEVICE_ENV, default_device, load_model_and_tokenizer, resolve_dtype
from .hf_scoring import HFScoringMixin
from .prefix_cache import PrefixCache, common_prefix
from .step_batcher import StepBatcher


def _torch() -> Any:
    try:
        import torch
    except ImportError as err:
        raise MissingDependencyError("torch", "hf", "the transformers backend") from err
    return torch


class TransformersSession(DecodeSession):
    """One text decoded with a KV cache that is kept, and only extended, across tool calls."""

    def __init__(self, backend: "TransformersBackend", prompt: str, prompt_ids: list[int]) -> None:
        super().__init__(text=prompt, prompt_chars=len(prompt))
        from transformers import DynamicCache

        self._backend = backend
        self._cache: Any = DynamicCache(config=backend.model.config)  # None while the step batcher holds its rows
        self.token_ids: list[int] = []          # tokens in the cache, in order
        self._fresh: list[int] = list(prompt_ids)  # input tokens not yet run (prompt, appended text, overhang)
        self._carry: list[int] = []             # the last decoded token, sampled but not yet fed
        self._logits: Any = None                # next-token logits after token_ids, valid when nothing is queued
        self.triggers = 0                       # how often steering forced a call open
        self.rollback_tokens = 0                # decoded tokens dropped because a stop string ended inside them
        self.reprefilled_tokens = 0             # tokens re-encoded from those dropped tokens' kept characters
        self._seeded: Any = None                # the generator of a session with its own seed, made on first use
        self._torn = False                      # a model step was stopped halfway: the cache cannot be used on
        self.counters.input_tokens = len(prompt_ids)

    @property
    def ids(self) -> list[int]:
        """Every token of the session as the model sees it: cached, carried, then queued."""
        return self.token_ids + self._carry + self._fresh

    # --- model steps ---------------------------------------------------------------------
    def _feed(self, ids: list[int]) -> None:
        if self._torn:
            raise BackendError("this session was stopped inside a model step (Ctrl-C, or an error), which left its "
                               "cache holding more of some layers than of others; start a new session")
        batcher = self._backend.batcher
        try:
            if batcher is None:
                logits = self._forward(ids)
            else:
                with self.released():  # the caller's hold on the shared model, given up while the step waits
                    logits = batcher.feed(self, ids)
        except BaseException:
            # A forward stopped halfway has extended some layers' caches and not others: going on from here failed
            # later on a tensor size (the chat, after Ctrl-C). The session says so instead.
            self._torn = True
            raise
        self.token_ids += ids
        self._logits = logits
        self.counters.forward_passes += 1

    def _forward(self, ids: list[int]) -> Any:
        """Run `ids` after the cached tokens (extending the cache); the logits after the last. A session's first
        tokens start from the prefix cache where a recent prompt began the same way, and are stored there."""
        return self._extend(self._start_from_prefix(ids), ids)

    def _extend(self, run: list[int], ids: list[int]) -> Any:
        """Run `run` (the end of `ids` that the prefix cache did not give) after the cached tokens; the logits after
        it. `ids` is stored in the prefix cache when they are the session's first."""
        torch = _torch()
        tensor = torch.tensor([run], dtype=torch.long, device=self._backend.device)
        # The DynamicCache is extended in place; newer transformers call the argument `cache`.
        kwargs = {self._backend.cache_kwarg: self._cache}
        with torch.inference_mode():
            out = self._backend.model(input_ids=tensor, use_cache=True, logits_to_keep=1, **kwargs)
        self._store_prefix(ids)
        return out.logits[0, -1].float()

    def _start_from_prefix(self, ids: list[int]) -> list[int]:
        """Before a session's first forward over `ids`: start from the prefix cache where a recent prompt began the same
        way; the ids still to run."""
        shared = self._prefixes()
        if shared is None:
            return ids
        reused = self._reuse_prefix(shared, ids)
        self.counters.prefilled_tokens -= reused
        self.counters.cached_tokens += reused
        return ids[reused:]

    def _store_prefix(self, ids: list[int]) -> None:
        """After a session's first forward over `ids` (its cache holds exactly them): keep them for later prompts."""
        shared = self._prefixes()
        if shared is not None:
            shared.store(ids, self._cache)

    def _prefixes(self) -> Any:
        """The backend's prefix cache while the session has run no token (only a prompt's start is shared), else None."""
        return self._backend.prefix_cache if not self.token_ids else None

    def _prefill(self) -> None:
        # The carried decoded token and any appended text go through the model in one pass.
        feed = self._carry + self._fresh
        if feed:
            self.counters.prefilled_tokens += len(self._fresh)
            self._carry, self._fresh = [], []
            self._feed(feed)
        elif self._logits is None:
            raise BackendError("cannot decode from an empty prompt: the session has no tokens")

    def _reuse_prefix(self, cache: PrefixCache, ids: list[int]) -> int:
        """Start the empty session from the stored keys and values of the longest prefix of `ids` that a recent prompt
        shares; how many tokens of `ids` they cover (0: none)."""
        from transformers import DynamicCache

        got = cache.lookup(ids)
        if got is None:
            return 0
        n, layers = got
        own = DynamicCache(config=self._backend.model.config)
        for index, (keys, values) in enumerate(layers):
            own.update(keys, values, index)  # a fresh layer concatenates onto an empty tensor: a copy, not the stored one
        self._cache = own
        return n

    def _crop(self, keep: int) -> None:
        """Drop cached tokens after the first `keep` (the stop-overhang rollback)."""
        if keep < len(self.token_ids):
            drop = keep - len(self.token_ids)
            # A negative count removes that many: the one form both transformers 4 (where a positive value is the
            # length to keep) and 5 (where it is refused) read alike.
            batcher = self._backend.batcher
            if batcher is None:
                self._cache.crop(drop)
            else:
                with self.released():
                    batcher.call(self, lambda: self._cache.crop(drop))
        del self.token_ids[keep:]
        self._logits = None

    # --- steering and sampling ------------------------------------------------------------
    def _pick(self, steering: Steering | None, forced: list[int], call: Any = None, blank: bool = False,
              opened: bool = False) -> int:
        torch = _torch()
        backend = self._backend
        scores = self._logits
        if call is not None:
            # Inside a constrained call: only tokens that continue it (no trigger, no ban).
            allowed = torch.from_numpy(backend._token_masks().allowed([call])[0][:scores.shape[-1]]).to(scores.device)
            if not bool(allowed.any()):
                raise BackendError("the call grammar allows no next token with this tokenizer")
            scores = scores.masked_fill(~allowed, float("-inf"))
            if blank and steering is not None and steering.held_opener and steering.min_open_prob > 0:
                # A held reply that may call before its answer decides at its first written token: below the call
                # threshold the opener is banned there, so the answer's branch is taken.
                begin_ids, ban_ids = backend.open_token_ids(steering.held_opener)
                if _unlikely(self._logits, begin_ids, steering.min_open_prob):
                    scores[list(ban_ids)] = float("-inf")
        elif steering is not None and steering.open_text and steering.constrain and not steering.disable:
            # A call may open only at the end of a token, where the grammar takes over: tokens that hold the
            # opener with more text after it ('["', "[[") would start a call the grammar never saw.
            scores = scores.clone()
            scores[list(backend.glued_open_ids(steering.open_text))] = float("-inf")
        if call is None and steering is not None and steering.open_text and (steering.disable or not opened):
            # Where this decode wrote the opener, a call is open (`opened`) until its close text or the decode's
            # end: the threshold and the trigger are for where a call may open, not for its arguments (the trigger
            # wrote a second opener right after the model's own; the threshold banned "<" inside them).
            begin_ids, ban_ids = backend.open_token_ids(steering.open_text)
            # Below the call threshold the model may not open a call here, by itself or through the trigger.
            unlikely = steering.min_open_prob > 0 and _unlikely(self._logits, begin_ids, steering.min_open_prob)
            if steering.disable or unlikely:
                scores = scores.clone()
                scores[list(ban_ids)] = float("-inf")
            elif steering.trigger_top_k > 0 and self.triggers < steering.max_triggers and begin_ids:
                # A k past the vocabulary is the whole vocabulary (torch.topk refused it: "selected index k out of
                # range", mid-reply).
                top = torch.topk(scores, min(steering.trigger_top_k, scores.shape[-1])).indices.tolist()
                ranked = [t for t in top if t in begin_ids]
                # Force the call open when its token is in the top-k but greedy would not pick it (Toolformer §4.2).
                if ranked and top[0] not in begin_ids:
                    self.triggers += 1
                    opener = ranked[0]
                    rest = steering.open_text[len(backend.vocab_text(opener).lstrip()):]
                    forced.extend(backend.encode(rest) if rest else [])
                    return opener
        own = self.sampling
        temperature = sampling_temperature(backend.temperature if own.temperature is None else own.temperature)
        top_p = backend.top_p if own.top_p is None else own.top_p
        if temperature <= 0:
            return int(torch.argmax(scores))
        probs = torch.softmax(scores / temperature, -1)
        if top_p < 1.0:
            sorted_p, order = torch.sort(probs, descending=True)
            outside = torch.cumsum(sorted_p, -1) - sorted_p > top_p  # keep the smallest set reaching top_p
            sorted_p[outside] = 0.0
            probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
        # The generators live on the CPU (seeded samples must not depend on the device), so the draw does too.
        return int(torch.multinomial(probs.cpu(), 1, generator=self._generator()))

    def _generator(self) -> Any:
        """The session's own random generator when it has a seed (so its samples do not depend on other sessions),
        else the backend's."""
        if self.sampling.seed is None:
            return self._backend.generator
        if self._seeded is None:
            self._seeded = _torch().Generator(device="cpu")
            self._seeded.manual_seed(self.sampling.seed)
        return self._seeded

    # --- the DecodeSession interface ---------------------------------------------------------
    def stream(self, stop: Sequence[str], max_new_tokens: int, steering: Steering | None = None) -> Iterator[str]:
        backend = self._backend
        self.stop_reason, self.matched_stop = None, None
        began = time.perf_counter()
        if backend.batcher is not None:
            backend.batcher.enter()
        try:
            limit = backend.context_size()
            held = len(self.token_ids) + len(self._carry) + len(self._fresh)
            if limit is not None and held >= limit:
                # Spliced results filled the context: positions past it are ones the model never saw (its output
                # there is noise), so the reply ends as if by its length.
                self.stop_reason = "length"
                return
            # A long prompt goes through in chunks, each its own step (an empty delta): a server that takes its lock
            # per step lets other replies decode between them instead of waiting for the whole prompt.
            chunk = backend.prefill_chunk
            while chunk and len(self._carry) + len(self._fresh) > chunk:
                piece = (self._carry + self._fresh)[:chunk]
                self.counters.prefilled_tokens += chunk - len(self._carry)
                self._fresh = self._fresh[chunk - len(self._carry):]
                self._carry = []
                self._feed(piece)
                yield ""
            self._prefill()
            start = len(self.text)
            generated: list[int] = []
            shown = ""               # decoded text of `generated` already added to self.text
            boundaries = [0]         # len(shown) after each token whose text is complete (no split UTF-8)
            bounds_at = [0]          # number of generated tokens at each boundary
            forced: list[int] = []
            grammar = steering.constrain if steering is not None and (steering.open_text or steering.call_open) else None
            call: Any = None         # the open call's grammar matcher (constrained steering), None outside a call
            if grammar is not None and steering is not None and steering.call_open:
                call = backend._token_masks().matchers(grammar, 1)[0]
            blank = True             # nothing but white space decoded yet (where a held reply decides to call)
            # Whether a call is open: the text so far says, where the dialect's close texts are known.
            opened = steering is not None and steering.call_open_after(self.text, floor=self.prompt_chars)
            budget = max_new_tokens if limit is None else min(max_new_tokens, limit - held)
            while True:
                if len(generated) >= budget:
                    self.stop_reason = "length"
                    break
                if self._carry:  # feed the previous token now that its logits are needed
                    last, self._carry = self._carry, []
                    self._feed(last)
                tok = forced.pop(0) if forced else self._pick(steering, forced, call, blank, opened)
                self.counters.decoded_tokens += 1
                if tok in backend.eos_ids:
                    if call is not None and call.is_error():  # the grammar failed mid-way: no complete value to show
                        raise BackendError(f"the constraint grammar failed while decoding: {call.get_error()}")
                    # End of sequence: the eos token is neither in the text nor in the cache.
                    self.stop_reason = "eos"
                    return
                if call is not None:
                    backend._token_masks().consume(call, tok)
                generated.append(tok)
                self._carry = [tok]  # set at once, so a stream closed early still leaves the session consistent
                decoded = backend.decode_ids(generated)
                if decoded.endswith("\ufffd"):
                    continue  # half a UTF-8 character: wait for the token that completes it
                delta, before = decoded[len(shown):], len(self.text)
                self.text += delta
                blank = blank and not delta.strip()
                if steering is not None and steering.open_text:
                    opened = steering.call_open_after(self.text, max(start, before), opened, self.prompt_chars)
                if call is not None and not call.is_stopped():
                    # The call is still open: a stop string inside it (an arrow in a quoted argument) is argument text.
                    shown = decoded
                    boundaries.append(len(shown))
                    bounds_at.append(len(generated))
                    yield delta
                    continue
                if call is not None and steering is not None and not steering.open_text:
                    # The whole reply was held to the grammar, and it is complete: the reply ends, at a stop string
                    # when the grammar ends with one (a call before a JSON answer ends at its call marker).
                    shown = decoded
                    self.matched_stop = stop_at_end(self.text, stop)
                    self.stop_reason = "eos" if self.matched_stop is None else "stop"
                    yield delta
                    return
                if call is not None:
                    call = None  # this token closed the call: its closing marker is matched as a stop below
                elif (grammar is not None and not forced and steering is not None and steering.open_text
                      and self.text.endswith(steering.open_text)):
                    call = backend._token_masks().matchers(grammar, 1)[0]
                hit = find_stop(self.text, stop, before)
                if hit is None:
                    shown = decoded
                    boundaries.append(len(shown))
                    bounds_at.append(len(generated))
                    yield delta
                    continue
                end, self.matched_stop = hit
                self.stop_reason = "stop"
                if end < len(self.text):
                    self._roll_back(start, end, generated, boundaries, bounds_at)
                    self.text = self.text[:end]
                yield self.text[before:]
                break
        finally:
            self.counters.decode_seconds += time.perf_counter() - began
            if backend.batcher is not None:
                backend.batcher.leave()

    def _roll_back(self, start: int, end: int, generated: list[int], boundaries: list[int], bounds_at: list[int]) -> None:
        """The stop string ended inside the last token(s): drop them and queue the kept characters for prefill."""
        i = max(j for j, b in enumerate(boundaries) if b <= end - start)
        keep_tokens = bounds_at[i]
        dropped = len(generated) - keep_tokens
        in_cache = dropped - 1  # the last generated token was never fed
        if in_cache:
            self._crop(len(self.token_ids) - in_cache)
        piece = self.text[start + boundaries[i]:end]
        self._carry = []
        self._fresh = self._backend.encode(piece) if piece else []
        if not self._fresh:
            # Nothing to re-feed, but the next step needs logits: re-run the last cached token.
            last = self.token_ids[-1]
            self._crop(len(self.token_ids) - 1)
            self._fresh = [last]
        self._logits = None
        self.rollback_tokens += dropped
        self.reprefilled_tokens += len(self._fresh)

    def _reset_reply(self) -> None:
        self.triggers = 0  # the top-k trigger's limit counts per reply

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(len(self.text), self.stop_reason, self.matched_stop,
                          (list(self.token_ids), list(self._carry), list(self._fresh), self.triggers))

    def rewind(self, point: Checkpoint) -> None:
        cached, carry, fresh, triggers = point.state
        self._cut_text(point)
        # The cache keeps what it shares with the tokens cached then (a stop's rollback may have dropped a few of
        # those since); the rest of them is queued again with what was queued then.
        keep = common_prefix(self.token_ids, cached)
        if keep < len(self.token_ids):
            self._crop(keep)  # the logits after the kept tokens are gone with the rest
        self._carry, self._fresh, self.triggers = [], list(cached[keep:]) + list(carry) + list(fresh), triggers
        if self._logits is None and not self._fresh:
            # Nothing queued to feed, but the next step needs logits: re-run the last cached token.
            last = self.token_ids[-1]
            self._crop(len(self.token_ids) - 1)
            self._fresh = [last]

    def append(self, text: str) -> None:
        # Tokenize only the new text: the decoded tokens before it stay exactly as the model produced them.
        self.text += text
        ids = self._backend.encode(text)
        self._fresh += ids
        self.counters.input_tokens += len(ids)


class TransformersBackend(HFScoringMixin, Backend):
    """A transformers causal LM: pass a path (or None for the embedded SmolLM2), or a built `lm` + `tokenizer`.

    Decodes sessions for the loop and implements the Scorer protocol for data_gen; `max_batch_tokens` bounds
    rows x tokens of one batched scoring forward.
    """

    name = "transformers"

    def __init__(self, model: str | None = None, *, lm: Any = None, tokenizer: Any = None, dtype: str = "float32",
                 temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None,
                 max_batch_tokens: int = 8192, prefill_chunk: int = 512, batch_steps: bool = False,
                 prefix_cache: bool = False, device: str | None = None) -> None:
        if (lm is None) != (tokenizer is None):
            raise ConfigError("pass both lm= and tokenizer= to wrap a built model, or neither to load one")
        Sampling(temperature, top_p, seed)   # checked before any model loads
        self.max_batch_tokens = check_batch_tokens(max_batch_tokens)
        if isinstance(prefill_chunk, bool) or not isinstance(prefill_chunk, int) or prefill_chunk < 0:
            raise ConfigError(f"prefill_chunk must be a whole number of tokens >= 0 (0: the whole prompt at once), "
                              f"got {prefill_chunk!r}")
        self.prefill_chunk = prefill_chunk  # tokens per prefill step of a decode session
        handed = lm is not None
        if lm is None:
            lm, tokenizer = load_model_and_tokenizer(model, dtype=resolve_dtype(dtype, device or default_device()))
        torch = _torch()
        if device is not None or not handed or str(next(lm.parameters()).device) == "cpu":
            # A model we were handed on an accelerator stays there; any other goes where it runs fastest.
            target = device or default_device()
            try:
                lm = lm.to(target)
            except (RuntimeError, AssertionError, ValueError) as err:  # "cuda:7" on a one-GPU machine, a CPU-only torch
                raise ConfigError(f"cannot place the model on device {target!r}: {err}; "
                                  f"name another with ${DEVICE_ENV} (cpu, cuda, cuda:N)") from err
        self.model = lm
        self.tokenizer = tokenizer
        self.device = next(lm.parameters()).device
        self.temperature = temperature
        self.top_p = top_p
        self.generator = torch.Generator(device="cpu")
        if seed is not None:
            self.generator.manual_seed(seed)
        eos = getattr(getattr(lm, "generation_config", None), "eos_token_id", None)
        eos_list = eos if isinstance(eos, list) else [eos]
        self.eos_ids = frozenset(int(e) for e in [*eos_list, tokenizer.eos_token_id] if e is not None)
        params = inspect.signature(lm.forward).parameters
        self.cache_kwarg = "cache" if "cache" in params else "past_key_values"
        self._open_ids: dict[str, tuple[frozenset[int], frozenset[int]]] = {}
        # Concurrent sessions' decode steps run as one batch (a server's replies); None: each session runs alone.
        self.batcher: StepBatcher | None = StepBatcher(self) if batch_steps else None
        # The last prompts' keys and values, for new sessions whose prompts begin the same way; None: off.
        self.prefix_cache: PrefixCache | None = PrefixCache() if prefix_cache else None

    def batch_concurrent(self) -> None:
        """From now on, decode the steps of concurrent sessions together (see step_batcher), and start each session
        from the stored keys and values of the prompt prefix it shares with recent ones (see prefix_cache)."""
        if self.batcher is None:
            self.batcher = StepBatcher(self)
        if self.prefix_cache is None:
            self.prefix_cache = PrefixCache()

    @classmethod
    def from_transformers(cls, lm: Any, tokenizer: Any, **options: Any) -> "TransformersBackend":
        """Wrap a model and tokenizer the caller built."""
        return cls(lm=lm, tokenizer=tokenizer, **options)

    def start(self, prompt: str) -> TransformersSession:
        tok = self.tokenizer
        # The prompt gets the tokenizer's special prefix (BOS) unless the text already carries it (chat templates do).
        special = not (tok.bos_token and prompt.startswith(tok.bos_token))
        ids = list(tok(prompt, add_special_tokens=special)["input_ids"])
        limit = self.context_size()
        if limit is not None and len(ids) >= limit:
            # Refused before any prefill: a 14,000-token prompt ran for minutes and decoded noise past 8,192.
            raise ConfigError(f"the prompt is {len(ids):,} tokens; this model reads at most {limit:,} (prompt and "
                              "reply together): shorten it")
        return TransformersSession(self, prompt, ids)

    def prompt_tokens(self, prompt: str) -> int:
        tok = self.tokenizer
        special = not (tok.bos_token and prompt.startswith(tok.bos_token))  # as start() tokenizes it
        return len(tok(prompt, add_special_tokens=special)["input_ids"])

    def context_size(self) -> int | None:
        size = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        return size if isinstance(size, int) and size > 0 else None

    def start_ids(self, ids: Sequence[int]) -> TransformersSession:
        """A session over exact token ids (to compare a KV resume with a from-scratch run on the same tokens)."""
        return TransformersSession(self, self.decode_ids(ids), list(ids))

    # start_batch: the base class's sequential version. Sessions pause and resume independently at tool calls,
    # so a shared left-padded cache would need re-packing at every pause; on CPU the gain is small, so not done.

    # --- call-open tokens ------------------------------------------------------------------
    def vocab_text(self, token_id: int) -> str:
        return _vocab(self.tokenizer)[token_id]

    def glued_open_ids(self, open_text: str) -> frozenset[int]:
        """Tokens that hold `open_text` with more text after it ('["', "[[", "[]"): banned under constrained calls."""
        key = "\x00glued" + open_text
        if key not in self._open_ids:
            glued = frozenset(i for i, text in enumerate(_vocab(self.tokenizer))
                              if open_text in text and not text.endswith(open_text))
            self._open_ids[key] = (glued, glued)
        return self._open_ids[key][0]

    def open_token_ids(self, open_text: str) -> tuple[frozenset[int], frozenset[int]]:
        """(tokens that begin `open_text`, tokens to ban to disable it).

        A token begins it when its text, leading whitespace removed, is a non-empty prefix of open_text
        (SmolLM2: "[" and " ["). Banning also covers tokens that hold the whole opener with more text, after it or
        before it ('["', "[[", "([", ".[": SmolLM2 has 39 of the latter, through which a reply with tools off still
        opened calls, and a call opened past the call threshold).
        """
        if open_text not in self._open_ids:
            begin, ban = set(), set()
            for i, text in enumerate(_vocab(self.tokenizer)):
                core = text.lstrip()
                if core and open_text.startswith(core):
                    begin.add(i)
                elif open_text in text:
                    ban.add(i)
            self._open_ids[open_text] = (frozenset(begin), frozenset(begin | ban))
        return self._open_ids[open_text]


def _unlikely(logits: Any, begin_ids: frozenset[int], threshold: float) -> bool:
    """Whether the model gives the call opener's first tokens less than `threshold` at this step (its own
    probability: raw logits, temperature 1, as Toolformer's tau_s reads it)."""
    return float(_torch().softmax(logits.float(), -1)[list(begin_ids)].sum()) < threshold


@lru_cache(maxsize=4)
def _vocab(tokenizer: Any) -> list[str]:
    """Every token id's decoded text (computed once per tokenizer, ~0.5 s for 49k tokens)."""
    return list(tokenizer.batch_decode([[i] for i in range(len(tokenizer))], skip_special_tokens=False,
                                       clean_up_tokenization_spaces=False))
