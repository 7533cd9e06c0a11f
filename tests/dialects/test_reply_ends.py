"""How a reply ends, as each dialect reads it: more calls after handed-off ones, and a call the token limit cut."""
from __future__ import annotations

import pytest

from toolcall.dialects import get_dialect


@pytest.mark.parametrize("dialect, text, more", [
    ("hermes", "", True), ("hermes", "\n<tool", True), ("hermes", '\n\n<tool_call>\n{"name": "f"', True),
    ("hermes", "\nDone.", False), ("hermes", "\n<tool_response>", False),
    ("llama3_json", " ", True), ("llama3_json", "; ", True), ("llama3_json", ';\n{"name"', True),
    ("llama3_json", " and", False), ("llama3_json", '; and', False), ("llama3_json", '{"name"', False),
    ("pythonic", "[f()]", False), ("mistral", "", False), ("toolformer", "", False), ("moss", "", False),
])
def test_continues_calls(dialect: str, text: str, more: bool) -> None:
    assert get_dialect(dialect).continues_calls(text) is more


@pytest.mark.parametrize("dialect, text, call", [
    ("hermes", '<tool_call>\n{"name": "get_weather", "argu', True),
    ("hermes", '<tool_call>\n{"name": "get_weather", "arguments": {}}\n', True),
    ("hermes", "<tool_call> tags wrap a call.", False),
    ("pythonic", "[get_weather(city='Par", True), ("pythonic", "[see above", False), ("pythonic", "[1, 2] x", False),
    ("llama3_json", '{"name": "get_weather", "parameters": {"city": "Pa', True), ("llama3_json", "{x}", False),
    ("mistral", '[TOOL_CALLS][{"name": "f", "argu', True), ("mistral", "[TOOL_CALLS], a token", False),
    ("toolformer", "[Calculator(17 * ", True), ("toolformer", "[sic]", False),
    ("moss", '<|Commands|>: Calculator("17', True),
])
def test_begins_call(dialect: str, text: str, call: bool) -> None:
    assert get_dialect(dialect).begins_call(text) is call
