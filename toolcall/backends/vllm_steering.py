"""Per-request steering inside vLLM v1: a logits processor that forces given tokens, bans tokens, and fires the
Toolformer top-k trigger, driven by `SamplingParams.extra_args[EXTRA_KEY]`.

`TokenRule` is the rule on one request's logits, plain torch and no vLLM, so it is tested against the transformers
backend's `_pick` without vLLM installed. `logits_processor_class()` wraps it in vLLM's `AdapterLogitsProcessor`
(imported only then); the vLLM backend passes that class to `LLM(logits_processors=[...])`, so the engine-core
process builds one per engine and a rule per request that carries the extra argument.

The extra argument, a dict of plain lists (it crosses the process boundary as msgpack):
- "force": token ids the request must produce first, one per step (scoring a continuation through decode steps,
  whose raw log-probs vLLM returns while prefix caching serves the shared head);
- "ban": ids given -inf at every free step (`Steering.disable`: every token that begins the call opener; constrained
  steering: tokens that glue the opener to more text);
- "begin", "top_k", "triggers", "rest": the trigger (Toolformer §4.2): when one of `begin` is among the top_k next
  tokens but the top token is not one of them, the best-ranked of them is forced, then `rest[str(id)]` (the
  opener's remaining tokens), at most `triggers` times in the request;
- "min_open", "begin", "ban_open": the call threshold: at a free step where the `begin` tokens' probability (softmax
  of the raw logits) is below `min_open`, the `ban_open` tokens get -inf and the trigger does not fire;
- "opened", "closed", "marks", "opened_in", "closed_in", "open", "tail": whether a call is open, where neither the
  threshold nor the trigger applies (a call's arguments are not a place where a call opens): runs of several tokens
  that end by writing the call opener or a text ending a call, the tokens that hold a whole one (with what the last
  says: true opens), runs whose last token holds a marker's end and more text, whether the request starts inside a
  call (its reply so far ends in one), and the reply's last tokens before the request (a marker begun there);
- "decide" [yes, no], with "min_open" and "begin": a one-token request that says whether the call threshold lets
  a call open at its first step, by producing `yes` or `no` (a decode held to a grammar cannot read it: vLLM masks
  the logits before its processors see them).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

EXTRA_KEY = "toolcall"


class TokenRule:
    """The steering of one request: called with the tokens it has produced so far and its next-token logits."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.force = [int(t) for t in spec.get("force", ())]
        self.ban = sorted({int(t) for t in spec.get("ban", ())})
        self.begin = frozenset(int(t) for t in spec.get("begin", ()))
        self.top_k = int(spec.get("top_k", 0))
        self.triggers = int(spec.get("triggers", 0))
        self.rest = {int(k): [int(t) for t in v] for k, v in dict(spec.get("rest", {})).items()}
        self.min_open = float(spec.get("min_open", 0.0))
        self.ban_open = sorted({int(t) for t in spec.get("ban_open", ())})
        self.decide = [int(t) for t in spec.get("decide", ())]
        self.reader = OpenCallReader(spec)
        self.queued: list[int] = []    # the opener's remaining tokens after a trigger fired
        self.fired = 0

    @property
    def opened(self) -> bool:
        """Whether a call is open (one the reply so far left open, or the output opened), as last read."""
        return self.reader.open

    def __call__(self, output_ids: Sequence[int], logits: Any) -> Any:
        step = len(output_ids)
        if self.decide:
            yes, no = self.decide
            return _only(logits, yes if _probability(logits, self.begin) >= self.min_open else no)
        if step < len(self.force):
            return _only(logits, self.force[step])
        if self.queued:
            return _only(logits, self.queued.pop(0))
        if self.reader.feed(output_ids):
            if self.ban:
                logits[self.ban] = float("-inf")
            return logits
        unlikely = self.min_open > 0 and _probability(logits, self.begin) < self.min_open
        if unlikely:
            logits[self.ban_open] = float("-inf")   # below the call threshold: no call opens here, not even by trigger
        if self.ban:
            logits[self.ban] = float("-inf")
        if not unlikely and self.triggers > self.fired and self.top_k > 0 and self.begin:
            import torch

            top = torch.topk(logits, min(self.top_k, logits.shape[-1])).indices.tolist()
            ranked = [t for t in top if t in self.begin]
            # Force the call open when its token is in the top-k but greedy would not pick it (Toolformer §4.2).
            if ranked and top[0] not in self.begin:
                self.fired += 1
                self.queued = list(self.rest.get(ranked[0], ()))
                return _only(logits, ranked[0])
        return logits


Runs = dict[int, list[list[int]]]


def _by_last(runs: Any) -> Runs:
    """Token runs indexed by their last token: at each step only those ending in the token just produced are read."""
    out: Runs = {}
    for run in runs:
        if run:
            out.setdefault(int(run[-1]), []).append([int(t) for t in run])
    return out


def _ends_with_run(ids: Sequence[int], runs: Runs, end: int | None = None) -> bool:
    """Whether `ids[:end]` ends with one of `runs` (compared in place: the output is not copied at each step)."""
    n = len(ids) if end is None else end
    if n == 0:
        return False
    return any(len(run) <= n and all(ids[n - len(run) + j] == t for j, t in enumerate(run))
               for run in runs.get(ids[n - 1], ()))


class OpenCallReader:
    """Whether a call is open, read token by token from a rule's "opened", "closed", "marks" and "open", over the
    reply's last tokens before the request ("tail": a marker begun there may end in the request) and its output."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.opened_runs = _by_last(spec.get("opened", ()))
        self.closed_runs = _by_last(spec.get("closed", ()))
        self.opened_in = _by_last(spec.get("opened_in", ()))   # runs whose last token goes on past the marker
        self.closed_in = _by_last(spec.get("closed_in", ()))
        self.marks = {int(k): bool(v) for k, v in dict(spec.get("marks", {})).items()}
        self.open = bool(spec.get("open", False))
        runs = [r for by in (self.opened_runs, self.closed_runs, self.opened_in, self.closed_in)
                for rs in by.values() for r in rs]
        self.keep = max(map(len, runs), default=1)
        self.recent = [int(t) for t in spec.get("tail", ())][-self.keep:]
        self.seen = 0

    def feed_one(self, token: int) -> bool:
        self.recent.append(int(token))
        del self.recent[:-self.keep]
        # A marker that ends with the token ends last; then one the token holds whole (its last says); then one
        # whose end the token holds before more text.
        self.open = _call_open(self.recent, self.opened_runs, self.closed_runs, self.open, marks=self.marks,
                               inner=(self.opened_in, self.closed_in))
        return self.open

    def feed(self, output_ids: Sequence[int]) -> bool:
        """The state after `output_ids`, the request's whole output so far (read from where the last call left)."""
        for token in output_ids[self.seen:]:
            self.feed_one(token)
        self.seen = len(output_ids)
        return self.open


def _call_open(ids: Sequence[int], opened: Runs, closed: Runs, was: bool, end: int | None = None,
               marks: dict[int, bool] | None = None, inner: tuple[Runs, Runs] | None = None) -> bool:
    """Whether a call is open after `ids[:end]`, given whether it was one token before: a run of several tokens
    ending there that writes an opener opens one (the opener's where a closing run ends there too), one that writes
    a close text ends it; else a token holding a whole marker says what its last one does (`marks`); else a run
    whose last token holds a marker's end before more text (`inner`: opener runs, closing runs)."""
    if _ends_with_run(ids, opened, end):
        return True
    if _ends_with_run(ids, closed, end):
        return False
    n = len(ids) if end is None else end
    if marks and n and ids[n - 1] in marks:
        return marks[ids[n - 1]]
    if inner is not None:
        if _ends_with_run(ids, inner[0], end):
            return True
        if _ends_with_run(ids, inner[1], end):
            return False
    return was


def _probability(logits: Any, tokens: frozenset[int]) -> float:
    """The probability the raw `logits` give to any of `tokens` (softmax at temperature 1)."""
    import torch

    return float(torch.softmax(logits.float(), -1)[sorted(tokens)].sum()) if tokens else 0.0


def _only(logits: Any, token: int) -> Any:
    """`logits` with every token but `token` at -inf (in place: vLLM hands over a row of its batch)."""
    keep = logits[token].clone()
    logits.fill_(float("-inf"))
    logits[token] = keep
    return logits


def fired_triggers(begin: frozenset[int], ban: Sequence[int], top_k: int, output_ids: Sequence[int],
                   raw_top: Sequence[Sequence[int]], rule: dict[str, Any] | None = None) -> int:
    """How many times the trigger fired in a finished request, replayed from the raw top tokens vLLM returned per
    step (`logprobs=N`; raw, before any processor): at a step that produced a `begin` token outside an open call
    (read from `rule`'s keys as the rule reads them: `OpenCallReader`), the rule fired iff the best token left after
    the ban was not one of `begin` and the produced one was among the top_k left."""
    banned = set(ban)
    fired = 0
    reader = OpenCallReader(rule or {})
    for tok, top in zip(output_ids, raw_top):
        inside = reader.open
        reader.feed_one(tok)
        if inside or tok not in begin:
            continue
        left = [t for t in top if t not in banned][:top_k]
        if left and left[0] not in begin and tok in left:
            fired += 1
    return fired


def logits_processor_class() -> type:
    """The vLLM logits processor that applies a `TokenRule` to every request carrying extra_args[EXTRA_KEY]."""
    global _CLASS
    if _CLASS is None:
        from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

        class ToolcallLogitsProcessor(AdapterLogitsProcessor):
            """toolcall's per-request rules (forced tokens, bans, the top-k trigger)."""

            def is_argmax_invariant(self) -> bool:
                return False   # it forces and bans tokens: greedy picks change

            def new_req_logits_processor(self, params: Any) -> Any:
                spec = (params.extra_args or {}).get(EXTRA_KEY)
                return TokenRule(spec) if spec else None

        ToolcallLogitsProcessor.__module__ = __name__
        ToolcallLogitsProcessor.__qualname__ = "ToolcallLogitsProcessor"
        _CLASS = ToolcallLogitsProcessor
    return _CLASS


_CLASS: type | None = None


def __getattr__(name: str) -> Any:
    # vLLM may name the class by its import path ("toolcall.backends.vllm_steering:ToolcallLogitsProcessor") in its
    # engine-core process: resolve it there on first use.
    if name == "ToolcallLogitsProcessor":
        return logits_processor_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
