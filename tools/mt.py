"""The MT tool: translation into English, by prompting a chat backend (the default one, built on first use, unless given one)."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from toolcall.dialects.base import defuse
from toolcall.errors import ToolError

if TYPE_CHECKING:
    from toolcall.backends.base import Backend

MAX_NEW_TOKENS = 48
#: Characters of text translated at most: the tool translates a phrase or a sentence into a short answer
#: (MAX_NEW_TOKENS); a megabyte of text would be prefilled past the model's context while every other translation
#: waits on the shared backend.
MAX_TEXT_CHARS = 2_000
SHOTS = (("Je suis fatigué.", "I am tired."), ("¿Dónde está la estación?", "Where is the station?"),
         ("Das Haus ist groß.", "The house is big."))
_translator: Callable[[str], str] | None = None
_backend: "Backend | None" = None
_lock = threading.Lock()  # one translation at a time on the shared backend


def set_translator(translator: Callable[[str], str] | None) -> None:
    """Use `translator(text) -> English text` instead of prompting a backend; None restores the default."""
    global _translator
    _translator = translator


def use_backend(backend: "Backend | None") -> None:
    """Translate with `backend` (e.g. the model a command has already loaded); None: the default backend, on first use."""
    global _backend
    _backend = backend


def _default_backend() -> "Backend":
    global _backend
    with _lock:
        if _backend is None:
            from toolcall.backends import get_backend

            _backend = get_backend()   # the embedded SmolLM2 through transformers
        return _backend


def translation_messages(text: str) -> list[dict[str, str]]:
    """The chat asking for `text` in English, after a few worked turns (the 135M model copies the source text back
    without them: measured "Bonjour" -> "Bonjour!")."""
    messages: list[dict[str, str]] = []
    for source, english in SHOTS:
        messages += [{"role": "user", "content": f"Translate to English: {source}"}, {"role": "assistant", "content": english}]
    messages.append({"role": "user", "content": f"Translate to English: {text}"})
    return messages


def lm_translate(text: str, backend: "Backend | None" = None) -> str:
    """Ask a chat backend (`backend`, else the one given to use_backend, else the default) for the English translation.

    The reply is decoded with the backend's own settings (greedy for the default) until end of sequence, and its
    first non-empty line is the translation.
    """
    engine = backend if backend is not None else (_backend or _default_backend())
    # The text is the model's (or a client's): a special token written in it (`<|im_end|>`, a role header) would
    # end the user's turn in the prompt and speak as another role, so each is broken as the loop breaks them in
    # tool results.
    prompt = engine.chat_prompt(translation_messages(defuse(text, engine.special_texts())))
    with _lock:
        reply = engine.start(prompt).generate((), MAX_NEW_TOKENS)
    line = next((part.strip() for part in reply.splitlines() if part.strip()), "")
    return line.strip().strip('"')


def bound_to(backend: "Backend") -> Callable[[str], str]:
    """MT translating with `backend`: its `setup`, so each registry translates with the model it was built with (a
    module-wide backend made a second registry's model translate for the first, and kept the first alive)."""

    def translate(text: str) -> str:
        return _translated(text, _translator or (lambda t: lm_translate(t, backend)))

    translate.__name__, translate.__qualname__, translate.__doc__ = mt.__name__, mt.__qualname__, mt.__doc__
    return translate


def mt(text: str) -> str:
    """Translate text from any language into English.

    Args:
        text: The text to translate, for example "sûreté nucléaire".

    Returns:
        The English translation.
    """
    return _translated(text, _translator or lm_translate)


def _translated(text: str, translate: Callable[[str], str]) -> str:
    text = text.strip().strip("\"'")
    if not text:
        raise ToolError("nothing to translate")
    if len(text) > MAX_TEXT_CHARS:
        raise ToolError(f"text too long to translate ({len(text):,} characters; at most {MAX_TEXT_CHARS:,}): give "
                        "the phrase or sentence to translate")
    result = translate(text)
    if not result:
        raise ToolError(f"the translator returned nothing for {text!r}")
    return result
