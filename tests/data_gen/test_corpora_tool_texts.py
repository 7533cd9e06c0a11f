"""The tool-use corpus script: deterministic, disjoint splits, readable by data-gen and eval, arithmetic that adds up."""
from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from pathlib import Path

import pytest
from toolcall.data_gen.corpora import tool_texts as tt
from toolcall.data_gen.inputs import read_inputs

from toolcall.evaluation import load_items
from toolcall.grading import parse_number

NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def numbers(text: str) -> list[float]:
    return [float(m.group().replace(",", "")) for m in NUMBER.finditer(text)]


def computed_from(values: list[float], target: float) -> bool:
    """Whether `target` is a op b (or a + b + c) of numbers in `values` (percentages as /100)."""
    for a, b in itertools.permutations(values, 2):
        for v in (a + b, a - b, a * b, a / b if b else None, a * b / 100):
            if v is not None and abs(v - target) < 1e-6:
                return True
    return any(abs(a + b + c - target) < 1e-6 for a, b, c in itertools.combinations(values, 3))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    tt.write_corpus(out, n_train=600, n_math=90, n_dates=24, seed=3)
    return out


def test_the_same_seed_writes_the_same_corpus(tmp_path: Path, corpus: Path) -> None:
    tt.write_corpus(tmp_path, n_train=600, n_math=90, n_dates=24, seed=3)
    for name in ("train.jsonl", "test_math.jsonl", "test_dates.jsonl"):
        assert (tmp_path / name).read_bytes() == (corpus / name).read_bytes()
    assert tt.training_texts(50, seed=4) != tt.training_texts(50, seed=3)


def test_data_gen_reads_the_training_texts_and_their_dates(corpus: Path) -> None:
    inputs = read_inputs(corpus / "train.jsonl")
    records = [json.loads(line) for line in (corpus / "train.jsonl").read_text().splitlines()]
    assert len(inputs) == 600 == len({t for t, _ in inputs})           # distinct texts
    kinds = {r["kind"] for r in records}
    assert kinds == {name for name, _, _ in tt.FAMILIES}               # every family is drawn
    dated = [(text, fields) for text, fields in inputs if "date" in fields]
    assert dated and all(r["kind"] == "today" for r in records if "date" in r)
    for text, fields in dated:   # the text writes its own date: its weekday, or its month and day
        day = dt.date.fromisoformat(fields["date"])
        assert f"{day:%A}" in text or f"{day:%B} {day.day}" in text, text


def test_every_arithmetic_text_writes_a_number_computed_from_earlier_ones(corpus: Path) -> None:
    records = [json.loads(line) for line in (corpus / "train.jsonl").read_text().splitlines()]
    for rec in records:
        if rec["kind"] == "today":
            continue
        values = numbers(rec["text"])
        assert any(computed_from(values[:i], v) for i, v in enumerate(values) if i >= 1), rec["text"]


def test_test_items_load_in_eval_and_their_answers_are_right(corpus: Path) -> None:
    items = load_items(corpus / "test_math.jsonl", "math")
    assert len(items) == 90 and len({i.question for i in items}) == 90
    for item in items:
        assert computed_from(numbers(item.question), parse_number(item.answer)), (item.question, item.answer)
    dates = load_items(corpus / "test_dates.jsonl", "dates", today=dt.date(2025, 6, 18))
    assert {d.answer for d in dates} >= {"Wednesday", "June", "2025"}


def test_the_test_split_shares_no_wording_with_the_training_texts(corpus: Path) -> None:
    report = json.loads((corpus / "overlap.json").read_text())
    assert report["math"]["exact_duplicates"] == 0 and report["math"]["max_share"] < 0.2
    assert report["dates"]["max_share"] < 0.2
    train_names = set(tt.TRAIN_NAMES)
    for line in (corpus / "test_math.jsonl").read_text().splitlines():
        assert not train_names & set(re.findall(r"[A-Z][a-z]+", json.loads(line)["question"]))


def test_overlap_finds_a_near_duplicate() -> None:
    train = ["Sofia filled 8 boxes with 29 pencils each, so she packed 232 pencils in all."]
    near = "Sofia filled 9 boxes with 12 pencils each, so how many pencils did she pack?"
    far = "A plane moves at 55 kilometres per hour. How far does it get in 3 hours?"
    report = tt.overlap(train, [near, far])
    assert report["max_share"] > 0.4 and report["worst_item"] == near
    assert tt.overlap(train, [far])["max_share"] == 0.0


def test_the_command_line_writes_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tt.main(["--out", str(tmp_path), "--train", "40", "--test-math", "12", "--test-dates", "5"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["train"] == 40 and (tmp_path / "overlap.json").is_file()
    assert len((tmp_path / "test_dates.jsonl").read_text().splitlines()) == 5


def test_gold_spots_mark_each_computed_number_and_todays_date(corpus: Path) -> None:
    records = [json.loads(line) for line in (corpus / "train.jsonl").read_text().splitlines()]
    assert all(r["gold"] for r in records)                          # every text has a place where a tool helps
    for rec in records:
        text = rec["text"]
        assert not set(text) & {"\x02", "\x03", "\x04", "\x05"}
        for spot in rec["gold"]:
            assert text[spot["start"]:spot["start"] + len(spot["value"])] == spot["value"], (text, spot)
            if spot["tool"] == "Calculator":                          # computed from numbers written before it
                target = float(spot["value"].replace(",", ""))
                assert computed_from(numbers(text[:spot["start"]]), target), (text, spot)
            else:
                assert rec["kind"] == "today" and "date" in rec


def test_the_command_line_refuses_counts_below_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        tt.main(["--out", str(tmp_path), "--train", "-3"])
    assert exc.value.code == 2 and "--train must be at least 1, got -3" in capsys.readouterr().err
    assert not (tmp_path / "train.jsonl").exists()


def test_the_command_line_refuses_a_file_and_a_folder_holding_a_corpus_unless_forced(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    afile = tmp_path / "afile"
    afile.write_text("kept\n")
    for out, message in ((afile, "is a file; give a folder"), (afile / "sub", "is inside")):
        assert tt.main(["--out", str(out), "--train", "3"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error: --out" in err and message in err, err
    assert afile.read_text() == "kept\n"
    out = tmp_path / "c"
    assert tt.main(["--out", str(out), "--train", "20", "--test-math", "2", "--test-dates", "2"]) == 0
    before = (out / "train.jsonl").read_text()
    assert tt.main(["--out", str(out), "--train", "3"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already holds train.jsonl" in err and "pass --force" in err, err
    assert (out / "train.jsonl").read_text() == before
    assert tt.main(["--out", str(out), "--train", "3", "--force"]) == 0
    assert len((out / "train.jsonl").read_text().splitlines()) == 3
