"""The KV of the last few prompts a transformers backend prefilled, so that a new session whose prompt begins the same
way (a server's instruction, tools and worked examples, the same for every request) prefills only what differs.

A causal model's keys and values at a position depend only on the tokens up to it, so a session may start from the
stored keys and values of the longest prompt prefix it shares with an earlier one, as vLLM's prefix caching does.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any


class PrefixCache:
    """Up to `entries` prompts' keys and values (each at most `max_tokens` long); a prefix shorter than `min_tokens` is
    not worth the copy."""

    def __init__(self, entries: int = 4, min_tokens: int = 32, max_tokens: int = 4096) -> None:
        self.entries, self.min_tokens, self.max_tokens = entries, min_tokens, max_tokens
        self._lock = threading.Lock()
        self._stored: OrderedDict[tuple[int, ...], list[tuple[Any, Any]]] = OrderedDict()
        self.hits = 0
        self.reused_tokens = 0

    def lookup(self, ids: Sequence[int]) -> tuple[int, list[tuple[Any, Any]]] | None:
        """The length of the longest stored prefix of `ids` (one token short of all of them: the session needs a
        forward for its next-token logits) and its keys and values per layer, as views of the stored tensors (the
        caller copies them into its own cache); None below min_tokens."""
        with self._lock:
            best, layers = 0, None
            for key, stored in self._stored.items():
                n = common_prefix(key, ids)
                if n > best:
                    best, layers, found = n, stored, key
            if layers is None:
                return None
            self._stored.move_to_end(found)
        n = min(best, len(ids) - 1)
        if n < self.min_tokens:
            return None
        self.hits += 1
        self.reused_tokens += n
        return n, [(k[:, :, :n], v[:, :, :n]) for k, v in layers]

    def store(self, ids: Sequence[int], cache: Any) -> None:
        """Keep the keys and values of the prompt `ids` (the first max_tokens of them), held in `cache`.

        Kept without a copy: a session's DynamicCache never writes into its tensors (a step concatenates into new
        ones, a rollback takes a shorter view), so these stay as they are after the session moves on; a cache of
        another kind, or a prompt longer than max_tokens, is copied."""
        n = min(len(ids), self.max_tokens)
        if n < self.min_tokens:
            return
        key = tuple(ids[:n])
        from transformers.cache_utils import DynamicLayer

        # A copy too when the prompt is longer than what is kept: a view would hold the whole prompt's tensors.
        layers = [_kept(layer, n, copy=type(layer) is not DynamicLayer or _length(layer) != n) for layer in cache.layers]
        with self._lock:
            self._stored[key] = layers
            self._stored.move_to_end(key)
            while len(self._stored) > self.entries:
                self._stored.popitem(last=False)


def _length(layer: Any) -> int:
    return int(layer.keys.shape[-2])


def _kept(layer: Any, n: int, copy: bool) -> tuple[Any, Any]:
    """A layer's keys and values at the first n positions: views, or copies."""
    keys, values = layer.keys[:, :, :n], layer.values[:, :, :n]
    return (keys.clone(), values.clone()) if copy else (keys, values)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens `a` and `b` share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
