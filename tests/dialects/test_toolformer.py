"""Toolformer dialect: every spelling, prose brackets, issues, canonical rendering, the loop helpers."""
from __future__ import annotations

import dataclasses

import pytest

from toolcall.calls import ToolCall
from toolcall.dialects import get_dialect, parse, render
from toolcall.errors import ConfigError, DialectSyntaxError


def only_call(text: str) -> ToolCall:
    parsed = parse(text)
    assert parsed.issues == []
    assert len(parsed.calls) == 1, parsed.calls
    return parsed.calls[0]


@pytest.mark.parametrize(("text", "tool", "args", "result"), [
    ("Out of 1400 participants, 400 (or [Calculator(400 / 1400) → 0.29] 29%) passed.", "Calculator", ("400 / 1400",), "0.29"),
    ('Joe Biden was born in [QA("Where was Joe Biden born?")] Scranton.', "QA", ("Where was Joe Biden born?",), None),
    ("The flag [WikiSearch(Ghana flag red meaning)] is red.", "WikiSearch", ("Ghana flag red meaning",), None),
    ("Today [Calendar()] is Monday.", "Calendar", (), None),
    ("It is [CALCULATOR(18 + 12 * 3)] 54.", "CALCULATOR", ("18 + 12 * 3",), None),
    ("x [calculator(2+3)->5] y", "calculator", ("2+3",), "5"),
    ("x [Calculator(2+3)→5] y", "Calculator", ("2+3",), "5"),
    ("x [Calculator(2+3) -> 5] y", "Calculator", ("2+3",), "5"),
    ("x <API>[Calculator(3*4)]->12</API> y", "Calculator", ("3*4",), "12"),
    ("x <API>[Calculator(3*4)]</API> y", "Calculator", ("3*4",), None),
    ("x <API> Calculator(3*4) → 12 </API> y", "Calculator", ("3*4",), "12"),
    ("x <API> QA(who?) </API> y", "QA", ("who?",), None),
    ("x <API>[Calculator(3*4) -> 12]</API> y", "Calculator", ("3*4",), "12"),
    ("[MT('sûreté nucléaire', \"en\") -> nuclear safety]", "MT", ("sûreté nucléaire", "en"), "nuclear safety"),
    ('[QA("say \\"hi\\", ok")]', "QA", ('say "hi", ok',), None),
    ("[Calculator(658,893 / 2)]", "Calculator", ("658,893 / 2",), None),
    ("[Tool(1,2)]", "Tool", ("1", "2"), None),
    ("[Tool(a, b , c)]", "Tool", ("a", "b", "c"), None),
    ('[Tool( "a" , \'b\' )]', "Tool", ("a", "b"), None),
    ("[Calculator((2 + 3) * 4)]", "Calculator", ("(2 + 3) * 4",), None),
    ("[Calculator(max(1, 2) + 1)]", "Calculator", ("max(1, 2) + 1",), None),
    ("[WikiSearch(Ghana's flag)]", "WikiSearch", ("Ghana's flag",), None),
    ("[W(x) -> see [1], [2 [3]] and \"q\" ü] tail]", "W", ("x",), 'see [1], [2 [3]] and "q" ü'),
    ("<API> W(x) → a ] b [ c </API>", "W", ("x",), "a ] b [ c"),
    ("[Calculator(1) ->] x", "Calculator", ("1",), ""),
])
def test_every_spelling(text: str, tool: str, args: tuple[str, ...], result: str | None) -> None:
    call = only_call(text)
    assert (call.tool, call.args, call.result) == (tool, args, result)
    covered = text[call.span[0]:call.span[1]]
    assert covered.startswith(("[", "<API>")) and covered.endswith(("]", "</API>"))
    assert all(isinstance(a, str) for a in call.args)


def test_span_covers_tags_and_result() -> None:
    text = "a <API>[Calculator(3*4)]->12</API> b [Calendar()] c"
    calls = parse(text).calls
    assert [text[s:e] for s, e in (c.span for c in calls)] == ["<API>[Calculator(3*4)]->12</API>", "[Calendar()]"]


@pytest.mark.parametrize("text", [
    "See [1] and [citation needed] and [text](http://x.org) and [a, b] and [ ] and [].",
    "Lists [1, 2, 3] or f(x) = [x] or [see f(x)] or [Smith (2004)] or <api> or API>.",
])
def test_prose_brackets_are_neither_calls_nor_issues(text: str) -> None:
    parsed = parse(text)
    assert parsed.calls == [] and parsed.issues == []
    assert render(parsed) == text


@pytest.mark.parametrize(("text", "line", "column", "expected"), [
    ("ok\nthen [Calculator(3+", 2, 20, "')'"),
    ('[QA("abc)] rest', 1, 5, "DQ_STRING"),
    ("x [Calculator(1) y]", 1, 18, "ARROW"),
    ("<API> Calendar() no close", 1, 18, "'</API>'"),
])
def test_malformed_spans_are_issues(text: str, line: int, column: int, expected: str) -> None:
    parsed = parse(text)
    assert parsed.calls == []
    assert len(parsed.issues) >= 1
    issue = parsed.issues[0]
    assert (issue.line, issue.column) == (line, column)
    assert issue.pos == sum(len(x) + 1 for x in text.split("\n")[:line - 1]) + column - 1
    assert expected in issue.expected
    assert issue.context.endswith("^\n")
    assert render(parsed) == text
    with pytest.raises(DialectSyntaxError) as info:
        parse(text, strict=True)
    err = info.value
    assert (err.line, err.column, err.pos, err.expected, err.context) == (
        issue.line, issue.column, issue.pos, issue.expected, issue.context)
    assert f"line {line}, column {column}" in str(err)


def test_unclosed_api_tag_is_an_issue_but_its_bracket_call_still_counts() -> None:
    parsed = parse("<API>[Calendar()] no close")
    assert [c.span for c in parsed.calls] == [(5, 17)]
    assert [(i.line, i.column, i.expected) for i in parsed.issues] == [(1, 19, ("'</API>'", "ARROW"))]


def test_broken_call_does_not_hide_later_calls() -> None:
    parsed = parse("a [Calculator(3+ b\nc [Calculator(1+1) -> 2] d")
    assert [c.args for c in parsed.calls] == [("1+1",)]
    assert len(parsed.issues) == 1 and parsed.issues[0].line == 1


def test_canonical_rendering_of_replaced_calls() -> None:
    text = "A [Calculator(2+3)] B <API>[QA(who, 'x')]</API> C <API> MT(hola) → hi </API> D"
    parsed = parse(text)
    parsed.calls[:] = [c.with_result("5") for c in parsed.calls]
    assert render(parsed) == ('A [Calculator(2+3) -> 5] B <API>[QA(who, x)]->5</API> C '
                              '<API> MT(hola) → 5 </API> D')
    bracket = get_dialect("toolformer", spelling="bracket")
    assert bracket.render(parsed) == "A [Calculator(2+3) -> 5] B [QA(who, x) -> 5] C [MT(hola) -> 5] D"
    tagged = get_dialect("toolformer", spelling="tagged")
    assert tagged.render(parsed) == ("A <API>[Calculator(2+3)]->5</API> B <API>[QA(who, x)]->5</API> C "
                                     "<API>[MT(hola)]->5</API> D")


def test_canonical_quoting_round_trips() -> None:
    dialect = get_dialect("toolformer", spelling="bracket")
    args = ("plain text", "a, b", "f(x)", 'say "hi"', "it's", "back\\slash", "", " padded ", "[x]", "658,893", "</API>", "->")
    call = ToolCall("Tool", args, "r")
    rendered = dialect.render_call(call)
    assert rendered.startswith("[Tool(plain text, ")
    again = only_call(rendered)
    assert again.args == args and again.result == "r"
    assert dialect.render_call(ToolCall("Calculator", (12,), None)) == "[Calculator(12)]"


def test_new_and_removed_calls() -> None:
    text = "Sum: [Calculator(1+1) -> 2] done."
    parsed = parse(text)
    parsed.calls.clear()
    assert render(parsed) == "Sum:  done."
    parsed.calls.append(ToolCall("Calendar", (), "Today is Monday.", (0, 0)))
    assert render(parsed) == "[Calendar() -> Today is Monday.]Sum:  done."
    parsed = parse(text)
    parsed.calls[0] = dataclasses.replace(parsed.calls[0], args=("2+2",), result="4")
    assert render(parsed) == "Sum: [Calculator(2+2) -> 4] done."


def test_unknown_spelling_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="bracket, tagged"):
        get_dialect("toolformer", spelling="curly")


@pytest.mark.parametrize(("text", "args", "appended"), [
    ("So [Calculator(3 * 4) ->", ("3 * 4",), " 12]"),
    ("So [Calculator(3 * 4) → ", ("3 * 4",), " 12]"),
    ("So [Calculator(3*4)->", ("3*4",), "12]"),
    ("So <API>[Calculator(3*4)]->", ("3*4",), "12</API>"),
    ("So <API>[Calculator(3*4)] ->", ("3*4",), " 12</API>"),
    ("So <API> Calculator(3*4) →", ("3*4",), " 12 </API>"),
    ("So <API>[Calculator(3*4) ->", ("3*4",), " 12]</API>"),
    ("[Calendar() -> x] then\nnow [QA(\"a, b\") -> [x]] [Calculator(3, 4)->", ("3", "4"), "12]"),
])
def test_pending_calls_and_splice(text: str, args: tuple[str, ...], appended: str) -> None:
    dialect = get_dialect("toolformer")
    calls, issues = dialect.pending_calls(text)
    assert issues == []
    assert [(c.tool, c.args, c.result) for c in calls] == [("Calculator", args, None)]
    start, end = calls[0].span
    assert text[start:end].startswith(("[Calculator", "<API>")) and end == len(text.rstrip())
    assert dialect.splice(text, calls, ["12"]) == appended
    finished = parse(text + appended)
    assert finished.calls[-1].result == "12" and finished.calls[-1].args == args and finished.issues == []


def test_pending_calls_ignore_prose_arrows_and_report_broken_calls() -> None:
    dialect = get_dialect("toolformer")
    assert dialect.pending_calls("[Calculator(1) -> 1] so x ->") == ([], [])
    assert dialect.pending_calls("no marker here") == ([], [])
    assert dialect.pending_calls("a -> b ->") == ([], [])
    calls, issues = dialect.pending_calls("so [Calculator(1 ->")
    assert calls == [] and issues and issues[0].line == 1 and "')'" in issues[0].expected
    with pytest.raises(ConfigError, match="no Toolformer call awaits"):
        dialect.splice("a -> b ->", [], ["1"])


def test_markers() -> None:
    assert get_dialect("toolformer").call_markers == ("->", "→")
    assert get_dialect("toolformer").end_markers == ()
    assert get_dialect("toolformer").open_marker == "["
    assert get_dialect("toolformer", spelling="tagged").open_marker == "<API>"


def test_splice_closes_a_malformed_pending_call_with_what_opened_it() -> None:
    dialect = get_dialect("toolformer")
    assert dialect.splice("so [Calculator(1 ->", [], ["Error: malformed call"]) == " Error: malformed call]"
    assert dialect.splice("so <API>[Calculator(1 ->", [], ["Error: bad"]) == " Error: bad</API>"
