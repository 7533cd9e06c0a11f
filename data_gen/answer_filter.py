"""The loss filter for chat-format tool use: keep a conversation's calls only if their results help the model write the
assistant's answer (Toolformer's L- - L+ >= tau, with the answer as the text the results must help predict).

For a conversation whose reply is `calls, results, answer`: L+ is the mean negative log-likelihood of the answer's
tokens after the calls and their results; L- is the smaller of the same loss with no call at all (the answer right
after the prompt) and with the calls but empty results. The paper weights only the five tokens after a call; an answer
states what the results said anywhere in its sentence ("It is 21 degrees in Oslo"), so every answer token counts
equally here. A conversation without calls (a request no offered tool fits) is kept as it is.

    python -m toolcall.data_gen.answer_filter CORPUS.jsonl --out KEPT.jsonl [--model M] [--tau 0.1]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolcall.backends.base import Scorer
from toolcall.calls import KeywordArgs, ToolCall
from toolcall.dialects import get_dialect
from toolcall.dialects.base import Dialect
from toolcall.errors import ConfigError
from toolcall.jsonl import read_jsonl


@dataclass(frozen=True)
class AnswerScore:
    """How much one conversation's tool results help its answer."""

    id: str
    with_results: float      # L+: mean NLL of the answer tokens after the calls and their results
    without_call: float      # the answer right after the prompt
    empty_results: float     # the calls, then empty results
    reduction: float         # min(without_call, empty_results) - with_results

    def kept(self, tau: float) -> bool:
        return self.reduction >= tau


@dataclass(frozen=True)
class _Parts:
    prompt: str
    calls: str
    results: str
    empty: str
    answer: str


def split_reply(record: Mapping[str, Any], dialect: Dialect) -> _Parts:
    """The conversation's prompt, calls, results (and the same with empty results) and answer, as the dialect writes
    them; ConfigError when the text is not the calls and results its record names followed by an answer."""
    text, at = str(record["text"]), int(record["prompt_chars"])
    calls = [ToolCall(str(c["name"]), KeywordArgs(c["arguments"])) for c in record["calls"]]
    results = [c["result"] if isinstance(c["result"], str) else json.dumps(c["result"], ensure_ascii=False,
                                                                          sort_keys=True) for c in record["calls"]]
    prompt, reply = text[:at], text[at:]
    written = dialect.write_calls(calls)
    pending = dialect.pending(prompt + written)
    if pending is None or len(pending.calls) != len(calls):
        raise ConfigError(f"{record.get('id')}: the {dialect.name} dialect does not read back the record's calls")
    closing = dialect.close(pending, results)
    if not reply.startswith(written + closing):
        raise ConfigError(f"{record.get('id')}: the reply is not the record's calls and results followed by an answer")
    return _Parts(prompt, written, closing, dialect.close(pending, [""] * len(calls)), reply[len(written + closing):])


def _mean_nll(scorer: Scorer, pairs: Sequence[tuple[str, str]]) -> list[float]:
    """For each (context, answer): the mean NLL of the answer's tokens after the context (tokenized apart, so the
    answer's tokens are the same whatever context they follow)."""
    start = scorer.start_token_id()
    sequences = []
    for context, answer in pairs:
        head = [start, *scorer.encode(context)]
        sequences.append((head + scorer.encode(answer), len(head)))
    out = []
    for lps in scorer.sequence_logprobs(sequences):
        out.append(-sum(lps) / max(1, len(lps)))
    return out


def score_answers(records: Sequence[Mapping[str, Any]], scorer: Scorer, dialect: Dialect,
                  chunk: int = 16) -> list[AnswerScore]:
    """L+, both L- and the reduction for every record with calls (records without calls are not scored); `chunk`
    records go to the scorer at once, so an engine that packs or batches sequences fills its forwards."""
    if chunk < 1:
        raise ConfigError(f"chunk must be at least 1, got {chunk}")
    scored = [(str(r.get("id")), split_reply(r, dialect)) for r in records if r.get("calls")]
    scores = []
    for at in range(0, len(scored), chunk):
        part = scored[at:at + chunk]
        nll = _mean_nll(scorer, [pair for _, p in part for pair in
                                 ((p.prompt + p.calls + p.results, p.answer), (p.prompt, p.answer),
                                  (p.prompt + p.calls + p.empty, p.answer))])
        for i, (id_, _) in enumerate(part):
            full, none, empty = nll[3 * i:3 * i + 3]
            scores.append(AnswerScore(id_, full, none, empty, min(none, empty) - full))
    return scores


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolcall.data_gen.answer_filter", description=__doc__.splitlines()[0])
    parser.add_argument("corpus", help="a chat corpus (JSONL records with text, prompt_chars and calls)")
    parser.add_argument("--out", required=True, help="where the kept records go (JSONL); a .scores.json is written beside")
    parser.add_argument("--model", default=None, help="the scoring model (default: the embedded one)")
    parser.add_argument("--backend", default="transformers", help="the scoring engine (transformers, vllm, fake)")
    parser.add_argument("--dialect", default="hermes")
    parser.add_argument("--tau", type=float, default=0.1, help="keep calls whose results lower the answer's loss by "
                                                                "at least this much (nats per token)")
    args = parser.parse_args(argv)
    from toolcall.backends import get_scorer

    records = [r for _, r in read_jsonl(Path(args.corpus), "corpus")]
    scorer = get_scorer(args.backend, args.model)
    scores = score_answers(records, scorer, get_dialect(args.dialect))
    by_id = {s.id: s for s in scores}
    kept = [r for r in records if not r.get("calls") or by_id[str(r.get("id"))].kept(args.tau)]
    out = Path(args.out)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8")
    reductions = [s.reduction for s in scores]
    summary = {"records": len(records), "scored": len(scores), "kept": len(kept), "tau": args.tau,
               "kept_with_calls": sum(s.kept(args.tau) for s in scores),
               "reduction_median": round(statistics.median(reductions), 4) if reductions else None,
               "reduction_quartiles": [round(q, 4) for q in statistics.quantiles(reductions, n=4)]
               if len(reductions) > 1 else None}
    out.with_suffix(".scores.json").write_text(json.dumps({"summary": summary, "scores": [s.__dict__ for s in scores]},
                                                          indent=1), encoding="utf-8")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
