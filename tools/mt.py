"""The MT tool: translation into English; by default the embedded LM is prompted to translate (loaded on first use)."""
from __future__ import annotations

import threading
from collections.abc import Callable

from toolcall.errors import ToolError

MAX_NEW_TOKENS = 48
SHOTS = (("Je suis fatigué.", "I am tired."), ("¿Dónde está la estación?", "Where is the station?"),
         ("Das Haus ist groß.", "The house is big."))
_translator: Callable[[str], str] | None = None
_lock = threading.Lock()  # one generation at a time on the shared model


def set_translator(translator: Callable[[str], str] | None) -> None:
    """Use `translator(text) -> English text` instead of the embedded LM; None restores the default."""
    global _translator
    _translator = translator


def lm_translate(text: str, model: str | None = None) -> str:
    """Ask a chat LM (the embedded SmolLM2 unless `model` is given) for the English translation, greedily."""
    from toolcall.backends.hf_loading import load_model_and_tokenizer

    import torch

    lm, tok = load_model_and_tokenizer(model)
    # A few worked turns: the 135M model copies the source text back without them (measured: "Bonjour" -> "Bonjour!").
    messages: list[dict[str, str]] = []
    for source, english in SHOTS:
        messages += [{"role": "user", "content": f"Translate to English: {source}"}, {"role": "assistant", "content": english}]
    messages.append({"role": "user", "content": f"Translate to English: {text}"})
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
    with _lock, torch.no_grad():
        out = lm.generate(**ids, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, pad_token_id=tok.pad_token_id)
    reply = tok.decode(out[0][ids["input_ids"].shape[1]:], skip_special_tokens=True)
    line = next((part.strip() for part in reply.splitlines() if part.strip()), "")
    return line.strip().strip('"')


def mt(text: str) -> str:
    """Translate text from any language into English.

    Args:
        text: The text to translate, for example "sûreté nucléaire".

    Returns:
        The English translation.
    """
    text = text.strip().strip("\"'")
    if not text:
        raise ToolError("nothing to translate")
    result = (_translator or lm_translate)(text)
    if not result:
        raise ToolError(f"the translator returned nothing for {text!r}")
    return result
