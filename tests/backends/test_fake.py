"""The fake backend: scripted continuations with real stop-string, budget and counter behaviour."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolcall.backends import find_stop, get_backend
from toolcall.backends.base import Steering
from toolcall.backends.fake import FakeBackend
from toolcall.errors import ConfigError, UnknownNameError


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
