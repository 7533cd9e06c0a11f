"""Grading a reply against a gold answer: Toolformer's first-number rule, LAMA-style word match, exact match."""
from __future__ import annotations

import math
import re
from collections.abc import Iterator
from fractions import Fraction

# A number as people write it: an optional sign, digits with thousands separators or plain, decimals, or a
# fraction "3/4". The sign counts only when it does not follow a word character ("5-3" is not "-3").
_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-−–]\s?)?"  # minus, unicode minus, en dash
    r"(?P<num>\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?:\s?/\s?(?P<den>\d+)(?![\d.]))?"
)
_SIGN_ALLOWED_BEFORE = re.compile(r"(?:^|[\s(\[=:$])$")
#: A sign apart from its digits ("- 3") at the start of a line is a list's bullet ("- 42"), not a minus: 42 was read
#: as -42. Elsewhere it is a sign as before ("was - 8 degrees"; "Answer - 42" stays ambiguous and reads as -42).
_BULLET_BEFORE = re.compile(r"(?:^|\n)[ \t]*$")
# Letters of any script ("среда", "février" are one word each) and numbers, apart: "2025年6月18日" is 2025, 年, 6, ...
_WORD = re.compile(r"[^\W\d_]+|\d+(?:\.\d+)?")
_ANSWER_PREFIX = re.compile(r"^\s*(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)?\s*", re.IGNORECASE)

#: Relative tolerance of the numeric comparison (floating-point noise, not leniency).
REL_TOL = 1e-6


def parse_number(text: str) -> float | None:
    """The value of `text` if it is one number ("1,234", "-8", "34.5", "7/24", "$60"), else None."""
    found = list(_iter_numbers(text))
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
        before, written = text[: m.start()], m.group("sign") or ""
        bullet = written[1:].isspace() and _BULLET_BEFORE.search(before) is not None
        sign = -1.0 if written and not bullet and _SIGN_ALLOWED_BEFORE.search(before) else 1.0
        start = m.start() if sign < 0 else m.start("num")
        num = m.group("num").replace(",", "")
        try:
            if m.group("den") and int(m.group("den")) == 0:
                continue  # "1/0" is no number: it was read as 1
            value = float(Fraction(num) / Fraction(m.group("den"))) if m.group("den") else float(num)
        except (ValueError, OverflowError):  # past Python's 4,300 digits or a float's range: a reply's run of
            continue  # digits read as no number, where it ended the whole eval with a traceback
        yield sign * value, start, m.end()


def numbers_match(predicted: float | None, gold: float | None) -> bool:
    """Numeric equality with float tolerance; a prediction rounded to 2 decimals (the paper's calculator) counts too,
    unless the rounding leaves nothing of the gold answer (0 was right for 0.004)."""
    if predicted is None or gold is None:
        return False
    if math.isclose(predicted, gold, rel_tol=REL_TOL, abs_tol=1e-9):
        return True
    rounded = round(gold, 2)
    return (rounded != 0 and math.isclose(predicted, rounded, abs_tol=1e-9)
            and not math.isclose(gold, rounded, abs_tol=1e-9))


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


def grade_math(reply: str, gold: str) -> tuple[bool, bool]:
    """(correct by the first number, exact answer) for a math reply."""
    gold_value = parse_number(gold)
    if gold_value is None:
        gold_value = first_number(gold)
    return numbers_match(first_number(reply), gold_value), exact_match(reply, gold)


def grade_dates(reply: str, gold: str) -> tuple[bool, bool]:
    """(correct by the LAMA-style word window, exact answer) for a date reply."""
    return words_match(reply, gold), exact_match(reply, gold)


GRADERS = {"math": grade_math, "dates": grade_dates}
