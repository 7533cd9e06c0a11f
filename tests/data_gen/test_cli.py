"""`toolcall data-gen` argument handling that needs no model: usage errors exit 2, refused runs exit 1 with a reason."""
from __future__ import annotations

from pathlib import Path

import pytest

from toolcall.cli import main


def test_non_empty_output_without_resume_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    texts = tmp_path / "t.txt"
    texts.write_text("The total of 2 and 3 is 5.\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "corpus.jsonl").write_text("{}\n")
    assert main(["data-gen", "--input", str(texts), "--output", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "--resume" in err and "another directory" in err


def test_missing_input_and_unknown_tool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data-gen", "--input", str(tmp_path / "nope.txt"), "--output", str(tmp_path / "o")]) == 1
    assert "does not exist" in capsys.readouterr().err
    texts = tmp_path / "t.txt"
    texts.write_text("x\n")
    assert main(["data-gen", "--input", str(texts), "--output", str(tmp_path / "o"), "--tools", "calculater"]) == 1
    assert "Calculator" in capsys.readouterr().err


def test_limit_below_one_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data-gen", "--input", str(tmp_path / "t.txt"), "--output", str(tmp_path / "o"), "--limit", "0"]) == 1
    assert "--limit must be at least 1, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_an_input_without_a_text_is_refused_before_the_output_is_made(tmp_path: Path, content: str,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """eval and train refuse an empty input; data-gen exited 0 with texts_in 0 and left a used output directory."""
    texts = tmp_path / "t.jsonl"
    texts.write_text(content)
    out = tmp_path / "out"
    assert main(["data-gen", "--backend", "fake", "--input", str(texts), "--output", str(out), "--no-progress"]) == 1
    assert f"input {texts} holds no texts" in capsys.readouterr().err
    assert not out.exists()


def test_bad_placement_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["data-gen", "--input", "x.txt", "--output", "o", "--placement", "middle"])
    assert exc.value.code == 2


def test_input_formats(tmp_path: Path) -> None:
    from toolcall.data_gen.inputs import read_inputs

    from toolcall.errors import ConfigError

    (tmp_path / "a.txt").write_text("one\n\ntwo\nthree\n")
    assert read_inputs(tmp_path / "a.txt", limit=2) == [("one", {}), ("two", {})]
    (tmp_path / "b.jsonl").write_text('{"text": "x"}\n{"id": 1}\n')
    with pytest.raises(ConfigError, match=r"b.jsonl:2"):
        read_inputs(tmp_path / "b.jsonl")
    (tmp_path / "d.txt").write_bytes(b"one\nna\xefve\n")
    with pytest.raises(ConfigError, match=r"d.txt:2:3: input file is not UTF-8 text"):
        read_inputs(tmp_path / "d.txt")
    (tmp_path / "c.csv").write_text("x\n")
    with pytest.raises(ConfigError, match=r"must end in .jsonl, .json \(JSON Lines\), .txt or .parquet"):
        read_inputs(tmp_path / "c.csv")


def test_a_jsonl_record_may_carry_the_texts_date(tmp_path: Path) -> None:
    from toolcall.data_gen.inputs import read_inputs

    from toolcall.errors import ConfigError

    (tmp_path / "d.jsonl").write_text('{"text": "x", "date": "2025-03-04", "id": 7}\n{"text": "y", "id": "b"}\n')
    assert read_inputs(tmp_path / "d.jsonl") == [("x", {"date": "2025-03-04", "id": 7}), ("y", {"id": "b"})]
    (tmp_path / "id.jsonl").write_text('{"text": "x", "id": [1]}\n')
    with pytest.raises(ConfigError, match=r"id.jsonl:1: 'id' \(its id\) must be a string or an integer"):
        read_inputs(tmp_path / "id.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"text": "x", "date": "March 4"}\n')
    with pytest.raises(ConfigError, match=r"bad.jsonl:1: 'date' \(the document's date\): 'March 4' is not a date: "
                                          r"write YYYY-MM-DD, an ISO 8601 timestamp"):
        read_inputs(tmp_path / "bad.jsonl")
    # A number was read as a date (fromisoformat reads 20230130), and crashed the export later.
    for date in ("20230130", "2023-W05-1"):
        (tmp_path / "num.jsonl").write_text(f'{{"text": "x", "date": {date if date.isdigit() else repr(date)!s}}}\n'
                                            .replace("'", '"'))
        with pytest.raises(ConfigError, match="YYYY-MM-DD"):
            read_inputs(tmp_path / "num.jsonl")


def test_the_dataset_export_keeps_a_column_the_first_record_lacks(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    import datasets
    from toolcall.data_gen.export import write_hf_dataset

    call = {"tool": "Calendar", "args": [], "result": "Monday", "position": 0}
    write_hf_dataset([{"text": "a", "original": "a", "calls": [call], "id": 7},
                      {"text": "b", "original": "b", "calls": [call], "date": "2023-01-30", "id": "b"}], tmp_path / "ds")
    ds = datasets.load_from_disk(str(tmp_path / "ds"))
    assert ds["date"] == [None, "2023-01-30"] and ds["id"] == ["7", "b"]  # ids of two types: as text


def test_stage_flags_reach_the_run_on_the_fake_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    texts = tmp_path / "t.txt"
    texts.write_text("The total of 2 and 3 is 5.\nToday is Monday.\n")
    out = tmp_path / "out"
    assert main(["data-gen", "--backend", "fake", "--input", str(texts), "--output", str(out), "--no-progress",
                 "--samples", "2", "--no-prefilter", "--call-timeout", "2", "--max-batch-tokens", "64"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["texts_in"] == 2
    config = json.loads((out / "run.json").read_text())["config"]
    assert config["sample"]["m"] == 2 and config["prefilter"]["enabled"] is False
    assert config["execute"]["timeout"] == 2.0 and config["positions"]["k"] == 5
    # --samples cleared the per-tool m; k stays the default sampling's Calculator value.
    assert config["overrides"]["calculator"]["m"] is None and config["overrides"]["calculator"]["k"] == 5
    assert config["sampling"] == "default" and config["propose"]["enabled"] is True


def test_sampling_paper_restores_the_papers_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    texts = tmp_path / "t.txt"
    texts.write_text("The total of 2 and 3 is 5.\n")
    out = tmp_path / "out"
    assert main(["data-gen", "--backend", "fake", "--input", str(texts), "--output", str(out), "--no-progress",
                 "--sampling", "paper", "--tau-p", "0.3"]) == 0
    config = json.loads((out / "run.json").read_text())["config"]
    assert config["sampling"] == "paper" and config["filter"]["tau_p"] == 0.3
    assert config["overrides"]["calculator"] == {"tau_s": 0.0, "k": 20, "m": 10, "temperature": None, "tau_f": 0.5, "tau_p": None,
                                                 "propose": None}
    assert all(c["source"] == "model" for c in _corpus_calls(out))


def _corpus_calls(out: Path) -> list[dict[str, object]]:
    import json

    lines = (out / "corpus.jsonl").read_text().splitlines()
    return [call for line in lines if line.strip() for call in json.loads(line)["calls"]]


def test_bad_sampling_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["data-gen", "--input", "x.txt", "--output", "o", "--sampling", "clever"])
    assert exc.value.code == 2


def test_max_batch_tokens_goes_to_the_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    texts = tmp_path / "t.txt"
    texts.write_text("x\n")
    assert main(["data-gen", "--backend", "fake", "--input", str(texts), "--output", str(tmp_path / "o"),
                 "--max-batch-tokens", "0"]) == 1
    assert "max_batch_tokens must be a whole number >= 1" in capsys.readouterr().err


def test_scorer_model_is_set_apart_from_the_sampling_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    texts = tmp_path / "t.txt"
    texts.write_text("The total of 2 and 3 is 5.\n")
    script = tmp_path / "script.json"
    script.write_text('["hello"]')
    out = tmp_path / "out"
    assert main(["data-gen", "--backend", "fake", "--input", str(texts), "--output", str(out), "--no-progress",
                 "--scorer-model", str(script)]) == 0
    from toolcall.data_gen.checkpoint import file_sha256

    assert json.loads((out / "run.json").read_text())["models"] == {
        "sampler": None, "scorer": str(script), "sampler_sha256": None, "scorer_sha256": file_sha256(script),
        "dtype": "auto", "backend": "fake"}
    capsys.readouterr()
    # Resuming with the scorer as the sampling model too is another run: refused.
    assert main(["data-gen", "--backend", "fake", "--input", str(texts), "--output", str(out), "--no-progress",
                 "--resume", "--model", str(script)]) == 1
    assert "models differs" in capsys.readouterr().err
    # On Ray each actor loads both models; the run records them as a local run does, and refuses another on resume.
    ray_out = tmp_path / "ray"
    assert main(["data-gen", "--backend", "fake", "--input", str(texts), "--output", str(ray_out), "--no-progress",
                 "--engine", "ray", "--actors", "1", "--scorer-model", str(script)]) == 0
    assert json.loads((ray_out / "run.json").read_text())["models"]["scorer"] == str(script)
    capsys.readouterr()
    assert main(["data-gen", "--backend", "fake", "--input", str(texts), "--output", str(ray_out), "--no-progress",
                 "--engine", "ray", "--actors", "1", "--resume"]) == 1
    assert "models differs" in capsys.readouterr().err


def test_resume_knows_a_model_by_its_files_and_says_which_setting_differs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A run knew its model by the path as typed: the same folder typed as an absolute path was refused, and a folder
    trained again in place (the corpus -> train -> data-gen iteration does that) resumed, mixing two models' calls.
    A config that differed said only "the config differs"."""
    texts = tmp_path / "t.txt"
    texts.write_text("The total of 2 and 3 is 5.\nThe total of 4 and 3 is 7.\n")
    model = tmp_path / "m1.json"  # the fake backend's model is one file; a folder is hashed over its files
    model.write_text('["hello"]')
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    base = ["data-gen", "--backend", "fake", "--input", str(texts), "--output", str(out), "--no-progress"]
    assert main([*base, "--model", "m1.json", "--limit", "1"]) == 0
    assert main([*base, "--model", str(model), "--limit", "2", "--resume"]) == 0  # the same file, another path
    model.write_text('["hello", "again"]')  # trained again in place
    capsys.readouterr()
    assert main([*base, "--model", "m1.json", "--resume"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "the sampler model's files (that run: " in err and "the scorer model's files" in err
    model.write_text('["hello"]')
    assert main([*base, "--model", "m1.json", "--resume", "--samples", "7"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "config differs" in err and "(that run: " in err and "now: 7)" in err, err


def test_a_models_folder_is_known_by_its_files_paths_and_contents(tmp_path: Path) -> None:
    from toolcall.data_gen.checkpoint import model_sha256

    folder = tmp_path / "adapter"
    (folder / ".cache" / "huggingface").mkdir(parents=True)
    (folder / "checkpoint-10").mkdir()
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(b"\x00\x01")
    first = model_sha256(str(folder))
    assert first is not None and model_sha256(str(tmp_path / "adapter" / ".")) == first
    # What does not make the model: a model card, a download's metadata (written again by each download), training
    # checkpoints beside the result.
    (folder / "README.md").write_text("# my adapter")
    (folder / ".cache" / "huggingface" / "adapter_model.safetensors.metadata").write_text("1733580000.123")
    (folder / "checkpoint-10" / "adapter_model.safetensors").write_bytes(b"\x09")
    assert model_sha256(str(folder)) == first
    (folder / "adapter_model.safetensors").write_bytes(b"\x00\x02")  # trained again
    assert model_sha256(str(folder)) not in (None, first)
    (folder / "adapter_model.safetensors").write_bytes(b"\x00\x01")
    (folder / "adapter_model.safetensors").rename(folder / "model.safetensors")  # the same bytes, another file
    assert model_sha256(str(folder)) != first
    assert model_sha256(None) is None and model_sha256(str(tmp_path / "no such model")) is None


def test_a_ray_actor_builds_the_judge_apart_from_the_sampler(tmp_path: Path) -> None:
    from toolcall.data_gen.config import DataGenConfig
    from toolcall.data_gen.ray_engine import PipelineSpec

    script = tmp_path / "script.json"
    script.write_text('["hello"]')
    config = DataGenConfig(tools=("calculator",))
    apart = PipelineSpec(config, "fake", None, scorer_model=str(script))()
    assert apart.scorer is not apart.sampler
    one = PipelineSpec(config, "fake", str(script), scorer_model=str(script))()
    assert one.scorer is one.sampler


@pytest.mark.parametrize(("model", "typed", "judge"), [
    (None, None, None),                            # the paper's one model
    ("embedded", None, None),
    ("ckpt", None, "ckpt"),
    (None, "toolformer-smollm2", "toolformer-smollm2"),
    ("ckpt", "embedded", None),                    # the base, by name
    ("ckpt", "Embedded", None),
])
def test_the_judge_is_the_sampling_model_unless_one_is_named(model: str | None, typed: str | None,
                                                             judge: str | None) -> None:
    from toolcall.cli.datagen_cmd import scorer_model

    assert scorer_model(model, typed) == judge


def test_dtype_goes_to_the_engines_that_have_weights() -> None:
    from toolcall.cli.datagen_cmd import dtype_option

    assert dtype_option("transformers", "auto") == {"dtype": "auto"}    # resolved for the device where it loads
    assert dtype_option("hf", "float32") == {"dtype": "float32"}
    assert dtype_option("vllm", "auto") == {}                            # vLLM's own default
    assert dtype_option("vllm", "float32") == {"dtype": "float32"}
    assert dtype_option("fake", "bfloat16") == {}


def test_an_unknown_dtype_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["data-gen", "--input", "x.txt", "--output", "o", "--dtype", "float8"])
    assert exc.value.code == 2


def test_an_output_path_a_run_cannot_use_is_an_error_not_a_traceback(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    texts = tmp_path / "t.txt"
    texts.write_text("It costs 12 and 30, so 42.\n")
    afile = tmp_path / "afile"
    afile.write_text("")
    for out, why in ((afile, "is a file"), (afile / "sub", "cannot be made")):
        assert main(["data-gen", "--backend", "fake", "--input", str(texts), "--output", str(out),
                     "--no-progress"]) == 1
        assert why in capsys.readouterr().err


def test_ctrl_c_ends_data_gen_without_waiting_out_a_running_tool(tmp_path: Path) -> None:
    """Ctrl-C while a tool ran in data-gen's call pool: the process ended only when the call's time limit (30 s)
    had passed, since the interpreter's exit joins the pool's threads, each waiting on its tool."""
    import json
    import signal
    import subprocess
    import sys
    import time

    started = tmp_path / "started"
    (tmp_path / "slow_tools.py").write_text(
        "import pathlib, time\nimport toolcall\nfrom toolcall.tool_type import Proposal\n\n\n"
        "@toolcall.tool(timeout=30, cache=False, proposer=lambda text: [Proposal(10, ('x',), 0.9)])\n"
        "def Slow(s: str) -> str:\n    \"\"\"Sleeps.\n\n    Args:\n        s: The text.\n    \"\"\"\n"
        f"    pathlib.Path({str(started)!r}).touch()\n    time.sleep(60)\n    return s\n")
    (tmp_path / "in.jsonl").write_text(json.dumps({"text": "The shop sold 12 apples, a total of 42 fruits."}) + "\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolcall", "data-gen", "--input", "in.jsonl", "--output", "out", "--backend", "fake",
         "--no-progress", "--tools-from", "slow_tools.py", "--no-prefilter", "--tau-p=-1e9"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # a shell's background job ignores it
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGINT)
        began = time.monotonic()
        _, err = proc.communicate(timeout=20)
        assert time.monotonic() - began < 5 and proc.returncode == 130 and "interrupted" in err
    finally:
        proc.kill()


def test_a_long_input_text_runs_as_its_parts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each part is a text of its own (its record says which part of which input), and every export takes them."""
    import json

    long = "\n\n".join(f"Shop {i} sold 2 and 3 boxes, so 5 boxes in all. " * 4 for i in range(6))
    texts = tmp_path / "t.jsonl"
    texts.write_text(json.dumps({"text": long, "id": "doc"}) + "\n" + json.dumps({"text": "Today is Monday."}) + "\n")
    out = tmp_path / "out"
    assert main(["data-gen", "--backend", "fake", "--input", str(texts), "--output", str(out), "--no-progress",
                 "--max-text-chars", "500", "--no-prefilter"]) == 0
    parts = -(-len(long) // 500)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["texts_in"] >= parts + 1
    assert json.loads((out / "run.json").read_text())["config"]["max_text_chars"] == 500
    from datasets import load_from_disk

    ds = load_from_disk(str(out / "hf_dataset"))
    records = [json.loads(line) for line in (out / "corpus.jsonl").read_text().splitlines()]
    assert all(len(r["original"]) <= 500 and r["part"] >= 0 for r in records if r.get("id") == "doc")
    assert len(ds) == len(records)
    assert main(["data-gen", "--backend", "fake", "--input", str(texts), "--output", str(out), "--no-progress",
                 "--max-text-chars", "400", "--no-prefilter", "--resume"]) == 1   # other pieces: another run
    assert "config differs" in capsys.readouterr().err


def test_the_text_field_and_a_whole_txt_reach_the_run_and_a_resume_must_keep_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import gzip
    import json

    texts = tmp_path / "squad.jsonl.gz"
    with gzip.open(texts, "wt") as fh:
        for context in ("The total of 2 and 3 is 5.", "Four."):
            fh.write(json.dumps({"text": "A title", "context": context}) + "\n")
    out = tmp_path / "out"
    base = ["data-gen", "--backend", "fake", "--input", str(texts), "--output", str(out), "--no-progress", "--samples",
            "1", "--no-prefilter"]
    assert main([*base, "--text-field", "context"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["texts_in"] == 2
    assert json.loads((out / "run.json").read_text())["config"]["text_field"] == "context"
    assert main([*base, "--resume"]) == 1   # the same file read by another field is other texts
    assert "the config differs" in capsys.readouterr().err
    assert main([*base, "--text-field", "context", "--resume"]) == 0
    book = tmp_path / "book.txt"
    book.write_text("It had 2 pens\nand 3 more, 5 in all.\n\nThen it had\n6.\n")
    whole = tmp_path / "whole"
    assert main(["data-gen", "--backend", "fake", "--input", str(book), "--output", str(whole), "--no-progress",
                 "--samples", "1", "--no-prefilter", "--txt", "whole"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["texts_in"] == 1
    config = json.loads((whole / "run.json").read_text())["config"]
    assert config["txt"] == "whole" and "text_field" not in config   # a default is not written: older runs resume


def test_the_date_field_reaches_the_calendar_and_the_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    texts = tmp_path / "c4.jsonl"
    texts.write_text(json.dumps({"text": "Today is Monday, March 4, 2024.", "timestamp": "2024-03-04T10:00:00Z",
                                 "url": "https://e.example/1"}) + "\n")
    out = tmp_path / "out"
    assert main(["data-gen", "--backend", "fake", "--input", str(texts), "--output", str(out), "--no-progress",
                 "--tools", "calendar", "--date-field", "timestamp", "--id-field", "url", "--samples", "1"]) == 0
    capsys.readouterr()
    (record,) = [json.loads(line) for line in (out / "corpus.jsonl").read_text().splitlines()]
    assert (record["date"], record["id"]) == ("2024-03-04", "https://e.example/1")
    # The Calendar answered for the document's own day, read from its timestamp.
    assert [c["result"] for c in record["calls"]] == ["Today is Monday, March 4, 2024."]
    config = json.loads((out / "run.json").read_text())["config"]
    assert (config["date_field"], config["id_field"]) == ("timestamp", "url") and "text_field" not in config


def test_a_resume_must_search_the_same_wiki_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import hashlib
    import json

    from toolcall.tools import wikisearch

    texts = tmp_path / "t.txt"
    texts.write_text("Zorblax is a moon of Quux.\nIt was found in 2091.\n")
    one, two = tmp_path / "one.txt", tmp_path / "two.txt"
    one.write_text("Zorblax is a moon of Quux.\n", encoding="utf-8")
    two.write_text("Quux has no moons.\n", encoding="utf-8")
    out = tmp_path / "out"
    base = ["data-gen", "--backend", "fake", "--input", str(texts), "--output", str(out), "--no-progress", "--samples",
            "1", "--no-prefilter", "--tools", "wikisearch"]
    try:
        assert main([*base, "--limit", "1", "--wiki-corpus", str(one)]) == 0
        recorded = json.loads((out / "run.json").read_text())["tool_data"]["wiki_corpus_sha256"]
        assert recorded == hashlib.sha256(one.read_bytes()).hexdigest()
        capsys.readouterr()
        for other in (["--wiki-corpus", str(two)], []):   # other passages, or the demo corpus
            assert main([*base, "--resume", *other]) == 1
            assert "--wiki-corpus file's content differs" in capsys.readouterr().err
        copy = tmp_path / "copy.txt"   # the same passages from another path resume it
        copy.write_bytes(one.read_bytes())
        assert main([*base, "--resume", "--wiki-corpus", str(copy)]) == 0
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["texts_in"] == 2
        # A run whose tools search nothing records no corpus, and one from before it was recorded resumes.
        record = json.loads((out / "run.json").read_text())
        del record["tool_data"]
        (out / "run.json").write_text(json.dumps(record))
        assert main([*base, "--resume", "--wiki-corpus", str(two)]) == 0
        # ... and from then on, the corpus it was resumed with is its own.
        assert json.loads((out / "run.json").read_text())["tool_data"]["wiki_corpus_sha256"] == \
            hashlib.sha256(two.read_bytes()).hexdigest()
        capsys.readouterr()
        assert main([*base, "--resume", "--wiki-corpus", str(one)]) == 1
        assert "--wiki-corpus file's content differs" in capsys.readouterr().err
        calc = tmp_path / "calc"
        assert main([*base[:6], str(calc), *base[7:-1], "calculator", "--wiki-corpus", str(one)]) == 0
        assert "tool_data" not in json.loads((calc / "run.json").read_text())
    finally:
        wikisearch.configure(None)


def test_a_field_no_text_has_is_said_in_one_plain_line(tmp_path: Path) -> None:
    """The warning named a file inside toolcall and quoted its source line (Python's form)."""
    import subprocess
    import sys

    texts = tmp_path / "t.jsonl"
    texts.write_text('{"text": "The total of 2 and 3 is 5."}\n')
    done = subprocess.run([sys.executable, "-m", "toolcall", "data-gen", "--backend", "fake", "--input", str(texts),
                           "--output", str(tmp_path / "o"), "--no-progress", "--date-field", "timestamp"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (line,) = [x for x in done.stderr.splitlines() if "timestamp" in x]
    assert line.startswith("toolcall: --date-field 'timestamp': none of the 1 input texts") and ".py" not in line
