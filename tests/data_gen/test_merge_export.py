"""Merging kept calls into the text, and the MOSS / HF dataset exports."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from toolcall.data_gen.export import read_records, to_moss, write_hf_dataset
from toolcall.data_gen.merge import merge_record
from toolcall.data_gen.records import Candidate, TextRecord

from toolcall.dialects import get_dialect

TEXT = "Out of 1400 participants, 400 passed. It was Monday."


def cand(tool: str, token: int, position: int, red: float, kept: bool = True, call: str | None = None,
         **more: object) -> Candidate:
    args = ("400 / 1400",) if tool == "Calculator" else ()
    return replace(Candidate(tool, args, f"[{tool}({', '.join(args)})]", token, position,
                             result="0.29" if tool == "Calculator" else "Today is Monday.", loss_minus=2.0,
                             loss_plus=2.0 - red, loss_reduction=red, kept=kept,
                             text_call=call or ("[Calculator(400 / 1400) -> 0.29]" if tool == "Calculator"
                                                else "[Calendar() -> Today is Monday.]")), **more)


def merged(text: str, *cands: Candidate) -> dict | None:
    return merge_record(TextRecord(text, candidates=cands))


def test_merge_inserts_calls_keeping_spaces_and_drops_losers() -> None:
    at_400 = TEXT.index(" 400")
    at_monday = TEXT.index(" Monday")
    out = merged(TEXT,
                 cand("Calculator", 6, at_400, 0.9),
                 cand("Calendar", 6, at_400, 0.4),                   # same position, smaller reduction: loses
                 cand("Calendar", 11, at_monday, 1.5),
                 cand("Calculator", 2, 6, 3.0, kept=False))          # filtered out
    assert out is not None
    assert out["text"] == ("Out of 1400 participants, [Calculator(400 / 1400) -> 0.29] 400 passed. "
                           "It was [Calendar() -> Today is Monday.] Monday.")
    assert out["original"] == TEXT
    assert [c["tool"] for c in out["calls"]] == ["Calculator", "Calendar"]
    assert [c["position"] for c in out["calls"]] == [at_400, at_monday]
    assert set(out["calls"][0]) == {"tool", "args", "result", "position", "loss_minus", "loss_plus", "loss_reduction",
                                    "source"}
    assert out["calls"][0]["source"] == "model"       # a candidate without a source was sampled
    assert out["calls"][0]["args"] == ["400 / 1400"]  # written as a JSON list


def test_prefix_call_after_a_bare_space_token_is_written_before_the_space() -> None:
    # Real run: SmolLM2 tokens " " "2" ",800"; a call kept at "2" read "of [Calculator(..) -> 2800]2,800".
    text = "a total of 2,800 books"
    at = text.index("2,800")
    calc = cand("Calculator", 4, at, 0.7, call="[Calculator(1,240 + 1,560) -> 2800]", placement="prefix")
    out = merged(text, calc, replace(calc, token=3, position=at - 1, loss_reduction=0.6))
    assert out is not None and out["text"] == "a total of [Calculator(1,240 + 1,560) -> 2800] 2,800 books"
    assert [c["loss_reduction"] for c in out["calls"]] == [0.7]      # the same place twice: the larger reduction wins
    inline = merged(text, replace(calc, placement="inline"))
    assert inline is not None and inline["text"] == "a total of [Calculator(1,240 + 1,560) -> 2800]2,800 books"


def test_a_prefix_call_at_the_start_of_a_line_keeps_a_crlf_together() -> None:
    """It was written between the CR and the LF, leaving a lone CR at the end of a line."""
    for newline in ("\n", "\r\n"):
        text = f"a total of{newline}2,800 books"
        calc = cand("Calculator", 4, text.index("2,800"), 0.7, call="[Calculator(1,240 + 1,560) -> 2800]",
                    placement="prefix")
        out = merged(text, calc)
        assert out is not None and out["text"] == f"a total of [Calculator(1,240 + 1,560) -> 2800]{newline}2,800 books"


def test_prefix_call_at_a_price_is_written_before_the_currency_sign() -> None:
    # SmolLM2 tokens " $" "1" "8" "0": a call kept at "1" would read "away $[..]180".
    text = "she put away $180 and ($25) more"
    out = merged(text, cand("Calculator", 4, text.index("180"), 0.7, call="[Calculator(15 * 12) -> 180]"),
                 cand("Calculator", 9, text.index("25"), 0.6, call="[Calculator(5 * 5) -> 25]"))
    assert out is not None
    assert out["text"] == "she put away [Calculator(15 * 12) -> 180] $180 and ([Calculator(5 * 5) -> 25]$25) more"
    assert [c["position"] for c in out["calls"]] == [text.index("180"), text.index("25")]   # where the number starts


def test_identical_call_is_kept_once_where_it_helped_most() -> None:
    text = "Out of 1400 participants, 400 (or 29%) passed."
    places = [text.index(" ("), text.index("or "), text.index(" 29")]
    cands = [cand("Calculator", t, at, red) for t, at, red in zip((9, 11, 12), places, (0.86, 1.85, 0.8))]
    cands.append(cand("Calculator", 2, 6, 0.7, call="[Calculator(1400 - 400) -> 1000]"))
    out = merged(text, *cands)
    assert out is not None
    assert out["text"] == ("Out of [Calculator(1400 - 400) -> 1000] 1400 participants, 400 ([Calculator(400 / 1400) -> 0.29]or "
                           "29%) passed.")
    assert [c["loss_reduction"] for c in out["calls"]] == [0.7, 1.85]


def test_merge_drops_texts_without_kept_calls() -> None:
    assert merged(TEXT, cand("Calendar", 11, 40, 0.2, kept=False)) is None
    assert merged(TEXT) is None


def test_moss_mapping() -> None:
    at_400 = TEXT.index(" 400")
    rec = merged(TEXT, cand("Calculator", 6, at_400, 0.9))
    conv = to_moss(rec, 0, ["Calculator", "Calendar"])
    turn = conv["chat"]["turn_1"]
    assert turn["Human"] == "<|Human|>: Continue the text: Out of 1400 participants,<eoh>\n"
    assert turn["Commands"] == "<|Commands|>: Calculate(\"400 / 1400\")<eoc>\n"
    assert turn["Tool Responses"] == "<|Results|>:\nCalculate(\"400 / 1400\") => '0.29'\n<eor>\n"
    assert turn["MOSS"] == "<|MOSS|>: 400 passed. It was Monday.<eom>\n"
    assert "- Calculator: enabled." in conv["meta_instruction"] and "- Web search: disabled." in conv["meta_instruction"]
    assert "- Calendar: enabled." in conv["meta_instruction"]


def test_the_moss_turn_is_cut_where_the_call_is_written_not_at_its_token() -> None:
    """Scored at "42", written before " $42": the Human turn ended in "$" and MOSS's began with "42"."""
    original = "He paid $12 and $30, so $42 in total."
    at = original.index("42 in")
    text = original[:at - 2] + " [Calculator(12 + 30) -> 42]" + original[at - 2:]
    call = {"tool": "Calculator", "args": ["12 + 30"], "result": "42", "position": at}
    turn = to_moss({"text": text, "original": original, "calls": [call]}, 0, ["Calculator"])["chat"]["turn_1"]
    assert turn["Human"] == "<|Human|>: Continue the text: He paid $12 and $30, so<eoh>\n"
    assert turn["MOSS"] == "<|MOSS|>: $42 in total.<eom>\n"


def test_every_moss_export_round_trips_through_the_moss_parser() -> None:
    text = "One. Two, three. Four."
    results = ["it's 2", 'say "hi"', "line one\nline two", "a, b, c", "", "No result."]
    tools = ["Calculator", "WikiSearch", "Search", "Solve", "Calendar", "QA"]
    calls = [{"tool": tool, "args": args, "result": result, "position": 4, "loss_minus": 1.0, "loss_plus": 0.5,
              "loss_reduction": 0.5}
             for tool, args, result in zip(tools, [["1+1"], ["it's, \"quoted\""], ["q"], ["x=1"], [], ["Who?"]], results)]
    record = {"text": text, "original": text, "calls": calls}
    conv = to_moss(record, 4, tools)
    assert conv["conversation_id"] == 5 and conv["num_turns"] == 1
    moss = get_dialect("moss")
    parsed = moss.parse("".join(conv["chat"]["turn_1"].values()))
    assert parsed.issues == []
    assert [(c.tool, c.args, c.result) for c in parsed.calls] == [
        ("Calculate", ("1+1",), "it's 2"), ("Search", ('it\'s, "quoted"',), 'say "hi"'),
        ("Search", ("q",), "line one\nline two"), ("Solve", ("x=1",), "a, b, c"), ("Calendar", (), ""),
        ("QA", ("Who?",), "No result.")]
    assert moss.reply("".join(conv["chat"]["turn_1"].values())) == "Two, three. Four."


def test_hf_dataset_roundtrip(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rec = merged(TEXT, cand("Calculator", 6, TEXT.index(" 400"), 0.9))
    (tmp_path / "corpus.jsonl").write_text(json.dumps(rec) + "\n")
    records = read_records(tmp_path / "corpus.jsonl")
    write_hf_dataset(records, tmp_path / "hf")
    ds = datasets.load_from_disk(str(tmp_path / "hf"))
    assert ds[0]["text"] == rec["text"] and ds[0]["calls"][0]["args"] == ["400 / 1400"]


def test_a_proposed_call_wins_over_a_sampled_one_at_a_place_and_for_an_identical_call() -> None:
    text = "Today is Tuesday. The parcel shipped on Saturday, October 4, with 12 boxes."
    today = cand("Calendar", 3, text.index(" Tuesday"), 0.3, source="proposer")
    other_day = cand("Calendar", 9, text.index(" Saturday"), 1.3, source="model")
    out = merged(text, today, other_day)
    assert out is not None and [c["position"] for c in out["calls"]] == [text.index(" Tuesday")]
    sampled = cand("Calculator", 14, text.index(" 12"), 2.0, call="[Calculator(3 * 5) -> 15]", source="model")
    proposed = cand("Calculator", 14, text.index(" 12"), 0.2, call="[Calculator(3 * 4) -> 12]", source="both")
    out = merged(text, sampled, proposed)
    assert out is not None and [c["source"] for c in out["calls"]] == ["both"]


def test_the_dataset_export_draws_no_bar_and_leaves_datasets_bars_as_they_were(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    datasets = pytest.importorskip("datasets")
    # "Saving the dataset (1/1 shards)" was drawn at the end of every run, --no-progress too.
    record = {"text": "It is 5.", "original": "It is 5.", "calls": []}
    for shown in (True, False):
        (datasets.enable_progress_bars if shown else datasets.disable_progress_bars)()
        write_hf_dataset([record], tmp_path / f"hf{shown}")
        assert datasets.is_progress_bar_enabled() is shown
    datasets.enable_progress_bars()
    assert "Saving the dataset" not in capfd.readouterr().err


def test_the_dataset_export_reads_its_records_in_batches_and_writes_what_one_table_of_them_all_would(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    from toolcall.data_gen import export

    monkeypatch.setattr(export, "EXPORT_BATCH", 2)   # columns and call fields that only later batches have
    call = {"tool": "Calculator", "args": [2, "3"], "result": 5, "position": 0}
    records = [{"text": f"t{i}", "original": f"o{i}", "calls": [call]} for i in range(5)]
    records[3]["date"] = "2024-01-05"
    records[4]["id"] = 9
    records[4]["calls"] = [{**call, "source": "model", "loss_reduction": 1}]
    records[1]["calls"] = [{**call, "loss_reduction": 0.5}]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records))
    rows = [{k: r.get(k) for k in ("text", "original", "calls", "date", "id")} for r in records]
    for row in rows:
        row["calls"] = [{**c, "args": [str(a) for a in c["args"]], "result": str(c["result"])} for c in row["calls"]]
    whole = datasets.Dataset.from_list(rows)
    for given in (read_records(corpus), iter(records), records):   # a generator is read once, then held
        export.write_hf_dataset(given, tmp_path / "hf")
        ds = datasets.load_from_disk(str(tmp_path / "hf"))
        assert ds.features == whole.features and ds.to_list() == whole.to_list()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl", "hf"]   # nothing staged is left
        del ds


def test_the_staged_arrow_file_goes_when_the_export_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    from toolcall.data_gen import export

    def fail(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets.Dataset, "from_file", fail)
    record = {"text": "It is 5.", "original": "It is 5.", "calls": []}
    with pytest.raises(KeyboardInterrupt):
        export.write_hf_dataset([record], tmp_path / "hf")
    assert list(tmp_path.iterdir()) == []
