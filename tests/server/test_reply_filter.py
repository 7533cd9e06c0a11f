"""The reply filter: calls cut (or kept) under any chunking, stop sequences, a prefill's open call never leaked."""
from __future__ import annotations

import random

import pytest

from toolcall.server.reply_filter import ReplyFilter


def feed(pieces: list[tuple[str, str]], keep: bool = False, stops: tuple[str, ...] = ()) -> str:
    """Run (kind, text) events through a ReplyFilter: kind is "t" text, "cut" a call to cut, "keep" a kept call."""
    f = ReplyFilter("[", keep, stops)
    out = ""
    for kind, text in pieces:
        if kind == "t":
            out += f.text(text)
        elif kind == "cut":
            out += f.cut_call()
        elif kind == "keep":
            out += f.keep_call()
        if f.stopped:
            break
    return out + f.finish()


def chop(text: str, rng: random.Random) -> list[tuple[str, str]]:
    pieces, i = [], 0
    while i < len(text):
        n = rng.randint(1, 6)
        pieces.append(("t", text[i:i + n]))
        i += n
    return pieces


@pytest.mark.parametrize("seed", range(20))
def test_filter_cuts_calls_under_any_chunking(seed: int) -> None:
    rng = random.Random(seed)
    events = chop("  The answer is [Calculator(2 * 3) ->", rng) + [("cut", "")] + chop(" 6, and [1] stays.\n", rng)
    assert feed(events) == "The answer is 6, and [1] stays."


@pytest.mark.parametrize("seed", range(10))
def test_filter_keeps_markup_when_asked(seed: int) -> None:
    rng = random.Random(seed)
    events = chop("It is [Calculator(2 * 3) ->", rng) + [("keep", ""), ("t", " 6]")] + chop(" 6.", rng)
    assert feed(events, keep=True) == "It is [Calculator(2 * 3) -> 6] 6."


def test_filter_holds_a_possible_call_until_it_resolves() -> None:
    f = ReplyFilter("[", False, ())
    assert f.text("See [Calc") == "See"
    assert f.text("ulator(1) ->") == ""
    assert f.cut_call() == ""
    assert f.text(" done\nnext [x] line") + f.finish() == " done\nnext [x] line"


@pytest.mark.parametrize("seed", range(10))
def test_filter_stop_sequence_under_any_chunking(seed: int) -> None:
    events = chop("one two STOP three", random.Random(seed))
    assert feed(events, stops=("STOP",)) == "one two"


def test_filter_cuts_a_call_by_its_span_after_an_earlier_cut() -> None:
    # Session offsets: the prompt is 10 characters; the loop's closing text of the first call is skipped.
    f = ReplyFilter("[", False, (), one_line_calls=True, start=10)
    out = f.text("A [f(1) ->")
    out += f.cut_call(12)
    f.skip(" 1]")
    out += f.text(" then [g(2) ->")
    out += f.cut_call(10 + len("A [f(1) -> 1] then "))
    f.skip(" 2]")
    out += f.text(" end.") + f.finish()
    assert out == "A then end."


def test_filter_without_an_opener_cuts_a_pythonic_call_from_its_start() -> None:
    f = ReplyFilter("[", False, ())
    out = f.text("[get(city=[") + f.text("'Oslo'])]")
    out += f.cut_call(0)
    assert out + f.finish() == ""


def test_a_prefill_ending_inside_a_call_leaks_nothing() -> None:
    tail = "It is [Calculator(6 * 7"
    f = ReplyFilter("[", False, (), one_line_calls=True, start=100)
    f.prime(tail)
    out = f.text(") ->")
    out += f.cut_call(100 - len("[Calculator(6 * 7"))
    f.skip(" 42]")
    out += f.text(" 42 in all.") + f.finish()
    assert out == "42 in all."


def test_a_continuation_after_answered_calls_streams_at_once() -> None:
    """The tail the client asked to continue ends with its calls and their results: nothing is open there, so the
    model's text is released as it comes (held as an open call, the whole answer came at the end, in one piece)."""
    tail = 'Checking. <tool_call>\n{"name": "w", "arguments": {}}\n</tool_call>\n<tool_response>\nsunny\n</tool_response>\n'
    answered = ReplyFilter("<tool_call>", False, (), start=0)
    answered.prime(tail, answered=len(tail))
    assert [answered.text(piece) for piece in (" It is", " sunny", " today.")] == ["It is", " sunny", " today."]
    prefilled = ReplyFilter("<tool_call>", False, (), start=0)
    prefilled.prime('Checking. <tool_call>\n{"name": "w", ', answered=0)  # the client's own open call
    assert prefilled.text('"arguments": {}}') == ""


def test_stops_end_only_the_models_own_shown_text() -> None:
    """A stop sequence inside a call's markup ended the reply before the call could run ('(17' gave 'Compute
    [Calculator'), and one inside a kept tool result ended it at text the model never wrote."""
    f = ReplyFilter("[", False, ("(17",))
    out = f.text("Compute [Calculator") + f.text("(17 * 23) ->")
    assert not f.stopped
    out += f.cut_call()
    f.skip(" 391]")
    out += f.text(" done (17 cows).") + f.finish()
    assert out == "Compute done" and f.stopped  # the stop in the prose after the call still ends the reply
    kept = ReplyFilter("[", True, ("39",))
    out = kept.text("It is [Calculator(17 * 23) ->") + kept.keep_call() + kept.text(" 391]", tool=True)
    out += kept.text(" so 3") + kept.text("9 then.") + kept.finish()
    assert out == "It is [Calculator(17 * 23) -> 391] so" and kept.stopped  # a stop split across deltas is found


@pytest.mark.parametrize("dialect, text, shown", [
    ("pythonic", "See [1] and [get_weather(cities=['Par", "See [1] and"),
    ("pythonic", "Lists like [1, 2] and [a, b", "Lists like [1, 2] and [a, b"),
    ("hermes", 'Let me check. <tool_call>\n{"name": "get_weather", "argu', "Let me check."),
    ("llama3_json", '{"name": "get_weather", "parameters": {"city": "Pa', ""),
    ("toolformer", "It is [see above] and [Calculator(17 * ", "It is [see above] and"),
    # Cut right after "<tool_call>" or inside a call begun, the markup was the reply's content too.
    ("hermes", "I will look it up.\n<tool_call>", "I will look it up."),
    ("hermes", "I will look it up.\n<tool_call>\n", "I will look it up."),
    ("pythonic", "I will look it up. [get_weather(", "I will look it up."),
    ("pythonic", "I will look it up. [ weather . get (city=", "I will look it up."),
    ("toolformer", "I will look it up. [get_weather(Par", "I will look it up."),
    ("llama3_json", 'Sure. {"name": "get_we', "Sure."),
    ("pythonic", "See [1, 2", "See [1, 2"),
    ("toolformer", "See [the docs", "See [the docs"),
    ("llama3_json", 'Sure. {"a": 1', 'Sure. {"a": 1'),
    # A word or a bracket alone at the cut may be prose as well as a call's start: it stays.
    ("toolformer", "The total is 42 [Note", "The total is 42 [Note"),
    ("pythonic", "The total is [x2", "The total is [x2"),
    ("toolformer", "Answer: 7 [", "Answer: 7 ["),
    ("llama3_json", 'Sure. {"na', 'Sure. {"na'),
])
def test_a_call_the_reply_ended_in_is_cut_and_prose_brackets_stay(dialect: str, text: str, shown: str) -> None:
    """max_tokens striking inside a call used to give its markup as the reply's content."""
    from toolcall.dialects import get_dialect

    d = get_dialect(dialect)
    for keep in (False, True):
        f = ReplyFilter(d.call_start or d.open_marker, keep, (), one_line_calls=d.one_line_calls,
                        may_open=d.may_open_call, prefixes=d.call_prefixes)
        out = "".join(f.text(c) for c in text) + f.finish(d.begins_call)
        assert out == (text.rstrip() if keep else shown)


@pytest.mark.parametrize("dialect", ["pythonic", "toolformer"])
def test_a_bracket_that_cannot_open_a_call_streams_at_once_and_its_stops_apply(dialect: str) -> None:
    """"[1]" in prose was held back as a possible call to the end of its line (toolformer) or of the reply
    (pythonic): the reply came in one piece at the end, and a stop sequence after it was never applied."""
    from toolcall.dialects import get_dialect

    d = get_dialect(dialect)

    def run(text: str, stops: tuple[str, ...] = ()) -> tuple[list[str], ReplyFilter]:
        f = ReplyFilter(d.call_start or d.open_marker, False, stops, one_line_calls=d.one_line_calls,
                        may_open=d.may_open_call)
        return [f.text(c) for c in text], f

    released, _ = run("See [1] and [see the docs] for more, much more.")
    assert "".join(released[:len("See [1] and [see the docs] for")]) == "See [1] and [see the docs] for"
    released, f = run("See [1] for details. STOP here, and more.", ("STOP",))
    assert f.stopped and "".join(released) == "See [1] for details."
    released, f = run('Action Input: ["Paris", "Rome"]\nObservation: made up', ("\nObservation:",))
    assert f.stopped and "".join(released) == 'Action Input: ["Paris", "Rome"]'
    held, f = run("See [f(x) for the list")   # may still be a call: held to the end, as before
    assert "".join(held) == "See" and not f.stopped


def test_a_stop_in_text_held_to_the_end_ends_the_reply_there() -> None:
    f = ReplyFilter("[", False, ("STOP",))
    out = "".join(f.text(c) for c in "See [f(x) STOP and more")
    assert out == "See" and not f.stopped
    assert f.finish() == " [f(x)" and f.stopped


def test_a_llama3_json_call_in_any_key_order_is_held_and_prose_braces_are_not() -> None:
    """After the python tag a call's keys come in any order: one that began with "parameters" was released as prose
    (its JSON shown in content as well as handed back)."""
    from toolcall.dialects import get_dialect

    d = get_dialect("llama3_json")
    f = ReplyFilter(d.call_start, False, (), may_open=d.may_open_call)
    out = "".join(f.text(c) for c in 'Sure. {"parameters": {"city": "Paris"}, "name": "get_weather"}')
    assert out == "Sure."
    f = ReplyFilter(d.call_start, False, (), may_open=d.may_open_call)
    assert "".join(f.text(c) for c in "int f() { return 1; } and more") == "int f() { return 1; } and more"


@pytest.mark.parametrize("dialect, text, shown", [
    ("pythonic", "Sure. <|python_tag|>[get_weather(city='Paris')]", "Sure."),
    ("pythonic", "Sure: [ get_weather(city='Paris')]", "Sure:"),
    ("llama3_json", 'Sure. <|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}', "Sure."),
    ("toolformer", "It is <API>[get_weather(Paris)]->", "It is"),
])
def test_the_markup_a_call_begins_with_is_cut_with_it(dialect: str, text: str, shown: str) -> None:
    """Llama's python tag, a tagged Toolformer call's <API> and the space after a pythonic list's bracket were left
    in the reply's content when the call was cut (handed back, or run by the server)."""
    from toolcall.dialects import get_dialect

    d = get_dialect(dialect)
    for chunk in (1, 3, len(text)):
        f = ReplyFilter(d.call_start or d.open_marker, False, (), one_line_calls=d.one_line_calls,
                        open_marker=d.open_marker, grouped=d.named_arguments, may_open=d.may_open_call,
                        prefixes=d.call_prefixes)
        out = "".join(f.text(text[i:i + chunk]) for i in range(0, len(text), chunk))
        start = d.parse(text).calls[0].span[0]
        assert out + f.cut_call(start) + f.finish() == shown


def test_a_prose_bracket_before_a_hermes_block_stays() -> None:
    from toolcall.dialects import get_dialect

    d = get_dialect("hermes")
    text = 'Options: [\n<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>'
    f = ReplyFilter(d.open_marker, False, (), open_marker=d.open_marker, grouped=d.named_arguments,
                    may_open=d.may_open_call, prefixes=d.call_prefixes)
    out = "".join(f.text(c) for c in text)
    assert out + f.cut_call(d.parse(text).calls[0].span[0]) + f.finish() == "Options: ["


def test_json_in_llama3_json_prose_streams_from_its_first_key_that_no_call_has() -> None:
    """Held while any object might be a call, a config in prose came at the reply's end."""
    from toolcall.dialects import get_dialect

    d = get_dialect("llama3_json")
    text = 'Here is a config: {"host": "a", "port": 1} and then ' + "word " * 20
    f = ReplyFilter(d.call_start, False, (), may_open=d.may_open_call, prefixes=d.call_prefixes)
    released = [f.text(c) for c in text]
    assert "".join(released[:len('Here is a config: {"host": "a"')]) == 'Here is a config: {"host": "a"'


def test_a_malformed_call_already_shown_as_prose_cuts_nothing_else() -> None:
    """A Toolformer call found malformed at its line's end was released as prose there; cut from the last "[" still
    held, the reply lost prose after it ('[x' and the line break) and kept the call's head."""
    f = ReplyFilter("[", False, ("ZZZZZZZZ",), one_line_calls=True, may_open=get_toolformer().may_open_call)
    out = "".join(f.text(c) for c in 'Try [Calculator("a -> b [x\n') + f.cut_call()
    assert out + f.text("Next line.") + f.finish() == 'Try [Calculator("a -> b [x\nNext line.'


@pytest.mark.parametrize("dialect", ["pythonic", "llama3_json"])
def test_a_python_tag_the_token_limit_struck_after_is_cut(dialect: str) -> None:
    from toolcall.dialects import get_dialect

    d = get_dialect(dialect)
    f = ReplyFilter(d.call_start, False, (), may_open=d.may_open_call, prefixes=d.call_prefixes)
    assert "".join(f.text(c) for c in "Sure. <|python_tag|>") + f.finish(d.begins_call) == "Sure."


def get_toolformer():  # type: ignore[no-untyped-def]
    from toolcall.dialects import get_dialect

    return get_dialect("toolformer")
