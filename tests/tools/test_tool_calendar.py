"""tools.calendar: the paper's sentence, with the date pinned by set_today, TOOLCALL_TODAY or the clock."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from toolcall.errors import ConfigError
from toolcall.tools import calendar as cal


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
