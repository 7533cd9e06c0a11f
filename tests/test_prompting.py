"""Prompts: Toolformer demos per built-in tool, generated lines for custom tools, MOSS enable lines, overrides."""
from __future__ import annotations

from pathlib import Path

import pytest

from toolcall.backends.fake import FakeBackend
from toolcall.dialects import get_dialect
from toolcall.errors import ConfigError
from toolcall.prompting import (
    build_prompt, moss_meta_instruction, moss_prompt, paper_prompt, reply_text, toolformer_messages,
)
from toolcall.registry import ToolRegistry, default_registry, make_tool


def convert_currency(amount: float, currency: str) -> str:
    """Convert an amount of money into euros.

    Args:
        amount: How much money.
        currency: The currency code, like USD.
    """
    return f"{amount} EUR"


def test_calculator_demos_use_the_bracket_form() -> None:
    messages = toolformer_messages("What is 3 + 4?", default_registry(["calculator"]))
    assert messages[0]["role"] == "system" and "Calculator(expression)" in messages[0]["content"]
    assert any("[Calculator(24 * 15) -> 360] 360" in m["content"] for m in messages if m["role"] == "assistant")
    assert messages[-1] == {"role": "user", "content": "What is 3 + 4?"}


def test_custom_tool_gets_a_generated_line_with_its_example() -> None:
    custom = make_tool(convert_currency, example="[convert_currency(10, USD) -> 9.2 EUR]")
    messages = toolformer_messages("How much is 10 dollars?", ToolRegistry([custom]), few_shot=True)
    system = messages[0]["content"]
    assert "- convert_currency(amount, currency): Convert an amount of money into euros." in system
    assert "Example: [convert_currency(10, USD) -> 9.2 EUR]" in system
    assert len(messages) == 2  # no built-in demos for a custom tool


def test_few_shot_off_and_history_kept() -> None:
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    messages = toolformer_messages("next", default_registry(["calculator"]), history, few_shot=False)
    assert [m["content"] for m in messages[1:]] == ["hi", "hello", "next"]


def test_instruction_override_file(tmp_path: Path) -> None:
    path = tmp_path / "instr.txt"
    path.write_text("Use these:\n{tools}")
    messages = toolformer_messages("q", default_registry(["calculator"]), instruction=path)
    assert messages[0]["content"].startswith("Use these:\n- Calculator(expression)")
    with pytest.raises(ConfigError, match="could not be read"):
        toolformer_messages("q", default_registry(["calculator"]), instruction=tmp_path / "missing.txt")


def test_moss_meta_instruction_enable_lines() -> None:
    registry = default_registry(["calculator"])
    registry.add(convert_currency)
    meta = moss_meta_instruction(registry)
    assert "- Calculator: enabled. API: Calculate(expression)" in meta
    assert "- Web search: disabled." in meta
    assert "- convert_currency: enabled. API: convert_currency(amount, currency) - Convert an amount of money into euros." in meta
    assert "- Calculator: disabled." in moss_meta_instruction(None)


def test_moss_prompt_layout_and_worked_turn() -> None:
    prompt = moss_prompt("What is 2+2?", default_registry(["calculator"]),
                         history=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}])
    assert '<|Commands|>: Calculate("125*8")<eoc>\n<|Results|>:\nCalculate("125*8") => \'1000\'\n<eor>' in prompt
    assert "<|Human|>: hi<eoh>\n<|MOSS|>: Hello!<eom>\n" in prompt
    assert prompt.endswith("<|Human|>: What is 2+2?<eoh>\n<|Inner Thoughts|>:")
    # The worked turn parses as a MOSS call with its result.
    parsed = get_dialect("moss").parse(prompt)
    assert [(c.tool, c.args, c.result) for c in parsed.calls] == [("Calculate", ("125*8",), "1000")]


def test_build_prompt_uses_the_backend_chat_template() -> None:
    prompt = build_prompt("q?", get_dialect("toolformer"), default_registry(["calculator"]), FakeBackend())
    assert prompt.startswith("system: You are a helpful assistant") and prompt.endswith("user: q?\nassistant:")
    bare = build_prompt("q?", get_dialect("toolformer"), None, FakeBackend())
    assert bare == "user: q?\nassistant:"


def test_demos_parse_as_toolformer_calls() -> None:
    dialect = get_dialect("toolformer")
    for m in toolformer_messages("q", default_registry(None)):
        if m["role"] == "assistant":
            parsed = dialect.parse(m["content"])
            assert len(parsed.calls) == 1 and parsed.calls[0].result and not parsed.issues, m["content"]


def test_paper_prompt_and_reply_text() -> None:
    text = paper_prompt("Calculator", "Of 40 cats, 10 are black.")
    assert text.startswith("Your task is to add calls to a Calculator API") and text.endswith("Input: Of 40 cats, 10 are black.\nOutput:")
    with pytest.raises(ConfigError, match="no paper-style prompt"):
        paper_prompt("Nope", "x")
    moss = get_dialect("moss")
    assert reply_text(moss, " t<eot>\n<|Commands|>: None<eoc>\n<|Results|>:\nNone\n<eor>\n<|MOSS|>: Hi!<eom>") == "Hi!"
    assert reply_text(get_dialect("toolformer"), " a [b(1) -> 2] c ") == "a [b(1) -> 2] c"
