"""Cheap per-tool text heuristics that decide which texts a tool's model stages see (paper §4.1)."""
from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import replace

from .config import PrefilterConfig
from .records import TextRecord

NUMBER = re.compile(r"(?<![\w.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?<![\w.,])-?\d+(?:\.\d+)?")
PERCENT = re.compile(r"\s*(?:%|per ?cent\b)", re.I)
KEYWORD = re.compile(r"(=|\bequals?\b|\btotal of\b|\baverage of\b)\s*\$?-?\d", re.I)
MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
WEEKDAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
DATE = re.compile(
    rf"\b(?:{MONTHS})\b|\b(?:{WEEKDAYS})\b|\b(?:1[5-9]|20)\d\d\b|\b\d{{4}}-\d\d-\d\d\b|\b\d{{1,2}}/\d{{1,2}}/\d{{2,4}}\b"
    r"|\b(?:today|tomorrow|yesterday|tonight|this (?:year|month|week)|next (?:year|month|week)|last (?:year|month|week))\b",
    re.I)


def _value(token: str) -> float:
    return float(token.replace(",", ""))


def _follows(a: float, b: float, c: float) -> bool:
    """c equals a op b for one of + - * / (c rounded as written: within 1% or 0.01)."""
    outcomes = [a + b, a - b, b - a, a * b]
    if b:
        outcomes.append(a / b)
    if a:
        outcomes.append(b / a)
    return any(abs(o - c) <= max(0.01, 0.01 * abs(c)) for o in outcomes)


def calculator_heuristic(text: str, config: PrefilterConfig = PrefilterConfig()) -> bool:
    """>= min_numbers numbers within number_window characters where one follows from two others, or `=`/`equals`/
    `total of`/`average of` followed by a number."""
    if KEYWORD.search(text):
        return True
    found = []
    for m in NUMBER.finditer(text):
        found.append((m.start(), _value(m.group())))
        if PERCENT.match(text, m.end()):
            # "256 passed, a pass rate of 80 percent" of 320: the percentage follows as 0.8 = 256 / 320.
            found.append((m.start(), _value(m.group()) / 100))
    for i, (start, _) in enumerate(found):
        window = [v for pos, v in found[i:] if pos - start <= config.number_window]
        if len(window) < config.min_numbers:
            continue
        for x, y, z in itertools.permutations(window[:9], 3):
            if _follows(x, y, z):
                return True
    return False


def calendar_heuristic(text: str, config: PrefilterConfig = PrefilterConfig()) -> bool:
    """Texts that mention a date, a weekday, a month, a year or a relative day."""
    return DATE.search(text) is not None


HEURISTICS: dict[str, Callable[[str, PrefilterConfig], bool]] = {
    "calculator": calculator_heuristic,
    "calendar": calendar_heuristic,
}


def passes(tool: str, text: str, config: PrefilterConfig = PrefilterConfig()) -> bool:
    """Tools without a heuristic see every text."""
    if not config.enabled:
        return True
    check = HEURISTICS.get(tool.lower())
    return True if check is None else check(text, config)


def prefilter(record: TextRecord, tools: tuple[str, ...], config: PrefilterConfig = PrefilterConfig()) -> TextRecord:
    """record -> record whose `tools` are the tools whose heuristic accepts its text."""
    return replace(record, tools=tuple(t for t in tools if passes(t, record.text, config)))
