"""A reply that writes data into a call's argument (`[plot(points=[[1, 2], [3, 4], ...`) pauses at every "]" or "}"
of it; the loop's ReplyReader answers those stops without reading the call again (QuietValue: the grammar's parser
kept where the last look left it reads only the new text), and looks again wherever the new text may change the
answer."""
from __future__ import annotations

from typing import Any

import pytest
from counting_dialect import CountingDialect

from toolcall.dialects import get_dialect
from toolcall.dialects.base import MAX_CALL_CHARS, MAX_DEPTH, ReplyReader

# (the call up to its data, one item of the data, the end of the call) per dialect.
REPLIES: dict[str, tuple[str, str, str]] = {
    "pythonic": ("Plotting. [plot(title='pairs', points=[", "[1, 2.5], {'k': ['a]', None]}, ", "[0, 0]])]"),
    "llama3_json": ('{"name": "plot", "parameters": {"title": "pairs", "points": [',
                    '{"x": [1, 2.5]}, {"k": ["a]}", null]}, ', "[0, 0]]}}"),
    "mistral": ('[TOOL_CALLS][{"name": "plot", "arguments": {"title": "pairs", "points": [',
                '[1, 2.5], {"k": ["a]}", null]}, ', '[0, 0]]}, "id": "a1B2c3D4e"}]'),
}


def _stops(text: str, markers: tuple[str, ...]) -> list[str]:
    """The texts the loop sees at each stop: `text` cut after each marker."""
    return [text[:i + 1] for i, c in enumerate(text) if c in markers]


def _reader(name: str) -> tuple[Any, CountingDialect, ReplyReader]:
    dialect = get_dialect(name)
    counting = CountingDialect(dialect)
    return dialect, counting, ReplyReader(counting)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", REPLIES)
def test_stops_inside_a_long_data_argument_need_no_look(name: str) -> None:
    # 32 KB of such data took pythonic 19 s, mistral 9.6 s and llama3_json 3.6 s: every stop read the call again.
    dialect, counting, reader = _reader(name)
    head, item, tail = REPLIES[name]
    stops = _stops(head + item * 400 + tail, dialect.call_markers)
    answers = [reader.pending(text) for text in stops]
    assert answers[:-1] == [None] * (len(stops) - 1)
    last = answers[-1]
    assert last is not None and [c.tool for c in last.calls] == ["plot"]
    assert len(last.calls[0].args["points"]) == 801  # type: ignore[call-overload]
    assert len(stops) > 1200 and counting.looks <= 3, (len(stops), counting.looks)
    assert [dialect.pending(text) for text in (stops[0], stops[800], stops[-1])] == [None, None, last]


# What added text may change: (dialect, added) -> the reader looks again and answers as a read of the whole text.
CHANGES = [
    ("pythonic", "[0, 0]])]"),  # the call closes: pending
    ("pythonic", "[1 2], [3]"),  # no longer a call the grammar reads
    ("pythonic", "[3], [rm(path='/')]"),  # a call list of its own inside the data
    ("pythonic", "['[rm(path=\"/\")]'], [3]"),  # one quoted in a string
    ("pythonic", "<|eot_id|>]"),  # a special token
    ("pythonic", "'a\r', [3]"),  # a lone carriage return, which Python's parser reads as a line end
    ("pythonic", "[" * (MAX_DEPTH + 2) + "]"),  # nested past the limit
    ("llama3_json", "[0, 0]]}}"),
    ("llama3_json", "[1 2], {}"),
    ("llama3_json", '"\\ud800", {}'),  # a lone surrogate half
    ("llama3_json", "<|eom_id|>}"),
    ("mistral", '[0, 0]]}, "id": "a1B2c3D4e"}]'),
    ("mistral", '"[TOOL_CALLS]", [3]'),
    ("mistral", "[1 2], [3]"),
    ("mistral", "</s>]"),
]


@pytest.mark.parametrize("name, added", CHANGES)
def test_what_may_change_the_answer_is_looked_at(name: str, added: str) -> None:
    dialect, counting, reader = _reader(name)
    head, item, _ = REPLIES[name]
    stops = _stops(head + item * 4, dialect.call_markers)
    for stop in stops[:-1]:
        assert reader.pending(stop) is None
    looks = counting.looks
    assert reader.pending(stops[-1]) is None and counting.looks == looks  # quiet: no look
    for stop in _stops(head + item * 4 + added, dialect.call_markers)[len(stops):]:
        assert reader.pending(stop) == dialect.pending(stop), stop
    assert counting.looks > looks


@pytest.mark.parametrize("name", REPLIES)
def test_a_call_near_the_length_cap_is_looked_at_again(name: str) -> None:
    dialect, counting, reader = _reader(name)
    head, item, _ = REPLIES[name]
    assert reader.pending(head + item.rstrip(", ")) is None
    looks = counting.looks
    text = head + item * ((MAX_CALL_CHARS - len(head)) // len(item) + 1)
    reader.pending(text.rstrip(", "))
    assert counting.looks == looks + 1


class Spy(CountingDialect):
    """Counts the reader's tries at a QuietValue too."""

    tries = 0

    def quiet_value(self, text: str, start: int) -> Any:
        self.tries += 1
        return self._dialect.quiet_value(text, start)


def test_data_that_breaks_quiet_often_is_read_with_the_grammar_rarely() -> None:
    # Each "<|" breaks quiet and takes a look, as before; the grammar's read of the whole call (which costs more than
    # a look) is tried again only once the text has grown by a quarter, so it stays a few reads of the reply in all.
    spy = Spy(get_dialect("pythonic"))
    reader = ReplyReader(spy)  # type: ignore[arg-type]
    text = "[plot(points=["
    for i in range(2000):
        text += f"['<|{i}'], " if i % 3 == 0 else f"[{i}], "
        reader.pending(text.rstrip(", "))
    assert spy.looks > 600 and spy.tries < 40, (spy.looks, spy.tries)


def test_a_call_shaped_object_in_the_data_is_data() -> None:
    # `{"name": ...}` objects are common data ("name" keys); while the call around them is written they are its data.
    dialect, counting, reader = _reader("llama3_json")
    text = 'Here: {"name": "add_people", "parameters": {"people": ['
    stops = _stops(text + '{"name": "Bob", "age": 3}, {"name": "rm", "parameters": {"path": "/"}}, ' * 200,
                   dialect.call_markers)
    assert [reader.pending(stop) for stop in stops] == [None] * len(stops) and counting.looks <= 3
    assert all(dialect.pending(stop) is None for stop in stops[::97])
    end = stops[-1] + "]}}"
    got = reader.pending(end)
    assert got is not None and [c.tool for c in got.calls] == ["add_people"] and got == dialect.pending(end)


def test_a_number_the_decoder_refuses_is_looked_at() -> None:
    # 1e999 (and an integer past 4,000 digits) is a malformed call as soon as it is written; quiet, it was found only
    # at the bracket that closed the call.
    for number in ("1e999", "-1E400", "1" * 4001):
        dialect, counting, reader = _reader("llama3_json")
        text = '{"name": "f", "parameters": {"a": {}'
        assert reader.pending(text) is None
        text += f', "b": {{"c": {number}}}'
        got = reader.pending(text)
        assert got is not None and got.malformed and got == dialect.pending(text) and counting.looks == 2


def test_a_quiet_reader_keeps_no_tree() -> None:
    # The kept parser built the tree of all it read: about 250 bytes a character, 15 MiB for a 60 KB call, per reply.
    import tracemalloc

    head, item, _ = REPLIES["pythonic"]
    dialect, _, reader = _reader("pythonic")
    stops = _stops(head + item * 1500, dialect.call_markers)
    tracemalloc.start()
    for stop in stops:
        reader.pending(stop)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(stops[-1]) > 45_000 and held < 2 * 2 ** 20, held
