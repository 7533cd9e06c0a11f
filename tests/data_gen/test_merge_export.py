"""Merging kept calls into the text, and the MOSS / HF dataset exports."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_gen.export import read_corpus, to_moss, write_hf_dataset
from data_gen.merge import merge_record

TEXT = "Out of 1400 participants, 400 passed. It was Monday."


def cand(tool: str, token: int, position: int, red: float, kept: bool = True, call: str | None = None) -> dict:
    return {"tool": tool, "args": ["400 / 1400"] if tool == "Calculator" else [], "token": token, "position": position,
            "result": "0.29" if tool == "Calculator" else "Today is Monday.", "loss_minus": 2.0, "loss_plus": 2.0 - red,
            "loss_reduction": red, "kept": kept,
            "text_call": call or ("[Calculator(400 / 1400) -> 0.29]" if tool == "Calculator" else "[Calendar() -> Today is Monday.]")}


def test_merge_inserts_calls_keeping_spaces_and_drops_losers() -> None:
    at_400 = TEXT.index(" 400")
    at_monday = TEXT.index(" Monday")
    rec = {"text": TEXT, "candidates": [
        cand("Calculator", 6, at_400, 0.9),
        cand("Calendar", 6, at_400, 0.4),                   # same position, smaller reduction: loses
        cand("Calendar", 11, at_monday, 1.5),
        cand("Calculator", 2, 6, 3.0, kept=False),          # filtered out
    ]}
    out = merge_record(rec)
    assert out is not None
    assert out["text"] == ("Out of 1400 participants, [Calculator(400 / 1400) -> 0.29] 400 passed. "
                           "It was [Calendar() -> Today is Monday.] Monday.")
    assert out["original"] == TEXT
    assert [c["tool"] for c in out["calls"]] == ["Calculator", "Calendar"]
    assert [c["position"] for c in out["calls"]] == [at_400, at_monday]
    assert set(out["calls"][0]) == {"tool", "args", "result", "position", "loss_minus", "loss_plus", "loss_reduction"}


def test_merge_drops_texts_without_kept_calls() -> None:
    assert merge_record({"text": TEXT, "candidates": [cand("Calendar", 11, 40, 0.2, kept=False)]}) is None
    assert merge_record({"text": TEXT}) is None


def test_moss_mapping() -> None:
    at_400 = TEXT.index(" 400")
    rec = merge_record({"text": TEXT, "candidates": [cand("Calculator", 6, at_400, 0.9)]})
    conv = to_moss(rec, 0, ["Calculator", "Calendar"])
    turn = conv["chat"]["turn_1"]
    assert turn["Human"] == "<|Human|>: Continue the text: Out of 1400 participants,<eoh>\n"
    assert turn["Commands"] == "<|Commands|>: Calculate(\"400 / 1400\")<eoc>\n"
    assert turn["Tool Responses"] == "<|Results|>:\nCalculate(\"400 / 1400\") => '0.29'\n<eor>\n"
    assert turn["MOSS"] == "<|MOSS|>: 400 passed. It was Monday.<eom>\n"
    assert "- Calculator: enabled." in conv["meta_instruction"] and "- Web search: disabled." in conv["meta_instruction"]


def test_hf_dataset_roundtrip(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rec = merge_record({"text": TEXT, "candidates": [cand("Calculator", 6, TEXT.index(" 400"), 0.9)]})
    (tmp_path / "corpus.jsonl").write_text(json.dumps(rec) + "\n")
    records = read_corpus(tmp_path / "corpus.jsonl")
    write_hf_dataset(records, tmp_path / "hf")
    ds = datasets.load_from_disk(str(tmp_path / "hf"))
    assert ds[0]["text"] == rec["text"] and ds[0]["calls"][0]["args"] == ["400 / 1400"]
