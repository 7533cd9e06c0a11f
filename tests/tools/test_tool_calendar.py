"""tools.calendar: the paper's sentence, with the date pinned by set_today, TOOLCALL_TODAY or the clock."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from toolcall.tools import calendar as cal

from toolcall.errors import ConfigError


@pytest.fixture(autouse=True)
def _reset(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(cal.ENV_VAR, raising=False)
    yield
    cal.set_today(None)


def test_paper_sentence() -> None:
    cal.set_today(dt.date(2023, 1, 30))
    assert cal.calendar() == "Today is Monday, January 30, 2023."
    cal.set_today("2024-02-29")
    assert cal.calendar() == "Today is Thursday, February 29, 2024."


def test_environment_variable_and_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cal, "clock", lambda: dt.date(2000, 1, 1))
    assert cal.calendar() == "Today is Saturday, January 1, 2000."
    monkeypatch.setenv(cal.ENV_VAR, "1999-12-31")
    assert cal.calendar() == "Today is Friday, December 31, 1999."
    cal.set_today("2023-01-30")  # an explicit pin wins over the environment
    assert cal.calendar().startswith("Today is Monday")


def test_bad_dates_are_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        cal.set_today("30/01/2023")
    for other_iso_form in ("20230130", "2023-W05-1"):   # dates fromisoformat reads, but not as the message says
        with pytest.raises(ConfigError, match=f"set_today: '{other_iso_form}' is not a date in the form YYYY-MM-DD"):
            cal.set_today(other_iso_form)
    assert cal.parse_date(" 2023-01-30 ", "x") == dt.date(2023, 1, 30)
    with pytest.raises(ConfigError, match="set_today takes a date"):
        cal.set_today(5)   # type: ignore[arg-type]
    monkeypatch.setenv(cal.ENV_VAR, "tomorrow")
    with pytest.raises(ConfigError, match="TOOLCALL_TODAY"):
        cal.calendar()


def test_through_the_registry_no_argument_and_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    from toolcall.registry import default_registry

    reg = default_registry(["Calendar"], entry_points=False)
    monkeypatch.setenv(cal.ENV_VAR, "2023-01-30")
    assert reg.call("Calendar", ("",)).text == "Today is Monday, January 30, 2023."
    monkeypatch.setenv(cal.ENV_VAR, "2023-01-31")
    assert reg.call("calendar", ()).text == "Today is Tuesday, January 31, 2023."


def test_proposer_places_a_call_where_todays_date_or_weekday_is_written() -> None:
    cal.set_today("2024-05-17")     # a Friday
    text = ("Posted Friday, May 17, 2024: the gym is shut today, Friday. It reopens on Monday, May 20, and the "
            "next Friday is a holiday. Classes resume on 17 May 2025; the log says 2024-05-17 and 2024-05-16.")
    found = {text[p.position:p.position + 12]: p.score for p in cal.calendar_proposer(text)}
    assert found == {"Friday, May ": 1.0, "Friday. It r": 0.8, "2024-05-17 a": 1.0}
    assert all(p.args == () for p in cal.calendar_proposer(text))


def test_proposer_reads_day_month_orders_and_ordinals() -> None:
    cal.set_today("2025-06-03")     # a Tuesday
    text = "It is June 3 today; the 3rd of June is also when, on Tuesday the 3rd, we met. Tuesdays are busy."
    starts = [text[p.position:p.position + 6] for p in cal.calendar_proposer(text)]
    assert starts == ["June 3", "3rd of", "Tuesda"]


def test_proposer_finds_nothing_on_another_day() -> None:
    cal.set_today("2023-01-30")
    assert cal.calendar_proposer("Today is Friday, March 6, 2026, and on Saturday we travel.") == []


def test_proposer_reads_cut_names_as_mail_and_changelogs_write_them() -> None:
    cal.set_today("2023-05-06")     # a Saturday
    text = ("  * Fix checking for ATK_STATE_COLLAPSED (reported Fri, 05 May 2023).\n\n"
            " -- Samuel Thibault <sthibault@debian.org>  Sat, 06 May 2023 21:25:54 +0200")
    assert [text[p.position:p.position + 16] for p in cal.calendar_proposer(text)] == ["Sat, 06 May 2023"]
    starts = [p.position for p in cal.calendar_proposer("Sent Sat. May 6, 2023; due Sept. 9; a sat 6 marker, Jun 6")]
    assert starts == [5]
    # a cut weekday alone is another word far more often than a day
    assert cal.calendar_proposer("We sat down; the Sun was out; Wed 9 Jun at the latest.") == []


def test_the_proposer_reads_a_long_text_in_linear_time() -> None:
    import time

    cal.set_today("2023-01-30")   # a Monday
    assert [p.position for p in cal.calendar_proposer("See you next Monday. Today is Monday.")] == [30]
    # The words before each date were searched from the text's start: 64 KB of weekdays took 11.5 s, 128 KB ~46 s.
    text = "Monday " * 18_000
    began = time.perf_counter()
    assert len(cal.calendar_proposer(text)) == 18_000
    assert time.perf_counter() - began < 8
