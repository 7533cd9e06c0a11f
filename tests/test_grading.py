"""Tests of toolcall.grading's number reading and comparison: the cases an audit of the first-number rule found."""
from __future__ import annotations

import time

import pytest

from toolcall.grading import first_number, grade_math, numbers_match, parse_number


@pytest.mark.parametrize(("reply", "gold"), [
    ("The answer is 7/24.", "7/24"),       # a fraction ending a sentence was read as its numerator, 7
    ("Each child gets 3/4. Then", "0.75"),
    ("So 7/24!", "7/24"),
])
def test_a_fraction_before_a_full_stop_is_the_fraction(reply: str, gold: str) -> None:
    assert grade_math(reply, gold)[0]


@pytest.mark.parametrize(("reply", "first"), [
    # A division written out is an expression, not a number: the grader computed it (312 / 4 -> 78), so a reply
    # that only restated the problem, or a call written without its bracket, scored as the answer.
    ("Calculator(312 / 4) -> 78", 312.0),
    ("Each piece is 9.6/4 = 2.4 metres", 9.6),
    ("It is 1,000/4 = 250", 1000.0),
    ("1/2.5 of it", 1.0),
    # A fraction as people write one is still one number.
    ("about 7/24 of the slices", 7 / 24),
    ("3/4", 0.75),
])
def test_only_a_fraction_written_as_one_is_read_as_its_value(reply: str, first: float) -> None:
    assert first_number(reply) == pytest.approx(first)


def test_a_division_written_out_is_no_number_of_a_reply() -> None:
    assert parse_number("12 / 4") is None and parse_number("9.6/4") is None
    assert parse_number("7/24") == pytest.approx(7 / 24)


def test_a_gold_fraction_may_be_written_with_spaces() -> None:
    """A gold answer is one value: "3 / 4" is 3/4 (the stricter reply rule made it no number, and a reply of 0.75
    wrong against it)."""
    from toolcall.grading import parse_gold

    assert parse_gold("3 / 4") == 0.75 and parse_gold("-3 / 4") == -0.75 and parse_gold("7/24") == pytest.approx(7 / 24)
    assert parse_gold("9.6 / 4") is None and parse_gold("3 / 4 / 5") is None
    assert grade_math("It is 0.75.", "3 / 4") == (True, False) and grade_math("It is 3.", "3 / 4")[0] is False


@pytest.mark.parametrize(("predicted", "gold"), [(0.0001, 0.00014), (0.0001, 0.00005), (0.0003, 1 / 3000)])
def test_a_rounding_past_two_decimals_keeps_two_significant_digits(predicted: float, gold: float) -> None:
    """Compared at the decimals it writes, 0.0001 was right for 0.00014 (29% off) and for 0.00005 (twice it)."""
    assert not numbers_match(predicted, gold)
    assert numbers_match(0.00014, 1 / 7000) and numbers_match(0.00033, 1 / 3000)


@pytest.mark.parametrize(("reply", "value"), [("-$5", -5.0), ("It lost -$1,200.50", -1200.5), ("$-5", -5.0),
                                              ("$60", 60.0), ("x-$3", 3.0)])
def test_a_minus_before_a_currency_sign_is_a_minus(reply: str, value: float) -> None:
    assert first_number(reply) == value


@pytest.mark.parametrize(("predicted", "gold"), [
    (1_000_001.0, 1_000_000.0),       # a relative tolerance of 1e-6 took an off-by-one answer from a million up
    (250_000_002.0, 250_000_000.0),
    (0.33334, 1 / 3),
])
def test_a_different_number_is_never_close_enough(predicted: float, gold: float) -> None:
    assert not numbers_match(predicted, gold)


@pytest.mark.parametrize(("predicted", "gold"), [
    # The calculator rounds half up, as people do (2.675 -> 2.68, 1/8 -> 0.13): round() of a float gave 2.67, 0.12.
    (2.68, 2.675), (0.13, 0.125), (1.01, 1.005), (-2.68, -2.675), (0.38, 0.375),
    # More decimals than two, rightly rounded, are right too: 0.33 was right for 1/3 and 0.3333333 (by the loose
    # tolerance), but 0.333 was wrong; the calculator writes a small result to two significant digits (1/7000 ->
    # 0.00014), which was wrong.
    (0.333, 1 / 3), (0.3333, 1 / 3), (0.667, 2 / 3), (0.00014, 1 / 7000), (0.2917, 7 / 24),
    (0.29, 7 / 24), (1.0, 1.004), (12.0, 12.0), (0.1 + 0.2, 0.3),
])
def test_the_gold_rounded_as_the_calculator_rounds_is_right(predicted: float, gold: float) -> None:
    assert numbers_match(predicted, gold)


@pytest.mark.parametrize(("predicted", "gold"), [
    (2.67, 2.675), (0.12, 0.125), (0.334, 1 / 3), (0.3, 7 / 24), (0.2916, 7 / 24), (8.01, 8.0), (0.0, 0.004),
    (8.001, 8.0), (float("inf"), 5.0),
])
def test_the_gold_rounded_otherwise_is_wrong(predicted: float, gold: float) -> None:
    assert not numbers_match(predicted, gold)


def test_the_calculators_own_results_are_right_against_exact_golds() -> None:
    from toolcall.tools.calculator import calculator

    for expression, gold in [("1 / 8", "1/8"), ("2.675 * 1", "2.675"), ("1 / 7000", "1/7000"), ("100 / 7", "100/7"),
                             ("-1 / 8", "-1/8"), ("2 / 3", "2/3")]:
        assert grade_math(f"It is {calculator(expression)} in all.", gold)[0], (expression, gold)


def test_a_gold_of_many_signed_numbers_is_read_in_linear_time() -> None:
    """Each signed number searched the whole text before it for what preceded its sign: an answer of 40,000 signed
    numbers took 100 s to be refused at load."""
    began = time.perf_counter()
    assert parse_number("x -1" * 40_000) is None
    assert parse_number("- 1 " * 40_000) is None
    assert first_number("x " * 200_000 + "- 5") == -5.0
    assert time.perf_counter() - began < 5


@pytest.mark.parametrize("reply", ["1e999", "9" * 100_000, "1" + "0" * 5000 + "/3", "0." + "3" * 100_000])
def test_a_reply_of_huge_numbers_is_graded_at_once(reply: str) -> None:
    began = time.perf_counter()
    grade_math(reply, "1")
    grade_math(reply + " and 7", "7")
    assert time.perf_counter() - began < 2
