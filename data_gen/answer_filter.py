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
from toolcall.errors import ConfigError, ToolcallError
from toolcall.jsonl import read_jsonl
from toolcall.terminal import printable

from .checkpoint import json_line


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


def record_calls(record: Mapping[str, Any], where: str) -> list[Mapping[str, Any]]:
    """The record's `calls` (an empty list for a conversation without calls), each an object with a string `name`, an
    object of `arguments` and a `result`; ConfigError at `where` otherwise (a corpus without calls, such as a prose
    corpus, would otherwise be kept whole as conversations with nothing to filter)."""
    calls = record.get("calls")
    if not isinstance(calls, list):
        found = "no field 'calls'" if "calls" not in record else f"{type(calls).__name__} {calls!r:.40}"
        raise ConfigError(f"{where}: field 'calls' must be a list of calls (an empty list when there are none), "
                          f"found {found}")
    for n, call in enumerate(calls):
        if not isinstance(call, dict):
            raise ConfigError(f"{where}: calls[{n}] must be an object with name, arguments and result, found "
                              f"{type(call).__name__}")
        if not isinstance(call.get("name"), str):
            raise ConfigError(f"{where}: calls[{n}] needs a string field 'name'")
        if not isinstance(call.get("arguments"), dict):
            raise ConfigError(f"{where}: calls[{n}] needs a field 'arguments' that is an object of the arguments")
        if "result" not in call:
            raise ConfigError(f"{where}: calls[{n}] needs a field 'result' (a string, or any JSON value)")
    return calls


def split_reply(record: Mapping[str, Any], dialect: Dialect, where: str | None = None) -> _Parts:
    """The conversation's prompt, calls, results (and the same with empty results) and answer, as the dialect writes
    them; ConfigError at `where` (FILE:LINE; the record's id when not given) when a field is missing or of the wrong
    type, or the text is not the calls and results its record names followed by an answer."""
    where = where if where is not None else f"record {record.get('id')!r}"
    calls_read = record_calls(record, where)
    text, at = record.get("text"), record.get("prompt_chars")
    if not isinstance(text, str):
        raise ConfigError(f"{where}: field 'text' must be the conversation as a string, found "
                          f"{'nothing' if 'text' not in record else type(text).__name__}")
    # bool is an int in Python, but `true` is no character count
    if not isinstance(at, int) or isinstance(at, bool) or not 0 <= at <= len(text):
        found = "nothing" if "prompt_chars" not in record else f"{at!r:.40}"
        raise ConfigError(f"{where}: field 'prompt_chars' must be a whole number from 0 to the text's length "
                          f"({len(text)}), where the reply starts; found {found}")
    calls = [ToolCall(c["name"], KeywordArgs(c["arguments"])) for c in calls_read]
    results = [c["result"] if isinstance(c["result"], str) else json.dumps(c["result"], ensure_ascii=False,
                                                                          sort_keys=True) for c in calls_read]
    prompt, reply = text[:at], text[at:]
    written = dialect.write_calls(calls)
    pending = dialect.pending(prompt + written)
    if pending is None or len(pending.calls) != len(calls):
        raise ConfigError(f"{where}: the {dialect.name} dialect does not read back the record's calls")
    closing = dialect.close(pending, results)
    if not reply.startswith(written + closing):
        raise ConfigError(f"{where}: the reply is not the record's calls and results followed by an answer")
    return _Parts(prompt, written, closing, dialect.close(pending, [""] * len(calls)), reply[len(written + closing):])


def split_replies(records: Sequence[Mapping[str, Any]], dialect: Dialect,
                  wheres: Sequence[str] | None = None) -> list[_Parts | None]:
    """Each record's parts (None for a record without calls, which is not scored), in the records' order; `wheres`
    names each record in errors (FILE:LINE), by default its position and id."""
    if wheres is not None and len(wheres) != len(records):
        raise ConfigError(f"wheres names {len(wheres)} records, but there are {len(records)}")
    out: list[_Parts | None] = []
    for n, record in enumerate(records):
        where = wheres[n] if wheres is not None else f"record {n + 1} (id {record.get('id')!r})"
        out.append(split_reply(record, dialect, where) if record_calls(record, where) else None)
    return out


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
    """L+, both L- and the reduction for every record with calls, in the records' order (records without calls are
    not scored); `chunk` records go to the scorer at once, so an engine that packs or batches sequences fills its
    forwards."""
    return [s for s in score_parts(records, split_replies(records, dialect), scorer, chunk) if s is not None]


def score_parts(records: Sequence[Mapping[str, Any]], parts: Sequence[_Parts | None], scorer: Scorer,
                chunk: int = 16) -> list[AnswerScore | None]:
    """Each record's score from its parts (split_replies), None for a record without calls: the i-th score is the
    i-th record's, whatever the records' ids (a corpus may have none, or two corpora the same ones)."""
    if chunk < 1:
        raise ConfigError(f"chunk must be at least 1, got {chunk}")
    scored = [(i, p) for i, p in enumerate(parts) if p is not None]
    scores: list[AnswerScore | None] = [None] * len(parts)
    for at in range(0, len(scored), chunk):
        part = scored[at:at + chunk]
        nll = _mean_nll(scorer, [pair for _, p in part for pair in
                                 ((p.prompt + p.calls + p.results, p.answer), (p.prompt, p.answer),
                                  (p.prompt + p.calls + p.empty, p.answer))])
        for k, (i, _) in enumerate(part):
            full, none, empty = nll[3 * k:3 * k + 3]
            scores[i] = AnswerScore(str(records[i].get("id")), full, none, empty, min(none, empty) - full)
    return scores


def _check_out(out: Path, corpus: Path) -> Path:
    """The scores file written beside `out`, once both can be written: checked before a model loads or a record is
    scored, so a wrong --out does not cost a whole run."""
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a file name such as {out / 'kept.jsonl'}")
    scores = out.with_suffix(".scores.json")
    if scores.is_dir():
        raise ConfigError(f"--out {out}: the scores file written beside it, {scores}, is a folder; give another "
                          "file name")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: {out.parent} is not an existing folder; make it first or give a file in an "
                          "existing folder")
    if out.exists() and corpus.exists() and out.samefile(corpus):
        raise ConfigError(f"--out {out} is the corpus itself; give another file, so the corpus is kept")
    return scores


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolcall.data_gen.answer_filter", description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("corpus", help="a chat corpus (JSONL records with text, prompt_chars and calls)")
    parser.add_argument("--out", required=True, help="where the kept records go (JSONL); a .scores.json is written beside")
    parser.add_argument("--model", default=None, help="the scoring model (default: the embedded one)")
    parser.add_argument("--backend", default="transformers", help="the scoring engine (transformers, vllm, fake)")
    parser.add_argument("--dialect", default="hermes")
    parser.add_argument("--tau", type=float, default=0.1, help="keep calls whose results lower the answer's loss by "
                                                                "at least this much (nats per token)")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except ToolcallError as err:
        # One line, as argparse writes a usage error; the message may quote the corpus's text.
        print(f"{parser.prog}: error: {printable(str(err))}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from toolcall.backends import get_scorer

    out = Path(args.out)
    scores_path = _check_out(out, Path(args.corpus))
    dialect = get_dialect(args.dialect)
    read = list(read_jsonl(Path(args.corpus), "corpus"))
    records = [r for _, r in read]
    # Every record is read and split before the model loads, so bad input fails in seconds.
    parts = split_replies(records, dialect, [where for where, _ in read])
    scored = score_parts(records, parts, get_scorer(args.backend, args.model))
    scores = [s for s in scored if s is not None]
    kept = [r for r, s in zip(records, scored) if s is None or s.kept(args.tau)]
    reductions = [s.reduction for s in scores]
    summary = {"records": len(records), "scored": len(scores), "kept": len(kept), "tau": args.tau,
               "kept_with_calls": sum(s.kept(args.tau) for s in scores),
               "reduction_median": round(statistics.median(reductions), 4) if reductions else None,
               "reduction_quartiles": [round(q, 4) for q in statistics.quantiles(reductions, n=4)]
               if len(reductions) > 1 else None}
    try:
        out.write_text("".join(json_line(r) + "\n" for r in kept), encoding="utf-8")
        scores_path.write_text(json.dumps({"summary": summary, "scores": [s.__dict__ for s in scores]}, indent=1),
                               encoding="utf-8")
    except OSError as err:  # what the checks before scoring cannot see: no permission, a full disk
        raise ConfigError(f"--out {out}: could not write {err.filename or out} ({err.strerror or err})") from err
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
