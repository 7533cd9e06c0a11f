"""Seeded random texts: parse→render is the identity, calls are found as generated, broken text never raises."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolcall.calls import ToolCall
from toolcall.dialects import get_dialect, parse, render
from toolcall.dialects.moss import render_commands, render_results

PROSE = ("the", "flag", "of", "Ghana", "is", "red", "[1]", "[citation needed]", "[a, b]", "[see](http://x.org)",
         "f(x)", "(or", "29%)", "ü", "→", "->", "<b>", "x]", "[", "'quoted'", '"q"', "a,b", "\n", "\n\n")
TOOLS = ("Calculator", "QA", "WikiSearch", "Calendar", "MT", "CALCULATOR", "calc_2")
ARGS = ("400 / 1400", "18 + 12 * 3", "Ghana flag red meaning", "Where was Joe Biden born?", "658,893", "(2+3)*4",
        "sûreté nucléaire", 'say "hi", ok', "a, b", "it's", "[x]")
RESULTS = ("0.29", "Scranton, Pennsylvania", "see [1] and [2 [3]]", 'a "quote"', "ünïcödé", "", "x, y, z")


def random_call(rng: random.Random) -> tuple[str, ToolCall]:
    """A call in a random spelling, and the call parse should find."""
    tool = rng.choice(TOOLS)
    args = tuple(rng.sample(ARGS, rng.randint(0, 3)))
    result = rng.choice((None, *RESULTS))
    spelling = rng.choice(("bracket", "tagged", "paper"))
    text = get_dialect("toolformer", spelling=spelling).render_call(ToolCall(tool, args, result))
    if rng.random() < 0.3:  # other arrows and spacing seen in the wild
        text = text.replace(" -> ", rng.choice(("->", " → ", "→", " ->"))).replace("]->", rng.choice(("] -> ", "]→")))
    return text, ToolCall(tool, args, result)


def random_text(rng: random.Random) -> tuple[str, list[ToolCall]]:
    parts: list[str] = []
    expected: list[ToolCall] = []
    for _ in range(rng.randint(0, 40)):
        if rng.random() < 0.2:
            text, call = random_call(rng)
            parts.append(text)
            expected.append(call)
        else:
            parts.append(rng.choice(PROSE))
    return " ".join(parts), expected


@pytest.mark.parametrize("seed", range(300))
def test_toolformer_round_trip(seed: int) -> None:
    rng = random.Random(seed)
    text, expected = random_text(rng)
    parsed = parse(text)
    assert parsed.issues == []
    assert [(c.tool, c.args, c.result) for c in parsed.calls] == [(c.tool, c.args, c.result) for c in expected]
    assert render(parsed) == text
    for call in parsed.calls:  # each span re-parses to the same call
        assert [(c.tool, c.args, c.result) for c in parse(text[call.span[0]:call.span[1]]).calls] == [
            (call.tool, call.args, call.result)]
    # Replaced with their own values, calls render canonically and parse back the same.
    parsed.calls[:] = [c.with_result(c.result) if i % 2 else ToolCall(c.tool, c.args, c.result, c.span)
                       for i, c in enumerate(parsed.calls)]
    renamed = [ToolCall(c.tool, c.args, "R" if c.result is None else c.result, c.span) for c in parsed.calls]
    parsed.calls[:] = renamed
    again = parse(render(parsed))
    assert [(c.tool, c.args, c.result) for c in again.calls] == [(c.tool, c.args, c.result) for c in renamed]


def random_moss_turn(rng: random.Random) -> tuple[str, list[ToolCall]]:
    calls = [ToolCall(rng.choice(("Search", "Calculate", "Solve", "Text2Image")), (rng.choice(ARGS),))
             for _ in range(rng.randint(0, 3))]
    results = [rng.choice(("one\ntwo", "42", "", "x, 'y'")) for _ in calls]
    text = (f"<|Human|>: {rng.choice(ARGS)}<eoh>\n<|Inner Thoughts|>: think [1]<eot>\n"
            f"<|Commands|>: {render_commands(calls)}<eoc>\n<|Results|>:\n{render_results(calls, results)}\n<eor>\n"
            f"<|MOSS|>: answer<sup><|1|></sup><eom>\n")
    return text, [c.with_result(r) for c, r in zip(calls, results)]


@pytest.mark.parametrize("seed", range(100))
def test_moss_round_trip(seed: int) -> None:
    rng = random.Random(seed)
    turns = [random_moss_turn(rng) for _ in range(rng.randint(1, 3))]
    text = "".join(t for t, _ in turns)
    parsed = parse(text, "moss")
    assert parsed.issues == []
    want = [c for _, calls in turns for c in calls]
    assert [(c.tool, c.args, c.result) for c in parsed.calls] == [(c.tool, c.args, c.result) for c in want]
    assert render(parsed) == text


BREAKERS = ("[", "]", "(", ")", '"', "'", ",", "<API>", "</API>", "->", "→", "\n", "<eoc>", "<eor>",
            "<|Commands|>:", "<|Results|>:", "=>", "<|1|>:", "\\", "None", " ")


@pytest.mark.parametrize("seed", range(400))
def test_broken_text_never_raises_in_lenient_mode(seed: int) -> None:
    rng = random.Random(1000 + seed)
    text, _ = random_text(rng) if seed % 2 else random_moss_turn(rng)
    chars = list(text)
    for _ in range(rng.randint(1, 6)):  # random cuts, deletions and insertions of syntax characters
        op = rng.random()
        at = rng.randint(0, len(chars))
        if op < 0.3 and chars:
            del chars[min(at, len(chars) - 1)]
        elif op < 0.8:
            chars[at:at] = list(rng.choice(BREAKERS))
        else:
            chars = chars[:at]
    broken = "".join(chars)
    for name in ("toolformer", "moss"):
        parsed = parse(broken, name)
        assert render(parsed) == broken
        for call in parsed.calls:
            assert 0 <= call.span[0] < call.span[1] <= len(broken)
        for issue in parsed.issues:
            assert 0 <= issue.pos <= len(broken)
            assert issue.line == broken.count("\n", 0, issue.pos) + 1
            assert issue.column == issue.pos - (broken.rfind("\n", 0, issue.pos) + 1) + 1
        dialect = get_dialect(name)
        for cut in range(0, len(broken) + 1, max(1, len(broken) // 7)):  # streaming prefixes
            prefix = broken[:cut]
            pending = dialect.pending(prefix)
            if pending is None:
                continue
            assert all(0 <= c.span[0] <= c.span[1] <= len(prefix) for c in pending.calls)
            assert all(0 <= i.pos <= len(prefix) for i in pending.issues)
            assert not (pending.calls and pending.issues)  # a pending call is either well-formed or malformed
            results = ["Error: malformed call"] if pending.malformed else ["r"] * len(pending.calls)
            closed = prefix + dialect.close(pending, results)
            if pending.calls:  # closing well-formed calls gives them their results
                assert [c.result for c in parse(closed, name).calls[-len(pending.calls):]] == results
        for (ma, mb), (ra, rb) in dialect.result_spans(broken):
            assert 0 <= ma <= mb == ra <= rb <= len(broken)


_ARG_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029\x85"),
                    max_size=20)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(args=st.lists(_ARG_TEXT, max_size=4), spelling=st.sampled_from(("bracket", "tagged", "paper")))
def test_canonical_arguments_parse_back(args: list[str], spelling: str) -> None:
    call = ToolCall("Tool", tuple(args), "ok")
    rendered = get_dialect("toolformer", spelling=spelling).render_call(call)
    parsed = parse(f"prose {rendered} prose")
    assert parsed.issues == []
    assert [(c.tool, c.args, c.result) for c in parsed.calls] == [("Tool", tuple(args), "ok")]
    moss_text = f"<|Commands|>: {render_commands([call])}<eoc>"
    assert parse(moss_text, "moss").calls[0].args == tuple(args)


@pytest.mark.parametrize("dialect", ["hermes", "llama3_json", "mistral"])
def test_a_rendered_json_call_whose_arguments_hold_markup_parses_back_to_itself(dialect: str) -> None:
    from toolcall.calls import KeywordArgs

    args = KeywordArgs({"q": "<tool_call> </tool_call> <|eot_id|> <|python_tag|> [TOOL_CALLS] [ARGS] </s> a < b"})
    text = get_dialect(dialect).render_call(ToolCall("f", args, None, (0, 0)))
    # Written as they were, the markers ended or opened calls: the text parsed back to no call and an issue.
    parsed = parse(text, dialect)
    assert [(c.tool, dict(c.args)) for c in parsed.calls] == [("f", dict(args))] and parsed.issues == []


@pytest.mark.parametrize("dialect", ["hermes", "llama3_json", "mistral"])
def test_a_number_json_cannot_write_is_a_config_error(dialect: str) -> None:
    from toolcall.calls import KeywordArgs
    from toolcall.errors import ConfigError

    with pytest.raises(ConfigError, match="a number JSON cannot write"):   # it wrote Infinity, which is no JSON
        get_dialect(dialect).render_call(ToolCall("f", KeywordArgs({"x": float("inf")}), None, (0, 0)))


@pytest.mark.parametrize(("dialect", "name", "args"), [
    ("toolformer", "my tool", ("1",)), ("toolformer", "1x", ()), ("moss", "my tool", ("1",)),
    ("pythonic", "a b", {}), ("pythonic", "f", {"a b": 1}),
])
def test_a_name_the_dialect_cannot_spell_is_not_rendered(dialect: str, name: str, args: object) -> None:
    from toolcall.calls import KeywordArgs
    from toolcall.errors import ConfigError

    made = KeywordArgs(args) if isinstance(args, dict) else args
    with pytest.raises(ConfigError, match="cannot render a call of"):   # it parsed back to no call and no issue
        get_dialect(dialect).render_call(ToolCall(name, made, None, (0, 0)))   # type: ignore[arg-type]


def test_a_lone_surrogate_in_a_mistral_argument_renders() -> None:
    from toolcall.calls import KeywordArgs

    text = get_dialect("mistral").render_call(ToolCall("f", KeywordArgs({"x": "\ud800"}), None, (0, 0)))
    assert text.startswith("[TOOL_CALLS]")   # hashing its id raised UnicodeEncodeError
