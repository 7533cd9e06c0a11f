"""Parsing takes time linear in the text on the shapes that once made it quadratic: a line of escaped quotes (MOSS,
pythonic) and prose of call-shaped openers (the JSON dialects)."""
from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from cpu_timing import cpu_seconds

from toolcall.dialects import get_dialect


def _growth(name: str, make: Callable[[int], str], small: int) -> float:
    """How much longer `name` takes to parse `make(8 * small)` than `make(small)`: about 8 when linear, 64 when
    quadratic."""
    dialect = get_dialect(name)
    dialect.parse(make(small))  # build the parser first
    short, long = make(small), make(8 * small)
    return cpu_seconds(lambda: dialect.parse(long)) / cpu_seconds(lambda: dialect.parse(short))


@pytest.mark.parametrize("make", [
    lambda n: '\\"' * n,
    lambda n: '[f(x="' + '\\"' * n,
    lambda n: '<|Commands|>: f("' + '\\"' * n,
    lambda n: "<|Results|>: " + '\\"' * n,
], ids=["bare", "pythonic-like", "commands", "results"])
def test_moss_a_line_of_escaped_quotes_is_read_in_linear_time(make: Callable[[int], str]) -> None:
    """Blanking the quoted strings tried a string from each quote of a line of `\\"`, each to the line's end: 40,000
    characters took 4 to 12 s."""
    assert _growth("moss", make, 2_000) < 24


def test_moss_blanks_the_same_strings_as_before() -> None:
    moss = get_dialect("moss")
    # A string that does not close keeps its line as written; the search goes on from each quote, escaped or not.
    assert moss._mask_quotes('a "<eoc>" b "\\" <eoc>\nc" "x\\"y" "') == 'a "     " b "\\" <eoc>\nc" "x\\" " "'
    assert moss.parse('<|Commands|>: Search("a \\"<eoc>\\" b")<eoc>').calls[0].args == ('a "<eoc>" b',)


@pytest.mark.parametrize("make", [
    lambda n: "[f(x=" + '\\"' * n,
    lambda n: "[f(x=" + '\\"' * n + "\n",
    lambda n: '[f(x="' + '\\"' * n + "\n[g(y=1)]",
    lambda n: "[f(x=" + '\\"' * n + "(" * 200,  # nested deeper than MAX_DEPTH after the quotes
], ids=["open", "newline", "next-list", "deep"])
def test_pythonic_a_line_of_escaped_quotes_is_read_in_linear_time(make: Callable[[int], str]) -> None:
    """The pieces of a call list (its strings and brackets) were found by regexes that tried a string from each quote
    of a line of `\\"`, each to the line's end: a 60,000-character list took 27 s."""
    assert _growth("pythonic", make, 2_000) < 24


@pytest.mark.parametrize("text, calls, issue", [
    ("[f(x=" + '\\"' * 50, [], 5),
    ('[f(x="' + '\\"' * 50 + '")] [g(y=1)]', [("f", {"x": '"' * 50}), ("g", {"y": 1})], None),
    ("[f(x='a\\'(b', y=\"c\\\"]\")]", [("f", {"x": "a'(b", "y": 'c"]'})], None),
])
def test_pythonic_reads_escaped_quotes_as_before(text: str, calls: list, issue: int | None) -> None:
    parsed = get_dialect("pythonic").parse(text)
    assert [(c.tool, dict(c.args)) for c in parsed.calls] == calls
    assert [i.pos for i in parsed.issues][:1] == ([] if issue is None else [issue])


@pytest.fixture
def counted_lines(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The characters each JSONDecodeError made counts (its line number is counted from the start of its text)."""
    counted: list[int] = []
    real = json.JSONDecodeError.__init__

    def init(self: json.JSONDecodeError, msg: str, doc: str, pos: int) -> None:
        counted.append(pos)
        real(self, msg, doc, pos)

    monkeypatch.setattr(json.JSONDecodeError, "__init__", init)
    return counted


@pytest.mark.parametrize("opener", [
    'x{"name": "f", "parameters": {', '<tool_call>{"name": "f", "arguments": {', '[TOOL_CALLS][{"name": "f", "arguments": {',
])
def test_llama3_json_call_openers_in_prose_are_read_in_linear_time(opener: str, counted_lines: list[int]) -> None:
    """Each failed decode of a call-shaped opener built a JSONDecodeError, which counts the lines of the whole text
    before it: a megabyte of `x{"name": "f", "parameters": {` took 22 s."""
    llama = get_dialect("llama3_json")
    llama.parse(opener * 100)
    short = sum(counted_lines)
    counted_lines.clear()
    llama.parse(opener * 800)
    assert sum(counted_lines) < 12 * max(short, 1)


def test_a_json_fault_far_into_a_text_keeps_its_place() -> None:
    """A decode read from a window of the text still reports a fault where it is in the whole text, past the first
    window and after many lines."""
    llama = get_dialect("llama3_json")
    head = "Sure.\n" * 1_000
    for call, fault in [('{"name": "f", "parameters": {"a": "' + "b" * 5_000 + '\\q"}}', "\\q"),
                        ('{"name": "f", "parameters": {"a": "' + "b" * 5_000 + '", "n": 1e999}}', "1e999")]:
        parsed = llama.parse(head + call)
        assert parsed.calls == [] and len(parsed.issues) == 1
        issue = parsed.issues[0]
        assert (issue.pos, issue.line, issue.column) == (len(head) + call.index(fault), 1_001, call.index(fault) + 1)
