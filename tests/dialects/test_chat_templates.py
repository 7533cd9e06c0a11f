"""Prompts from the model's own chat template: tools handed to the template, results as `role: tool` messages, the
dialect read from the template, and the loop running a hermes call on a checkpoint whose template uses hermes."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from script_module import TESTS, load_script

from toolcall.backends.fake import FakeBackend
from toolcall.dialects import dialect_for_template, get_dialect
from toolcall.loop import LoopConfig
from toolcall.registry import ToolRegistry
from toolcall.runner import run_loop

# A ChatML template that offers tools the Hermes way (written for these tests): the schemas in <tools> in the system
# turn, calls in <tool_call> tags, results of `role: tool` messages in <tool_response> tags in a user turn.
HERMES_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\n"
    "{%- if messages[0].role == 'system' %}{{ messages[0].content }}\n\n{% endif %}"
    "Functions you may call:\n<tools>\n{%- for t in tools %}\n{{ t | tojson }}{%- endfor %}\n</tools>\n"
    "Call one as <tool_call>\n{\"name\": <name>, \"arguments\": <object>}\n</tool_call><|im_end|>\n"
    "{%- elif messages[0].role == 'system' %}<|im_start|>system\n{{ messages[0].content }}<|im_end|>\n{%- endif %}"
    "{%- for m in messages %}{%- if m.role == 'tool' %}\n<|im_start|>user\n<tool_response>\n{{ m.content }}\n"
    "</tool_response><|im_end|>{%- elif m.role != 'system' %}\n<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>"
    "{%- endif %}{%- endfor %}{%- if add_generation_prompt %}\n<|im_start|>assistant\n{%- endif %}")


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


def registry() -> ToolRegistry:
    return ToolRegistry([add])


@lru_cache(maxsize=1)
def tiny() -> tuple[Any, Any]:
    """The tests' tiny random Llama and its offline-trained tokenizer, the tokenizer given the hermes template."""
    module = load_script(TESTS / "data_gen" / "tiny_lm.py")
    model, tok = module.tiny_model_and_tokenizer()
    tok.chat_template = HERMES_TEMPLATE
    return model, tok


def templated_fake(script: list[str]) -> FakeBackend:
    """The fake backend with a tokenizer that carries the hermes template (Backend.chat_prompt reads `tokenizer`)."""
    backend = FakeBackend(script=script)
    backend.tokenizer = tiny()[1]  # type: ignore[attr-defined]
    return backend


def test_the_template_names_its_dialect() -> None:
    assert dialect_for_template(HERMES_TEMPLATE) == "hermes"


def test_chat_prompt_passes_tools_to_the_template() -> None:
    backend = templated_fake([])
    messages = [{"role": "user", "content": "Add 2 and 3."}]
    with_tools = backend.chat_prompt(messages, tools=registry().schemas())
    assert json.dumps(registry().schemas()[0]) in with_tools and "<tool_call>" in with_tools
    assert backend.chat_prompt(messages) == backend.chat_prompt(messages, tools=None)
    assert "<tools>" not in backend.chat_prompt(messages)


def test_hermes_prompt_uses_the_template_and_tool_messages() -> None:
    backend = templated_fake([])
    history = [{"role": "user", "content": "Add 1 and 1."},
               {"role": "assistant", "content": '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 1}}\n</tool_call>'},
               {"role": "tool", "content": "2"}, {"role": "assistant", "content": "It is 2."}]
    prompt = get_dialect("hermes").prompt("Add 2 and 3.", registry().specs(), backend.chat_prompt, history)
    assert prompt.count('"name": "add"') == 2 and "Functions you may call" in prompt  # the template's own words
    assert "<tool_response>\n2\n</tool_response>" in prompt
    assert prompt.endswith("Add 2 and 3.<|im_end|><|im_start|>assistant")
    parsed = get_dialect("hermes").parse(prompt)
    assert [(c.tool, dict(c.args), c.result) for c in parsed.calls] == [("add", {"a": 1, "b": 1}, "2")]


@pytest.mark.parametrize("name", ["hermes", "pythonic", "llama3_json", "mistral"])
def test_without_a_template_the_dialect_offers_the_tools(name: str) -> None:
    backend = FakeBackend(script=[])  # no tokenizer: plain role lines, tools not shown by the template
    history = [{"role": "user", "content": "Add 1 and 1."}, {"role": "tool", "content": "2"}]
    prompt = get_dialect(name).prompt("Add 2 and 3.", registry().specs(), backend.chat_prompt, history)
    assert prompt.startswith("system: ") and '"name": "add"' in prompt
    example = get_dialect(name).parse(prompt.split("To call a tool, write exactly:\n")[1].split("\nwith the tool's")[0])
    assert [c.tool for c in example.calls][:1] == ["tool_name"]  # the instruction shows a call in this format
    assert "tool: 2" not in prompt and "user: " in prompt  # the result shown the dialect's way, in a user turn
    assert get_dialect(name).prompt("Hi", None, backend.chat_prompt) == "user: Hi\nassistant:"


def test_instruction_file_replaces_the_tools_text(tmp_path: Path) -> None:
    path = tmp_path / "system.txt"
    path.write_text("Only these tools:\n{tools}", encoding="utf-8")
    prompt = get_dialect("hermes").prompt("Add 2 and 3.", registry().specs(), templated_fake([]).chat_prompt, instruction=path)
    assert "Only these tools:\n{" in prompt and "Functions you may call" not in prompt


def test_loop_runs_a_hermes_call_on_a_hermes_template() -> None:
    script = ['I will add them.\n<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>',
              "The sum is 5."]
    backend = templated_fake(script)
    hermes = get_dialect(dialect_for_template(backend.tokenizer.chat_template) or "toolformer")  # type: ignore[attr-defined]
    prompt = hermes.prompt("Add 2 and 3.", registry().specs(), backend.chat_prompt)
    result = run_loop(backend, prompt, hermes, registry(), LoopConfig(max_new_tokens=200))
    assert [(r.tool, dict(r.args), r.result, r.ok) for r in result.calls] == [("add", {"a": 2, "b": 3}, "5", True)]
    assert result.calls[0].to_dict()["args"] == {"a": 2, "b": 3}
    assert "</tool_call>\n<tool_response>\n5\n</tool_response>\nThe sum is 5." in result.text
    assert [(c.tool, c.result) for c in hermes.parse(result.text).calls] == [("add", "5")]
    assert hermes.reply(result.text, keep_calls=False) == "I will add them. The sum is 5."


def test_loop_reports_bad_keyword_arguments_as_results() -> None:
    script = ['<tool_call>\n{"name": "add", "arguments": {"a": 2, "c": 3}}\n</tool_call>', "Oops."]
    result = run_loop(FakeBackend(script=script), "Add.", get_dialect("hermes"), registry())
    assert not result.calls[0].ok and "unexpected argument 'c'" in result.calls[0].result
    assert "<tool_response>\nError: add: unexpected argument 'c'" in result.text


@pytest.mark.slow
def test_tiny_transformers_model_with_a_hermes_template() -> None:
    """A real tokenizer and engine: the prompt carries the tools, and the loop runs with the hermes dialect."""
    from toolcall.backends.transformers import TransformersBackend

    model, tok = tiny()
    backend = TransformersBackend(lm=model, tokenizer=tok)
    hermes = get_dialect(dialect_for_template(tok.chat_template) or "toolformer")
    prompt = hermes.prompt("Add 2 and 3.", registry().specs(), backend.chat_prompt)
    assert '"name": "add"' in prompt and "<tool_call>" in prompt
    result = run_loop(backend, prompt, hermes, registry(), LoopConfig(max_new_tokens=12))
    assert result.prompt == prompt and result.stop_reason in ("length", "eos", "stop")


def test_auto_dialect_follows_the_template() -> None:
    from toolcall.api import make_dialect

    assert make_dialect("auto", templated_fake([])).name == "hermes"
    assert make_dialect("auto", FakeBackend(script=[])).name == "toolformer"  # no template: the default
    assert make_dialect("moss", templated_fake([])).name == "moss"  # a named dialect overrides the template
    assert dialect_for_template({"default": "{{ m }}", "tool_use": "<tool_call>"}) == "hermes"
