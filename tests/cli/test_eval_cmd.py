"""Tests of `toolcall eval` through the CLI entry point, on the fake backend."""
from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from toolcall.backends.fake import FakeBackend
from toolcall.cli import main
from toolcall.errors import BackendError
from toolcall.evaluation import sample_path

MATH_ITEMS = [
    {"question": "A baker fills 7 trays with 24 muffins each. How many muffins does she bake?", "answer": "168"},
    {"question": "Maya had 312 stickers and gave 87 away. How many are left?", "answer": "225"},
]


def write_jsonl(path: Path, rows: Sequence[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


#: A line of an earlier run's per-item results, which a new run into the same --output replaces.
EARLIER = json.dumps({"mode": "no_tools", "question": "What is 2+3?", "gold": "5", "prediction": "an earlier run's",
                      "correct": False, "exact": False, "transcript": "an earlier run's", "calls": [],
                      "seconds": 0.0, "stop_reason": "eos"}) + "\n"


def test_eval_math_on_the_fake_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    items = write_jsonl(tmp_path / "math.jsonl", MATH_ITEMS)
    # The fake hands out one continuation per decode: tools off (item 1, item 2), then tools on, where item 1
    # pauses at "->" for the calculator and resumes.
    script = tmp_path / "script.json"
    script.write_text(json.dumps(["She bakes 170 muffins.", "225 stickers.",
                                  "[Calculator(7 * 24) ->", " 168 muffins.", "She has 225."]))
    out = tmp_path / "per_item.jsonl"
    code = main(["eval", "--task", "math", "--input", str(items), "--backend", "fake", "--model", str(script),
                 "--output", str(out), "--json", "--quiet"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("task math") and any(line.startswith("no_tools") for line in lines)
    summary = json.loads(lines[-1])
    assert summary["no_tools"]["accuracy"] == 0.5 and summary["tools"]["accuracy"] == 1.0
    assert summary["tools"]["call_share"] == 0.5 and summary["tools"]["avg_calls"] == 0.5
    assert summary["no_tools"]["call_share"] == 0.0
    assert summary["tools"]["n"] == 2 and summary["backend"] == "fake" and summary["tools_offered"] == ["Calculator"]
    assert summary["versions"]["torch"] == importlib.metadata.version("torch")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["mode"], r["correct"]) for r in rows] == [("no_tools", False), ("no_tools", True),
                                                          ("tools", True), ("tools", True)]
    assert rows[2]["transcript"] == "[Calculator(7 * 24) -> 168] 168 muffins."
    assert rows[2]["calls"][0]["result"] == "168" and rows[2]["gold"] == "168"


def test_eval_dates_pins_today_for_the_calendar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    items = write_jsonl(tmp_path / "dates.jsonl", [{"question": "Tell me which weekday it is today.", "rule": "weekday"}])
    script = tmp_path / "script.json"
    script.write_text(json.dumps(["It is Monday.", "[Calendar() ->", " It is Wednesday."]))
    out = tmp_path / "items.jsonl"
    code = main(["eval", "--task", "dates", "--input", str(items), "--backend", "fake", "--model", str(script),
                 "--today", "2026-11-25", "--output", str(out), "--json", "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["today"] == "2026-11-25"
    assert (summary["no_tools"]["accuracy"], summary["tools"]["accuracy"]) == (0.0, 1.0)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[1]["gold"] == "Wednesday"
    assert rows[1]["calls"][0]["result"] == "Today is Wednesday, November 25, 2026."


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--today", "25/11/2026"], "--today: '25/11/2026' is not a date in the form YYYY-MM-DD"),
        (["--today", "20261125"], "--today: '20261125' is not a date in the form YYYY-MM-DD"),
        (["--limit", "0"], "limit (--limit) must be >= 1, got 0"),
        (["--few-shot", "-1"], "few_shot (--few-shot) must be >= 0"),
        (["--max-calls", "-2"], "max_calls (--max-calls) must be >= 0"),
        (["--input", "/nonexistent/items.jsonl"], "does not exist"),
        (["--input", "/"], "eval input / is a directory, not a file"),
        (["--tools", "Calculater"], "Did you mean"),
        (["--tools", ""], "--tools '' offers no tool, but the tools mode needs one"),   # it offered the Calculator
        # The shipped sample asks for tomorrow: an OverflowError traceback at the calendar's end.
        (["--today", "9999-12-31"], "dates_sample.jsonl:2: date rule 'weekday': +1 days from 9999-12-31 falls "
                                    "outside the calendar"),
        (["--today", "0001-01-01"], "dates_sample.jsonl:3: date rule 'weekday': -1 days from 0001-01-01 falls "
                                    "outside the calendar"),
        # The prompt showed its five worked examples without a word.
        (["--few-shot", "1000"], "--few-shot 1000: the toolformer prompt for Calendar holds 1 worked example; "
                                 "give at most 1"),
    ],
)
def test_eval_runtime_errors_exit_1(extra: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--task", "dates", "--backend", "fake", *extra]) == 1
    assert message in capsys.readouterr().err


def test_eval_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--task", "trivia"])
    assert exc.value.code == 2


# --- --output: what it may replace, and when it is written ------------------------------------------------------

@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that reaches the model fails the test: these refusals must come before any model loads."""
    def load(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("toolcall.backends.get_backend", load)


def fake_model(monkeypatch: pytest.MonkeyPatch, backend: FakeBackend) -> None:
    monkeypatch.setattr("toolcall.backends.get_backend", lambda *args, **kwargs: backend)


@pytest.mark.usefixtures("no_model")
@pytest.mark.parametrize("how", ["same path", "a link to it", "a hard link to it"])
def test_an_output_that_is_the_input_is_refused(tmp_path: Path, how: str, capsys: pytest.CaptureFixture[str]) -> None:
    items = write_jsonl(tmp_path / "mine.jsonl", MATH_ITEMS)
    before = items.read_text()
    out = items
    if how == "a link to it":
        out = tmp_path / "link.jsonl"
        out.symlink_to(items)
    elif how == "a hard link to it":
        out = tmp_path / "hard.jsonl"
        out.hardlink_to(items)
    # It replaced a 32-line input with the 4 result lines.
    assert main(["eval", "--task", "math", "--input", str(items), "--backend", "fake", "--output", str(out)]) == 1
    assert f"--output {out} is --input {items}, which this run reads" in capsys.readouterr().err
    assert items.read_text() == before


@pytest.mark.usefixtures("no_model")
def test_an_output_that_is_the_shipped_sample_or_the_script_is_refused(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    sample = sample_path("math")
    assert main(["eval", "--task", "math", "--backend", "fake", "--output", str(sample)]) == 1
    assert f"--output {sample} is the task's sample" in capsys.readouterr().err
    script = tmp_path / "script.json"
    script.write_text('["168"]')
    assert main(["eval", "--task", "math", "--backend", "fake", "--model", str(script), "--output", str(script)]) == 1
    assert f"--output {script} is --model {script}" in capsys.readouterr().err
    assert script.read_text() == '["168"]'
    # A --tools-from file: the run succeeded and the tools file held the results.
    tools = tmp_path / "my_tools.py"
    tools.write_text('import toolcall\n\n@toolcall.tool\ndef twice(x: int) -> int:\n    """Twice x.\n\n    Args:\n'
                     '        x: A number.\n    """\n    return 2 * x\n')
    kept = tools.read_text()
    assert main(["eval", "--task", "math", "--backend", "fake", "--model", str(script), "--tools-from", str(tools),
                 "--output", str(tools)]) == 1
    assert f"--output {tools} is --tools-from {tools}" in capsys.readouterr().err
    assert tools.read_text() == kept


@pytest.mark.usefixtures("no_model")
def test_an_output_that_is_the_wiki_corpus_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The passages WikiSearch searched were replaced by the results, exit 0."""
    monkeypatch.delenv("TOOLCALL_WIKI_CORPUS", raising=False)
    items = write_jsonl(tmp_path / "math.jsonl", MATH_ITEMS)
    wiki = write_jsonl(tmp_path / "wiki.jsonl", [{"title": "Paris", "text": "Paris is the capital of France."}])
    before = wiki.read_text()
    run = ["eval", "--task", "math", "--input", str(items), "--backend", "fake", "--tools", "wikisearch", "--quiet"]
    assert main([*run, "--wiki-corpus", str(wiki), "--output", str(wiki)]) == 1
    assert f"--output {wiki} is --wiki-corpus {wiki}, which this run reads" in capsys.readouterr().err
    monkeypatch.setenv("TOOLCALL_WIKI_CORPUS", str(wiki))
    assert main([*run, "--output", str(wiki)]) == 1
    assert f"--output {wiki} is $TOOLCALL_WIKI_CORPUS {wiki}, which this run reads" in capsys.readouterr().err
    assert wiki.read_text() == before


@pytest.mark.usefixtures("no_model")
@pytest.mark.parametrize(
    ("name", "content", "looks"),
    [
        ("corpus.jsonl", '{"text": "It is [Calculator(2 + 3) -> 5] 5.", "original": "It is 5.", "calls": []}\n',
         "its first line is a JSON object with the fields text, original, calls, not a results row (mode, question, "
         "gold, prediction ... or id, category, valid, kind ...)"),
        ("my_code.py", 'print("my code")\n', "its first line is not JSON ('print(\"my code\")')"),
        ("list.jsonl", '\n["a", "list"]\n', "its first line is JSON but an array, not an object"),
        ("data.bin", "\udcff\udcfe\n", "its first line is not UTF-8 text (a binary file?)"),
    ],
)
def test_an_output_that_holds_anything_but_eval_results_is_refused(tmp_path: Path, name: str, content: str,
                                                                   looks: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A finished data-gen corpus or a script given as --output was replaced by the results without a word."""
    out = tmp_path / name
    out.write_bytes(content.encode("utf-8", "surrogateescape"))
    assert main(["eval", "--task", "math", "--backend", "fake", "--output", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"--output {out} exists and is not an earlier eval results file: {looks}" in err
    assert "give another path, or remove the file if it may go" in err
    assert out.read_bytes() == content.encode("utf-8", "surrogateescape")


def test_an_empty_file_or_earlier_bfcl_results_may_be_replaced(tmp_path: Path) -> None:
    from toolcall.bfcl import BfclResult
    from toolcall.evaluation import check_output

    bfcl = tmp_path / "bfcl.jsonl"
    row = BfclResult("simple_0", "simple", True, "ok", None, [], [], "reply", 0.1).to_json()
    del row["unconstrained"]   # a field with a default: older results files lack it
    write_jsonl(bfcl, [row])
    empty, blank = tmp_path / "empty.jsonl", tmp_path / "blank.jsonl"
    empty.write_text("")
    blank.write_text("\n  \n")
    for path in (bfcl, empty, blank, tmp_path / "new.jsonl"):
        check_output(path, {})


@pytest.mark.usefixtures("no_model")
@pytest.mark.parametrize(
    ("output", "message"),
    [
        # Each was an IsADirectoryError, FileExistsError or FileNotFoundError traceback after the whole run.
        ("{tmp}", "--output {tmp} is a directory; give the path of a file"),
        ("{tmp}/afile/x.jsonl", "--output {tmp}/afile/x.jsonl: {tmp}/afile is a file, not a directory"),
        ("{tmp}/afile/deeper/x.jsonl", "--output {tmp}/afile/deeper/x.jsonl: {tmp}/afile is a file, not a directory"),
        ("/proc/x.jsonl", "--output /proc/x.jsonl cannot be written"),
    ],
)
def test_an_output_that_cannot_be_a_file_is_refused_before_the_model_loads(
        tmp_path: Path, output: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    if output.startswith("/proc") and not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    (tmp_path / "afile").write_text("mine")
    output, message = output.format(tmp=tmp_path), message.format(tmp=tmp_path)
    assert main(["eval", "--task", "math", "--backend", "fake", "--output", output, "--quiet"]) == 1
    assert message in capsys.readouterr().err
    assert (tmp_path / "afile").read_text() == "mine"


def test_an_earlier_results_file_is_replaced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    items = write_jsonl(tmp_path / "math.jsonl", MATH_ITEMS)
    out = tmp_path / "new" / "results.jsonl"  # a missing folder is made
    out.parent.mkdir()
    out.write_text(EARLIER * 10)
    script = tmp_path / "script.json"
    script.write_text(json.dumps(["168", "225", "168", "225"]))
    code = main(["eval", "--task", "math", "--input", str(items), "--backend", "fake", "--model", str(script),
                 "--output", str(out), "--quiet"])
    assert code == 0
    assert [json.loads(line)["prediction"] for line in out.read_text().splitlines()] == ["168", "225", "168", "225"]


def test_each_result_is_written_as_it_is_graded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    items = write_jsonl(tmp_path / "math.jsonl", MATH_ITEMS)
    replies = iter(["168", "225"])

    def model(text: str) -> str:
        reply = next(replies, None)
        if reply is None:
            raise KeyboardInterrupt  # Ctrl-C during the third decode
        return reply

    fake_model(monkeypatch, FakeBackend(script=model))
    out = tmp_path / "results.jsonl"
    out.write_text(EARLIER)
    # The results were written only at the end: Ctrl-C after 7 s of a 64-item run lost every finished item.
    assert main(["eval", "--task", "math", "--input", str(items), "--backend", "fake", "--output", str(out),
                 "--quiet"]) == 130
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["mode"], r["prediction"], r["correct"]) for r in rows] == [("no_tools", "168", True),
                                                                          ("no_tools", "225", True)]


def test_a_run_that_fails_before_its_first_item_keeps_the_earlier_results(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def load(*args: object, **kwargs: object) -> None:
        raise BackendError("no such model")

    monkeypatch.setattr("toolcall.backends.get_backend", load)
    out, new = tmp_path / "results.jsonl", tmp_path / "new.jsonl"
    out.write_text(EARLIER)
    for path in (out, new):
        assert main(["eval", "--task", "math", "--backend", "fake", "--output", str(path), "--quiet"]) == 1
        assert "no such model" in capsys.readouterr().err
    assert out.read_text() == EARLIER
    assert not new.exists()  # no empty file left behind


# --- options that do not apply ---------------------------------------------------------------------------------

@pytest.mark.usefixtures("no_model")
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--categories", "live"], "--categories: an option of --task bfcl, which --task math does not use"),
        (["--seed", "5"], "--seed: an option of --task bfcl"),
        (["--exclude-seed", "1"], "--exclude-seed: an option of --task bfcl"),
        (["--categories", "live", "--seed", "5", "--bfcl-data", "/nonexist"],
         "--categories, --seed, --bfcl-data: options of --task bfcl, which --task math does not use; leave them out"),
    ],
)
def test_bfcl_options_are_refused_for_math_and_dates(extra: list[str], message: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # They were ignored without a word.
    assert main(["eval", "--task", "math", "--backend", "fake", *extra]) == 1
    assert message in capsys.readouterr().err


@pytest.mark.usefixtures("no_model")
def test_few_shot_up_to_the_worked_examples_is_taken_and_above_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--task", "math", "--backend", "fake", "--few-shot", "1000"]) == 1
    assert "--few-shot 1000: the toolformer prompt for Calculator holds 5 worked examples" in capsys.readouterr().err
    assert main(["eval", "--task", "math", "--backend", "fake", "--dialect", "hermes", "--few-shot", "2"]) == 1
    assert "the hermes prompt for Calculator holds no worked examples" in capsys.readouterr().err
    backend = FakeBackend(script=lambda text: "168")
    fake_model(monkeypatch, backend)
    assert main(["eval", "--task", "math", "--backend", "fake", "--few-shot", "5", "--limit", "1", "--quiet"]) == 0


@pytest.mark.usefixtures("no_model")
@pytest.mark.parametrize("extra", [["--few-shot", "2"], ["--today", "2026-11-25"]])
def test_math_and_dates_options_are_refused_for_bfcl(extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--task", "bfcl", "--backend", "fake", *extra]) == 1
    assert "--few-shot and --today are options of --task math and dates" in capsys.readouterr().err


@pytest.mark.usefixtures("no_model")
@pytest.mark.parametrize("extra", [["--tools", "calculator"], ["--mcp", "python server.py"],
                                   ["--wiki-corpus", "wiki.jsonl"]])
def test_tool_options_are_refused_for_bfcl(extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--task", "bfcl", "--backend", "fake", *extra]) == 1
    assert "no --tools, --tools-from, --mcp or --wiki-corpus" in capsys.readouterr().err


@pytest.mark.usefixtures("no_model")
def test_a_bfcl_output_inside_the_bfcl_data_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "bfcl"
    (data / "possible_answer").mkdir(parents=True)
    answers = data / "possible_answer" / "BFCL_v4_simple_python.json"
    answers.write_text('{"id": "simple_python_0", "ground_truth": []}\n')
    for output, message in [(answers, f"--output {answers} is a file inside --bfcl-data {data}"),
                            (data, f"--output {data} is a directory")]:
        code = main(["eval", "--task", "bfcl", "--categories", "simple", "--bfcl-data", str(data), "--backend", "fake",
                     "--output", str(output), "--quiet"])
        assert code == 1 and message in capsys.readouterr().err
    assert answers.read_text() == '{"id": "simple_python_0", "ground_truth": []}\n'


def test_exclude_seed_needs_a_limit(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --limit every item was evaluated, the excluded sample's too, with no word of it."""
    assert main(["eval", "--task", "bfcl", "--backend", "fake", "--exclude-seed", "0"]) == 1
    assert "--exclude-seed leaves out the sample --limit N draws with that seed; give --limit" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, a device that is always full")
def test_an_output_that_fills_up_is_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A full disk gave a chained traceback ending in close()'s OSError, the message buried in it."""
    items = write_jsonl(tmp_path / "mine.jsonl", MATH_ITEMS)
    fake_model(monkeypatch, FakeBackend(script=lambda text: "It is 4."))
    assert main(["eval", "--task", "math", "--input", str(items), "--backend", "fake", "--quiet",
                 "--output", "/dev/full"]) == 1
    err = capsys.readouterr().err
    assert "--output /dev/full: writing line 1 failed: No space left on device" in err and "Traceback" not in err
