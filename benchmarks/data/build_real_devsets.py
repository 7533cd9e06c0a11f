"""Build the real, human-written dev and test sets of benchmarks/data/real/ from local clones of their public repositories.

    python benchmarks/data/build_real_devsets.py --mirrors DIR [--out benchmarks/data/real]

DIR holds bare git clones (read with `git show HEAD:<path>`): openai+grade-school-math/repo (GSM8K, MIT),
VinACE+san_mrc/repo (the first 5 articles of the SQuAD 2.0 dev set,
CC BY-SA 4.0) and arkilpatel+SVAMP/repo (SVAMP, MIT). The selection is
deterministic (a fixed seed over each file's own order), so the same clones give the same files byte for byte;
benchmarks/data/real/README.md says what each file holds and how its gold spots are defined.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "real"
SEED = 20
GSM8K = ("openai+grade-school-math", "grade_school_math/data/train.jsonl")
# The official SQuAD repository's snapshot here lacks its data files; this copy holds the first 5 articles of the
# official SQuAD 2.0 dev set (Normans, Computational complexity theory, Southern California, Sky (United Kingdom),
# Victoria (Australia)), under the name dev-v1.1.json.
SQUAD = ("VinACE+san_mrc", "dev-v1.1.json")
SVAMP = ("arkilpatel+SVAMP", "SVAMP.json")
ANNOTATION = re.compile(r"<<([^<>]*)>>")
# A number as written after a GSM8K annotation: 22,500 / 0.2 / 72 (the annotation's result, perhaps with commas).
WRITTEN = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d*\.?\d+")
OPERATOR = re.compile(r"[-+*/x^%]")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")


def git_show(mirrors: Path, repo: str, path: str) -> tuple[str, str]:
    """(file text at HEAD, HEAD's commit id) of the bare clone mirrors/repo/repo."""
    where = mirrors / repo / "repo"
    text = subprocess.run(["git", "-C", str(where), "show", f"HEAD:{path}"], check=True, capture_output=True,
                          text=True).stdout
    commit = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    return text, commit


def same_value(written: str, result: str) -> bool:
    try:
        return abs(float(written.replace(",", "")) - float(result)) <= 1e-9 * max(1.0, abs(float(result)))
    except ValueError:
        return False


def strip_annotations(solution: str) -> tuple[str, list[dict[str, Any]], int]:
    """(the solution without its <<a*b=c>> annotations, a gold spot per annotation whose result c is written right
    after it, how many annotations had no such number). A spot's start is the offset of that number in the stripped
    text; a "$" between annotation and number stays where the writer put it ("$<<12/60=0.2>>0.2" -> "$0.2")."""
    out: list[str] = []
    spots: list[dict[str, Any]] = []
    dropped, last = 0, 0
    for m in ANNOTATION.finditer(solution):
        out.append(solution[last:m.start()])
        last = m.end()
        expression, _, result = m.group(1).rpartition("=")
        number = WRITTEN.match(solution, m.end())
        if number is None or not same_value(number.group(), result):
            dropped += 1
            continue
        if not OPERATOR.search(expression.lstrip("-")):   # "<<35=35>>" restates a number: nothing is computed
            continue
        spots.append({"tool": "Calculator", "start": len("".join(out)), "value": number.group(),
                      "expression": expression.strip()})
    out.append(solution[last:])
    return "".join(out), spots, dropped


def gsm8k_record(line: int, row: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """One GSM8K training item as a dev text: the question, then its worked solution (its lines joined by spaces,
    the final "#### answer" line left out: it restates the last result without working)."""
    body = "\n".join(ln for ln in row["answer"].splitlines() if not ln.startswith("####"))
    solution, spots, dropped = strip_annotations(body)
    head = row["question"].strip() + " "
    text = head + solution.replace("\n", " ").strip()
    for spot in spots:
        spot["start"] += len(head)
        assert text[spot["start"]:].startswith(spot["value"]), (line, spot)
    return {"id": f"gsm8k-train-{line}", "kind": "gsm8k_solution", "text": text, "gold": spots}, dropped


def build_gsm8k(mirrors: Path, n: int, pool: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                                list[dict[str, Any]], dict[str, Any]]:
    """n training items drawn with the seed (those with at least one gold spot), split into a tuning and a held-out
    half by their place in the draw, and the next `pool` items of the same draw (texts to annotate and train on)."""
    text, commit = git_show(mirrors, *GSM8K)
    rows = [json.loads(ln) for ln in text.splitlines() if ln.strip()]
    order = list(range(len(rows)))
    random.Random(SEED).shuffle(order)
    chosen: list[dict[str, Any]] = []
    dropped = 0
    for i in order:
        rec, lost = gsm8k_record(i + 1, rows[i])
        if rec["gold"]:
            chosen.append(rec)
            dropped += lost
        if len(chosen) == n + pool:
            break
    half = n // 2
    info = {"source": "github.com/openai/grade-school-math", "commit": commit, "file": GSM8K[1],
            "licence": "MIT", "items_in_file": len(rows), "chosen": n, "pool": pool,
            "spots": sum(len(r["gold"]) for r in chosen[:n]), "annotations_without_written_result": dropped}
    return chosen[:half], chosen[half:n], chosen[n:], info


def sentence_spans(context: str) -> list[tuple[int, int]]:
    starts = [0] + [m.end() for m in SENTENCE_END.finditer(context)]
    ends = starts[1:] + [len(context)]
    return [(a, len(context[a:b].rstrip()) + a) for a, b in zip(starts, ends)]


def build_squad(mirrors: Path, n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """n sentences of SQuAD 2.0 dev paragraphs (one per paragraph at most, drawn with the seed), each with the
    questions whose every crowd answer lies inside it; and the passages of those paragraphs' articles, the corpus the
    QA and WikiSearch tools search."""
    text, commit = git_show(mirrors, *SQUAD)
    data = json.loads(text)
    candidates: list[tuple[str, int, dict[str, Any]]] = []
    for article in data["data"]:
        title = article["title"].replace("_", " ")
        for p_index, paragraph in enumerate(article["paragraphs"]):
            context = paragraph["context"]
            for s_start, s_end in sentence_spans(context):
                sentence = context[s_start:s_end]
                if not 60 <= len(sentence) <= 300:
                    continue
                spots = []
                for qa in paragraph["qas"]:
                    answers = qa["answers"]
                    inside = [a for a in answers
                              if s_start <= a["answer_start"] and a["answer_start"] + len(a["text"]) <= s_end
                              and context[a["answer_start"]:].startswith(a["text"])]
                    # Only questions whose crowd answers all point into this sentence: its answer is written here.
                    if len(inside) != len(answers) or not inside:
                        continue
                    first = min(a["answer_start"] for a in inside)
                    if first == s_start:     # a call before the sentence's first word has nothing to read
                        continue
                    spots.append({"tool": "QA", "start": first - s_start, "question": qa["question"].strip(),
                                  "value": next(a["text"] for a in inside if a["answer_start"] == first),
                                  "starts": sorted({a["answer_start"] - s_start for a in inside}),
                                  "answers": sorted({a["text"] for a in inside}), "squad_id": qa["id"]})
                if spots:
                    spots.sort(key=lambda s: s["start"])
                    candidates.append((title, p_index, {"text": sentence, "gold": spots}))
    rng = random.Random(SEED)
    rng.shuffle(candidates)
    chosen: list[tuple[str, int, dict[str, Any]]] = []
    used: set[tuple[str, int]] = set()
    for title, p_index, rec in candidates:
        if (title, p_index) in used:
            continue
        used.add((title, p_index))
        chosen.append((title, p_index, {"id": f"squad-dev-{title.replace(' ', '_')}-{p_index}", "kind": "squad_sentence",
                                        "title": title, **rec}))
        if len(chosen) == n:
            break
    titles = sorted({t for t, _, _ in chosen})
    corpus = [{"title": a["title"].replace("_", " "), "text": p["context"]}
              for a in data["data"] if a["title"].replace("_", " ") in titles for p in a["paragraphs"]]
    info = {"source": "SQuAD 2.0 dev (rajpurkar.github.io/SQuAD-explorer), as copied in github.com/VinACE/san_mrc",
            "commit": commit, "file": SQUAD[1], "licence": "CC BY-SA 4.0", "chosen": len(chosen),
            "spots": sum(len(r["gold"]) for _, _, r in chosen), "articles": len(titles), "corpus_passages": len(corpus)}
    return [r for _, _, r in chosen], corpus, info


def number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}".rstrip("0")


def build_svamp(mirrors: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every SVAMP problem as {"question", "answer"} (toolcall eval --task math), body and question joined as one
    text, in the file's order; SVAMP writes "$ 3" with a space, kept as written."""
    text, commit = git_show(mirrors, *SVAMP)
    rows = json.loads(text)
    items = [{"id": r["ID"], "question": f"{r['Body'].strip().rstrip('.')}. {r['Question'].strip()}"
              if not r["Body"].strip().endswith(("?", "!")) else f"{r['Body'].strip()} {r['Question'].strip()}",
              "answer": number_text(float(r["Answer"])), "equation": r["Equation"].strip(), "type": r["Type"]}
             for r in rows]
    return items, {"source": "github.com/arkilpatel/SVAMP", "commit": commit, "file": SVAMP[1], "licence": "MIT",
                   "items": len(items)}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirrors", type=Path, required=True, help="directory of the bare clones (owner+name/repo)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--gsm8k", type=int, default=200, help="GSM8K training items (half tuning, half held out)")
    parser.add_argument("--pool", type=int, default=400, help="more GSM8K training items, to annotate and train on")
    parser.add_argument("--squad", type=int, default=150, help="SQuAD dev sentences")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    tune, held, pool, gsm_info = build_gsm8k(args.mirrors, args.gsm8k, args.pool)
    write_jsonl(args.out / "gsm8k_train_tune.jsonl", tune)
    write_jsonl(args.out / "gsm8k_train_heldout.jsonl", held)
    write_jsonl(args.out / "gsm8k_train_pool.jsonl", pool)
    squad, corpus, squad_info = build_squad(args.mirrors, args.squad)
    write_jsonl(args.out / "squad_dev_sentences.jsonl", squad)
    write_jsonl(args.out / "squad_dev_corpus.jsonl", corpus)
    svamp, svamp_info = build_svamp(args.mirrors)
    write_jsonl(args.out / "svamp_math.jsonl", svamp)
    summary = {"gsm8k": {**gsm_info, "tune": len(tune), "heldout": len(held), "pool": len(pool)}, "squad": squad_info, "svamp": svamp_info}
    (args.out / "sources.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
