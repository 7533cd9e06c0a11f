"""The Toolformer loop closed on the embedded model: data-gen a corpus, fine-tune on it, evaluate the checkpoint."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolcall.cli import main

# A text where the paper's filter keeps a calculator call for SmolLM2-135M (seen: loss reduction ~0.69 >= tau_f 0.5).
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
    assert call["tool"] == "Calculator" and call["loss_reduction"] >= 0.5
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
