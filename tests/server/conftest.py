"""Fixtures for the server tests: a live server (uvicorn in a thread, fake backend) per test module."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from live_server import Live, SlowFake, script, serve, settings  # noqa: E402


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    yield from serve(SlowFake(script=script), settings())
