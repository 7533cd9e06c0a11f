"""Grading a reply against a gold answer: Toolformer's first-number rule, LAMA-style word match, exact match."""
from __future__ import annotations

import itertools
import math
import re
import sys
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from fractions import Fraction

# A number as people write it: an optional sign (before a currency sign too: "-$5"), digits with thousands separators
# or plain, decimals, or a fraction "3/4". The sign counts only when it does not follow a word character ("5-3" is not
# "-3"). A fraction is written as one, whole numbers on either side of a slash and no space: "12 / 4" and "9.6/4" are
# divisions written out, and reading them as their quotient did the model's arithmetic for it. A full stop after it
# ends the sentence ("7/24." is 7/24; it was read as 7): only a digit after the point makes "1/2.5" no fraction.
_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-−–]\s?)?\$?"  # minus, unicode minus, en dash
    r"(?P<num>\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?:/(?P<den>\d+)(?!\d|\.\d))?"
)
#: What may stand right before a minus sign ("x = -3", "(-3)", "$-5"); after anything else it is a hyphen or a dash.
_SIGN_AFTER = "([=:$"
# Letters of any script ("среда", "février" are one word each) and numbers, apart: "2025年6月18日" is 2025, 年, 6, ...
_WORD = re.compile(r"[^\W\d_]+|\d+(?:\.\d+)?")
_ANSWER_PREFIX = re.compile(r"^\s*(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)?\s*", re.IGNORECASE)

#: Relative tolerance of the numeric comparison: a few units in the last place of a float (0.1 + 0.2 against 0.3), so
#: noise and never another number (1e-6 took 1,000,001 for 1,000,000).
REL_TOL = 4 * sys.float_info.epsilon
#: The fewest decimals a rounded reply is held to: the paper's calculator rounds to 2.
ROUNDED_DECIMALS = 2
#: Enough digits to round any float exactly (its integer part and every decimal a float's repr can hold).
_EXACT = Context(prec=1000)


def parse_number(text: str) -> float | None:
    """The value of `text` if it is one number ("1,234", "-8", "34.5", "7/24", "$60"), else None."""
    found = list(itertools.islice(_iter_numbers(text), 2))  # a second number is enough to refuse: none read further
    if len(found) != 1:
        return None
    value, start, end = found[0]
    rest = (text[:start] + text[end:]).strip(" \t$%.")
    return value if not rest else None


def first_number(text: str) -> float | None:
    """The first number in `text` (Toolformer §4.2.2 scores math by it), or None if there is none."""
    for value, _, _ in _iter_numbers(text):
        return value
    return None


def _iter_numbers(text: str) -> Iterator[tuple[float, int, int]]:
    """(value, start, end) of every number in `text`, left to right."""
    for m in _NUMBER.finditer(text):
        written = m.group("sign") or ""
        sign = -1.0 if written and _is_minus(text, m.start(), written) else 1.0
        start = m.start() if sign < 0 else m.start("num")
        num, den, end = m.group("num"), m.group("den"), m.end()
        if den is not None and not num.isdigit():  # "9.6/4", "1,000/4": a division written out; the number is 9.6
            den, end = None, m.end("num")
        try:
            if den is not None and int(den) == 0:
                continue  # "1/0" is no number: it was read as 1
            value = float(Fraction(int(num), int(den))) if den is not None else float(num.replace(",", ""))
        except (ValueError, OverflowError):  # past Python's 4,300 digits or a float's range: a reply's run of
            continue  # digits read as no number, where it ended the whole eval with a traceback
        yield sign * value, start, end


def _is_minus(text: str, at: int, written: str) -> bool:
    """Whether the sign written at `at` is a minus: it follows the start, a space or one of _SIGN_AFTER, and is not a
    list's bullet. A sign apart from its digits ("- 3") at the start of a line is a bullet ("- 42"), not a minus: 42 was
    read as -42. Elsewhere it is a sign as before ("was - 8 degrees"; "Answer - 42" stays ambiguous and reads as -42).
    Only the characters just before the sign are looked at: a regex search of the whole text before each number made an
    answer of many signed numbers quadratic (40,000 took 100 s)."""
    if written[1:].isspace():
        line = at
        while line and text[line - 1] in " \t":  # the blanks before this sign: each is walked once, by this number
            line -= 1
        if line == 0 or text[line - 1] == "\n":
            return False
    return at == 0 or text[at - 1].isspace() or text[at - 1] in _SIGN_AFTER


def numbers_match(predicted: float | None, gold: float | None) -> bool:
    """Numeric equality up to float noise; a prediction that is the gold rounded as the paper's calculator rounds counts
    too: half up (2.675 -> 2.68, 1/8 -> 0.13), to 2 decimals or to as many as the prediction writes where it writes
    more (0.333 for 1/3; the calculator's 0.00014 for 1/7000) and keeps two significant digits there, unless the
    rounding leaves nothing of the gold answer (0 was right for 0.004)."""
    if predicted is None or gold is None:
        return False
    if math.isclose(predicted, gold, rel_tol=REL_TOL):
        return True
    if not (math.isfinite(predicted) and math.isfinite(gold)):
        return False
    # A float's repr is the shortest text that reads back as it: the number as the reply or the gold wrote it.
    written = Decimal(repr(predicted))
    places = max(ROUNDED_DECIMALS, -int(written.as_tuple().exponent))
    with localcontext(_EXACT):
        rounded = Decimal(repr(gold)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    if rounded == 0 or rounded != written:
        return False
    # Past 2 decimals, a rounding that keeps one significant digit is too far: 0.0001 for 0.00014 or for 0.00005
    # (the calculator writes those two digits, as it writes 0.00014).
    return places <= ROUNDED_DECIMALS or rounded.adjusted() + places >= 1


def answer_line(reply: str) -> str:
    """The first non-empty line of a reply: where a short answer is expected."""
    for line in reply.splitlines():
        if line.strip():
            return line.strip()
    return ""


def normalize_answer(text: str) -> str:
    """Lower-case, drop an "Answer:" prefix, thousands separators, '$', trailing punctuation and extra spaces; a
    minus or an en dash is a hyphen (the number reader takes all three as a minus)."""
    text = _ANSWER_PREFIX.sub("", text.strip())
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    text = text.replace("$", "").replace("−", "-").replace("–", "-")
    text = re.sub(r"\s+", " ", text).strip().rstrip(".!?;:,").strip()
    return text.lower()


def exact_match(reply: str, gold: str) -> bool:
    """Normalised string equality of the reply's answer line and the gold answer."""
    return normalize_answer(answer_line(reply)) == normalize_answer(gold)


def words(text: str) -> list[str]:
    """Lower-cased word/number tokens; commas inside numbers are dropped first ("1,625" -> "1625")."""
    return _WORD.findall(re.sub(r"(?<=\d),(?=\d{3}\b)", "", text.lower()))


def words_match(reply: str, gold: str, window: int = 5) -> bool:
    """True when the gold answer's words appear, in order and adjacent, starting within the reply's first `window` words.

    Toolformer scores LAMA and its temporal sets this way (§4.2.1, §4.2.5): lenient about phrasing,
    strict about position.
    """
    want, have = words(gold), words(reply)
    if not want:
        return False
    return any(have[i:i + len(want)] == want for i in range(min(window, len(have))))


#: A fraction written with spaces around its slash ("3 / 4").
_SPACED_FRACTION = re.compile(r"(?<=\d)[ \t]*/[ \t]*(?=\d)")


def parse_gold(text: str) -> float | None:
    """The value of a gold answer written as one number: as `parse_number` reads it, and a fraction with spaces around
    its slash ("3 / 4" is 3/4: a gold answer is one value, where in a reply "12 / 4" is a division written out)."""
    value = parse_number(text)
    if value is None and text.count("/") == 1:
        value = parse_number(_SPACED_FRACTION.sub("/", text))
    return value


def grade_math(reply: str, gold: str) -> tuple[bool, bool]:
    """(correct by the first number, exact answer) for a math reply."""
    gold_value = parse_gold(gold)
    if gold_value is None:
        gold_value = first_number(gold)
    return numbers_match(first_number(reply), gold_value), exact_match(reply, gold)


def grade_dates(reply: str, gold: str) -> tuple[bool, bool]:
    """(correct by the LAMA-style word window, exact answer) for a date reply."""
    return words_match(reply, gold), exact_match(reply, gold)


GRADERS = {"math": grade_math, "dates": grade_dates}
