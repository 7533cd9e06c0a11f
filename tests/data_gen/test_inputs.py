"""Reading data-gen's input texts: what is refused, with where, and what is kept of each record."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from toolcall.data_gen.inputs import read_inputs

from toolcall.errors import ConfigError


def test_a_folder_or_a_pipe_is_no_input_file_and_the_suffix_is_read_in_any_case(tmp_path: Path) -> None:
    # Both said "does not exist"; .JSONL and .TXT were refused.
    os.mkfifo(tmp_path / "pipe.jsonl")
    for path in (tmp_path, tmp_path / "pipe.jsonl"):
        with pytest.raises(ConfigError, match="is not a regular file"):
            read_inputs(path)
    with pytest.raises(ConfigError, match="does not exist"):
        read_inputs(tmp_path / "none.jsonl")
    (tmp_path / "texts.JSONL").write_text(json.dumps({"text": "a"}) + "\n")
    (tmp_path / "texts.TXT").write_text("b\n")
    assert read_inputs(tmp_path / "texts.JSONL") == [("a", {})] and read_inputs(tmp_path / "texts.TXT") == [("b", {})]


def test_a_date_is_kept_as_the_day_it_names(tmp_path: Path) -> None:
    # " 2024-01-05\n" was accepted and copied into the output record as written.
    (tmp_path / "in.jsonl").write_text(json.dumps({"text": "a", "date": " 2024-01-05\n", "id": 7}) + "\n")
    assert read_inputs(tmp_path / "in.jsonl") == [("a", {"date": "2024-01-05", "id": 7})]


def test_a_txt_file_is_one_text_a_line_whatever_its_line_ends(tmp_path: Path) -> None:
    # A file saved with CR alone between lines (classic Mac) was one text holding every line.
    texts = ["It sells 17 * 23 = 391 pens.", "Four times 5 is 20.", "The sum 12 + 30 = 42."]
    for name, end in (("lf", "\n"), ("crlf", "\r\n"), ("cr", "\r")):
        (tmp_path / f"{name}.txt").write_bytes((end.join(texts) + end + end).encode())
        assert read_inputs(tmp_path / f"{name}.txt") == [(t, {}) for t in texts], name
        assert read_inputs(tmp_path / f"{name}.txt", limit=2) == [(t, {}) for t in texts[:2]], name
