"""A tiny randomly-initialised Llama and a byte-level BPE tokenizer trained offline, for fast scoring tests."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

TRAINING_TEXT = [
    "Out of 1400 participants, 400 (or [Calculator(400 / 1400) -> 0.29] 29%) passed the test.",
    "The store sold 12 apples and 30 pears, a total of 42 fruits [Calculator(12 + 30) -> 42] today.",
    "Today is [Calendar() -> Today is Monday, January 30, 2023.] Monday, January 30, 2023.",
    "Joe Biden was born in [QA(\"Where was Joe Biden born?\")] Scranton, Pennsylvania.",
    "The average of 3, 5 and 7 is 5. In 1998 the town had 2,500 inhabitants; by 2020 it had 4,100.",
    "Input: x\nOutput: y [ ] ( ) -> , . : ; ' \" 0 1 2 3 4 5 6 7 8 9 + - * / = %",
]


@lru_cache(maxsize=1)
def tiny_model_and_tokenizer(seed: int = 0) -> tuple[Any, Any]:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(TRAINING_TEXT * 3, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="</s>")
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=0, eos_token_id=1, pad_token_id=1, tie_word_embeddings=False)
    model = LlamaForCausalLM(config).eval()
    # Sharpen the random logits a little so sampled continuations and loss differences are not all flat.
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)
    return model, fast


CALL_TEXTS = [
    "Out of 1400 participants, 400 (or [Calculator(400 / 1400)] 29%) passed the test.",
    "The store sold 12 apples and 30 pears, a total of [Calculator(12 + 30)] 42 fruits.",
    "We drove 3 hours at 60 miles per hour, so [Calculator(3 * 60)] 180 miles in all.",
    "Of 90 seats, 45 were taken, that is [Calculator(45 / 90)] 0.5 of the hall.",
    "Today is [Calendar()] Monday, January 30, 2023, and the shop opens at 9.",
    "The meeting is on [Calendar()] Friday; 20 people and 15 guests make [Calculator(20 + 15)] 35.",
]


@lru_cache(maxsize=1)
def trained_tiny_model_and_tokenizer(steps: int = 120) -> tuple[Any, Any]:
    """The tiny model after a few seconds of training on bracket-call texts, so it samples parseable calls."""
    import copy

    import torch

    base, tok = tiny_model_and_tokenizer()
    model = copy.deepcopy(base).train()
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = tok([tok.bos_token + t for t in CALL_TEXTS], add_special_tokens=False, padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), tok
