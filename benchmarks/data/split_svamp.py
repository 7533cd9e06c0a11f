"""Split SVAMP into held-out word problems and training texts for data-gen, with no shared problem body across."""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent / "real"
#: SVAMP writes about ten variations of each of ~100 seed problems. Problems whose bodies (numbers masked) share
#: this share of their words are one family, transitively; a family is held out or trained on, never split.
SAME_FAMILY = 0.5
#: Families at these positions (mod 10, in order of first appearance) are held out: about 30% of the problems.
HELDOUT_SLOTS = (0, 3, 6)

_WORD = re.compile(r"[a-z]+|\d+(?:\.\d+)?")


def body_words(question: str) -> frozenset[str]:
    """The words of a problem's body (all but its last sentence, the question asked), numbers as one token."""
    sentences = re.split(r"(?<=[.?!])\s+", question.strip())
    body = " ".join(sentences[:-1]) or question
    return frozenset("#" if w[0].isdigit() else w for w in _WORD.findall(body.lower()))


def overlap(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / max(1, len(a | b))


def answer_text(question: str, answer: str) -> str:
    """The training text: the problem as its writer wrote it, then its answer announced ("The answer is 51.")."""
    return f"{question.strip()} The answer is {answer}."


def families(rows: list[dict[str, str]]) -> list[int]:
    """Each problem's family number, numbered in order of first appearance."""
    words = [body_words(r["question"]) for r in rows]
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(rows)):
        for j in range(i):
            if overlap(words[i], words[j]) >= SAME_FAMILY:
                parent[root(i)] = root(j)
    number: dict[int, int] = {}
    return [number.setdefault(root(i), len(number)) for i in range(len(rows))]


def split(rows: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[dict[str, object]], int]:
    """(held-out problems, training texts, number of families) with no family on both sides."""
    family = families(rows)
    heldout: list[dict[str, str]] = []
    train: list[dict[str, object]] = []
    for r, f in zip(rows, family):
        if f % 10 in HELDOUT_SLOTS:
            heldout.append(r)
            continue
        text = answer_text(r["question"], r["answer"])
        train.append({"id": r["id"], "text": text, "answer": r["answer"], "equation": r["equation"],
                      "gold": [{"tool": "Calculator", "start": text.rindex(r["answer"]), "value": r["answer"]}]})
    return heldout, train, len(set(family))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", type=Path, default=HERE / "svamp_math.jsonl")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.input.read_text(encoding="utf-8").splitlines() if line.strip()]
    heldout, train, count = split(rows)
    for name, items in (("svamp_heldout.jsonl", heldout), ("svamp_train_texts.jsonl", train)):
        with (args.out / name).open("w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
    print(json.dumps({"heldout": len(heldout), "train": len(train), "families": count}))


if __name__ == "__main__":
    main()
