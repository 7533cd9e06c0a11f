"""The Scorer protocol on a transformers causal LM: log-probs and branch sampling that reuse the KV cache of shared prefixes."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import BackendError, MissingDependencyError
from .base import Branch, Prefix, branch_grammars, check_batch_tokens, sampling_temperature, scoring_start_id


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

    Scoring packs the sequences it is given into token trees (a head shared by several sequences is one set of
    nodes, and nothing is padded), at most min(max_pack_tokens, max_batch_tokens) tokens per forward; sampling
    batches rows up to `max_sample_kv_bytes` of KV cache instead.
    """

    model: Any
    tokenizer: Any
    max_batch_tokens: int = 8192
    # A packed forward's attention mask is dense (tokens x tokens), so its cost grows with the square of the pack:
    # at 512 tokens it stayed a small part of the forward for SmolLM2 on CPU, and the matrix products stay full.
    max_pack_tokens: int = 512
    max_pack_tokens_accelerated: int = 4096
    # Prefix states are run in blocks of this many tokens, so whole blocks shared with a recent state are reused exactly.
    prefix_block: int = 64
    prefix_cache_entries: int = 8        # recent prefix states kept for that reuse (a few per tool and text)
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
        return scoring_start_id(self.tokenizer)

    # --- model plumbing --------------------------------------------------------------
    def _device(self) -> Any:
        return next(self.model.parameters()).device

    def _pack_limit(self) -> int:
        """Tokens per packed forward: on an accelerator a forward of a small model is bound by its kernel launches,
        not by the dense mask, so packs grow to hold many sequences (and share their heads)."""
        limit = self.max_pack_tokens if self._device().type == "cpu" else self.max_pack_tokens_accelerated
        return max(1, min(limit, self.max_batch_tokens))

    def _trunk(self) -> Any:
        # The decoder without the LM head, so logits are computed only for the rows that are scored.
        getter = getattr(self.model, "get_decoder", None)
        trunk = getter() if callable(getter) else None
        return trunk if trunk is not None else getattr(self.model, self.model.base_model_prefix)

    def _head(self, hidden: Any, exact: bool = True) -> Any:
        """Logits in float32. `exact`: a model computing in bfloat16 computes them in float32 too, for log-probs that
        are read; a sample's draw needs no more than the model's own type (it reads the weights half as often)."""
        torch = _torch()
        head = self.model.get_output_embeddings()
        with torch.inference_mode():
            if exact and type(head) is torch.nn.Linear and head.weight.dtype != torch.float32:
                # Rounding the logits to bfloat16 moved the embedded model's loss reductions by 0.026 on average
                # against float32 (0.017 computed in float32), as much as the base model's right and wrong calls
                # differ.
                logits = torch.nn.functional.linear(hidden.float(), self._float_head(head.weight),
                                                    None if head.bias is None else head.bias.float())
            else:
                logits = head(hidden).float()
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        if cap:
            logits = cap * (logits / cap).tanh()
        return logits

    def _float_head(self, weight: Any) -> Any:
        """A float32 copy of the LM head's weights, made again when they change (same tensor, version bumped)."""
        key = (id(weight), weight._version)
        kept = self.__dict__.get("_head32")
        if kept is None or kept[0] != key:
            kept = (key, weight.detach().float())
            self.__dict__["_head32"] = kept
        return kept[1]

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
    def _run(self, ids: Sequence[int], base: _HFState | None = None, keep: int = 0) -> _HFState:
        """Run `ids` in blocks of `prefix_block` tokens, each on the KV cache of the blocks before it, and keep the KV
        cache and the last hidden states. The first `keep` tokens (whole blocks) are taken from `base` instead of run.

        A block sees the same tokens, cache and shapes whichever way its predecessors were obtained, so a reused
        block is bit for bit what running it again would give."""
        torch = _torch()
        ids = list(ids)
        if not ids:
            raise BackendError("a prefix state needs at least one token")
        dev = self._device()
        cache = self._new_cache([(k[:, :, :keep], v[:, :, :keep]) for k, v in base.kv]) if base is not None and keep else None
        hiddens = [base.hidden[:keep]] if base is not None and keep else []
        for lo in range(keep, len(ids), self.prefix_block):
            hi = min(lo + self.prefix_block, len(ids))
            tensor = torch.tensor([ids[lo:hi]], dtype=torch.long, device=dev)
            mask = torch.ones((1, hi), dtype=torch.long, device=dev)
            hidden, cache = self._forward(tensor, mask, torch.arange(lo, hi, device=dev).unsqueeze(0), cache)
            hiddens.append(hidden[0])
        if cache is None:  # keep == len(ids): nothing new was run, so the base's cut is the whole state
            raise BackendError("a prefix state needs at least one token past the reused prefix")
        return _HFState(self.model, ids, [(layer.keys, layer.values) for layer in cache.layers], torch.cat(hiddens))

    def prefix_state(self, ids: Sequence[int], candidates: Sequence[int] = ()) -> Prefix:
        """Run `ids` once; the state's KV cache lets any prefix `ids[:cut]` be continued without recomputing it.

        Whole blocks that `ids` share with a recent prefix state (the few-shot prompt every text of a tool starts
        with) are reused, with their log-probs, instead of run again; since every state is computed block by block,
        the result never depends on what ran before.
        """
        torch = _torch()
        ids = [int(i) for i in ids]
        cands = tuple(int(c) for c in candidates)
        recent = self._recent_prefixes()
        hit = recent.get((tuple(ids), cands))
        if hit is not None:
            recent.move_to_end((tuple(ids), cands))
            return hit
        base, keep = self._reusable(ids, cands)
        state = self._run(ids, base.state if base is not None else None, keep)
        own: list[float] = list(base.token_logprobs[:keep - 1]) if base is not None and keep else []
        cand: list[tuple[float, ...]] = list(base.candidate_logprobs[:keep]) if base is not None and keep else []
        # The [rows, vocab] log-probabilities exist one block at a time (the same blocks as the forward, so a row's
        # values do not depend on how many rows were computed with it); the few that callers need leave as floats.
        # Row keep - 1 predicts the first token that is not shared, so its block is computed again.
        first = max(keep - 1, 0) // self.prefix_block * self.prefix_block
        for lo in range(first, len(ids), self.prefix_block):
            hi = min(lo + self.prefix_block, len(ids))
            logp = torch.log_softmax(self._head(state.hidden[lo:hi]), -1)
            rows = range(max(lo, keep - 1), min(hi, len(ids) - 1))       # row r predicts ids[r + 1]
            if len(rows):
                target = torch.tensor(ids[rows.start + 1:rows.stop + 1], device=logp.device).unsqueeze(1)
                own += logp[rows.start - lo:rows.stop - lo].gather(1, target).squeeze(1).tolist()
            if cands:
                cand += [tuple(row) for row in logp[max(keep, lo) - lo:, list(cands)].tolist()]
        prefix = Prefix(tuple(ids), tuple(own), tuple(cand), state)
        recent[(tuple(ids), cands)] = prefix
        while len(recent) > self.prefix_cache_entries:
            recent.popitem(last=False)
        return prefix

    def _recent_prefixes(self) -> OrderedDict[tuple[tuple[int, ...], tuple[int, ...]], Prefix]:
        """The recent prefix states by (ids, candidates); forgotten when the model or its weights change (an
        optimizer step bumps the version counter of the tensors it updates in place)."""
        weights = next(self.model.parameters())
        owner = (id(self.model), weights._version)
        if self.__dict__.get("_recent_owner") != owner:
            self.__dict__["_recent_owner"], self.__dict__["_recent"] = owner, OrderedDict()
        return self.__dict__["_recent"]

    def _reusable(self, ids: list[int], cands: tuple[int, ...]) -> tuple[Prefix | None, int]:
        """The recent prefix state (same candidates, same model) sharing the most whole blocks with `ids`, and how
        many tokens of it to reuse (0: none)."""
        best, keep = None, 0
        for (seen, seen_cands), prefix in self._recent_prefixes().items():
            if seen_cands != cands:
                continue
            common = 0
            limit = min(len(seen), len(ids))
            while common < limit and seen[common] == ids[common]:
                common += 1
            whole = common // self.prefix_block * self.prefix_block
            if whole > keep:
                best, keep = prefix, whole
        return best, keep

    def _state(self, prefix: Prefix) -> _HFState:
        if not isinstance(prefix.state, _HFState) or prefix.state.model is not self.model:
            raise BackendError(f"this prefix was made by another engine or model ({type(prefix.state).__name__}); "
                               "pass a Prefix from this scorer's prefix_state")
        return prefix.state

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
        """For each branch: [log p(new_ids[j] | ids[:cut] + new_ids[:j]) for j >= score_from]; the cut prefix is never
        recomputed, and branches that share a cut and a head of new tokens run that head once."""
        state = self._state(prefix)
        for br in branches:
            if not 0 <= br.cut <= len(state.ids):
                raise BackendError(f"a branch cut must be within the prefix's {len(state.ids)} tokens, got {br.cut}")
            if br.score_from == 0 and br.new_ids and br.cut < 1:
                raise BackendError("scoring a branch's first token needs cut >= 1: nothing before it predicts it")
        return self._tree_logprobs(state, [(br.cut, br.new_ids, br.score_from) for br in branches])

    def sequence_logprobs(self, sequences: Sequence[tuple[Sequence[int], int]]) -> list[list[float]]:
        """For each (ids, start): [log p(ids[j] | ids[:j]) for j >= max(start, 1)]; the sequences are packed into token
        trees, so a head that several of them share is run once."""
        return self._tree_logprobs(None, [(0, seq, max(int(start), 1)) for seq, start in sequences])

    def _tree_logprobs(self, state: _HFState | None,
                       items: Sequence[tuple[int, Sequence[int], int]]) -> list[list[float]]:
        """For each (cut, new_ids, score_from): [log p(new_ids[j] | state.ids[:cut] + new_ids[:j]) for j >= score_from].

        All items go through a few packed forwards (no padding, shared heads once) and the LM head runs only on the
        rows that predict a scored token, each once.
        """
        from .token_tree import pack_items

        torch = _torch()
        results: list[list[float]] = [[] for _ in items]
        for pack in pack_items([(cut, new) for cut, new, _ in items], self._pack_limit()):
            hidden = self._tree_forward(state, pack)
            if state is not None:
                # Row len(pack) + j of `source` is the prefix's own position j: it predicts a branch's first new token.
                hidden = torch.cat([hidden, state.hidden.to(hidden.dtype)], 0)
            rows: dict[int, int] = {}
            picks: list[tuple[int, int]] = []      # (row of `rows`, token) per scored token, in item order
            for item, path in pack.paths.items():
                cut, new, score_from = items[item]
                for j in range(max(score_from, 0), len(new)):
                    source = path[j - 1] if j else len(pack) + cut - 1
                    picks.append((rows.setdefault(source, len(rows)), int(new[j])))
            if not picks:
                continue
            scores = self._picked_logprobs(hidden, list(rows), picks)
            at = 0
            for item in pack.paths:
                cut, new, score_from = items[item]
                count = max(len(new) - max(score_from, 0), 0)
                results[item] = scores[at:at + count]
                at += count
        return results

    def _tree_forward(self, state: _HFState | None, pack: Any) -> Any:
        """Hidden states [len(pack), width] of a pack's nodes. Each node attends to the first `cut` cached tokens of
        `state` and to its ancestors in the pack, at position cut + depth: it sees exactly its own sequence."""
        torch = _torch()
        dev = self._device()
        n = len(pack)
        # Every node lies on some item's path, and the nodes before it on that path are its ancestors: one block
        # write per item (a walk up the tree would take as many rounds as the deepest node is deep). Longest first,
        # and a path whose last node is already written (a repeated item, a head of a longer one) is skipped, so
        # items that add no nodes add no work.
        seen = torch.zeros((n, n), dtype=torch.bool)
        for path in sorted(pack.paths.values(), key=len, reverse=True):
            if seen[path[-1], path[-1]]:
                continue
            at = torch.tensor(path, dtype=torch.long)
            seen[at.unsqueeze(1), at.unsqueeze(0)] = torch.ones((len(path), len(path)), dtype=torch.bool).tril()
        cached = max(pack.cuts) if state is not None else 0
        past = None
        if cached and state is not None:
            visible = torch.arange(cached).unsqueeze(0) < torch.tensor(pack.cuts).unsqueeze(1)
            seen = torch.cat([visible, seen], 1)
            past = self._new_cache([(k[:, :, :cached], v[:, :, :cached]) for k, v in state.kv])
        ids = torch.tensor([pack.tokens], dtype=torch.long, device=dev)
        pos = torch.tensor([pack.positions], dtype=torch.long, device=dev)
        hidden, _ = self._forward(ids, seen[None, None].to(dev), pos, past)
        return hidden[0]

    def _picked_logprobs(self, hidden: Any, rows: list[int], picks: list[tuple[int, int]]) -> list[float]:
        """log p(token | hidden[rows[r]]) for each (r, token): the LM head and softmax run once per distinct row,
        in slices so that the [rows, vocab] log-probs stay small."""
        torch = _torch()
        index = torch.tensor([r for r, _ in picks], dtype=torch.long)
        tokens = torch.tensor([t for _, t in picks], dtype=torch.long)
        out = torch.empty(len(picks), dtype=torch.float32)
        step = 256
        for lo in range(0, len(rows), step):
            logp = torch.log_softmax(self._head(hidden[torch.tensor(rows[lo:lo + step], device=hidden.device)]), -1)
            mine = (index >= lo) & (index < lo + step)
            out[mine] = logp[(index[mine] - lo).to(logp.device), tokens[mine].to(logp.device)].cpu()
        return out.tolist()

    # --- sampling -----------------------------------------------------------------------
    def sample_branches(self, prefix: Prefix, branches: Sequence[tuple[int, Sequence[int]]], n: int, *,
                        stop: Sequence[str] = ("]",), max_new_tokens: int = 32, temperature: float = 1.0,
                        top_k: int = 0, seed: int = 0,
                        keep_going: Callable[[str], bool] | None = None,
                        grammar: str | Sequence[str] | None = None) -> list[list[tuple[str, bool]]]:
        """For each (cut, first_ids): n continuations of `ids[:cut] + first_ids`, as (text, stopped).

        `text` ends just before the first stop string when `stopped` is True (stop strings are matched on the decoded
        text because `)]`-like merges hide them inside tokens); otherwise it is what max_new_tokens produced.
        temperature 0 means greedy. `keep_going(text)` returning False ends a row early, returned as (text, False): the
        caller can stop a sample that has already turned into something it would discard. With `grammar` each row's
        tokens are masked by its own llguidance matcher, and a row ends, as (all it matched, True), when the
        grammar is complete; stop strings are then not looked for. A sequence of grammars gives each branch its own.
        """
        torch = _torch()
        state = self._state(prefix)
        gen = torch.Generator().manual_seed(seed)
        out: list[list[tuple[str, bool]]] = [[] for _ in branches]
        grammars = branch_grammars(grammar, len(branches))
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
                                                      keep_going, grammars):
                out[b].append((text, stopped))
        return out

    def _sample_rows(self, state: _HFState, rows: list[tuple[int, int, list[int]]], stop: Sequence[str],
                     max_new_tokens: int, temperature: float, top_k: int, gen: Any,
                     keep_going: Callable[[str], bool] | None = None,
                     grammars: Sequence[str | None] = ()) -> list[tuple[int, str, bool]]:
        """Decode `rows` (branch, cut, first ids) together; `grammars[branch]` (when given) masks that branch's rows."""
        torch = _torch()
        matchers = self._row_matchers(rows, grammars)
        cuts = [cut for _, cut, _ in rows]
        firsts = [first for _, _, first in rows]
        hidden, cache, mask, pos = self._branch_batch(state, cuts, firsts)
        last = torch.tensor([len(f) - 1 for f in firsts], device=hidden.device)
        logits = self._head(hidden[torch.arange(len(rows), device=hidden.device), last], exact=False)
        next_pos = pos[torch.arange(len(rows)), last] + 1
        generated: list[list[int]] = [[] for _ in rows]
        done: list[tuple[str, bool] | None] = [None] * len(rows)
        live = list(range(len(rows)))          # row numbers still decoding, in cache order
        eos = self.tokenizer.eos_token_id
        for step in range(max_new_tokens):
            if matchers is not None:
                logits = self._grammar_masked(logits, live, done, generated, matchers)
            if sampling_temperature(temperature) <= 0:   # below GREEDY_BELOW too: logits / 1e-300 overflowed
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
                if matchers is not None:
                    done[r] = self._grammar_step(matchers[r], tok, generated[r], text, step == max_new_tokens - 1,
                                                 keep_going)
                    continue
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
            logits = self._head(hidden[:, -1], exact=False)
        return [(rows[r][0], *(done[r] or ("", False))) for r in range(len(rows))]


    # --- grammar-constrained sampling -----------------------------------------------------
    def _row_matchers(self, rows: list[tuple[int, int, list[int]]], grammars: Sequence[str | None]) -> list[Any] | None:
        """One fresh matcher per row, at the start of its branch's grammar (None when the branches have none).

        Rows are grouped by grammar text, so each distinct grammar is compiled (or found in the prototype cache)
        once, however many rows and branches share it."""
        if all(g is None for g in grammars):
            return None
        wanted: dict[str, list[int]] = {}
        for r, (b, _, _) in enumerate(rows):
            own = grammars[b]
            if own is not None:      # branch_grammars gives every branch a grammar or none
                wanted.setdefault(own, []).append(r)
        matchers: list[Any] = [None] * len(rows)
        masks = self._token_masks()
        for text, members in wanted.items():
            for r, matcher in zip(members, masks.matchers(text, len(members))):
                matchers[r] = matcher
        return matchers

    def _token_masks(self) -> Any:
        """llguidance over this engine's tokenizer, built on first use (~0.3 s for a 49k vocabulary) and kept."""
        masks = getattr(self, "_llg_masks", None)
        if masks is None:
            from .constraint import TokenMasks

            head = self.model.get_output_embeddings()
            width = int(head.weight.shape[0]) if head is not None else int(self.model.config.vocab_size)
            masks = TokenMasks.for_hf(self.tokenizer, width, sorted(self._end_ids()))
            self._llg_masks = masks
        return masks

    def _end_ids(self) -> set[int]:
        """Tokens that end a sequence: the tokenizer's EOS and any the engine adds (a generation config's)."""
        ends = {int(e) for e in getattr(self, "eos_ids", ()) if e is not None}
        if self.tokenizer.eos_token_id is not None:
            ends.add(int(self.tokenizer.eos_token_id))
        return ends

    def _grammar_masked(self, logits: Any, live: list[int], done: list[tuple[str, bool] | None],
                        generated: list[list[int]], matchers: list[Any]) -> Any:
        """`logits` with each unfinished row masked to the tokens its matcher allows (plain torch: no compile step).

        Finished rows riding along in the batch keep their logits. A row whose grammar allows no token at all (a
        tokenizer the grammar cannot be spelled in) ends where it is, unstopped."""
        import numpy as np

        torch = _torch()
        slots = [slot for slot, r in enumerate(live) if done[r] is None]
        if not slots:
            return logits
        allowed = self._token_masks().allowed([matchers[live[s]] for s in slots])[:, :logits.shape[-1]]
        blocked = np.zeros(tuple(logits.shape), dtype=bool)
        blocked[slots] = ~allowed            # negated in numpy: a bool op on the tensor costs more than the fill
        for slot, any_allowed in zip(slots, allowed.any(-1).tolist()):
            if not any_allowed:
                done[live[slot]] = (self.decode_ids(generated[live[slot]]), False)
                blocked[slot] = False
        with torch.inference_mode():         # the logits are an inference tensor: filled in place, not copied
            return logits.masked_fill_(torch.from_numpy(blocked).to(logits.device), float("-inf"))

    def _grammar_step(self, matcher: Any, tok: int, generated: list[int], text: str, last: bool,
                      keep_going: Callable[[str], bool] | None) -> tuple[str, bool] | None:
        """Feed one sampled token to its row's matcher: the row's result once it ends, else None."""
        if tok in self._end_ids():
            return self.decode_ids(generated[:-1]), bool(matcher.is_accepting())
        self._token_masks().consume(matcher, tok)
        if matcher.is_stopped():
            return text, True
        if last or (keep_going is not None and not keep_going(text)):
            return text, False
        return None

class HFScorer(HFScoringMixin):
    """The Scorer protocol on a user-built (model, tokenizer) pair, without the decoding backend."""

    def __init__(self, model: Any, tokenizer: Any, max_batch_tokens: int = 8192) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_tokens = check_batch_tokens(max_batch_tokens)
        if getattr(model, "training", False):
            model.eval()
