"""MOSS dialect: Commands and Results fields, MOSS's results layout, issues, the loop helpers."""
from __future__ import annotations

import dataclasses

import pytest

from toolcall.calls import ToolCall
from toolcall.dialects import get_dialect, parse, render
from toolcall.dialects.moss import render_commands, render_results
from toolcall.errors import ConfigError, DialectSyntaxError

TURN = (
    "<|Human|>: Who founded X, and what is 10^16?<eoh>\n"
    "<|Inner Thoughts|>: I should search and calculate.<eot>\n"
    '<|Commands|>: Search("who founded X"), Calculate("10^16")<eoc>\n'
    "<|Results|>:\n"
    'Search("who founded X") =>\n'
    '<|1|>: "X was founded by Y, in [1901]."\n'
    '<|2|>: "Y also founded Z."\n'
    "Calculate(\"10^16\") => '10000000000000000'\n"
    "<eor>\n"
    "<|MOSS|>: Y founded X<sup><|1|></sup>; 10^16 = 10000000000000000.<eom>\n"
)


def test_full_turn() -> None:
    parsed = parse(TURN, "moss")
    assert parsed.issues == []
    assert [(c.tool, c.args, c.result) for c in parsed.calls] == [
        ("Search", ("who founded X",), "X was founded by Y, in [1901].\nY also founded Z."),
        ("Calculate", ("10^16",), "10000000000000000"),
    ]
    assert [TURN[s:e] for s, e in (c.span for c in parsed.calls)] == ['Search("who founded X")', 'Calculate("10^16")']
    assert render(parsed) == TURN


@pytest.mark.parametrize(("text", "expected"), [
    ("<|Commands|>: None<eoc>\n<|Results|>:\nNone\n<eor>\n", []),
    ('<|Commands|>: Search("a")<eoc>\n', [("Search", ("a",), None)]),
    ('<|Commands|>: Search("a")<eoc>\n<|Results|>:\nSearch("a") => No result.\n<eor>', [("Search", ("a",), "")]),
    ('<|Commands|>: Search("a")<eoc>\n<|Results|>:\nSearch("a") =>\nNo result.\n<eor>', [("Search", ("a",), "")]),
    ('<|Commands|>: Search("a"), Solve("x+1=2")<eoc>\n<|Results|>:\nNo result.\n<eor>',
     [("Search", ("a",), ""), ("Solve", ("x+1=2",), "")]),
    ("<|Results|>:\nCalculate(\"2+3\") => '5'\n<eor>", [("Calculate", ("2+3",), "5")]),
    ('<|Commands|>:Calculate("1"),Calculate( "2" )<eoc>', [("Calculate", ("1",), None), ("Calculate", ("2",), None)]),
    ("plain prose with <|MOSS|>: no calls<eom>", []),
    ('<|Commands|>: Search("<eoc>")<eoc>\n<|Results|>:\nSearch("<eoc>") =>\n<|1|>: "x"<eor>', [("Search", ("<eoc>",), "x")]),
])
def test_parts_of_turns(text: str, expected: list[tuple[str, tuple[str, ...], str | None]]) -> None:
    parsed = parse(text, "moss")
    assert parsed.issues == []
    assert [(c.tool, c.args, c.result) for c in parsed.calls] == expected
    assert render(parsed) == text


@pytest.mark.parametrize(("text", "line", "column"), [
    ("<|Human|>: hi<eoh>\n<|Commands|>: search the web for cats<eoc>\n", 2, 21),
    ('<|Commands|>: Search("a") Search("b")<eoc>', 1, 27),
    ('<|Commands|>: Search("a"<eoc>', 1, 25),
    ('<|Commands|>: Search("a")\n<|MOSS|>: hm<eom>', 1, 26),
    ("<|Results|>:\nwhatever\n<eor>", 2, 9),
])
def test_malformed_fields(text: str, line: int, column: int) -> None:
    parsed = parse(text, "moss")
    assert parsed.calls == []
    assert [(i.line, i.column) for i in parsed.issues] == [(line, column)]
    assert parsed.issues[0].expected and parsed.issues[0].context.endswith("^\n")
    assert render(parsed) == text
    with pytest.raises(DialectSyntaxError) as info:
        parse(text, "moss", strict=True)
    assert (info.value.line, info.value.column, info.value.pos) == (line, column, parsed.issues[0].pos)


def test_render_commands_and_results_layout() -> None:
    calls = [ToolCall("Search", ("a",)), ToolCall("Calculate", ("10^16",)), ToolCall("Solve", ('say "x"',))]
    assert render_commands(calls) == 'Search("a"), Calculate("10^16"), Solve("say \\"x\\"")'
    assert render_commands([]) == "None"
    assert render_results(calls, ["one\ntwo", "10000000000000000", ""]) == (
        'Search("a") =>\n<|1|>: "one"\n<|2|>: "two"\n'
        "Calculate(\"10^16\") => '10000000000000000'\n"
        'Solve("say \\"x\\"") => No result.'
    )
    assert render_results([], []) == "None"
    with pytest.raises(ConfigError, match="one result per call"):
        render_results(calls, ["x"])


def test_replaced_results_rerender_the_round() -> None:
    parsed = parse(TURN, "moss")
    parsed.calls[1] = dataclasses.replace(parsed.calls[1], result="42")
    out = render(parsed)
    assert "Calculate(\"10^16\") => '42'\n<eor>" in out
    assert out.replace("'42'", "'10000000000000000'") == TURN
    again = parse(out, "moss")
    assert [c.result for c in again.calls] == [parsed.calls[0].result, "42"]


def test_results_added_to_a_round_without_them() -> None:
    text = '<|Commands|>: Calculate("2+3")<eoc>\n<|MOSS|>: ok<eom>'
    parsed = parse(text, "moss")
    parsed.calls[0] = parsed.calls[0].with_result("5")
    out = render(parsed)
    assert out == '<|Commands|>: Calculate("2+3")<eoc>\n<|Results|>:\nCalculate("2+3") => \'5\'\n<eor>\n<|MOSS|>: ok<eom>'
    assert parse(out, "moss").calls[0].result == "5"


def test_call_outside_any_field_cannot_render() -> None:
    parsed = parse('<|Commands|>: Search("a")<eoc> tail text', "moss")
    parsed.calls.append(ToolCall("Search", ("b",), None, (35, 35)))
    with pytest.raises(ConfigError, match="lies in no"):
        render(parsed)


def test_pending_calls_and_splice() -> None:
    dialect = get_dialect("moss")
    assert (dialect.call_markers, dialect.end_markers, dialect.open_marker) == (("<eoc>",), ("<eom>",), "<|Commands|>:")
    prompt = '<|Human|>: hi<eoh>\n<|Inner Thoughts|>: need tools<eot>\n<|Commands|>: Search("a"), Calculate("2*3")<eoc>'
    calls, issues = dialect.pending_calls(prompt)
    assert issues == []
    assert [(c.tool, c.args) for c in calls] == [("Search", ("a",)), ("Calculate", ("2*3",))]
    assert [prompt[s:e] for s, e in (c.span for c in calls)] == ['Search("a")', 'Calculate("2*3")']
    appended = dialect.splice(prompt, calls, ["snippet one\nsnippet two", "6"])
    assert appended == ('\n<|Results|>:\nSearch("a") =>\n<|1|>: "snippet one"\n<|2|>: "snippet two"\n'
                        "Calculate(\"2*3\") => '6'\n<eor>\n<|MOSS|>:")
    finished = parse(prompt + appended + " It is 6.<eom>", "moss")
    assert [c.result for c in finished.calls] == ["snippet one\nsnippet two", "6"]
    none_calls, _ = dialect.pending_calls("<|Commands|>: None<eoc>")
    assert none_calls == []
    assert dialect.splice("<|Commands|>: None<eoc>", [], []) == "\n<|Results|>:\nNone\n<eor>\n<|MOSS|>:"
    assert dialect.pending_calls("<|MOSS|>: done<eom>") == ([], [])
    tail_calls, _ = dialect.pending_calls(' Calculate("2*3")<eoc>')
    assert [(c.tool, c.args, c.span) for c in tail_calls] == [("Calculate", ("2*3",), (1, 17))]
    assert dialect.pending_calls("<|MOSS|>: odd<eoc>") == ([], [])
    bad_calls, bad = dialect.pending_calls("<|Commands|>: look it up<eoc>")
    assert bad_calls == [] and bad[0].column == 19


def test_text_starting_inside_a_commands_field() -> None:
    generated = (' Search("a"), Calculate("1+1")<eoc>\n<|Results|>:\nSearch("a") =>\n<|1|>: "x"\n'
                 "Calculate(\"1+1\") => '2'\n<eor>\n<|MOSS|>: ok<eom>")
    parsed = parse(generated, "moss")
    assert [(c.tool, c.args, c.result) for c in parsed.calls] == [("Search", ("a",), "x"), ("Calculate", ("1+1",), "2")]
    assert render(parsed) == generated
    parsed.calls.pop(0)
    assert render(parsed) == (' Calculate("1+1")<eoc>\n<|Results|>:\nCalculate("1+1") => \'2\'\n<eor>\n'
                              "<|MOSS|>: ok<eom>")
    stray = parse("hello<eoc>", "moss")
    assert stray.calls == [] and [(i.line, i.column) for i in stray.issues] == [(1, 6)]


def test_results_field_alone_rerenders() -> None:
    parsed = parse("<|Results|>:\nCalculate(\"1\") => '1'\n<eor>", "moss")
    parsed.calls[0] = parsed.calls[0].with_result("9")
    assert render(parsed) == "<|Results|>:\nCalculate(\"1\") => '9'\n<eor>"


def test_results_after_a_broken_commands_field_name_their_own_calls() -> None:
    text = ('<|Commands|>: Search("a")<eoc>\n<|Results|>:\nSearch("a") => \'x\'\n<eor>\n'
            "<|Commands|>: look it up<eoc>\n<|Results|>:\nCalculate(\"1\") => '1'\n<eor>")
    parsed = parse(text, "moss")
    assert [(c.tool, c.result) for c in parsed.calls] == [("Search", "x"), ("Calculate", "1")]
    assert len(parsed.issues) == 1 and parsed.issues[0].line == 5
    assert render(parsed) == text


def test_field_markers_inside_quoted_arguments_are_not_fields() -> None:
    # Found by hypothesis in CI: an argument spelled like a MOSS field opener split the Commands field.
    text = '<|Commands|>: Search("<|Results|>: x"), Calculate("a<eoc>b")<eoc>'
    parsed = parse(text, "moss")
    assert parsed.issues == []
    assert [c.args for c in parsed.calls] == [("<|Results|>: x",), ("a<eoc>b",)]
    calls, issues = get_dialect("moss").pending_calls(text)
    assert [c.tool for c in calls] == ["Search", "Calculate"] and issues == []
