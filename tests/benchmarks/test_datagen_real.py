"""The real-text benchmark: what a proposal min_score leaves, and a whole run on the toy LM."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from script_module import BENCHMARKS, load_script
from toolcall.data_gen.records import Candidate


def _cand(source: str, score: float | None) -> Candidate:
    return Candidate("Calculator", ("2 + 3",), "[Calculator(2 + 3)]", 3, 10, source=source, score=score,
                     result="5", loss_reduction=0.2)


def test_a_min_score_drops_weak_proposals_and_keeps_the_models_own_sample() -> None:
    module = load_script(BENCHMARKS / "datagen_real.py", beside=True)
    scored = [(_cand("proposer", 0.5), _cand("proposer", 0.9), _cand("both", 0.5), _cand("model", None))]
    left = module.above(scored, 0.7)[0]
    assert [(c.source, c.score) for c in left] == [("proposer", 0.9), ("model", None), ("model", None)]
    assert module.above(scored, 0.4) == scored


def _run_on_toy_lm(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                   *flags: str) -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
    """(the script's module, its report, the candidate rows) of a 4-text run on the fake backend at min_score 0.6."""
    module = load_script(BENCHMARKS / "datagen_real.py", beside=True)
    cands = tmp_path / "cands.jsonl"
    assert module.main(["--data", str(BENCHMARKS / "data" / "datagen_dev.jsonl"), "--limit", "4", "--backend", "fake",
                        "--candidates", str(cands), "--min-score", "0.6", *flags]) == 0
    report = json.loads(capsys.readouterr().out)
    return module, report, [json.loads(line) for line in cands.read_text().splitlines()]


def test_a_run_on_the_toy_lm_reports_the_figures_at_the_configured_min_score(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module, report, rows = _run_on_toy_lm(tmp_path, capsys, "--no-at-proposals")
    assert report["min_score"] == 0.6 and report["sampling"]["at_proposals"] is False
    (pair, entry), = report["pairs"].items()
    assert pair == "embedded/embedded"     # the fake backend: data-gen's judge is the model itself
    sweep = {row["min_score"]: row for row in entry["min_score_sweep"]}
    assert list(sweep) == list(module.MIN_SCORES)
    # At the configured min_score the sweep and the headline figures agree, and a higher one keeps no more.
    assert sweep[0.6]["kept"] == entry["at_defaults"]["kept"]
    assert [sweep[m]["kept"] for m in module.MIN_SCORES] == sorted((sweep[m]["kept"] for m in module.MIN_SCORES),
                                                                    reverse=True)
    # Proposals under the configured min_score were made (for the sweep) and written to the candidates file.
    assert any(r.get("source") == "proposer" and r["score"] < 0.6 for r in rows)


def test_with_the_model_sampling_at_the_proposals_a_run_proposes_at_min_score_only(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, report, rows = _run_on_toy_lm(tmp_path, capsys, "--samples", "2", "--temperature", "0.5")
    assert report["sampling"] == {"m": {"calculator": 2}, "temperature": {"calculator": 0.5}, "at_proposals": True}
    (entry,) = report["pairs"].values()
    assert isinstance(entry["min_score_sweep"], str)      # a lower proposal would add places to sample: no sweep
    assert not any(r.get("source") in ("proposer", "both") and r["score"] < 0.6 for r in rows)


def test_qa_answer_short_makes_qa_answer_with_its_span_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from toolcall.tools import qa

    module = load_script(BENCHMARKS / "datagen_real.py", beside=True)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"title": "Joe Biden", "text": "He was born in Scranton, Pennsylvania, in 1942."}) + "\n")
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"id": "t", "text": "Biden was born in Scranton, Pennsylvania.",
                                "gold": [{"tool": "QA", "start": 18, "value": "Scranton", "answers": ["Scranton"]}]})
                    + "\n")
    try:
        for mode, answer in (("sentence", "He was born in Scranton, Pennsylvania, in 1942."),
                             ("short", "Scranton, Pennsylvania")):
            qa.set_answerer(None)
            assert module.main(["--data", str(data), "--tools", "qa", "--corpus", str(corpus), "--backend", "fake",
                                "--no-sweep", "--qa-answer", mode]) == 0
            assert json.loads(capsys.readouterr().out)["qa_answer"] == mode
            assert qa.qa("Where was Biden born?") == answer
    finally:
        qa.set_answerer(None)
        from toolcall.tools import _corpus

        _corpus.configure(None)
