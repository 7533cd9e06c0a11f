"""Tests of `toolcall eval` through the CLI entry point, on the fake backend."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolcall.cli import main

MATH_ITEMS = [
    {"question": "A baker fills 7 trays with 24 muffins each. How many muffins does she bake?", "answer": "168"},
    {"question": "Maya had 312 stickers and gave 87 away. How many are left?", "answer": "225"},
]


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_eval_math_on_the_fake_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    items = write_jsonl(tmp_path / "math.jsonl", MATH_ITEMS)
    # The fake hands out one continuation per decode: tools off (item 1, item 2), then tools on, where item 1
    # pauses at "->" for the calculator and resumes.
    script = tmp_path / "script.json"
    script.write_text(json.dumps(["She bakes 170 muffins.", "225 stickers.",
                                  "[Calculator(7 * 24) ->", " 168 muffins.", "She has 225."]))
    out = tmp_path / "per_item.jsonl"
    code = main(["eval", "--task", "math", "--input", str(items), "--backend", "fake", "--model", str(script),
                 "--output", str(out), "--json", "--quiet"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("task math") and any(line.startswith("no_tools") for line in lines)
    summary = json.loads(lines[-1])
    assert summary["no_tools"]["accuracy"] == 0.5 and summary["tools"]["accuracy"] == 1.0
    assert summary["tools"]["call_share"] == 0.5 and summary["tools"]["avg_calls"] == 0.5
    assert summary["no_tools"]["call_share"] == 0.0
    assert summary["tools"]["n"] == 2 and summary["backend"] == "fake" and summary["tools_offered"] == ["Calculator"]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["mode"], r["correct"]) for r in rows] == [("no_tools", False), ("no_tools", True),
                                                          ("tools", True), ("tools", True)]
    assert rows[2]["transcript"] == "[Calculator(7 * 24) -> 168] 168 muffins."
    assert rows[2]["calls"][0]["result"] == "168" and rows[2]["gold"] == "168"


def test_eval_dates_pins_today_for_the_calendar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    items = write_jsonl(tmp_path / "dates.jsonl", [{"question": "Tell me which weekday it is today.", "rule": "weekday"}])
    script = tmp_path / "script.json"
    script.write_text(json.dumps(["It is Monday.", "[Calendar() ->", " It is Wednesday."]))
    out = tmp_path / "items.jsonl"
    code = main(["eval", "--task", "dates", "--input", str(items), "--backend", "fake", "--model", str(script),
                 "--today", "2026-11-25", "--output", str(out), "--json", "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["today"] == "2026-11-25"
    assert (summary["no_tools"]["accuracy"], summary["tools"]["accuracy"]) == (0.0, 1.0)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[1]["gold"] == "Wednesday"
    assert rows[1]["calls"][0]["result"] == "Today is Wednesday, November 25, 2026."


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--today", "25/11/2026"], "--today: '25/11/2026' is not a date in the form YYYY-MM-DD"),
        (["--today", "20261125"], "--today: '20261125' is not a date in the form YYYY-MM-DD"),
        (["--limit", "0"], "limit (--limit) must be >= 1, got 0"),
        (["--few-shot", "-1"], "few_shot (--few-shot) must be >= 0"),
        (["--max-calls", "-2"], "max_calls (--max-calls) must be >= 0"),
        (["--input", "/nonexistent/items.jsonl"], "does not exist"),
        (["--tools", "Calculater"], "Did you mean"),
    ],
)
def test_eval_runtime_errors_exit_1(extra: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--task", "dates", "--backend", "fake", *extra]) == 1
    assert message in capsys.readouterr().err


def test_eval_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--task", "trivia"])
    assert exc.value.code == 2
