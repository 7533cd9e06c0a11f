"""What the loop relies on in the JSON-argument dialects: a result pairs only with a call that ran, repeated ids pair in
order, and every broken call the model finishes writing is pending (so the loop gives the model its error)."""
from __future__ import annotations

import time

import pytest

from toolcall.dialects import get_dialect
from toolcall.dialects.base import MAX_CALL_CHARS

HERMES_CALL = '<tool_call>\n{"name": "Calculator", "arguments": {"expression": "2+3"}}\n'


@pytest.mark.parametrize("ending", ["<|im_end|>\n", "<|im_end|>\n<|im_start|>user\n"])
def test_a_hermes_block_never_closed_takes_no_result(ending: str) -> None:
    # The model ended its reply without </tool_call> (the loop never paused: nothing ran) and wrote a response itself.
    text = HERMES_CALL + ending + "<tool_response>\n99\n</tool_response>\nIt is 99."
    parsed = get_dialect("hermes").parse(text)
    assert [(c.tool, dict(c.args), c.result) for c in parsed.calls] == [("Calculator", {"expression": "2+3"}, None)]
    assert [i.pos for i in parsed.issues] == [text.index("<tool_response>")]
    assert "never closed" in parsed.issues[0].message


def test_responses_after_an_unclosed_block_in_a_run_never_reach_it() -> None:
    # Two responses after a closed block and an unclosed one: the first answers the closed block (the format's order),
    # the second would answer the block that never ran, and is an issue.
    text = (HERMES_CALL + "</tool_call>\n" + HERMES_CALL.replace("2+3", "4+4") + "<|im_end|>\n"
            + "<tool_response>\n5\n</tool_response>\n<tool_response>\n99\n</tool_response>")
    parsed = get_dialect("hermes").parse(text)
    assert [c.result for c in parsed.calls] == ["5", None]
    assert [i.pos for i in parsed.issues] == [text.rindex("<tool_response>")]


def test_genuine_hermes_transcripts_pair_as_before() -> None:
    hermes = get_dialect("hermes")
    text = HERMES_CALL + "</tool_call>"
    pending = hermes.pending(text)
    assert pending is not None
    closed = text + hermes.close(pending, ["5"]) + "It is 5."
    parsed = hermes.parse(closed)
    assert [c.result for c in parsed.calls] == ["5"] and parsed.issues == []
    # An unclosed block with no response after it is still a call (Qwen's reply with its turn token kept).
    unclosed = hermes.parse(HERMES_CALL + "<|im_end|>\n<|im_start|>user\nok")
    assert [c.tool for c in unclosed.calls] == ["Calculator"] and unclosed.issues == []


def _loop_pairs(name: str, pieces: list[str]) -> tuple[list[tuple[str, str | None]], list[tuple[str, str | None]]]:
    """The loop's work on a reply the model writes in `pieces` (each ending where it stops at a call marker): at each
    stop, the pending calls closed with a result each (a malformed call with an error). Returns (tool, result) for each
    call the loop ran, and what a parse of the whole text pairs with the calls at those spans."""
    dialect = get_dialect(name)
    text, ran, written = "", [], 0
    for piece in pieces:
        text += piece
        pending = dialect.pending(text)
        assert pending is not None, text
        results = [f"result {written + i}" for i in range(len(pending.calls) or 1)]
        written += len(results)
        ran += [(c.span, c.tool, r) for c, r in zip(pending.calls, results)]
        text += dialect.close(pending, results)
    parsed = {c.span: (c.tool, c.result) for c in dialect.parse(text).calls}
    return [(tool, result) for _, tool, result in ran], [parsed.get(span, ("?", None)) for span, _, _ in ran]


GOOD_AND_BROKEN_ITEMS = {  # one group: a good call and an item that is not one (the loop runs the good call alone)
    "hermes": ("hermes", '<tool_call>[{"name": "f", "arguments": {}}, 3]</tool_call>'),
    "hermes-broken-first": ("hermes", '<tool_call>[{"name": 3}, {"name": "f", "arguments": {}}]</tool_call>'),
    "mistral": ("mistral", '[TOOL_CALLS][{"name": "f", "arguments": {}}, 3]'),
    "mistral-broken-first": ("mistral", '[TOOL_CALLS][3, {"name": "f", "arguments": {}}]'),
    "llama3_json": ("llama3_json", '{"name": "f", "parameters": {}}; {"name": 3, "parameters": {}}'),
}


@pytest.mark.parametrize("case", sorted(GOOD_AND_BROKEN_ITEMS))
def test_a_broken_item_beside_a_good_call_takes_none_of_its_result(case: str) -> None:
    # The broken item was a failed candidate of its own that took the result the loop wrote for the good call.
    name, text = GOOD_AND_BROKEN_ITEMS[case]
    ran, parsed = _loop_pairs(name, [text])
    assert ran == parsed == [("f", "result 0")]


UNCLOSED_BEFORE_GOOD = {  # a candidate never closed, then a good call: the loop runs the good call alone
    "hermes-open-object": ["hermes", '<tool_call>{"name": "f", <tool_call>{"name": "g", "arguments": {}}</tool_call>'],
    "hermes-empty": ["hermes", '<tool_call><tool_call>{"name": "g", "arguments": {}}</tool_call>'],
    "mistral": ["mistral", '[TOOL_CALLS]3[TOOL_CALLS][{"name": "g", "arguments": {}}]'],
}


@pytest.mark.parametrize("case", sorted(UNCLOSED_BEFORE_GOOD))
def test_an_unclosed_candidate_before_a_good_call_takes_none_of_its_result(case: str) -> None:
    name, text = UNCLOSED_BEFORE_GOOD[case]
    ran, parsed = _loop_pairs(name, [text])
    assert ran == parsed == [("g", "result 0")]
    # A broken call the loop answers (it ends the text) still takes its error, and the next call its own result.
    broken = '<tool_call>{"name": 3}</tool_call>' if name == "hermes" else '[TOOL_CALLS][{"name": 3}]'
    ran, parsed = _loop_pairs(name, [broken, text])
    assert ran == parsed == [("g", "result 1")]


STRAY_OPENERS = {  # the model wrote a result opener of its own, never closed, before its call
    "hermes": ("hermes", 'Looking it up. <tool_response> <tool_call>{"name": "g", "arguments": {}}</tool_call>'),
    "mistral-list": ("mistral", 'Looking it up. [TOOL_RESULTS] [TOOL_CALLS][{"name": "g", "arguments": {}}]'),
    "mistral-args": ("mistral", 'Looking it up. [TOOL_RESULTS] [TOOL_CALLS]g[ARGS]{}'),
}


@pytest.mark.parametrize("case", sorted(STRAY_OPENERS))
def test_a_stray_result_opener_does_not_swallow_the_calls_after_it(case: str) -> None:
    # The closer close() writes completed the stray opener, so one "result" held the call and it had none.
    name, text = STRAY_OPENERS[case]
    ran, parsed = _loop_pairs(name, [text])
    assert ran == parsed == [("g", "result 0")]


@pytest.mark.parametrize("spelling", ["list", "args"])
def test_mistral_calls_sharing_an_id_pair_in_order(spelling: str) -> None:
    mistral = get_dialect("mistral")
    if spelling == "list":
        text = ('[TOOL_CALLS][{"name": "Calculator", "arguments": {"expression": "2+3"}, "id": "a1B2c3D4e"}, '
                '{"name": "Calculator", "arguments": {"expression": "4+4"}, "id": "a1B2c3D4e"}]')
    else:
        text = ('[TOOL_CALLS]Calculator[CALL_ID]a1B2c3D4e[ARGS]{"expression": "2+3"}'
                '[TOOL_CALLS]Calculator[CALL_ID]a1B2c3D4e[ARGS]{"expression": "4+4"}')
    pending = mistral.pending(text)
    assert pending is not None and len(pending.calls) == 2
    closed = text + mistral.close(pending, ["5", "8"]) + " ok"
    assert [(c.args["expression"], c.result) for c in mistral.parse(closed).calls] == [("2+3", "5"), ("4+4", "8")]
    # A later call reusing the id takes the result written after it.
    again = closed + '[TOOL_CALLS][{"name": "Calculator", "arguments": {"expression": "1+1"}, "id": "a1B2c3D4e"}]'
    again += mistral.close(mistral.pending(again), ["2"])  # type: ignore[arg-type]
    assert [c.result for c in mistral.parse(again).calls] == ["5", "8", "2"]


def test_many_calls_sharing_an_id_pair_in_order_in_linear_time() -> None:
    mistral = get_dialect("mistral")
    n = 1000  # one list of them, within MAX_CALL_CHARS
    calls = ",".join(f'{{"name": "f", "arguments": {{"i": {i}}}, "id": "a1B2c3D4e"}}' for i in range(n))
    text = f"[TOOL_CALLS][{calls}]"
    text += "".join(f'[TOOL_RESULTS]{{"content": "{i}", "call_id": "a1B2c3D4e"}}[/TOOL_RESULTS]' for i in range(n))
    assert [c.result for c in mistral.parse(text).calls] == [str(i) for i in range(n)]


DEEP = "[" * 150 + "1" + "]" * 150
LONG = "1]" * (MAX_CALL_CHARS // 2 + 20_000)  # brackets inside the string: a stop at each, none ends the call
BROKEN_CALLS = {
    "pythonic-deep": ("pythonic", f"[Calculator(expression={DEEP})]", "nested deeper"),
    "pythonic-long": ("pythonic", f"[Calculator(expression='{LONG}')]", ""),
    "pythonic-long-plain": ("pythonic", f"[Calculator(expression='{'1' * 100_000}')]", "longer than"),
    "mistral-deep-args": ("mistral", f'[TOOL_CALLS]Calculator[ARGS]{{"expression": {DEEP}}}', "nested deeper"),
    "mistral-deep-list": ("mistral", f'[TOOL_CALLS][{{"name": "Calculator", "arguments": {{"e": {DEEP}}}}}]',
                          "nested deeper"),
    "mistral-long": ("mistral", f'[TOOL_CALLS]Calculator[ARGS]{{"expression": "{LONG}"}}', ""),
    "mistral-long-list": ("mistral", f'[TOOL_CALLS][{{"name": "C", "arguments": {{"e": "{"1" * 100_000}"}}}}]', ""),
    "hermes-long": ("hermes", f'<tool_call>\n{{"name": "C", "arguments": {{"e": "{LONG}"}}}}\n</tool_call>', ""),
    "hermes-long-plain": ("hermes", f'<tool_call>{{"name": "C", "arguments": {{"e": "{"1" * 100_000}"}}}}</tool_call>',
                          ""),
    "hermes-deep": ("hermes", f'<tool_call>{{"name": "C", "arguments": {{"e": {DEEP}}}}}</tool_call>', "nested deeper"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_CALLS))
def test_a_broken_call_is_pending_once_written_and_not_before(case: str) -> None:
    name, text, message = BROKEN_CALLS[case]
    dialect = get_dialect(name)
    pending = dialect.pending(text)
    assert pending is not None and pending.malformed and message in pending.issues[0].message
    closed = text + dialect.close(pending, ["Error: malformed call"])
    assert dialect.parse(closed).calls == []
    # Stopped at a marker inside the call, still being written: nothing pending yet.
    for cut in (len(text) // 2, len(text) - 3, len(text) - 1):
        prefix = text[:cut]
        prefix = prefix[:prefix.rfind(dialect.call_markers[0]) + len(dialect.call_markers[0])]
        if prefix:
            assert dialect.pending(prefix) is None, cut


def test_pending_walks_a_long_run_of_calls_in_linear_time() -> None:
    # Handed-off calls stay unanswered, so the run that ends the text grows with each; pending looked every call up in
    # the list of answers (16,000 calls: ~7 s), and must not.
    hermes = get_dialect("hermes")
    text = "\n".join(['<tool_call>\n{"name": "C", "arguments": {"e": "1"}}\n</tool_call>'] * 16_000)
    started = time.perf_counter()
    pending = hermes.pending(text)
    assert pending is not None and len(pending.calls) == 16_000
    assert time.perf_counter() - started < 3.0
