"""The committed real dev and test sets (benchmarks/data/real/) hold what their README says, and their builder strips
GSM8K's calculator annotations into gold spots."""
from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from script_module import load_script

from toolcall.evaluation import load_items

REAL = Path(__file__).parents[2] / "benchmarks" / "data" / "real"
EXPRESSION = re.compile(r"^[\d.,\s+\-*/()x%^]+$")


def script(name: str) -> ModuleType:
    """One of the scripts beside the data sets, loaded as a module."""
    return load_script(REAL.parent / f"{name}.py")


def builder() -> ModuleType:
    return script("build_real_devsets")


def rows(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (REAL / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def test_annotations_become_spots_at_the_number_written_after_them() -> None:
    text, spots, dropped = builder().strip_annotations(
        "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nSo 4500*5 = <<4500*5=22500>>22,500 and <<35=35>>35 <<2*3=6>>six")
    assert text == "Weng earns 12/60 = $0.2 per minute.\nSo 4500*5 = 22,500 and 35 six"
    assert [(s["value"], s["expression"], text[s["start"]:s["start"] + len(s["value"])]) for s in spots] == [
        ("0.2", "12/60", "0.2"), ("22,500", "4500*5", "22,500")]
    assert dropped == 1          # "<<2*3=6>>six": the result is not written as a number there


@pytest.mark.parametrize("name", ["gsm8k_train_tune.jsonl", "gsm8k_train_heldout.jsonl"])
def test_gsm8k_spots_sit_on_the_computed_numbers(name: str) -> None:
    records = rows(name)
    assert len(records) == 100
    for rec in records:
        assert "<<" not in rec["text"] and "####" not in rec["text"] and rec["gold"]
        for spot in rec["gold"]:
            assert spot["tool"] == "Calculator" and rec["text"][spot["start"]:].startswith(spot["value"])
            assert EXPRESSION.match(spot["expression"]), spot
    tune, held = rows("gsm8k_train_tune.jsonl"), rows("gsm8k_train_heldout.jsonl")
    assert not {r["id"] for r in tune} & {r["id"] for r in held}     # the halves share no text


def test_squad_spots_start_crowd_answers_and_the_corpus_holds_their_paragraphs() -> None:
    records = rows("squad_dev_sentences.jsonl")
    corpus = " ".join(p["text"] for p in rows("squad_dev_corpus.jsonl"))
    assert len(records) == 150
    for rec in records:
        assert rec["text"] in corpus
        for spot in rec["gold"]:
            assert spot["tool"] == "QA" and spot["question"].strip() and spot["start"] == min(spot["starts"]) > 0
            assert any(rec["text"][start:].startswith(answer) for start in spot["starts"] for answer in spot["answers"])


def test_svamp_is_read_by_the_math_evaluation() -> None:
    items = load_items(REAL / "svamp_math.jsonl", "math")
    assert len(items) == 1000 and all(item.answer for item in items)
    assert items[1].question.startswith("Dan had $ 3 left") and items[1].answer == "1"


def splitter() -> ModuleType:
    return script("split_svamp")


def test_the_svamp_split_is_what_its_script_writes_and_no_family_crosses_it() -> None:
    split = splitter()
    heldout, train, families = split.split(rows("svamp_math.jsonl"))
    assert (heldout, train) == (rows("svamp_heldout.jsonl"), rows("svamp_train_texts.jsonl"))
    assert families > 90 and len(heldout) + len(train) == 1000 and 250 < len(heldout) < 350
    assert not {r["id"] for r in heldout} & {r["id"] for r in train}
    held_bodies = [split.body_words(r["question"]) for r in heldout]
    for rec in train:
        question = rec["text"][:rec["text"].rindex(" The answer is ")]
        assert max(split.overlap(split.body_words(question), b) for b in held_bodies) < split.SAME_FAMILY
        (spot,) = rec["gold"]
        assert rec["text"][spot["start"]:] == f"{rec['answer']}."


def test_a_family_is_held_out_whole_even_when_its_members_are_far_apart() -> None:
    split = splitter()
    base = {"answer": "3", "equation": "( 5.0 - 2.0 )"}
    problems = [{"id": f"p{i}", "question": q, **base} for i, q in enumerate([
        "Dan had 5 apples in a red basket on the table. He ate 2. How many are left?",     # family 0: held out
        "Mia walks 5 miles to the old mill by the river each day. How far in 2 days?",
        "Dan had 9 apples in a red basket on the table. He ate 4. How many are left?"])]  # family 0 again
    heldout, train, families = split.split(problems)
    assert families == 2 and [r["id"] for r in heldout] == ["p0", "p2"] and [r["id"] for r in train] == ["p1"]


def changelogs() -> ModuleType:
    return script("build_changelog_devset")


def test_changelog_entries_are_split_at_their_signatures_and_dated_by_them() -> None:
    log = ("hello (2.12-1) unstable; urgency=medium\n\n  * New upstream release.\n\n"
           " -- Santiago Vila <sanvila@debian.org>  Tue, 14 Mar 2023 10:00:00 +0100\n\n"
           "hello (2.11-1) unstable; urgency=low\n\n  * Binary-only non-maintainer upload for amd64; no source changes.\n\n"
           " -- amd64 Build Daemon <buildd@debian.org>  Mon, 13 Mar 2023 10:00:00 +0000\n\n"
           "hello (2.10-9) unstable; urgency=low\n\n  * Wrong weekday in the signature, as a few old entries have.\n\n"
           " -- Santiago Vila <sanvila@debian.org>  Thu, 10 Mar 2023 10:00:00 +0100\n")
    build = changelogs()
    assert len(build.entries(log)) == 3
    first = build.entries(log)[0]
    day, start, written = build.signed_date(first)
    assert (str(day), written, first[start:start + 16]) == ("2023-03-14", "Tue, 14 Mar 2023", "Tue, 14 Mar 2023")
    assert build.signed_date(build.entries(log)[2]) is None     # 10 March 2023 was a Friday
    # only entries a person wrote, of a length the model reads whole
    assert [entry for entry, *_ in build.candidates(log)] == [first]


@pytest.mark.parametrize("name", ["debian_changelog_tune.jsonl", "debian_changelog_heldout.jsonl"])
def test_changelog_spots_sit_on_the_signature_date_which_is_the_texts_date(name: str) -> None:
    import datetime as dt
    import email.utils

    records = rows(name)
    assert len(records) == 100
    for rec in records:
        (spot,) = rec["gold"]
        assert spot["tool"] == "Calendar" and rec["text"][spot["start"]:].startswith(spot["value"])
        written = email.utils.parsedate_to_datetime(rec["text"][spot["start"]:].split("\n")[0])
        assert written.date() == dt.date.fromisoformat(rec["date"])
        assert f"{written:%a}" == spot["value"][:3]
    both = rows("debian_changelog_tune.jsonl") + rows("debian_changelog_heldout.jsonl")
    assert len({r["text"].split(" ", 1)[0] for r in both}) == 200     # one entry per source package
