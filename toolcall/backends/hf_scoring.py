"""The Scorer protocol on a transformers causal LM: log-probs and branch sampling that reuse the KV cache of shared prefixes."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import BackendError, MissingDependencyError
from .base import Branch, Prefix, check_batch_tokens


def _torch() -> Any:
    try:
        import torch
    except ImportError as err:
        raise MissingDependencyError("torch", "hf", "scoring with a transformers model") from err
    return torch


@dataclass
class _HFState:
    """What a Prefix made here holds: the ids, the KV cache (one layer = (keys, values)) and the last hidden states."""

    model: Any                       # the model that computed them: a cache is meaningless to any other
    ids: list[int]
    kv: list[tuple[Any, Any]]        # per layer, tensors of shape [1, kv_heads, len(ids), head_dim]
    hidden: Any                      # [len(ids), width]: logits of any position are one LM-head product away


class HFScoringMixin:
    """The Scorer protocol over `self.model` (a transformers causal LM) and `self.tokenizer`.

    Every batched forward is split so that rows x (cached + new tokens) stays under `max_batch_tokens`; sampling
    batches rows up to `max_sample_kv_bytes` of KV cache instead.
    """

    model: Any
    tokenizer: Any
    max_batch_tokens: int = 8192
    max_sample_kv_bytes: int = 2 << 30   # KV cache held by the rows sampled together (SmolLM2: ~60 rows of 750 tokens)

    # --- tokens ----------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids and the (start, end) character span of each token in `text`."""
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]

    def decode_ids(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False))

    def start_token_id(self) -> int:
        """The token every scored text starts from (BOS, else EOS): the context of the text's first token."""
        tok = self.tokenizer
        found = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        if found is None:
            raise BackendError("the tokenizer has neither a BOS nor an EOS token to start a scored sequence")
        return int(found)

    # --- model plumbing --------------------------------------------------------------
    def _device(self) -> Any:
        return next(self.model.parameters()).device

    def _trunk(self) -> Any:
        # The decoder without the LM head, so logits are computed only for the rows that are scored.
        getter = getattr(self.model, "get_decoder", None)
        trunk = getter() if callable(getter) else None
        return trunk if trunk is not None else getattr(self.model, self.model.base_model_prefix)

    def _head(self, hidden: Any) -> Any:
        torch = _torch()
        with torch.inference_mode():
            logits = self.model.get_output_embeddings()(hidden).float()
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        if cap:
            logits = cap * (logits / cap).tanh()
        return logits

    def _forward(self, input_ids: Any, attention_mask: Any, position_ids: Any, past: Any = None) -> tuple[Any, Any]:
        import inspect

        torch = _torch()
        trunk = self._trunk()
        # transformers renamed `past_key_values` to `cache` (5.x); pass whichever this model's forward takes.
        name = "cache" if "cache" in inspect.signature(trunk.forward).parameters else "past_key_values"
        with torch.inference_mode():
            out = trunk(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                        use_cache=True, **{name: past})
        cache = getattr(out, "cache", None)
        return out.last_hidden_state, cache if cache is not None else out.past_key_values

    def _new_cache(self, kv: list[tuple[Any, Any]] | None = None) -> Any:
        from transformers import DynamicCache

        return DynamicCache(ddp_cache_data=kv, config=self.model.config) if kv else DynamicCache(config=self.model.config)

    # --- reference ----------------------------------------------------------------------
    def naive_logprobs(self, ids: Sequence[int]) -> list[float]:
        """log p(ids[j] | ids[:j]) for j >= 1 from the model's own full forward: the un-optimised reference (no cache,
        no batching, no padding, no trimming of the LM head) that the scores below are tested against."""
        torch = _torch()
        ids = list(ids)
        with torch.inference_mode():
            logits = self.model(input_ids=torch.tensor([ids], device=self._device())).logits[0].float()
        logp = torch.log_softmax(logits, -1)
        return [float(logp[j - 1, ids[j]]) for j in range(1, len(ids))]

    # --- prefix states ----------------------------------------------------------------------
    def _run(self, ids: Sequence[int]) -> _HFState:
        """Run `ids` once and keep the KV cache and the last hidden states."""
        torch = _torch()
        ids = list(ids)
        if not ids:
            raise BackendError("a prefix state needs at least one token")
        dev = self._device()
        tensor = torch.tensor([ids], dtype=torch.long, device=dev)
        hidden, cache = self._forward(tensor, torch.ones_like(tensor), torch.arange(len(ids), device=dev).unsqueeze(0))
        return _HFState(self.model, ids, [(layer.keys, layer.values) for layer in cache.layers], hidden[0])

    def prefix_state(self, ids: Sequence[int], candidates: Sequence[int] = ()) -> Prefix:
        """Run `ids` once; the state's KV cache lets any prefix `ids[:cut]` be continued without recomputing it."""
        torch = _torch()
        state = self._run(ids)
        # The [len, vocab] log-probabilities exist only here: the state keeps the hidden states (len x width), and
        # the few log-probs callers need leave as floats.
        logp = torch.log_softmax(self._head(state.hidden), -1)
        target = torch.tensor(state.ids[1:], device=logp.device).unsqueeze(1)
        own = logp[:-1].gather(1, target).squeeze(1).tolist()
        cand = [tuple(row) for row in logp[:, list(candidates)].tolist()] if len(candidates) else []
        return Prefix(tuple(state.ids), tuple(own), tuple(cand), state)

    def _state(self, prefix: Prefix) -> _HFState:
        if not isinstance(prefix.state, _HFState) or prefix.state.model is not self.model:
            raise BackendError(f"this prefix was made by another engine or model ({type(prefix.state).__name__}); "
                               "pass a Prefix from this scorer's prefix_state")
        return prefix.state

    def _chunks(self, lengths: Sequence[int], items: Sequence[int]) -> list[list[int]]:
        # Consecutive groups whose rows x widest row stays within max_batch_tokens (at least one row each).
        groups: list[list[int]] = []
        current: list[int] = []
        widest = 0
        for length, item in zip(lengths, items):
            w = max(widest, length)
            if current and w * (len(current) + 1) > self.max_batch_tokens:
                groups.append(current)
                current, w = [], length
            current.append(item)
            widest = w
        if current:
            groups.append(current)
        return groups

    def _branch_batch(self, state: _HFState, cuts: Sequence[int], news: Sequence[Sequence[int]]) -> tuple[Any, Any, Any, Any]:
        """Feed each row `ids[:cut] + new`: the cut prefixes are left-padded into one cache, the new tokens right-padded."""
        torch = _torch()
        dev = self._device()
        rows, width_c, width_n = len(cuts), max(cuts), max(len(n) for n in news)
        kv = []
        for keys, values in state.kv:
            k = keys.new_zeros((rows, keys.shape[1], width_c, keys.shape[3]))
            v = values.new_zeros((rows, values.shape[1], width_c, values.shape[3]))
            for r, cut in enumerate(cuts):
                k[r, :, width_c - cut:] = keys[0, :, :cut]
                v[r, :, width_c - cut:] = values[0, :, :cut]
            kv.append((k, v))
        ids = torch.zeros((rows, width_n), dtype=torch.long)
        mask = torch.zeros((rows, width_c + width_n), dtype=torch.long)
        pos = torch.zeros((rows, width_n), dtype=torch.long)
        for r, (cut, new) in enumerate(zip(cuts, news)):
            ids[r, :len(new)] = torch.tensor(list(new), dtype=torch.long)
            mask[r, width_c - cut:width_c + len(new)] = 1
            pos[r] = torch.arange(cut, cut + width_n)
        hidden, cache = self._forward(ids.to(dev), mask.to(dev), pos.to(dev), self._new_cache(kv))
        return hidden, cache, mask.to(dev), pos.to(dev)

    def branch_logprobs(self, prefix: Prefix, branches: Sequence[Branch]) -> list[list[float]]:
        """For each branch: [log p(new_ids[j] | ids[:cut] + new_ids[:j]) for j >= score_from]; the cut prefix is never recomputed."""
        return self._branch_logprobs(self._state(prefix), branches)

    def _branch_logprobs(self, state: _HFState, branches: Sequence[Branch]) -> list[list[float]]:
        torch = _torch()
        results: list[list[float]] = [[] for _ in branches]
        order = sorted(range(len(branches)), key=lambda b: (branches[b].cut, len(branches[b].new_ids)))
        for chunk in self._chunks([branches[b].cut + len(branches[b].new_ids) for b in order], order):
            todo = [b for b in chunk if branches[b].new_ids]
            if not todo:
                continue
            hidden, _, _, _ = self._branch_batch(state, [branches[b].cut for b in todo], [branches[b].new_ids for b in todo])
            for row, b in enumerate(todo):
                br = branches[b]
                new = list(br.new_ids)
                scores: list[float] = []
                if br.score_from == 0:
                    if br.cut < 1:
                        raise BackendError("scoring a branch's first token needs cut >= 1: nothing before it predicts it")
                    # The first new token is predicted by the prefix's own last kept position.
                    scores.append(float(torch.log_softmax(self._head(state.hidden[br.cut - 1]), -1)[new[0]]))
                lo = max(br.score_from, 1)
                if lo < len(new):
                    logp = torch.log_softmax(self._head(hidden[row, lo - 1:len(new) - 1]), -1)
                    scores += logp.gather(1, torch.tensor(new[lo:], device=logp.device).unsqueeze(1)).squeeze(1).tolist()
                results[b] = scores
        return results

    def sequence_logprobs(self, sequences: Sequence[tuple[Sequence[int], int]]) -> list[list[float]]:
        """For each (ids, start): [log p(ids[j] | ids[:j]) for j >= max(start, 1)]; the longest token prefix common to
        all sequences is run once and branched from, the rest are batched with padding."""
        seqs = [list(s) for s, _ in sequences]
        if len(seqs) < 2:
            return self._padded_logprobs(sequences)
        common = 0
        shortest = min(len(s) for s in seqs)
        while common < shortest - 1 and all(s[common] == seqs[0][common] for s in seqs):
            common += 1
        if common < 1:
            return self._padded_logprobs(sequences)
        state = self._run(seqs[0][:common])
        branches = [Branch(common, tuple(s[common:]), max(int(start), 1) - common) for s, (_, start) in zip(seqs, sequences)]
        # A score start inside the shared part would need log-probs of the prefix itself; fall back for those rows.
        inside = [b for b, br in enumerate(branches) if br.score_from < 0]
        out = self._branch_logprobs(state, [Branch(br.cut, br.new_ids, max(br.score_from, 0)) for br in branches])
        if inside:
            redo = self._padded_logprobs([sequences[b] for b in inside])
            for b, scores in zip(inside, redo):
                out[b] = scores
        return out

    def _padded_logprobs(self, sequences: Sequence[tuple[Sequence[int], int]]) -> list[list[float]]:
        """sequence_logprobs without prefix sharing: every sequence whole, right-padded into batches."""
        torch = _torch()
        results: list[list[float]] = [[] for _ in sequences]
        order = sorted(range(len(sequences)), key=lambda s: len(sequences[s][0]))
        for chunk in self._chunks([len(sequences[s][0]) for s in order], order):
            width = max(len(sequences[s][0]) for s in chunk)
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, s in enumerate(chunk):
                seq = list(sequences[s][0])
                ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
                mask[row, :len(seq)] = 1
            pos = torch.arange(width).unsqueeze(0).expand(len(chunk), -1)
            dev = self._device()
            hidden, _ = self._forward(ids.to(dev), mask.to(dev), pos.to(dev))
            for row, s in enumerate(chunk):
                seq, start = list(sequences[s][0]), max(int(sequences[s][1]), 1)
                if start >= len(seq):
                    continue
                logp = torch.log_softmax(self._head(hidden[row, start - 1:len(seq) - 1]), dim=-1)
                target = torch.tensor(seq[start:], device=logp.device).unsqueeze(1)
                results[s] = logp.gather(1, target).squeeze(1).tolist()
        return results

    # --- sampling -----------------------------------------------------------------------
    def sample_branches(self, prefix: Prefix, branches: Sequence[tuple[int, Sequence[int]]], n: int, *,
                        stop: Sequence[str] = ("]",), max_new_tokens: int = 32, temperature: float = 1.0,
                        top_k: int = 0, seed: int = 0,
                        keep_going: Callable[[str], bool] | None = None) -> list[list[tuple[str, bool]]]:
        """For each (cut, first_ids): n continuations of `ids[:cut] + first_ids`, as (text, stopped).

        `text` ends just before the first stop string when `stopped` is True (stop strings are matched on the decoded
        text because `)]`-like merges hide them inside tokens); otherwise it is what max_new_tokens produced.
        temperature 0 means greedy. `keep_going(text)` returning False ends a row early, returned as (text, False): the
        caller can stop a sample that has already turned into something it would discard.
        """
        torch = _torch()
        state = self._state(prefix)
        gen = torch.Generator().manual_seed(seed)
        out: list[list[tuple[str, bool]]] = [[] for _ in branches]
        rows_all = [(b, cut, list(first)) for b, (cut, first) in enumerate(branches) for _ in range(n)]
        # Decoding runs one token per row per step, so the cost of a step is reading the weights once plus the rows'
        # KV caches: batch as many rows as the KV budget allows (chunking by max_batch_tokens, meant for full
        # forwards, re-read the weights for every ~10 rows and made sampling ~3x slower).
        per_token = sum(k[0, :, :1].numel() * k.element_size() + v[0, :, :1].numel() * v.element_size() for k, v in state.kv)
        widest = max(cut + len(first) + max_new_tokens for _, cut, first in rows_all) if rows_all else 1
        per_chunk = max(1, int(self.max_sample_kv_bytes // max(1, per_token * widest)))
        for start in range(0, len(rows_all), per_chunk):
            chunk = range(start, min(start + per_chunk, len(rows_all)))
            rows = [rows_all[i] for i in chunk]
            for b, text, stopped in self._sample_rows(state, rows, stop, max_new_tokens, temperature, top_k, gen,
                                                      keep_going):
                out[b].append((text, stopped))
        return out

    def _sample_rows(self, state: _HFState, rows: list[tuple[int, int, list[int]]], stop: Sequence[str],
                     max_new_tokens: int, temperature: float, top_k: int, gen: Any,
                     keep_going: Callable[[str], bool] | None = None) -> list[tuple[int, str, bool]]:
        torch = _torch()
        cuts = [cut for _, cut, _ in rows]
        firsts = [first for _, _, first in rows]
        hidden, cache, mask, pos = self._branch_batch(state, cuts, firsts)
        last = torch.tensor([len(f) - 1 for f in firsts], device=hidden.device)
        logits = self._head(hidden[torch.arange(len(rows), device=hidden.device), last])
        next_pos = pos[torch.arange(len(rows)), last] + 1
        generated: list[list[int]] = [[] for _ in rows]
        done: list[tuple[str, bool] | None] = [None] * len(rows)
        live = list(range(len(rows)))          # row numbers still decoding, in cache order
        eos = self.tokenizer.eos_token_id
        for step in range(max_new_tokens):
            if temperature <= 0:
                tokens = logits.argmax(-1)
            else:
                scaled = logits / temperature
                if top_k > 0:
                    kth = scaled.topk(min(top_k, scaled.shape[-1]), -1).values[:, -1:]
                    scaled = scaled.masked_fill(scaled < kth, float("-inf"))
                probs = torch.softmax(scaled, -1).cpu()
                tokens = torch.multinomial(probs, 1, generator=gen).squeeze(1)
            for slot, r in enumerate(live):
                if done[r] is not None:
                    continue      # finished, still in the batch until enough rows have finished to compact it
                tok = int(tokens[slot])
                generated[r].append(tok)
                text = self.decode_ids(generated[r])
                hit = min((text.find(s) for s in stop if s in text), default=-1)
                if hit >= 0:
                    done[r] = (text[:hit], True)
                elif eos is not None and tok == eos:
                    done[r] = (self.decode_ids(generated[r][:-1]), False)
                elif step == max_new_tokens - 1 or (keep_going is not None and not keep_going(text)):
                    done[r] = (text, False)
            keep = [slot for slot, r in enumerate(live) if done[r] is None]
            if not keep:
                break
            if len(keep) <= 0.75 * len(live):
                # Compacting copies every layer's cache, so it is done only when a quarter of the rows has finished;
                # until then finished rows ride along (one token of compute each per step, cheaper than a copy).
                sel = torch.tensor(keep, device=mask.device)
                cache.batch_select_indices(sel)
                mask, next_pos, tokens = mask[sel], next_pos[sel], tokens[sel.to(tokens.device)]
                live = [live[s] for s in keep]
            mask = torch.cat([mask, torch.ones((len(live), 1), dtype=mask.dtype, device=mask.device)], 1)
            feed = tokens.view(-1, 1).to(mask.device)
            hidden, cache = self._forward(feed, mask, next_pos.view(-1, 1), cache)
            next_pos = next_pos + 1
            logits = self._head(hidden[:, -1])
        return [(rows[r][0], *(done[r] or ("", False))) for r in range(len(rows))]


class HFScorer(HFScoringMixin):
    """The Scorer protocol on a user-built (model, tokenizer) pair, without the decoding backend."""

    def __init__(self, model: Any, tokenizer: Any, max_batch_tokens: int = 8192) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_tokens = check_batch_tokens(max_batch_tokens)
        if getattr(model, "training", False):
            model.eval()
