"""IncrementalParser: each call reported once it is closed, and any chunking gives the calls of one parse."""
from __future__ import annotations

import random

import pytest

from toolcall.calls import ToolCall
from toolcall.dialects import IncrementalParser, get_dialect
from toolcall.dialects.hermes import HermesDialect

CALL = '<tool_call>{"name": "f", "arguments": {}}</tool_call>'


def _fed(parser: IncrementalParser, text: str, sizes: list[int]) -> list[ToolCall]:
    """What `parser` reported while `text` was fed in chunks of `sizes` (cycled)."""
    got: list[ToolCall] = []
    pos = step = 0
    while pos < len(text):
        size = sizes[step % len(sizes)]
        got += parser.feed(text[pos:pos + size])
        pos, step = pos + size, step + 1
    return got


@pytest.mark.parametrize("size", range(1, 13))
def test_a_closing_tag_fed_in_small_chunks_reports_the_call(size: int) -> None:
    """The last characters kept to see a signal split over chunks were cut while fewer than the signal's length had
    come (a negative slice start): `</tool_call>` fed 1 or 5 characters at a time was never seen, so the call was
    reported by `finish` only."""
    parser = IncrementalParser("hermes")
    assert [c.span for c in _fed(parser, CALL + " tail", [size])] == [(0, len(CALL))]


def test_a_closing_tag_completed_by_a_chunk_that_opens_a_bracket_reports_the_call() -> None:
    """`</tool_call>{`: the call was balanced when the chunk began, but the chunk ends inside a new "{", and the
    signal was no longer in view once the brackets balanced again."""
    first = '<tool_call>{"name": "f", "arguments": {"a": "</tool_call>"}}</tool_call>'
    chunks = [first[:58], first[58:-2], first[-2:] + "{", '"a": 1} and ', CALL]  # a parse at the quoted tag
    text = "".join(chunks)
    parser = IncrementalParser("hermes")
    got = [[c.span for c in parser.feed(chunk)] for chunk in chunks]
    assert got == [[], [], [(0, 72)], [], [(85, 138)]]  # the first once its tag closed, not with the next call
    assert [c.span for c in get_dialect("hermes").parse(text).calls] == [(0, 72), (85, 138)]


@pytest.mark.parametrize("chunks", [
    ["x" + CALL + "<t", "hink>" + CALL + "</think>" + CALL],
    ["x" + CALL, "<think>" + CALL + "</think>" + CALL],
    ["x" + CALL + " \n<", "think>" + CALL + "</think>" + CALL],
    ["x" + CALL + "<thin", "k>" + CALL, "</think>" + CALL],
])
def test_a_think_tag_written_over_two_chunks_in_prose_is_prose(chunks: list[str]) -> None:
    """A `<think>` after the first call is prose (thoughts open a reply), so the call after it is a call. The next
    window of the text began at the half-written `<t` and read the whole tag first in it as thoughts: that call was
    never reported, and `finish`, filling in by count, reported the last call twice."""
    text = "".join(chunks)
    want = [c.span for c in get_dialect("hermes").parse(text).calls]
    assert len(want) == 3  # the middle one after the prose `<think>`
    parser = IncrementalParser("hermes")
    got = [c.span for chunk in chunks for c in parser.feed(chunk)]
    parser.finish()
    assert got == [c.span for c in parser.reported] == want


@pytest.mark.parametrize("into", range(1, 22))
def test_a_window_that_starts_inside_a_turn_header_still_sees_its_thoughts(into: int) -> None:
    """Long prose after a call: the next window starts a few hundred characters back, here inside
    `<|im_start|>assistant\\n`, which then opened no turn there, so the thoughts after it were read as prose and the
    call drafted in them was reported, though parse (and the model) say it is none."""
    text = CALL + "p" * 300 + "<|im_start|>assistant\n<think>" + "t" * 300 + CALL + "</think>" + CALL
    cut = len(CALL) + 300 + into + 256  # the window's start (256 back from the end) falls `into` the header
    parser = IncrementalParser("hermes")
    got = parser.feed(text[:cut]) + parser.feed(text[cut:])
    assert [c.span for c in got] == [c.span for c in get_dialect("hermes").parse(text).calls]
    assert len(got) == 2


def test_finish_adds_only_the_calls_not_reported_by_their_place() -> None:
    """A dialect that reports a later call before an earlier one (here on purpose): `finish` fills in the earlier one
    and repeats none (it added parse's calls past the count reported)."""

    class _LaterFirst(HermesDialect):
        def stream_scan(self, text: str) -> tuple[list[ToolCall], int, bool]:
            final, resume, open_call = super().stream_scan(text)
            return final[1:], resume, open_call

    text = CALL + " " + CALL + " tail"
    parser = IncrementalParser(_LaterFirst())
    got = parser.feed(text)
    assert [c.span for c in got] == [(54, 107)]
    parser.finish()
    assert [c.span for c in parser.reported] == [(0, 53), (54, 107)]   # in the text's order, as parse gives them


PIECES = {
    "hermes": [CALL, '<tool_call>{"name": "g", "arguments": {"a": "x</tool_call>"}}</tool_call>',
               '<tool_call>[{"name": "a", "arguments": {}}, {"name": "b", "arguments": {}}]</tool_call>', "<think>",
               "</think>", "<|im_start|>assistant\n", "<|im_end|>", "\n", " ", "hi ", "<tool_call>", "</tool_call>",
               '{"name": "h", "arguments": {}}', "<tool_response>r</tool_response>", "<t", '"', "{"],
    "pythonic": ['[f(x=1)]', '[g(), h(y="a]")]', '[f(x=', ']', '[', ' ', 'hi ', '"', '\n', '<|python_tag|>', '<|eot_id|>'],
    "mistral": ['[TOOL_CALLS][{"name": "g", "arguments": {"a": 1}}]', '[TOOL_CALLS]', 'g[ARGS]{}', '{', '}', ']', ' ',
                'hi ', '[TOOL_RESULTS]{"content": "x"}[/TOOL_RESULTS]'],
    "llama3_json": ['{"name": "f", "parameters": {}}', '; ', '<|python_tag|>', '{', '}', ' ', 'hi ', '<|eot_id|>',
                    '<|start_header_id|>assistant<|end_header_id|>\n\n'],
}


@pytest.mark.parametrize("name", sorted(PIECES))
def test_any_chunking_of_1_to_7_characters_gives_the_calls_of_one_parse(name: str) -> None:
    """Random texts fed in random chunks of 1 to 7 characters: every call reported on the way is one of parse's, and
    after `finish` the reported calls are parse's, in order, each once. In hermes, where a closed block is final,
    the calls reported before `finish` are also those a read of the whole text calls final."""
    dialect = get_dialect(name)
    rng = random.Random(f"streaming-chunks:{name}")
    for _ in range(150):
        text = "".join(rng.choice(PIECES[name]) for _ in range(rng.randint(1, 10)))
        want = [c.with_result(None) for c in dialect.parse(text).calls]
        for most in range(1, 8):
            parser = IncrementalParser(dialect)
            sizes = [rng.randint(1, most) for _ in range(len(text))]
            got = _fed(parser, text, sizes)
            assert all(c in want for c in got), (text, sizes)
            if name == "hermes":
                final = dialect.stream_scan(text)[0]  # type: ignore[attr-defined]
                assert [c.span for c in got] == [c.span for c in final], (text, sizes)
            parser.finish()
            assert parser.reported == want, (text, sizes)
