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


def test_a_long_text_is_split_at_the_best_break_into_pieces_that_fit() -> None:
    from toolcall.data_gen.inputs import split_text

    paragraphs = ["First paragraph. " * 10, "Second one, longer. " * 9, "Third. " * 3]
    text = "\n\n".join(p.strip() for p in paragraphs)
    pieces = split_text(text, 250)
    assert all(len(p) <= 250 for p in pieces) and pieces[0] == paragraphs[0].strip()  # at the paragraph break
    assert " ".join(pieces).split() == text.split()  # nothing lost or reordered, only the white space at the cuts
    assert all(p.endswith(".") for p in split_text("A sentence here. " * 60, 200))  # at a sentence's end
    words = split_text("word " * 1000, 103)
    assert all(w.split() == ["word"] * len(w.split()) for w in words) and all(len(w) <= 103 for w in words)
    assert split_text("x" * 250, 100) == ["x" * 100, "x" * 100, "x" * 50]  # no break at all: cut at the limit
    assert split_text("a" + " " * 10_000 + "b", 200) == ["a", "b"] and split_text("  short  ", 100) == ["short"]


def test_a_long_split_stays_linear() -> None:
    """Each piece was sliced off the rest of the text, copying it: quadratic in a long document."""
    import time

    from toolcall.data_gen.inputs import split_text

    text = "word " * 2_000_000   # 10 MB
    began = time.process_time()
    assert len(split_text(text, 4000)) == 2500
    assert time.process_time() - began < 5


def test_a_text_longer_than_max_chars_becomes_texts_of_its_own_with_their_part(tmp_path: Path) -> None:
    """One 60 KB document took over 15 minutes of one forward pass, past the model's context."""
    long = "\n\n".join(f"Paragraph {i}: " + "some words here. " * 20 for i in range(12))
    (tmp_path / "in.jsonl").write_text(json.dumps({"text": long, "id": "doc", "date": "2024-01-05"}) + "\n"
                                       + json.dumps({"text": "short", "id": 2}) + "\n")
    texts = read_inputs(tmp_path / "in.jsonl", limit=1, max_chars=1000)
    assert len(texts) > 3 and all(len(t) <= 1000 for t, _ in texts)
    assert [f for _, f in texts] == [{"id": "doc", "date": "2024-01-05", "part": k} for k in range(len(texts))]
    assert read_inputs(tmp_path / "in.jsonl", max_chars=1000)[-1] == ("short", {"id": 2})  # no "part" when whole
    assert read_inputs(tmp_path / "in.jsonl")[0] == (long, {"id": "doc", "date": "2024-01-05"})


def test_files_joined_with_cat_lose_every_byte_order_mark(tmp_path: Path) -> None:
    """Each joined file's BOM stayed at the start of its first text (.txt) or refused the line (.jsonl)."""
    (tmp_path / "t.txt").write_bytes(b"\xef\xbb\xbfFirst text.\n\xef\xbb\xbfSecond text.\n")
    assert [t for t, _ in read_inputs(tmp_path / "t.txt")] == ["First text.", "Second text."]
    (tmp_path / "t.jsonl").write_bytes(b'\xef\xbb\xbf{"text": "a"}\n\xef\xbb\xbf{"text": "b"}\n')
    assert [t for t, _ in read_inputs(tmp_path / "t.jsonl")] == ["a", "b"]


def test_a_split_keeps_cjk_sentences_letters_and_emoji_whole() -> None:
    from toolcall.data_gen.inputs import split_text

    cjk = "我们买了十二个苹果。我们又买了三十个梨。所以一共是四十二个水果。" * 4
    assert all(piece.endswith("。") for piece in split_text(cjk, 40))  # a sentence's end, not mid-sentence
    accent = "a" * 94 + "e\u0301" + "b" * 10
    family = "x" * 93 + "\U0001f468\u200d\U0001f469\u200d\U0001f467" + "y" * 10
    for text in (accent, family):
        pieces = split_text(text, 95)
        assert "".join(pieces) == text and len(pieces) == 2
        assert pieces[1][0] in "e\U0001f468"  # the whole letter or emoji sequence went to the next piece
