"""The grammars are package data, built once per process, whatever the working directory."""
from __future__ import annotations

from pathlib import Path

import pytest

from toolcall.dialects import parse
from toolcall.dialects.base import load_parser


def test_grammars_load_from_the_package_not_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "common.lark").write_text("this is not a grammar\n")  # a stray file must not be picked up
    load_parser.cache_clear()
    try:
        assert parse("[Calendar()]").calls[0].tool == "Calendar"
        assert parse('<|Commands|>: Search("a")<eoc>', "moss").calls[0].args == ("a",)
    finally:
        load_parser.cache_clear()


def test_parsers_are_built_once() -> None:
    first = load_parser("toolformer.lark", ("start", "pending"))
    assert load_parser("toolformer.lark", ("start", "pending")) is first
    assert first.options.parser == "lalr"


def test_grammar_files_share_common_terminals() -> None:
    grammars = Path(__file__).resolve().parents[2] / "grammars"
    for name in ("toolformer.lark", "moss.lark"):
        assert "%import .common" in (grammars / name).read_text(encoding="utf-8")
