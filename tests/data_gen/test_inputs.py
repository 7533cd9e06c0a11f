"""Reading data-gen's input texts: what is refused, with where, and what is kept of each record."""
from __future__ import annotations

import bz2
import datetime as dt
import gzip
import json
import lzma
import os
from pathlib import Path
from typing import Any

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


ROWS = [{"text": f"A shop sold {i} boxes of 12 pens: 12 * {i} = {12 * i} pens.", "url": f"https://example.org/{i}"}
        for i in range(1, 6)]


@pytest.mark.parametrize(("name", "opener"), [("c4.json.gz", gzip.open), ("texts.jsonl.bz2", bz2.open),
                                              ("texts.jsonl.xz", lzma.open), ("lines.txt.gz", gzip.open)])
def test_a_compressed_file_is_read_as_its_name_says(name: str, opener: Any, tmp_path: Path) -> None:
    # C4's shards are .json.gz JSON Lines; each was refused ("must end in .jsonl or .txt").
    lines = [r["text"] if name.startswith("lines") else json.dumps(r) for r in ROWS]
    with opener(tmp_path / name, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    assert read_inputs(tmp_path / name) == [(r["text"], {}) for r in ROWS]
    assert read_inputs(tmp_path / name, limit=2) == [(r["text"], {}) for r in ROWS[:2]]


def test_a_damaged_or_misnamed_compressed_file_is_an_error_after_the_lines_it_read(tmp_path: Path) -> None:
    data = gzip.compress("".join(json.dumps({"text": os.urandom(30).hex()}) + "\n" for _ in range(400)).encode())
    (tmp_path / "cut.jsonl.gz").write_bytes(data[:len(data) // 2])   # a download cut short
    with pytest.raises(ConfigError, match=r"cut.jsonl.gz: input file cannot be decompressed after line [1-9][\d,]*"):
        read_inputs(tmp_path / "cut.jsonl.gz")
    (tmp_path / "plain.jsonl.gz").write_text(json.dumps({"text": "a"}) + "\n")
    with pytest.raises(ConfigError, match=r"cannot be decompressed after line 0 .*not what its name says"):
        read_inputs(tmp_path / "plain.jsonl.gz")
    for name in ("texts.csv", "texts.parquet.gz", "texts.gz"):
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(ConfigError, match=r"must end in .jsonl, .json \(JSON Lines\), .txt or .parquet"):
            read_inputs(tmp_path / name)


def test_another_field_holds_the_text_and_a_missing_one_names_those_there(tmp_path: Path) -> None:
    path = tmp_path / "squad.jsonl"
    path.write_text("".join(json.dumps({"title": "Normans", "context": r["text"], "n": 3}) + "\n" for r in ROWS))
    with pytest.raises(ConfigError, match=r"squad.jsonl:1: each line needs a string field 'text'; its text fields: "
                                          r"title, context \(--text-field names the one to read\)"):
        read_inputs(path)
    assert read_inputs(path, text_field="context") == [(r["text"], {}) for r in ROWS]
    with pytest.raises(ConfigError, match="squad.jsonl:1: field 'n' must be a string, got int"):
        read_inputs(path, text_field="n")


def test_a_parquet_file_is_read_by_its_text_column_with_its_date_and_id(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    days = [dt.datetime(2024, 1, i, 9, 30) for i in range(1, 6)]
    table = pa.Table.from_pylist([{**r, "id": i, "date": day} for i, (r, day) in enumerate(zip(ROWS, days))])
    pq.write_table(table, tmp_path / "web.parquet", row_group_size=2)
    assert read_inputs(tmp_path / "web.parquet") == [(r["text"], {"date": f"2024-01-0{i + 1}", "id": i})
                                                      for i, r in enumerate(ROWS)]
    assert len(read_inputs(tmp_path / "web.parquet", limit=3)) == 3
    with pytest.raises(ConfigError, match=r"web.parquet has no column 'content'; its columns: text, url, id, date"):
        read_inputs(tmp_path / "web.parquet", text_field="content")
    with pytest.raises(ConfigError, match=r"web.parquet: row 1: column 'id' must hold text, got int"):
        read_inputs(tmp_path / "web.parquet", text_field="id")
    (tmp_path / "fake.parquet").write_text("text\nnot parquet\n")
    with pytest.raises(ConfigError, match="fake.parquet cannot be read as Parquet"):
        read_inputs(tmp_path / "fake.parquet")


def test_a_whole_txt_file_is_one_document_split_at_its_paragraphs(tmp_path: Path) -> None:
    # A book's lines are wrapped: read a line at a time, each text was a fragment of a sentence.
    paragraph = ("It was a bright cold day in April, and the clocks\nwere striking thirteen. He had 3 coins and "
                 "spent 2,\nso 3 - 2 = 1 was left.")
    (tmp_path / "book.txt").write_text("\r\n\r\n".join([paragraph.replace("\n", "\r\n")] * 40) + "\r\n")
    texts = read_inputs(tmp_path / "book.txt", max_chars=400, txt="whole")
    assert [fields for _, fields in texts] == [{"part": k} for k in range(len(texts))] and len(texts) == 14
    assert all(text.startswith("It was") and text.endswith("was left.") for text, _ in texts)
    assert "\n\n".join(text for text, _ in texts) == "\n\n".join([paragraph] * 40)
    assert len(read_inputs(tmp_path / "book.txt", limit=3, max_chars=400, txt="whole")) == 3  # --limit counts parts
    (tmp_path / "blank.txt").write_text("\n \n")
    assert read_inputs(tmp_path / "blank.txt", txt="whole") == []


def test_a_limit_reads_and_checks_no_text_past_it(tmp_path: Path) -> None:
    # The reader took one more record, and its bad date (or a damaged end) failed a --limit run that never used it.
    (tmp_path / "dates.jsonl").write_text('{"text": "one", "date": "2024-01-05"}\n{"text": "two", "date": "yesterday"}\n')
    assert read_inputs(tmp_path / "dates.jsonl", limit=1) == [("one", {"date": "2024-01-05"})]
    data = gzip.compress(("".join(json.dumps({"text": os.urandom(30).hex()}) + "\n" for _ in range(400))).encode())
    (tmp_path / "cut.jsonl.gz").write_bytes(data[:len(data) // 2])
    assert len(read_inputs(tmp_path / "cut.jsonl.gz", limit=3)) == 3


def test_txt_whole_changes_nothing_for_other_inputs(tmp_path: Path) -> None:
    long = " ".join(["A sentence of some length."] * 400)
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"text": long, "id": i}) + "\n" for i in range(2)))
    lines, whole = (read_inputs(tmp_path / "docs.jsonl", 2, 4000, txt=txt) for txt in ("lines", "whole"))
    assert lines == whole and {fields["id"] for _, fields in whole} == {0, 1}


def test_web_corpora_dates_are_read_as_the_day_they_name(tmp_path: Path) -> None:
    # FineWeb's "date" column holds "2013-05-18T05:48:54Z": every such run failed at its first row ("is not a date in
    # the form YYYY-MM-DD"); CCNet dates its documents in "date_download", C4 in "timestamp".
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    fineweb = [{"text": "It rained.", "id": "<urn:uuid:1>", "date": "2013-05-18T05:48:54Z", "url": "https://a.example"},
               {"text": "It snowed.", "id": "<urn:uuid:2>", "date": "2013-05-18T23:30:00-05:00", "url": "https://b"}]
    pq.write_table(pa.Table.from_pylist(fineweb), tmp_path / "000_00000.parquet")
    assert read_inputs(tmp_path / "000_00000.parquet") == [
        ("It rained.", {"date": "2013-05-18", "id": "<urn:uuid:1>"}),
        ("It snowed.", {"date": "2013-05-18", "id": "<urn:uuid:2>"})]   # the day where it was written
    assert read_inputs(tmp_path / "000_00000.parquet", id_field="url")[0][1] == {"date": "2013-05-18",
                                                                               "id": "https://a.example"}
    ccnet = [{"raw_content": "Prices rose 3%.", "date_download": "2019-01-16T09:03:29Z", "url": "http://c.example"},
             {"raw_content": "A letter.", "date_download": "Sat, 06 May 2023 21:25:54 +0200", "url": "http://d"}]
    with gzip.open(tmp_path / "en_head_0000.json.gz", "wt", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in ccnet))
    assert read_inputs(tmp_path / "en_head_0000.json.gz", text_field="raw_content", date_field="date_download",
                       id_field="url") == [("Prices rose 3%.", {"date": "2019-01-16", "id": "http://c.example"}),
                                           ("A letter.", {"date": "2023-05-06", "id": "http://d"})]
    (tmp_path / "bad.jsonl").write_text(json.dumps({"text": "x", "timestamp": "last Tuesday"}) + "\n")
    with pytest.raises(ConfigError, match=r"bad.jsonl:1: 'timestamp' \(the document's date\): 'last Tuesday' is "
                                          r"not a date: write YYYY-MM-DD, an ISO 8601 timestamp"):
        read_inputs(tmp_path / "bad.jsonl", date_field="timestamp")


def test_a_date_or_id_field_that_names_nothing_or_the_text_is_an_error(tmp_path: Path) -> None:
    from toolcall.data_gen.config import DataGenConfig

    # A misspelt --date-field ran without dates: the Calendar answered for the clock, without a word. A JSON Lines
    # file may hold the field past --limit, so it is said, not refused.
    (tmp_path / "c4.jsonl").write_text(json.dumps({"text": "Today is Monday.", "timestamp": "2024-03-04T10:00Z"}) + "\n")
    with pytest.warns(RuntimeWarning, match=r"--date-field 'timestmap': none of the 1 input texts read from "
                                            r".*c4.jsonl has that field"):
        assert read_inputs(tmp_path / "c4.jsonl", date_field="timestmap") == [("Today is Monday.", {})]
    with pytest.warns(RuntimeWarning, match=r"--id-field 'url': none of the 1 input texts read"):
        read_inputs(tmp_path / "c4.jsonl", id_field="url")
    assert read_inputs(tmp_path / "c4.jsonl", date_field="timestamp") == [("Today is Monday.", {"date": "2024-03-04"})]
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"text": ["a"], "date_download": ["2019-01-16T09:03:29Z"]}), tmp_path / "cc.parquet")
    with pytest.raises(ConfigError, match=r"cc.parquet has no column 'date_downlaod' \(--date-field\); its columns: "
                                          r"text, date_download"):
        read_inputs(tmp_path / "cc.parquet", date_field="date_downlaod")
    for flag in ("date-field", "id-field"):
        with pytest.raises(ConfigError, match=f"--text-field and --{flag} both name the field 'text'"):
            DataGenConfig(**{flag.replace("-", "_"): "text"})
    with pytest.raises(ConfigError, match="--text-field and --id-field both name the field 'id'.*give --id-field "
                                          "another field"):
        DataGenConfig(text_field="id")  # --id-field's default: the message named only the flag never typed
    (tmp_path / "long.jsonl").write_text(json.dumps({"text": "a", "date": "y" * 5000}) + "\n")
    with pytest.raises(ConfigError) as err:
        read_inputs(tmp_path / "long.jsonl")
    assert len(str(err.value)) < 400


def test_a_null_text_cell_a_lowercase_t_and_nested_parquet_values(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    import decimal

    from toolcall.jsonl import read_records

    # An empty text cell was a KeyError with a traceback once empty cells became fields not given.
    pq.write_table(pa.table({"text": pa.array([None, "a"], pa.string()), "id": [1, 2]}), tmp_path / "nt.parquet")
    with pytest.raises(ConfigError, match=r"nt.parquet: row 1: column 'text' must hold text, got null"):
        read_inputs(tmp_path / "nt.parquet")
    (tmp_path / "t.jsonl").write_text(json.dumps({"text": "a", "date": "2013-05-18t05:48"}) + "\n")   # RFC 3339 allows t
    assert read_inputs(tmp_path / "t.jsonl") == [("a", {"date": "2013-05-18"})]
    nested = pa.table({"row": [{"day": dt.date(2024, 1, 5), "price": decimal.Decimal("1.50"), "days": [dt.date(2024, 1, 6)]}]})
    pq.write_table(nested, tmp_path / "nested.parquet")
    assert [r for _, r in read_records(tmp_path / "nested.parquet")] == [
        {"row": {"day": "2024-01-05", "price": 1.5, "days": ["2024-01-06"]}}]


def test_a_whole_txt_file_past_its_limit_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import toolcall.data_gen.inputs as inputs

    monkeypatch.setattr(inputs, "MAX_WHOLE_BYTES", 100)
    (tmp_path / "book.txt").write_text("A paragraph.\n\n" * 10, encoding="utf-8")   # 140 bytes
    with pytest.raises(ConfigError, match=r"book\.txt: input file is longer than 100 bytes"):
        read_inputs(tmp_path / "book.txt", txt="whole")
    assert read_inputs(tmp_path / "book.txt") == [("A paragraph.", {})] * 10   # a text a line: no total


def test_a_runs_inputs_are_checked_and_counted_when_made_and_read_again_by_each_pass(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's texts are not held: a whole web shard took gigabytes before its first text was done."""
    from toolcall.data_gen import inputs
    from toolcall.data_gen.config import DataGenConfig

    path = tmp_path / "in.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for i in range(5):
            fh.write(json.dumps({"text": f"text {i} " + "word " * 30, "id": i, "timestamp": "2024-03-04T10:00Z"}) + "\n")
    config = DataGenConfig(max_text_chars=100, date_field="timestamp")
    opened: list[int] = []
    real = inputs.read_jsonl
    monkeypatch.setattr(inputs, "read_jsonl", lambda *a, **k: opened.append(1) or real(*a, **k))
    texts = inputs.read_run_inputs(path, 4, config)
    assert len(texts) == 8 and len(opened) == 1   # 4 texts of 2 parts each, read through once to check them
    assert not hasattr(texts, "texts") and all(not isinstance(v, list) for v in vars(texts).values())
    first, again = list(texts), list(texts)
    assert len(opened) == 3 and first == again == read_inputs(path, 4, 100, date_field="timestamp")
    assert first[1] == (first[1][0], {"id": 0, "date": "2024-03-04", "part": 1})
    with gzip.open(path, "at", encoding="utf-8") as fh:
        fh.write("not json\n")
    with pytest.raises(ConfigError, match=r"in.jsonl.gz:6: not valid JSON"):   # a bad line fails the making
        inputs.read_run_inputs(path, None, config)
    with pytest.warns(RuntimeWarning, match=r"--id-field 'url': none of the 4 input texts"):
        inputs.read_run_inputs(path, 2, DataGenConfig(max_text_chars=100, id_field="url"))


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_below_one_is_a_config_error(tmp_path: Path, limit: int) -> None:
    """-1 was itertools.islice's bare ValueError ("Stop argument for islice() must be None or an integer")."""
    (tmp_path / "t.txt").write_text("one\ntwo\n")
    with pytest.raises(ConfigError, match=f"limit must be at least 1, got {limit}"):
        read_inputs(tmp_path / "t.txt", limit=limit)


@pytest.mark.parametrize(("name", "content", "txt"), [("empty.jsonl", "", "lines"), ("blank.jsonl", "\n  \n", "lines"),
                                                      ("blank.txt", "\n\n  \n", "lines"),
                                                      ("blank.txt", " \n\n", "whole")])
def test_a_run_on_a_file_without_a_text_is_refused(tmp_path: Path, name: str, content: str, txt: str) -> None:
    """It ran on nothing, exit 0 with texts_in 0, and left an output directory behind."""
    from toolcall.data_gen.config import DataGenConfig
    from toolcall.data_gen.inputs import read_run_inputs

    (tmp_path / name).write_text(content)
    assert read_inputs(tmp_path / name, txt=txt) == []   # the reader itself may give none
    with pytest.raises(ConfigError, match=rf"input .*{name} holds no texts \(it is empty or only blank lines\); "
                                          "give a file with at least one"):
        read_run_inputs(tmp_path / name, None, DataGenConfig(txt=txt))


def test_an_input_changed_after_it_was_checked_is_an_error_not_other_texts(tmp_path: Path) -> None:
    from toolcall.data_gen.config import DataGenConfig
    from toolcall.data_gen.inputs import read_run_inputs

    path = tmp_path / "in.txt"
    path.write_text("one\ntwo\n")
    texts = read_run_inputs(path, None, DataGenConfig())
    assert [t for t, _ in texts] == ["one", "two"]
    path.write_text("one\ntwo\nthree and more\n")
    with pytest.raises(ConfigError, match=r"in.txt changed while the run was reading it"):
        list(texts)
    texts = read_run_inputs(path, None, DataGenConfig())
    given = iter(texts)
    assert next(given)[0] == "one"
    with path.open("a") as fh:   # a line added while the run reads the file: not a text of this run
        fh.write("four\n")
    with pytest.raises(ConfigError, match=r"changed while the run was reading it"):
        list(given)
