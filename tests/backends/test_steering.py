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


def test_the_marker_that_ends_last_decides_and_the_opener_wins_a_tie() -> None:
    """An opener that ends in a close text (`[TOOL_CALLS]` ends in "]") opens; the close text after it closes."""
    st = Steering("[TOOL_CALLS]", close_texts=("]", "}"))
    assert st.call_open_after("[TOOL_CALLS]") and not st.call_open_after('[TOOL_CALLS][{"a": 1}]')
    assert st.call_open_after("x[TOOL_CALLS]", 5, False) and not st.call_open_after("[TOOL_CALLS]{}", 13, True)


def test_a_mistral_call_stays_open_through_its_arguments() -> None:
    """Mistral's call markers are JSON's brackets, inside arguments too: as close texts they ended its call at the
    first `}` or `]` of its arguments (and at its `[ARGS]`), where the threshold then banned `[` from a list value.
    It has none: a call it opens is open until the decode ends."""
    st = steering("mistral")
    assert st.close_texts == ()
    was = False
    for piece in ("[TOOL_CALLS]", "get_weather[ARGS]", '{"xs": [1]', ", ", '"a": {}'):
        text = "R " + piece
        was = st.call_open_after(text, 2, was)
        assert was, piece


@pytest.mark.parametrize(("dialect", "text", "open_"), [
    ("hermes", "<tool_call>\n{", True),
    ("hermes", '<tool_call>\n{"name": "f"}\n</tool_call>\n', False),
    ("hermes", "no call here", False),
])
def test_a_reply_read_whole(dialect: str, text: str, open_: bool) -> None:
    assert steering(dialect).call_open_after("PROMPT " + text, floor=7) is open_


@pytest.mark.parametrize("dialect", ["toolformer", "hermes", "moss"])
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
