"""A reply that writes a long string argument (code, a document) pauses at every "]" in it; the loop's ReplyReader
answers those stops without reading the call again, and a long open string is still open, not malformed."""
from __future__ import annotations

from typing import Any

import pytest
from counting_dialect import CountingDialect

from toolcall.backends.fake import FakeBackend
from toolcall.calls import KeywordArgs
from toolcall.dialects import get_dialect
from toolcall.dialects.base import ReplyReader
from toolcall.loop import CallRequest, LoopConfig, Result, answered, decode_with_tools
from toolcall.specs import ToolSpec, ToolSpecs

CODE_LINE = "    total = values[i] + weights[(i + 1) % n]  # see [1]\\n"


def _stops(text: str, marker: str) -> list[str]:
    """The texts the loop sees at each stop: `text` cut after each marker."""
    cuts = []
    at = text.find(marker)
    while at >= 0:
        cuts.append(text[:at + len(marker)])
        at = text.find(marker, at + 1)
    return cuts


def test_stops_inside_a_long_string_argument_need_no_look() -> None:
    pythonic = get_dialect("pythonic")
    counting = CountingDialect(pythonic)
    reader = ReplyReader(counting)  # type: ignore[arg-type]
    head = 'Writing it now. [write_file(path="stats.py", content="def total(values, weights, n):\\n'
    reply = head + CODE_LINE * 300 + '    return total\\n")]'
    stops = _stops(reply, "]")
    answers = [reader.pending(text) for text in stops]
    assert answers[:-1] == [None] * (len(stops) - 1)
    last = answers[-1]
    assert last is not None and [c.tool for c in last.calls] == ["write_file"]
    args = last.calls[0].args
    assert isinstance(args, KeywordArgs) and args["content"].count("total = values[i]") == 300
    # One look at the first "]" (which finds the open string), and one where the string's closing quote came.
    assert len(stops) > 900 and counting.looks == 2
    assert [pythonic.pending(text) for text in (stops[0], stops[450], stops[-1])] == [None, None, last]


@pytest.mark.parametrize("added, kind", [
    ('", mode="w")]', "calls"),  # the quote ends the string: the call is read and pending
    ("\n] and on]", None),  # a line break: looked at again (the grammar reads the rest)
    (" [delete_all(confirm=True)]", None),  # a candidate inside the open list: looked at again, never run
    ("<|eot_id|>]", None),  # a special token: looked at again
])
def test_what_may_change_the_call_is_looked_at(added: str, kind: str | None) -> None:
    pythonic = get_dialect("pythonic")
    counting = CountingDialect(pythonic)
    reader = ReplyReader(counting)  # type: ignore[arg-type]
    text = '[write_file(content="x = a[1]'
    assert reader.pending(text + "]") is None and counting.looks == 1
    assert reader.pending(text + "] + b[2]") is None and counting.looks == 1  # quiet: no look
    assert reader.pending(text + "] + b[2] + re(r'\\d+\\]')]") is None and counting.looks == 1  # escapes are content
    text += "] + b[2] + re(r'\\d+\\]')]" + added
    got = reader.pending(text)
    assert counting.looks == 2
    assert (got is None if kind is None else got is not None and
            (got.malformed if kind == "malformed" else [c.tool for c in got.calls] == ["write_file"]))
    assert (got is None) == (pythonic.pending(text) is None)


def test_a_call_near_the_length_cap_is_looked_at_again() -> None:
    from toolcall.dialects.base import MAX_CALL_CHARS

    counting = CountingDialect(get_dialect("pythonic"))
    reader = ReplyReader(counting)  # type: ignore[arg-type]
    text = '[write_file(content="a]'
    assert reader.pending(text) is None
    long = text + "b" * (MAX_CALL_CHARS - len(text)) + "]"
    reader.pending(long)
    assert counting.looks == 2


@pytest.mark.parametrize("quote", ['"', "'"])
def test_a_long_open_string_is_still_being_written_not_malformed(quote: str) -> None:
    """Past the grammar's budget (about 1,000 characters of call), a cheap reading took the string's own brackets
    (`1) item]`) for the list's and called it malformed at the "]" where the model paused, mid-argument."""
    pythonic = get_dialect("pythonic")
    for size in (10, 2_000, 20_000):
        text = f"[write_file(content={quote}" + "a" * size + " 1) item]"
        assert pythonic.pending(text) is None, size
        parsed = pythonic.parse(text)
        assert not parsed.calls and "unexpected end of input" in parsed.issues[0].message
    # A list broken before its string is told as soon as the grammar reads it (short), else once its string ends.
    assert pythonic.pending('[f(1 2, x="a 1) item]') is not None
    assert pythonic.pending('[f(1 2, x="' + "a" * 2_000 + ' 1) item")]') is not None


def test_the_loop_writes_a_long_string_argument_whole() -> None:
    """The decoding loop at every "]" of 20 KB of code in a pythonic call: one call, run once, its content whole."""
    pythonic = get_dialect("pythonic")
    reply = '[write_file(path="a.py", content="' + CODE_LINE * 350 + '")]'
    cuts = [0] + [i + 1 for i, c in enumerate(reply) if c == "]"]
    session = FakeBackend(script=[reply[a:b] for a, b in zip(cuts, cuts[1:])], chars_per_token=4).start("Q: ")
    specs = ToolSpecs([ToolSpec("write_file", "Write a file.", {
        "type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}}})])
    ran: list[Any] = []

    def run(request: CallRequest) -> Result:
        ran.append(request.call.args)
        return Result("ok")

    for _ in answered(decode_with_tools(session, pythonic, specs, LoopConfig(max_new_tokens=10 ** 6)), run):
        pass
    assert len(ran) == 1 and ran[0]["content"] == (CODE_LINE * 350).replace("\\n", "\n")


def test_llama3_json_stops_inside_a_long_string_argument_need_no_look() -> None:
    """The same for a JSON call: every "}" of the code in its string is a stop."""
    llama = get_dialect("llama3_json")
    counting = CountingDialect(llama)
    reader = ReplyReader(counting)  # type: ignore[arg-type]
    line = '    config = {\\"a\\": [1, {\\"b\\": 2}]}  # see {1}\\n'
    reply = '<|python_tag|>{"name": "write_file", "parameters": {"path": "c.py", "content": "' + line * 300 + '"}}'
    stops = _stops(reply, "}")
    answers = [reader.pending(text) for text in stops]
    assert answers[:-2] == [None] * (len(stops) - 2) and answers[-2] is None
    last = answers[-1]
    assert last is not None and [c.tool for c in last.calls] == ["write_file"]
    args = last.calls[0].args
    assert isinstance(args, KeywordArgs) and args["content"].count('config = {"a"') == 300
    # Looks: the first "}" (which finds the open string) and the one that ends the call (the closing quote and the "}"
    # that closes the arguments are read by the QuietValue the first look made).
    assert len(stops) > 900 and counting.looks == 2
    assert [llama.pending(text) for text in (stops[0], stops[450], stops[-1])] == [None, None, last]


@pytest.mark.parametrize("added, looks", [('\\x41}', 2), ("\n}", 2), ("<|eot_id|>}", 2), ('"}', 1), ('"}}', 2)])
def test_llama3_json_what_may_change_the_call_is_looked_at(added: str, looks: int) -> None:
    llama = get_dialect("llama3_json")
    counting = CountingDialect(llama)
    reader = ReplyReader(counting)  # type: ignore[arg-type]
    text = '{"name": "f", "parameters": {"s": "x = {1}'
    assert reader.pending(text) is None and reader.pending(text + " {2}") is None and counting.looks == 1
    text += " {2}" + added
    # The closing quote and a "}" that leaves the call open need no look (the grammar reads them on, QuietValue).
    assert (reader.pending(text) is None) == (llama.pending(text) is None) and counting.looks == looks


def test_the_reader_is_not_quiet_on_a_string_of_a_list_quoted_in_another() -> None:
    """The list cut at the end of the text may start inside a closed string of a broken list before it: read from that
    list's start, the quotes pair off wrongly, and the reader went quiet while the quoted list closed."""
    pythonic = get_dialect("pythonic")
    for reply in ('[f("[g(x=" ", y=[1])]', '[f("[f(x="",z=[]]',
                  'Saving: [write_file(path="README.md", content="Call it like [send(text="Hello.", to=[1])] in your code")]'):
        reader = ReplyReader(pythonic)
        for text in _stops(reply, "]"):
            assert (reader.pending(text) is None) == (pythonic.pending(text) is None), text


def test_a_call_in_a_long_string_still_being_written_is_not_run() -> None:
    """Past the grammar's budget (a string argument over ~1,100 characters), the list around a quoted call was not
    read again to the end of the text, so the quoted call was read as a call and run: `rm` here, mid-argument."""
    pythonic = get_dialect("pythonic")
    code = "".join(f"    x{i} = load({i})\\n" for i in range(150))
    text = '[write_file(path="a.py", content="' + code + "# then [rm(path='/')]"
    assert pythonic.pending(text) is None
    assert pythonic.pending('[write(content="' + "a" * 1200 + " [g(y=1)]") is None


def test_a_broken_list_before_a_quote_is_malformed_past_the_budget() -> None:
    pythonic = get_dialect("pythonic")
    spent = "[f(x=1 2)] " * 60  # broken lists that spend the grammar's budget
    for last in ('[see(above) and "the quoted part]', '[f(x=1) 5"]'):
        pending = pythonic.pending(spent + last)
        assert pending is not None and pending.malformed


def test_a_lone_carriage_return_in_a_list_is_no_crash() -> None:
    pythonic = get_dialect("pythonic")
    assert [c.args for c in pythonic.parse("[f(x=1,\ry=2)]").calls] == [{"x": 1, "y": 2}]
    assert pythonic.pending("[f(x=1),\rg(y=2)]") is not None
