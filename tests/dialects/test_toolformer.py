"""Toolformer dialect: every spelling, prose brackets, issues, canonical rendering, pending calls, result spans, replies."""
from __future__ import annotations

import dataclasses
import time
import tracemalloc

import pytest

from toolcall.backends.fake import FakeBackend
from toolcall.calls import ToolCall
from toolcall.dialects import base, get_dialect, parse, render
from toolcall.dialects.toolformer import MAX_CALL_CHARS, ToolformerDialect
from toolcall.errors import ConfigError, DialectSyntaxError
from toolcall.loop import LoopConfig
from toolcall.registry import ToolRegistry
from toolcall.runner import run_loop


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
def test_pending_call_and_its_closing(text: str, args: tuple[str, ...], appended: str) -> None:
    dialect = get_dialect("toolformer")
    pending = dialect.pending(text)
    assert pending is not None and pending.issues == () and not pending.malformed
    assert [(c.tool, c.args, c.result) for c in pending.calls] == [("Calculator", args, None)]
    start, end = pending.calls[0].span
    assert text[start:end].startswith(("[Calculator", "<API>")) and end == len(text.rstrip())
    assert dialect.close(pending, ["12"]) == appended
    finished = parse(text + appended)
    assert finished.calls[-1].result == "12" and finished.calls[-1].args == args and finished.issues == []


def test_arrows_that_open_no_call_are_not_pending() -> None:
    dialect = get_dialect("toolformer")
    assert dialect.pending("[Calculator(1) -> 1] so x ->") is None
    assert dialect.pending("no marker here") is None
    assert dialect.pending("a -> b ->") is None


def test_a_malformed_pending_call_closes_with_what_opened_it() -> None:
    dialect = get_dialect("toolformer")
    pending = dialect.pending("so [Calculator(1 ->")
    assert pending is not None and pending.malformed and pending.calls == ()
    issue = pending.issues[0]
    assert issue.line == 1 and "')'" in issue.expected
    assert dialect.close(pending, ["Error: malformed call"]) == " Error: malformed call]"
    tagged = dialect.pending("so <API>[Calculator(1 ->")
    assert tagged is not None and dialect.close(tagged, ["Error: bad"]) == " Error: bad</API>"


def test_close_takes_one_result_on_one_line() -> None:
    dialect = get_dialect("toolformer")
    pending = dialect.pending("[Search(cats) ->")
    assert pending is not None
    text = "[Search(cats) ->" + dialect.close(pending, ["Cats purr.\n\n  Cats sleep a lot. \n"])
    assert text == "[Search(cats) -> Cats purr. | Cats sleep a lot.]"
    assert parse(text).calls[0].result == "Cats purr. | Cats sleep a lot."
    with pytest.raises(ConfigError, match="exactly one result"):
        dialect.close(pending, ["a", "b"])
    with pytest.raises(ConfigError, match="ToolformerDialect.pending"):
        dialect.close(get_dialect("moss").pending('<|Commands|>: Search("a")<eoc>'), ["x"])


def test_markers() -> None:
    assert get_dialect("toolformer").call_markers == ("->", "→")
    assert get_dialect("toolformer").end_markers == ()
    assert get_dialect("toolformer").open_marker == "["
    assert get_dialect("toolformer", spelling="tagged").open_marker == "<API>"


def test_a_single_argument_is_bare_when_it_parses_back_unchanged() -> None:
    dialect = get_dialect("toolformer", spelling="bracket")
    assert dialect.render_call(ToolCall("Calculator", ("1,240 + 1,560",), "2800")) == "[Calculator(1,240 + 1,560) -> 2800]"
    assert dialect.render_call(ToolCall("WikiSearch", ("Ghana's flag",))) == "[WikiSearch(Ghana's flag)]"
    assert dialect.render_call(ToolCall("Calculator", ("(2 + 3) * 4",))) == "[Calculator((2 + 3) * 4)]"
    # Bare, these would read back as something else: quoted.
    assert dialect.render_call(ToolCall("QA", ("a, b",))) == '[QA("a, b")]'
    assert dialect.render_call(ToolCall("T", ("f(x))",))) == '[T("f(x))")]'
    assert dialect.render_call(ToolCall("T", (" padded ",))) == '[T(" padded ")]'
    assert dialect.render_call(ToolCall("T", ("",))) == '[T("")]'
    # Two arguments keep the per-argument rule: "a, b" must be quoted to stay one argument.
    assert dialect.render_call(ToolCall("T", ("it's", "x"))) == '[T("it\'s", x)]'


@pytest.mark.parametrize(("text", "pieces"), [
    ("Out of 1400, 400 (or [Calculator(400 / 1400) → 0.29] 29%) passed.", [("→", " 0.29]")]),
    ("two [Calculator(1+2)->3] and <API> Calculator(2*3) → 6 </API> calls", [("->", "3]"), ("→", " 6 </API>")]),
    ("a <API>[Calculator(3*4)]->12</API> b <API>[Calculator(3*4) -> 12]</API> c", [("->", "12</API>"), ("->", " 12]")]),
    ("brackets [QA(Which list?) -> [1, 2] and more] inside", [("->", " [1, 2] and more]")]),
    ("empty [Calculator(1) ->] and none [QA(Where?)] and an arrow [T(a -> b) -> c]", [("->", "]"), ("->", " c]")]),
    ("broken [Calculator(1 -> 2 and prose a -> b", []),
])
def test_result_spans_are_the_arrow_and_what_follows_it_through_the_close(text: str, pieces: list[tuple[str, str]]) -> None:
    spans = get_dialect("toolformer").result_spans(text)
    assert [(text[m[0]:m[1]], text[r[0]:r[1]]) for m, r in spans] == pieces
    assert all(m[1] == r[0] for m, r in spans)


def test_result_spans_are_what_close_writes() -> None:
    dialect = get_dialect("toolformer")
    for text in ("So [Calculator(3 * 4) ->", "So <API> Calculator(3*4) →", "So <API>[Calculator(3*4)]->"):
        pending = dialect.pending(text)
        assert pending is not None
        closing = dialect.close(pending, ["12"])
        (marker, (start, end)), = dialect.result_spans(text + closing)
        assert text[marker[0]:marker[1]] in ("->", "→") and marker[1] == start == len(text)
        assert end - start == len(closing) and closing.rstrip("]").removesuffix("</API>").strip() == "12"


def test_reply_keeps_or_cuts_calls() -> None:
    dialect = get_dialect("toolformer")
    assert dialect.reply(" a [b(1) -> 2] c ") == "a [b(1) -> 2] c"
    assert dialect.reply("It is [Calculator(2 * 3) -> 6] 6 apples.", keep_calls=False) == "It is 6 apples."


def test_named_arguments_are_written_by_value_in_positional_formats() -> None:
    assert get_dialect("toolformer").render_call(ToolCall("Calculator", {"expression": "2 + 3"})) == "[Calculator(2 + 3)]"
    assert get_dialect("moss").render_call(ToolCall("Search", {"query": "a", "n": 2})) == 'Search("a", "2")'


@pytest.mark.parametrize("text", [
    'Map: [echo("a ->', "[echo(x, 'a →", '[echo(x,  "a, b ->', '<API> echo("a →', '<API>[echo("x ->',
    '[echo("say \\"hi\\" ->', "[Calculator(1) -> 1] and [echo('a ->",
])
def test_an_arrow_inside_a_quoted_argument_being_written_is_no_pause(text: str) -> None:
    # The call is still being written: stopping there spliced an error into the string, and the tool got it.
    assert get_dialect("toolformer").pending(text) is None


@pytest.mark.parametrize(("text", "args"), [
    ('[echo("a -> b") ->', ("a -> b",)),
    ("[WikiSearch(Joe's house) ->", ("Joe's house",)),  # an apostrophe inside bare text opens no string
    ("[echo(it's, 'x -> y') →", ("it's", "x -> y")),
])
def test_quoted_arrows_that_closed_still_pause(text: str, args: tuple[str, ...]) -> None:
    pending = get_dialect("toolformer").pending(text)
    assert pending is not None and not pending.malformed and [c.args for c in pending.calls] == [args]


@pytest.mark.parametrize("text", [
    "[WikiSearch(Joe's house ->",  # the apostrophe is bare text: the call breaks at the arrow, as before
    '[echo("x" "a ->',  # a quote after an argument starts none
    '[echo(x "a ->',
    '[echo(g("a ->',  # inside parentheses a quote is plain text
])
def test_quotes_that_start_no_argument_leave_the_call_malformed(text: str) -> None:
    pending = get_dialect("toolformer").pending(text)
    assert pending is not None and pending.malformed


def test_the_loop_runs_a_call_whose_argument_holds_an_arrow() -> None:
    from side_effects import echoing

    got, echo = echoing()
    backend = FakeBackend(script=['Map: [echo("a ->', ' b") ->', " done"], chars_per_token=3)
    result = run_loop(backend, "Q: ", get_dialect("toolformer"), ToolRegistry([echo]), LoopConfig())
    assert got == ["a -> b"]  # was 'a -> Error: malformed call] b': the error spliced into the string
    assert result.text == 'Map: [echo("a -> b") -> ok] done'
    assert [(c.tool, c.args, c.result) for c in parse(result.text).calls] == [("echo", ("a -> b",), "ok")]


@pytest.mark.parametrize("chars", [MAX_CALL_CHARS + 10, 400_000])
def test_a_pending_call_past_the_cap_is_malformed_as_parse_reads_it(chars: int) -> None:
    # Lark read the whole pending call: 150 bytes of memory per character (1 MB took 237 MB), where parse reads 8 KiB.
    dialect = get_dialect("toolformer")
    text = "So [Calculator(" + "1+" * (chars // 2) + "1) ->"
    tracemalloc.start()
    try:
        pending = dialect.pending(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert pending is not None and pending.malformed and pending.calls == ()
    assert [(i.pos, i.message, i.expected) for i in pending.issues] == [
        (i.pos, i.message, i.expected) for i in dialect.parse(text).issues]
    assert peak < 2_000_000
    assert dialect.close(pending, ["Error: malformed call"]) == " Error: malformed call]"


def test_an_arrow_past_the_cap_of_a_call_is_prose() -> None:
    dialect = get_dialect("toolformer")
    far = "x" * MAX_CALL_CHARS
    assert dialect.pending(f"[Calculator(1) -> 1] {far} so ->") is None  # the call closed within its cap
    broken = f"[Calculator(1 {far} -> Error: malformed call] then ->"  # its first arrow was answered with an error
    assert dialect.pending(broken) is None
    assert dialect.pending(f"[Calculator(1 {far} {far} and ->").malformed  # type: ignore[union-attr]
    assert dialect.pending(f"{far} [Calculator(1) ->").calls[0].args == ("1",)  # type: ignore[union-attr]
    assert dialect.pending(f"{far}\n{far} ->") is None


def test_pauses_on_a_long_line_of_prose_arrows_take_linear_time() -> None:
    # Each pause collected every candidate from the line's start: 32,000 arrows on one line took 17.5 s.
    dialect = get_dialect("toolformer")
    text, started = "", time.process_time()
    for _ in range(16_000):
        text += "a [b] (c) ->"  # brackets and parentheses: the candidates' pattern reads the text near each arrow
        assert dialect.pending(text) is None
        text += " d "
    assert time.process_time() - started < 4.0  # ~1 s; ~9 s before


class _CountingNewlines:
    """base._NEWLINE, counting the characters its scans start on."""

    def __init__(self) -> None:
        self.scanned = 0
        self.pattern = base._NEWLINE

    def finditer(self, text: str, pos: int = 0):  # type: ignore[no-untyped-def]
        self.scanned += len(text) - pos
        return self.pattern.finditer(text, pos)


def test_locating_the_issues_of_many_malformed_pauses_reads_the_text_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each issue's line and column indexed the whole text again: 16,000 malformed calls, one a line, took 15 s.
    counting = _CountingNewlines()
    monkeypatch.setattr(base, "_NEWLINE", counting)
    dialect = get_dialect("toolformer")
    text = ""
    for n in range(1, 3_001):
        text += "x [f(2, 3 ->"
        pending = dialect.pending(text)
        assert pending is not None and pending.malformed and pending.issues[0].line == n
        text += "\n"
    assert counting.scanned < 3 * len(text)


@pytest.mark.parametrize("text", [
    '[WikiSearch("see [Calculator(2*3) ->', "[Python('x = [f(1) ->", '<API> echo("a [charge(5) →',
    '[echo(x, "[charge(5) -> ok] and [charge(6) ->',
])
def test_a_call_quoted_in_an_argument_being_written_is_not_pending(text: str) -> None:
    # Bare arguments hold no brackets, so a call inside another is in a quoted argument: text, not a call to run.
    assert get_dialect("toolformer").pending(text) is None


@pytest.mark.parametrize(("text", "tool", "args"), [
    ('[WikiSearch("see [Calculator(2*3) -> 6] more") ->', "WikiSearch", ("see [Calculator(2*3) -> 6] more",)),
    ('<API> WikiSearch("[f(1) -> 2]") →', "WikiSearch", ("[f(1) -> 2]",)),
    ("[WikiSearch(Joe's [Calculator(2*3) ->", "Calculator", ("2*3",)),  # an apostrophe in bare text quotes nothing
    ('[WikiSearch("a") and [Calculator(2*3) ->', "Calculator", ("2*3",)),  # the quote closed before the call
])
def test_the_arrow_after_a_quoted_call_ends_the_call_around_it(text: str, tool: str, args: tuple[str, ...]) -> None:
    toolformer = get_dialect("toolformer")
    pending = toolformer.pending(text)
    assert pending is not None and [(c.tool, c.args) for c in pending.calls] == [(tool, args)]
    closed = text + toolformer.close(pending, ["r"])
    assert [(c.tool, c.args, c.result) for c in parse(closed).calls][-1:] == [(tool, args, "r")]  # as parse reads it


def test_the_loop_runs_the_call_not_the_call_its_argument_quotes() -> None:
    """`[echo("To pay, call [charge(5) -> ...") ->`: the loop stopped at the quoted call's arrow while the string was
    open and ran `charge` there, mid-argument, though the finished text is one call, to `echo`."""
    from side_effects import charging, echoing

    ran, charge = charging()
    got, echo = echoing()
    written = 'Sure: [echo("To pay, call [charge(5) -> charged] and wait.") -> '
    backend = FakeBackend(script=lambda so_far: written[len(so_far) - 3:] or None, chars_per_token=3)
    result = run_loop(backend, "Q: ", get_dialect("toolformer"), ToolRegistry([charge, echo]), LoopConfig())
    assert ran == [] and got == ["To pay, call [charge(5) -> charged] and wait."]
    assert [c.tool for c in result.calls] == ["echo"]
    assert [(c.tool, c.result) for c in parse(result.text).calls] == [("echo", "ok")]


def _loop_and_parse(written: str) -> tuple[str, dict[tuple[str, int], str], dict[tuple[str, int], str | None]]:
    """The text the loop makes of `written` (stopping at each arrow, closing pending calls with results R0, R1, ...),
    the result it wrote for each call it ran, and what parse reads of that text: (tool, start) -> result."""
    toolformer = get_dialect("toolformer")
    text, ran, i = "", {}, 0
    while i < len(written):
        j = i + 1
        while j < len(written) and not (text + written[i:j]).endswith(toolformer.call_markers):
            j += 1
        text += written[i:j]
        i = j
        pending = toolformer.pending(text) if text.endswith(toolformer.call_markers) else None
        if pending is not None:
            result = f"R{len(ran)}"
            ran.update({(c.tool, c.span[0]): result for c in pending.calls})
            text += toolformer.close(pending, [result])
    return text, ran, {(c.tool, c.span[0]): c.result for c in toolformer.parse(text).calls}


@pytest.mark.parametrize(("written", "ran"), [
    ('[f(1, "a [Calculator(2*3) -> 6] b") -> ', ["f"]),
    ('[echo("see [f(") -> ', ["echo"]),  # the quoted candidate never closes
    ('[echo("x [g(1) -> y" 2) -> ', []),  # the call around it breaks after its string: g stays quoted text
    ("[echo(\"a [echo('b [Calculator(1) -> c') -> d\") -> ", ["echo"]),  # quoted twice over
    ('<API> echo("[Calculator(1) -> 1]") → ', ["echo"]),
    ('[echo("a") -> [Calculator(2*3) -> ', ["echo", "Calculator"]),  # the string closed first: both are calls
    # The quoted argument is the second, after one that quotes a finished call; an escaped quote inside it; the
    # quoted call left open, so the closing quote looks like its own; more quoted candidates than one or two.
    ('[echo("[Calculator(1+1) -> 2]", "[Calculator(2*3) -> 6]") -> ', ["echo"]),
    ("[WikiSearch('Joe\\'s [Calculator(2*3) -> 6]') -> ", ["WikiSearch"]),
    ('[echo("he said \\"[f(x) -> y\\"") -> ', ["echo"]),
    ('[echo("see [f(x") -> ', ["echo"]),
    ('[WikiSearch("how [Calculator(2*3 -> ") -> ', ["WikiSearch"]),
    ('[Python("xs = [int(a)] + [int(b)] + [int(c)] + [int(d)] + [int(e)]") -> ', ["Python"]),
    ("[e(\",\", '[W() -> ') -> ", ["e"]),
])
def test_the_loop_and_parse_agree_on_calls_quoted_in_arguments(written: str, ran: list[str]) -> None:
    text, asked, parsed = _loop_and_parse(written)
    assert sorted(tool for tool, _ in asked) == sorted(ran), text
    assert {key: r for key, r in parsed.items() if r is not None} == asked, text


@pytest.mark.parametrize("before", ["<API>\n", "<API>\r\n", "<API> \n", "a <API>\n", "<API>\n\n", "<API>\x0b"])
def test_a_bracket_call_after_an_api_tag_and_a_line_break_is_its_own_call(before: str) -> None:
    """`<API>` and the "[" of a tagged call are on one line (spaces or tabs between, the grammar's WS): after a line
    break the "[" opens a bracket call, which parse reads. The loop took that "[" for the tag's and ran nothing at
    its arrow, so the result the model wrote itself was parsed as the call's (`<API>\\n[Calculator(2*3)->6]`)."""
    dialect = get_dialect("toolformer")
    text = before + "[Calculator(2*3)->"
    pending = dialect.pending(text)
    assert pending is not None and pending.issues == ()
    assert [(c.tool, c.span) for c in pending.calls] == [("Calculator", (len(before), len(text)))]
    assert dialect.close(pending, ["6"]) == "6]"
    assert [(c.tool, c.result, c.span) for c in parse(text + "6]").calls] == [
        ("Calculator", "6", (len(before), len(text) + 2))]


@pytest.mark.parametrize("before", ["<API>", "<API> ", "<API>\t "])
def test_a_bracket_after_an_api_tag_on_its_line_is_the_tagged_calls(before: str) -> None:
    pending = get_dialect("toolformer").pending(before + "[Calculator(2*3)->")
    assert pending is not None and [c.span[0] for c in pending.calls] == [0]
    assert get_dialect("toolformer").close(pending, ["6"]) == "6]</API>"


def test_the_loop_runs_the_call_after_an_api_tag_line_not_the_one_its_result_holds() -> None:
    """`<API>\\n[WikiSearch(q)→ x [Calculator(2*3)->`: the loop ran nothing at WikiSearch's arrow, then ran
    Calculator, and parse gave WikiSearch (never run) the text after its arrow, Calculator's result in it."""
    text, asked, parsed = _loop_and_parse("<API>\n[WikiSearch(q)→ x [Calculator(2*3)->6]]")
    assert sorted(asked) == [("Calculator", 27), ("WikiSearch", 6)], text
    assert {key: r for key, r in parsed.items() if r is not None} == asked, text


def test_the_loop_and_parse_agree_around_api_tags_and_line_breaks() -> None:
    """Random pieces of calls, tags, arrows, line breaks and results the model writes itself: every call the loop ran
    parses with the result it wrote, and no other call has a result."""
    import random

    pieces = ["<API>", "<API>\n", "<API> \r\n", "</API>", "\n", " ", "[Calculator(2*3)", "[WikiSearch(q) ", "Calendar()",
              "->", "→", "6] ", "x"]
    rng = random.Random("toolformer-api-lines")
    ran = 0
    for _ in range(2000):
        written = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        text, asked, parsed = _loop_and_parse(written)
        assert {key: r for key, r in parsed.items() if r is not None} == asked, text
        ran += len(asked)
    assert ran >= 200


@pytest.mark.parametrize("opened", ["It is [WikiSearch(Paris) ->", "It is <API>[WikiSearch(Paris)]->",
                                    "It is <API> WikiSearch(Paris) →"])
def test_a_long_result_that_cites_in_brackets_is_read_as_the_calls(opened: str) -> None:
    """A result past the parser's 512-character window that held a paired bracket ("[1]", as search results cite)
    or any tagged one was read by the grammar within a budget of about a tenth of the text: its call was prose to
    parse (and to training's masks), though the loop had run it."""
    d = ToolformerDialect()
    result = "Paris [1] is the capital of France [2]. " * 150   # 6,000 characters
    text = opened + d.close(d.pending(opened), [result]) + " Next."
    parsed = d.parse(text)
    assert [(c.tool, c.args, c.result) for c in parsed.calls] == [("WikiSearch", ("Paris",), result.strip())]
    assert d.render(parsed) == text and not parsed.issues
    ((_, (begin, end)),) = d.result_spans(text)
    assert text[begin:end].removesuffix("]").removesuffix("</API>").strip() == result.strip()


@pytest.mark.parametrize("spelling", ["bracket", "tagged", "paper"])
def test_a_result_longer_than_a_call_parse_reads_is_cut_to_fit(spelling: str) -> None:
    """A tool may give 32,768 characters; parse reads no call past 8,192, so the call written around a longer result
    was prose to every reader (data-gen kept it, and training learned the result as the model's text)."""
    d = ToolformerDialect(spelling)
    long = "word " * 4_000
    written = d.render_call(ToolCall("WikiSearch", ("Paris",), long, (0, 0)))
    opened = d.write_calls([ToolCall("WikiSearch", ("Paris",), None, (0, 0))])
    closed = opened + d.close(d.pending(opened), [long])
    for text in (written, closed):
        (call,) = d.parse(f"A {text} b.").calls
        assert len(text) <= 8_192 and call.result is not None
        assert call.result.startswith("word word") and call.result.endswith("(cut: 20,000 characters in all)")


@pytest.mark.parametrize("text, result", [
    ("Ok <API>[Calculator(2*3) ]->6</API> done", "6"),
    ("Ok <API>[Calculator(2*3)->]->6</API> done", "6"),
    ("Ok <API>[Calculator(2*3)->5]->6</API> done", "6"),   # the tagged call's own result wins, as before
    ("Ok <API> [Calculator(2*3)] -> 6</API> done", "6"),
])
def test_a_tagged_call_whose_head_holds_more_than_a_pending_call_is_read(text: str, result: str) -> None:
    """Reading the result up to its closer, the head was read again as a pending call, which takes no inner arrow nor
    space before "]": parse raised Lark's UnexpectedToken on calls it had always read."""
    (call,) = parse(text).calls
    assert (call.tool, call.args, call.result) == ("Calculator", ("2*3",), result)
    assert get_dialect("toolformer").reply(text, keep_calls=False) == "Ok done"


@pytest.mark.parametrize("spelling", ["bracket", "tagged"])
@pytest.mark.parametrize("after", ["", " and then some prose." * 2_000, "\nAnother line." * 2_000],
                         ids=["short text", "long line", "long text"])
def test_a_call_with_an_argument_past_the_window_is_read(spelling: str, after: str) -> None:
    """An argument the fast reader leaves to the grammar (parentheses) longer than the 512-character window: the
    window's read and the whole line's were both charged, so a 600-character expression in a short text, and any
    past ~1,000 characters on a long line, was prose to parse (and to training's masks), said to be unclosed."""
    d = ToolformerDialect(spelling)
    for size in (600, 950):
        expression = "(1+2)" + "*(4+5)" * (size // 6)
        written = d.render_call(ToolCall("Calculator", (expression,), "5", (0, 0)))
        text = f"So {written} more.{after}"
        parsed = d.parse(text)
        assert [(c.tool, c.args, c.result) for c in parsed.calls] == [("Calculator", (expression,), "5")]
        assert not parsed.issues and d.render(parsed) == text
    expression = "(1+2)" + "*(4+5)" * 500
    if after:   # a long text lets the grammar read a long call, however long its line
        assert len(d.parse(f"So {d.render_call(ToolCall('Calculator', (expression,), '5', (0, 0)))}{after}").calls) == 1


def test_a_call_past_what_a_short_text_lets_the_grammar_read_is_not_said_to_be_unclosed() -> None:
    """Where the budget stops the read, the call may well be good: its issue says it was not read, at its start."""
    expression = "(1+2)" + "*(4+5)" * 500
    parsed = parse(f"So [Calculator({expression}) -> 5] more.")
    (issue,) = parsed.issues
    assert not parsed.calls and issue.pos == 3
    assert "is not read" in issue.message and "unexpected end" not in issue.message


def test_a_call_cut_from_between_two_words_leaves_them_apart() -> None:
    dialect = get_dialect("toolformer")
    assert dialect.reply("The total is[Calculator(3 * 4) -> 12]12 apples.", keep_calls=False) == "The total is 12 apples."
    assert dialect.reply("(x[Calculator(1) -> 1])", keep_calls=False) == "(x)"
