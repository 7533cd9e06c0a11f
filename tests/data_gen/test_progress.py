"""Progress of a data-gen run: the last stage's bar shows texts per minute."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from toolcall.data_gen.config import DataGenConfig, PositionConfig, SampleConfig
from toolcall.data_gen.pipeline import Pipeline, run_data_gen, texts_per_minute

from toolcall.backends.fake import FakeBackend


def test_texts_per_minute_reads_as_a_rate() -> None:
    assert texts_per_minute(3, 60.0) == "3.0 texts/min"
    assert texts_per_minute(1, 12.0) == "5.0 texts/min"
    assert texts_per_minute(0, 0.0) == "0.0 texts/min"


def test_a_run_with_progress_shows_texts_per_minute(tmp_path: Path, registry: Any,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps({"text": t}) + "\n" for t in
                             ["The store sold 12 apples and 30 pears, a total of 42 fruits.", "Cats sleep a lot."]))
    cfg = DataGenConfig(tools=("calculator",), positions=PositionConfig(tau_s=0.0, k=1), sample=SampleConfig(m=1))
    run_data_gen(texts, tmp_path / "out", Pipeline(FakeBackend(), registry, cfg), progress=True)
    err = capsys.readouterr().err
    assert "texts/min" in err and "merge" in err
