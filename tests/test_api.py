"""toolcall.generate: prompt, backend, dialect and tools put together (on the fake backend)."""
from __future__ import annotations

import toolcall
from toolcall.api import generate, make_registry
from toolcall.backends.fake import FakeBackend
from toolcall.registry import ToolRegistry


def shout(text: str) -> str:
    """Upper-case a text.

    Args:
        text: What to shout.
    """
    return text.upper()


def test_generate_with_a_custom_tool_and_no_hand_written_prompt() -> None:
    backend = FakeBackend(script=["[shout(hey) ->", " done."])
    result = toolcall.generate("Shout hey", backend=backend, tools=ToolRegistry([shout]))
    assert result.text == "[shout(hey) -> HEY] done."
    assert "- shout(text): Upper-case a text." in backend.prompts[0]
    assert result.prompt == backend.prompts[0]


def test_generate_raw_and_loop_options() -> None:
    backend = FakeBackend(script=["[Calculator(2 * 21) ->", " ok"])
    result = generate("RAW PROMPT", backend=backend, raw=True, max_calls=0)
    assert backend.prompts == ["RAW PROMPT"] and result.calls == []
    assert result.text == "Calculator(2 * 21) ->"  # max_calls=0: the opener is banned from the start


def test_generate_moss_with_the_builtin_calculator() -> None:
    backend = FakeBackend(script=[" sum<eot>\n<|Commands|>: Calculate(\"19 + 23\")<eoc>", " It is 42.<eom>"])
    result = generate("What is 19 + 23?", backend=backend, dialect="moss")
    assert [(c.tool, c.ok) for c in result.calls] == [("Calculator", True)]  # the tool that ran, by its own name
    assert "- Calculator: enabled. API: Calculate(expression)" in backend.prompts[0]
    assert result.text.endswith("<|MOSS|>: It is 42.<eom>")


def test_make_registry_forms() -> None:
    assert make_registry(()) is None
    assert make_registry("calculator").names() == ["Calculator"]
    assert "Calculator" in make_registry(None).names()


def test_a_named_model_brings_its_recommended_loop_settings(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import toolcall.api as api

    seen = []
    monkeypatch.setattr(api, "run_loop", lambda backend, prompt, dialect, registry, config: seen.append(config))
    monkeypatch.setattr(api, "get_backend", lambda name, model, **options: FakeBackend())   # no model to load
    (tmp_path / "toolcall.json").write_text('{"loop": {"call_threshold": 0.9, "max_calls": 2}}', encoding="utf-8")
    generate("Q", backend="transformers", model=str(tmp_path))
    generate("Q", backend="transformers", model=str(tmp_path), call_threshold=0.0)  # a typed option wins
    generate("Q", backend=FakeBackend(), model=str(tmp_path))                       # a built backend: its own settings
    assert [(c.call_threshold, c.max_calls) for c in seen] == [(0.9, 2), (0.0, 2), (0.0, 3)]
