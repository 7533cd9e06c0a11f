"""What the loop ran and what a later parse pairs agree: every call the loop asked for carries its own result.

The loop stops where the text ends with a call marker, asks `pending` for the calls there, and appends `close` with one
result per call (an error text for a malformed one). Parsing the final text must then give each of those calls the
result the loop wrote for it, and no result to a call the loop never asked for. Model output here is random pieces
of calls, broken calls, stray result markup and prose.
"""
from __future__ import annotations

import random

import pytest

from toolcall.dialects import get_dialect

PIECES = {
    "hermes": ['<tool_call>{"name": "f", "arguments": {}}</tool_call>', '<tool_call>', '</tool_call>', '{"name": "f", "arguments": {}}', '{"name": "g", "arguments": {"a": 1}}',
               '[{"name": "h", "arguments": {}}, 3]', '{"name": ', '3', '\n', ' ', 'hi ', '<tool_response>',
               '</tool_response>', '"x', '<|im_end|>', '[', ']', '}'],
    "mistral": ['[TOOL_CALLS][{"name": "g", "arguments": {"a": 1}}]', '[TOOL_CALLS]', '[{"name": "f", "arguments": {}}]', '[{"name": "f", "arguments": {}}, 3]', 'g[ARGS]{}',
                'g[ARGS]{"a": ', '{', '}', ']', '[', '"x', ' ', 'hi ', '[TOOL_RESULTS]', '[/TOOL_RESULTS]', '3', ','],
    "llama3_json": ['{"name": "f", "parameters": {}}', '; ', '{"name": 3, "parameters": {}}', '<|python_tag|>', '{',
                    '}', ' ', 'hi ', '"x', '<|eot_id|>', '{"name": '],
    "pythonic": ['[f(x=1)]', '[g(), h(y="a]")]', '[f(1)]', '[f(x=', ']', '[', ' ', 'hi ', '"', "'", '\n',
                 '<|python_tag|>', '<|eot_id|>', '[f(x=[1]', ', g()]'],
}


def _loop_then_parse(name: str, written: str) -> tuple[str, dict[tuple[str, tuple[int, int]], str], list[str]]:
    """The text the loop makes of `written`; the result it wrote for each call it asked for; what parse disagrees on."""
    dialect = get_dialect(name)
    text, asked, n, i = "", {}, 0, 0
    while i < len(written):
        j = i
        while j < len(written):
            j += 1
            if (text + written[i:j]).endswith(dialect.call_markers):
                break
        text += written[i:j]
        i = j
        if not text.endswith(dialect.call_markers):
            break
        pending = dialect.pending(text)
        if pending is None:
            continue
        results = [f"R{n + k}" for k in range(max(1, len(pending.calls)))]
        n += len(results)
        for call, result in zip(pending.calls, results):
            asked[(call.tool, call.span)] = result
        text += dialect.close(pending, results)
    got = {(c.tool, c.span): c.result for c in dialect.parse(text).calls}
    wrong = [f"{key}: ran with {want!r}, parsed with {got.get(key, 'no such call')!r}"
             for key, want in asked.items() if got.get(key, "no such call") != want]
    wrong += [f"{key}: never ran, parsed with {result!r}" for key, result in got.items()
              if key not in asked and result is not None]
    return text, asked, wrong


@pytest.mark.parametrize("name", sorted(PIECES))
def test_every_call_the_loop_ran_parses_with_its_own_result(name: str) -> None:
    rng = random.Random(f"loop-pairing:{name}")
    ran = 0
    for _ in range(1500):
        written = "".join(rng.choice(PIECES[name]) for _ in range(rng.randint(1, 14)))
        text, asked, wrong = _loop_then_parse(name, written)
        assert not wrong, (text, wrong)
        ran += len(asked)
    assert ran >= 200  # the pieces made calls the loop ran, not only prose
