"""Tests of toolcall.grading and toolcall.evaluation: scoring rules, date answers, no-leak, fake-backend runs."""
from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest

from toolcall.errors import ConfigError
from toolcall.evaluation import (
    EvalItem,
    ResultsFile,
    check_few_shot,
    check_no_leak,
    date_answer,
    eval_prompt,
    evaluate,
    format_table,
    load_items,
    sample_path,
    worked_examples,
)
from toolcall.grading import (
    exact_match,
    first_number,
    grade_dates,
    grade_math,
    normalize_answer,
    numbers_match,
    parse_number,
    words,
    words_match,
)

TODAY = dt.date(2026, 11, 25)  # a Wednesday


# --- scoring --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("The answer is 1,234 apples and 5 pears.", 1234.0),
        ("-8 degrees at midnight", -8.0),
        ("It was −8 degrees", -8.0),
        ("so 5-3 is 2", 5.0),
        ("about 7/24 of the slices", 7 / 24),
        ("Each pays 34.5 dollars.", 34.5),
        ("It costs $60.", 60.0),
        ("on 2026-12-02", 2026.0),
        ("a total of 12,5 is not a thousands group", 12.0),
        ("1/0 is undefined, so 5", 5.0),            # "1/0" was read as 1
        # Past 4,300 digits a ValueError, past a float's range an OverflowError, ended the whole eval.
        pytest.param("1/" + "7" * 5000 + " or 5", 5.0, id="5000-digit denominator"),
        pytest.param("9" * 400 + "/3 or 2", 2.0, id="400-digit numerator"),
        ("no numbers here", None),
        ("", None),
    ],
)
def test_first_number(text: str, value: float | None) -> None:
    got = first_number(text)
    assert got == pytest.approx(value) if value is not None else got is None


@pytest.mark.parametrize(
    ("text", "value"),
    [("1,625", 1625.0), ("-8", -8.0), ("7/24", 7 / 24), ("$60", 60.0), ("34.5.", 34.5), ("3 apples", None), ("x", None)],
)
def test_parse_number_accepts_one_number_only(text: str, value: float | None) -> None:
    got = parse_number(text)
    assert got == pytest.approx(value) if value is not None else got is None


def test_numbers_match_tolerance_and_two_decimal_rounding() -> None:
    assert numbers_match(34.5, 34.5)
    assert numbers_match(0.1 + 0.2, 0.3)
    assert numbers_match(0.29, 7 / 24)          # the calculator rounds to 2 decimals
    assert not numbers_match(0.3, 7 / 24)
    assert not numbers_match(8.01, 8.0)          # an integer gold is not rounded away
    assert not numbers_match(0.0, 0.004)         # rounded to 0, nothing of the gold is left: "0" was right
    assert numbers_match(0.004, 0.004) and numbers_match(1.0, 1.004)
    assert not numbers_match(None, 8.0)


def test_math_scores_first_number_and_exact_answer() -> None:
    assert grade_math("The answer is 1,625 books.", "1,625") == (True, False)
    assert grade_math("1625", "1,625") == (True, True)
    assert grade_math("Answer: 34.5.", "34.5") == (True, True)
    assert grade_math("She has 12 left, no wait 225.", "225") == (False, False)
    assert grade_math("-8", "-8") == (True, True)
    assert grade_math("7/24\nmore text", "7/24") == (True, True)


def test_exact_match_normalises() -> None:
    assert normalize_answer("  The answer is $1,625. ") == "1625"
    assert normalize_answer("3–5") == normalize_answer("3−5") == "3-5"  # en dash and minus, as the number reader
    assert exact_match("\n\nThursday.\nsomething else", "Thursday")
    assert not exact_match("It is Thursday.", "Thursday")


def test_dates_score_by_the_first_five_words() -> None:
    assert words_match("It is Thursday today.", "Thursday")
    assert words_match("The date will be December 2, 2026.", "December 2, 2026")
    assert not words_match("Well, I really think that it is Thursday.", "Thursday")
    assert not words_match("It is December 3, 2026.", "December 2, 2026")
    assert grade_dates("There are 30 days left.", "30") == (True, False)
    assert grade_dates("Wednesday", "Wednesday") == (True, True)


# --- date rules -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("record", "answer"),
    [
        ({"rule": "weekday", "days": 0}, "Wednesday"),
        ({"rule": "weekday", "days": 1}, "Thursday"),
        ({"rule": "weekday", "days": -1}, "Tuesday"),
        ({"rule": "year", "years": 3}, "2029"),
        ({"rule": "year", "years": -12}, "2014"),
        ({"rule": "month", "months": 2}, "January"),
        ({"rule": "date", "days": 7}, "December 2, 2026"),
        ({"rule": "date", "days": -30}, "October 26, 2026"),
        ({"rule": "days_until", "month": 12, "day": 25}, "30"),
        ({"rule": "days_until", "month": 1, "day": 1}, "37"),
        ({"rule": "days_until", "month": 10, "day": 31}, "340"),
        ({"rule": "days_in_month"}, "30"),
        ({"rule": "leap_year"}, "no"),
        ({"rule": "days_passed"}, "328"),
        ({"rule": "weekday_of_next", "month": 1, "day": 1}, "Friday"),
    ],
)
def test_date_rules(record: dict, answer: str) -> None:
    assert date_answer(record, TODAY) == answer


def test_date_rules_edge_days() -> None:
    assert date_answer({"rule": "days_until", "month": 12, "day": 25}, dt.date(2026, 12, 25)) == "0"
    assert date_answer({"rule": "weekday_of_next", "month": 1, "day": 1}, dt.date(2027, 1, 1)) == "Saturday"  # 2028-01-01
    assert date_answer({"rule": "days_until", "month": 2, "day": 29}, dt.date(2026, 3, 1)) == str((dt.date(2028, 2, 29) - dt.date(2026, 3, 1)).days)
    assert date_answer({"rule": "leap_year"}, dt.date(2028, 5, 1)) == "yes"
    with pytest.raises(ConfigError, match='unknown date rule "fortnight"'):
        date_answer({"rule": "fortnight"}, TODAY)
    with pytest.raises(ConfigError, match="date rule 'days_until' needs the field 'day', a whole number from 1 to 31"):
        date_answer({"rule": "days_until", "month": 12}, TODAY)


def test_29_february_is_found_across_a_century_that_skips_its_leap_year() -> None:
    # 2100 is no leap year: from 2097-03-01 the next 29 February is in 2104, past the three years once searched.
    assert date_answer({"rule": "days_until", "month": 2, "day": 29}, dt.date(2097, 3, 1)) == \
        str((dt.date(2104, 2, 29) - dt.date(2097, 3, 1)).days)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        # Each raised OverflowError (a traceback) or was read quietly as another number.
        ({"rule": "weekday", "days": 1e300}, "field 'days' must be a whole number from -3,652,058 to 3,652,058, "
                                             "got 1e\\+300"),
        ({"rule": "weekday", "days": float("inf")}, "field 'days' must be a whole number .*, got Infinity"),
        ({"rule": "date", "days": 99999999999}, "field 'days' must be a whole number .*, got 99999999999"),
        ({"rule": "weekday", "days": 1.7}, "got 1.7"),
        ({"rule": "weekday", "days": True}, "got true"),
        ({"rule": "weekday", "days": "3"}, 'got "3"'),
        ({"rule": "year", "years": 1e23}, "field 'years' must be a whole number from -9,999 to 9,999, got 1e\\+23"),
        ({"rule": "month", "months": 10**6}, "field 'months' must be a whole number"),
        ({"rule": "days_until", "month": 13, "day": 1}, "field 'month' must be a whole number from 1 to 12, got 13"),
        ({"rule": "weekday_of_next", "month": 4, "day": 31}, "month 4 has no day 31"),
        ({"rule": "x" * 5000}, 'unknown date rule "x{56}\\.\\.\\.; valid rules'),
    ],
)
def test_bad_date_rule_fields_are_errors_at_the_line_with_the_value_shortened(record: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^items.jsonl:3: .*{message}") as err:
        date_answer(record, TODAY, "items.jsonl:3")
    assert len(str(err.value)) < 300


def test_a_whole_float_is_a_count() -> None:
    assert date_answer({"rule": "weekday", "days": 1.0}, TODAY) == "Thursday"


@pytest.mark.parametrize(
    ("record", "today"),
    [
        ({"rule": "weekday", "days": 1}, dt.date.max),
        ({"rule": "date", "days": -1}, dt.date.min),
        ({"rule": "year", "years": 1}, dt.date.max),
        ({"rule": "month", "months": -1}, dt.date.min),
        ({"rule": "days_until", "month": 1, "day": 1}, dt.date.max),
        ({"rule": "weekday_of_next", "month": 2, "day": 29}, dt.date(9997, 1, 1)),
    ],
)
def test_an_answer_outside_the_calendar_is_an_error_naming_the_item(record: dict, today: dt.date) -> None:
    with pytest.raises(ConfigError, match=r"^d.jsonl:7: date rule .*outside the calendar \(0001-01-01 to 9999-12-31\)"):
        date_answer(record, today, "d.jsonl:7")


def test_the_shipped_dates_fail_at_the_end_of_the_calendar_naming_the_item() -> None:
    with pytest.raises(ConfigError, match=r"dates_sample.jsonl:\d+: date rule 'weekday': \+1 days from 9999-12-31"):
        load_items(sample_path("dates"), "dates", dt.date.max)


# --- items and the shipped samples -------------------------------------------------------------------------

def test_shipped_samples_load_and_are_answerable() -> None:
    math_items = load_items(sample_path("math"), "math")
    assert len(math_items) >= 30
    assert all(parse_number(it.answer) is not None for it in math_items)
    assert len({it.question for it in math_items}) == len(math_items)
    date_items = load_items(sample_path("dates"), "dates", TODAY)
    assert len(date_items) >= 20
    assert date_items[0] == EvalItem("Tell me which weekday it is today.", "Wednesday")
    assert len(load_items(sample_path("math"), "math", limit=5)) == 5


def test_load_items_reports_bad_lines(tmp_path: Path) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text('{"question": "ok?", "answer": "1"}\n{"question": "no answer"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.jsonl:2: .*'answer'"):
        load_items(f, "math")
    f.write_text('{"question": "What year is it?", "rule": "year"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="--task dates"):
        load_items(f, "math")
    with pytest.raises(ConfigError, match="unknown eval task"):
        load_items(f, "trivia")


def test_a_directory_as_input_is_named_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"eval input {re.escape(str(tmp_path))} is a directory, not a file"):
        load_items(tmp_path, "math")


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        # Each became a gold answer no reply can match ("None", "False", "nan", ...): every item scored wrong.
        ("null", "'answer' must be text or a number, got null"),
        ("false", "'answer' must be text or a number, got false"),
        ("[1, 2]", "'answer' must be text or a number, got \\[1, 2\\]"),
        ('{"a": 1}', "'answer' must be text or a number"),
        ("NaN", "'answer' must be a finite number, got NaN"),
        ("-Infinity", "'answer' must be a finite number, got -Infinity"),
        ('"banana"', "a math 'answer' must be one finite number, such as .*; got \"banana\""),
        ('"1e5"', "a math 'answer' must be one finite number"),        # the grader reads it as 1 and 5
        ('"3 apples"', "a math 'answer' must be one finite number"),
        ('"' + "9" * 400 + '"', "a math 'answer' must be one finite number"),  # the grader reads it as inf
        ('"  "', "each line needs an 'answer'"),
    ],
)
def test_a_math_answer_must_be_a_number_the_grader_reads(tmp_path: Path, answer: str, message: str) -> None:
    f = tmp_path / "m.jsonl"
    f.write_text('{"question": "Fine?", "answer": "1"}\n{"question": "How many?", "answer": ' + answer + "}\n")
    with pytest.raises(ConfigError, match=f"m.jsonl:2: {message}"):
        load_items(f, "math")


def test_a_gsm8k_line_is_read_as_its_final_number(tmp_path: Path) -> None:
    # GSM8K's own files give a worked solution ending "#### 72": refused as "one finite number" before.
    f = tmp_path / "gsm8k.jsonl"
    solution = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips.\n#### 72"
    lines = [{"question": "How many clips?", "answer": solution}, {"question": "How much?", "answer": "Total.\n#### 1,250"}]
    f.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert [item.answer for item in load_items(f, "math")] == ["72", "1,250"]
    f.write_text(json.dumps({"question": "How many?", "answer": "Work.\n#### many"}) + "\n")
    with pytest.raises(ConfigError, match="one finite number"):
        load_items(f, "math")


@pytest.mark.parametrize(
    ("answer", "gold"),
    [('"1,200"', "1,200"), ('"$5"', "$5"), ('"7/24"', "7/24"), ('"-8"', "-8"), ('"34.5."', "34.5."), ("168", "168"),
     ("168.0", "168"), ("2.5", "2.5"), ("1e20", "100000000000000000000"), ("1e-7", "0.0000001")],
)
def test_math_answers_the_grader_reads_are_kept(tmp_path: Path, answer: str, gold: str) -> None:
    f = tmp_path / "m.jsonl"
    f.write_text('{"question": "How many?", "answer": ' + answer + "}\n")
    item = load_items(f, "math")[0]
    assert item.answer == gold and parse_number(item.answer) is not None


def test_a_dates_answer_may_be_text_or_a_number_but_not_null(tmp_path: Path) -> None:
    f = tmp_path / "d.jsonl"
    f.write_text('{"question": "Which day?", "answer": "Wednesday"}\n{"question": "How many days?", "answer": 30}\n')
    assert [it.answer for it in load_items(f, "dates", TODAY)] == ["Wednesday", "30"]
    f.write_text('{"question": "Which day?", "answer": null}\n')
    with pytest.raises(ConfigError, match="d.jsonl:1: 'answer' must be text or a number, got null"):
        load_items(f, "dates", TODAY)


@pytest.mark.parametrize("path", [sample_path("math"), Path("benchmarks/data/real/svamp_heldout.jsonl"),
                                  Path("benchmarks/data/real/svamp_math.jsonl")])
def test_every_shipped_math_answer_is_accepted(path: Path) -> None:
    repo_file = Path(__file__).resolve().parents[1] / path if not path.is_absolute() else path
    if not repo_file.is_file():
        pytest.skip(f"{path} is not in this checkout")
    assert len(load_items(repo_file, "math")) >= 30


def test_few_shot_above_the_worked_examples_is_refused() -> None:
    from toolcall.dialects import get_dialect
    from toolcall.registry import default_registry

    toolformer, calculator = get_dialect("toolformer"), default_registry(["Calculator"])
    available = worked_examples(toolformer, calculator, limit=1000)
    assert available >= 3
    check_few_shot(available, toolformer, "toolformer", calculator)
    check_few_shot(0, get_dialect("hermes"), "hermes", calculator)
    with pytest.raises(ConfigError, match=f"--few-shot 1000: the toolformer prompt for Calculator holds {available} "
                                          f"worked examples; give at most {available}"):
        check_few_shot(1000, toolformer, "toolformer", calculator)
    with pytest.raises(ConfigError, match="the hermes prompt for Calculator holds no worked examples"):
        check_few_shot(1, get_dialect("hermes"), "hermes", calculator)


# --- prompts: no evaluated item in the demonstrations ---------------------------------------------------------

def test_check_no_leak() -> None:
    prompt = "Q: What is 2 + 2?\nA: 4\nQ: How many legs has a cat?\nA:"
    check_no_leak(prompt, "How many legs has a cat?", ["How many legs has a cat?", "What is 3 + 3?"])
    with pytest.raises(ConfigError, match="what is  2"):
        check_no_leak(prompt, "How many legs has a cat?", ["How many legs has a cat?", "what is  2 + 2?"])
    # Whole words only: a short question inside a longer one, or inside a word, is no demonstration.
    demos = "Q: What is 25 + 1?\nA: 26\nQ: How many legs has a cat?\nA:"
    check_no_leak(demos, "How many legs has a cat?", ["How many legs has a cat?", "What is 2", "hat", "A: 2"])
    with pytest.raises(ConfigError, match="'what is 25'"):
        check_no_leak(demos, "How many legs has a cat?", ["How many legs has a cat?", "what is 25"])


@pytest.mark.parametrize(("task", "tool"), [("math", "Calculator"), ("dates", "Calendar")])
@pytest.mark.parametrize("dialect_name", ["toolformer", "moss"])
def test_shipped_samples_never_appear_in_the_prompts(task: str, tool: str, dialect_name: str) -> None:
    from toolcall.backends.fake import FakeBackend
    from toolcall.dialects import get_dialect
    from toolcall.registry import default_registry

    items = load_items(sample_path(task), task, TODAY)
    questions = [it.question for it in items]
    dialect, registry, backend = get_dialect(dialect_name), default_registry([tool]), FakeBackend()
    for it in items:
        prompt = eval_prompt(it.question, dialect, registry, backend)
        assert prompt.count(it.question) == 1
        check_no_leak(prompt, it.question, questions)


def test_evaluation_refuses_items_that_are_demonstrations(tmp_path: Path) -> None:
    from toolcall.backends.fake import FakeBackend
    from toolcall.dialects import get_dialect
    from toolcall.loop import LoopConfig
    from toolcall.registry import default_registry

    registry = default_registry(["Calculator"])
    demo = get_dialect("toolformer").messages("x", registry)[1]["content"]  # the first demonstration's question
    items = [EvalItem("What is 6 times 7?", "42"), EvalItem(demo, "360")]
    with pytest.raises(ConfigError, match="must not appear in the few-shot examples"):
        evaluate(items, "math", FakeBackend(script=["42"]), get_dialect("toolformer"), registry, LoopConfig())


def test_few_shot_k_keeps_the_first_k_demonstrations() -> None:
    from toolcall.backends.fake import FakeBackend
    from toolcall.dialects import get_dialect
    from toolcall.registry import default_registry

    registry, dialect, backend = default_registry(["Calculator"]), get_dialect("toolformer"), FakeBackend()
    demos = [m["content"] for m in dialect.messages("q", registry)[1:-1] if m["role"] == "user"]
    assert len(demos) >= 3
    two = eval_prompt("What is 6 times 7?", dialect, registry, backend, 2)
    assert demos[0] in two and demos[1] in two and demos[2] not in two
    none = eval_prompt("What is 6 times 7?", dialect, registry, backend, 0)
    assert not any(d in none for d in demos) and "Calculator" in none
    assert all(d in eval_prompt("What is 6 times 7?", dialect, registry, backend) for d in demos)


# --- runs on the fake backend ------------------------------------------------------------------------------

def _reply_part(text: str) -> str:
    """What the fake model has written in its current (last) assistant turn."""
    return text.rsplit("assistant:", 1)[-1]


MATH = [EvalItem("A baker fills 7 trays with 24 muffins each. How many muffins does she bake?", "168"),
        EvalItem("Maya had 312 stickers and gave 87 away. How many are left?", "225"),
        EvalItem("A rope 9.6 metres long is cut into 4 equal pieces. How long is each?", "2.4")]


def math_script(text: str) -> str:
    """A model that guesses without tools, calls the calculator on the first two items, and copies results."""
    question = text.rsplit("user:", 1)[-1]
    reply = _reply_part(text)
    if "->" in reply:  # the loop spliced a result: answer with it
        return " " + re.findall(r"-> ([\d.]+)\]", reply)[-1] + "."
    if "muffins" in question:
        return "She bakes [Calculator(7 * 24) ->"
    if "stickers" in question:
        return "[Calculator(312 - 87) ->"
    return "Each piece is 2.4 metres."


def test_evaluate_math_with_and_without_tools(tmp_path: Path) -> None:
    from toolcall.backends.fake import FakeBackend
    from toolcall.dialects import get_dialect
    from toolcall.loop import LoopConfig
    from toolcall.registry import default_registry

    backend = FakeBackend(script=math_script)
    report = evaluate(MATH, "math", backend, get_dialect("toolformer"), default_registry(["Calculator"]),
                      LoopConfig(max_calls=1, max_new_tokens=60), settings={"backend": "fake"})
    off, on = report.modes["no_tools"], report.modes["tools"]
    # Tools off: the call-open "[" is banned, so the first two replies carry no result and no number
    # ("She bakes Calculator(7 * 24) ->" has 7 first: wrong); only the third, tool-free, answer is right.
    assert (off.n, off.accuracy, off.call_share, off.avg_calls) == (3, pytest.approx(1 / 3, abs=1e-3), 0.0, 0.0)
    assert (on.n, on.accuracy, on.call_share, on.avg_calls) == (3, 1.0, pytest.approx(2 / 3, abs=1e-3), pytest.approx(2 / 3, abs=1e-3))
    assert on.exact_accuracy == pytest.approx(1 / 3, abs=1e-3)  # "225." alone is an exact answer
    # Both modes saw the same prompts.
    assert len(backend.prompts) == 6 and backend.prompts[:3] == backend.prompts[3:]
    first = next(r for r in report.items if r.mode == "tools")
    assert first.transcript == "She bakes [Calculator(7 * 24) -> 168] 168."
    assert first.prediction == "She bakes 168."
    assert first.calls == [{"tool": "Calculator", "args": ["7 * 24"], "result": "168", "ok": True, "error": None,
                            "seconds": first.calls[0]["seconds"]}]
    out = tmp_path / "items.jsonl"
    results = ResultsFile(out)   # as `toolcall eval --output` writes them, one line per (item, mode)
    for item in report.items:
        results.write(item.to_json())
    results.close()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["mode"] for r in rows] == ["no_tools"] * 3 + ["tools"] * 3
    assert {"question", "gold", "prediction", "transcript", "calls", "mode", "correct", "exact"} <= set(rows[0])
    summary = report.summary()
    assert summary["backend"] == "fake" and summary["tools"]["accuracy"] == 1.0
    assert "no_tools" in format_table(report) and "33.3%" in format_table(report)


def dates_script(text: str) -> str:
    """Calls the calendar, then reads the answer off its result."""
    question, reply = text.rsplit("user:", 1)[-1], _reply_part(text)
    found = re.search(r"Today is (\w+), \w+ \d+, (\d+)\.", reply)
    if found:
        return f" It is {found.group(1) if 'weekday' in question else found.group(2)}."
    return "[Calendar() ->"  # with tools off the fake drops the banned "[" and no call runs


def test_evaluate_dates_uses_the_injected_today(monkeypatch: pytest.MonkeyPatch) -> None:
    from toolcall.tools import calendar as calendar_tool

    from toolcall.backends.fake import FakeBackend
    from toolcall.dialects import get_dialect
    from toolcall.loop import LoopConfig
    from toolcall.registry import default_registry

    items = [EvalItem("Tell me which weekday it is today.", date_answer({"rule": "weekday"}, TODAY)),
             EvalItem("What year is it?", date_answer({"rule": "year"}, TODAY))]
    report = evaluate(items, "dates", FakeBackend(script=dates_script), get_dialect("toolformer"),
                      default_registry(["Calendar"]), LoopConfig(max_calls=1, max_new_tokens=60), today=TODAY)
    assert report.modes["tools"].accuracy == 1.0 and report.modes["tools"].call_share == 1.0
    assert report.modes["no_tools"].accuracy == 0.0
    tools_items = [r for r in report.items if r.mode == "tools"]
    assert tools_items[0].calls[0]["result"] == "Today is Wednesday, November 25, 2026."
    assert [r.prediction for r in tools_items] == ["It is Wednesday.", "It is 2026."]
    assert report.today == "2026-11-25"
    monkeypatch.delenv("TOOLCALL_TODAY", raising=False)
    assert calendar_tool.today() == dt.date.today()  # the pin is released afterwards


def test_scored_reply_cuts_calls_and_moss_fields() -> None:
    from toolcall.dialects import get_dialect

    assert get_dialect("toolformer").reply("It is [Calculator(2 * 3) -> 6] 6 apples.", keep_calls=False) == "It is 6 apples."
    moss = ("search needed<eot>\n<|Commands|>: Calculate(\"2*3\")<eoc>\n<|Results|>:\nCalculate(\"2*3\") => '6'\n<eor>\n"
            "<|MOSS|>: The answer is 6.<eom>")
    assert get_dialect("moss").reply(moss, keep_calls=False) == "The answer is 6."


def test_a_call_the_token_limit_cut_is_not_read_as_the_answer() -> None:
    """`[Calculator(42 * 1` at the end of a reply cut by its length: the first-number rule read 42, the call's."""
    from toolcall.backends.fake import FakeBackend
    from toolcall.dialects import get_dialect
    from toolcall.loop import LoopConfig
    from toolcall.registry import default_registry

    registry = default_registry(["Calculator"])
    items = [EvalItem("What is 6 times 7?", "42")]
    cut = evaluate(items, "math", FakeBackend(script=["It is [Calculator(42 * 1 + 0 + 0"] * 2),
                   get_dialect("toolformer"), registry, LoopConfig(max_new_tokens=6))
    on = [r for r in cut.items if r.mode == "tools"]
    assert [(r.prediction, r.correct, r.stop_reason) for r in on] == [("It is", False, "length")]
    # A bracket that opens no call, and a reply that ended by itself, are read as written.
    kept = evaluate(items, "math", FakeBackend(script=["It is 42 [sic"] * 2), get_dialect("toolformer"), registry,
                    LoopConfig(max_new_tokens=3))
    assert [r.correct for r in kept.items] == [True, True]


def test_the_leak_check_reads_each_question_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each prompt's check normalised every evaluated question again: 1,319 GSM8K-sized items took 27-31 s before the
    first was asked (0.5 s now, the same fake run). The check still refuses a demonstration that is an item."""
    import toolcall.evaluation as evaluation
    from toolcall.backends.fake import FakeBackend
    from toolcall.dialects import get_dialect
    from toolcall.loop import LoopConfig
    from toolcall.registry import default_registry

    seen: list[str] = []
    norm = evaluation._norm
    monkeypatch.setattr(evaluation, "_norm", lambda text: seen.append(text) or norm(text))
    items = [EvalItem(f"Tom had {i} apples and bought {i + 1} more. How many now?", str(2 * i + 1)) for i in range(200)]
    evaluate(items, "math", FakeBackend(script=lambda text: "1"), get_dialect("toolformer"),
             default_registry(["calculator"]), LoopConfig(max_new_tokens=2))
    assert len(seen) <= 2 * len(items)  # each question once, each prompt's context once: was 200 * 200 + 200
    registry = default_registry(["Calculator"])
    demo = get_dialect("toolformer").messages("x", registry)[1]["content"]
    with pytest.raises(ConfigError, match="must not appear in the few-shot examples"):
        evaluation.LeakCheck([demo, "What is 6 times 7?"]).check(
            evaluation.eval_prompt("What is 6 times 7?", get_dialect("toolformer"), registry, FakeBackend()),
            "What is 6 times 7?")


def test_words_of_any_script_are_words() -> None:
    """Only [a-z0-9] made words: a Russian gold answer had none, so a reply equal to it scored wrong, and "février"
    was two words."""
    assert grade_dates("среда", "среда") == (True, True)
    assert words("Le 3 février, mercredi.") == ["le", "3", "février", "mercredi"]
    assert words("It is 1,625.5 km") == ["it", "is", "1625.5", "km"]
    # Numbers stand apart from letters, as they did: a date written in Chinese is read as its numbers.
    assert words("今天是2025年6月18日") == ["今天是", "2025", "年", "6", "月", "18", "日"]
    assert grade_dates("答案：2025年", "2025")[0]


@pytest.mark.parametrize(("reply", "number"), [
    ("- 42", 42), ("Steps:\n  - 42 apples", 42), ("– 42", 42),   # a list's bullet: was -42
    ("x = - 3", -3), ("(- 3)", -3), ("-42", -42), ("is -42", -42), ("temp: -5", -5), ("Answer: - 8", -8),
    ("The temperature at midnight was - 8 degrees.", -8),  # the shipped sample's gold -8, written with a space
])
def test_a_dash_apart_from_its_digits_at_a_lines_start_is_a_bullet(reply: str, number: float) -> None:
    assert first_number(reply) == number


def test_a_limit_reads_no_line_past_its_last_item(tmp_path: Path) -> None:
    """`--limit 2` read line 3 too: a file cut mid-line after the items asked for failed the run."""
    path = tmp_path / "cut.jsonl"
    path.write_text('{"question": "a?", "answer": "1"}\n{"question": "b?", "answer": "2"}\n{"question": "c?", "ans')
    assert [it.answer for it in load_items(path, "math", limit=2)] == ["1", "2"]
    with pytest.raises(ConfigError, match="cut.jsonl:3"):
        load_items(path, "math", limit=3)


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_below_one_is_a_config_error(tmp_path: Path, limit: int) -> None:
    """`load_items(limit=0)` gave one item: the count was checked after the first was taken."""
    path = tmp_path / "items.jsonl"
    path.write_text('{"question": "a?", "answer": "1"}\n{"question": "b?", "answer": "2"}\n')
    with pytest.raises(ConfigError, match=f"limit must be >= 1, got {limit}"):
        load_items(path, "math", limit=limit)


def test_gsm8k_as_the_hub_serves_it_and_compressed_json_lines_are_read(tmp_path: Path) -> None:
    # GSM8K on the Hugging Face Hub is a Parquet file of question/answer columns; eval --input read JSON Lines only.
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    import gzip

    rows = [{"question": "Tom has 3 apples and buys 4 more. How many now?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
            {"question": "A box holds 6 eggs. How many in 5 boxes?", "answer": "6 * 5 = <<6*5=30>>30\n#### 30"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "train-00000-of-00001.parquet")
    with gzip.open(tmp_path / "test.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in rows))
    for name in ("train-00000-of-00001.parquet", "test.jsonl.gz"):
        items = load_items(tmp_path / name, "math")
        assert [(i.question, i.answer) for i in items] == [(r["question"], a) for r, a in zip(rows, ("7", "30"))]
        assert len(load_items(tmp_path / name, "math", limit=1)) == 1
    pq.write_table(pa.Table.from_pylist([{"Body": "x", "Answer": 1.0}]), tmp_path / "svamp.parquet")
    with pytest.raises(ConfigError, match=r"svamp.parquet has no column 'question'; its columns: Body, Answer"):
        load_items(tmp_path / "svamp.parquet", "math")


def test_a_parquet_files_empty_cells_odd_numbers_and_extra_columns(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    import decimal

    from toolcall import evaluation

    # A row has every column: a value one record lacks is an empty cell, which counted as a field given (null).
    pq.write_table(pa.table({"question": ["Which weekday is it?", "And tomorrow?"], "rule": ["weekday", "weekday"],
                             "days": pa.array([None, 1], pa.int64())}), tmp_path / "wd.parquet")
    assert [(i.question, i.answer) for i in load_items(tmp_path / "wd.parquet", "dates", dt.date(2023, 1, 30))] == [
        ("Which weekday is it?", "Monday"), ("And tomorrow?", "Tuesday")]
    pq.write_table(pa.table({"question": ["What is 2+2?", "Half of 3?", "A tenth?"],
                             "answer": pa.array([4.0, 1.5, 0.1], pa.float32()),
                             "rule": pa.array([None, None, None], pa.string()),
                             "exact": pa.array([decimal.Decimal("4"), decimal.Decimal("1.50"), decimal.Decimal("0.1")],
                                               pa.decimal128(4, 2)),
                             "text": ["x" * 100] * 3}), tmp_path / "m.parquet")
    read: list[Any] = []
    real = evaluation.read_records
    monkeypatch.setattr(evaluation, "read_records", lambda *a, **k: read.append(k.get("columns")) or real(*a, **k))
    # A float32 0.1 is 0.10000000149011612 as a double: the gold answer is the number the file prints.
    assert [i.answer for i in load_items(tmp_path / "m.parquet", "math")] == ["4", "1.5", "0.1"]
    assert read == [["question", "answer", "rule"]]   # the text column is never read
    with pytest.raises(ConfigError, match=r"m.parquet has no column 'question'; its columns: q, a"):
        pq.write_table(pa.table({"q": ["x"], "a": ["1"]}), tmp_path / "m.parquet")
        load_items(tmp_path / "m.parquet", "math")


def moss_script(text: str) -> str:
    """A MOSS model that writes a command each turn, then answers from its result (or without one)."""
    if "<|Results|>" in text.rsplit("<|Human|>", 1)[-1]:
        return " The answer is 42.<eom>"
    return ' need the calculator<eot>\n<|Commands|>: Calculate("6*7")<eoc>'


def test_a_call_refused_is_not_counted_as_tool_use() -> None:
    """The refusal's error is "tools are disabled", but "Error: tools are disabled" was left out, so nothing was: with
    tools off a dialect whose call opener cannot be banned (MOSS) reported a call on every item, as if a tool had run."""
    from toolcall.backends.fake import FakeBackend
    from toolcall.dialects import get_dialect
    from toolcall.loop import LoopConfig
    from toolcall.registry import default_registry

    report = evaluate([EvalItem("What is 6 times 7?", "42")], "math", FakeBackend(script=moss_script),
                      get_dialect("moss"), default_registry(["Calculator"]), LoopConfig(max_calls=1, max_new_tokens=100))
    off, on = report.modes["no_tools"], report.modes["tools"]
    assert "Error: tools are disabled" in report.items[0].transcript   # the loop refused it, and said so
    assert (off.call_share, off.avg_calls, report.items[0].calls) == (0.0, 0.0, [])
    assert (on.call_share, on.avg_calls) == (1.0, 1.0) and report.items[1].calls[0]["result"] == "42"


def test_a_call_past_the_limit_is_not_counted() -> None:
    """Two commands on one MOSS line with one call allowed: the second is refused, and counted as a call no more."""
    from toolcall.backends.fake import FakeBackend
    from toolcall.dialects import get_dialect
    from toolcall.loop import LoopConfig
    from toolcall.registry import default_registry

    def two(text: str) -> str:
        if "<|Results|>" in text.rsplit("<|Human|>", 1)[-1]:
            return " The answer is 42.<eom>"
        return ' two<eot>\n<|Commands|>: Calculate("6*7"), Calculate("7*6")<eoc>'

    report = evaluate([EvalItem("What is 6 times 7?", "42")], "math", FakeBackend(script=two),
                      get_dialect("moss"), default_registry(["Calculator"]), LoopConfig(max_calls=1, max_new_tokens=100))
    on = next(r for r in report.items if r.mode == "tools")
    assert "call limit reached (1)" in on.transcript
    assert [c["result"] for c in on.calls] == ["42"] and report.modes["tools"].avg_calls == 1.0


@pytest.mark.parametrize(("transcript", "prediction", "correct"), [
    # Cutting the call joined the words on either side of it: "is12" holds no number the first-number rule reads.
    ("The total is[Calculator(3 * 4) -> 12]12 apples.", "The total is 12 apples.", True),
    ("It costs $[Calculator(3 * 4) -> 12]12.", "It costs $12.", True),
    ("It is [Calculator(3 * 4) -> 12] 12.", "It is 12.", True),
    ("It is 12[Calculator(3 * 4) -> 12].", "It is 12.", True),
])
def test_a_cut_call_leaves_the_words_around_it_apart(transcript: str, prediction: str, correct: bool) -> None:
    from toolcall.backends.fake import FakeBackend
    from toolcall.dialects import get_dialect
    from toolcall.loop import LoopConfig
    from toolcall.registry import default_registry

    head, tail = transcript.split("->", 1)

    def script(text: str) -> str:
        return tail.split("]", 1)[1] if "->" in _reply_part(text) else head + "->"

    report = evaluate([EvalItem("How many apples?", "12")], "math", FakeBackend(script=script),
                      get_dialect("toolformer"), default_registry(["Calculator"]), LoopConfig(max_new_tokens=60))
    on = next(r for r in report.items if r.mode == "tools")
    assert on.transcript == transcript
    assert (on.prediction, on.correct) == (prediction, correct)
