"""Fixtures for the server tests: a live server (uvicorn in a thread, fake backend) per test module."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from live_server import Live, SlowFake, script, serve, settings


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    yield from serve(SlowFake(script=script), settings())
