"""Resumable runs: interrupted after some texts (or between the two commit writes), resumed, same corpus as one run."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from toolcall.data_gen.checkpoint import CORPUS, PROGRESS
from toolcall.data_gen.config import DataGenConfig, FilterConfig, PositionConfig, SampleConfig
from toolcall.data_gen.pipeline import Pipeline, run_data_gen

from toolcall.errors import ConfigError

pytestmark = pytest.mark.slow   # every test runs the pipeline on the tiny trained LM

TEXTS = [
    "The store sold 12 apples and 30 pears, a total of 42 fruits.",
    "Cats sleep a lot and dogs bark.",
    "Out of 1400 participants, 400 passed on Monday.",
    "The bridge opened on June 12, 2019.",
    "A box holds 12 eggs, so 3 boxes hold 36 eggs.",
]


class Stop(Exception):
    pass


@pytest.fixture()
def pipeline(tiny_scorer: Any, registry: Any) -> Pipeline:
    cfg = DataGenConfig(positions=PositionConfig(tau_s=0.0, k=2), sample=SampleConfig(m=2),
                        filter=FilterConfig(tau_f=-1e9), overrides={})
    return Pipeline(tiny_scorer, registry, cfg)


@pytest.fixture()
def texts(tmp_path: Path) -> Path:
    path = tmp_path / "texts.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    return path


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_interrupted_then_resumed_equals_uninterrupted(pipeline: Pipeline, texts: Path, tmp_path: Path) -> None:
    full = tmp_path / "full"
    stats_full = run_data_gen(texts, full, pipeline, progress=False)
    assert stats_full["texts_in"] == 5 and stats_full["texts_kept"] >= 2

    def boom(index: int) -> None:
        if index == 2:
            raise Stop

    part = tmp_path / "part"
    with pytest.raises(Stop):
        run_data_gen(texts, part, pipeline, progress=False, on_text_done=boom)
    assert len(lines(part / PROGRESS)) == 3
    stats = run_data_gen(texts, part, pipeline, resume=True, progress=False)
    assert lines(part / CORPUS) == lines(full / CORPUS)
    assert len(set(lines(part / CORPUS))) == len(lines(part / CORPUS))
    assert stats["per_tool"] == stats_full["per_tool"] and stats["texts_done"] == 5
    for name in ("stats.json", "loss_reduction_hist.png", "moss.jsonl", "hf_dataset"):
        assert (part / name).exists()


def test_torn_commit_is_cut_back_on_resume(pipeline: Pipeline, texts: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_data_gen(texts, out, pipeline, progress=False)
    want = lines(out / CORPUS)
    # Killed after the last record was written but before its progress line landed, with a torn partial line too.
    progress = lines(out / PROGRESS)
    last_with_record = max(i for i, p in enumerate(progress) if i == 0 or json.loads(p)["corpus_bytes"] != json.loads(progress[i - 1])["corpus_bytes"])
    (out / PROGRESS).write_text("\n".join(progress[:last_with_record]) + "\n" + progress[last_with_record][:10])
    with (out / CORPUS).open("a") as fh:
        fh.write('{"text": "half a rec')
    run_data_gen(texts, out, pipeline, resume=True, progress=False)
    assert lines(out / CORPUS) == want


@pytest.mark.parametrize("cut", [1, 30, 10_000])
def test_a_corpus_that_lost_its_tail_is_mended_on_resume(pipeline: Pipeline, texts: Path, tmp_path: Path,
                                                         cut: int) -> None:
    """A corpus cut shorter than its progress log says (a copy that lost its tail): resuming appended to the torn
    line, lost records and failed at export from then on. The texts whose records are gone are done again."""
    out = tmp_path / "out"
    run_data_gen(texts, out, pipeline, progress=False)
    want = lines(out / CORPUS)
    data = (out / CORPUS).read_bytes()
    (out / CORPUS).write_bytes(data[:max(0, len(data) - cut)])
    stats = run_data_gen(texts, out, pipeline, resume=True, progress=False)
    assert lines(out / CORPUS) == want and stats["texts_done"] == 5


def test_a_progress_line_that_is_no_commit_is_refused_and_cut_off_the_texts_after_it_are_done_again(
        pipeline: Pipeline, texts: Path, tmp_path: Path) -> None:
    """A broken line with commits after it was taken for the log's end: the texts after it were done again without a
    word (hours, for a long run, where restoring the file would have done)."""
    out = tmp_path / "out"
    run_data_gen(texts, out, pipeline, progress=False)
    want = lines(out / CORPUS)
    progress = lines(out / PROGRESS)
    (out / PROGRESS).write_text("\n".join(progress[:2] + ["null", *progress[2:]]) + "\n")
    with pytest.raises(ConfigError, match=r"progress\.jsonl:3: not a progress line.*first 2 lines"):
        run_data_gen(texts, out, pipeline, resume=True, progress=False)
    assert lines(out / CORPUS) == want
    (out / PROGRESS).write_text("\n".join(progress[:2]) + "\n")   # as the message says: the texts after are done again
    run_data_gen(texts, out, pipeline, resume=True, progress=False)
    assert lines(out / CORPUS) == want and len(lines(out / PROGRESS)) == len(progress)


def test_existing_output_needs_resume(pipeline: Pipeline, texts: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "something").write_text("x")
    with pytest.raises(ConfigError, match="--resume"):
        run_data_gen(texts, out, pipeline, progress=False)


@pytest.mark.parametrize("record", ["{torn", "[1, 2]", "\udcff"], ids=["not-json", "not-an-object", "not-utf8"])
def test_resume_into_a_directory_whose_run_record_is_damaged_is_refused(pipeline: Pipeline, texts: Path, tmp_path: Path,
                                                                       record: str) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "run.json").write_bytes(record.encode("utf-8", "surrogateescape"))
    with pytest.raises(ConfigError, match=r"--resume: .*run\.json .*choose another directory"):
        run_data_gen(texts, out, pipeline, resume=True, progress=False)
    assert (out / "run.json").read_bytes() == record.encode("utf-8", "surrogateescape")  # left as it was


def test_resume_with_other_settings_is_refused(pipeline: Pipeline, texts: Path, tmp_path: Path, tiny_scorer: Any, registry: Any) -> None:
    out = tmp_path / "o"
    run_data_gen(texts, out, pipeline, progress=False, limit=1)
    other = Pipeline(tiny_scorer, registry, DataGenConfig(filter=FilterConfig(tau_f=3.0)))
    with pytest.raises(ConfigError, match="config differs"):
        run_data_gen(texts, out, other, resume=True, progress=False, limit=1)


def test_a_resume_with_a_smaller_limit_keeps_the_stats_of_the_whole_corpus(pipeline: Pipeline, texts: Path,
                                                                          tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_data_gen(texts, out, pipeline, progress=False, limit=3)
    again = run_data_gen(texts, out, pipeline, resume=True, progress=False, limit=2)
    # It said 2 texts in beside 3 done and 3 after the prefilter.
    assert again["texts_in"] == again["texts_done"] == 3 and again["texts_kept"] == first["texts_kept"]
    assert json.loads((out / "stats.json").read_text())["texts_in"] == 3
