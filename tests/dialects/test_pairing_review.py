"""Hermes thoughts and the loop: a look from where the last one stopped (`pending_from`, the loop's ReplyReader) answers
as a read of the whole text does, when thoughts the reply opened are still open."""
from __future__ import annotations

import random

from toolcall.dialects import get_dialect
from toolcall.dialects.base import ReplyReader

CALL = '<tool_call>{"name": "f", "arguments": {}}</tool_call>'


def test_a_call_drafted_in_thoughts_still_open_past_a_turn_header_is_not_run() -> None:
    """`<think>` opens the reply and is never closed, so all that follows is thoughts, a turn header written in them
    too. The first look moved its start past the `<think>`, and the next one, reading thoughts from the turn header,
    saw none there and ran the call drafted in them."""
    hermes = get_dialect("hermes")
    first = "<think>x<|im_start|>assistant\n</tool_call>"
    text = first + " hi " + CALL
    reader = ReplyReader(hermes)
    assert reader.pending(first) is None and reader.start == 0  # not past the opener of open thoughts
    assert reader.pending(text) is None
    assert hermes.pending(text) is None and hermes.parse(text).calls == []


def test_a_look_after_closed_thoughts_still_starts_past_them() -> None:
    hermes = get_dialect("hermes")
    first = "<think>x</think> hi </tool_call>"
    reader = ReplyReader(hermes)
    assert reader.pending(first) is None and reader.start == len(first)
    pending = reader.pending(first + " " + CALL)
    assert pending is not None and [c.tool for c in pending.calls] == ["f"]


PIECES = [CALL, "<think>", "</think>", "x", " hi ", "\n", "<|im_start|>assistant\n", "<|im_end|>\n", "</tool_call>",
          "<tool_call>", '{"name": "g", "arguments": {}}', "<tool_response>r</tool_response>"]


def test_the_loops_looks_agree_with_whole_reads_around_thoughts_and_turns() -> None:
    """Random replies of calls, thoughts and turn headers, stopped at every `</tool_call>` as the loop stops: the
    loop's reader answers as `pending` on the whole text, and every call the loop ran parses with its own result."""
    hermes = get_dialect("hermes")
    rng = random.Random("hermes-thoughts-looks")
    ran = 0
    for _ in range(2000):
        written = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 10)))
        reader, text, i = ReplyReader(hermes), "", 0
        asked: dict[tuple[int, int], str] = {}
        while i < len(written):
            j = i
            while j < len(written):
                j += 1
                if (text + written[i:j]).endswith(hermes.call_markers):
                    break
            text += written[i:j]
            i = j
            if not text.endswith(hermes.call_markers):
                break
            pending = reader.pending(text)
            assert pending == hermes.pending(text), text
            if pending is not None:
                results = ["E"] if pending.malformed else [f"R{len(asked) + k}" for k in range(len(pending.calls))]
                asked.update({c.span: r for c, r in zip(pending.calls, results)})
                text += hermes.close(pending, results)
        got = {c.span: c.result for c in hermes.parse(text).calls}
        assert {span: got.get(span) for span in asked} == asked, text
        assert all(span in asked for span, result in got.items() if result is not None), text
        ran += len(asked)
    assert ran >= 200
