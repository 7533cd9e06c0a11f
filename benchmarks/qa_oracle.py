"""How far the paper's loss filter can take QA against crowd-chosen spots: an oracle QA call at every place.

At every place of each SQuAD sentence where a name, number or date starts (or, with --places all, every word but the
first), one QA call is put whose result is the right answer by construction: the name, number, date or short phrase
that the text writes next. The question is the same neutral one everywhere, so only the place and the answer
differ. The pipeline's own filter (`toolcall.data_gen.filter.score_candidates`, the default placement and weights)
scores every call with the --scorer model, and each place is labelled by whether a crowd worker's answer starts
there (benchmarks/data/real/README.md, "Gold spots"). Since every answer is right, precision here is what a caller
that always asks the right question and gets the right answer would reach if it called wherever the filter keeps
a call: the ceiling of the filter's placement, whatever writes the questions. All measured in this run:
- `base_rate`: the share of the places that are crowd spots (a caller at every place);
- `sweep`: precision and recall over the crowd spots for each tau_f;
- `top1`: precision of the one place per sentence with the largest loss reduction;
- `loss_reduction`: its quantiles at crowd spots and elsewhere.
One JSON line.

    python benchmarks/qa_oracle.py --data benchmarks/data/real/squad_dev_sentences.jsonl
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from datagen_quality import hardware
from toolcall.data_gen.config import FilterConfig
from toolcall.data_gen.filter import score_candidates
from toolcall.data_gen.records import Candidate, TextRecord
from toolcall.data_gen.tokens import tokenize
from toolcall.tools import _span

QUESTION = "What comes next?"
TAU_F = (-0.5, 0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
# Where an answer a crowd worker could have given starts: a capital, a digit, a currency sign or a quotation.
_ANSWER_START = re.compile(r"[\"'“(]?[A-Z0-9$£€]")
# The answer written next at such a place: a capitalised run (with its glue words), or a number with its unit.
_NAME_RUN = re.compile(r"[\"'“(]?[A-Z0-9$£€][\w,.'’\-%]*(?:\s+(?:of|the|de|and|von|van)?\s*[A-Z0-9][\w.'’\-%]*)*")
_NUMBER_RUN = re.compile(r"[$£€]?\d[\d,.]*%?(?:\s+(?:million|billion|thousand|hundred|percent|per cent))?")
_OPENING = "\"'“‘(["
_WORDS = re.compile(r"[^\s,;:.!?]+(?:\s+[^\s,;:.!?]+){0,2}")


def places(text: str, every_word: bool) -> list[tuple[int, str]]:
    """(offset, the answer written there) for each place a call is put: not the first word (a call there has
    nothing to read), nor a word inside the answer of the place before ("Valley" of "Buckland Valley")."""
    out: list[tuple[int, str]] = []
    covered = 0   # the end of the last name, number or date run
    for word in re.finditer(r"\S+", text):
        at = word.start()
        if at == 0 or at < covered:
            continue
        rest = text[at:]
        if _ANSWER_START.match(rest):
            digit = rest.lstrip("$£€")[:1].isdigit()
            found = _span._DATE.match(rest) or (_NUMBER_RUN.match(rest) if digit else _NAME_RUN.match(rest))
        elif every_word:
            found = _WORDS.match(rest)
        else:
            continue
        answer = (found.group().rstrip(",.;:'\"”)").lstrip(_OPENING) if found else "") or rest.split()[0]
        if _ANSWER_START.match(rest):
            covered = at + len(answer)
        out.append((at, answer))
    return out


def crowd_starts(rec: dict[str, Any]) -> set[int]:
    return {start for spot in rec["gold"] if spot["tool"] == "QA" for start in spot.get("starts", [spot["start"]])}


def at_spot(text: str, at: int, starts: set[int]) -> int | None:
    """The crowd start this place is at, or None: white space between allowed, as the benchmarks' matching rule, and
    the opening bracket or quotation mark the place starts with (the crowd's `LA Galaxy` of `(LA Galaxy`)."""
    for start in starts:
        if at <= start and not text[at:start].strip().lstrip(_OPENING):
            return start
    return None


def score_sentence(scorer: Any, rec: dict[str, Any], every_word: bool, config: FilterConfig) -> list[dict[str, Any]]:
    text = rec["text"]
    tt = tokenize(scorer, text)
    cands = []
    for at, answer in places(text, every_word):
        token = next((i for i, s in enumerate(tt.starts) if s >= at - 1 and text[s:at].strip() == ""), None)
        if token is None or token == 0:
            continue
        call = f'[QA("{QUESTION}")]'
        cands.append(Candidate("QA", (QUESTION,), call, token, at, result=answer))
    scored = score_candidates(TextRecord(text, ("QA",), candidates=tuple(cands)), scorer, {"qa": config})
    starts = crowd_starts(rec)
    return [{"id": rec["id"], "position": c.position, "answer": c.result, "reduction": c.loss_reduction,
             "spot": at_spot(text, c.position, starts)} for c in scored.candidates]


def quantiles(values: list[float]) -> dict[str, float] | None:
    if len(values) < 2:
        return None
    q = statistics.quantiles(values, n=4)
    return {"q25": round(q[0], 3), "median": round(q[1], 3), "q75": round(q[2], 3), "n": len(values)}


def analyse(rows: list[dict[str, Any]], records: list[dict[str, Any]]) -> dict[str, Any]:
    spots = sum(len({s for s in crowd_starts(r)}) for r in records)
    # Recall counts crowd questions met (a question with two starts is met once), as the benchmarks do.
    questions = {(r["id"], i): set(s.get("starts", [s["start"]])) for r in records
                 for i, s in enumerate(q for q in r["gold"] if q["tool"] == "QA")}

    def figures(kept: list[dict[str, Any]]) -> dict[str, Any]:
        right = [k for k in kept if k["spot"] is not None]
        met = {key for key, starts in questions.items() for k in right if k["id"] == key[0] and k["spot"] in starts}
        return {"precision": round(len(right) / len(kept), 3) if kept else None,
                "recall": round(len(met) / len(questions), 3), "kept": len(kept), "right": len(right)}

    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["id"] not in best or row["reduction"] > best[row["id"]]["reduction"]:
            best[row["id"]] = row
    return {
        "places": len(rows), "crowd_starts": spots, "questions": len(questions),
        "base_rate": figures(rows),
        "sweep": {str(t): figures([r for r in rows if r["reduction"] >= t]) for t in TAU_F},
        "top1": figures(list(best.values())),
        "loss_reduction": {"at_crowd_spots": quantiles([r["reduction"] for r in rows if r["spot"] is not None]),
                           "elsewhere": quantiles([r["reduction"] for r in rows if r["spot"] is None])},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="benchmarks/data/real/squad_dev_sentences.jsonl")
    ap.add_argument("--limit", type=int, default=0, help="the first N sentences (0: all)")
    ap.add_argument("--places", choices=("answers", "all"), default="answers",
                    help="answers: where a name, number, date or quotation starts; all: every word but the first")
    ap.add_argument("--scorer", default=None, help="the judging model (default: the embedded one), e.g. "
                                                   "toolformer-smollm2")
    ap.add_argument("--rows", type=Path, help="write every scored place here (JSONL)")
    args = ap.parse_args(argv)
    from toolcall.backends.hf_loading import load_model_and_tokenizer
    from toolcall.backends.hf_scoring import HFScorer

    records = [json.loads(line) for line in Path(args.data).read_text(encoding="utf-8").split("\n") if line.strip()]
    records = records[:args.limit] if args.limit else records
    model, tokenizer = load_model_and_tokenizer(args.scorer)
    scorer = HFScorer(model, tokenizer)
    config = FilterConfig(exact_losses=True)
    began = time.perf_counter()
    rows = [row for rec in records for row in score_sentence(scorer, rec, args.places == "all", config)]
    if args.rows:
        args.rows.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    report = {"benchmark": "qa_oracle", "data": args.data, "sentences": len(records), "places_rule": args.places,
              "scorer": args.scorer or "embedded", "question": QUESTION, **analyse(rows, records),
              "seconds": round(time.perf_counter() - began, 1), "hardware": hardware()}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
