"""`toolcall generate` on the fake backend: plain text, --json, usage and runtime errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolcall.cli import main


@pytest.fixture
def script(tmp_path: Path) -> str:
    path = tmp_path / "script.json"
    path.write_text(json.dumps(["17 * 23 = [Calculator(17 * 23) -> 1]", " so the answer is 391."]))
    return str(path)


def test_prints_the_text_with_the_spliced_result(script: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--backend", "fake", "--model", script, "What is 17 * 23?"]) == 0
    assert capsys.readouterr().out == "17 * 23 = [Calculator(17 * 23) -> 391] so the answer is 391.\n"


def test_json_output(script: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--backend", "fake", "--model", script, "--json", "--max-calls", "2", "q"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["text"].endswith("so the answer is 391.")
    assert data["calls"][0]["tool"] == "Calculator" and data["calls"][0]["result"] == "391" and data["calls"][0]["ok"]
    assert set(data["calls"][0]) == {"tool", "args", "result", "ok", "error", "seconds"}
    assert data["counters"]["decoded_tokens"] > 0 and data["stop_reason"] == "eos"


def test_no_tools_runs_no_call(script: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--backend", "fake", "--model", script, "--no-tools", "--json", "q"]) == 0
    assert json.loads(capsys.readouterr().out)["calls"] == []


def test_unknown_tool_and_backend_are_runtime_errors(script: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--backend", "fake", "--model", script, "--tools", "calculater", "q"]) == 1
    assert "Did you mean 'Calculator'" in capsys.readouterr().err
    assert main(["generate", "--backend", "nope", "q"]) == 1
    assert "unknown backend 'nope'" in capsys.readouterr().err


def test_bad_number_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--max-calls", "many", "q"])
    assert exc.value.code == 2


@pytest.mark.parametrize(("extra", "message"), [
    # Each passed the early checks, then failed inside the engine (after the model loaded) with a traceback.
    (["--temperature", "nan"], "temperature must be in [0, 2] (0: greedy), got nan"),
    (["--top-p", "0"], "top_p must be in (0, 1], got 0.0"),
    (["--seed", "99999999999999999999999"], "seed must be a whole number in [0, 2^64)"),
    (["--backend", "fake", "--temperature", "0.7"], "the fake backend takes no option 'temperature'; it takes: script"),
    (["--no-tools", "--force-call"], "--force-call starts every reply with a call and --no-tools runs none"),
])
def test_options_no_engine_takes_are_errors_before_it_loads(extra: list[str], message: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", *extra, "q"]) == 1
    assert message in capsys.readouterr().err


def test_a_prompt_must_be_utf8_text_that_says_something(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"caf\xe9?"), encoding="utf-8"))
    assert main(["generate", "--backend", "fake", "-"]) == 1   # the tokenizer raised TypeError on it
    assert "standard input is not UTF-8 text: byte 0xe9 at offset 3" in capsys.readouterr().err
    for empty in ("", "  \n"):
        assert main(["generate", "--backend", "fake", empty]) == 1
        assert "the prompt is empty" in capsys.readouterr().err


def test_a_lone_surrogate_in_the_models_text_is_printed_escaped(tmp_path: Path) -> None:
    # A UnicodeEncodeError ended the command (plain and --json) once the reply was made.
    import subprocess
    import sys

    (tmp_path / "s.json").write_text(json.dumps(["A [Calculator(2+3) ->", " 5] and \ud800 ok."]))
    for more in ([], ["--json"]):
        done = subprocess.run([sys.executable, "-m", "toolcall", "generate", "--backend", "fake", "--model",
                               str(tmp_path / "s.json"), *more, "q"], capture_output=True, text=True, timeout=120,
                              env={**__import__("os").environ, "PYTHONIOENCODING": "utf-8"})
        assert done.returncode == 0, done.stderr[-400:]
        shown = done.stdout if not more else json.loads(done.stdout)["reply"]   # the same text, escaped in JSON
        assert shown.endswith("and \\ud800 ok.\n" if not more else "and \ud800 ok.")


def test_a_json_schema_reply_prints_its_json_alone_with_the_calls_on_stderr(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """In hermes a reply held to JSON may call the Calculator (the default tool) first: the calls and their results
    were printed before the JSON, so what --json-schema promises parses did not."""
    call = '<tool_call>\n{"name": "Calculator", "arguments": {"expression": "1234 * 5678"}}\n</tool_call>'
    (tmp_path / "s.json").write_text(json.dumps([call, '{"result": 7006652}']))
    schema = '{"type": "object", "properties": {"result": {"type": "number"}}, "required": ["result"]}'
    base = ["generate", "--backend", "fake", "--model", str(tmp_path / "s.json"), "--dialect", "hermes",
            "--json-schema", schema, "What is 1234 * 5678?"]
    assert main(base) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"result": 7006652}
    assert 'called Calculator({"expression": "1234 * 5678"}) -> 7006652' in err
    assert main([*base[:-1], "--json", base[-1]]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert json.loads(shown["reply"]) == {"result": 7006652} and "<tool_call>" in shown["text"]


def test_a_json_schema_reply_cut_by_its_token_limit_is_said_and_fails(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The grammar ends a reply once its JSON is complete; a reply the token limit cut first was printed as if it
    were the JSON, exit 0 and not a word (the embedded model kept adding keys a schema did not forbid)."""
    (tmp_path / "s.json").write_text(json.dumps(['{"result": 70, "more": "and more and more and more"}']))
    schema = '{"type": "object", "properties": {"result": {"type": "number"}}, "required": ["result"]}'
    base = ["generate", "--backend", "fake", "--model", str(tmp_path / "s.json"), "--json-schema", schema, "q"]
    assert main([*base[:-1], "--max-new-tokens", "8", "q"]) == 1
    out, err = capsys.readouterr()
    assert out.startswith('{"result": 70') and "before its JSON was complete" in err and "--max-new-tokens (8)" in err
    assert main(base) == 0
    assert json.loads(capsys.readouterr().out)["result"] == 70
