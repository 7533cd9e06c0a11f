"""The prompts each dialect writes: Toolformer demos per built-in tool, generated lines for custom tools, MOSS's
meta-instruction and worked turns, few-shot counts, overrides; the data files are package data."""
from __future__ import annotations

from pathlib import Path

import pytest

from toolcall.backends.fake import FakeBackend
from toolcall.dialects import get_dialect
from toolcall.dialects.moss import MossDialect
from toolcall.dialects.toolformer import ToolformerDialect
from toolcall.errors import ConfigError
from toolcall.registry import ToolRegistry, default_registry, make_tool

TF = ToolformerDialect()
MOSS = MossDialect()
CHAT = FakeBackend().chat_prompt  # plain "role: text" lines


def convert_currency(amount: float, currency: str) -> str:
    """Convert an amount of money into euros.

    Args:
        amount: How much money.
        currency: The currency code, like USD.
    """
    return f"{amount} EUR"


def test_calculator_demos_use_the_bracket_form() -> None:
    messages = TF.messages("What is 3 + 4?", default_registry(["calculator"]).specs())
    assert messages[0]["role"] == "system" and "Calculator(expression)" in messages[0]["content"]
    assert any("[Calculator(24 * 15) -> 360] 360" in m["content"] for m in messages if m["role"] == "assistant")
    assert messages[-1] == {"role": "user", "content": "What is 3 + 4?"}


def test_custom_tool_gets_a_generated_line_with_its_example() -> None:
    custom = make_tool(convert_currency, example="[convert_currency(10, USD) -> 9.2 EUR]")
    messages = TF.messages("How much is 10 dollars?", ToolRegistry([custom]).specs(), few_shot=True)
    system = messages[0]["content"]
    assert "- convert_currency(amount, currency): Convert an amount of money into euros." in system
    assert "Example: [convert_currency(10, USD) -> 9.2 EUR]" in system
    assert len(messages) == 2  # no built-in demos for a custom tool


def test_few_shot_off_and_history_kept() -> None:
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    messages = TF.messages("next", default_registry(["calculator"]).specs(), history, few_shot=False)
    assert [m["content"] for m in messages[1:]] == ["hi", "hello", "next"]


@pytest.mark.parametrize(("few_shot", "pairs"), [(True, 5), (False, 0), (0, 0), (2, 2), (1, 1), (99, 5)])
def test_few_shot_counts_demonstrations(few_shot: int | bool, pairs: int) -> None:
    messages = TF.messages("q", default_registry(["calculator"]).specs(), few_shot=few_shot)
    assert len(messages) == 2 + 2 * pairs  # system, demo pairs, the question


def test_instruction_override_file(tmp_path: Path) -> None:
    path = tmp_path / "instr.txt"
    path.write_text("Use these:\n{tools}")
    messages = TF.messages("q", default_registry(["calculator"]).specs(), instruction=path)
    assert messages[0]["content"].startswith("Use these:\n- Calculator(expression)")
    with pytest.raises(ConfigError, match="could not be read"):
        TF.messages("q", default_registry(["calculator"]).specs(), instruction=tmp_path / "missing.txt")


def test_toolformer_prompt_uses_the_chat_template() -> None:
    prompt = TF.prompt("q?", default_registry(["calculator"]).specs(), CHAT)
    assert prompt.startswith("system: You are a helpful assistant") and prompt.endswith("user: q?\nassistant:")
    assert TF.prompt("q?", None, CHAT) == "user: q?\nassistant:"
    assert TF.prompt("q?", ToolRegistry().specs(), CHAT, history=[{"role": "user", "content": "hi"}]) == "user: hi\nuser: q?\nassistant:"
    seen: list[list[dict[str, str]]] = []
    TF.prompt("q?", default_registry(["calculator"]).specs(), lambda m: seen.append(list(m)) or "x", few_shot=1)
    assert [m["role"] for m in seen[0]] == ["system", "user", "assistant", "user"]


def test_demos_parse_as_toolformer_calls() -> None:
    for m in TF.messages("q", default_registry(None).specs()):
        if m["role"] == "assistant":
            parsed = TF.parse(m["content"])
            assert len(parsed.calls) == 1 and parsed.calls[0].result and not parsed.issues, m["content"]


def test_moss_meta_instruction_enable_lines() -> None:
    registry = default_registry(["calculator"])
    registry.add(convert_currency)
    meta = MOSS.meta_instruction(registry.specs())
    assert "- Calculator: enabled. API: Calculate(expression)" in meta
    assert "- Web search: disabled." in meta
    assert "- convert_currency: enabled. API: convert_currency(amount, currency) - Convert an amount of money into euros." in meta
    assert "- Calculator: disabled." in MOSS.meta_instruction(None)
    by_name = MOSS.meta_instruction(["Calculate", "Search", "Calendar"])
    assert "- Web search: enabled. API: Search(query)" in by_name and "- Calendar: enabled." in by_name


def test_moss_meta_override_file(tmp_path: Path) -> None:
    path = tmp_path / "meta.txt"
    path.write_text("You are MOSS.\n{plugins}\n")
    assert MOSS.meta_instruction(default_registry(["solve"]).specs(), path).startswith("You are MOSS.\n- Web search: disabled.")


def test_moss_prompt_layout_and_worked_turn() -> None:
    prompt = MOSS.prompt("What is 2+2?", default_registry(["calculator"]).specs(), CHAT,
                         history=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}])
    assert '<|Commands|>: Calculate("125*8")<eoc>\n<|Results|>:\nCalculate("125*8") => \'1000\'\n<eor>' in prompt
    assert "<|Human|>: hi<eoh>\n<|MOSS|>: Hello!<eom>\n" in prompt
    assert prompt.endswith("<|Human|>: What is 2+2?<eoh>\n<|Inner Thoughts|>:")
    # The worked turn parses as a MOSS call with its result.
    parsed = MOSS.parse(prompt)
    assert [(c.tool, c.args, c.result) for c in parsed.calls] == [("Calculate", ("125*8",), "1000")]


def test_moss_worked_turns_parse_and_few_shot_counts_them() -> None:
    registry = default_registry(["calculator", "search", "solve"]).specs()  # the tools as dialects see them: plain data
    turns = MOSS.example_turns(registry)
    parsed = MOSS.parse(turns)
    assert parsed.issues == [] and [c.tool for c in parsed.calls] == ["Calculate", "Search", "Solve"]
    search = parsed.calls[1]
    assert search.result == ("Pride and Prejudice is an 1813 novel by Jane Austen.\n"
                             "It was first published anonymously in London.")
    assert '<|1|>: "Pride and Prejudice' in turns
    assert MOSS.example_turns(registry, few_shot=1).count("<|Human|>:") == 1
    assert MOSS.example_turns(registry, few_shot=False) == ""
    assert "<eoh>" not in MOSS.prompt("q", registry, CHAT, few_shot=0).replace("<|Human|>: q<eoh>", "")


def test_prompts_are_package_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the data files are found relative to the package, not the working directory
    assert "Calculator" in TF.prompt("q", default_registry(["calculator"]).specs(), CHAT)
    assert "Capabilities and tools that MOSS can possess." in get_dialect("moss").prompt("q", None, CHAT)


def _called(question: str, names: list[str], few_shot: int | bool = True) -> list[str]:
    messages = TF.messages(question, default_registry(names).specs(), few_shot=few_shot)
    return [TF.parse(m["content"]).calls[0].tool for m in messages if m["role"] == "assistant"]


def test_toolformer_demos_of_the_tool_the_question_fits_come_last() -> None:
    three = ["calculator", "calendar", "wikisearch"]
    # A small model calls the tool of the examples nearest the question: grouped in the offered order, a math
    # question sat after the Calendar's and WikiSearch's examples.
    math = _called("One umbrella costs $1.50. What do 2 umbrellas cost?", three)
    assert math[-5:] == ["Calculator"] * 5 and math[:2] == ["Calendar", "WikiSearch"]
    assert _called("What day of the week will it be tomorrow?", three)[-1] == "Calendar"
    assert _called("Where is the Taj Mahal?", ["wikisearch", "calculator"])[-1] == "WikiSearch"
    # Nothing in common with any tool's examples: the offered order, as before.
    assert _called("Tell me something.", three) == ["Calculator"] * 5 + ["Calendar", "WikiSearch"]


def test_toolformer_demos_keep_each_tool_whole_and_one_tool_fixed() -> None:
    three = default_registry(["calculator", "calendar", "wikisearch"]).specs()
    alone = default_registry(["calculator"]).specs()
    replies = [m["content"] for m in TF.messages("How many eggs are left?", three) if m["role"] == "assistant"]
    only = [m["content"] for m in TF.messages("q", alone) if m["role"] == "assistant"]
    assert [r for r in replies if "[Calculator(" in r] == only           # a tool's examples keep their order
    # One tool: the same examples for every question, so the prompt's head is shared (a server's prefix cache).
    assert TF.messages("What day is it?", alone)[:-1] == TF.messages("How many eggs?", alone)[:-1]
    # few_shot K picks the first K in the offered order, then they are placed.
    three_names = ["calculator", "calendar", "wikisearch"]
    assert _called("What day of the week is it?", three_names, few_shot=2) == ["Calculator"] * 2
    assert _called("What day of the week is it?", three_names, few_shot=6) == ["Calculator"] * 5 + ["Calendar"]
    assert _called("How many eggs?", three_names, few_shot=7)[:2] == ["Calendar", "WikiSearch"]


def test_a_moss_reply_written_back_with_its_calls_opens_with_its_thoughts_field() -> None:
    """The server writes a reply with its calls back as one assistant turn starting with its thoughts: rendered after
    `<|MOSS|>:`, the thoughts and commands sat in the answer field, unlike every worked turn."""
    from toolcall.dialects import get_dialect

    moss = get_dialect("moss")
    whole = (' need math<eot>\n<|Commands|>: Calculator("17 * 23")<eoc>\n<|Results|>:\nCalculator("17 * 23") => '
             "'391'\n<eor>\n<|MOSS|>: It is 391.")
    history = [{"role": "user", "content": "What is 17 * 23?"}, {"role": "assistant", "content": whole},
               {"role": "user", "content": "thanks"}, {"role": "assistant", "content": "You are welcome."}]
    prompt = moss.prompt("again?", None, CHAT, history)
    assert f"<|Human|>: What is 17 * 23?<eoh>\n<|Inner Thoughts|>:{whole}<eom>\n" in prompt
    assert "<|Human|>: thanks<eoh>\n<|MOSS|>: You are welcome.<eom>\n" in prompt
    assert [c.tool for c in moss.parse(prompt).calls] == ["Calculator"]
