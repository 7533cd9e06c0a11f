"""`toolcall parse`: JSON lines on stdout, FILE:line:column issues on stderr, exit codes."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from toolcall.cli import main

TEXT = "Out of 1400, 400 (or [Calculator(400 / 1400) → 0.29] 29%) passed [1].\nBorn in [QA(\"Where?\")] x [Calculator(3+\n"


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_file_lenient(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "in.txt"
    path.write_text(TEXT, encoding="utf-8")
    assert main(["parse", str(path)]) == 0
    out, err = capsys.readouterr()
    assert lines(out) == [
        {"tool": "Calculator", "args": ["400 / 1400"], "result": "0.29", "start": TEXT.index("[Calc"),
         "end": TEXT.index(" 29%")},
        {"tool": "QA", "args": ["Where?"], "result": None, "start": TEXT.index("[QA"), "end": TEXT.index(" x [")},
    ]
    assert err.splitlines() == [
        f"{path}:2:40: unexpected end of input in a Toolformer call starting at line 2, column 26 (expected '(', ')', ',')"]


def test_strict_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "in.txt"
    path.write_text(TEXT, encoding="utf-8")
    assert main(["parse", "--strict", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"{path}:2:40: ") and "(expected" in err
    good = tmp_path / "good.txt"
    good.write_text("[Calendar()]", encoding="utf-8")
    assert main(["parse", "--strict", str(good)]) == 0
    assert lines(capsys.readouterr().out)[0]["tool"] == "Calendar"


@pytest.mark.parametrize("argv", [["parse", "--dialect", "moss"], ["parse", "--dialect", "moss", "-"]])
def test_stdin_moss(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    turn = '<|Commands|>: Search("a"), Calculate("2+3")<eoc>\n<|Results|>:\nSearch("a") =>\n<|1|>: "ü"\nCalculate("2+3") => \'5\'\n<eor>\n'
    monkeypatch.setattr("sys.stdin", io.StringIO(turn + '<|Commands|>: oops<eoc>\n'))
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert [(d["tool"], d["args"], d["result"]) for d in lines(out)] == [("Search", ["a"], "ü"), ("Calculate", ["2+3"], "5")]
    assert "ü" in out  # not \u-escaped
    assert err.startswith("<stdin>:7:19: ")


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["parse", "--dialect", "qwen"])
    assert info.value.code == 2
    assert "moss" in capsys.readouterr().err


def test_missing_file_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", str(tmp_path / "nope.txt")]) == 1
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize("dialect, text, args", [
    ("hermes", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Dallas", "days": [1, 2]}}\n</tool_call>',
     {"city": "Dallas", "days": [1, 2]}),
    ("pythonic", "[get_weather(city='Dallas', days=[1, 2])]", {"city": "Dallas", "days": [1, 2]}),
    ("llama3_json", '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Dallas", "days": [1, 2]}}',
     {"city": "Dallas", "days": [1, 2]}),
    ("mistral", '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Dallas", "days": [1, 2]}}]',
     {"city": "Dallas", "days": [1, 2]}),
])
def test_keyword_dialects_print_args_as_an_object(dialect: str, text: str, args: dict, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    assert main(["parse", "--dialect", dialect]) == 0
    out, err = capsys.readouterr()
    (line,) = lines(out)
    assert line["tool"] == "get_weather" and line["args"] == args and line["result"] is None and err == ""
    assert list(line) == ["tool", "args", "result", "start", "end"] and line["end"] <= len(text)


def test_keyword_dialect_malformed_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "reply.txt"
    path.write_text('ok\n<tool_call>\n{"name": "f", "arguments": {"a": 1}\n</tool_call>\n', encoding="utf-8")
    assert main(["parse", "--dialect", "hermes", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"{path}:4:1: unexpected '</tool_call>' in a <tool_call> block")
    path.write_text('<tool_call>\n{"name": "f"}, "arguments": {}}\n</tool_call>', encoding="utf-8")
    assert main(["parse", "--dialect", "hermes", "--strict", str(path)]) == 1
    assert capsys.readouterr().err.startswith(f"{path}:2:14: unexpected ','")


def stdin_bytes(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def test_spans_index_the_text_as_its_bytes_say_from_a_file_or_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    data = b"A [Calculator(1+1) -> 2] b\r\nC [Calculator(2+2) -> 4]\r\n"
    (tmp_path / "crlf.txt").write_bytes(data)
    assert main(["parse", str(tmp_path / "crlf.txt")]) == 0
    from_file = [(c["start"], c["end"]) for c in lines(capsys.readouterr().out)]
    stdin_bytes(monkeypatch, data)
    assert main(["parse", "-"]) == 0
    # The file was read with its newlines translated: its second call started at 29, not at 30 where the bytes put it.
    assert from_file == [(c["start"], c["end"]) for c in lines(capsys.readouterr().out)] == [(2, 24), (30, 52)]


def test_stdin_that_is_not_utf8_is_an_error_like_a_file(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    stdin_bytes(monkeypatch, b"x \xff [Calculator(1)]")
    assert main(["parse", "-"]) == 1   # it was read, surrogates and all, and the calls printed
    assert "<stdin> is not UTF-8 text: byte 0xff at offset 2" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", None)
    assert main(["parse", "-"]) == 1   # an AttributeError traceback
    assert "no standard input to read" in capsys.readouterr().err


def test_what_a_terminal_acts_on_is_escaped_in_the_json(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    stdin_bytes(monkeypatch, "[Calculator(1\x9b2J) -> \u202e\x7f]".encode())
    assert main(["parse", "-"]) == 0
    out = capsys.readouterr().out
    assert "\\u009b2J" in out and "\\u202e\\u007f" in out and lines(out)[0]["args"] == ["1\x9b2J"]
