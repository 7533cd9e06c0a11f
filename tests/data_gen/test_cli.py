"""`toolcall data-gen` argument handling that needs no model: usage errors exit 2, refused runs exit 1 with a reason."""
from __future__ import annotations

from pathlib import Path

import pytest

from toolcall.cli import main


def test_non_empty_output_without_resume_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    texts = tmp_path / "t.txt"
    texts.write_text("The total of 2 and 3 is 5.\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "corpus.jsonl").write_text("{}\n")
    assert main(["data-gen", "--input", str(texts), "--output", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "--resume" in err and "another directory" in err


def test_missing_input_and_unknown_tool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data-gen", "--input", str(tmp_path / "nope.txt"), "--output", str(tmp_path / "o")]) == 1
    assert "does not exist" in capsys.readouterr().err
    texts = tmp_path / "t.txt"
    texts.write_text("x\n")
    assert main(["data-gen", "--input", str(texts), "--output", str(tmp_path / "o"), "--tools", "calculater"]) == 1
    assert "Calculator" in capsys.readouterr().err


def test_bad_placement_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["data-gen", "--input", "x.txt", "--output", "o", "--placement", "middle"])
    assert exc.value.code == 2


def test_input_formats(tmp_path: Path) -> None:
    from toolcall.data_gen.inputs import read_texts
    from toolcall.errors import ConfigError

    (tmp_path / "a.txt").write_text("one\n\ntwo\nthree\n")
    assert read_texts(tmp_path / "a.txt", limit=2) == ["one", "two"]
    (tmp_path / "b.jsonl").write_text('{"text": "x"}\n{"id": 1}\n')
    with pytest.raises(ConfigError, match=r"b.jsonl:2"):
        read_texts(tmp_path / "b.jsonl")
