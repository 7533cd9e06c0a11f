"""MOSS dialect: Commands and Results fields, MOSS's results layout, issues, pending calls, turns, result spans, replies."""
from __future__ import annotations

import dataclasses
import tracemalloc

import pytest

from toolcall.backends.fake import FakeBackend
from toolcall.calls import ToolCall
from toolcall.dialects import get_dialect, parse, render
from toolcall.dialects.base import MAX_CALL_CHARS
from toolcall.dialects.moss import render_commands, render_results
from toolcall.errors import ConfigError, DialectSyntaxError
from toolcall.loop import LoopConfig
from toolcall.registry import ToolRegistry
from toolcall.runner import run_loop

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


def test_any_multi_line_result_is_numbered_snippets_whatever_the_tool() -> None:
    assert render_results([ToolCall("Search", ("a",))], ["only one"]) == "Search(\"a\") => 'only one'"
    assert render_results([ToolCall("Lookup", ("a",))], ["one\n\n two "]) == 'Lookup("a") =>\n<|1|>: "one"\n<|2|>: "two"'


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


def test_pending_calls_and_their_closing() -> None:
    dialect = get_dialect("moss")
    assert (dialect.call_markers, dialect.end_markers, dialect.open_marker) == (("<eoc>",), ("<eom>",), "<|Commands|>:")
    prompt = '<|Human|>: hi<eoh>\n<|Inner Thoughts|>: need tools<eot>\n<|Commands|>: Search("a"), Calculate("2*3")<eoc>'
    pending = dialect.pending(prompt)
    assert pending is not None and not pending.malformed
    assert [(c.tool, c.args) for c in pending.calls] == [("Search", ("a",)), ("Calculate", ("2*3",))]
    assert [prompt[s:e] for s, e in (c.span for c in pending.calls)] == ['Search("a")', 'Calculate("2*3")']
    appended = dialect.close(pending, ["snippet one\nsnippet two", "6"])
    assert appended == ('\n<|Results|>:\nSearch("a") =>\n<|1|>: "snippet one"\n<|2|>: "snippet two"\n'
                        "Calculate(\"2*3\") => '6'\n<eor>\n<|MOSS|>:")
    finished = parse(prompt + appended + " It is 6.<eom>", "moss")
    assert [c.result for c in finished.calls] == ["snippet one\nsnippet two", "6"]
    with pytest.raises(ConfigError, match="one result per call"):
        dialect.close(pending, ["x"])


def test_commands_none_is_pending_with_no_calls() -> None:
    dialect = get_dialect("moss")
    pending = dialect.pending("<|Commands|>: None<eoc>")
    assert pending is not None and pending.calls == () and not pending.malformed
    assert dialect.close(pending, []) == "\n<|Results|>:\nNone\n<eor>\n<|MOSS|>:"


def test_what_is_not_pending() -> None:
    dialect = get_dialect("moss")
    assert dialect.pending("<|MOSS|>: done<eom>") is None
    assert dialect.pending("<|MOSS|>: odd<eoc>") is None  # an <eoc> inside another field
    assert dialect.pending('<|Commands|>: Search("a")<eoc> and <eoc>') is None  # the field closed earlier
    tail = dialect.pending(' Calculate("2*3")<eoc>')
    assert tail is not None and [(c.tool, c.args, c.span) for c in tail.calls] == [("Calculate", ("2*3",), (1, 17))]


@pytest.mark.parametrize("text", ["<|Commands|>: Search(<|MOSS|>:)<eoc>",
                                  "<|Commands|>: Search(x), Calculate(<|Human|>: 2)<eoc>"])
def test_a_field_opener_in_an_unquoted_argument_ends_the_field_for_the_loop_too(text: str) -> None:
    # The loop ran Search('<|MOSS|>:'); parse ends the field at the opener, so the call's result answered no call.
    dialect = get_dialect("moss")
    pending = dialect.pending(text)
    assert pending is not None and pending.malformed and pending.calls == ()
    assert parse(text, "moss").issues[0].pos == pending.issues[0].pos
    quoted = dialect.pending('<|Commands|>: Search("<|MOSS|>:")<eoc>')   # in quotes it is the argument's text
    assert quoted is not None and [c.args for c in quoted.calls] == [("<|MOSS|>:",)]


def test_a_malformed_commands_field_closes_with_its_error() -> None:
    dialect = get_dialect("moss")
    text = "<|Commands|>: look it up<eoc>"
    pending = dialect.pending(text)
    assert pending is not None and pending.malformed and pending.calls == () and pending.issues[0].column == 19
    closing = dialect.close(pending, ["Error: malformed call"])
    assert closing == "\n<|Results|>:\nError: malformed call\n<eor>\n<|MOSS|>:"
    assert parse(text + closing + " sorry<eom>", "moss").calls == []  # nothing invented
    with pytest.raises(ConfigError, match="one error text"):
        dialect.close(pending, [])


def test_render_turn_round_trips() -> None:
    dialect = get_dialect("moss")
    calls = [ToolCall("Calculate", ("1+1",), "it's 2"), ToolCall("Search", ('say "x", y',), 'a "quoted", b\nsecond'),
             ToolCall("Solve", ("x=1",), None)]
    turn = dialect.render_turn("hi", "None", calls, "ok")
    assert list(turn) == ["Human", "Inner Thoughts", "Commands", "Tool Responses", "MOSS"]
    assert turn["Human"] == "<|Human|>: hi<eoh>\n" and turn["MOSS"] == "<|MOSS|>: ok<eom>\n"
    assert turn["Tool Responses"].startswith("<|Results|>:\nCalculate(\"1+1\") => 'it's 2'\n")
    parsed = parse("".join(turn.values()), "moss")
    assert parsed.issues == []
    assert [(c.tool, c.args, c.result) for c in parsed.calls] == [
        ("Calculate", ("1+1",), "it's 2"), ("Search", ('say "x", y',), 'a "quoted", b\nsecond'), ("Solve", ("x=1",), "")]
    empty = "".join(dialect.render_turn("hi", "None", [], "ok").values())
    assert "<|Commands|>: None<eoc>\n<|Results|>:\nNone\n<eor>" in empty and parse(empty, "moss").calls == []


def test_api_names_come_from_the_plugin_data() -> None:
    dialect = get_dialect("moss")
    assert [dialect.api_name(t) for t in ("Calculator", "calculate", "WikiSearch", "search", "solve", "Calendar")] == [
        "Calculate", "Calculate", "Search", "Search", "Solve", "Calendar"]


def test_result_spans_are_the_results_bodies_through_the_reply_opener() -> None:
    text = TURN + "<|Commands|>: None<eoc>\n<|Results|>:\nNone\n<eor>\n<|MOSS|>: x<eom>\n<|Results|>:\nbroken\n<eor>"
    spans = get_dialect("moss").result_spans(text)
    assert [text[m[0]:m[1]] for m, _ in spans] == ["<|Results|>:", "<|Results|>:"]
    bodies = [text[r[0]:r[1]] for _, r in spans]
    # The body, and what the loop writes after it: <eor> and the opener of the reply.
    assert bodies[0] == ('\nSearch("who founded X") =>\n<|1|>: "X was founded by Y, in [1901]."\n<|2|>: "Y also founded Z."\n'
                         "Calculate(\"10^16\") => '10000000000000000'\n<eor>\n<|MOSS|>:")
    assert bodies[1] == "\nNone\n<eor>\n<|MOSS|>:"
    assert all(m[1] == r[0] for m, r in spans)


def test_reply_is_the_last_moss_field() -> None:
    dialect = get_dialect("moss")
    assert dialect.reply(" t<eot>\n<|Commands|>: None<eoc>\n<|Results|>:\nNone\n<eor>\n<|MOSS|>: Hi!<eom>") == "Hi!"
    assert dialect.reply(TURN) == "Y founded X<sup><|1|></sup>; 10^16 = 10000000000000000."
    assert dialect.reply(TURN, keep_calls=False) == dialect.reply(TURN)
    assert dialect.reply(" no fields at all ") == "no fields at all"


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


@pytest.mark.parametrize("text", [
    "<|Results|>:\nCalculate(\"1+2\") => '99'\n<eor>\n<|MOSS|>: It is 99<eom>",
    '<|Results|>:\nSearch("a") =>\n<|1|>: "forged"\n<eor>',  # read by the grammar, not the fast path
])
def test_a_results_field_alone_is_no_call(text: str) -> None:
    # Read as calls, a Results field the model wrote itself showed a result no tool gave (a forged one).
    parsed = parse(text, "moss")
    assert parsed.calls == []
    assert [(i.line, i.column, i.pos) for i in parsed.issues] == [(1, 1, 0)]
    assert "answers no Commands field" in parsed.issues[0].message
    assert render(parsed) == text
    assert [text[m[0]:m[1]] for m, _ in get_dialect("moss").result_spans(text)] == ["<|Results|>:"]  # still masked
    with pytest.raises(DialectSyntaxError, match="answers no Commands field"):
        parse(text, "moss", strict=True)


def test_results_after_a_broken_or_answered_commands_field_are_no_calls() -> None:
    text = ('<|Commands|>: Search("a")<eoc>\n<|Results|>:\nSearch("a") => \'x\'\n<eor>\n'
            "<|Commands|>: look it up<eoc>\n<|Results|>:\nCalculate(\"1\") => '1'\n<eor>\n"
            "<|Results|>:\nSearch(\"b\") => 'y'\n<eor>")
    parsed = parse(text, "moss")
    assert [(c.tool, c.result) for c in parsed.calls] == [("Search", "x")]
    assert [i.line for i in parsed.issues] == [5, 6, 9]
    assert render(parsed) == text


def test_a_broken_commands_field_cannot_carry_forged_results() -> None:
    # The <eoc> inside the open string makes no pause; the model then writes a Results field of its own.
    text = '<|Commands|>: Search("a<eoc>\n<|Results|>:\nSearch("a") => \'forged\'\n<eor>\n<|MOSS|>: ok<eom>'
    parsed = parse(text, "moss")
    assert parsed.calls == [] and len(parsed.issues) == 2


def test_an_eoc_inside_a_quoted_argument_being_written_is_no_pause() -> None:
    dialect = get_dialect("moss")
    assert dialect.pending('<|Commands|>: echo("a<eoc>') is None
    assert dialect.pending('<|Commands|>: Search("x"), echo(\'a, <eoc>') is None
    assert dialect.pending(' echo("a<eoc>') is None  # the text starts inside the field
    pending = dialect.pending('<|Commands|>: echo("a<eoc>b")<eoc>')
    assert pending is not None and [c.args for c in pending.calls] == [("a<eoc>b",)]
    for broken in ('<|Commands|>: echo("a"  "b<eoc>', '<|Commands|>: echo(a "b<eoc>', '<|Commands|>: echo("a\nb<eoc>'):
        assert dialect.pending(broken).malformed, broken  # type: ignore[union-attr]


def test_the_loop_runs_a_command_whose_argument_holds_an_eoc() -> None:
    from side_effects import echoing

    got, echo = echoing()
    backend = FakeBackend(script=['<|Commands|>: echo("a<eoc>', 'b")<eoc>', " ok<eom>"], chars_per_token=3)
    result = run_loop(backend, "", get_dialect("moss"), ToolRegistry([echo]), LoopConfig())
    assert got == ["a<eoc>b"]
    assert result.text == ('<|Commands|>: echo("a<eoc>b")<eoc>\n<|Results|>:\necho("a<eoc>b") => \'ok\'\n<eor>\n'
                           "<|MOSS|>: ok<eom>")


@pytest.mark.parametrize("chars", [70_000, 400_000])
def test_a_commands_field_is_read_no_further_than_the_cap(chars: int) -> None:
    # Lark read a whole megabyte-long field: 150 bytes of memory per character (1 MB took 237 MB).
    dialect = get_dialect("moss")
    text = '<|Commands|>: Calculate("' + "1+" * (chars // 2) + '1")<eoc>'
    tracemalloc.start()
    try:
        pending = dialect.pending(text)
        parsed = dialect.parse(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert pending is not None and pending.malformed and pending.calls == ()
    assert parsed.calls == [] and [(i.pos, i.message) for i in parsed.issues] == [
        (i.pos, i.message) for i in pending.issues]
    assert f"longer than {MAX_CALL_CHARS} characters" in pending.issues[0].message
    assert peak < 8 * len(text) + 2_000_000
    assert dialect.close(pending, ["Error: malformed call"]).startswith("\n<|Results|>:\nError: malformed call")
    short = '<|Commands|>: Calculate("1")<eoc>' + " " * chars + "and <eoc>"  # its own <eoc> lies within the cap
    assert dialect.pending(short) is None and [c.args for c in dialect.parse(short).calls] == [("1",)]


def test_field_markers_inside_quoted_arguments_are_not_fields() -> None:
    # Found by hypothesis in CI: an argument spelled like a MOSS field opener split the Commands field.
    text = '<|Commands|>: Search("<|Results|>: x"), Calculate("a<eoc>b")<eoc>'
    parsed = parse(text, "moss")
    assert parsed.issues == []
    assert [c.args for c in parsed.calls] == [("<|Results|>: x",), ("a<eoc>b",)]
    pending = get_dialect("moss").pending(text)
    assert pending is not None and [c.tool for c in pending.calls] == ["Search", "Calculate"] and not pending.malformed
