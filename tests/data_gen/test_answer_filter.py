"""The answer filter for chat corpora: the calls, results and answer read back through the dialect, L+ and both L-."""
from __future__ import annotations

import json
import re
import statistics
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


@pytest.fixture
def scorer_from(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The command's scorer is a LengthReader (every record scores differently); the list records each load."""
    import toolcall.backends

    loads: list[str] = []

    def get_scorer(backend: str, model: str | None = None) -> LengthReader:
        loads.append(backend)
        return LengthReader()

    monkeypatch.setattr(toolcall.backends, "get_scorer", get_scorer)
    return loads


def test_each_record_gets_its_own_score_whatever_its_id(tmp_path, corpus: list[dict], scorer_from: list[str]) -> None:
    # Two corpora concatenated repeat each other's ids, and a record may have none: the ids must not pick the score.
    first, second = corpus[:15], corpus[15:]
    records = [*first, *(dict(r, id=first[i % len(first)]["id"]) for i, r in enumerate(second))]
    records = [{k: v for k, v in r.items() if k != "id"} if i % 4 == 0 else r for i, r in enumerate(records)]
    own = [score_answers([r], LengthReader(), HERMES) for r in records]  # each record scored alone
    tau = statistics.median(s[0].reduction for s in own if s)
    expected = [r for r, s in zip(records, own) if not s or s[0].kept(tau)]
    assert 0 < sum(bool(r["calls"]) for r in expected) < sum(bool(r["calls"]) for r in records)
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main([str(path), "--out", str(tmp_path / "kept.jsonl"), "--tau", str(tau)]) == 0
    kept = [json.loads(line) for line in (tmp_path / "kept.jsonl").read_text().splitlines()]
    assert kept == expected
    written = json.loads((tmp_path / "kept.scores.json").read_text())
    assert written["summary"]["kept_with_calls"] == sum(bool(r["calls"]) for r in kept)
    assert [s["reduction"] for s in written["scores"]] == [s[0].reduction for s in own if s]


def _without(record: dict, name: str) -> dict:
    return {k: v for k, v in record.items() if k != name}


@pytest.mark.parametrize("bad, message", [
    (lambda r: _without(r, "prompt_chars"), "corpus.jsonl:2: field 'prompt_chars' must be a whole number"),
    (lambda r: dict(r, prompt_chars="abc"), "corpus.jsonl:2: field 'prompt_chars' must be a whole number .* found 'abc'"),
    (lambda r: dict(r, prompt_chars=10 ** 9), "corpus.jsonl:2: field 'prompt_chars' must be a whole number"),
    (lambda r: _without(r, "text"), "corpus.jsonl:2: field 'text' must be the conversation as a string"),
    (lambda r: dict(r, calls=[_without(r["calls"][0], "result")]), r"corpus.jsonl:2: calls\[0\] needs a field 'result'"),
    (lambda r: dict(r, calls=[_without(r["calls"][0], "arguments")]),
     r"corpus.jsonl:2: calls\[0\] needs a field 'arguments'"),
    (lambda r: dict(r, calls=["x"]), r"corpus.jsonl:2: calls\[0\] must be an object"),
    (lambda r: dict(r, calls="x"), "corpus.jsonl:2: field 'calls' must be a list of calls .* found str 'x'"),
    (lambda r: _without(r, "calls"), "corpus.jsonl:2: field 'calls' must be a list of calls .* found no field"),
    (lambda r: dict(r, calls=[dict(r["calls"][0], arguments={"other": 1})]),
     "corpus.jsonl:2: the reply is not the record's calls and results followed by an answer"),
], ids=["no-prompt_chars", "prompt_chars-text", "prompt_chars-past-text", "no-text", "call-without-result",
        "call-without-arguments", "call-not-object", "calls-string", "no-calls", "reply-not-calls"])
def test_a_bad_record_is_named_by_line_and_field_before_the_model_loads(
        tmp_path, corpus: list[dict], scorer_from: list[str], capsys: pytest.CaptureFixture[str], bad, message) -> None:
    record = next(r for r in corpus if r["calls"])
    path = tmp_path / "corpus.jsonl"
    path.write_text(json.dumps(corpus[0]) + "\n" + json.dumps(bad(record)) + "\n")
    assert main([str(path), "--out", str(tmp_path / "kept.jsonl")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert re.match(r"python -m toolcall\.data_gen\.answer_filter: error: \S*" + message, err), err
    assert scorer_from == [] and not (tmp_path / "kept.jsonl").exists()


def test_the_commands_own_errors_are_one_line(tmp_path, corpus: list[dict], scorer_from: list[str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in corpus))
    text = tmp_path / "corpus.txt"
    text.write_text("a conversation\n")
    for argv, message in (([str(path), "--dialect", "nope"], "unknown dialect 'nope'"),
                          ([str(text)], "corpus.txt:1: not valid JSON"),
                          ([str(tmp_path / "none.jsonl")], "corpus .*none.jsonl does not exist")):
        assert main([*argv, "--out", str(tmp_path / "kept.jsonl")]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and re.search(message, err), err
    assert scorer_from == []


def test_an_out_that_cannot_be_written_is_refused_before_the_model_loads(
        tmp_path, corpus: list[dict], scorer_from: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (tmp_path / "kept.scores.json").mkdir()
    for out, message in ((tmp_path, "is a folder; give a file name"),
                         (tmp_path / "missing" / "kept.jsonl", "missing is not an existing folder"),
                         (tmp_path / "kept.jsonl", "kept.scores.json, is a folder"),
                         (path, "is the corpus itself")):
        assert main([str(path), "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert scorer_from == [] and path.read_text().count("\n") == len(corpus)
