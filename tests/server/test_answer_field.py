"""The answer field: a MOSS reply's thoughts, commands and results are not the client's content, fed in any pieces."""
from __future__ import annotations

import pytest

from toolcall.server.answer_field import AnswerField

OPEN, EOT, COMMANDS = "<|MOSS|>:", "<eot>", "<|Commands|>:"
REPLY = [(" I need to compute.<eot>\n<|Commands|>: Calculator(\"17 * 23\")<eoc>", False),
         ("\n<|Results|>:\nCalculator(\"17 * 23\") => '391'\n<eor>\n<|MOSS|>:", True),
         (" It is 391.<eom>", False)]


def split(field: AnswerField, pieces: list[tuple[str, bool]]) -> dict[str, str]:
    out: dict[str, str] = {"reasoning": "", "skip": "", "model": "", "tool": ""}
    for text, tool in pieces:
        for kind, piece in field.feed(text, tool):
            out[kind] += piece
    for kind, piece in field.finish():
        out[kind] += piece
    return out


def by_chars(pieces: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    return [(c, tool) for text, tool in pieces for c in text]


@pytest.mark.parametrize("chunked", [False, True])
def test_thoughts_are_reasoning_the_fields_are_skipped_and_the_answer_goes_on(chunked: bool) -> None:
    pieces = by_chars(REPLY) if chunked else REPLY
    out = split(AnswerField(OPEN, EOT, COMMANDS), pieces)
    assert out["reasoning"] == " I need to compute."
    assert out["model"] == " It is 391.<eom>" and out["tool"] == ""
    # Every character comes back once, in order, so offsets into the session's text hold.
    assert sum(len(v) for v in out.values()) == sum(len(t) for t, _ in REPLY)


def test_a_reply_that_writes_no_field_is_all_answer_and_no_answer_opener_means_no_field() -> None:
    out = split(AnswerField(OPEN, EOT, COMMANDS), [("Just prose.<eom>", False)])
    assert out["model"] == "Just prose.<eom>" and out["reasoning"] == ""
    field = AnswerField("")
    assert [field.feed(t, tool) for t, tool in REPLY] == [[("tool" if tool else "model", t)] for t, tool in REPLY]


def test_a_call_without_thoughts_end_ends_the_thoughts_and_a_handoff_leaves_no_content() -> None:
    out = split(AnswerField(OPEN, EOT, COMMANDS), [(" Look it up.\n<|Commands|>: get_weather(\"Paris\")<eoc>", False)])
    assert out["reasoning"] == " Look it up.\n" and out["model"] == "" and "get_weather" in out["skip"]


def test_a_continued_reply_starts_in_the_field_its_text_left_open() -> None:
    field = AnswerField(OPEN, EOT, COMMANDS)
    field.prime("".join(t for t, _ in REPLY[:2]))
    assert field.feed(" Sunny.", False) == [("model", " Sunny.")]


@pytest.mark.parametrize("chunked", [False, True])
def test_a_second_round_after_the_answer_goes_back_to_thoughts_and_fields(chunked: bool) -> None:
    second = [(" It is 391. <|Inner Thoughts|>: Check.<eot>\n<|Commands|>: Calculator(\"391 / 23\")<eoc>", False),
              ("\n<|Results|>:\nCalculator(\"391 / 23\") => '17'\n<eor>\n<|MOSS|>:", True), (" Final.", False)]
    pieces = REPLY[:2] + second
    out = split(AnswerField(OPEN, EOT, COMMANDS, "<|Inner Thoughts|>:"), by_chars(pieces) if chunked else pieces)
    assert out["reasoning"] == " I need to compute. Check."
    assert out["model"] == " It is 391.  Final." and "Commands" in out["skip"]


def test_thoughts_the_token_limit_cut_are_reasoning() -> None:
    field = AnswerField(OPEN, EOT, COMMANDS)
    assert field.feed(" I was thinking about", False) == []
    assert field.finish(cut=True) == [("reasoning", " I was thinking about")]
