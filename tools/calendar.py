"""The Calendar tool: today's date as a sentence, with an injectable clock for tests and evaluation, and where a text
writes today's date (its proposer)."""
from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable

from toolcall.errors import ConfigError
from toolcall.tool_type import Proposal, text_context

from ._written_numbers import MONTH, MONTHS

ENV_VAR = "TOOLCALL_TODAY"  # YYYY-MM-DD: pins "today" for a whole run (evaluation, tests in subprocesses)

_fixed: dt.date | None = None
clock: Callable[[], dt.date] = dt.date.today


# A day written YYYY-MM-DD, and nothing else: fromisoformat alone also reads 20230130 and 2023-W05-1.
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def set_today(day: dt.date | str | None) -> None:
    """Pin today's date (a date or "YYYY-MM-DD"); None goes back to the environment variable or the clock."""
    global _fixed
    if day is not None and not isinstance(day, (str, dt.date)):  # it was kept, and every Calendar call then failed
        raise ConfigError(f"set_today takes a date, a \"YYYY-MM-DD\" string or None, not {type(day).__name__}")
    _fixed = parse_date(day, "set_today") if isinstance(day, str) else day


def parse_date(text: object, where: str) -> dt.date:
    """`text` read as a day written YYYY-MM-DD (spaces around it allowed), or a ConfigError that names `where`."""
    try:
        if not isinstance(text, str) or not _ISO_DATE.fullmatch(text.strip()):
            raise ValueError
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not a date in the form YYYY-MM-DD") from None


def today() -> dt.date:
    """The date of the text being processed (its "date" in `toolcall.tool_type.text_context`), else the pinned date, else
    $TOOLCALL_TODAY, else `clock()`."""
    of_text = text_context.get().get("date")
    if of_text is not None:
        return of_text if isinstance(of_text, dt.date) else parse_date(str(of_text), "the text's date")
    if _fixed is not None:
        return _fixed
    env = os.environ.get(ENV_VAR)
    if env:
        return parse_date(env, ENV_VAR)
    return clock()


def calendar() -> str:
    """Tell today's date.

    Returns:
        A sentence like "Today is Monday, January 30, 2023."
    """
    day = today()
    return f"Today is {day:%A}, {day:%B} {day.day}, {day.year}."


# ------------------------------------------------------------------------------------------------ proposals

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAY_STEMS = tuple(w[:3] for w in WEEKDAYS)
_MONTH_STEMS = tuple(m[:3] for m in MONTHS)
# Weekdays written out or cut to their first letters ("Sat", "Tues."); a cut weekday only counts in front of a date,
# since "Sun" or "Wed" alone are usually other words.
_WEEKDAY = rf"(?P<weekday>{'|'.join(WEEKDAYS)}|(?:mon|tues?|wed|thu(?:rs?)?|fri|sat|sun)\.?)"
_WEEKDAY_ALONE = rf"(?P<alone>{'|'.join(WEEKDAYS)})"
_DAY = r"(?:\d{1,2})(?:st|nd|rd|th)?"
# A date as prose, mail or a changelog writes it, optionally after its weekday: "Friday, March 6, 2026",
# "9 August 2027", "2027-04-20", "Sat, 06 May 2023".
_DATE = re.compile(
    rf"(?:{_WEEKDAY}(?:,\s*|\s+))?(?:"
    rf"(?P<month1>{MONTH})\s+(?P<day1>{_DAY})(?!\d)(?:,?\s+(?P<year1>\d{{4}}))?(?!\d|:\d)"
    rf"|(?:the\s+)?(?P<day2>{_DAY})\s+(?:of\s+)?(?P<month2>{MONTH})(?![a-z])(?:,?\s+(?P<year2>\d{{4}}))?(?!\d|:\d)"
    rf"|(?P<year3>\d{{4}})-(?P<month3>\d\d)-(?P<day3>\d\d)\b)"
    rf"|\b{_WEEKDAY_ALONE}\b(?!s\b)", re.I)
# "next Friday", "last Monday", "every Sunday" never name today.
NOT_TODAY_WINDOW = 64   # characters before a date where those words are looked for
_NOT_TODAY_BEFORE = re.compile(r"\b(?:next|last|every|each|previous|following|coming|past|until|till|since)\s+$", re.I)


def calendar_proposer(text: str) -> list[Proposal]:
    """A Calendar call where the text writes today's date or weekday (as the tool answers it), placed where the
    date starts; a mention of another day, or "next Friday", gets none. Full dates score higher than a weekday."""
    day = today()
    out = []
    for m in _DATE.finditer(text):
        # Only the words right before the date matter: searching from the text's start made a long text quadratic
        # (64 KB of weekdays took 11.5 s).
        if _NOT_TODAY_BEFORE.search(text, max(0, m.start() - NOT_TODAY_WINDOW), m.start()):
            continue
        found = _mention(m)
        if found is None:
            continue
        weekday, year, month, mday = found
        if weekday is not None and weekday != day.weekday():
            continue
        if month is not None and (month, mday) != (day.month, day.day):
            continue
        if year is not None and year != day.year:
            continue
        # A call goes before the weekday when one is written, else before the day ("on the 6th": before "6th").
        start = m.start("day2") if m.group("day2") and not m.group("weekday") else m.start()
        score = 1.0 if year is not None else 0.9 if month is not None else 0.8
        out.append(Proposal(start, (), score))
    return out


def _mention(m: re.Match[str]) -> tuple[int | None, int | None, int | None, int | None] | None:
    """(weekday 0-6, year, month, day) of a date match, None where the text does not say; None for no real date."""
    named = m.group("weekday") or m.group("alone")
    weekday = _WEEKDAY_STEMS.index(named[:3].lower()) if named else None
    if m.group("alone"):
        return weekday, None, None, None
    year: int | None
    if m.group("year3"):
        year, month, mday = int(m.group("year3")), int(m.group("month3")), int(m.group("day3"))
    else:
        k = "1" if m.group("month1") else "2"
        month = _MONTH_STEMS.index(m.group("month" + k)[:3].lower()) + 1
        mday = int(re.sub(r"\D", "", m.group("day" + k)))
        year = int(m.group("year" + k)) if m.group("year" + k) else None
    if not (1 <= month <= 12 and 1 <= mday <= 31):
        return None
    return weekday, year, month, mday
