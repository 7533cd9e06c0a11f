"""A deterministic toy language model for tests: word-and-punctuation tokens, n-gram counts with interpolated smoothing."""
from __future__ import annotations

import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

from ..errors import BackendError, ConfigError
from .base import sampling_temperature

# GPT-2-like pieces: a word or one digit with its leading space, a punctuation run with its leading space (so " ["
# and ")]" are one token each, as in real byte-level vocabularies), whitespace (a run before a word leaves its last
# space to the word). A run is cut every MAX_RUN characters, as real vocabularies bound their tokens: a text's run of
# 5,000 spaces or brackets was one token, and llguidance's token trie panics on a token over 1,024 bytes.
MAX_RUN = 16
TOKEN = re.compile(rf" ?[^\W\d_]{{1,{MAX_RUN}}}| ?\d| ?[^\s\w]{{1,{MAX_RUN}}}| ?_{{1,{MAX_RUN}}}"
                   rf"|\s{{1,{MAX_RUN}}}(?!\S)|\s{{1,{MAX_RUN}}}|.", re.S)

START, END = "<s>", "</s>"


class ToyLM:
    """p(token | the last order - 1 tokens), learned by counting `texts`; every text starts with <s> and ends with </s>.

    Each context length k = 0 .. order - 1 mixes its counts with the level below:
    p_k(t | h) = (count(h, t) + smoothing * p_{k-1}(t | h[1:])) / (count(h) + smoothing), and p_{-1} = 1 / vocab_size,
    so every token, seen or not, has a probability and the log-probs are a fixed function of the texts.
    Token ids are handed out in order of first appearance (<s> = 0, </s> = 1, then the training tokens).
    """

    def __init__(self, texts: Sequence[str] = (), order: int = 3, vocab_size: int = 1000, smoothing: float = 1.0) -> None:
        if order < 1 or vocab_size < 2 or smoothing <= 0:
            raise ConfigError(f"a toy LM needs order >= 1, vocab_size >= 2 and smoothing > 0; got {order}, "
                              f"{vocab_size}, {smoothing}")
        self.order, self.vocab_size, self.smoothing = order, vocab_size, smoothing
        self._ids: dict[str, int] = {}
        self._tokens: list[str] = []
        self.known: list[str] = []     # tokens sampling may produce: </s> and every training token, first seen first
        self._known: set[str] = set()
        self._counts: list[dict[tuple[str, ...], Counter[str]]] = [defaultdict(Counter) for _ in range(order)]
        self._totals: list[Counter[tuple[str, ...]]] = [Counter() for _ in range(order)]
        for token in (START, END):
            self.token_id(token)
        for text in texts:
            self.learn(text)

    # --- tokens ----------------------------------------------------------------------
    @staticmethod
    def split(text: str) -> list[tuple[str, int, int]]:
        """(token, start, end) for each piece of `text`, left to right, covering every character."""
        return [(m.group(), m.start(), m.end()) for m in TOKEN.finditer(text)]

    def token_id(self, token: str) -> int:
        if token not in self._ids:
            self._ids[token] = len(self._tokens)
            self._tokens.append(token)
        return self._ids[token]

    def token(self, token_id: int) -> str:
        if not 0 <= token_id < len(self._tokens):
            raise BackendError(f"token id {token_id} is not in the toy vocabulary (ids 0 .. {len(self._tokens) - 1})")
        return self._tokens[token_id]

    def vocabulary(self) -> list[str]:
        """Every token with an id so far, by id (<s> and </s> first)."""
        return list(self._tokens)

    # --- counting and probabilities --------------------------------------------------
    def learn(self, text: str) -> None:
        tokens = [START] + [t for t, _, _ in self.split(text)] + [END]
        for token in tokens[1:]:
            self.token_id(token)
            if token not in self._known:
                self._known.add(token)
                self.known.append(token)
        for j in range(1, len(tokens)):
            for k in range(min(self.order, j + 1)):
                context = tuple(tokens[j - k:j])
                self._counts[k][context][tokens[j]] += 1
                self._totals[k][context] += 1

    def prob(self, context: Sequence[str], token: str) -> float:
        p = 1.0 / self.vocab_size
        for k in range(min(self.order, len(context) + 1)):
            key = tuple(context[len(context) - k:])
            total = self._totals[k].get(key)
            if total:
                p = (self._counts[k][key][token] + self.smoothing * p) / (total + self.smoothing)
        return p

    def logprob(self, context: Sequence[str], token: str) -> float:
        return math.log(self.prob(context, token))

    def pick(self, context: Sequence[str], rng: random.Random, temperature: float = 1.0, top_k: int = 0,
             among: Sequence[str] | None = None) -> str:
        """The next token: the likeliest known one at temperature 0, else drawn from the known tokens' p ** (1 / T).

        `among` replaces the known tokens as the choices (a grammar's allowed tokens); it must not be empty."""
        choices = self.known if among is None else among
        if not choices:
            return END
        scored = [(self.prob(context, t), n, t) for n, t in enumerate(choices)]
        scored.sort(key=lambda s: (-s[0], s[1]))
        temperature = sampling_temperature(temperature)
        if temperature <= 0:
            return scored[0][2]
        if top_k > 0:
            scored = scored[:top_k]
        # Relative to the likeliest, so the weights never all underflow to 0 (random.choices refuses that).
        best = scored[0][0]
        weights = [(p / best) ** (1.0 / temperature) for p, _, _ in scored]
        return rng.choices([t for _, _, t in scored], weights)[0]


def sample_text(lm: ToyLM, context: list[str], stop: Sequence[str], max_new_tokens: int, rng: random.Random,
                temperature: float, top_k: int, keep_going: Callable[[str], bool] | None) -> tuple[str, bool]:
    """One continuation of `context` with the Scorer protocol's rules for stop strings, end of sequence and keep_going."""
    text = ""
    for _ in range(max_new_tokens):
        token = lm.pick(context, rng, temperature, top_k)
        if token == END:
            return text, False
        context.append(token)
        text += token
        hit = min((text.find(s) for s in stop if s and s in text), default=-1)
        if hit >= 0:
            return text[:hit], True
        if keep_going is not None and not keep_going(text):
            return text, False
    return text, False
