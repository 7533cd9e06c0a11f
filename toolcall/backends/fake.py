"""A backend for fast tests: scripted decode sessions, and the Scorer protocol on a deterministic toy LM."""
from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BackendError, ConfigError
from . import find_stop
from .base import Backend, Branch, Checkpoint, DecodeSession, Prefix, Steering, branch_grammars, check_batch_tokens
from .toy_lm import END, START, ToyLM, sample_text

# Characters always in the toy vocabulary while sampling under a grammar, so any call the grammar allows can be spelled.
SPELLING_CHARACTERS = [chr(c) for c in range(32, 127)] + ["×", "→"]

#: A script: continuations handed out one per `stream()` call, in order, across the whole backend
#: (so a chat's successive turns get successive items), or a function of the session text so far.
Script = Sequence[str] | Callable[[str], str]

DEFAULT_REPLY = "This is the fake backend; give it a script to say something useful."


class FakeSession(DecodeSession):
    """A session whose 'model' is the backend's script; a token is `chars_per_token` characters."""

    def __init__(self, backend: "FakeBackend", prompt: str) -> None:
        super().__init__(text=prompt, prompt_chars=len(prompt))
        self._backend = backend
        self._taken = 0  # list-script items this session's streams took
        self._unprefilled = len(prompt)  # characters appended since the last stream, "prefilled" on the next one
        self.counters.input_tokens = self._tokens(len(prompt))

    def _tokens(self, chars: int) -> int:
        return math.ceil(chars / self._backend.chars_per_token)

    def stream(self, stop: Sequence[str], max_new_tokens: int, steering: Steering | None = None) -> Iterator[str]:
        backend = self._backend
        backend.calls.append((tuple(stop), max_new_tokens, steering))
        began = time.perf_counter()
        self.stop_reason, self.matched_stop = None, None
        # Prefill what was appended since the last stream: one forward pass, like a real engine.
        if self._unprefilled:
            self.counters.prefilled_tokens += self._tokens(self._unprefilled)
            self.counters.forward_passes += 1
            self._unprefilled = 0
        took = backend.position
        more = backend._next_continuation(self.text)
        self._taken += backend.position - took
        if more is None:
            self.stop_reason = "eos"
            return
        if steering is not None and steering.disable and steering.open_text:
            more = more.replace(steering.open_text, "")  # a banned call-open token never appears
        size = backend.chars_per_token
        pieces = [more[i:i + size] for i in range(0, len(more), size)]
        for n, piece in enumerate(pieces):
            if n >= max_new_tokens:
                self.stop_reason = "length"
                break
            before = len(self.text)
            self.text += piece
            self.counters.decoded_tokens += 1
            self.counters.forward_passes += 1
            hit = find_stop(self.text, stop, before)
            if hit is not None:
                # The stop string may end inside this piece: keep text only up to its end.
                end, self.matched_stop = hit
                self.text = self.text[:end]
                self.stop_reason = "stop"
                self.counters.decode_seconds += time.perf_counter() - began
                yield self.text[before:]
                return
            yield piece
        else:
            self.stop_reason = "eos"
        self.counters.decode_seconds += time.perf_counter() - began

    def append(self, text: str) -> None:
        self.text += text
        self._unprefilled += len(text)
        self.counters.input_tokens += self._tokens(len(text))

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(len(self.text), self.stop_reason, self.matched_stop, (self._backend.position, self._taken))

    def rewind(self, point: Checkpoint) -> None:
        self._cut_text(point)
        self._unprefilled = min(self._unprefilled, len(self.text))
        # A list script hands out again the continuations the rewound decodes took (the model, asked again from the
        # same text, says the same), unless another session has taken one since; a function of the text needs nothing.
        backend = self._backend
        position, taken = point.state
        if backend.position - position == self._taken - taken:
            backend.position = position
        self._taken = taken


@dataclass(frozen=True)
class _ToyState:
    """A Prefix's state from the fake backend: the scorer that made it (the toy LM recomputes, nothing is cached)."""

    owner: "FakeBackend"


class FakeBackend(Backend):
    """Scripted outputs; `model` may name a JSON file holding a list of continuations (for the CLI).

    Scoring (the Scorer protocol) uses `lm`, a ToyLM: token ids, log-probs and samples are a fixed function of the
    texts it was given, so data_gen's stages run without a model. Without `lm` every token is equally likely.
    """

    name = "fake"

    def __init__(self, model: str | None = None, *, script: Script | None = None, chars_per_token: int = 4,
                 lm: ToyLM | None = None, max_batch_tokens: int = 8192, max_context: int | None = None) -> None:
        if chars_per_token < 1:
            raise ConfigError(f"chars_per_token must be >= 1, got {chars_per_token}")
        # Taken (and checked) like every scoring engine's option; the toy LM scores a sequence at a time, no batches.
        self.max_batch_tokens = check_batch_tokens(max_batch_tokens)
        if script is None and model is not None:
            script = _load_script(Path(model))
        self.script: Script = script if script is not None else [DEFAULT_REPLY]
        self.chars_per_token = chars_per_token
        self.max_context = max_context  # what context_size() reports: None, no bound (a script decides the length)
        self.lm = lm if lm is not None else ToyLM()
        self.position = 0  # next item of a list script
        self.prompts: list[str] = []  # every prompt a session was started with
        self.calls: list[tuple[tuple[str, ...], int, Steering | None]] = []  # (stop, max_new_tokens, steering) per stream
        self._masks: Any = None  # TokenMasks over the toy vocabulary, rebuilt when the vocabulary grows

    def _next_continuation(self, text: str) -> str | None:
        if callable(self.script):
            return self.script(text)
        if self.position >= len(self.script):
            return None
        self.position += 1
        return self.script[self.position - 1]

    def start(self, prompt: str) -> FakeSession:
        self.prompts.append(prompt)
        return FakeSession(self, prompt)

    def context_size(self) -> int | None:
        return self.max_context

    def prompt_tokens(self, prompt: str) -> int:
        return math.ceil(len(prompt) / self.chars_per_token)  # what a FakeSession counts as prefilled

    # --- the Scorer protocol, on the toy LM -------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return [self.lm.token_id(t) for t, _, _ in self.lm.split(text)]

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        pieces = self.lm.split(text)
        return [self.lm.token_id(t) for t, _, _ in pieces], [(a, b) for _, a, b in pieces]

    def decode_ids(self, ids: Sequence[int]) -> str:
        return "".join(self.lm.token(i) for i in ids)

    def start_token_id(self) -> int:
        return self.lm.token_id(START)

    def _context(self, tokens: list[str], end: int) -> list[str]:
        return tokens[max(0, end - self.lm.order + 1):end]   # all the toy LM looks at of tokens[:end]

    def _logprobs(self, ids: Sequence[int], start: int) -> list[float]:
        tokens = [self.lm.token(i) for i in ids]
        return [self.lm.logprob(self._context(tokens, j), tokens[j]) for j in range(max(start, 1), len(tokens))]

    def naive_logprobs(self, ids: Sequence[int]) -> list[float]:
        """The same toy log-probs: the fake has no faster path to check against a reference."""
        return self._logprobs(ids, 1)

    def prefix_state(self, ids: Sequence[int], candidates: Sequence[int] = ()) -> Prefix:
        if not ids:
            raise BackendError("a prefix state needs at least one token")
        tokens = [self.lm.token(i) for i in ids]
        wanted = [self.lm.token(c) for c in candidates]
        rows = tuple(tuple(self.lm.logprob(self._context(tokens, j + 1), c) for c in wanted)
                     for j in range(len(tokens))) if wanted else ()
        return Prefix(tuple(ids), tuple(self._logprobs(ids, 1)), rows, _ToyState(self))

    def _own(self, prefix: Prefix) -> Prefix:
        if not (isinstance(prefix.state, _ToyState) and prefix.state.owner is self):
            raise BackendError("this prefix was made by another scorer; pass a Prefix from this backend's prefix_state")
        return prefix

    def branch_logprobs(self, prefix: Prefix, branches: Sequence[Branch]) -> list[list[float]]:
        ids = self._own(prefix).ids
        out = []
        for br in branches:
            if br.score_from == 0 and br.cut < 1:
                raise BackendError("scoring a branch's first token needs cut >= 1: nothing before it predicts it")
            out.append(self._logprobs(list(ids[:br.cut]) + list(br.new_ids), br.cut + br.score_from))
        return out

    def sequence_logprobs(self, sequences: Sequence[tuple[Sequence[int], int]]) -> list[list[float]]:
        return [self._logprobs(ids, int(start)) for ids, start in sequences]

    def sample_branches(self, prefix: Prefix, branches: Sequence[tuple[int, Sequence[int]]], n: int, *,
                        stop: Sequence[str] = ("]",), max_new_tokens: int = 32, temperature: float = 1.0,
                        top_k: int = 0, seed: int = 0,
                        keep_going: Callable[[str], bool] | None = None,
                        grammar: str | Sequence[str] | None = None) -> list[list[tuple[str, bool]]]:
        ids = self._own(prefix).ids
        rng = random.Random(seed)
        out = []
        for (cut, first), own in zip(branches, branch_grammars(grammar, len(branches))):
            context = [self.lm.token(i) for i in list(ids[:cut]) + list(first)]
            if own is not None:
                out.append([self._sample_constrained(list(context), own, max_new_tokens, rng, temperature, top_k,
                                                     keep_going) for _ in range(n)])
                continue
            out.append([sample_text(self.lm, list(context), stop, max_new_tokens, rng, temperature, top_k, keep_going)
                        for _ in range(n)])
        return out

    def _token_masks(self) -> Any:
        """llguidance over the toy vocabulary (plus single characters, so every call can be spelled)."""
        from .constraint import TokenMasks

        for char in SPELLING_CHARACTERS:
            self.lm.token_id(char)
        tokens = self.lm.vocabulary()
        if self._masks is None or self._masks.width != len(tokens):
            index = {t: i for i, t in enumerate(tokens)}

            def encode(text: str) -> list[int]:
                # The toy's own pieces where it has them, else one character at a time (characters it lacks are left out).
                out: list[int] = []
                for piece, _, _ in self.lm.split(text):
                    out += [index[piece]] if piece in index else [index[c] for c in piece if c in index]
                return out

            self._masks = TokenMasks.for_tokens(tokens, self.lm.token_id(END), encode, [self.lm.token_id(START)])
        return self._masks

    def _sample_constrained(self, context: list[str], grammar: str, max_new_tokens: int, rng: random.Random,
                            temperature: float, top_k: int, keep_going: Callable[[str], bool] | None) -> tuple[str, bool]:
        """One continuation whose tokens the grammar allows, drawn from the toy LM's probabilities among them."""
        masks = self._token_masks()
        tokens = self.lm.vocabulary()
        (matcher,) = masks.matchers(grammar, 1)
        text = ""
        for _ in range(max_new_tokens):
            allowed = [tokens[i] for i in masks.allowed([matcher])[0].nonzero()[0]]
            if not allowed:
                return text, False
            token = self.lm.pick(context, rng, temperature, top_k, among=allowed)
            if token == END:
                return text, bool(matcher.is_accepting())
            masks.consume(matcher, self.lm.token_id(token))
            context.append(token)
            text += token
            if matcher.is_stopped():
                return text, True
            if keep_going is not None and not keep_going(text):
                return text, False
        return text, False


def _load_script(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"fake backend script {path} could not be read as JSON: {err}") from err
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise ConfigError(f"fake backend script {path} must be a JSON list of strings")
    return data
