"""A reply held to JSON (LoopConfig.json_schema, the server's response_format) with tools offered: in hermes it may
call them before its answer, each call held to its function's schema; in the other dialects it runs none."""
from __future__ import annotations

import json

import pytest

from toolcall.backends.fake import FakeBackend
from toolcall.dialects import get_dialect
from toolcall.errors import ConfigError
from toolcall.loop import Handoff, LoopConfig, answer_or_calls_grammar, calls_before_json, offers_tools
from toolcall.registry import ToolRegistry
from toolcall.runner import run_loop

HERMES = get_dialect("hermes")
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "summary": {"type": "string"}},
          "required": ["city", "summary"], "additionalProperties": False}
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
ANSWER = '{"city": "Paris", "summary": "Sunny"}'


def get_weather(city: str) -> str:
    """Current weather in a city.

    Args:
        city: The city.
    """
    return "Sunny, 21 C"


def test_only_dialects_whose_calls_stand_apart_call_before_a_json_answer() -> None:
    from toolcall.dialects.toolformer import ToolformerDialect

    assert calls_before_json(HERMES)
    for name in ("toolformer", "pythonic", "llama3_json", "mistral", "moss"):
        assert not calls_before_json(get_dialect(name)), name
    # Toolformer's tagged spelling opens with <API>, which no JSON starts with, but it has no call grammar: a held
    # reply there was a ConfigError.
    tagged = ToolformerDialect("tagged")
    assert not calls_before_json(tagged)
    backend = FakeBackend(script=['{"city": "Paris", "summary": "Sunny"}'])
    registry = ToolRegistry([get_weather])
    result = run_loop(backend, "Weather in Paris?", tagged, registry, LoopConfig(json_schema=json.dumps(SCHEMA)))
    assert result.text == result.answer == '{"city": "Paris", "summary": "Sunny"}' and result.calls == []
    assert run_loop(FakeBackend(script=["Sunny."]), "Weather?", HERMES, registry, LoopConfig()).answer is None
    held = LoopConfig(json_schema=json.dumps(SCHEMA))
    assert offers_tools(held, HERMES) and not offers_tools(held, get_dialect("toolformer"))
    assert not offers_tools(LoopConfig(json_schema="{}", tools_enabled=False), HERMES)


def test_the_grammar_takes_the_answer_or_a_call_and_nothing_else() -> None:
    registry = ToolRegistry([get_weather])
    grammar = answer_or_calls_grammar(json.dumps(SCHEMA), HERMES, registry.specs())
    backend = FakeBackend()
    backend.lm.token_id("\n")  # the toy vocabulary spells printable characters; a hermes call has line breaks too
    masks = backend._token_masks()
    vocabulary = backend.lm.vocabulary()

    def takes(text: str) -> bool:
        (matcher,) = masks.matchers(grammar, 1)
        for char in text:
            token = vocabulary.index(char) if char in vocabulary else None
            if token is None or not masks.allowed([matcher])[0][token]:
                return False
            masks.consume(matcher, token)
        return bool(matcher.is_accepting())

    assert takes(ANSWER) and takes(CALL)
    assert not takes("It is sunny in Paris.")                                     # prose: neither
    assert not takes('{"city": "Paris"}')                                          # the schema's required summary
    assert not takes(CALL.replace("get_weather", "get_time"))                      # a function not offered
    assert not takes(CALL.replace('"city": "Paris"', '"town": "Paris"'))           # arguments off its schema
    assert not takes(CALL + "\n" + ANSWER)                                         # one decode: the call ends it
    with pytest.raises(ConfigError, match="no call grammar"):
        answer_or_calls_grammar(json.dumps(SCHEMA), get_dialect("mistral"), registry.specs())


def test_a_held_reply_calls_first_then_answers_under_the_same_grammar() -> None:
    backend = FakeBackend(script=[CALL, ANSWER])
    registry = ToolRegistry([get_weather])
    config = LoopConfig(json_schema=json.dumps(SCHEMA), call_threshold=0.5)
    prompt = HERMES.prompt("Weather in Paris?", registry.specs(), FakeBackend().chat_prompt)
    assert "get_weather" in prompt
    result = run_loop(backend, prompt, HERMES, registry, config)
    assert [c.tool for c in result.calls] == ["get_weather"] and result.calls[0].result == "Sunny, 21 C"
    assert result.text.endswith(ANSWER) and result.stop_reason == "eos" and result.answer == ANSWER
    for stop, _, steering in backend.calls:
        assert "</tool_call>" in stop
        assert steering.open_text is None and steering.call_open and "reply_call" in steering.constrain
        assert steering.held_opener == "<tool_call>" and steering.min_open_prob == 0.5


def test_after_calls_handed_back_it_only_looks_for_more_calls() -> None:
    """What the model writes after a handed-back call is never shown; held to the answer there, a model that would
    have ended wrote the call again and again (measured on the generalist adapter: 3 calls where free it wrote 1)."""
    from toolcall.loop import answered, decode_with_tools

    backend = FakeBackend(script=[CALL, "\nThe weather is fine."])
    registry = ToolRegistry([get_weather])
    config = LoopConfig(json_schema=json.dumps(SCHEMA))
    session = backend.start(HERMES.prompt("Weather in Paris?", registry.specs(), FakeBackend().chat_prompt))
    events = list(answered(decode_with_tools(session, HERMES, registry.specs(), config), lambda request: Handoff()))
    done = events[-1].result  # type: ignore[attr-defined]
    assert [r.tool for r in done.handed_off] == ["get_weather"] and done.stop_reason == "tool_calls"
    assert done.answer is None
    (_, _, held), (_, _, after) = backend.calls
    assert "reply_call" in held.constrain
    assert after is None or (after.constrain is None and not after.call_open)


def test_a_forced_call_opens_first_and_the_answer_is_held_after_it() -> None:
    backend = FakeBackend(script=[CALL.removeprefix("<tool_call>"), ANSWER])
    registry = ToolRegistry([get_weather])
    config = LoopConfig(json_schema=json.dumps(SCHEMA), force_call=True)
    result = run_loop(backend, HERMES.prompt("Weather in Paris?", registry.specs(), FakeBackend().chat_prompt), HERMES, registry, config)
    assert [c.tool for c in result.calls] == ["get_weather"] and result.text.endswith(ANSWER)
    (_, _, forced), (_, _, held) = backend.calls
    assert forced.open_text == "<tool_call>" and forced.call_open and "reply_json" not in (forced.constrain or "")
    assert "reply_call" in held.constrain


def test_in_other_dialects_a_held_reply_runs_no_tools() -> None:
    toolformer = get_dialect("toolformer")
    backend = FakeBackend(script=['{"city": "Paris", "summary": "[get_weather(Paris)]"}'])
    registry = ToolRegistry([get_weather])
    config = LoopConfig(json_schema=json.dumps(SCHEMA))
    result = run_loop(backend, "Weather in Paris?", toolformer, registry, config)
    assert result.calls == []
    (_, _, steering), = backend.calls
    assert steering.constrain.startswith("start: %json ")
