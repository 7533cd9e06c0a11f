"""The answer filter for chat corpora: the calls, results and answer read back through the dialect, L+ and both L-."""
from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from toolcall.data_gen.answer_filter import main, score_answers, split_reply
from toolcall.data_gen.corpora.schema_tools import generate

from toolcall.dialects import get_dialect
from toolcall.errors import ConfigError

HERMES = get_dialect("hermes")


class ResultReader:
    """A stand-in scorer over characters: an answer token is likely (-0.1) when the context holds a tool response,
    unlikely (-2.0) otherwise, so results that are there help and empty ones do not."""

    def start_token_id(self) -> int:
        return 0

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def sequence_logprobs(self, sequences: Sequence[tuple[Sequence[int], int]]) -> list[list[float]]:
        out = []
        for ids, start in sequences:
            context = "".join(chr(i) for i in ids[1:start])
            helped = "<tool_response>\n{" in context or '<tool_response>\n"' in context
            out.append([-0.1 if helped else -2.0] * (len(ids) - start))
        return out


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return [s.to_json() for s in generate(30, seed=3)]


def test_every_record_splits_into_its_calls_results_and_answer(corpus: list[dict]) -> None:
    for record in corpus:
        if not record["calls"]:
            continue
        parts = split_reply(record, HERMES)
        assert parts.prompt + parts.calls + parts.results + parts.answer == record["text"]
        assert parts.answer.strip() and "<tool_" not in parts.answer
        assert parts.empty.count("<tool_response>") == len(record["calls"])


def test_results_that_help_the_answer_are_kept(corpus: list[dict]) -> None:
    scores = score_answers(corpus, ResultReader(), HERMES)
    assert len(scores) == sum(bool(r["calls"]) for r in corpus)
    for s in scores:
        assert s.with_results == pytest.approx(0.1) and s.without_call == pytest.approx(2.0)
        assert s.reduction == pytest.approx(1.9) and s.kept(1.0) and not s.kept(2.0)


class LengthReader(ResultReader):
    """Each token's log-probability depends on the whole context's length, so every record scores differently."""

    def sequence_logprobs(self, sequences: Sequence[tuple[Sequence[int], int]]) -> list[list[float]]:
        return [[-(start % 97) / 10 - j / 1000 for j in range(len(ids) - start)] for ids, start in sequences]


def test_records_scored_together_get_the_scores_they_get_alone(corpus: list[dict]) -> None:
    alone = score_answers(corpus, LengthReader(), HERMES, chunk=1)
    assert len({s.reduction for s in alone}) > 5
    for chunk in (4, 7, 1000):
        assert score_answers(corpus, LengthReader(), HERMES, chunk=chunk) == alone
    with pytest.raises(ConfigError, match="chunk must be at least 1, got 0"):
        score_answers(corpus, LengthReader(), HERMES, chunk=0)


def test_a_record_whose_text_is_not_its_calls_is_refused(corpus: list[dict]) -> None:
    record = dict(next(r for r in corpus if r["calls"]))
    record["calls"] = [dict(record["calls"][0], arguments={"other": 1})]
    with pytest.raises(ConfigError, match="not the record's calls"):
        split_reply(record, HERMES)


def test_the_command_writes_kept_records_and_scores(tmp_path, corpus: list[dict]) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in corpus))
    assert main([str(path), "--out", str(tmp_path / "kept.jsonl"), "--backend", "fake", "--tau", "0"]) == 0
    kept = [json.loads(line) for line in (tmp_path / "kept.jsonl").read_text().splitlines()]
    assert len(kept) == len(corpus)  # the fake scorer's uniform model: every reduction is 0, kept at tau 0
    summary = json.loads((tmp_path / "kept.scores.json").read_text())["summary"]
    assert summary["scored"] == sum(bool(r["calls"]) for r in corpus) and summary["kept"] == len(corpus)
