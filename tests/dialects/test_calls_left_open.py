"""A call whose string argument is still open where the model meant the call to end: the dialect says where the call is
broken for good (Toolformer: its line ends; hermes: a closing tag starting a line), the loop stops there, and pending
and parse agree that it is malformed, so the model reads an error instead of nothing."""
from __future__ import annotations

import random

import pytest

from toolcall.dialects import get_dialect
from toolcall.dialects.base import ReplyReader

TF = get_dialect("toolformer")
HERMES = get_dialect("hermes")

UNCLOSED = 'A [Calculator("3+4) -> then [Calculator(2+2) ->'


def test_a_toolformer_quote_open_at_an_arrow_breaks_the_call_when_its_line_ends() -> None:
    assert TF.pending(UNCLOSED) is None  # the arrows may still be text of the quoted argument
    assert TF.call_breaks(UNCLOSED, 0) == ("\n",)
    ended = UNCLOSED + " end.\n"
    pending = TF.pending(ended)
    assert pending is not None and pending.malformed and pending.calls == ()
    (issue,) = TF.parse(ended).issues
    assert pending.issues[0] == issue and issue.pos == UNCLOSED.index('"')
    closing = TF.close(pending, ["Error: malformed call"])
    assert closing == "Error: malformed call\n"   # on a line of its own: the call's line is over
    closed = ended + closing + "Then [Calculator(1+1) -> 2]."
    parsed = TF.parse(closed)
    assert [(c.tool, c.result) for c in parsed.calls] == [("Calculator", "2")] and parsed.issues == [issue]


@pytest.mark.parametrize("text", [
    'Say [echo("a -> b") and more',               # the quote closed on its line: a call still being written
    'Say [echo("a -> b") -> ok] and more',        # a whole call
    "Prose -> more prose",                        # no call
    'See [echo("no arrow in it',                  # open, but the model wrote no arrow inside it
    '[echo(x) -> "quoted result -> b',            # the quote is in the result, not an argument
])
def test_a_line_end_breaks_no_call_unless_an_arrow_lies_in_an_open_quoted_argument(text: str) -> None:
    assert TF.pending(text + "\n") is None or not TF.pending(text + "\n").malformed  # type: ignore[union-attr]
    if text.rstrip().endswith("->"):
        assert TF.call_breaks(text, 0) == ()


def test_prose_arrows_and_ordinary_calls_ask_for_no_line_break() -> None:
    for text in ("Prose -> ", "x [Calculator(2 * 3) ->", '[echo("a") ->', 'A [echo("x") -> y] -> '):
        assert TF.call_breaks(text, 0) == (), text


def test_a_hermes_string_open_at_a_closing_tag_that_starts_a_line_is_malformed_there() -> None:
    block = '<tool_call>\n{"name": "Calculator", "arguments": {"expression": "1+1}}\n</tool_call>'
    pending = HERMES.pending(block)
    assert pending is not None and pending.malformed and "not closed before the </tool_call>" in \
        pending.issues[0].message
    assert pending.issues[0].pos == block.index('"1+1')
    good = '<tool_call>\n{"name": "Calculator", "arguments": {"expression": "2+2"}}\n</tool_call>'
    text = block + HERMES.close(pending, ["Error: malformed call"]) + "then " + good
    after = HERMES.pending(text)
    assert after is not None and [c.tool for c in after.calls] == ["Calculator"]
    text += HERMES.close(after, ["4"])
    parsed = HERMES.parse(text)
    assert [(dict(c.args), c.result) for c in parsed.calls] == [({"expression": "2+2"}, "4")]
    assert [i.pos for i in parsed.issues] == [block.index('"1+1')]


@pytest.mark.parametrize(("body", "args"), [
    ('{"name": "f", "arguments": {"a": "x</tool_call>y"}}', {"a": "x</tool_call>y"}),    # the tag inside a line
    ('{"name": "f", "arguments": {"a": "line one\nline two"}}', {"a": "line one\nline two"}),
    ('{"name": "f", "arguments": {"a": "x\\n</tool_call>"}}', {"a": "x\n</tool_call>"}),  # an escaped line break
])
def test_hermes_strings_keep_their_line_breaks_and_tags_that_start_no_line(body: str, args: dict) -> None:
    text = f"<tool_call>\n{body}\n</tool_call>"
    parsed = HERMES.parse(text)
    assert parsed.issues == [] and [dict(c.args) for c in parsed.calls] == [args]


def test_a_hermes_string_that_runs_over_a_closing_tag_starting_a_line_is_broken_even_if_it_closes_later() -> None:
    """The block ends at that tag: what follows is not read as the rest of the call (a loop stopped there already)."""
    text = '<tool_call>\n{"name": "f", "arguments": {"a": "x\n</tool_call>\ny"}}\n</tool_call>'
    parsed = HERMES.parse(text)
    assert parsed.calls == [] and len(parsed.issues) == 1


# Bracket calls, quotes and line breaks (the loop and parse still read nested <API> tag soup apart now and then, as
# before: README, "What the loop ran and what a later parse of the reply pairs").
PIECES = ['[Calculator(', '"', "'", "3+4", ") ", "->", " x ", "]", "\n", " then ", '[echo("a -> b") -> c]', ")", "→",
          '[echo(x, "', "\\"]


def _loop(written: str) -> tuple[str, dict[tuple[str, int], str], list[int]]:
    """The text the loop makes of `written` (stopping at call markers and at the reader's breaks), the results it
    wrote for the calls it asked for, and where the issues are of the malformed calls it answered at a line break."""
    reader, text, i, n = ReplyReader(TF), "", 0, 0
    asked: dict[tuple[str, int], str] = {}  # by tool and where the call starts (its span ends at its arrow)
    malformed: list[int] = []
    while i < len(written):
        stops = TF.call_markers + reader.breaks
        j = i
        while j < len(written):
            j += 1
            if (text + written[i:j]).endswith(stops):
                break
        text += written[i:j]
        i = j
        if not text.endswith(stops):
            break
        pending = reader.pending(text)
        assert pending == TF.pending(text), text
        if pending is None:
            continue
        result = f"R{n}"
        n += 1
        if pending.malformed and text.endswith("\n"):  # stopped at a break (at an arrow, as before this change)
            malformed.append(pending.issues[0].pos)
        for call in pending.calls:
            asked[(call.tool, call.span[0])] = result
        text += TF.close(pending, [result])
    return text, asked, malformed


def test_the_loop_with_line_breaks_and_parse_agree_on_toolformer_replies() -> None:
    """Random replies of calls, quotes and line breaks: every call the loop ran parses with its own result, none it
    did not run gets one, and each call the loop found malformed at a line break is the same issue for parse."""
    rng = random.Random("toolformer-line-breaks")
    ran = broken = 0
    for _ in range(3000):
        written = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 14)))
        text, asked, malformed = _loop(written)
        parsed = TF.parse(text)
        got = {(c.tool, c.span[0]): c.result for c in parsed.calls}
        assert all(got.get(key) == want for key, want in asked.items()), text
        assert all(key in asked or result is None for key, result in got.items()), text
        issues = {issue.pos for issue in parsed.issues}
        assert all(pos in issues for pos in malformed), text
        ran += len(asked)
        broken += len(malformed)
    assert ran >= 200 and broken >= 30, (ran, broken)
