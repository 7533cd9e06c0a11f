"""`--tools`, `--tools-from` and `--mcp` on every command that takes tools: which tools a registry gets, loading
files and modules, and the errors for a missing, broken, empty or clashing tools file."""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolcall.cli import build_parser, main
from toolcall.cli.tool_options import registry_from_args
from toolcall.errors import ConfigError
from toolcall.registry import user_tools
from toolcall.tool_files import load_tools, restore_user_tools
from toolcall.toolset import Toolset

WORDS = '''
import toolcall
from toolcall.tool_type import make_tool


@toolcall.tool(timeout=3.0)
def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: The text whose words are counted.
    """
    return len(text.split())


def _shout(text: str) -> str:
    """Upper-case a text.

    Args:
        text: What to shout.
    """
    return text.upper()


shout = make_tool(_shout, "Shout")   # a Tool object, not decorated
imported_elsewhere = toolcall.tool    # not a tool: ignored
'''
TINY = Path(__file__).parents[1] / "mcp" / "tiny_server.py"


@pytest.fixture(autouse=True)
def clean_process_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Loading tools registers them process-wide and imports their modules: put that back after each test (only the
    test's own modules are forgotten; libraries imported meanwhile, C extensions among them, stay)."""
    users = user_tools()
    before = {item.name: item for item in users}
    modules, path = set(sys.modules), list(sys.path)
    temp = str(tmp_path_factory.getbasetemp())
    yield
    restore_user_tools(users, before)
    for name in set(sys.modules) - modules:
        if str(getattr(sys.modules[name], "__file__", None) or "").startswith(temp):
            del sys.modules[name]
    sys.path[:] = path
    if "toolcall.mcp.client" in sys.modules:
        sys.modules["toolcall.mcp.client"].close_all()


@pytest.fixture
def words(tmp_path: Path) -> Path:
    path = tmp_path / "my_words.py"
    path.write_text(WORDS, encoding="utf-8")
    return path


def names(argv: list[str]) -> list[str]:
    registry = registry_from_args(build_parser().parse_args(argv))
    return [] if registry is None else [item.name for item in registry]


# ---------------------------------------------------------------------------------------------- which tools


def test_a_file_brings_its_decorated_functions_and_tool_objects(words: Path) -> None:
    loaded = load_tools(str(words))
    assert sorted(t.name for t in loaded) == ["Shout", "word_count"]
    assert "Shout" in user_tools() and "word_count" in user_tools()
    assert {t.name: t.timeout for t in loaded} == {"word_count": 3.0, "Shout": 10.0}


def test_tools_from_replaces_the_default_and_adds_to_typed_tools(words: Path) -> None:
    assert names(["generate", "q"]) == ["Calculator"]
    assert names(["generate", "--tools-from", str(words), "q"]) == ["Shout", "word_count"]
    assert names(["generate", "--tools", "calculator", "--tools-from", str(words), "q"]) == ["Calculator", "Shout",
                                                                                                "word_count"]
    everything = names(["chat", "--tools", "all", "--tools-from", str(words)])
    assert {"Calculator", "Calendar", "MT", "Shout", "word_count"} <= set(everything)
    assert names(["generate", "--tools", "", "q"]) == []
    # mcp-serve's default is every tool; with --tools-from alone it serves just that file's.
    assert "Calendar" in names(["mcp-serve"])
    assert names(["mcp-serve", "--tools-from", str(words)]) == ["Shout", "word_count"]


KEYED = '''
import functools
import os

import toolcall
from toolcall.tool_type import make_tool


def _lookup(word: str, api_key: str) -> str:
    """Look a word up in a dictionary service.

    Args:
        word: The word.
        api_key: The service's key.
    """
    return f"{word}: found with a key of {len(api_key)} characters"


class Counter:
    """Counts what it is given, from a start the file sets."""

    def __init__(self, start: int) -> None:
        self.start = start

    def __call__(self, text: str) -> int:
        """Count the letters of a text, from the start.

        Args:
            text: The text.
        """
        return self.start + len(text)


lookup = make_tool(functools.partial(_lookup, api_key=os.environ["DICT_KEY"]), "lookup")
toolcall.tool(Counter(100), name="count_letters")
'''


def test_a_file_may_bind_a_key_with_partial_and_register_an_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DICT_KEY", "k" * 32)
    path = tmp_path / "keyed.py"
    path.write_text(KEYED, encoding="utf-8")
    assert names(["generate", "--tools-from", str(path), "q"]) == ["count_letters", "lookup"]
    assert main(["tools", "--tools", "", "--tools-from", str(path), "--json"]) == 0
    listed = {t["name"]: t["schema"]["function"] for t in json.loads(capsys.readouterr().out)}
    assert list(listed["lookup"]["parameters"]["properties"]) == ["word"]   # the key is neither offered nor shown
    assert "k" * 32 not in json.dumps(listed)
    assert main(["tool", "--tools-from", str(path), "lookup", "ink"]) == 0
    assert capsys.readouterr().out == "ink: found with a key of 32 characters\n"
    assert main(["tool", "--tools-from", str(path), "count_letters", "abc"]) == 0
    assert capsys.readouterr().out == "103\n"


def test_an_importable_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "acme_tools_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "text.py").write_text(WORDS)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert names(["generate", "--tools-from", "acme_tools_pkg.text", "q"]) == ["Shout", "word_count"]


def test_repeatable_and_loaded_again_in_one_process(words: Path, tmp_path: Path) -> None:
    other = tmp_path / "more.py"
    other.write_text(WORDS.replace("word_count", "char_count").replace('"Shout"', '"Whisper"'))
    argv = ["generate", "--tools-from", str(words), "--tools-from", str(other), "q"]
    assert names(argv) == ["Shout", "Whisper", "char_count", "word_count"]
    assert names(argv) == ["Shout", "Whisper", "char_count", "word_count"]  # a second run reloads, no clash



def test_two_files_defining_one_tool_name_say_which_file_holds_it(words: Path, tmp_path: Path) -> None:
    # The registry's message told a --tools-from user to "pass replace=True", naming neither file.
    other = tmp_path / "same_name.py"
    other.write_text(WORDS.replace('"Shout"', '"Whisper"'))
    load_tools(str(words))
    with pytest.raises(ConfigError, match=rf"--tools-from {other}: importing it failed: a tool at {other}:\d+ takes "
                                          rf"the name of the tool 'word_count' of {words}, loaded before it; give one "
                                          r"of them another name, e\.g\. @toolcall\.tool\(name=\.\.\.\)"):
        load_tools(str(other))


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("content, words_in_error", [
    (None, "no such file"),
    ("import toolcall\nraise RuntimeError('the config is missing')\n",
     "importing it failed: RuntimeError: the config is missing (at "),
    ("def broken(:\n", "importing it failed: SyntaxError"),
    ("import not_a_module_anywhere_xyz\n", "importing it failed: ModuleNotFoundError"),
    ("X = 1\n", "defines no tool"),
    (WORDS.replace("def word_count", "def Calculate").replace('make_tool(_shout, "Shout")', 'make_tool(_shout)'),
     "tool 'Calculate' clashes with the built-in tool 'Calculator'"),
])
def test_bad_files_are_errors_naming_the_file(content: str | None, words_in_error: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad_tools.py"
    if content is not None:
        path.write_text(content)
    before = user_tools().names()
    assert main(["generate", "--backend", "fake", "--tools-from", str(path), "q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"toolcall generate: error: --tools-from {path}: ") and words_in_error in err
    assert user_tools().names() == before  # a failed load leaves no tool behind
    with pytest.raises(ConfigError, match="bad_tools.py"):
        load_tools(str(path))


def test_an_error_in_a_decorated_function_points_at_the_users_line(tmp_path: Path) -> None:
    path = tmp_path / "untyped_tools.py"
    path.write_text("import toolcall\n\n\n@toolcall.tool\ndef untyped(x):\n    \"\"\"Doc.\n\n    Args:\n        x: X.\n"
                    "    \"\"\"\n    return x\n")
    # It pointed at toolcall's schema reader (toolcall/schema.py:202), not at the file being loaded.
    with pytest.raises(ConfigError, match=rf"has no type hint \(at {path}:4\)"):
        load_tools(str(path))


def test_a_module_that_exits_while_imported_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "exiting_tools_mod.py").write_text("import sys\nsys.exit(4)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # The process quit with status 4 and no word (a file that exits was already an error).
    with pytest.raises(ConfigError, match=r"--tools-from exiting_tools_mod: importing it failed: SystemExit: 4"):
        load_tools("exiting_tools_mod")


HEAVY = '''
import toolcall


@toolcall.tool(isolated=True)
def heavy_sum(n: int) -> int:
    """Sum 0..n-1 in a worker process.

    Args:
        n: How many numbers.
    """
    return sum(range(n))
'''


@pytest.mark.parametrize("file_name", ["my-heavy-tools.py", "calendar.py"])
def test_an_isolated_tool_from_a_file_no_import_finds_runs_in_its_worker(file_name: str, tmp_path: Path) -> None:
    # A stem that is no module name, or one the standard library's would shadow, gets a name of its own, which the
    # worker process could not import: every call failed with ModuleNotFoundError.
    path = tmp_path / file_name
    name = "heavy_sum_" + file_name.split(".")[0].replace("-", "_")   # the shared worker keeps what each file registered
    path.write_text(HEAVY.replace("heavy_sum", name))
    (loaded,) = load_tools(str(path))
    from toolcall.registry import ToolRegistry

    assert ToolRegistry([loaded]).call(name, ("10",)).text == "45"


@pytest.mark.parametrize("file_name", ["email.py", "colorsys.py", "quopri.py"])
def test_a_file_named_like_a_module_not_yet_imported_shadows_nothing(file_name: str, tmp_path: Path) -> None:
    """A tools file email.py was registered as the module `email` before the standard library's was imported: every
    command then failed in `import email.message` ("'email' is not a package")."""
    import importlib
    import sys

    stem = file_name.split(".")[0]
    (tmp_path / file_name).write_text(WORDS.replace("word_count", f"count_{stem}"))
    code = (f"import sys; from toolcall.tool_files import load_tools; load_tools({str(tmp_path / file_name)!r}); "
            f"import {stem}, importlib; assert {stem}.__file__ != {str(tmp_path / file_name)!r}, {stem}.__file__; "
            f"print(sys.modules[{stem!r}].__name__)")
    # A fresh process: in this one the module may be imported already, which hid the fault.
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert importlib.import_module(stem).__file__ != str(tmp_path / file_name)


def test_an_unknown_module_and_a_decorated_clash_with_an_alias(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--tools-from no_such_pkg_xyz\.tools: no such file or importable module"):
        load_tools("no_such_pkg_xyz.tools")
    path = tmp_path / "alias_clash.py"
    path.write_text(WORDS.replace("@toolcall.tool(timeout=3.0)", "@toolcall.tool(aliases=['Calendar'])"))
    with pytest.raises(ConfigError, match="tool 'word_count' clashes with the built-in tool 'Calendar'"):
        load_tools(str(path))


# ---------------------------------------------------------------------------------------------- the commands


def test_generate_and_tool_run_file_tools(words: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(["It has [word_count(one two three) -> 0]", " words."]))
    assert main(["generate", "--backend", "fake", "--model", str(script), "--tools-from", str(words), "q"]) == 0
    assert capsys.readouterr().out == "It has [word_count(one two three) -> 3] words.\n"
    assert main(["tool", "--tools-from", str(words), "shout", "hey"]) == 0
    assert capsys.readouterr().out == "HEY\n"
    assert main(["tools", "--tools-from", str(words), "--json"]) == 0
    listed = {t["name"] for t in json.loads(capsys.readouterr().out)}
    assert {"Calculator", "word_count", "Shout"} <= listed


NOISY = """import os, subprocess, sys
import toolcall
print("print at import")
os.write(1, b"fd 1 at import\\n")
subprocess.run(["echo", "echo at import"], check=True)


@toolcall.tool
def echo(text: str) -> str:
    \"\"\"Echo.

    Args:
        text: the text
    \"\"\"
    print("print in the tool")
    os.write(1, b"fd 1 in the tool\\n")
    subprocess.run(["echo", "echo in the tool"], check=True)
    return text
"""


@pytest.mark.parametrize("command", [["generate", "--backend", "fake", "--model", "SCRIPT", "--json", "q"],
                                     ["tools", "--json"], ["tool", "echo", "hi"],
                                     ["eval", "--task", "math", "--input", "ITEMS", "--backend", "fake", "--model",
                                      "SCRIPT", "--json", "--quiet"]])
def test_stdout_holds_the_commands_output_alone_when_tools_print(tmp_path: Path, command: list[str]) -> None:
    """What a tools file or its tool writes, by print, to file descriptor 1 or from a subprocess, goes to stderr: a
    subprocess's output at import broke generate --json (only Python's print was moved)."""
    (tmp_path / "noisy.py").write_text(NOISY)
    # A fake reply a line: eval's first is the no-tools mode's.
    script = ["2", "[echo(hi) ->", " 2."] if command[0] == "eval" else ["It says [echo(hi) ->", " hi."]
    (tmp_path / "script.json").write_text(json.dumps(script))
    (tmp_path / "items.jsonl").write_text(json.dumps({"question": "Say hi.", "answer": "2"}) + "\n")
    argv = [str(tmp_path / "script.json") if a == "SCRIPT" else str(tmp_path / "items.jsonl") if a == "ITEMS" else a
            for a in command]
    done = subprocess.run([sys.executable, "-m", "toolcall", *argv, "--tools-from", str(tmp_path / "noisy.py")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    for said in ("print at import", "fd 1 at import", "echo at import"):
        assert said not in done.stdout and said in done.stderr
    if command[0] != "tools":
        for said in ("print in the tool", "fd 1 in the tool", "echo in the tool"):
            assert said not in done.stdout and said in done.stderr
    if command[0] == "tool":
        assert done.stdout == "hi\n"
    else:
        json.loads(done.stdout.splitlines()[-1] if command[0] == "eval" else done.stdout)


def test_eval_offers_file_tools(words: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    items = tmp_path / "math.jsonl"
    items.write_text(json.dumps({"question": "How many words in 'a b c'?", "answer": "3"}) + "\n")
    script = tmp_path / "script.json"
    script.write_text(json.dumps(["2", "[word_count(a b c) ->", " 3 words."]))
    assert main(["eval", "--task", "math", "--input", str(items), "--backend", "fake", "--model", str(script),
                 "--tools-from", str(words), "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["tools_offered"] == ["Shout", "word_count"]
    assert (summary["no_tools"]["accuracy"], summary["tools"]["accuracy"]) == (0.0, 1.0)


def test_data_gen_samples_file_tools(words: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    texts = tmp_path / "t.txt"
    texts.write_text("The sentence one two three has 3 words.\n")
    out = tmp_path / "out"
    assert main(["data-gen", "--backend", "fake", "--input", str(texts), "--output", str(out), "--no-progress",
                 "--tools-from", str(words), "--samples", "1", "--no-prefilter"]) == 0
    capsys.readouterr()
    assert json.loads((out / "run.json").read_text())["config"]["tools"] == ["Shout", "word_count"]
    # With --tools typed, the named tools stay and the file's are added.
    out2 = tmp_path / "out2"
    assert main(["data-gen", "--backend", "fake", "--input", str(texts), "--output", str(out2), "--no-progress",
                 "--tools", "calculator", "--tools-from", str(words), "--samples", "1", "--no-prefilter"]) == 0
    assert json.loads((out2 / "run.json").read_text())["config"]["tools"] == ["Calculator", "Shout", "word_count"]


def test_data_gen_resumes_only_with_the_same_tools_code(words: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    texts = tmp_path / "t.txt"
    texts.write_text("The sentence one two three has 3 words.\nAnd four five.\n")
    out = tmp_path / "out"
    argv = ["data-gen", "--backend", "fake", "--input", str(texts), "--output", str(out), "--no-progress",
            "--tools-from", str(words), "--samples", "1", "--no-prefilter"]
    assert main([*argv, "--limit", "1"]) == 0
    assert set(json.loads((out / "run.json").read_text())["tool_code"]) == {"Shout", "word_count"}
    assert main([*argv, "--resume"]) == 0   # the same code: resumed
    words.write_text(WORDS.replace("return len(text.split())", "return 2 * len(text.split())"))
    capsys.readouterr()
    # It resumed, and the corpus mixed the old code's results with the new one's.
    assert main([*argv, "--resume"]) == 1
    assert "--resume: the tool code differs from the run" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- --mcp


def test_generate_calls_an_mcp_servers_tool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("mcp")
    script = tmp_path / "script.json"
    script.write_text(json.dumps(["Two and three make [add(2, 3) -> 0]", " in all."]))
    server = f"{sys.executable} {TINY}"
    assert main(["generate", "--backend", "fake", "--model", str(script), "--mcp", server, "--json", "q"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["text"] == "Two and three make [add(2, 3) -> 5] in all." and data["calls"][0]["ok"]
    assert names(["generate", "--mcp", server, "q"]) == ["add", "crash", "fail", "greet", "slow"]
    assert names(["generate", "--tools", "calculator", "--mcp", server, "q"])[0] == "Calculator"


def test_mcp_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("mcp")
    clash = tmp_path / "clash.py"
    clash.write_text(WORDS.replace("def word_count", "def add"))
    server = f"{sys.executable} {TINY}"
    with pytest.raises(ConfigError, match=r"--mcp .*tiny_server.py: its tool 'add' has the name of a tool already"):
        Toolset((), (str(clash),), (server,)).build()
    assert main(["generate", "--backend", "fake", "--mcp", "no_such_server_binary_xyz", "q"]) == 1
    assert "cannot connect to MCP server 'no_such_server_binary_xyz'" in capsys.readouterr().err
    assert main(["mcp-serve", "--tools", ""]) == 1
    assert "no tools to serve" in capsys.readouterr().err


def test_toolcall_tool_stays_the_decorator_whatever_was_imported_first() -> None:

    code = ("import toolcall.registry, toolcall.tool_type as t, toolcall; "
            "assert toolcall.tool is toolcall.registry.tool and t.Tool is toolcall.Tool, toolcall.tool")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
