"""The `mcp` SDK is optional: without it, `toolcall.mcp`'s modules fail with an install hint, and the CLI still runs."""
from __future__ import annotations

import importlib
import sys

import pytest

from toolcall.errors import MissingDependencyError


@pytest.mark.parametrize("module", ["toolcall.mcp.client", "toolcall.mcp.server"])
def test_missing_sdk_names_the_extra(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "mcp" or m.startswith("mcp.") or m.startswith("toolcall.mcp.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mcp", None)  # what an uninstalled package looks like to `import`
    with pytest.raises(MissingDependencyError, match=r"pip install 'toolcall\[mcp\]'"):
        importlib.import_module(module)
    from toolcall.cli import (
        build_parser,  # registering mcp-serve and --mcp needs no SDK
    )

    assert build_parser().parse_args(["mcp-serve", "--transport", "http"]).port == 8766
