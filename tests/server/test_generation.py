"""The server's pieces without a server: the reply filter, argument mapping, the conversation, the FIFO lock."""
from __future__ import annotations

import json
import random
import threading
import time

import pytest

from toolcall.dialects import get_dialect
from toolcall.server.generation import (
    FairLock, ReplyFilter, conversation, named_arguments, parameter_order, positional_arguments,
)
from toolcall.server.protocol import ApiError, Message

SCHEMA = {"type": "object", "properties": {"unit": {"type": "string"}, "city": {"type": "string"},
                                           "days": {"type": "integer"}, "exact": {"type": "boolean"}},
          "required": ["city", "days"]}


def feed(pieces: list[tuple[str, str]], keep: bool = False, stops: tuple[str, ...] = ()) -> str:
    """Run (kind, text) events through a ReplyFilter: kind is "t" text, "cut" a call to cut, "keep" a kept call."""
    f = ReplyFilter("[", keep, stops)
    out = ""
    for kind, text in pieces:
        if kind == "t":
            out += f.text(text)
        elif kind == "cut":
            out += f.cut_call()
        elif kind == "keep":
            out += f.keep_call()
        if f.stopped:
            break
    return out + f.finish()


def chop(text: str, rng: random.Random) -> list[tuple[str, str]]:
    pieces, i = [], 0
    while i < len(text):
        n = rng.randint(1, 6)
        pieces.append(("t", text[i:i + n]))
        i += n
    return pieces


@pytest.mark.parametrize("seed", range(20))
def test_filter_cuts_calls_under_any_chunking(seed: int) -> None:
    rng = random.Random(seed)
    events = chop("  The answer is [Calculator(2 * 3) ->", rng) + [("cut", "")] + chop(" 6, and [1] stays.\n", rng)
    assert feed(events) == "The answer is 6, and [1] stays."


@pytest.mark.parametrize("seed", range(10))
def test_filter_keeps_markup_when_asked(seed: int) -> None:
    rng = random.Random(seed)
    events = chop("It is [Calculator(2 * 3) ->", rng) + [("keep", ""), ("t", " 6]")] + chop(" 6.", rng)
    assert feed(events, keep=True) == "It is [Calculator(2 * 3) -> 6] 6."


def test_filter_holds_a_possible_call_until_it_resolves() -> None:
    f = ReplyFilter("[", False, ())
    assert f.text("See [Calc") == "See"
    assert f.text("ulator(1) ->") == ""
    assert f.cut_call() == ""
    assert f.text(" done\nnext [x] line") + f.finish() == " done\nnext [x] line"


@pytest.mark.parametrize("seed", range(10))
def test_filter_stop_sequence_under_any_chunking(seed: int) -> None:
    events = chop("one two STOP three", random.Random(seed))
    assert feed(events, stops=("STOP",)) == "one two"


def test_named_arguments_follow_the_schema() -> None:
    assert parameter_order(SCHEMA) == ["city", "days", "unit", "exact"]
    assert named_arguments(("Paris", "3", "celsius", "true"), SCHEMA) == {"city": "Paris", "days": 3, "unit": "celsius",
                                                                           "exact": True}
    assert named_arguments(("Paris",), SCHEMA) == {"city": "Paris"}
    assert named_arguments(("a", "b"), {"type": "object", "properties": {"q": {"type": "string"}}}) == {"q": "a, b"}
    assert named_arguments(("x",), {"type": "object", "properties": {"n": {"type": "number"}}}) == {"n": "x"}
    assert named_arguments({"q": 1}, SCHEMA) == {"q": 1}
    assert positional_arguments(json.dumps({"days": 2, "city": "Oslo"}), SCHEMA, "m") == ("Oslo", 2)
    with pytest.raises(ApiError):
        positional_arguments("[1]", SCHEMA, "m")


def test_conversation_puts_client_results_back_inline() -> None:
    messages = [Message(role="system", content="Be brief."), Message(role="user", content="Weather?"),
                Message.model_validate({"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "w", "arguments": '{"city": "Oslo"}'}}]}),
                Message(role="tool", tool_call_id="c1", content="rain"),
                Message(role="assistant", content=" It rains."),
                Message(role="user", content="Thanks")]
    params = {"w": {"type": "object", "properties": {"city": {"type": "string"}}}}
    question, history, tail = conversation(messages, get_dialect("toolformer"), params.get)
    assert question == "Thanks" and tail == ""
    assert history == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather?"},
                       {"role": "assistant", "content": "Checking. [w(Oslo) -> rain] It rains."}]
    question, history, tail = conversation(messages[:4], get_dialect("toolformer"), params.get)
    assert question == "Weather?" and tail == "Checking. [w(Oslo) -> rain]"


def test_fair_lock_serves_waiters_in_order() -> None:
    lock = FairLock()
    order: list[int] = []
    lock.__enter__()
    threads = []
    for i in range(5):
        t = threading.Thread(target=lambda i=i: (lock.__enter__(), order.append(i), lock.__exit__()))
        t.start()
        threads.append(t)
        time.sleep(0.02)  # queue them one after another
    lock.__exit__()
    for t in threads:
        t.join(timeout=5)
    assert order == [0, 1, 2, 3, 4]
