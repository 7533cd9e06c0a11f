"""The conversation from OpenAI messages: client calls and their results written back in any dialect's own form."""
from __future__ import annotations

import pytest

from toolcall.dialects import get_dialect
from toolcall.server.conversation import conversation
from toolcall.server.protocol import ApiError, Message
from toolcall.specs import ToolSpec, ToolSpecs

WEATHER = ToolSpecs([ToolSpec("w", "Weather.", {"type": "object", "properties": {"city": {"type": "string"}},
                                                  "required": ["city"]})])


def exchange(content: str = "Checking.", calls: tuple[tuple[str, str], ...] = (("c1", "Oslo"),)) -> list[Message]:
    return [Message(role="system", content="Be brief."), Message(role="user", content="Weather?"),
            Message.model_validate({"role": "assistant", "content": content, "tool_calls": [
                {"id": i, "type": "function", "function": {"name": "w", "arguments": f'{{"city": "{c}"}}'}}
                for i, c in calls]}),
            *[Message(role="tool", tool_call_id=i, content=f"rain in {c}") for i, c in calls]]


def test_conversation_puts_client_results_back_inline() -> None:
    messages = [*exchange(), Message(role="assistant", content=" It rains."), Message(role="user", content="Thanks")]
    talk = conversation(messages, get_dialect("toolformer"), WEATHER)
    assert talk.question == "Thanks" and talk.tail == ""
    assert talk.history == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather?"},
                            {"role": "assistant", "content": "Checking. [w(Oslo) -> rain in Oslo] It rains."}]
    talk = conversation(exchange(), get_dialect("toolformer"), WEATHER)
    assert talk.question == "Weather?" and talk.tail == "Checking. [w(Oslo) -> rain in Oslo]"


@pytest.mark.parametrize("name", ["hermes", "pythonic", "llama3_json", "mistral", "moss", "toolformer"])
def test_every_dialect_writes_client_calls_back_as_its_own_calls_and_results(name: str) -> None:
    dialect = get_dialect(name)
    calls = (("c1", "Oslo"),) if name in ("toolformer", "llama3_json") else (("c1", "Oslo"), ("c2", "Rome"))
    tail = conversation(exchange("", calls), dialect, WEATHER).tail
    parsed = dialect.parse(tail)
    assert [(c.tool, c.result) for c in parsed.calls] == [("w", f"rain in {c}") for _, c in calls]
    assert not parsed.issues


def test_toolformer_writes_parallel_client_calls_one_after_another() -> None:
    tail = conversation(exchange("", (("c1", "Oslo"), ("c2", "Rome"))), get_dialect("toolformer"), WEATHER).tail
    assert tail == "[w(Oslo) -> rain in Oslo] [w(Rome) -> rain in Rome]"


@pytest.mark.parametrize("change, message", [
    (lambda m: m[:-1], "without a tool message"),
    (lambda m: [*m, Message(role="tool", tool_call_id="c1", content="again")], "no open call has id 'c1'"),
    (lambda m: [*m, Message(role="tool", tool_call_id="zz", content="x")], "no open call has id"),
    (lambda m: [*m, Message(role="user", content="more"), *exchange()[2:]], "used twice"),
])
def test_broken_histories_are_400s(change, message: str) -> None:
    with pytest.raises(ApiError) as err:
        conversation(change(exchange()), get_dialect("hermes"), WEATHER)
    assert err.value.status == 400 and message in err.value.message


def test_a_call_answered_twice_is_a_400() -> None:
    messages = exchange("", (("c1", "Oslo"), ("c2", "Rome")))
    messages.insert(4, Message(role="tool", tool_call_id="c1", content="again"))
    with pytest.raises(ApiError, match="answered twice"):
        conversation(messages, get_dialect("hermes"), WEATHER)


def test_a_call_of_an_undeclared_function_or_with_bad_json_is_a_400() -> None:
    bad_name = exchange()
    bad_name[2] = Message.model_validate({"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "nope", "arguments": "{}"}}]})
    with pytest.raises(ApiError, match="not among the request's tools"):
        conversation(bad_name, get_dialect("hermes"), WEATHER)
    bad_json = exchange()
    bad_json[2] = Message.model_validate({"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "[1]"}}]})
    with pytest.raises(ApiError, match="must be a JSON object"):
        conversation(bad_json, get_dialect("hermes"), WEATHER)
