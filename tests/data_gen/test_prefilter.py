"""Per-tool heuristics: the paper's calculator rule and date-bearing texts for the calendar."""
from __future__ import annotations

import pytest
from toolcall.data_gen.config import PrefilterConfig
from toolcall.data_gen.prefilter import calculator_heuristic, calendar_heuristic, prefilter
from toolcall.data_gen.records import TextRecord


@pytest.mark.parametrize("text", [
    "Out of 1400 participants, 400 passed and 1000 failed.",           # 1400 - 400 = 1000
    "A box holds 12 eggs; 9 boxes hold 108 eggs.",                      # 12 * 9
    "The price is 2,400 for 3 nights, or 800 a night.",                 # 2400 / 3
    "The result equals 17 in the end.",
    "They spent a total of 35 dollars.",
    "x = 4",
    "Out of 320 students who sat the exam, 256 passed, which is a pass rate of 80 percent.",   # 256 / 320 = 80%
    "Of the 1,400 participants, 400 said they cycle, or about 29%.",                          # 400 / 1400 ~ 29%
])
def test_calculator_accepts(text: str) -> None:
    assert calculator_heuristic(text)


@pytest.mark.parametrize("text", [
    "There were 12 cats, 7 dogs and 3 birds.",        # no number follows from two others
    "The team won in 1998.",
    "No numbers here at all.",
    "Of 320 students, 256 passed; turnout was 37 percent.",     # 37% does not follow from 320 and 256
])
def test_calculator_rejects(text: str) -> None:
    assert not calculator_heuristic(text)


def test_calculator_window_is_configurable() -> None:
    text = "We had 10 apples." + " filler" * 30 + " Later 5 more, then 15."
    assert calculator_heuristic(text, PrefilterConfig(number_window=400))
    assert not calculator_heuristic(text, PrefilterConfig(number_window=20))


@pytest.mark.parametrize("text,expected", [
    ("The bridge opened on June 12, 2019.", True),
    ("See you next week.", True),
    ("It happened on 2024-03-05.", True),
    ("The meeting is on Tuesday.", True),
    ("Cats sleep a lot.", False),
    ("We counted 45 birds.", False),
])
def test_calendar(text: str, expected: bool) -> None:
    assert calendar_heuristic(text) is expected


def test_prefilter_record_lists_passing_tools_and_unknown_tools_pass() -> None:
    rec = prefilter(TextRecord("Cats sleep 3 hours, 4 hours, 7 hours."), ("Calculator", "Calendar", "QA"))
    assert rec.tools == ("Calculator", "QA") and rec.text == "Cats sleep 3 hours, 4 hours, 7 hours."
    off = prefilter(TextRecord("Cats."), ("Calculator",), PrefilterConfig(enabled=False))
    assert off.tools == ("Calculator",)
