"""data_gen's invariants on hostile, real-looking human text (web pages, worked solutions, encyclopedic text): brackets,
arrows and call look-alikes an author wrote, CR and CR LF, tabs, control characters, emoji, combining marks,
right-to-left text, long lines, blank texts, numbers with separators and units.

1. Removing the inserted calls from an output text gives back its "original" (the input with its call markup broken
   by zero-width spaces), in corpus.jsonl and in the exports.
2. The calls in a text parse back as exactly the calls its record lists.
3. The filter computes the paper's weighted losses (an independent naive implementation on the tiny model).
4. A kill during the export leaves no half-written export.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from toolcall.data_gen import export
from toolcall.data_gen.author_text import safe_text
from toolcall.data_gen.config import DataGenConfig, FilterConfig, PositionConfig, SampleConfig
from toolcall.data_gen.filter import call_strings
from toolcall.data_gen.merge import merge_record
from toolcall.data_gen.pipeline import Pipeline, run_data_gen
from toolcall.data_gen.positions import PromptStates, find_positions
from toolcall.data_gen.records import Candidate, TextRecord
from toolcall.data_gen.tokens import TokenizedText

from toolcall.backends.fake import FakeBackend
from toolcall.backends.toy_lm import ToyLM
from toolcall.calls import ToolCall
from toolcall.dialects.moss import MossDialect
from toolcall.dialects.toolformer import ToolformerDialect

pytestmark = pytest.mark.usefixtures("pinned_date")  # Calendar calls answer as on 2023-01-30

ZWSP = "\u200b"
LM_TEXTS = [
    "The store sold 12 apples and 30 pears, a total of [Calculator(12 + 30) -> 42] 42 fruits.",
    "The farm has 12 cows and 30 sheep, a total of [Calculator(12 + 30) -> 42] 42 animals.",
    "Today is [Calendar() -> Today is Monday, January 30, 2023.] Monday, January 30, 2023.",
]
HOSTILE = [
    "Weights: 1,200 kg + 3,400 kg = 4,600 kg; a total of 4,600 kg.",
    "She paid $1,200 and $300, a total of $1,500.\r\nToday is Monday, January 30, 2023.\r\n",
    "Line one 12\rand 30 make\r42, a total of 42",
    "Tabs\t12\tand\t30\ta total of\t42\tfruits.",
    "Emoji \U0001f600 12 apples \U0001f44d\U0001f3fd and 30 pears, a total of 42 \U0001f350.",
    "Cafe\u0301 12 and 30, a total of 42 e\u0301.",
    "\u0639\u062f\u062f 12 \u0648 30 \u05e9\u05dc\u05d5\u05dd a total of 42 \u200f\u202e",
    "x" * 700 + " 12 and 30 a total of 42",
    "   \t  ", "x", "", "\n",
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May. 48+24 = <<48+24=72>>72 clips.",
    "See [1] and [Calculator(12 + 30) -> 41] a total of 42 and <API>Calculator(1+1)</API> then </API> and -> arrows.",
    "12 and 30 -> a total of [42] fruits]",
    "ctrl \x00\x01\x07\x1b[31m 12 and 30, a total of 42\x7f\x85 \u2028 next\u2029",
    "a [Calculator(2+2) -> 5 and then 12 and 30 a total of 42.",
    "12 and 30, a total of 42\u00a0fruits, and 12 and 30, a total of\u00a042.",
    "12 and 30 a total of 42 " + "[" * 30 + " end",
    "a total of 42.\n\n\n12 + 30 = 42\n  \n",
]
#: Tool outputs a text cannot hold as they are: brackets, arrows, markup, several lines, padding.
RESULTS = ["a]b", "x -> y", "[Calculator(1) -> 2]", "line1\nline2", "cr\rlf\r\n end", "</API> <API>", "  padded  ",
           "]]]", "[[[", "emoji \U0001f600 e\u0301", "\u200fRTL\u202e", "1,234.5 kg", "(", "->", "\u2192", ""]
ARGS = ["a]b", "x -> y", 'q"uote', "back\\slash", "line\nnew", "(", ")", ",", "  sp  ", "[Calc(1)]", "a,b", "'s"]


def toy() -> FakeBackend:
    return FakeBackend(lm=ToyLM(LM_TEXTS, order=5, smoothing=0.1))


def keep_all(placement: str = "prefix") -> DataGenConfig:
    return DataGenConfig(tools=("calculator", "calendar"), positions=PositionConfig(tau_s=0.0, k=20),
                         sample=SampleConfig(m=3, seed=1), filter=FilterConfig(tau_f=-1e9, placement=placement,
                                                                               tau_p=-1e9), overrides={})


def without_calls(text: str) -> str:
    """The text less every call the Toolformer dialect reads in it, and the space merge writes before a call that
    stands before white space ("a [..] b" for "a b")."""
    out, last = "", 0
    for call in ToolformerDialect(spelling="bracket").parse(text).calls:
        start, end = call.span
        out += text[last:start]
        if end < len(text) and text[end].isspace() and out.endswith(" "):
            out = out[:-1]
        last = end
    return out + text[last:]


def assert_reads_back(record: dict[str, Any]) -> None:
    """Invariants 1 and 2 for one output record."""
    parsed = ToolformerDialect(spelling="bracket").parse(record["text"])
    assert parsed.issues == []
    assert [(c.tool, list(c.args), c.result) for c in parsed.calls] == \
        [(c["tool"], list(c["args"]), c["result"]) for c in record["calls"]]
    assert without_calls(record["text"]) == record["original"]
    # Each call is written at its position, or before the white space and currency sign of that token.
    text = record["text"]
    for call, said in zip(parsed.calls, record["calls"]):
        start, end = call.span
        gap = end < len(text) and text[end].isspace() and text[start - 1:start] == " "
        at = len(without_calls(text[:start])) - gap   # where in the original it is written
        between = record["original"][at:said["position"]]
        assert at <= said["position"] and all(ch.isspace() or ch in "$€£¥" for ch in between), (at, said)


@settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.sampled_from(HOSTILE[:8] + HOSTILE[12:]), data=st.data())
def test_merged_calls_read_back_as_their_record_says_and_leave_the_original(text: str, data: st.DataObject) -> None:
    """A tool's output written into a call is one line, its unpaired brackets and markup broken (`a］b`): the record
    said the tool's own output ("a]b", two lines), so the text held calls its record did not list."""
    text = safe_text(text)
    n = data.draw(st.integers(1, 4))
    cands = []
    for k in range(n):
        position = data.draw(st.integers(0, len(text)))
        tool = data.draw(st.sampled_from(["Calculator", "Echo"]))
        args = (data.draw(st.sampled_from(["12 + 30", *ARGS])),)
        result = data.draw(st.sampled_from(["42", *RESULTS]))
        cand = Candidate(tool, args, "", k, position, result=result, loss_reduction=float(k), kept=True,
                         placement=data.draw(st.sampled_from(["prefix", "inline"])), source="model")
        cands.append(Candidate(**{**cand.__dict__, "text_call": call_strings(cand)[1]}))
    record = merge_record(TextRecord(text, candidates=tuple(cands)))
    assert record is not None
    assert_reads_back(record)


def test_the_record_lists_its_calls_in_the_order_the_text_writes_them() -> None:
    """A prefix call at a token after a space is written before the space, so before an inline call scored at that
    token: listed by position (a tie), the record named them the other way round from the text."""
    text = "Weights: 1,200 kg + 3,400 kg = 4,600 kg."
    cands = []
    for k, (placement, result) in enumerate([("inline", "a]b"), ("prefix", "42")]):
        cand = Candidate("Calculator", ("12 + 30",), "", k, 15, result=result, loss_reduction=1.0, kept=True,
                         placement=placement, source="model")
        cands.append(Candidate(**{**cand.__dict__, "text_call": call_strings(cand)[1]}))
    record = merge_record(TextRecord(text, candidates=tuple(cands)))
    assert record is not None and [c["result"] for c in record["calls"]] == ["42", "a］b"]
    assert_reads_back(record)


@pytest.mark.parametrize("placement", ["prefix", "inline"])
def test_the_pipeline_on_hostile_texts_writes_its_own_calls_only_and_keeps_every_character(placement: str) -> None:
    from toolcall.registry import default_registry

    pipeline = Pipeline(toy(), default_registry(["calculator", "calendar"]), keep_all(placement))
    kept = 0
    for text in HOSTILE:
        out, _ = pipeline.process(text)
        if out is None:
            continue
        kept += 1
        # The author's look-alikes stay in the text, visible and whole, broken only by zero-width spaces.
        assert out["original"] == safe_text(text) and out["original"].replace(ZWSP, "") == text
        assert_reads_back(out)
        for look_alike in ("<<48/2=24>>", "[1]", "[42]", "-> arrows", "[" * 30):
            assert out["original"].count(look_alike) == text.count(look_alike)
    assert kept >= 12


def test_no_call_is_placed_inside_a_character_or_between_a_letter_and_its_mark() -> None:
    """Byte-level vocabularies cut "😀" or "ע" into byte tokens; a position at the second one was sampled and scored
    (inline: with the call between the character's bytes) and the call written before the whole character; a call
    before U+0301 split "é", and one between CR and LF split the line end."""
    tt = TokenizedText("e\u0301 \U0001f600\U0001f3fd a\r\nb", (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11),
                       (0, 1, 2, 3, 3, 3, 4, 5, 6, 8, 9))
    assert [i for i in range(len(tt.ids)) if tt.splits_character(i)] == [1, 4, 5, 6, 9]
    text = "Emoji \U0001f600 12 apples \U0001f44d\U0001f3fd and 30 pears, e\u0301 a total of 42.\r\n42"
    states = PromptStates(toy(), PositionConfig.open_texts)
    rec = find_positions(TextRecord(text), "Calculator", states,
                         PositionConfig(tau_s=0.0, k=1000, word_start_only=False, min_token=0))
    _, tt, _, _ = states.get("Calculator", text)
    chars = [p.char for p in rec.positions["Calculator"]]
    assert len(chars) == len(set(chars))
    for char in chars:
        assert text[char] not in "\U0001f3fd\u0301" and text[char - 1:char + 1] != "\r\n"


def test_without_a_prompt_token_0_has_no_position() -> None:
    """With --prompt none and --min-token 0, p_0 was read from open_p[-1], the row after the whole text."""
    text = "12 and 30, a total of 42 fruits ["
    states = PromptStates(toy(), PositionConfig.open_texts, prompt="none")
    rec = find_positions(TextRecord(text), "Calculator", states, PositionConfig(tau_s=0.0, k=1000, min_token=0))
    assert 0 not in [p.token for p in rec.positions["Calculator"]]


def run_hostile(tmp_path: Path, texts: list[str]) -> Path:
    from toolcall.registry import default_registry

    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
    out = tmp_path / "out"
    run_data_gen(source, out, Pipeline(toy(), default_registry(["calculator", "calendar"]), keep_all()),
                 progress=False)
    return out


def lines(path: Path) -> list[str]:
    """A JSON Lines file's lines as str.splitlines() reads them (the repository's benchmarks read corpora so)."""
    return path.read_text(encoding="utf-8").splitlines()


def test_written_files_are_one_line_per_record_and_the_exports_hold_the_corpus(tmp_path: Path) -> None:
    """U+2028, U+2029 and NEL (U+0085) were written raw into corpus.jsonl: one record was several lines to
    str.splitlines(), and benchmarks/toolformer_iterate.py, word_problem_chat.py and toolformer_effect.py failed."""
    out = run_hostile(tmp_path, HOSTILE)
    corpus = [json.loads(line) for line in lines(out / "corpus.jsonl")]
    assert len(corpus) >= 12
    for name in ("progress.jsonl", "rejected.jsonl", "moss.jsonl"):
        assert all(json.loads(line) for line in lines(out / name))
    for record in corpus:
        assert_reads_back(record)
        assert record["original"].replace(ZWSP, "") == HOSTILE[record["id"]]
    # MOSS: the same calls, and the original around them (its white space at the cut and the ends aside).
    moss = MossDialect()
    for record, line in zip(corpus, lines(out / "moss.jsonl"), strict=True):
        turn = json.loads(line)["chat"]["turn_1"]
        written = "".join(turn.values())
        parsed = moss.parse(written)
        assert parsed.issues == []
        assert [(c.tool, list(c.args), c.result) for c in parsed.calls] == \
            [(moss.api_name(c["tool"]), list(c["args"]), c["result"]) for c in record["calls"]]
        human = turn["Human"].removeprefix("<|Human|>: Continue the text: ").removesuffix("<eoh>\n")
        start = record["original"].index(human)
        assert record["original"][start + len(human):].strip() == moss.reply(written)
        assert record["original"][:start].strip() == ""
    datasets = pytest.importorskip("datasets")
    rows = datasets.load_from_disk(str(out / "hf_dataset"))
    assert [(r["text"], r["original"]) for r in rows] == [(r["text"], r["original"]) for r in corpus]


def test_a_kill_while_writing_moss_leaves_the_whole_file_of_before(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """moss.jsonl and hf_dataset/ were written in place: killed while writing them, a run (a resumed one's whole
    export, too) left a file cut at any line, which read as an export with fewer conversations."""
    out = run_hostile(tmp_path, HOSTILE[:4])
    before = (out / "moss.jsonl").read_bytes()
    records = list(export.read_records(out / "corpus.jsonl"))
    assert len(records) >= 2
    made = export.to_moss

    def killed_after_one(record: dict[str, Any], index: int, tools: list[str]) -> dict[str, Any]:
        if index == 1:
            raise KeyboardInterrupt
        return made(record, index, tools)

    monkeypatch.setattr(export, "to_moss", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        export.write_moss(records, out / "moss.jsonl", ["Calculator", "Calendar"])
    assert (out / "moss.jsonl").read_bytes() == before
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


def test_a_kill_while_saving_the_dataset_leaves_the_whole_one_of_before(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    out = run_hostile(tmp_path, HOSTILE[:4])
    records = list(export.read_records(out / "corpus.jsonl"))
    saved = datasets.Dataset.save_to_disk

    def killed_while_saving(self: Any, path: str, *args: Any, **kwargs: Any) -> None:
        saved(self, path, *args, **kwargs)
        for part in Path(path).glob("*.arrow"):
            part.write_bytes(part.read_bytes()[:10])
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", killed_while_saving)
    with pytest.raises(KeyboardInterrupt):
        export.write_hf_dataset(records, out / "hf_dataset")
    assert len(datasets.load_from_disk(str(out / "hf_dataset"))) == len(records)


# -- invariant 3: the filter against the paper's formula, computed here from scratch ------------------------------
WEIGHTS = [w / 3.0 for w in (1.0, 0.8, 0.6, 0.4, 0.2)]   # w~_t = max(0, 1 - 0.2 t), normalised [P §4.1]


def naive_loss(model: Any, seq: list[int], first: int) -> float:
    """-sum_t w_t log p(seq[first + t] | seq[:first + t]) over the tokens there are, one plain forward."""
    import torch

    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([seq])).logits[0].float(), -1)
    return -sum(w * float(logp[first + t - 1, seq[first + t]]) for t, w in enumerate(WEIGHTS) if first + t < len(seq))


@pytest.mark.slow
@pytest.mark.parametrize("placement", ["prefix", "inline"])
def test_the_filter_computes_the_papers_weighted_losses(tiny_scorer: Any, registry: Any, placement: str) -> None:
    from tiny_lm import trained_tiny_model_and_tokenizer

    model, tok = trained_tiny_model_and_tokenizer()
    texts = ["She paid $1,200 and $300, a total of $1,500.\r\nOut of 1400 people, 400 passed\t(29%).",
             "Emoji \U0001f600 12 apples and 30 pears, e\u0301 a total of 42 on Monday, January 30, 2023."]
    cfg = DataGenConfig(tools=("calculator", "calendar"), positions=PositionConfig(tau_s=0.0, k=3),
                        sample=SampleConfig(m=2, seed=3),
                        filter=FilterConfig(tau_f=0.0, tau_p=0.05, placement=placement, exact_losses=True),
                        overrides={})
    pipeline = Pipeline(tiny_scorer, registry, cfg)
    checked = 0
    for text in texts:
        pipeline.process(text)
        ids = tok(text, add_special_tokens=False).input_ids
        bos = tok.bos_token_id
        for cand in pipeline.last_scored:
            i = cand.token
            assert tok.decode(ids[:i]) == text[:cand.position]   # the call's token starts at its position
            l_eps = naive_loss(model, [bos] + ids, 1 + i)
            with_call = []
            for z in (ToolformerDialect().render_call(ToolCall(cand.tool, cand.args)), cand.text_call):
                if placement == "prefix":   # z before the whole text [P fn. 3]
                    head = [bos] + tok(z + "\n", add_special_tokens=False).input_ids
                    with_call.append(naive_loss(model, head + ids, len(head) + i))
                else:                       # z at position i, with the space token i carries in front
                    lead = " " if text[cand.position].isspace() else ""
                    head = [bos] + ids[:i] + tok(lead + z, add_special_tokens=False).input_ids
                    with_call.append(naive_loss(model, head + ids[i:], len(head)))
            l_null, l_plus = with_call
            assert (cand.loss_eps, cand.loss_null, cand.loss_plus) == pytest.approx((l_eps, l_null, l_plus), abs=1e-4)
            minus = min(l_eps, l_null)
            assert cand.loss_minus == pytest.approx(minus, abs=1e-4)
            threshold = 0.0 if cand.source == "model" else 0.05
            if abs(minus - l_plus - threshold) > 1e-3:
                assert cand.kept == (minus - l_plus >= threshold)
            checked += 1
    assert checked >= 6


def test_a_kept_call_that_does_not_read_back_is_said_so_in_the_rejected_log() -> None:
    """A kept call whose written text is not one call (here: no call at all) is not written; the rejected log said that
    another call at its position had won."""
    from toolcall.data_gen.pipeline import _why_left_out

    cand = Candidate("Calculator", ("1 + 1",), "", 0, 0, result="2", loss_reduction=1.0, kept=True,
                     text_call="[Calculator(1 + 1 -> 2]")
    assert "does not read back" in _why_left_out(cand)
    assert _why_left_out(Candidate(**{**cand.__dict__, "text_call": "[Calculator(1 + 1) -> 2]"})).startswith("another")
    assert _why_left_out(Candidate(**{**cand.__dict__, "kept": False})) == "below tau_f"
