"""toolcall.jsonl: one reader for every JSON Lines input, errors with file and line."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from toolcall.errors import ConfigError
from toolcall.jsonl import read_jsonl, read_lines, string_field


def test_reads_objects_with_their_line_numbers_and_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "one"}\n\n  \n{"text": "two", "n": 2}\n', encoding="utf-8")
    rows = list(read_jsonl(path))
    assert rows == [(f"{path}:1", {"text": "one"}), (f"{path}:4", {"text": "two", "n": 2})]


@pytest.mark.parametrize(("line", "message"), [
    ('{"text": "x"', "not valid JSON"),
    ('["a list"]', "each line must be a JSON object, found list"),
    ('"a string"', "each line must be a JSON object, found str"),
])
def test_a_bad_line_is_named_by_file_and_number(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "b.jsonl"
    path.write_text('{"text": "fine"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"b\.jsonl:2: {message}"):
        list(read_jsonl(path))


def test_a_missing_file_says_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"corpus .*nope\.jsonl does not exist"):
        list(read_jsonl(tmp_path / "nope.jsonl", "corpus"))


def test_string_field_checks_type_and_blankness() -> None:
    assert string_field({"q": "hi"}, "q", "f:1") == "hi"
    assert string_field({"q": ""}, "q", "f:1", allow_empty=True) == ""
    with pytest.raises(ConfigError, match="f:3: each line needs a non-empty string field 'q'"):
        string_field({"q": "  "}, "q", "f:3")
    with pytest.raises(ConfigError, match="f:4: each line needs a string field 'q'"):
        string_field({"q": 5}, "q", "f:4", allow_empty=True)


def test_bytes_that_are_not_utf8_are_placed_by_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"text": "fine"}\n{"text": "caf' + b"\xe9" + b'"}\n')
    with pytest.raises(ConfigError, match=r"latin1\.jsonl:2:14: input is not UTF-8 text \(byte 0xe9"):
        list(read_jsonl(path))


def test_a_nul_byte_is_placed_by_line_and_column_and_a_json_escape_of_one_is_text(tmp_path: Path) -> None:
    """A NUL byte was read as part of a text; a .jsonl's raw one said "not valid JSON (Expecting value)"."""
    path = tmp_path / "nul.txt"
    path.write_bytes(b"fine\nThe total is 5.\x00 zero\n")
    with pytest.raises(ConfigError, match=r"nul\.txt:2:16: input holds a NUL byte \(0x00\), and text files hold "
                                          r"none \(is it a binary file\? .*tr -d"):
        list(read_lines(path))
    raw = tmp_path / "raw.jsonl"
    raw.write_bytes(b'{"text": "fine"}\n\x00{"text": "x"}\n')
    with pytest.raises(ConfigError, match=r"raw\.jsonl:2:1: corpus holds a NUL byte"):
        list(read_jsonl(raw, "corpus"))
    escaped = tmp_path / "escaped.jsonl"   # JSON's own escape: the value holds U+0000, the file no NUL byte
    escaped.write_text('{"text": "5.\\u0000"}\n', encoding="utf-8")
    assert [r for _, r in read_jsonl(escaped)] == [{"text": "5.\x00"}]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_a_utf16_file_without_a_byte_order_mark_is_told_to_be_saved_as_utf8(tmp_path: Path, encoding: str) -> None:
    """A UTF-16LE .txt without a BOM was read as texts with a NUL after every letter."""
    path = tmp_path / "u16.txt"
    path.write_bytes("2 + 3 = 5.\n17 * 23 = 391.\n".encode(encoding))
    column = 2 if encoding == "utf-16-le" else 1
    with pytest.raises(ConfigError, match=rf"u16\.txt:1:{column}: input file holds a NUL byte \(0x00\), and text files "
                                          r"hold none; the file looks like UTF-16 \(a NUL at every other byte\): "
                                          r"save it as UTF-8"):
        list(read_lines(path, "input file"))


def test_a_byte_order_mark_at_the_start_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "one"}\n')
    assert [r for _, r in read_jsonl(path)] == [{"text": "one"}]
    assert [line for _, line in read_lines(path)] == ['{"text": "one"}\n']


def test_json_nested_past_the_reader_is_an_error_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text('{"text": ' + "[" * 100_000 + "]" * 100_000 + "}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"deep\.jsonl:1: the JSON nests deeper than can be read"):
        list(read_jsonl(path))


def test_a_lone_surrogate_escape_is_refused_and_a_pair_is_text(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"text": "smile \\ud83d\\ude00"}\n{"meta": {"tags": ["ok", "bad \\udc00"]}}\n', encoding="utf-8")
    rows = read_jsonl(path)
    assert next(rows)[1] == {"text": "smile \U0001F600"}
    with pytest.raises(ConfigError, match=r"s\.jsonl:2: field 'meta'\['tags'\]\[1\] holds a lone UTF-16 surrogate"):
        next(rows)


def test_an_integer_past_pythons_digit_limit_is_an_error_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    path.write_text('{"a": 1}\n{"answer": ' + "9" * 5000 + "}\n")
    # json.loads raised a ValueError no reader caught: a traceback from eval, train and data-gen.
    with pytest.raises(ConfigError, match=r"long.jsonl:2: a number in it is too long to read"):
        list(read_jsonl(path))


@pytest.mark.parametrize("text", ['[\n  {"question": "a"}\n]\n', '[{"question": "a"}]\n', '{\n  "question": "a"\n}\n'])
def test_a_json_document_is_told_from_json_lines(tmp_path: Path, text: str) -> None:
    # A pretty-printed array (SVAMP's own file) was "not valid JSON (Expecting value at column 1)" and no more.
    f = tmp_path / "data.json"
    f.write_text(text)
    with pytest.raises(ConfigError, match="data.json:1: .*looks like one JSON document.*one object per line") as err:
        list(read_jsonl(f))
    # The command it gives converts the file (for an object, it iterated the object's keys).
    command = re.search(r'convert it with python -c "(.*)" FILE > FILE.jsonl', str(err.value))
    assert command is not None
    out = subprocess.run([sys.executable, "-c", command.group(1), str(f)], capture_output=True, text=True, check=True)
    converted = tmp_path / "data.jsonl"
    converted.write_text(out.stdout)
    assert [record for _, record in read_jsonl(converted)] == [{"question": "a"}]


def test_a_line_past_the_limit_is_an_error_at_its_line_having_read_no_further(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import gzip

    import toolcall.jsonl as jsonl

    monkeypatch.setattr(jsonl, "MAX_LINE_BYTES", 1_000)
    path = tmp_path / "bomb.jsonl.gz"
    with gzip.open(path, "wb") as fh:  # 80 bytes of gzip for a 1 MB line
        fh.write(b'{"text": "fine"}\n{"text": "' + b"a" * 1_000_000 + b'"}\n')
    rows = read_jsonl(path)
    assert next(rows)[1] == {"text": "fine"}
    with pytest.raises(ConfigError, match=r"bomb\.jsonl\.gz:2: input has a line longer than 1,000 bytes"):
        next(rows)
    exact = tmp_path / "exact.txt"
    exact.write_bytes(b"b" * 999 + b"\n" + b"c" * 1_000)   # 1,000 bytes each, with and without a line end
    assert [len(line) for _, line in read_lines(exact)] == [1_000, 1_000]


def test_lines_past_a_total_are_an_error_having_read_no_further(tmp_path: Path) -> None:
    path = tmp_path / "book.txt"
    path.write_text("a line of ten\n" * 100, encoding="utf-8")
    assert len(list(read_lines(path, max_bytes=1_400))) == 100
    with pytest.raises(ConfigError, match=r"book\.txt: input is longer than 1,399 bytes \(read no further, at line "
                                          r"100\)"):
        list(read_lines(path, max_bytes=1_399))


def test_the_line_end_does_not_count_and_classic_mac_files_are_read_past_the_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from toolcall.data_gen.inputs import read_inputs

    import toolcall.jsonl as jsonl

    monkeypatch.setattr(jsonl, "MAX_LINE_BYTES", 10)
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(b"0123456789\r\n" + b"abcdefghij\n" + b"0123456789")
    assert [line for _, line in read_lines(crlf)] == ["0123456789\r\n", "abcdefghij\n", "0123456789"]
    long = tmp_path / "long.txt"
    long.write_bytes(b"0123456789A\r\n")
    with pytest.raises(ConfigError, match=r"long\.txt:1: input has a line longer than 10 bytes"):
        list(read_lines(long))
    # A file saved with CR alone between its texts is one "line" to readline: 45 bytes here, past the limit
    texts = [f"text {i}" for i in range(7)]
    mac = tmp_path / "mac.txt"
    mac.write_bytes("\r".join(texts).encode() + b"\r")
    assert "".join(line for _, line in read_lines(mac)).encode() == mac.read_bytes()
    assert [t for t, _ in read_inputs(mac)] == texts
    assert read_inputs(mac, txt="whole") == [("\n".join(texts), {})]
    run_on = tmp_path / "run_on.txt"     # CRs, then eleven bytes without one
    run_on.write_bytes(b"ab\rcd\r0123456789A")
    with pytest.raises(ConfigError, match=r"run_on\.txt:2: input has a line longer than 10 bytes"):
        list(read_lines(run_on))
