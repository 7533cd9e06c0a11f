"""Tests of `toolcall train` through the CLI: a tiny random Llama in the fast suite, the embedded model end to end."""
from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
from script_module import TESTS, load_script

from toolcall.cli import main

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


def _training_tests() -> ModuleType:
    """tests/test_training.py, for its corpus texts and tiny-model builder (tests is not a package)."""
    return load_script(TESTS / "test_training.py", "_toolcall_test_training")


helpers = _training_tests()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return helpers.make_tiny_model(tmp_path_factory.mktemp("tiny"), helpers.TEXTS * 3)


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    return helpers.write_corpus(tmp_path / "gen", helpers.TEXTS)


def _summary(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_train_full_then_reload(tiny: Path, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from toolcall.backends.hf_loading import load_model_and_tokenizer

    out = tmp_path / "ckpt"
    assert main(["train", "--corpus", str(corpus), "--output", str(out), "--model", str(tiny), "--max-steps", "2",
                 "--batch-size", "2", "--lr", "1e-3", "--json"]) == 0
    summary = _summary(capsys)
    assert summary["steps"] == 2 and summary["examples"] == 4 and not summary["lora"]
    assert 0 < summary["masked_tokens"] < summary["tokens"]
    assert summary["verified_max_logit_diff"] is not None
    model, tok = load_model_and_tokenizer(out)
    assert model.config.vocab_size == len(tok)


def test_train_no_mask_results_trains_on_every_token(tiny: Path, corpus: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--corpus", str(corpus / "corpus.jsonl"), "--output", str(tmp_path / "o"), "--model", str(tiny),
                 "--max-steps", "1", "--no-mask-results", "--no-verify", "--json"]) == 0
    summary = _summary(capsys)
    assert summary["masked_tokens"] == 0 and summary["verified_max_logit_diff"] is None


def test_train_lora_then_reload(tiny: Path, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("peft")
    from toolcall.backends.hf_loading import load_model_and_tokenizer

    out = tmp_path / "lora"
    assert main(["train", "--corpus", str(corpus), "--output", str(out), "--model", str(tiny), "--max-steps", "2",
                 "--lora", "--lora-targets", "q_proj,k_proj,v_proj,o_proj", "--lora-r", "4"]) == 0
    text = capsys.readouterr().out
    assert "LoRA adapter saved to" in text and f"--model {out}" in text
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert sorted(adapter["target_modules"]) == ["k_proj", "o_proj", "q_proj", "v_proj"] and adapter["r"] == 4
    model, _ = load_model_and_tokenizer(out)
    assert not hasattr(model, "peft_config")  # merged for decoding


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--corpus", "/nonexistent/gen"], "does not exist"),
        (["--batch-size", "0"], "batch_size (--batch-size) must be >= 1"),
        (["--lora", "--lora-targets", " , "], "lora_targets (--lora-targets) must name at least one module"),
        # Each of these failed inside Trainer or torch after the model loaded, or (inf) trained NaN weights and saved them.
        (["--lr", "inf"], "lr (--lr) must be a finite number > 0, got inf"),
        (["--lr", "nan"], "lr (--lr) must be a finite number > 0, got nan"),
        (["--epochs", "nan"], "epochs (--epochs) must be a finite number > 0"),
        (["--epochs", "inf"], "epochs (--epochs) must be a finite number > 0"),
        (["--lora", "--lora-dropout", "1.5"], "lora_dropout (--lora-dropout) is a probability in [0, 1), got 1.5"),
        (["--lora", "--lora-alpha", "0"], "lora_alpha (--lora-alpha) must be > 0, got 0"),
        (["--seed", "99999999999999999999"], "seed (--seed) must be in [0, 2^32)"),
        (["--dialect", "nope"], "unknown dialect 'nope'"),
        (["--warmup", "1"], "warmup (--warmup) is a fraction of the steps in [0, 1), got 1.0"),
        (["--grad-accum", "0"], "grad_accum (--grad-accum) must be >= 1, got 0"),
    ],
)
def test_train_runtime_errors_exit_1(extra: list[str], message: str, corpus: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "--corpus", str(corpus), "--output", str(tmp_path / "o"), *extra]
    assert main(args) == 1
    assert message in capsys.readouterr().err


def test_train_refuses_an_output_that_is_a_file_or_a_directory_of_other_files(corpus: Path, tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"important": 1}')   # it was replaced by the model's config, exit 0
    assert main(["train", "--corpus", str(corpus), "--output", str(mine), "--max-steps", "1"]) == 1
    assert "is a directory of other files (no train_result.json" in capsys.readouterr().err
    assert (mine / "config.json").read_text() == '{"important": 1}'
    (tmp_path / "afile").write_text("x")
    assert main(["train", "--corpus", str(corpus), "--output", str(tmp_path / "afile"), "--max-steps", "1"]) == 1
    assert "is a file; the checkpoint or adapter is saved into a directory" in capsys.readouterr().err


def test_train_refuses_an_output_that_is_the_adapter_it_trains_further(corpus: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The adapter it read was replaced in place by the one trained from it."""
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"base_model_name_or_path": "embedded"}')
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    (adapter / "train_result.json").write_text("{}")   # an earlier `toolcall train` made it
    assert main(["train", "--corpus", str(corpus), "--from-adapter", str(adapter), "--output", str(adapter),
                 "--max-steps", "1"]) == 1
    assert (f"--output {adapter} is --from-adapter {adapter}, which this run reads: saving there would replace it; "
            "give another directory") in capsys.readouterr().err
    assert (adapter / "adapter_model.safetensors").read_bytes() == b"weights"


def test_train_usage_error_exits_2() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--corpus", "x"])
    assert exc.value.code == 2


# --- the embedded model, end to end: train -> reload -> eval --------------------------------------------------

SHORT = ["Tom has [Calculator(52 - 17) -> 35] 35 marbles.", "It is [Calendar() -> Today is Monday, January 30, 2023.] Monday."]


@pytest.mark.slow
@pytest.mark.model
def test_embedded_fine_tune_reload_and_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors import safe_open

    from toolcall.backends.hf_loading import load_model_and_tokenizer

    corpus = helpers.write_corpus(tmp_path / "gen", SHORT)
    out = tmp_path / "ckpt"
    assert main(["train", "--corpus", str(corpus), "--output", str(out), "--max-steps", "1", "--batch-size", "2",
                 "--max-length", "32", "--lr", "1e-4", "--warmup", "0", "--json"]) == 0
    summary = _summary(capsys)
    assert summary["steps"] == 1 and summary["verified_max_logit_diff"] is not None
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        # Tied to the embeddings, so not saved twice (safe_open is no dict: keys() is its API).
        assert "lm_head.weight" not in f.keys()  # noqa: SIM118
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    model, tok = load_model_and_tokenizer(out)
    base, _ = load_model_and_tokenizer(None)
    ids = tok(SHORT[0], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert not torch.allclose(model(input_ids=ids).logits, base(input_ids=ids).logits)
    assert tok.chat_template  # chat and eval prompts still use the model's template
    items = tmp_path / "math.jsonl"
    items.write_text(json.dumps({"question": "What is 6 times 7?", "answer": "42"}) + "\n")
    assert main(["eval", "--task", "math", "--input", str(items), "--model", str(out), "--max-new-tokens", "4", "--few-shot", "0",
                 "--quiet", "--json"]) == 0
    result = _summary(capsys)
    assert result["model"] == str(out) and result["no_tools"]["n"] == 1 and result["tools"]["n"] == 1


@pytest.mark.slow
@pytest.mark.model
def test_embedded_lora_reloads_over_the_embedded_base(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("peft")
    from toolcall.backends.hf_loading import load_model_and_tokenizer

    corpus = helpers.write_corpus(tmp_path / "gen", SHORT)
    out = tmp_path / "lora"
    assert main(["train", "--corpus", str(corpus), "--output", str(out), "--max-steps", "1", "--batch-size", "2",
                 "--max-length", "32", "--lora", "--lr", "1e-2", "--warmup", "0", "--json"]) == 0
    assert _summary(capsys)["lora"]
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == "embedded"
    merged, tok = load_model_and_tokenizer(out)
    base, _ = load_model_and_tokenizer(None)
    ids = tok(SHORT[1], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert not torch.allclose(merged(input_ids=ids).logits, base(input_ids=ids).logits)
