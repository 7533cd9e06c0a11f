"""Steering.call_open_after: where a decode is inside a call (the trigger and the call threshold leave it alone)."""
from __future__ import annotations

import pytest

from toolcall.backends.base import Steering
from toolcall.dialects import get_dialect


def steering(dialect: str) -> Steering:
    d = get_dialect(dialect)
    return Steering(d.open_marker, trigger_top_k=5, close_texts=d.call_closers)


def test_the_prompt_is_not_read_and_a_bracket_of_prose_closes() -> None:
    """A question holding `x[0]` left a Toolformer "call" open for the whole reply (the threshold and the trigger
    were off in it); a citation `[1]` in the reply did too. The prompt is not read, and `]` ends any bracket."""
    tf = steering("toolformer")
    prompt = "Q: What is x[0] when x = [4, 5"
    assert not tf.call_open_after(prompt + "? A:", floor=len(prompt) + 4)
    assert tf.call_open_after(prompt + "? A: it is [Calculator(", floor=len(prompt) + 4)
    assert not tf.call_open_after("See [1] for details.")
    assert tf.call_open_after("I get [Calculator(2 * 3) -> 6] and [")
    assert not tf.call_open_after("I get [Calculator(2 * 3) ->")


@pytest.mark.parametrize(("dialect", "text", "open_"), [
    ("mistral", "[TOOL_CALLS]", True),                      # its opener ends in its own close text "]"
    ("mistral", '[TOOL_CALLS][{"name": "f", "arguments": {}}]', False),
    ("hermes", "<tool_call>\n{", True),
    ("hermes", '<tool_call>\n{"name": "f"}\n</tool_call>\n', False),
    ("hermes", "no call here", False),
])
def test_a_reply_read_whole(dialect: str, text: str, open_: bool) -> None:
    assert steering(dialect).call_open_after("PROMPT " + text, floor=7) is open_


@pytest.mark.parametrize("dialect", ["toolformer", "hermes", "mistral", "moss"])
def test_read_a_piece_at_a_time_as_read_whole(dialect: str) -> None:
    """Token by token (each piece read with the last few characters before it) the state is the whole text's."""
    import random

    st = steering(dialect)
    words = [st.open_text or "", *st.close_texts, "x", " ", "{", "}", "[", "]", "<", "/"]
    for seed in range(200):
        rng = random.Random(seed)
        text = "".join(rng.choice(words) for _ in range(12))
        was, at = False, 0
        while at < len(text):
            step = rng.randint(1, 4)
            was = st.call_open_after(text[:at + step], at, was)
            at += step
        assert was == st.call_open_after(text), (dialect, text)
