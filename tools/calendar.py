"""The Calendar tool: today's date as a sentence, with an injectable clock for tests and evaluation."""
from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable

from toolcall.errors import ConfigError

ENV_VAR = "TOOLCALL_TODAY"  # YYYY-MM-DD: pins "today" for a whole run (evaluation, tests in subprocesses)

_fixed: dt.date | None = None
clock: Callable[[], dt.date] = dt.date.today


def set_today(day: dt.date | str | None) -> None:
    """Pin today's date (a date or "YYYY-MM-DD"); None goes back to the environment variable or the clock."""
    global _fixed
    _fixed = _parse(day, "set_today") if isinstance(day, str) else day


def _parse(text: str, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError as err:
        raise ConfigError(f"{where}: {text!r} is not a date in the form YYYY-MM-DD") from err


def today() -> dt.date:
    """The pinned date, else $TOOLCALL_TODAY, else `clock()`."""
    if _fixed is not None:
        return _fixed
    env = os.environ.get(ENV_VAR)
    if env:
        return _parse(env, ENV_VAR)
    return clock()


def calendar() -> str:
    """Tell today's date.

    Returns:
        A sentence like "Today is Monday, January 30, 2023."
    """
    day = today()
    return f"Today is {day:%A}, {day:%B} {day.day}, {day.year}."
