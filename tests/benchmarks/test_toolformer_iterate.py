"""The iteration run: which model samples and judges each corpus, who wrote the kept calls, resume, the report."""
from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from script_module import BENCHMARKS, load_script


@pytest.fixture(scope="module")
def iterate() -> ModuleType:
    return load_script(BENCHMARKS / "toolformer_iterate.py", beside=True)


POOL = [{"text": "Tom has 3 bags of 4 apples, so 12 apples.", "gold": [{"tool": "Calculator", "start": 31, "value": "12"}]},
        {"text": "She paid 5 + 6 = 11 dollars.", "gold": [{"tool": "Calculator", "start": 17, "value": "11"}]}]


def fake_steps(commands: list[list[str]]) -> Any:
    """Stand-ins for the toolcall commands: record each, and write what the real one would."""
    def run(cmd: list[str], log: Path, timings: dict[str, float], step: str) -> None:
        commands.append(cmd)
        args = cmd[cmd.index("toolcall") + 1:]
        value = {flag: args[i + 1] for i, flag in enumerate(args[:-1]) if flag.startswith("--")}
        if args[0] == "data-gen":
            out = Path(value["--output"])
            out.mkdir(parents=True)
            iteration = int(out.name.rsplit("_", 1)[1])
            text = POOL[0]["text"]
            annotated = text[:31] + "[Calculator(3 * 4) -> 12] " + text[31:]
            (out / "corpus.jsonl").write_text(json.dumps({"original": text, "text": annotated, "calls": [
                {"tool": "Calculator", "position": 31, "result": "12"}]}) + "\n")
            by_source = {"proposer": 1} if iteration == 0 else {"model": 1}
            (out / "stats.json").write_text(json.dumps({"calls_kept": 1, "calls_kept_by_source": by_source,
                                                        "texts_kept": 1, "texts_in": 2}))
        elif args[0] == "train":
            out = Path(value["--output"])
            out.mkdir(parents=True)
            (out / "adapter_config.json").write_text("{}")
        elif args[0] == "eval":
            Path(value["--output"]).write_text(json.dumps({"mode": "tools", "gold": "5", "calls": []}) + "\n")
            summary = {mode: {"accuracy": 0.5, "n": 2} for mode in ("no_tools", "tools")}
            log.write_text("progress\n" + json.dumps(summary) + "\n")
    return run


def test_iteration_zero_is_seeded_by_proposers_and_later_ones_by_the_trained_model(
        iterate: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps(r) + "\n" for r in POOL))
    commands: list[list[str]] = []
    monkeypatch.setattr(iterate, "run", fake_steps(commands))
    out = tmp_path / "run"
    assert iterate.main(["--out", str(out), "--iterations", "2", "--texts", "2", "--pool", str(pool),
                         "--eval-args", "--few-shot 0"]) == 0
    evals = [c for c in commands if "eval" in c]
    assert len(evals) == 3 and all(c[c.index("--few-shot") + 1] == "0" for c in evals)  # base, model 1, model 2
    data_gen = [c for c in commands if "data-gen" in c]
    assert "--propose" in data_gen[0] and "--model" not in data_gen[0]  # the base model, with the proposers
    later = data_gen[1]
    model_1 = str(out / "model_1")
    assert "--no-propose" in later and later[later.index("--model") + 1] == model_1
    assert later[later.index("--scorer-model") + 1] == model_1  # the paper's M samples and judges
    assert later[later.index("--prompt") + 1] == "none" and data_gen[0].count("--prompt") == 0  # it reads the text alone
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    first, second = report["iterations"]
    assert first["corpus"]["model_written_share"] == 0.0 and second["corpus"]["model_written_share"] == 1.0
    assert first["corpus"]["quality"]["precision"] == 1.0  # the kept call sits at the text's gold spot
    assert second["model_2_on_held_out_problems"]["tools"]["accuracy"] == 0.5
    # A second run resumes: every step's output is there, so no command runs again.
    commands.clear()
    assert iterate.main(["--out", str(out), "--iterations", "2", "--texts", "2", "--pool", str(pool)]) == 0
    assert commands == []


def test_the_pool_is_real_text_disjoint_from_the_dev_sets() -> None:
    real = BENCHMARKS / "data" / "real"
    ids = {name: {json.loads(line)["id"] for line in (real / f"{name}.jsonl").read_text().splitlines() if line.strip()}
           for name in ("gsm8k_train_pool", "gsm8k_train_tune", "gsm8k_train_heldout")}
    assert len(ids["gsm8k_train_pool"]) == 400
    assert not ids["gsm8k_train_pool"] & (ids["gsm8k_train_tune"] | ids["gsm8k_train_heldout"])


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.model
def test_the_iteration_runs_end_to_end_on_the_embedded_model(iterate: ModuleType, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Two iterations on one text, the real commands and the embedded model: the proposers seed corpus 0, model 1 is
    trained on it and then samples (and judges) corpus 1 by itself; every step reports."""
    text = ("The library lent 1,240 books in March and 1,560 books in April, a total of 2,800 books over the two "
            "months.")
    pool = tmp_path / "pool.jsonl"
    pool.write_text(json.dumps({"id": "e2e-1", "text": text,
                                "gold": [{"tool": "Calculator", "start": text.index("2,800"), "value": "2800"}]}) + "\n")
    problems = tmp_path / "problems.jsonl"
    problems.write_text(json.dumps({"question": "A shelf has 14 rows of 12 books. How many books?", "answer": "168"}) + "\n")
    out = tmp_path / "run"
    assert iterate.main(["--out", str(out), "--iterations", "2", "--texts", "1", "--pool", str(pool), "--problems",
                         str(problems), "--problems-limit", "1", "--epochs", "1", "--batch-size", "1"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["base_on_held_out_problems"]["tools"]["n"] == 1
    first = report["iterations"][0]
    assert first["corpus"]["texts_kept"] == 1 and first["corpus"]["by_source"]  # the proposer-seeded corpus
    assert first["corpus"]["quality"]["precision"] is not None
    assert first["model_1_on_held_out_problems"]["tools"]["n"] == 1
    assert any((out / "model_1").glob("adapter_config.json"))
    second = report["iterations"][1]
    assert second["sampler_and_scorer"] == "model_1"
    # Model 1 writes its own calls or none: either it trained model 2, or the report says why the loop stopped.
    assert "model_2_on_held_out_problems" in second or second["stopped"].startswith("corpus 1 kept no text")
    commands = (out / "commands.log").read_text()
    assert "--no-propose" in commands and f"--scorer-model {out / 'model_1'}" in commands
