"""Tests of toolcall.training: corpus reading, result spans, label masking, and short fine-tunes that reload."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from tiny_model import make_tiny_model

from toolcall.dialects import get_dialect
from toolcall.errors import ConfigError
from toolcall.training import (
    IGNORE_INDEX,
    PadCollator,
    TrainConfig,
    read_training_texts,
    result_token_mask,
    tokenize_example,
)

TEXTS = [
    "Out of 1400 participants, 400 (or [Calculator(400 / 1400) → 0.29] 29%) passed the test.",
    "The shop sold [Calculator(208 + 179) -> 387] 387 apples in two days.",
    "Asked on a Monday, [Calendar() -> Today is Monday, January 30, 2023.] the answer was Monday.",
    "A result with brackets [QA(Which list?) -> [1, 2] and more] is still one result.",
]


def write_corpus(directory: Path, texts: list[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"text": t, "original": t, "calls": []}) for t in texts]
    (directory / "corpus.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


# --- corpus and spans ---------------------------------------------------------------------------------

def test_read_training_texts_accepts_a_directory_or_a_file(tmp_path: Path) -> None:
    d = write_corpus(tmp_path / "gen", TEXTS[:2])
    assert read_training_texts(d) == TEXTS[:2]
    assert read_training_texts(d / "corpus.jsonl") == TEXTS[:2]


def test_read_training_texts_reports_bad_records(tmp_path: Path) -> None:
    f = tmp_path / "c.jsonl"
    f.write_text('{"text": "fine"}\n{"original": "no text"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c.jsonl:2: .*'text'"):
        read_training_texts(f)
    with pytest.raises(ConfigError, match="does not exist"):
        read_training_texts(tmp_path / "missing")


@pytest.mark.parametrize(
    ("text", "results"),
    [
        (TEXTS[0], [" 0.29]"]),
        (TEXTS[1], [" 387]"]),
        (TEXTS[2], [" Today is Monday, January 30, 2023.]"]),
        (TEXTS[3], [" [1, 2] and more]"]),
        ("two [Calculator(1+2)->3] and <API> Calculator(2*3) → 6 </API> calls", ["3]", " 6 </API>"]),
        ("no result [QA(Where?)] here", []),
    ],
)
def test_result_spans_cover_the_text_after_the_arrow_through_the_close(text: str, results: list[str]) -> None:
    """What the loop writes after the arrow: the result and the closer (the model never writes a result's "]")."""
    spans = get_dialect("toolformer").result_spans(text)
    assert [text[a:b] for _, (a, b) in spans] == results
    assert all(text[ma:mb] in ("->", "→") for (ma, mb), _ in spans)


def test_token_mask_skips_tokens_that_carry_the_arrow() -> None:
    #  text: "x [C() -> 5] y"; a token " -> 5" fuses arrow and result, "5]" fuses result and close.
    spans = [((7, 9), (9, 11))]
    offsets = [(0, 1), (1, 3), (3, 7), (7, 9), (9, 10), (10, 12), (12, 14), (0, 0)]
    assert result_token_mask(offsets, spans) == [False, False, False, False, True, True, False, False]
    assert result_token_mask([(5, 11)], spans) == [False]  # carries the arrow: the model must learn to emit it


# --- tokenization on a small real BPE tokenizer --------------------------------------------------------

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny"), TEXTS * 3)


def _check_labels(text: str, tokenizer: Any, max_length: int = 256, dialect: str = "toolformer") -> dict:
    ex = tokenize_example(text, tokenizer, max_length, dialect=dialect)
    enc = tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=max_length)
    spans = get_dialect(dialect).result_spans(text)
    expected = result_token_mask([tuple(o) for o in enc["offset_mapping"]], spans)
    n = len(enc["input_ids"])
    assert ex["input_ids"][:n] == enc["input_ids"]
    masked = [label == IGNORE_INDEX for label in ex["labels"][:n]]
    assert masked == expected
    # Every result character lies in a masked token or in a token that also holds the arrow.
    for (ma, mb), (ra, rb) in spans:
        for i, (a, b) in enumerate(enc["offset_mapping"]):
            if a < rb and ra < b:
                assert masked[i] or (a < mb and ma < b)
            elif b > a:
                assert not masked[i]  # nothing outside a result is masked
    return ex


def test_labels_are_masked_exactly_over_result_tokens_tiny_tokenizer(tiny: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    for text in TEXTS:
        ex = _check_labels(text, tok)
        assert ex["input_ids"][-1] == tok.eos_token_id and ex["labels"][-1] == tok.eos_token_id
    unmasked = tokenize_example(TEXTS[0], tok, 256, mask_results=False)
    assert IGNORE_INDEX not in unmasked["labels"]


def test_moss_results_bodies_are_masked_tiny_tokenizer(tiny: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    text = ("<|Human|>: 2+3?<eoh>\n<|Inner Thoughts|>: add<eot>\n<|Commands|>: Calculate(\"2+3\")<eoc>\n"
            "<|Results|>:\nCalculate(\"2+3\") => '5'\n<eor>\n<|MOSS|>: It is 5.<eom>\n")
    ex = _check_labels(text, tok, dialect="moss")
    assert IGNORE_INDEX in ex["labels"]
    masked = "".join(tok.decode([i]) for i, label in zip(ex["input_ids"], ex["labels"]) if label == IGNORE_INDEX)
    assert "'5'" in masked and "It is 5" not in masked


def test_collator_pads_labels_with_ignore_index() -> None:
    batch = PadCollator(pad_id=0)([{"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [5, -100, 7]},
                                   {"input_ids": [8], "attention_mask": [1], "labels": [8]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[5, -100, 7], [8, -100, -100]]


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        TrainConfig(Path("c"), Path("o"), batch_size=0).validate()
    with pytest.raises(ConfigError, match="warmup"):
        TrainConfig(Path("c"), Path("o"), warmup=1.5).validate()
    assert TrainConfig(Path("c"), Path("o")).learning_rate() == 1e-5
    assert TrainConfig(Path("c"), Path("o"), lora=True).learning_rate() == 1e-4
    assert TrainConfig(Path("c"), Path("o"), from_adapter="a").learning_rate() == 1e-4


# --- fine-tuning the tiny model -------------------------------------------------------------------------

def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_an_output_that_is_a_model_the_run_reads_is_refused(tmp_path: Path) -> None:
    """`--from-adapter DIR --output DIR` trained the adapter further and saved it over itself; --model DIR alike."""
    base, adapter = tmp_path / "base", tmp_path / "adapter"
    for folder in (base, adapter):
        folder.mkdir()
        (folder / "train_result.json").write_text("{}")   # an earlier run's output, which check_output_dir allows
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    corpus = Path("corpus.jsonl")
    for config, message in [
        (TrainConfig(corpus, adapter, from_adapter=str(adapter)),
         f"--output {adapter} is --from-adapter {adapter}, which this run reads: saving there would replace it"),
        (TrainConfig(corpus, adapter / "again", from_adapter=str(adapter)),
         f"--output {adapter / 'again'} lies inside --from-adapter {adapter}, which this run reads"),
        (TrainConfig(corpus, base, from_adapter=str(adapter)),
         f"--output {base} is the base model of --from-adapter {adapter}, which this run reads"),
        (TrainConfig(corpus, tmp_path / "." / "base", model=str(base)),
         f"--output {tmp_path / '.' / 'base'} is --model {base}, which this run reads"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            config.validate()
    TrainConfig(corpus, tmp_path / "new", from_adapter=str(adapter)).validate()
    TrainConfig(corpus, tmp_path / "new", model=str(base)).validate()


def test_full_fine_tune_saves_a_checkpoint_that_reloads(tiny: Path, tmp_path: Path) -> None:
    from toolcall.backends.hf_loading import load_model_and_tokenizer
    from toolcall.training import train

    corpus = write_corpus(tmp_path / "gen", TEXTS)
    out = tmp_path / "ckpt"
    result = train(TrainConfig(corpus=corpus, output=out, model=str(tiny), max_steps=4, batch_size=2, lr=1e-2,
                               logging_steps=1))
    assert result.steps == 4 and result.examples == 4 and result.masked_tokens > 0
    assert result.verified_max_logit_diff is not None and result.verified_max_logit_diff < 1e-3
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    before, after = _weights(tiny), _weights(out)
    assert "lm_head.weight" not in after  # tied to the embeddings, re-tied on load
    changed = [k for k in after if not torch.equal(before[k], after[k])]
    assert changed, "training changed no weight"
    model, tok = load_model_and_tokenizer(out)
    assert torch.equal(model.get_input_embeddings().weight.detach(), after["model.embed_tokens.weight"])
    assert tok("[Calculator(1+2) -> 3]")["input_ids"]
    assert json.loads((out / "train_result.json").read_text())["steps"] == 4


def test_a_corpus_with_no_token_for_the_loss_is_refused(tiny: Path, tmp_path: Path) -> None:
    from toolcall.training import train

    texts = ["Question: what is 2 + 2? Answer: 4.", "Question: and 3 + 3? Answer: 6."]
    corpus = tmp_path / "prompts.jsonl"
    corpus.write_text("".join(json.dumps({"text": t, "prompt_chars": len(t)}) + "\n" for t in texts))
    # It trained with loss 0, passed its reload check and saved a model that had learned nothing.
    with pytest.raises(ConfigError, match=r"no token of .*prompts.jsonl counts toward the loss: all \d+ are tool "
                                          r"results or prompts"):
        train(TrainConfig(corpus=corpus, output=tmp_path / "out", model=str(tiny), max_steps=1, batch_size=2,
                          max_length=4))   # the cut leaves no end-of-text token either
    assert not (tmp_path / "out").exists()


def test_a_corpus_without_a_tool_call_is_trained_with_a_warning(tiny: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """It trained on plain text without a word: "masked_tokens": 0 was the only sign."""
    from toolcall.training import train

    corpus = tmp_path / "plain.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["The sky is blue.", "Grass is green."]))
    result = train(TrainConfig(corpus=corpus, output=tmp_path / "out", model=str(tiny), max_steps=1, batch_size=2,
                               verify=False))
    assert result.steps == 1 and result.masked_tokens == 0
    assert (f"toolcall train: warning: no record of {corpus} holds a tool call with its result (in the toolformer "
            "dialect), so the model learns no call") in capsys.readouterr().err
    for mask_results, texts in ((True, TEXTS[:2]), (False, ["The sky is blue."])):   # calls, or results learned
        train(TrainConfig(corpus=write_corpus(tmp_path / f"gen{mask_results}", texts), output=tmp_path / "o",
                          model=str(tiny), max_steps=1, batch_size=2, verify=False, mask_results=mask_results))
        assert "warning" not in capsys.readouterr().err


def test_a_run_of_the_other_kind_into_the_same_output_leaves_only_its_own_model(tiny: Path, tmp_path: Path) -> None:
    """A full fine-tune written into an adapter's folder left adapter_config.json beside it, and the loader took the
    folder for the old adapter: with --no-verify it said "saved" and --model gave base + the old adapter."""
    pytest.importorskip("peft")
    from toolcall.backends.hf_loading import load_model_and_tokenizer
    from toolcall.training import train

    corpus = write_corpus(tmp_path / "gen", TEXTS)
    out = tmp_path / "out"
    train(TrainConfig(corpus=corpus, output=out, model=str(tiny), max_steps=1, batch_size=2, lora=True))
    assert (out / "adapter_config.json").is_file()
    train(TrainConfig(corpus=corpus, output=out, model=str(tiny), max_steps=2, batch_size=2, lr=1e-2, verify=False))
    assert not (out / "adapter_config.json").exists() and not (out / "adapter_model.safetensors").exists()
    model, _ = load_model_and_tokenizer(out)
    assert torch.equal(model.get_input_embeddings().weight.detach(), _weights(out)["model.embed_tokens.weight"])
    train(TrainConfig(corpus=corpus, output=out, model=str(tiny), max_steps=1, batch_size=2, lora=True))
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()


def test_texts_past_max_length_are_counted_and_said(tiny: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Only the first --max-length tokens of each text are learned: a 100,000-character record was cut to ~960
    characters without a word, and data-gen's 4,000-character texts run past the default 512 tokens."""
    from toolcall.training import train

    corpus = write_corpus(tmp_path / "gen", [*TEXTS, " ".join(TEXTS) * 20])
    result = train(TrainConfig(corpus=corpus, output=tmp_path / "out", model=str(tiny), max_steps=1, batch_size=2,
                               max_length=128, verify=False))
    assert result.cut_examples == 1 and "1 of 5 texts are longer than --max-length 128" in capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "train_result.json").read_text())["cut_examples"] == 1


def test_a_plain_text_quoting_a_special_token_learns_its_characters(tiny: Path) -> None:
    """A document that quotes `<eos>` (SmolLM2: `<|endoftext|>`, `<|im_start|>`) taught the control token mid-text."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    text = "The file ends with <eos> and then more text."
    literal = tokenize_example(text, tok, 256, literal=True, add_eos=False)
    read = tokenize_example(text, tok, 256, add_eos=False)
    assert tok.eos_token_id in read["input_ids"]  # what a chat record's own markup needs
    assert tok.eos_token_id not in literal["input_ids"] and tok.decode(literal["input_ids"]) == text


def test_a_corpus_in_another_dialect_than_the_one_given_is_refused(tmp_path: Path) -> None:
    """A hermes corpus trained with the default --dialect toolformer learned every tool response, without a word."""
    from toolcall.training import check_result_dialect

    hermes = ['<|im_start|>assistant\n<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call><|im_end|>\n'
              '<|im_start|>user\n<tool_response>\n42\n</tool_response><|im_end|>\n'] * 3
    with pytest.raises(ConfigError, match="3 of the first 3 records hold tool results written in the hermes dialect.*"
                                          "pass --dialect hermes"):
        check_result_dialect(hermes, "toolformer")
    check_result_dialect(hermes, "hermes")
    check_result_dialect(TEXTS, "toolformer")
    check_result_dialect(["no calls here", "nor here"], "toolformer")
    with pytest.raises(ConfigError, match="toolformer dialect"):
        check_result_dialect(TEXTS, "hermes")


def test_records_whose_prompt_fills_max_length_are_counted_and_said(tiny: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from toolcall.training import train

    f = tmp_path / "chat.jsonl"
    long_prompt = "user: " + " ".join(TEXTS) * 5 + "\nassistant:"
    f.write_text(json.dumps({"text": long_prompt + " Yes.", "prompt_chars": len(long_prompt)}) + "\n"
                 + "".join(json.dumps({"text": t}) + "\n" for t in TEXTS), encoding="utf-8")
    result = train(TrainConfig(corpus=f, output=tmp_path / "out", model=str(tiny), max_steps=1, batch_size=2,
                               max_length=64, verify=False))
    assert result.unlearned_examples == 1
    assert "1 of 5 records have no token in the loss" in capsys.readouterr().err


def test_an_output_under_a_file_is_refused_before_any_model_loads(tmp_path: Path) -> None:
    from toolcall.training import check_output_dir

    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="lies under .*afile, which is a file"):
        check_output_dir(tmp_path / "afile" / "sub")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc, where no directory can be made")
def test_an_output_that_cannot_be_created_is_refused_before_any_model_loads(tmp_path: Path) -> None:
    """Trainer failed on it with a FileNotFoundError traceback, after the model had loaded."""
    from toolcall.training import check_output_dir

    with pytest.raises(ConfigError, match="--output /proc/toolcall-no-such/out cannot be created"):
        check_output_dir(Path("/proc/toolcall-no-such/out"))
    check_output_dir(tmp_path / "new" / "out")
    assert not (tmp_path / "new").exists()  # made to try, then removed: a refused run leaves nothing


def test_lora_fine_tune_saves_an_adapter_that_reloads(tiny: Path, tmp_path: Path) -> None:
    pytest.importorskip("peft")
    from toolcall.backends.hf_loading import load_model_and_tokenizer
    from toolcall.training import train

    corpus = write_corpus(tmp_path / "gen", TEXTS)
    out = tmp_path / "lora"
    result = train(TrainConfig(corpus=corpus, output=out, model=str(tiny), max_steps=3, batch_size=2, lora=True,
                               lr=5e-2))
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(tiny.resolve())
    assert sorted(adapter["target_modules"]) == ["q_proj", "v_proj"]
    assert result.lora and result.verified_max_logit_diff is not None
    merged, _ = load_model_and_tokenizer(out)
    base, _ = load_model_and_tokenizer(tiny)
    ids = torch.tensor([[3, 4, 5, 6]])
    with torch.no_grad():
        assert not torch.allclose(merged(input_ids=ids).logits, base(input_ids=ids).logits)


def test_an_adapter_trained_further_stays_one_adapter_over_the_same_base(tiny: Path, tmp_path: Path) -> None:
    pytest.importorskip("peft")
    from safetensors.torch import load_file

    from toolcall.backends.hf_loading import load_model_and_tokenizer
    from toolcall.training import train

    corpus = write_corpus(tmp_path / "gen", TEXTS)
    first = tmp_path / "first"
    train(TrainConfig(corpus=corpus, output=first, model=str(tiny), max_steps=2, batch_size=2, lora=True, lr=5e-2,
                      lora_r=4, lora_alpha=8, lora_targets=("q_proj", "k_proj")))
    again = tmp_path / "again"
    # The flags' rank and modules (the defaults: 8, q_proj,v_proj) give way to the adapter's own.
    result = train(TrainConfig(corpus=corpus, output=again, from_adapter=str(first), max_steps=2, batch_size=2,
                               lr=5e-2))
    assert result.lora and result.steps == 2 and result.verified_max_logit_diff is not None
    config = json.loads((again / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny.resolve())
    assert (config["r"], config["lora_alpha"], sorted(config["target_modules"])) == (4, 8, ["k_proj", "q_proj"])
    before = load_file(str(first / "adapter_model.safetensors"))
    after = load_file(str(again / "adapter_model.safetensors"))
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)
    ids = torch.tensor([[3, 4, 5, 6]])
    with torch.no_grad():
        one = load_model_and_tokenizer(first)[0](input_ids=ids).logits
        two = load_model_and_tokenizer(again)[0](input_ids=ids).logits
    assert not torch.allclose(one, two)


def test_from_adapter_refuses_a_model_and_a_folder_without_an_adapter(tiny: Path, tmp_path: Path) -> None:
    from toolcall.training import train

    corpus = write_corpus(tmp_path / "gen", TEXTS)
    with pytest.raises(ConfigError, match="leave --model out"):
        TrainConfig(corpus, tmp_path / "o", model=str(tiny), from_adapter=str(tiny)).validate()
    with pytest.raises(ConfigError, match="no adapter_config.json"):
        train(TrainConfig(corpus=corpus, output=tmp_path / "o", from_adapter=str(tiny), max_steps=1))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text("[]", encoding="utf-8")
    with pytest.raises(ConfigError, match="holds list, not an object"):
        train(TrainConfig(corpus=corpus, output=tmp_path / "o", from_adapter=str(broken), max_steps=1))


def test_an_adapter_over_a_shipped_model_names_its_folder_as_base(tmp_path: Path) -> None:
    from toolcall.models import named_model_path
    from toolcall.training import save_lora

    class Saved:
        def save_pretrained(self, output: Path, **_: Any) -> None:
            (output / "adapter_config.json").write_text("{}", encoding="utf-8")

    class Tokenizer:
        def save_pretrained(self, output: Path) -> None:
            pass

    save_lora(Saved(), Tokenizer(), tmp_path / "a", "schema-tools-smollm2")
    config = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(named_model_path("schema-tools-smollm2"))
    save_lora(Saved(), Tokenizer(), tmp_path / "b", None)
    assert json.loads((tmp_path / "b" / "adapter_config.json").read_text())["base_model_name_or_path"] == "embedded"


def test_bf16_trains_on_a_machine_without_an_accelerator(tiny: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # Trainer refuses bf16 without an accelerator unless the CPU is asked for; `--bf16` means "where supported".
    pytest.importorskip("peft")
    from toolcall.training import train

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    corpus = write_corpus(tmp_path / "gen", TEXTS)
    result = train(TrainConfig(corpus=corpus, output=tmp_path / "lora", model=str(tiny), max_steps=2, batch_size=2,
                               lora=True, lr=5e-2, bf16=True))
    assert result.steps == 2 and result.verified_max_logit_diff is not None


def test_lora_rejects_unknown_target_modules(tiny: Path, tmp_path: Path) -> None:
    pytest.importorskip("peft")
    from toolcall.training import train

    corpus = write_corpus(tmp_path / "gen", TEXTS)
    with pytest.raises(ConfigError, match="not in this model"):
        train(TrainConfig(corpus=corpus, output=tmp_path / "x", model=str(tiny), max_steps=1, lora=True,
                          lora_targets=("query_key_value",)))


# --- the embedded model -----------------------------------------------------------------------------------

@pytest.mark.model
def test_labels_are_masked_exactly_over_result_tokens_embedded_tokenizer() -> None:
    from toolcall.backends.hf_loading import load_model_and_tokenizer

    _, tok = load_model_and_tokenizer(None)
    for text in TEXTS:
        _check_labels(text, tok)
    # SmolLM2 cuts "2023.]" so that "." + "]" fuse: that token holds result text and is masked.
    ex = tokenize_example(TEXTS[2], tok, 256)
    enc = tok(TEXTS[2], return_offsets_mapping=True)
    tokens = [(TEXTS[2][a:b], a, label) for (a, b), label in zip(enc["offset_mapping"], ex["labels"])]
    mondays = [(a, label) for piece, a, label in tokens if piece == " Monday"]
    assert [label == IGNORE_INDEX for a, label in mondays] == [False, True, False]  # only the one in the result
    assert [label for piece, _, label in tokens if piece == " ->"] != [IGNORE_INDEX]
    assert [label for piece, _, label in tokens if piece == ".]"] == [IGNORE_INDEX]


def test_a_chat_record_learns_only_its_reply_and_not_its_tool_responses(tiny: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from toolcall.training import read_training_records

    tok = AutoTokenizer.from_pretrained(tiny)
    prompt = "system: Tools: get_weather(city).\nuser: Weather in Oslo?\nassistant:"
    reply = ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>\n<tool_response>\n'
             'rain\n</tool_response>\nIt rains in Oslo.')
    f = tmp_path / "chat.jsonl"
    f.write_text(json.dumps({"text": prompt + reply, "prompt_chars": len(prompt)}) + "\n" +
                 json.dumps({"text": "plain"}) + "\n", encoding="utf-8")
    assert read_training_records(f) == [(prompt + reply, len(prompt)), ("plain", None)]
    ex = tokenize_example(prompt + reply, tok, 512, dialect="hermes", prompt_chars=len(prompt))
    learned = "".join(tok.decode([i]) for i, label in zip(ex["input_ids"], ex["labels"]) if label != IGNORE_INDEX)
    assert "Weather in Oslo" not in learned and "get_weather(city)" not in learned
    assert '"name": "get_weather"' in learned and "It rains in Oslo." in learned and "rain\n" not in learned
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "short", "prompt_chars": 99}) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="prompt_chars"):
        read_training_records(bad)


def test_tokenized_examples_are_held_as_flat_arrays_and_read_back_as_lists() -> None:
    """Lists of Python ints took 57 bytes a token before training began; the examples take 8 (two int32s)."""
    import random
    import tracemalloc

    from toolcall.training import IGNORE_INDEX, _Examples

    rng = random.Random(0)
    given = []
    for _ in range(300):
        ids = [rng.randrange(300, 49152) for _ in range(rng.randrange(1, 200))]
        labels = [IGNORE_INDEX if rng.random() < 0.3 else t for t in ids]
        given.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    tracemalloc.start()
    examples = _Examples()
    for example in given:
        examples.add(example)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    tokens = sum(len(e["input_ids"]) for e in given)
    assert held < 10 * tokens + 4096   # two int32 per token and an end per example, with the arrays' spare room
    assert len(examples) == 300 and [examples[i] for i in range(300)] == given
    assert examples[-1] == given[-1]
    with pytest.raises(IndexError):
        examples[300]
