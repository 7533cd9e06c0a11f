"""The run directory: one run at a time, resumed only by the same engine and models, its corpus checked on resume."""
from __future__ import annotations

import fcntl
import json
from pathlib import Path
from typing import Any

import pytest
from toolcall.data_gen.checkpoint import CORPUS, RUN, RunDir

from toolcall.errors import ConfigError

TEXT = "The shop sold 12 apples and 30 pears, a total of 42 fruits."


def info(backend: str | None = "fake") -> dict[str, Any]:
    models: dict[str, Any] = {"sampler": None, "scorer": None, "dtype": "auto"}
    if backend is not None:
        models["backend"] = backend
    return {"input_sha256": "0", "config": {}, "models": models, "tool_code": {}}


def test_a_second_run_on_a_directory_in_use_is_refused_until_the_first_ends(tmp_path: Path) -> None:
    # Two runs on one directory (a fresh one and a --resume started beside it) wrote 1,053 records for 600 texts.
    first = RunDir(tmp_path / "out", False, info())
    with pytest.raises(ConfigError, match="is in use by another data-gen run"):
        RunDir(tmp_path / "out", True, info())
    first.close()
    RunDir(tmp_path / "out", True, info()).close()


def test_a_resume_on_another_engine_is_refused_and_an_older_record_resumes(tmp_path: Path) -> None:
    # A fake-backend run resumed on the embedded model mixed the toy's records with SmolLM2's, exit 0.
    RunDir(tmp_path / "out", False, info("fake")).close()
    with pytest.raises(ConfigError, match=r"the models differs.*the backend \(that run: fake; now: transformers\)"):
        RunDir(tmp_path / "out", True, info("transformers"))
    # A run recorded before the engine was: which one made it is not known, so it resumes.
    RunDir(tmp_path / "old", False, info(None)).close()
    RunDir(tmp_path / "old", True, info("transformers")).close()


def test_run_json_says_the_input_and_limit_of_the_latest_run_and_keeps_its_lock(tmp_path: Path) -> None:
    # It kept the first run's --limit: a run resumed to --limit 4 still said 2.
    RunDir(tmp_path / "out", False, {**info(), "input": "texts.txt", "limit": 2}).close()
    resumed = RunDir(tmp_path / "out", True, {**info(), "input": "moved/texts.txt", "limit": 4})
    record = json.loads((tmp_path / "out" / RUN).read_text())
    assert record == {**info(), "input": "moved/texts.txt", "limit": 4}
    with pytest.raises(ConfigError, match="is in use by another data-gen run"):   # still the file it holds locked
        RunDir(tmp_path / "out", True, info())
    resumed.close()
    RunDir(tmp_path / "out", True, {**info(), "input": "texts.txt", "limit": None}).close()
    assert json.loads((tmp_path / "out" / RUN).read_text())["limit"] is None


def test_a_corpus_damaged_inside_is_refused_on_resume_before_any_text_is_done(tmp_path: Path) -> None:
    # Found only by the export, after every remaining text was processed, and again on every resume.
    run = RunDir(tmp_path / "out", False, info())
    for index in range(3):
        run.commit(index, {"original": f"text {index}", "text": f"text {index}", "calls": []}, {"kept": 1})
    run.close()
    corpus = tmp_path / "out" / CORPUS
    lines = corpus.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace('"text"', '"te"xt', 1)   # same size, no longer JSON
    corpus.write_text("".join(lines))
    with pytest.raises(ConfigError, match=f"{CORPUS}:2: not a JSON object"):
        RunDir(tmp_path / "out", True, info())
    RunDir(tmp_path / "elsewhere", False, info()).close()


def test_the_command_records_its_engine_and_checks_its_input_before_any_model_loads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from toolcall import backends
    from toolcall.cli import main

    (tmp_path / "in.jsonl").write_text(json.dumps({"text": TEXT}) + "\n")
    assert main(["data-gen", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out"),
                 "--backend", "fake", "--no-progress"]) == 0
    assert json.loads((tmp_path / "out" / RUN).read_text())["models"]["backend"] == "fake"

    def no_model(*_: Any, **__: Any) -> Any:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(backends, "get_scorer", no_model)
    for line, words in [({"text": TEXT, "date": "2024-02-30"}, "in.jsonl:2"),
                        ({"text": TEXT, "id": 2**64}, "an integer 'id' (its id) must be in [-2^63, 2^63)")]:
        (tmp_path / "bad.jsonl").write_text(json.dumps({"text": TEXT}) + "\n" + json.dumps(line) + "\n")
        assert main(["data-gen", "--input", str(tmp_path / "bad.jsonl"), "--output", str(tmp_path / "bad"),
                     "--no-progress"]) == 1
        assert words.replace("in.jsonl", "bad.jsonl") in capsys.readouterr().err


def test_a_run_directory_whose_files_are_folders_is_refused_in_one_line(tmp_path: Path) -> None:
    from toolcall.data_gen.checkpoint import PROGRESS

    for name in (PROGRESS, CORPUS):   # IsADirectoryError tracebacks
        RunDir(tmp_path / name, False, info()).close()
        (tmp_path / name / name).unlink(missing_ok=True)
        (tmp_path / name / name).mkdir()
        with pytest.raises(ConfigError, match=f"cannot be resumed: .*{name}: Is a directory"):
            RunDir(tmp_path / name, True, info())
        with (tmp_path / name / RUN).open("rb") as fh:   # the refused run let its lock go
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


@pytest.mark.parametrize("damage", ["log removed", "log broken inside"])
def test_a_progress_log_lost_or_damaged_before_its_end_is_refused_and_the_corpus_kept(tmp_path: Path,
                                                                                       damage: str) -> None:
    """Resumed without its log (a copy that left it out), or with a line broken before others, the run cut its corpus
    back to the last commit it could read: a finished corpus became empty without a word."""
    run = RunDir(tmp_path / "out", False, info())
    for index in range(3):
        run.commit(index, {"original": f"text {index}", "text": f"text {index}", "calls": []}, {"kept": 1})
    run.close()
    corpus, log = tmp_path / "out" / CORPUS, tmp_path / "out" / "progress.jsonl"
    before = corpus.read_bytes()
    if damage == "log removed":
        log.unlink()
        expected = "progress.jsonl is missing"
    else:
        lines = log.read_text().splitlines(keepends=True)
        log.write_text(lines[0] + "{broken\n" + "".join(lines[2:]))
        expected = "progress.jsonl:2: not a progress line"
    with pytest.raises(ConfigError, match=expected):
        RunDir(tmp_path / "out", True, info())
    assert corpus.read_bytes() == before
    RunDir(tmp_path / "elsewhere", False, info()).close()


def test_the_run_holds_where_each_commit_lies_not_its_summary_and_reads_them_back_in_order(tmp_path: Path) -> None:
    from toolcall.data_gen.checkpoint import Commit
    from toolcall.data_gen.stats import aggregate

    run = RunDir(tmp_path / "out", False, info())
    scored = [["Calculator", 0.5, True, True, "model"], ["Calculator", -0.2, False, False, "proposer"]]
    run.commit(0, {"text": TEXT, "original": TEXT, "calls": []}, {"tools": ["Calculator"], "scored": scored, "kept": 1})
    run.commit(2, None, {"tools": [], "kept": 0})
    assert all(type(c) is Commit for c in run.commits) and [c.index for c in run.commits] == [0, 2]
    entries = list(run.summaries())
    assert [(e["index"], e["kept"]) for e in entries] == [(0, 1), (2, 0)] and entries[0]["scored"] == scored
    (tmp_path / "out" / "progress.jsonl").open("a").write('{"index": 3, "corpus_bytes"')   # a torn commit
    run.close()
    again = RunDir(tmp_path / "out", True, info())
    assert again.commits == run.commits and list(again.summaries()) == entries and again.done == {0, 2}
    stats = aggregate(again.summaries(), 1, ["Calculator"])   # read once, as the log is read
    assert (stats["texts_in"], stats["texts_done"], stats["texts_kept"], stats["calls_kept"]) == (2, 2, 1, 1)
    assert stats["per_tool"]["Calculator"]["candidates_scored"] == 2 and stats["loss_reduction_all"]["n"] == 2
    assert stats["calls_kept_by_source"] == {"model": 1}
    again.close()


def test_a_resume_where_no_run_is_says_it_starts_a_new_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--resume with a mistyped directory started a new run there without a word."""
    RunDir(tmp_path / "typo", True, info()).close()
    assert "holds no run to resume; starting a new one" in capsys.readouterr().err
    RunDir(tmp_path / "typo", True, info()).close()
    assert capsys.readouterr().err == ""


def test_a_corpus_and_log_swapped_in_by_a_run_killed_between_the_moves_are_both_in_place_on_resume(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--engine ray writes the corpus and log joined in input order aside and moves them into place: killed between
    the two moves, the new corpus stood beside the old log, and the next --resume cut it back by the old offsets."""
    import os

    from toolcall.data_gen.checkpoint import SWAP, swap_in

    run = RunDir(tmp_path / "out", False, info())
    for index in (0, 2):
        run.commit(index, {"original": f"text {index}", "text": f"text {index}", "calls": []}, {"kept": 1})
    run.close()
    out = tmp_path / "out"
    lines = [json.dumps({"original": f"text {i}", "text": f"text {i}", "calls": []}) + "\n" for i in range(3)]
    (out / "corpus.tmp").write_text("".join(lines))
    size, log = 0, []
    for i, line in enumerate(lines):
        size += len(line.encode())
        log.append(json.dumps({"index": i, "corpus_bytes": size, "kept": 1}) + "\n")
    (out / "progress.tmp").write_text("".join(log))
    moves, real = [], os.replace

    def killed(src: Any, dst: Any) -> None:
        moves.append(dst)
        if Path(dst).name == "progress.jsonl":
            raise KeyboardInterrupt   # the kill, after the corpus moved and before the log did
        real(src, dst)

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        swap_in(out, [(out / "corpus.tmp", out / CORPUS), (out / "progress.tmp", out / "progress.jsonl")])
    monkeypatch.setattr(os, "replace", real)
    assert (out / SWAP).exists() and (out / CORPUS).read_text() == "".join(lines)
    resumed = RunDir(out, True, info())
    assert resumed.done == {0, 1, 2} and (out / CORPUS).read_text() == "".join(lines)
    assert not (out / SWAP).exists()
    resumed.close()


def test_run_json_rewritten_shorter_is_padded_so_no_cut_follows_the_write(tmp_path: Path) -> None:
    """Rewritten in place (the lock is on it), a shorter record was written then cut: killed between the two, the file
    held the old record's tail after the new one, and every later --resume was refused as a damaged record."""
    RunDir(tmp_path / "out", False, {**info(), "input": "a/long/path/to/the/texts.txt", "limit": 2}).close()
    before = (tmp_path / "out" / RUN).stat().st_size
    RunDir(tmp_path / "out", True, {**info(), "input": "t.txt", "limit": 2}).close()
    assert (tmp_path / "out" / RUN).stat().st_size == before
    assert json.loads((tmp_path / "out" / RUN).read_text())["input"] == "t.txt"


@pytest.mark.parametrize("journal", ["", "{torn", '[["../x", "corpus.jsonl"]]'])
def test_a_damaged_swap_journal_is_one_error_that_says_what_to_do(tmp_path: Path, journal: str) -> None:
    from toolcall.data_gen.checkpoint import SWAP

    RunDir(tmp_path / "out", False, info()).close()
    (tmp_path / "out" / SWAP).write_text(journal)
    with pytest.raises(ConfigError, match="swap.json is damaged .*remove it"):
        RunDir(tmp_path / "out", True, info())
    RunDir(tmp_path / "elsewhere", False, info()).close()
