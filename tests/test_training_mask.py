"""Which tokens `toolcall train` learns: the end of a chat record's turn, records with nothing to learn, and the loop's
closing text on the embedded tokenizer (SmolLM2's pieces straddle every edge)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tiny_model import make_tiny_model

from toolcall.calls import KeywordArgs, ToolCall
from toolcall.dialects import get_dialect
from toolcall.training import IGNORE_INDEX, TrainConfig, tokenize_example

pytest.importorskip("torch")
pytest.importorskip("transformers")

TEXTS = ["The shop sold [Calculator(208 + 179) -> 387] 387 apples in two days.",
         "user: Weather in Oslo?\nassistant: It rains.<eos>\n"]


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(make_tiny_model(tmp_path_factory.mktemp("tiny"), TEXTS * 3))


def _learned(ex: dict[str, list[int]], tok: Any) -> list[str]:
    return [tok.decode([i]) for i, label in zip(ex["input_ids"], ex["labels"]) if label != IGNORE_INDEX]


def test_a_chat_record_ended_by_its_template_gets_no_second_end(tok: Any) -> None:
    """ChatML ends a reply `<|im_end|>\\n`, and SmolLM2's end-of-text token is `<|im_end|>`: training appended another,
    teaching `<|im_end|>\\n<|im_end|>` and the template's line break after the end."""
    prompt = "user: Weather in Oslo?\nassistant:"
    text = prompt + " It rains.<eos>\n"
    ex = tokenize_example(text, tok, 256, prompt_chars=len(prompt))
    assert ex["input_ids"].count(tok.eos_token_id) == 1
    learned = _learned(ex, tok)
    assert learned[-1] == "<eos>" and "".join(learned).strip().endswith("It rains.<eos>")
    assert tok.decode(ex["input_ids"][-1:]) == "\n" and ex["labels"][-1] == IGNORE_INDEX
    # A reply its template does not end (benchmarks/word_problem_chat.py) and a document still get theirs.
    plain = tokenize_example(prompt + " It rains.", tok, 256, prompt_chars=len(prompt))
    assert plain["input_ids"][-1] == tok.eos_token_id and plain["labels"][-1] == tok.eos_token_id
    document = tokenize_example(TEXTS[0], tok, 256, literal=True)
    assert document["labels"][-1] == tok.eos_token_id


def test_records_with_nothing_to_learn_are_left_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A record whose prompt fills --max-length was trained on with every label -100: a batch of them was a step of
    loss 0 that counted toward --max-steps and halved the train loss reported."""
    from toolcall.training import train

    tiny = make_tiny_model(tmp_path / "tiny", TEXTS * 3)
    long_prompt = "user: " + "word " * 200 + "\nassistant:"
    records = [{"text": long_prompt + " Yes.", "prompt_chars": len(long_prompt)}] * 2 + [{"text": TEXTS[0]}] * 2
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    result = train(TrainConfig(corpus=corpus, output=tmp_path / "out", model=str(tiny), max_steps=1, batch_size=2,
                               max_length=32, verify=False, logging_steps=1))
    assert result.examples == 2 and result.unlearned_examples == 2
    assert result.train_loss > 0   # the one step saw the two documents, not the two empty records
    assert "2 of 4 records have no token in the loss" in capsys.readouterr().err


# --- the embedded tokenizer -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def smollm2() -> Any:
    """SmolLM2's tokenizer alone, from the checkpoint the loader keeps (the model is not loaded)."""
    import transformers

    from toolcall.backends.hf_loading import embedded_model_path, gguf_checkpoint

    try:
        path = embedded_model_path()
    except Exception as err:  # noqa: BLE001 - the package is optional
        pytest.skip(f"no embedded model: {err}")
    kept = gguf_checkpoint(path, transformers)
    if kept is not None:
        return transformers.AutoTokenizer.from_pretrained(str(kept))
    return transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def _program_tokens(tok: Any, name: str, model: str, results: list[str], after: str, prompt_chars: int = 0
                    ) -> tuple[list[str], list[str], dict[str, list[int]]]:
    """The tokens of the loop's closing text that are learned, and the tokens of the model's text that are not."""
    dialect = get_dialect(name)
    pending = dialect.pending(model)
    assert pending is not None
    closing = dialect.close(pending, results)
    text = model + closing + after
    ex = tokenize_example(text, tok, 4096, dialect=name, prompt_chars=prompt_chars, literal=not prompt_chars)
    offsets = tok(text, return_offsets_mapping=True, split_special_tokens=not prompt_chars)["offset_mapping"]
    written = range(len(model), len(model) + len(closing))
    learned, unlearned = [], []
    for (a, b), label in zip(offsets, ex["labels"]):
        if b <= a:
            continue
        if label != IGNORE_INDEX and a in written and b - 1 in written:
            learned.append(text[a:b])
        if label == IGNORE_INDEX and a >= prompt_chars and not any(i in written for i in range(a, b)):
            unlearned.append(text[a:b])
    return learned, unlearned, ex


@pytest.mark.model
def test_smollm2_learns_the_call_and_not_what_the_loop_writes(smollm2: Any) -> None:
    tok = smollm2
    # Toolformer: the arrow is learned, the result and "]" are not ("2023.]" fuses "." and "]").
    for model, result, after in [("So [Calculator(3 * 4) ->", "12", " 12 apples."),
                                 ("Asked [Calendar() ->", "Today is Monday, January 30, 2023.", ". Then"),
                                 ("So <API> Calculator(3*4) →", "12", " 12.")]:
        learned, unlearned, _ = _program_tokens(tok, "toolformer", model, [result], after)
        assert learned == [] and unlearned == [], (model, learned, unlearned)
    # hermes as schema_tools writes it: `</tool_call>` and the `<tool_response>` that says the calls are done are
    # learned; the rest of the blocks and the line break after them are not; the turn's end is learned once.
    prompt = "<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n"
    calls = get_dialect("hermes").write_calls([ToolCall("f", KeywordArgs({"x": 1})), ToolCall("g", KeywordArgs({}))])
    learned, unlearned, ex = _program_tokens(tok, "hermes", prompt + calls, ['{"t": 1}', "2"],
                                             "It is 1.<|im_end|>\n", prompt_chars=len(prompt))
    assert "".join(learned) == "\n<tool_response>" and unlearned == ["\n"]   # the template's, after the turn's end
    assert ex["input_ids"].count(tok.eos_token_id) == 2   # the prompt's, and the reply's
    # MOSS: `<|Results|>:` is learned, `<eor>` and the `<|MOSS|>:` the loop writes are not.
    learned, unlearned, _ = _program_tokens(tok, "moss", "<|Human|>: 2+3?<eoh>\n<|Inner Thoughts|>: add<eot>\n"
                                            "<|Commands|>: Calculate(\"2+3\")<eoc>", ["5"], " It is 5.<eom>\n")
    assert "".join(learned) == "\n<|Results|>:" and unlearned == []
