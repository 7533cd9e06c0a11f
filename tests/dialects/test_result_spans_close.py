"""result_spans against close(): the characters training leaves out of the loss are the ones the loop writes.

At inference the model writes up to its call marker and the loop writes `close()`'s text; training must learn the
first and not the second. Only a marker the model writes when it decodes freely (the arrow that asks for a Toolformer
result, hermes' `<tool_response>` and MOSS's `<|Results|>:` with which it says its calls are done) stays learned.
"""
from __future__ import annotations

import pytest

from toolcall.calls import KeywordArgs, ToolCall
from toolcall.dialects import get_dialect
from toolcall.dialects.toolformer import ToolformerDialect


def _covered(text: str, name: str) -> set[int]:
    return {i for _, (a, b) in get_dialect(name).result_spans(text) for i in range(a, b)}


def _calls(name: str, n: int) -> str:
    return get_dialect(name).write_calls([ToolCall(f"f{i}", KeywordArgs({"x": i})) for i in range(n)])


# (dialect, what the model wrote up to its call marker, results, what the model writes after, what of close() the
# model may still learn: the text before the marker's end)
CASES = [
    ("toolformer", "So [Calculator(3 * 4) ->", ["12"], " 12 apples.", ""),
    ("toolformer", "Asked [Calendar() ->", ["Today is Monday, January 30, 2023."], ". Then", ""),
    ("toolformer", "A list [QA(Which?) ->", ["[1, 2] and more"], " here.", ""),
    ("hermes", "<|im_start|>assistant\n" + _calls("hermes", 1), ['{"a": 1}'], "It is 1.<|im_end|>\n",
     "\n<tool_response>"),
    ("hermes", _calls("hermes", 3), ["1", "two\nlines", "{}"], "Done.", "\n<tool_response>"),
    ("llama3_json", _calls("llama3_json", 1), ["1"], "It is 1.", "<|eot_id|>"),
    ("pythonic", _calls("pythonic", 2), ["1", "2"], "Both.", "<|eot_id|>"),
    ("mistral", _calls("mistral", 2), ["1", "2"], "Both.", "[TOOL_RESULTS]"),
    ("moss", "<|Human|>: 2+3?<eoh>\n<|Inner Thoughts|>: add<eot>\n<|Commands|>: Calculate(\"2+3\")<eoc>", ["5"],
     " It is 5.<eom>\n", "\n<|Results|>:"),
    ("moss", "<|Human|>: hi<eoh>\n<|Inner Thoughts|>: none<eot>\n<|Commands|>: None<eoc>", [], " Hello.<eom>\n",
     "\n<|Results|>:"),
]


@pytest.mark.parametrize(("name", "model", "results", "after", "learned"), CASES)
def test_the_loop_s_closing_text_is_all_out_of_the_loss_but_the_marker(name: str, model: str, results: list[str],
                                                                      after: str, learned: str) -> None:
    dialect = get_dialect(name)
    pending = dialect.pending(model)
    assert pending is not None
    closing = dialect.close(pending, results)
    text = model + closing + after
    covered = _covered(text, name)
    written = set(range(len(model) + len(learned), len(model) + len(closing)))
    assert closing.startswith(learned)
    assert covered == written, (closing, sorted(covered - written), sorted(written - covered))


@pytest.mark.parametrize("spelling", ["bracket", "tagged", "paper"])
def test_every_toolformer_spelling_masks_its_closer(spelling: str) -> None:
    dialect = ToolformerDialect(spelling)
    text = "a " + dialect.render_call(ToolCall("Calculator", ("2 + 3",), "5")) + " b " + dialect.render_call(
        ToolCall("Calendar", (), "Today")) + "."
    spans = dialect.result_spans(text)
    assert [text[m[0]:m[1]] for m, _ in spans] == (["→", "→"] if spelling == "paper" else ["->", "->"])
    pieces = [text[a:b] for _, (a, b) in spans]
    closer = "]" if spelling == "bracket" else "</API>"
    assert [p.endswith(closer) for p in pieces] == [True, True]
    assert [p.removesuffix(closer).strip() for p in pieces] == ["5", "Today"]


def test_hermes_results_written_after_a_run_of_calls_are_one_span() -> None:
    """The corpus form (schema_tools: the calls, then their results): only the first opener is the model's."""
    text = (_calls("hermes", 2) + "\n<tool_response>\n1\n</tool_response>\n<tool_response>\n2\n</tool_response>\n"
            "Answer.")
    spans = get_dialect("hermes").result_spans(text)
    assert len(spans) == 1
    (marker, (a, b)), = spans
    assert text[marker[0]:marker[1]] == "<tool_response>" and text[b:] == "Answer."
    assert text[a:b] == "\n1\n</tool_response>\n<tool_response>\n2\n</tool_response>\n"


def test_hermes_results_apart_are_spans_of_their_own() -> None:
    """The loop's form (a result after each call): each opener follows a call the model wrote."""
    one, two = (get_dialect("hermes").write_calls([ToolCall(n, KeywordArgs({}))]) for n in ("f", "g"))
    text = one + "\n<tool_response>\n1\n</tool_response>\n" + two + "\n<tool_response>\n2\n</tool_response>\nEnd."
    spans = get_dialect("hermes").result_spans(text)
    assert [text[m[0]:m[1]] for m, _ in spans] == ["<tool_response>", "<tool_response>"]
    assert [text[a:b] for _, (a, b) in spans] == ["\n1\n</tool_response>\n", "\n2\n</tool_response>\n"]
