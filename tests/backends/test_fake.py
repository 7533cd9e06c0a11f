"""The fake backend: scripted continuations with real stop-string, budget and counter behaviour; the Scorer protocol on its toy LM."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolcall.backends import find_stop, get_backend
from toolcall.backends.base import Steering
from toolcall.backends.fake import FakeBackend
from toolcall.errors import BackendError, ConfigError, UnknownNameError


def test_stop_string_inside_a_chunk_cuts_the_text_after_it() -> None:
    backend = FakeBackend(script=["abc)->xyz"], chars_per_token=4)
    session = backend.start("P")
    deltas = list(session.stream(["->"], 100))
    assert "".join(deltas) == "abc)->"
    assert session.text == "Pabc)->" and session.generated == "abc)->"
    assert session.stop_reason == "stop" and session.matched_stop == "->"
    assert session.counters.decoded_tokens == 2  # "abc)" and "->xy" (cut after the stop)


def test_earliest_ending_stop_wins() -> None:
    session = FakeBackend(script=["one <eoc> two <eom>"], chars_per_token=3).start("")
    session.generate(["<eom>", "<eoc>"], 100)
    assert session.generated == "one <eoc>" and session.matched_stop == "<eoc>"


def test_budget_and_eos() -> None:
    backend = FakeBackend(script=["a" * 40, "short"], chars_per_token=4)
    s = backend.start("x")
    assert s.generate([], 3) == "a" * 12 and s.stop_reason == "length"
    s2 = backend.start("y")
    assert s2.generate([], 100) == "short" and s2.stop_reason == "eos"
    s3 = backend.start("z")
    assert s3.generate([], 100) == "" and s3.stop_reason == "eos"  # script exhausted


def test_counters_prefill_appended_text_once() -> None:
    backend = FakeBackend(script=["abcd", "efgh"], chars_per_token=2)
    s = backend.start("PPPP")
    s.generate([], 10)
    assert s.counters.prefilled_tokens == 2 and s.counters.decoded_tokens == 2
    s.append("RRRRRR")
    s.generate([], 10)
    assert s.counters.prefilled_tokens == 2 + 3 and s.counters.decoded_tokens == 4
    assert s.text == "PPPPabcdRRRRRRefgh"


def test_next_turn_keeps_the_text_and_starts_a_new_reply() -> None:
    backend = FakeBackend(script=["first reply", "second"], chars_per_token=4)
    session = backend.start("Q1: ")
    session.generate([], 50)
    session.next_turn("\nQ2: ")
    assert session.text == "Q1: first reply\nQ2: " and session.generated == ""
    assert session.counters.decoded_tokens == 0 and session.stop_reason is None
    session.generate([], 50)
    assert session.generated == "second" and session.counters.prefilled_tokens == 2  # "\nQ2: " only


def test_callable_script_sees_the_text_and_disable_removes_the_opener() -> None:
    backend = FakeBackend(script=lambda text: f"[{len(text)}]")
    s = backend.start("abc")
    assert s.generate([], 10, Steering("[", disable=True)) == "3]"
    assert backend.calls[-1][2] == Steering("[", disable=True)


def test_stop_before_the_stream_start_is_not_matched_again() -> None:
    backend = FakeBackend(script=["x -> y", " more"], chars_per_token=1)
    s = backend.start("")
    s.generate(["->"], 10)
    assert s.generated == "x ->"
    s.generate(["->"], 10)  # the old "->" must not stop this stream at once
    assert s.generated == "x -> more" and s.stop_reason == "eos"


def test_find_stop_handles_markers_spanning_the_seam() -> None:
    assert find_stop("ab-", ["->"], 3) is None
    assert find_stop("ab->", ["->"], 3) == (4, "->")
    assert find_stop("a->b->", ["->"], 4) == (6, "->")


def test_get_backend_by_name_and_script_file(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(["hello"]))
    backend = get_backend("FAKE", str(script))
    assert isinstance(backend, FakeBackend)
    assert backend.start("").generate([], 10) == "hello"
    with pytest.raises(UnknownNameError, match="Did you mean 'fake'"):
        get_backend("fak")
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1}')
    with pytest.raises(ConfigError, match="JSON list of strings"):
        get_backend("fake", str(bad))


# --- the Scorer protocol on the toy LM -------------------------------------------------------------------------

TOY_TEXTS = ["a total of [Calculator(12 + 30)] 42 fruits.", "a total of 7 pears."]


def toy() -> FakeBackend:
    from toolcall.backends.toy_lm import ToyLM

    return FakeBackend(lm=ToyLM(TOY_TEXTS, order=3, vocab_size=100))


def test_fake_backend_is_a_reference_scorer() -> None:
    from toolcall.backends.base import ReferenceScorer, Scorer

    backend = toy()
    assert isinstance(backend, Scorer) and isinstance(backend, ReferenceScorer)
    ids, offsets = backend.encode_with_offsets("a total of  42 ünï.")
    assert backend.decode_ids(ids) == "a total of  42 ünï." and ids == backend.encode("a total of  42 ünï.")
    assert [backend.decode_ids([i]) for i in ids] == ["a", " total", " of", " ", " 4", "2", " ünï", "."]
    assert [b - a for a, b in offsets] == [1, 6, 3, 1, 2, 1, 4, 1]
    assert backend.decode_ids([backend.start_token_id()]) == "<s>"


def test_toy_probabilities_sum_to_one_and_follow_the_texts() -> None:
    backend = toy()
    lm = backend.lm
    for context in ([], ["<s>", "a"], [" total", " of"], [" of", " ["], ["never", "seen"]):
        unseen = lm.vocab_size - len(lm.known)
        total = sum(lm.prob(context, t) for t in lm.known) + unseen * lm.prob(context, "no such token")
        assert total == pytest.approx(1.0)
    assert lm.prob([" total", " of"], " [") > lm.prob([" total", " of"], " pears")
    assert lm.pick([" of", " ["], __import__("random").Random(0), temperature=0) == "Calculator"


def test_fake_scores_agree_across_prefix_branch_and_sequence() -> None:
    from toolcall.backends.base import Branch

    backend = toy()
    ids = [backend.start_token_id()] + backend.encode("a total of 42 fruits.")
    opener = backend.encode(" [")
    prefix = backend.prefix_state(ids, opener)
    assert list(prefix.token_logprobs) == backend.naive_logprobs(ids) == backend.sequence_logprobs([(ids, 1)])[0]
    assert [round(r[0], 9) for r in prefix.candidate_logprobs] == [
        round(backend.naive_logprobs(ids[:j + 1] + opener)[-1], 9) for j in range(len(ids))]
    call = backend.encode(" [Calculator(12 + 30)]")
    (row,) = backend.branch_logprobs(prefix, [Branch(4, tuple(call + ids[4:]), 1)])
    assert row == backend.naive_logprobs(ids[:4] + call + ids[4:])[4:]
    with pytest.raises(BackendError, match="another scorer"):
        toy().branch_logprobs(prefix, [Branch(4, tuple(call), 1)])


def test_fake_sampling_stops_before_a_stop_string_glued_to_other_characters() -> None:
    backend = toy()
    ids = backend.encode("a total of")
    prefix = backend.prefix_state(ids)
    (greedy,) = backend.sample_branches(prefix, [(len(ids), backend.encode(" ["))], 2, temperature=0)
    assert greedy == [("Calculator(12 + 30)", True)] * 2     # ")]" is one token; the text is cut before "]"
    (cut,) = backend.sample_branches(prefix, [(len(ids), backend.encode(" ["))], 1, temperature=0,
                                     keep_going=lambda text: len(text) < 5)
    assert cut == [("Calculator", False)]
    a = backend.sample_branches(prefix, [(2, ids[2:3]), (3, [])], 4, max_new_tokens=6, seed=5)
    assert a == backend.sample_branches(prefix, [(2, ids[2:3]), (3, [])], 4, max_new_tokens=6, seed=5)
    assert a != backend.sample_branches(prefix, [(2, ids[2:3]), (3, [])], 4, max_new_tokens=6, seed=6)


def test_a_rewind_cuts_the_text_and_hands_the_script_item_out_again() -> None:
    """The fake model, asked again from the same text, says the same: a rewound decode's item is handed out again,
    unless another session took one since."""
    backend = FakeBackend(script=["one two", " three", " four", " five"], chars_per_token=3)
    s = backend.start("P:")
    s.generate([], 10)
    point = s.checkpoint()
    assert s.generate(["e"], 10) == " thre" and s.stop_reason == "stop"
    s.rewind(point)
    assert s.text == "P:one two" and s.stop_reason == "eos"
    assert s.generate([], 10) == " three"
    point = s.checkpoint()
    s.generate([], 10)
    assert backend.start("other").generate([], 10) == " five"  # another session took one since: none is handed back
    s.rewind(point)
    assert s.text == "P:one two three" and s.generate([], 10) == ""
    with pytest.raises(BackendError, match="cannot rewind to character"):
        s.rewind(type(point)(999, None, None, point.state))
    # A rewind over several decodes hands all their items out again.
    backend = FakeBackend(script=["A", "B", "C", "D"])
    s = backend.start("P:")
    point = s.checkpoint()
    s.generate([], 5)
    s.generate([], 5)
    s.rewind(point)
    assert s.generate([], 5) == "A" and s.generate([], 5) == "B"
