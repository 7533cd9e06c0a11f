"""The Toolformer loop closed on the embedded model: data-gen a corpus, fine-tune on it, evaluate the checkpoint."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolcall.cli import main

# A text where data-gen keeps a calculator call for SmolLM2-135M (seen: loss reduction ~0.69 with the base judging).
TEXT = ("The library lent 1,240 books in March and 1,560 books in April, a total of 2,800 books over the two "
        "months.")


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.model
def test_data_gen_then_train_then_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text(TEXT + "\n", encoding="utf-8")
    corpus = tmp_path / "corpus"
    assert main(["data-gen", "--input", str(texts), "--output", str(corpus), "--tools", "calculator",
                 "--no-progress"]) == 0
    records = [json.loads(line) for line in (corpus / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    assert records, json.loads((corpus / "stats.json").read_text())
    call = records[0]["calls"][0]
    assert call["tool"] == "Calculator" and call["loss_reduction"] >= (0.5 if call["source"] == "model" else 0.0)
    assert "[Calculator(" in records[0]["text"] and records[0]["original"] == TEXT

    model = tmp_path / "model"
    capsys.readouterr()
    assert main(["train", "--corpus", str(corpus), "--output", str(model), "--max-steps", "2", "--batch-size", "1",
                 "--max-length", "64", "--lr", "1e-4", "--warmup", "0", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert trained["steps"] == 2

    items = tmp_path / "math.jsonl"
    items.write_text(json.dumps({"question": "A shelf has 14 rows of 12 books. How many books?", "answer": "168"}) + "\n")
    assert main(["eval", "--task", "math", "--input", str(items), "--model", str(model), "--max-new-tokens", "24",
                 "--trigger-top-k", "10", "--quiet", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["model"] == str(model)
    assert report["no_tools"]["n"] == 1 and report["tools"]["n"] == 1


@pytest.mark.slow
@pytest.mark.model
def test_data_gen_judged_by_the_adapter_resumes_losing_and_duplicating_nothing(tmp_path: Path) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text(TEXT + "\nA box holds 12 eggs, so 7 boxes hold 84 eggs.\n", encoding="utf-8")
    common = ["data-gen", "--input", str(texts), "--tools", "calculator", "--no-progress",
              "--scorer-model", "toolformer-smollm2"]
    whole, halves = tmp_path / "whole", tmp_path / "halves"
    assert main([*common, "--output", str(whole)]) == 0
    run = json.loads((whole / "run.json").read_text(encoding="utf-8"))
    assert run["models"]["sampler"] is None and run["models"]["scorer"] == "toolformer-smollm2"
    # Stopped after the first text, then resumed: the same corpus as one run, nothing lost or written twice.
    assert main([*common, "--output", str(halves), "--limit", "1"]) == 0
    assert main([*common, "--output", str(halves), "--resume"]) == 0
    assert (halves / "corpus.jsonl").read_text(encoding="utf-8") == (whole / "corpus.jsonl").read_text(encoding="utf-8")
    assert len((halves / "progress.jsonl").read_text(encoding="utf-8").splitlines()) == 2
    # The same directory resumed with the base as judge is another run: refused.
    assert main([*common[:-2], "--output", str(halves), "--resume"]) == 1
