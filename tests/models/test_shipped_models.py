"""The models shipped in the package: found by name, loaded over the embedded SmolLM2, and they call their tools."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolcall.models import NAMED_MODELS, named_model_path, resolve_model

#: How each shipped model's corpus was made, as its recipe must say.
RECIPES = {"toolformer-smollm2": ("tool_texts", "toolcall data-gen"),
           "schema-tools-smollm2": ("toolcall.data_gen.corpora.schema_tools", "answer_filter"),
           "word-problems-smollm2": ("svamp_train_texts", "toolcall data-gen", "word_problem_chat.py")}


def test_every_named_model_ships_its_adapter_and_recipe() -> None:
    assert set(RECIPES) == set(NAMED_MODELS)
    for name in NAMED_MODELS:
        folder = named_model_path(name)
        assert folder is not None and folder.is_dir(), name
        config = json.loads((folder / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == "embedded" and config["peft_type"] == "LORA"
        weights = folder / "adapter_model.safetensors"
        assert 0 < weights.stat().st_size < 12_000_000     # a few MB inside the wheel
        recipe = (folder / "README.md").read_text()
        # Each recipe names how its corpus was made, then the training and the evaluation, with their seeds.
        made_by = RECIPES[name]
        for step in (*made_by, "toolcall train", "toolcall eval", "seed"):
            assert step in recipe, (name, step)


def test_names_resolve_to_the_package_and_paths_stay_paths(tmp_path: Path) -> None:
    assert resolve_model("toolformer-smollm2") == str(named_model_path("toolformer-smollm2"))
    assert resolve_model("Toolformer-SmolLM2") == str(named_model_path("toolformer-smollm2"))
    assert resolve_model(None) is None
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert named_model_path("no-such-model") is None


@pytest.mark.model
def test_the_shipped_adapter_changes_the_model_and_calls_the_calculator() -> None:
    import torch

    from toolcall.backends.hf_loading import load_model_and_tokenizer

    base, tok = load_model_and_tokenizer(None)
    tuned, tuned_tok = load_model_and_tokenizer("toolformer-smollm2")
    ids = tok("A baker fills 7 trays with 24 muffins each, so she bakes", return_tensors="pt").input_ids
    assert tuned_tok("x").input_ids == tok("x").input_ids         # the base's tokenizer
    with torch.no_grad():
        diff = (base(ids).logits - tuned(ids).logits).abs().max().item()
    assert diff > 0.1
    # Word problems unlike its training texts; greedy. It computes most of them with the calculator.
    problems = [("Nina bakes 6 trays of cookies with 14 cookies on each tray. How many cookies does she bake?", "84"),
                ("A library has 245 books and lends out 68. How many books are left?", "177"),
                ("There are 144 pencils shared equally among 12 students. How many pencils does each student get?", "12")]
    assert right_calculator_calls("toolformer-smollm2", problems) >= 2


@pytest.mark.model
def test_an_adapter_is_merged_into_a_base_of_its_own_and_leaves_the_kept_base_alone() -> None:
    import torch

    from toolcall.backends import hf_loading

    hf_loading._load_cached.cache_clear()
    try:
        tuned, _ = hf_loading.load_model_and_tokenizer("toolformer-smollm2")
        # Only the adapter is kept in memory: its base was loaded for it, not kept beside it (~540 MB)
        assert hf_loading._load_cached.cache_info().currsize == 1
        base, tok = hf_loading.load_model_and_tokenizer(None)
        assert hf_loading._load_cached.cache_info().currsize == 2
        fresh, _ = hf_loading.load_model_and_tokenizer(None, cache=False)
        assert fresh is not base and hf_loading._load_cached.cache_info().currsize == 2
        ids = tok("A baker fills 7 trays with 24 muffins each, so she bakes", return_tensors="pt").input_ids
        with torch.no_grad():   # merging changed the adapter's own base, not the one kept or loaded after
            assert torch.equal(base(ids).logits, fresh(ids).logits)
            assert not torch.equal(base(ids).logits, tuned(ids).logits)
    finally:
        hf_loading._load_cached.cache_clear()


def right_calculator_calls(model: str | None, problems: list[tuple[str, str]]) -> int:
    """How many of the problems get a Calculator call whose result is the answer (greedy, the calculator offered)."""
    from toolcall.api import generate

    right = 0
    for question, answer in problems:
        result = generate(question, model=model, tools=["calculator"])
        right += any(c.ok and c.tool == "Calculator" and c.result == answer for c in result.calls)
    return right


#: Word problems written for this test (not SVAMP's), each with a set-up to read: what is taken away, shared or added.
WORD_PROBLEMS = [
    ("Maria had 45 stickers. She gave 18 of them to her brother. How many stickers does Maria have now?", "27"),
    ("A farmer planted 12 rows of apple trees with 9 trees in each row. How many apple trees did he plant?", "108"),
    ("56 students sit in groups of 8. How many groups are there?", "7"),
    ("Tom read 23 pages on Monday and 38 pages on Tuesday. How many pages did he read in all?", "61"),
]


@pytest.mark.model
def test_the_word_problem_adapter_answers_with_the_calculator_where_the_base_model_does_not() -> None:
    tuned, base = right_calculator_calls("word-problems-smollm2", WORD_PROBLEMS), right_calculator_calls(None, WORD_PROBLEMS)
    assert tuned >= 2 and base < tuned  # here: 2 of 4 (take-away, rows of trees) against 0 of 4


def test_an_unknown_model_name_is_an_error_naming_the_shipped_ones() -> None:
    from toolcall.backends.hf_loading import load_model_and_tokenizer
    from toolcall.errors import BackendError

    with pytest.raises(BackendError, match=r"no model 'no-such-model'.*toolformer-smollm2"):
        load_model_and_tokenizer("no-such-model")


@pytest.mark.parametrize("path", ["./typo_dir", "../elsewhere/model", "/no/such/checkpoint", "adapter.gguf"])
def test_a_model_written_as_a_path_that_is_not_there_is_refused_at_once(path: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """transformers asked huggingface.co for `./typo_dir`; with no network that took 49 s of retries."""
    from toolcall.backends import hf_loading
    from toolcall.errors import BackendError

    def hub(*args: object, **kwargs: object) -> None:
        raise AssertionError("the hub was asked")

    monkeypatch.setattr(hf_loading, "_load_quietly", hub)
    monkeypatch.setattr(hf_loading, "_load_cached", hub)
    with pytest.raises(BackendError, match=rf"no model '{path}': .*it is written as a path"):
        hf_loading.load_model_and_tokenizer(path)
