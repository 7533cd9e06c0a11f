"""The folders tools/, grammars/ and data_gen/ install as toolcall.tools, toolcall.grammars and toolcall.data_gen."""
from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("folder", ["tools", "grammars", "data_gen"])
def test_subpackages_import_under_toolcall(folder: str) -> None:
    module = importlib.import_module(f"toolcall.{folder}")
    assert Path(module.__file__).parent == ROOT / folder


@pytest.mark.slow
def test_a_users_own_tools_package_does_not_shadow_ours(tmp_path: Path) -> None:
    # A user project with packages named like our folders, run from its own directory (first on sys.path).
    for name in ("tools", "grammars", "data_gen"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise RuntimeError('the user package was imported')\n")
    script = textwrap.dedent("""
        import toolcall
        from toolcall.dialects import parse
        reg = toolcall.default_registry(["calculator", "calendar"])
        print(reg.call("Calculator", ["6 * 7"]).text, len(parse("[Calendar()]").calls))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["42", "1"]


def test_no_module_imports_the_folders_by_their_bare_names() -> None:
    offenders = []
    for folder in ("toolcall", "tools", "data_gen", "grammars", "benchmarks", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                stripped = line.strip()
                if stripped.startswith(("import tools", "from tools", "import data_gen", "from data_gen",
                                        "import grammars", "from grammars")):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {stripped}")
    assert offenders == []


def test_type_checkers_are_told_the_package_is_typed_and_see_its_lazy_names() -> None:
    # Without py.typed a user's mypy found no hints at all, and every lazily imported name was Any.
    assert (ROOT / "toolcall" / "py.typed").is_file()
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in data["toolcall"]
    source = (ROOT / "toolcall" / "__init__.py").read_text()
    checked = source.split("if TYPE_CHECKING:", 1)[1].split("\n\n", 1)[0]
    import toolcall

    assert all(f" {name}" in checked for name in toolcall._LAZY), "each lazy name is imported for type checkers"
