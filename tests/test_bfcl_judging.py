"""toolcall.bfcl judges a reply as BFCL's own harness does: names as written, values as decoded, and a reply the AST
checker cannot read is a verdict on that item, never the end of the run."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from toolcall.backends.fake import FakeBackend
from toolcall.bfcl import (
    BfclItem,
    ast_judge,
    evaluate_bfcl,
    format_bfcl_table,
    judge_reply,
    load_bfcl_items,
    model_output,
)
from toolcall.dialects import get_dialect
from toolcall.errors import ConfigError

pytestmark = pytest.mark.skipif(importlib.util.find_spec("bfcl_eval") is None,
                                reason="bfcl-eval is not installed (pip install --no-deps bfcl-eval; .ci/run installs it)")

# Hand-made functions in BFCL's format (not BFCL's own).
KETTLE = {"name": "kitchen.boil_water", "description": "Boil water in the kettle.",
          "parameters": {"type": "dict", "properties": {"litres": {"type": "float", "description": "How much."}},
                         "required": ["litres"]}}
SHELF = {"name": "label_shelves", "description": "Label shelves by number.",
         "parameters": {"type": "dict", "properties": {
             "labels": {"type": "dict", "properties": {}, "description": "Shelf number -> label."}},
             "required": ["labels"]}}
DEAL = {"name": "deal", "description": "Deal cards.",
        "parameters": {"type": "dict", "properties": {
            "cards": {"type": "array", "items": {"type": "dict", "properties": {"rank": {"type": "string"}}},
                      "description": "The cards; the whole deck when left out."}},
            "required": []}}


def item(category: str, functions: list[dict[str, Any]], answer: list[dict[str, Any]]) -> BfclItem:
    return BfclItem(f"{category}_0", category, ({"role": "user", "content": "Please do it."},), tuple(functions),
                    tuple(answer))


def hermes(name: str, args: dict[str, Any]) -> str:
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": args})}\n</tool_call>'


@pytest.fixture(scope="module")
def judge() -> Any:
    return ast_judge()


def test_a_dotted_name_written_with_underscores_is_another_function(judge: Any) -> None:
    # BFCL offers a function under its own name to every model that is not told otherwise (its prompting handlers
    # and the local FC ones: model_config.py, underscore_to_dot=False), and its checker then looks for that name.
    it = item("simple", [KETTLE], [{"kitchen.boil_water": {"litres": [1.5]}}])
    right = judge_reply(it, hermes("kitchen.boil_water", {"litres": 1.5}), get_dialect("hermes"), judge)
    assert (right.valid, right.kind) == (True, "ok")
    renamed = judge_reply(it, hermes("kitchen_boil_water", {"litres": 1.5}), get_dialect("hermes"), judge)
    assert (renamed.valid, renamed.kind) == (False, "wrong_function")
    assert renamed.calls == [{"kitchen_boil_water": {"litres": 1.5}}]
    assert renamed.error_type == "simple_function_checker:wrong_func_name"


def test_a_dict_key_keeps_its_type(judge: Any) -> None:
    # BFCL's decoder reads `{1: 'top'}` with the int key 1; its checker does not take that for the answer's "1".
    it = item("simple", [SHELF], [{"label_shelves": {"labels": [{"1": ["top"]}]}}])
    pythonic = get_dialect("pythonic")
    assert model_output(pythonic.parse("[label_shelves(labels={1: 'top'})]"), it) == [
        {"label_shelves": {"labels": {1: "top"}}}]
    wrong = judge_reply(it, "[label_shelves(labels={1: 'top'})]", pythonic, judge)
    assert (wrong.valid, wrong.kind) == (False, "wrong_args")
    assert judge_reply(it, "[label_shelves(labels={'1': 'top'})]", pythonic, judge).valid


@pytest.mark.parametrize("cards", [[1], ["ace"], [None]])
def test_a_reply_the_checker_raises_on_is_judged_wrong_with_the_error_kept(judge: Any, cards: list[Any]) -> None:
    # The answer lets `cards` be left out (""), so the checker skips its type check of the items and then reads each
    # one as an object: `[1]` raised AttributeError out of the whole run.
    it = item("simple", [DEAL], [{"deal": {"cards": [[{"rank": ["ace"]}], ""]}}])
    result = judge_reply(it, hermes("deal", {"cards": cards}), get_dialect("hermes"), judge)
    assert (result.valid, result.kind, result.error_type) == (False, "checker_error", "checker_error:AttributeError")
    assert result.error and "AttributeError" in result.error[0]
    assert judge_reply(it, hermes("deal", {"cards": [{"rank": "ace"}]}), get_dialect("hermes"), judge).valid


def test_the_run_goes_on_past_an_item_the_checker_raises_on() -> None:
    crashing = item("simple", [DEAL], [{"deal": {"cards": [[{"rank": ["ace"]}], ""]}}])
    fine = BfclItem("simple_1", "simple", crashing.messages, (KETTLE,), ({"kitchen.boil_water": {"litres": [2.0]}},))
    backend = FakeBackend(script=[hermes("deal", {"cards": [7]}), hermes("kitchen.boil_water", {"litres": 2.0})])
    report = evaluate_bfcl({"simple": [crashing, fine]}, backend, get_dialect("hermes"), max_new_tokens=32)
    assert [(r.id, r.valid, r.kind) for r in report.items] == [("simple_0", False, "checker_error"),
                                                               ("simple_1", True, "ok")]
    assert report.categories["simple"].failures == {"checker_error": 1}
    assert "checker_error 1" in format_bfcl_table(report)


def test_an_answer_calling_a_function_the_item_does_not_offer_fails_the_load(tmp_path: Path) -> None:
    # The checker looks the expected function up among the offered ones; one it lacks was a TypeError mid-run.
    (tmp_path / "possible_answer").mkdir()
    (tmp_path / "BFCL_v4_parallel.json").write_text(json.dumps(
        {"id": "parallel_0", "question": [[{"role": "user", "content": "Boil."}]], "function": [KETTLE]}) + "\n")
    (tmp_path / "possible_answer" / "BFCL_v4_parallel.json").write_text(json.dumps(
        {"id": "parallel_0", "ground_truth": [{"kitchen.boil_tea": {"litres": [1.0]}}]}) + "\n")
    with pytest.raises(ConfigError, match="BFCL item 'parallel_0' .*calls 'kitchen.boil_tea', which the item does "
                                          "not offer \\(offered: kitchen.boil_water\\)"):
        load_bfcl_items("parallel", data=tmp_path)


def test_a_call_written_again_is_judged_as_the_loop_hands_it_back(judge: Any) -> None:
    """hermes writes a group a block at a time, and with repeat_calls off the loop's group ends before a call it
    already made: the reply `f(1.5)`, `f(1.5)` hands back one call, judged right on a one-call item (by default, as
    BFCL reads it: wrong_count), the repeat counted in `repeated`. A call with other arguments is another call;
    pythonic writes its group whole, as the model meant it, and every call of it is judged."""
    it = item("multiple", [KETTLE], [{"kitchen.boil_water": {"litres": [1.5]}}])
    hermes_ = get_dialect("hermes")
    twice = hermes("kitchen.boil_water", {"litres": 1.5}) + "\n" + hermes("kitchen.boil_water", {"litres": 1.5})
    got = judge_reply(it, twice + "\n<tool_response>", hermes_, judge, repeat_calls=False)
    assert (got.valid, got.kind, got.repeated) == (True, "ok", 1)
    assert got.calls == [{"kitchen.boil_water": {"litres": 1.5}}]
    assert (judge_reply(it, twice, hermes_, judge).kind, judge_reply(it, twice, hermes_, judge).repeated) == (
        "wrong_count", 0)
    other = judge_reply(it, twice.replace("1.5}", "2.5}", 1), hermes_, judge, repeat_calls=False)
    assert (other.valid, other.kind, other.repeated) == (False, "wrong_count", 0)
    whole = judge_reply(it, "[kitchen.boil_water(litres=1.5), kitchen.boil_water(litres=1.5)]",
                        get_dialect("pythonic"), judge, repeat_calls=False)
    assert (whole.valid, whole.kind, whole.repeated) == (False, "wrong_count", 0)


def test_handed_calls_ends_where_the_loops_look_ends() -> None:
    """Block by block: a list block is taken whole (its closing tag in an argument is no block end), a block after
    a malformed one is not taken, a later block repeating a call ends the group before it."""
    from toolcall.bfcl import handed_calls

    d = get_dialect("hermes")

    def block(*litres: Any) -> str:
        calls = [{"name": "kitchen.boil_water", "arguments": {"litres": x}} for x in litres]
        return f"<tool_call>\n{json.dumps(calls[0] if len(calls) == 1 else calls)}\n</tool_call>"

    bad = '<tool_call>\n{"name": "kitchen.boil_water", "arguments": {"litres": 3}\n</tool_call>'
    for reply, kept in ((block("a</tool_call>b", "a</tool_call>b"), ["a</tool_call>b"] * 2),
                        (block(1) + "\n" + bad + "\n" + block(2), [1]),
                        (block(1) + "\n" + block(2, 1) + "\n" + block(3), [1]),
                        (block(1) + "\n" + block(2, 3) + "\n" + block(3), [1, 2, 3])):
        got = [c.args["litres"] for c in handed_calls(d.parse(reply), d, repeat_calls=False)]  # type: ignore[call-overload]
        assert got == kept, reply


def test_the_eval_judges_with_the_loops_repeat_calls_setting() -> None:
    """evaluate_bfcl hands judge_reply the config's repeat_calls: the same reply, right with it off, wrong with it on."""
    from toolcall.loop import LoopConfig

    it = item("multiple", [KETTLE], [{"kitchen.boil_water": {"litres": [1.5]}}])
    twice = hermes("kitchen.boil_water", {"litres": 1.5}) + "\n" + hermes("kitchen.boil_water", {"litres": 1.5})
    verdicts = []
    for repeats in (True, False):
        backend = FakeBackend(script=lambda text: twice)
        report = evaluate_bfcl({"multiple": [it]}, backend, get_dialect("hermes"),
                               config=LoopConfig(repeat_calls=repeats))
        verdicts.append((report.items[0].kind, report.items[0].repeated))
    assert verdicts == [("wrong_count", 0), ("ok", 1)]
