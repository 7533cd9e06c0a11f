"""Load a Python file that no package holds (a benchmark script, a data builder, another test file) as a module."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TESTS = Path(__file__).resolve().parent
BENCHMARKS = TESTS.parent / "benchmarks"


def load_script(path: Path, name: str | None = None, beside: bool = False) -> ModuleType:
    """The file at `path`, executed as a module named `name` (default: its stem); `beside` puts its folder on
    sys.path first, for a script that imports its neighbours."""
    if beside and str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    assert spec is not None and spec.loader is not None, f"cannot load {path}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
