"""Fixtures for data_gen tests: a tiny Llama trained for a moment on bracket calls, and the real tool registry."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def _trained_tiny_scorer() -> Any:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tiny_lm import trained_tiny_model_and_tokenizer

    from toolcall.backends.hf_scoring import HFScorer

    model, tok = trained_tiny_model_and_tokenizer()
    return HFScorer(model, tok)


@pytest.fixture()
def tiny_scorer(request: pytest.FixtureRequest, _trained_tiny_scorer: Any) -> Any:
    """The tiny Llama, trained for a few seconds on bracket calls; a test using it must be marked slow."""
    if request.node.get_closest_marker("slow") is None:
        pytest.fail(f"{request.node.nodeid} uses the tiny trained LM: mark it @pytest.mark.slow so the fast tier stays fast")
    return _trained_tiny_scorer


@pytest.fixture(scope="session")
def registry() -> Any:
    from toolcall.registry import default_registry

    return default_registry(["calculator", "calendar"])


@pytest.fixture()
def pinned_date() -> Iterator[None]:
    """Today is 2023-01-30 for the Calendar tool (what the tests' gold calls say), and the real date again after."""
    from toolcall.tools import calendar

    calendar.set_today("2023-01-30")
    yield
    calendar.set_today(None)
