"""The QA placement ceiling: where oracle calls go, and how they are counted against the crowd's spots."""
from __future__ import annotations

from script_module import BENCHMARKS, load_script


def test_places_are_where_names_numbers_and_dates_start_with_the_answer_written_there() -> None:
    module = load_script(BENCHMARKS / "qa_oracle.py", beside=True)
    text = 'On 18 November 2015, Sky announced Sky Q, a range for $5.3 million, in 2016 and "Go".'
    assert module.places(text, False) == [(3, "18 November 2015"), (21, "Sky"), (35, "Sky Q"), (54, "$5.3 million"),
                                          (71, "2016"), (80, "Go")]
    # every word but the first, and none inside a name before it
    assert module.places("Born in Scranton Pennsylvania, he ran", True) == [
        (5, "in Scranton Pennsylvania"), (8, "Scranton Pennsylvania"), (31, "he ran"), (34, "ran")]


def test_figures_count_places_at_crowd_starts_and_questions_met_once() -> None:
    module = load_script(BENCHMARKS / "qa_oracle.py", beside=True)
    records = [{"id": "a", "text": "x", "gold": [{"tool": "QA", "start": 5, "starts": [5, 9]},
                                                {"tool": "QA", "start": 20}]},
               {"id": "b", "text": "y", "gold": [{"tool": "QA", "start": 3}]}]
    rows = [{"id": "a", "position": 5, "reduction": 2.0, "spot": 5}, {"id": "a", "position": 9, "reduction": 1.0,
                                                                       "spot": 9},
            {"id": "a", "position": 14, "reduction": 3.0, "spot": None},
            {"id": "b", "position": 3, "reduction": 0.1, "spot": 3}]
    report = module.analyse(rows, records)
    assert report["base_rate"] == {"precision": 0.75, "recall": 0.667, "kept": 4, "right": 3}  # 2 of 3 questions met
    assert report["sweep"]["1.0"] == {"precision": 0.667, "recall": 0.333, "kept": 3, "right": 2}
    assert report["top1"] == {"precision": 0.5, "recall": 0.333, "kept": 2, "right": 1}   # a: position 14; b: 3
    assert module.at_spot("in  Scranton", 2, {4}) == 4 and module.at_spot("in Scranton", 0, {3}) is None
    assert module.at_spot("by (LA Galaxy)", 2, {4}) == 4   # the bracket the place starts with
