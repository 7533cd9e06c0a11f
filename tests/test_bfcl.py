"""Tests of toolcall.bfcl: BFCL data, schemas offered, replies turned into BFCL's model_output, the AST checker's wiring."""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from toolcall.backends.fake import FakeBackend
from toolcall.bfcl import (
    CATEGORIES,
    LIVE,
    NON_LIVE,
    BfclConfig,
    BfclItem,
    ast_judge,
    data_dir,
    evaluate_bfcl,
    format_bfcl_table,
    item_prompt,
    item_specs,
    item_steering,
    judge_reply,
    load_bfcl_items,
    model_output,
    to_json_schema,
)
from toolcall.cli import main
from toolcall.dialects import get_dialect
from toolcall.errors import ConfigError, MissingDependencyError
from toolcall.loop import LoopConfig

HAVE_BFCL = importlib.util.find_spec("bfcl_eval") is not None
needs_bfcl = pytest.mark.skipif(not HAVE_BFCL, reason="bfcl-eval is not installed (pip install --no-deps bfcl-eval; "
                                                      ".ci/run installs it)")

# Hand-made items in BFCL's format (our own functions and requests, not BFCL's).
KETTLE = {"name": "kitchen.boil_water", "description": "Boil water in the kettle.",
          "parameters": {"type": "dict", "properties": {
              "litres": {"type": "float", "description": "How much water."},
              "whistle": {"type": "boolean", "description": "Whistle when done.", "default": False}},
              "required": ["litres"]}}
LAMP = {"name": "set_lamp", "description": "Switch a lamp on or off.",
        "parameters": {"type": "dict", "properties": {
            "room": {"type": "string", "description": "The room.", "enum": ["hall", "study"]},
            "on": {"type": "boolean", "description": "On or off."},
            "hours": {"type": "tuple", "items": {"type": "integer"}, "description": "From and until."}},
            "required": ["room", "on"]}}


def item(category: str, functions: list[dict[str, Any]], answer: list[dict[str, Any]] | None,
         question: str = "Please do it.") -> BfclItem:
    return BfclItem(f"{category}_0", category, ({"role": "user", "content": question},), tuple(functions),
                    tuple(answer) if answer is not None else None)


SIMPLE = item("simple", [KETTLE], [{"kitchen.boil_water": {"litres": [1.5], "whistle": [False, ""]}}])
PARALLEL = item("parallel", [LAMP], [{"set_lamp": {"room": ["hall"], "on": [True], "hours": [""]}},
                                      {"set_lamp": {"room": ["study"], "on": [False], "hours": [""]}}])
MULTIPLE = item("multiple", [KETTLE, LAMP], [{"set_lamp": {"room": ["hall"], "on": [True], "hours": [[18, 23], ""]}}])
IRRELEVANT = item("irrelevance", [KETTLE], None, "Who wrote the first cookbook?")


def hermes(*calls: tuple[str, dict[str, Any]]) -> str:
    return "\n".join(f'<tool_call>\n{json.dumps({"name": n, "arguments": a})}\n</tool_call>' for n, a in calls)


# --- offering the functions ---------------------------------------------------------------------------------------

def test_bfcl_types_become_json_schema_types_at_every_depth() -> None:
    schema = to_json_schema({"type": "dict", "properties": {
        "a": {"type": "float"}, "b": {"type": "tuple", "items": {"type": "float"}}, "c": {"type": "any"},
        "d": {"type": "dict", "properties": {"e": {"type": "array", "items": {"type": "dict", "properties": {}}}}}}})
    assert schema["type"] == "object"
    props = schema["properties"]
    assert props["a"] == {"type": "number"} and props["b"] == {"type": "array", "items": {"type": "number"}}
    assert props["c"] == {"type": "string"}
    assert props["d"]["type"] == "object" and props["d"]["properties"]["e"]["items"]["type"] == "object"


def test_item_functions_are_offered_in_the_dialects_prompt() -> None:
    specs = item_specs(MULTIPLE)
    assert specs.names() == ["kitchen.boil_water", "set_lamp"]
    assert specs.find("set_lamp").parameters["properties"]["hours"]["type"] == "array"  # type: ignore[union-attr]
    backend = FakeBackend()
    prompt = item_prompt(MULTIPLE, get_dialect("hermes"), backend.chat_prompt)
    assert '"name": "set_lamp"' in prompt and "<tool_call>" in prompt and prompt.rstrip().endswith("assistant:")
    assert '"dict"' not in prompt and '"tuple"' not in prompt
    assert "Please do it." in prompt


def test_a_system_message_of_the_item_is_kept_before_the_tools() -> None:
    it = BfclItem("x", "simple", ({"role": "system", "content": "Answer tersely."},
                                  {"role": "user", "content": "Boil a litre."}), (KETTLE,), None)
    prompt = item_prompt(it, get_dialect("hermes"), FakeBackend().chat_prompt)
    assert prompt.index("Answer tersely.") < prompt.index("kitchen.boil_water") < prompt.index("Boil a litre.")


# --- categories and data ------------------------------------------------------------------------------------------

def test_category_groups_expand_and_unknown_names_fail() -> None:
    assert BfclConfig().names() == NON_LIVE
    assert BfclConfig(categories=("live",)).names() == LIVE
    assert BfclConfig(categories=("simple", "non_live")).names() == NON_LIVE
    assert not set(NON_LIVE) & set(LIVE) and set(NON_LIVE) | set(LIVE) == set(CATEGORIES)
    with pytest.raises(ConfigError, match="unknown BFCL category 'simpel'"):
        BfclConfig(categories=("simpel",))


def write_bfcl_dir(root: Path, category: str, entries: list[BfclItem]) -> Path:
    stem = CATEGORIES[category]
    (root / "possible_answer").mkdir(parents=True, exist_ok=True)
    with (root / f"BFCL_v4_{stem}.json").open("w") as fh:
        for e in entries:
            fh.write(json.dumps({"id": e.id, "question": [list(e.messages)], "function": list(e.functions)}) + "\n")
    if entries and entries[0].answer is not None:
        with (root / "possible_answer" / f"BFCL_v4_{stem}.json").open("w") as fh:
            for e in entries:
                fh.write(json.dumps({"id": e.id, "ground_truth": list(e.answer or ())}) + "\n")
    return root


def test_items_load_with_answers_and_a_seeded_sample(tmp_path: Path) -> None:
    entries = [BfclItem(f"simple_python_{i}", "simple", ({"role": "user", "content": f"Boil {i} litres."},),
                        (KETTLE,), ({"kitchen.boil_water": {"litres": [float(i)]}},)) for i in range(20)]
    write_bfcl_dir(tmp_path, "simple", entries)
    every = load_bfcl_items("simple", data=tmp_path)
    assert [e.id for e in every] == [e.id for e in entries] and every[3].answer == entries[3].answer
    a = load_bfcl_items("simple", limit=5, seed=1, data=tmp_path)
    assert [e.id for e in a] == [e.id for e in load_bfcl_items("simple", limit=5, seed=1, data=tmp_path)]
    assert len(a) == 5 and [e.id for e in a] == sorted((e.id for e in a), key=lambda s: int(s.rsplit("_", 1)[1]))
    others = {tuple(e.id for e in load_bfcl_items("simple", limit=5, seed=s, data=tmp_path)) for s in range(2, 6)}
    assert any(o != tuple(e.id for e in a) for o in others)


def test_a_second_sample_leaves_out_the_first_samples_items(tmp_path: Path) -> None:
    entries = [BfclItem(f"simple_python_{i}", "simple", ({"role": "user", "content": f"Boil {i} litres."},),
                        (KETTLE,), ({"kitchen.boil_water": {"litres": [float(i)]}},)) for i in range(20)]
    write_bfcl_dir(tmp_path, "simple", entries)

    def ids(**kw: Any) -> list[str]:
        return [e.id for e in load_bfcl_items("simple", data=tmp_path, **kw)]

    first = ids(limit=6, seed=0)
    for seed in range(1, 6):
        second = ids(limit=6, seed=seed, exclude_seed=0)
        assert len(second) == 6 and not set(first) & set(second)
        assert second == ids(limit=6, seed=seed, exclude_seed=0)
    # Without it, other seeds' samples share items with seed 0's.
    assert any(set(ids(limit=6, seed=seed)) & set(first) for seed in range(1, 6))
    assert ids(limit=6, seed=0) == first                # the first sample is the one drawn before the option existed
    assert sorted(ids(limit=12, seed=2, exclude_seed=0)) == sorted(set(ids()) - set(ids(limit=12, seed=0)))  # 8 left
    assert ids(exclude_seed=0) == ids()                 # no --limit: every item (the command refuses it)
    # A category no larger than the limit was drawn whole by seed 0: nothing is left, where it was drawn whole again.
    assert ids(limit=30, seed=0) == ids() and ids(limit=30, seed=2, exclude_seed=0) == []
    with pytest.raises(ConfigError, match="exclude_seed"):
        BfclConfig(exclude_seed=-1)


def test_an_item_without_its_answer_is_an_error_naming_the_item(tmp_path: Path) -> None:
    write_bfcl_dir(tmp_path, "simple", [SIMPLE])
    (tmp_path / "possible_answer" / "BFCL_v4_simple_python.json").write_text(
        json.dumps({"id": "other", "ground_truth": [{"set_lamp": {}}]}) + "\n")
    where = re.escape(f"{tmp_path / 'BFCL_v4_simple_python.json'}:1")
    with pytest.raises(ConfigError, match=f"BFCL item 'simple_0' \\({where}\\) has no possible answer"):
        load_bfcl_items("simple", data=tmp_path)


THREE = [BfclItem(f"simple_{i}", "simple", ({"role": "user", "content": f"Boil {i} litres."},), (KETTLE,),
                  ({"kitchen.boil_water": {"litres": [float(i)]}},)) for i in range(3)]
GOOD = {"id": "simple_1", "question": [[{"role": "user", "content": "Boil 1 litres."}]], "function": [KETTLE]}


def spoil(root: Path, answers: bool, line: str | bytes, number: int = 2) -> Path:
    """A BFCL directory of THREE whose item (or answer) file has line `number` replaced; the file written."""
    write_bfcl_dir(root, "simple", THREE)
    path = root / ("possible_answer" if answers else "") / "BFCL_v4_simple_python.json"
    lines = path.read_bytes().splitlines()
    lines[number - 1] = line if isinstance(line, bytes) else line.encode()
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def entry(**fields: Any) -> str:
    """GOOD with `fields` replaced (a value of None leaves the field out)."""
    return json.dumps({k: v for k, v in {**GOOD, **fields}.items() if v is not None})


@pytest.mark.parametrize(("line", "says"), [
    (entry(id=None), "field 'id' must be a non-empty string, found no such field"),
    (entry(id=5), "field 'id' must be a non-empty string, found a number (5)"),
    (entry(id="simple_0"), "id 'simple_0' is already used at .*:1; each id must be unique"),
    (entry(question="hello"), "field 'question' must be a non-empty list of turns.*found a string (\"hello\")"),
    (entry(question=[]), "field 'question' must be a non-empty list of turns"),
    (entry(question=None), "field 'question' must be .*found no such field"),
    (entry(question=["hi"]), "question[0] must be a list of {\"role\", \"content\"} messages, found a string"),
    (entry(question=[[5]]), "question[0][0] must be a {\"role\", \"content\"} message object, found a number"),
    (entry(question=[[]]), "question[0], the turn the model answers, holds no message"),
    (entry(question=[[{"role": "user"}]]), "question[0][0]: field 'content' must be a string, found no such field"),
    (entry(question=[[{"role": "user", "content": ["hi"]}]]), "question[0][0]: field 'content' must be a string, found a list"),
    (entry(question=[[{"role": "robot", "content": "hi"}]]),
     "question[0][0]: field 'role' must be one of system, user, assistant, found a string (\"robot\")"),
    (entry(question=[[GOOD["question"][0][0]], [{"content": "later"}]]), "question[1][0]: field 'role'"),
    (entry(function="nope"), "field 'function' must be a list of function objects.*found a string (\"nope\")"),
    (entry(function=None), "field 'function' must be a list .*found no such field"),
    (entry(function=[]), "field 'function' is empty; an item with a possible answer must offer at least one"),
    (entry(function=[5]), "function[0] must be a function object (with a 'name'), found a number"),
    (entry(function=[{"description": "x"}]), "function[0]: field 'name' must be a non-empty string"),
    (entry(function=[KETTLE, {**KETTLE, "name": "Kitchen.Boil_Water"}]),
     "function[1]: function name 'Kitchen.Boil_Water' is also function[0]'s"),
    (entry(function=[{**KETTLE, "description": 5}]), "function[0]: field 'description' must be a string"),
    (entry(function=[{"name": "f"}]), "function[0]: field 'parameters' must be an object .*found no such field"),
    (entry(function=[{**KETTLE, "parameters": {"type": "dict", "properties": [], "required": []}}]),
     "function[0]: field 'parameters' must be an object .*; its 'properties' holds a list"),
    (entry(function=[{**KETTLE, "parameters": {"type": "dict", "properties": {"a": 1}, "required": []}}]),
     "function[0]: field 'parameters' .*; its 'properties' holds a schema that is not an object"),
    (entry(function=[{**KETTLE, "parameters": {"type": "dict", "properties": {}, "required": "litres"}}]),
     "function[0]: field 'parameters' .*; its 'required' holds a string (\"litres\")"),
    ("[1,2]", "each line must be a JSON object, found list"),
    ('{"id": "x", "question": }', "not valid JSON (Expecting value at column 25)"),
])
def test_a_malformed_item_line_is_an_error_at_its_file_and_line(tmp_path: Path, line: str, says: str) -> None:
    path = spoil(tmp_path, False, line)
    pattern = re.escape(f"{path}:2: ") + re.escape(says).replace(re.escape(".*"), ".*")
    with pytest.raises(ConfigError, match=pattern):
        load_bfcl_items("simple", data=tmp_path)


@pytest.mark.parametrize(("line", "says"), [
    (json.dumps({"id": "simple_1", "ground_truth": "x"}),
     "field 'ground_truth' must be a non-empty list of {\"function name\": {\"argument\": [accepted values]}} "
     "objects, found a string (\"x\")"),
    (json.dumps({"id": "simple_1"}), "field 'ground_truth' must be a non-empty list .*found no such field"),
    (json.dumps({"id": "simple_1", "ground_truth": []}), "field 'ground_truth' must be a non-empty list"),
    (json.dumps({"id": "simple_1", "ground_truth": [5]}), "ground_truth[0] must be one function name mapped to"),
    (json.dumps({"id": "simple_1", "ground_truth": [{"f": {}, "g": {}}]}), "ground_truth[0] must be one function"),
    (json.dumps({"id": "simple_1", "ground_truth": [{"f": {"x": 1}}]}), "ground_truth[0] must be one function"),
    (json.dumps({"ground_truth": [{"f": {}}]}), "field 'id' must be a non-empty string"),
    (json.dumps({"id": "simple_0", "ground_truth": [{"f": {}}]}), "id 'simple_0' is already used at"),
])
def test_a_malformed_answer_line_is_an_error_at_its_file_and_line(tmp_path: Path, line: str, says: str) -> None:
    path = spoil(tmp_path, True, line)
    pattern = re.escape(f"{path}:2: ") + re.escape(says).replace(re.escape(".*"), ".*")
    with pytest.raises(ConfigError, match=pattern):
        load_bfcl_items("simple", data=tmp_path)


def test_a_byte_that_is_not_utf8_is_an_error_at_its_line_and_column(tmp_path: Path) -> None:
    path = spoil(tmp_path, False, entry().encode().replace(b"Boil", b"B\xf6il"))
    with pytest.raises(ConfigError, match=re.escape(f"{path}:2:") + r"\d+: BFCL data file is not UTF-8 text"):
        load_bfcl_items("simple", data=tmp_path)


def test_a_bad_line_fails_the_load_even_when_the_sample_leaves_it_out(tmp_path: Path) -> None:
    spoil(tmp_path, False, entry(question="hello"))
    for seed in range(4):
        with pytest.raises(ConfigError, match=":2: field 'question'"):
            load_bfcl_items("simple", limit=1, seed=seed, data=tmp_path)


def test_irrelevance_items_may_offer_no_function_and_need_no_answer_file(tmp_path: Path) -> None:
    (tmp_path / "BFCL_v4_live_irrelevance.json").write_text(
        json.dumps({"id": "live_irrelevance_0", "question": [[{"role": "user", "content": "Hi."}]], "function": []})
        + "\n")
    assert load_bfcl_items("live_irrelevance", data=tmp_path)[0].functions == ()


def test_a_missing_data_file_says_what_the_directory_must_hold(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"BFCL data file {tmp_path / 'BFCL_v4_simple_python.json'} does "
                                                    "not exist (a BFCL data directory holds BFCL_v4_<category>")):
        load_bfcl_items("simple", data=tmp_path)
    write_bfcl_dir(tmp_path, "simple", THREE)
    (tmp_path / "possible_answer" / "BFCL_v4_simple_python.json").unlink()
    with pytest.raises(ConfigError, match="BFCL answer file .*possible_answer.* does not exist"):
        load_bfcl_items("simple", data=tmp_path)


def test_toolcall_eval_reports_a_malformed_bfcl_file_without_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = spoil(tmp_path, False, entry(function="nope"))
    code = main(["eval", "--task", "bfcl", "--categories", "simple", "--bfcl-data", str(tmp_path), "--limit", "2",
                 "--backend", "fake", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and f"{path}:2: field 'function' must be a list" in err and "Traceback" not in err


# --- replies as BFCL's model_output -------------------------------------------------------------------------------

def test_calls_of_every_json_dialect_become_model_output() -> None:
    want = [{"set_lamp": {"room": "hall", "on": True, "hours": [18, 23]}}]
    texts = {
        "hermes": hermes(("set_lamp", {"room": "hall", "on": True, "hours": [18, 23]})),
        "pythonic": "[set_lamp(room='hall', on=True, hours=(18, 23))]",
        "llama3_json": '{"name": "set_lamp", "parameters": {"room": "hall", "on": true, "hours": [18, 23]}}',
        "mistral": '[TOOL_CALLS][{"name": "set_lamp", "arguments": {"room": "hall", "on": true, "hours": [18, 23]}}]',
    }
    for name, text in texts.items():
        out = model_output(get_dialect(name).parse(text), MULTIPLE)
        assert out == want, name
        assert type(out[0]["set_lamp"]["hours"]) is list  # the checker compares types exactly


def test_names_stay_as_written_and_positional_args_take_schema_order() -> None:
    # The functions are offered with their dots; BFCL judges a model offered them so by the name it writes.
    out = model_output(get_dialect("hermes").parse(hermes(("kitchen_boil_water", {"litres": 2.0}))), SIMPLE)
    assert out == [{"kitchen_boil_water": {"litres": 2.0}}]
    out = model_output(get_dialect("toolformer").parse("[set_lamp(study, off)]"), MULTIPLE)
    assert out == [{"set_lamp": {"room": "study", "on": "off"}}]


# --- the judge ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def judge() -> Any:
    if not HAVE_BFCL:
        pytest.skip("bfcl-eval is not installed (pip install --no-deps bfcl-eval; .ci/run installs it)")
    return ast_judge()


@needs_bfcl
@pytest.mark.parametrize(("it", "reply", "valid", "kind"), [
    (SIMPLE, hermes(("kitchen.boil_water", {"litres": 1.5})), True, "ok"),
    (SIMPLE, hermes(("kitchen.boil_water", {"litres": 1.5, "whistle": False})), True, "ok"),
    (SIMPLE, hermes(("kitchen.boil_water", {"litres": 2.5})), False, "wrong_args"),
    (SIMPLE, hermes(("kitchen.boil_water", {"litres": "1.5"})), False, "wrong_args"),
    (SIMPLE, hermes(("kitchen.boil_water", {"whistle": True})), False, "wrong_args"),
    (SIMPLE, hermes(("kitchen.boil_water", {"litres": 1.5, "colour": "red"})), False, "wrong_args"),
    (SIMPLE, hermes(("kitchen.make_tea", {"litres": 1.5})), False, "wrong_function"),
    (SIMPLE, hermes(("kitchen.boil_water", {"litres": 1.5}), ("kitchen.boil_water", {"litres": 1.5})), False,
     "wrong_count"),
    (SIMPLE, "def boil(litres):\n    return litres * 100", False, "no_call"),
    (SIMPLE, '<tool_call>\n{"name": "kitchen.boil_water", "arguments": {"litres": }\n</tool_call>', False,
     "unparsable"),
    (PARALLEL, hermes(("set_lamp", {"room": "study", "on": False}), ("set_lamp", {"room": "hall", "on": True})),
     True, "ok"),
    (PARALLEL, hermes(("set_lamp", {"room": "hall", "on": True})), False, "wrong_count"),
    (PARALLEL, hermes(("set_lamp", {"room": "study", "on": True}), ("set_lamp", {"room": "hall", "on": True})),
     False, "wrong_args"),
    (MULTIPLE, hermes(("set_lamp", {"room": "hall", "on": True, "hours": [18, 23]})), True, "ok"),
    (MULTIPLE, hermes(("set_lamp", {"room": "hall", "on": True})), True, "ok"),
    (MULTIPLE, hermes(("kitchen.boil_water", {"litres": 1.0})), False, "wrong_function"),
    (IRRELEVANT, "I cannot look that up with the tools I have.", True, "ok"),
    (IRRELEVANT, hermes(("kitchen.boil_water", {"litres": 1.0})), False, "called_irrelevant"),
])
def test_the_ast_checker_judges_hand_made_calls(judge: Any, it: BfclItem, reply: str, valid: bool, kind: str) -> None:
    result = judge_reply(it, reply, get_dialect("hermes"), judge)
    assert (result.valid, result.kind) == (valid, kind), result.error
    if kind in ("wrong_args", "wrong_function", "wrong_count"):
        assert result.error_type and result.error  # the checker's own verdict is kept


def test_relevance_needs_a_call_and_no_checker() -> None:
    it = item("live_relevance", [KETTLE], None)
    assert judge_reply(it, hermes(("kitchen.boil_water", {"litres": 9})), get_dialect("hermes"), None).valid
    missed = judge_reply(it, "No.", get_dialect("hermes"), None)
    assert (missed.valid, missed.kind) == (False, "no_call")


@needs_bfcl
def test_the_checker_imports_without_the_sdks_and_leaves_no_stand_in_behind(judge: Any) -> None:
    assert "bfcl_eval.constants.model_config" not in sys.modules
    for sdk in ("anthropic", "cohere", "mistralai", "google.genai", "qwen_agent"):
        assert sdk not in sys.modules


def test_a_missing_bfcl_eval_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import toolcall.bfcl as bfcl

    real = importlib.util.find_spec
    monkeypatch.setattr(bfcl.importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("bfcl_eval") else real(name, *a))
    monkeypatch.delitem(sys.modules, "bfcl_eval.eval_checker.ast_eval.ast_checker", raising=False)
    for call in (data_dir, ast_judge):
        with pytest.raises(MissingDependencyError, match="pip install --no-deps bfcl-eval"):
            call()


# --- the whole path on the fake backend ---------------------------------------------------------------------------

@needs_bfcl
def test_the_eval_path_on_the_fake_backend(tmp_path: Path) -> None:
    items = {"simple": [SIMPLE], "parallel": [PARALLEL], "irrelevance": [IRRELEVANT]}
    backend = FakeBackend(script=[hermes(("kitchen.boil_water", {"litres": 1.5})),
                                  hermes(("set_lamp", {"room": "hall", "on": True})),
                                  "The first cookbook? I do not know."])
    report = evaluate_bfcl(items, backend, get_dialect("hermes"), max_new_tokens=64)
    assert {c: (s.n, s.accuracy, s.call_rate) for c, s in report.categories.items()} == {
        "simple": (1, 1.0, 1.0), "parallel": (1, 0.0, 1.0), "irrelevance": (1, 1.0, 0.0)}
    assert report.categories["parallel"].failures == {"wrong_count": 1}
    assert backend.calls and all(budget == 64 for _, budget, _ in backend.calls)
    assert "kitchen.boil_water" in backend.prompts[0]
    table = format_bfcl_table(report)
    assert "parallel" in table and "wrong_count 1" in table


@needs_bfcl
def test_a_reply_ends_where_the_model_starts_writing_a_result_itself() -> None:
    # A model trained on whole conversations goes on after its calls with a made-up <tool_response> and more calls;
    # the program would have written the result there, so the reply is judged on the calls before it.
    made_up = '\n<tool_response>\n{"done": true}\n</tool_response>\n' + hermes(("set_lamp", {"room": "hall"}))
    backend = FakeBackend(script=[hermes(("kitchen.boil_water", {"litres": 1.5})) + made_up])
    report = evaluate_bfcl({"simple": [SIMPLE]}, backend, get_dialect("hermes"), max_new_tokens=64)
    assert report.categories["simple"].accuracy == 1.0
    assert backend.calls[0][0] == ("<tool_response>",)
    assert "set_lamp" not in report.items[0].reply


def test_replies_are_steered_as_the_loop_settings_say() -> None:
    hermes_dialect = get_dialect("hermes")
    assert item_steering(SIMPLE, hermes_dialect, None) is None
    assert item_steering(SIMPLE, hermes_dialect, LoopConfig()) is None            # free decoding by default
    held = item_steering(MULTIPLE, hermes_dialect, LoopConfig(constrain_calls=True))
    assert held is not None and held.open_text == "<tool_call>" and not held.disable
    assert held.constrain == hermes_dialect.call_grammar(item_specs(MULTIPLE), closers=("</tool_call>",))
    assert 'kitchen.boil_water' in held.constrain and 'set_lamp' in held.constrain
    trigger = item_steering(SIMPLE, hermes_dialect, LoopConfig(trigger_top_k=5, max_triggers=2))
    assert trigger is not None and (trigger.trigger_top_k, trigger.max_triggers, trigger.constrain) == (5, 2, None)
    gated = item_steering(SIMPLE, hermes_dialect, LoopConfig(call_threshold=0.9))
    assert gated is not None and (gated.min_open_prob, gated.constrain, gated.disable) == (0.9, None, False)
    held = item_steering(SIMPLE, hermes_dialect, LoopConfig(call_threshold=0.9, constrain_calls=True))
    assert held is not None and held.min_open_prob == 0.9 and held.constrain
    banned = item_steering(SIMPLE, hermes_dialect, LoopConfig(tools_enabled=False, constrain_calls=True))
    assert banned is not None and banned.disable
    with pytest.raises(ConfigError, match="--force-call is not used with --task bfcl"):
        item_steering(SIMPLE, hermes_dialect, LoopConfig(force_call=True))
    with pytest.raises(ConfigError, match="the pythonic dialect has no call-open marker to steer"):
        item_steering(SIMPLE, get_dialect("pythonic"), LoopConfig(constrain_calls=True))
    assert item_steering(SIMPLE, get_dialect("pythonic"), LoopConfig()) is None
    # The steering reaches the engine with each reply.
    backend = FakeBackend(script=[hermes(("kitchen.boil_water", {"litres": 1.5}))])
    evaluate_bfcl({"simple": [SIMPLE]}, backend, hermes_dialect, max_new_tokens=64,
                  config=LoopConfig(constrain_calls=True), judge=lambda *a, **k: {"valid": True})
    steering = backend.calls[0][2]
    assert steering is not None and steering.constrain and "kitchen.boil_water" in steering.constrain


class GrammarRefuser(FakeBackend):
    """Refuses any batch holding a call grammar that mentions set_lamp, as an engine refuses a schema it cannot use."""

    def generate_batch(self, sessions: Any, stops: Any, budgets: Any, steerings: Any) -> Any:
        if any(st is not None and st.constrain and "set_lamp" in st.constrain for st in steerings):
            raise ConfigError("the constraint grammar cannot be used: unsupported keyword")
        return super().generate_batch(sessions, stops, budgets, steerings)


def test_an_item_whose_grammar_cannot_be_used_is_decoded_without_it_and_says_so() -> None:
    backend = GrammarRefuser(script=[hermes(("kitchen.boil_water", {"litres": 1.5})),
                                     hermes(("set_lamp", {"room": "hall", "on": True}))])
    report = evaluate_bfcl({"simple": [SIMPLE], "multiple": [MULTIPLE]}, backend, get_dialect("hermes"),
                           max_new_tokens=64, config=LoopConfig(constrain_calls=True),
                           judge=lambda *a, **k: {"valid": True})
    assert [(r.id, r.unconstrained) for r in report.items] == [("simple_0", False), ("multiple_0", True)]
    assert report.items[1].calls == [{"set_lamp": {"room": "hall", "on": True}}]
    assert report.items[1].to_json()["unconstrained"] is True
    # Without a grammar to blame, an engine's error is not hidden.
    class Broken(FakeBackend):
        def generate_batch(self, *args: Any) -> Any:
            raise ConfigError("unsupported keyword")

    with pytest.raises(ConfigError, match="unsupported keyword"):
        evaluate_bfcl({"simple": [SIMPLE]}, Broken(script=["x"]), get_dialect("hermes"), max_new_tokens=8,
                      judge=lambda *a, **k: {"valid": True})


@needs_bfcl
def test_toolcall_eval_task_bfcl_on_the_fake_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_bfcl_dir(tmp_path / "bfcl", "simple", [SIMPLE])
    write_bfcl_dir(data, "irrelevance", [IRRELEVANT])
    script = tmp_path / "script.json"
    script.write_text(json.dumps(["[kitchen.boil_water(litres=1.5)]", "[kitchen.boil_water(litres=1.0)]"]))
    out = tmp_path / "items.jsonl"
    code = main(["eval", "--task", "bfcl", "--categories", "simple,irrelevance", "--bfcl-data", str(data),
                 "--dialect", "pythonic", "--backend", "fake", "--model", str(script), "--output", str(out),
                 "--json", "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["task"] == "bfcl" and summary["dialect"] == "pythonic"
    assert summary["max_new_tokens"] == 192 and summary["repeat_calls"] is True
    # What can change the replies is named: the same items scored 10 points apart after an upgrade of these.
    assert {"python", "toolcall", "torch", "transformers"} <= set(summary["versions"])
    cats = summary["categories"]
    assert (cats["simple"]["accuracy"], cats["irrelevance"]["accuracy"]) == (1.0, 0.0)
    assert cats["irrelevance"]["failures"] == {"called_irrelevant": 1}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["calls"] == [{"kitchen.boil_water": {"litres": 1.5}}] and rows[0]["valid"]


@needs_bfcl
def test_task_bfcl_speaks_hermes_unless_told(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_bfcl_dir(tmp_path / "bfcl", "simple", [SIMPLE])
    script = tmp_path / "script.json"
    script.write_text(json.dumps([hermes(("kitchen.boil_water", {"litres": 1.5}))]))
    code = main(["eval", "--task", "bfcl", "--categories", "simple", "--bfcl-data", str(data), "--backend", "fake",
                 "--model", str(script), "--max-new-tokens", "40", "--json", "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["dialect"] == "hermes" and summary["max_new_tokens"] == 40
    assert summary["categories"]["simple"]["accuracy"] == 1.0 and summary["data"] == str(data)
    assert summary["exclude_seed"] is None
    # The flag is taken and recorded (what it draws: the test above).
    code = main(["eval", "--task", "bfcl", "--categories", "simple", "--bfcl-data", str(data), "--backend", "fake",
                 "--model", str(script), "--limit", "1", "--seed", "1", "--exclude-seed", "0", "--json", "--quiet"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and summary["exclude_seed"] == 0


def test_task_bfcl_refuses_math_only_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "--task", "bfcl", "--tools", "calculator", "--backend", "fake", "--quiet"])
    assert code == 1 and "--task bfcl offers each item's own functions" in capsys.readouterr().err


# --- the real data (when installed) -------------------------------------------------------------------------------

@needs_bfcl
@pytest.mark.parametrize("category", NON_LIVE)
def test_the_packaged_non_live_data_loads_and_converts(category: str) -> None:
    items = load_bfcl_items(category, limit=25, seed=0)
    assert len(items) == 25
    for it in items:
        assert (it.answer is None) == (category == "irrelevance")
        text = json.dumps([s.schema for s in item_specs(it)])
        assert '"type": "dict"' not in text and '"type": "float"' not in text and '"type": "tuple"' not in text


@needs_bfcl
@pytest.mark.parametrize("category", LIVE)
def test_the_packaged_live_data_loads(category: str) -> None:
    items = load_bfcl_items(category, limit=2, seed=0)
    assert len(items) == 2 and all(it.messages for it in items)
    assert all((it.answer is None) == category.endswith("relevance") for it in items)


# Items of BFCL's own data that no reply can pass: a required array with no acceptable value (live_simple 106 and
# 112), an answer with a parameter the function lacks (live_multiple 862), or without one it requires (964).
UNPASSABLE = {"live_simple_106-63-0", "live_simple_112-68-0", "live_multiple_862-181-3", "live_multiple_964-207-0"}


def _truth(values: list[Any], required: bool) -> tuple[Any, bool]:
    """The first acceptable value of a ground-truth list, and whether to write it ("" means it may be left out)."""
    if "" in values and not required:
        return None, False
    value = next((v for v in values if v != ""), "")
    if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
        value = {k: v for k, (v, keep) in ((k, _truth(vs, False)) for k, vs in value.items()) if keep}
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        value = [_truth([v], True)[0] for v in value]
    return value, True


@needs_bfcl
@pytest.mark.parametrize("category", [c for c in CATEGORIES if not c.endswith("relevance")])
def test_every_items_own_answer_written_in_each_dialect_is_judged_right(category: str) -> None:
    # A perfect model's reply, in each dialect as it writes calls, through the grading path: a keyword in another
    # script than Latin (live_simple_67: año_vehiculo=2024) made the pythonic reply unparsable.
    from toolcall.calls import KeywordArgs, ToolCall

    judge = ast_judge()
    wrong = []
    for it in load_bfcl_items(category):
        assert it.answer is not None
        required = {f["name"]: set(f.get("parameters", {}).get("required", [])) for f in it.functions}
        calls = []
        for answer in it.answer:
            ((name, spec),) = answer.items()
            args = {k: v for k, (v, keep) in ((k, _truth(vs, k in required.get(name, ()))) for k, vs in spec.items())
                    if keep}
            calls.append(ToolCall(name, KeywordArgs(args)))
        for dialect in (get_dialect(n) for n in ("hermes", "pythonic", "llama3_json", "mistral")):
            verdict = judge_reply(it, dialect.write_calls(calls), dialect, judge)
            if not verdict.valid and it.id not in UNPASSABLE:
                wrong.append((it.id, dialect.name, verdict.kind, verdict.error))
    assert wrong == []


def test_a_category_with_no_items_left_shows_no_score() -> None:
    """--exclude-seed on a category no larger than the limit leaves none: its row read "0 0.0% 0.0%", like a score."""
    from toolcall.bfcl import BfclReport, CategorySummary

    report = BfclReport({}, {"live_relevance": CategorySummary("live_relevance", 0, 0.0, 0.0, {}, 0.0)})
    row = format_bfcl_table(report).splitlines()[-1]
    assert "n/a" in row and "no items left to draw" in row and "%" not in row
