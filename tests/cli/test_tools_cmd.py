"""`toolcall tools` and `toolcall tool`: listing (table and JSON) and running one tool with exit codes."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from toolcall.cli import main


def test_tools_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tools"]) == 0
    out = capsys.readouterr().out
    for name in ("Calculator", "Calendar", "Solve", "WikiSearch", "Search", "QA", "MT"):
        assert f"\n{name} " in "\n" + out
    assert "(alias Calculate)" in out and "expression (string, required): The arithmetic expression" in out


def test_tools_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tools", "--json"]) == 0
    listed = {t["name"]: t for t in json.loads(capsys.readouterr().out)}
    calc = listed["Calculator"]
    assert calc["aliases"] == ["Calculate"] and calc["isolated"] is True and calc["timeout"] == 5.0
    assert calc["schema"]["function"]["parameters"]["required"] == ["expression"]
    assert listed["Calendar"]["schema"]["function"]["parameters"] == {"type": "object", "properties": {}}
    assert listed["MT"]["uses_model"] is True and calc["uses_model"] is False   # MT declares setup(backend)


def test_tools_selects_with_tools(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tools", "--json", "--tools", "calendar,solve"]) == 0
    assert [t["name"] for t in json.loads(capsys.readouterr().out)] == ["Calendar", "Solve"]
    assert main(["tool", "--tools", "solve", "calculator", "1+1"]) == 1
    assert "unknown tool 'calculator'" in capsys.readouterr().err.lower()


def test_tool_runs_and_prints(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["tool", "calculate", "400 / 1400"]) == 0
    assert capsys.readouterr().out == "0.29\n"
    monkeypatch.setenv("TOOLCALL_TODAY", "2023-01-30")
    assert main(["tool", "Calendar"]) == 0
    assert capsys.readouterr().out == "Today is Monday, January 30, 2023.\n"
    assert main(["tool", "solve", "x^2 - 4 = 0", "x"]) == 0
    assert capsys.readouterr().out == "x = -2 or x = 2\n"
    # A value that starts with a minus is a value, not an unknown option (argparse refused "-5+3").
    for value, shown in (("-5+3", "-2"), ("-(2*3)", "-6"), ("-.5*4", "-2")):
        assert main(["tool", "Calculator", value]) == 0
        assert capsys.readouterr().out == shown + "\n"


@pytest.mark.parametrize("argv, words", [
    (["tool", "Calculator", "9**9**9**9"], "Calculator: result too large"),
    (["tool", "Calcultor", "1"], "Did you mean 'Calculator'?"),
    (["tool", "Calendar", "tomorrow"], "Calendar: takes at most 0 argument(s)"),
    # Solve answers from a worker process, which cannot reply within a microsecond; WikiSearch, in a thread, could
    # finish its search before the caller began to wait (its index warm, within one GIL switch interval).
    (["tool", "Solve", "x^5 - x + 1 = 0", "--timeout", "0.000001"], "Solve: timed out after 1e-06 s"),
])
def test_tool_errors_exit_1_on_stderr(argv: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and words in captured.err and captured.err.startswith("toolcall tool: error: ")


def test_usage_errors_exit_2() -> None:
    with pytest.raises(SystemExit) as info:
        main(["tool"])
    assert info.value.code == 2


def test_a_tools_control_characters_are_printed_visibly(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from toolcall.terminal import printable

    assert printable("a\x1b[2Jb\rc\x7f\x9b\td\n") == "a\u241b[2Jb\u240dc\u2421\\x9b\td\n"  # tab and newline stay
    tools = tmp_path / "esc.py"
    tools.write_text('import toolcall\n\n\n@toolcall.tool\ndef esc(x: str) -> str:\n    """Ring \\x07 the bell.\n\n'
                     '    Args:\n        x: Anything.\n    """\n    return "\\x1b]0;owned\\x07" + x\n')
    assert main(["tool", "--tools-from", str(tools), "esc", "y"]) == 0
    assert capsys.readouterr().out == "\u241b]0;owned\u2407y\n"
    assert main(["tools", "--tools-from", str(tools), "--tools", ""]) == 0
    listing = capsys.readouterr().out
    assert "\x07" not in listing and "Ring \u2407 the bell." in listing
    # An error message (a tool's, an MCP server's) goes to stderr shown the same way.
    failing = tmp_path / "fails.py"
    failing.write_text('import toolcall\n\n\n@toolcall.tool\ndef fails(x: str) -> str:\n    """Fail.\n\n    Args:\n'
                       '        x: Anything.\n    """\n    raise toolcall.ToolError("\\x1b]0;owned\\x07" + x)\n')
    assert main(["tool", "--tools-from", str(failing), "fails", "y"]) == 1
    assert capsys.readouterr().err == "toolcall tool: error: fails: \u241b]0;owned\u2407y\n"


ADD = '''
import time
import toolcall

print("loading the adding tools")


@toolcall.tool
def chatty(x: str) -> str:
    """Double.

    Args:
        x: what
    """
    print("working on", x)
    return x * 2


@toolcall.tool
def add_up(a: int, b: int = 2, c: str = "z") -> str:
    """Add.

    Args:
        a: first
        b: second
        c: label
    """
    return f"{a + b} {c}"


@toolcall.tool
def nap(s: float) -> str:
    """Sleep.

    Args:
        s: seconds
    """
    time.sleep(s)
    return "done"
'''


def test_tool_takes_named_arguments_words_and_options_after_its_name(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """`add a=1` said "'a=1' is not valid: expected an integer", `shout text=hi` printed TEXT=HI, shell words were
    joined with commas, and `--timeout` after the name left the arguments unread."""
    tools = tmp_path / "adding.py"
    tools.write_text(ADD)
    run = ["tool", "--tools-from", str(tools)]
    assert main([*run, "add_up", "a=1"]) == 0 and capsys.readouterr().out == "3 z\n"
    assert main([*run, "add_up", "1", "c=hello"]) == 0 and capsys.readouterr().out == "3 hello\n"  # b skipped
    assert main([*run, "add_up", "1", "5", "hello", "world"]) == 0 and capsys.readouterr().out == "6 hello world\n"
    assert main([*run, "add_up", "-3", "2"]) == 0 and capsys.readouterr().out == "-1 z\n"
    assert main([*run, "add_up", "2", "c=x", "1"]) == 0 and capsys.readouterr().out == "3 x\n"  # words fill the rest
    assert main([*run, "add_up", "1", "5", "hello", "world", "a=2"]) == 0  # the last free one takes the extra words
    assert capsys.readouterr().out == "3 5 hello world\n"
    assert main([*run, "add_up", "a=1", "a=2"]) == 1 and "a= is given twice" in capsys.readouterr().err
    assert main([*run, "add_up", "1", "--timeout", "3", "--", "-4"]) == 0 and capsys.readouterr().out == "-3 z\n"
    assert main([*run, "nap", "--timeout", "0.2", "5"]) == 1 and "timed out after 0.2 s" in capsys.readouterr().err
    assert main(["tool", "Solve", "x = 5"]) == 0 and "5" in capsys.readouterr().out  # "=" in a value is a value
    with pytest.raises(SystemExit):
        main([*run, "add_up", "1", "--bogus"])
    capsys.readouterr()
    # What a tools file and a tool print goes to stderr: stdout is the result, or the listing programs read.
    assert main([*run, "chatty", "ab"]) == 0
    printed = capsys.readouterr()
    assert printed.out == "abab\n" and "working on ab" in printed.err
    assert main(["tools", "--json", "--tools-from", str(tools)]) == 0
    assert "chatty" in [t["name"] for t in json.loads(capsys.readouterr().out)]


def test_the_listing_follows_refs_and_lists_an_anyofs_types() -> None:
    """FastMCP writes every model and Enum parameter as a $ref, and Optional as anyOf: the listing said `any`."""
    import dataclasses

    from toolcall.cli.tools_cmd import _params
    from toolcall.tool_type import make_tool

    def lookup(p: str) -> str:
        """Look up.

        Args:
            p: what
        """
        return p

    parameters = {"type": "object", "$defs": {"Unit": {"type": "string", "enum": ["c", "f"]}},
                  "properties": {"unit": {"$ref": "#/$defs/Unit", "description": "the unit"},
                                 "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "a note"}},
                  "required": ["unit"]}
    listed = _params(dataclasses.replace(make_tool(lookup), parameters=parameters))
    assert listed == ["unit (string, required one of ['c', 'f']): the unit", "note (string|null, optional): a note"]


def test_wiki_corpus_is_what_wikisearch_and_qa_search_and_a_bad_one_fails_at_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import gzip

    from toolcall.tools import wikisearch

    own = tmp_path / "wiki.jsonl.gz"
    with gzip.open(own, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"title": "Zorblax", "text": "Zorblax is a moon of Quux. It was found in 2091."}) + "\n")
    try:
        assert main(["tool", "--wiki-corpus", str(own), "WikiSearch", "Zorblax moon"]) == 0
        assert capsys.readouterr().out.strip() == "Zorblax: Zorblax is a moon of Quux. It was found in 2091."
        assert main(["tool", "--wiki-corpus", str(own), "QA", "When was Zorblax found?"]) == 0
        assert capsys.readouterr().out.strip() == "It was found in 2091."
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"title": "A", "text": "fine"}\nnot json\n', encoding="utf-8")
        # the corpus is read when the tools are made, so a broken one is one error, not every call's result
        assert main(["tool", "--wiki-corpus", str(bad), "Calculator", "1+1"]) == 1
        assert re.search(r"bad\.jsonl:2: not valid JSON", capsys.readouterr().err)
        assert main(["tool", "--wiki-corpus", str(tmp_path / "none.jsonl"), "WikiSearch", "x"]) == 1
        assert "none.jsonl is not a file" in capsys.readouterr().err
    finally:
        wikisearch.configure(None)


def test_a_listing_does_not_index_the_wiki_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from toolcall.tools import _corpus, wikisearch

    built: list[int] = []
    monkeypatch.setattr(_corpus, "index", lambda: built.append(1))
    own = tmp_path / "wiki.txt"
    own.write_text("Zorblax is a moon of Quux.\n", encoding="utf-8")
    try:
        assert main(["tools", "--json", "--wiki-corpus", str(own)]) == 0
        assert "WikiSearch" in capsys.readouterr().out and built == []
    finally:
        wikisearch.configure(None)


def test_the_commands_own_warnings_print_as_their_message_alone(tmp_path: Path) -> None:
    """Python's form named a file inside the package and quoted its source line under the message."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TOOLCALL_WIKI_CORPUS"}
    done = subprocess.run([sys.executable, "-m", "toolcall", "tool", "WikiSearch", "Ghana flag"], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-400:]
    assert done.stderr.startswith("toolcall: WikiSearch and QA search the demo corpus") and ".py:" not in done.stderr
    assert "Ghana" in done.stdout


def test_tools_json_escapes_what_a_terminal_would_act_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """json.dumps writes C1 controls (CSI) and bidirectional overrides as they are: `--json` sent them raw."""
    tools_file = tmp_path / "ctl.py"
    tools_file.write_text('import toolcall\n\n\n@toolcall.tool\ndef shout(text: str) -> str:\n'
                          '    """Evil \\x9b2J desc \\u202eesrever \\x1b]0;t\\x07 end.\n\n    Args:\n'
                          '        text: What to say.\n    """\n    return text\n')
    assert main(["tools", "--json", "--tools", "", "--tools-from", str(tools_file)]) == 0
    out = capsys.readouterr().out
    assert "\x9b" not in out and "\u202e" not in out and "\x1b" not in out
    (listed,) = json.loads(out)
    assert listed["description"] == "Evil \x9b2J desc \u202eesrever \x1b]0;t\x07 end."
