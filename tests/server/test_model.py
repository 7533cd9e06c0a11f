"""The server over the embedded model (greedy): a real tool call mid-generation, streaming equal to non-streaming,
and a forced client call that always parses (constrained call sampling)."""
from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from live_server import Live, serve

from toolcall.api import make_registry
from toolcall.loop import LoopConfig
from toolcall.server import ServerSettings

pytestmark = [pytest.mark.model, pytest.mark.slow]
NAME = "SmolLM2-135M-Instruct"
PENS = [{"role": "user", "content": "A shop sells 17 boxes with 23 pens in each box. How many pens is that?"}]


@pytest.fixture(scope="module")
def model_server() -> Iterator[Live]:
    from toolcall.backends.transformers import TransformersBackend

    backend = TransformersBackend()
    settings = ServerSettings(NAME, make_registry(["calculator"]), LoopConfig(trigger_top_k=10, max_new_tokens=40))
    yield from serve(backend, settings)


def test_model_calls_the_calculator_and_streams_the_same_text(model_server: Live) -> None:
    client = model_server.client(timeout=600)
    whole = client.chat.completions.create(model=NAME, messages=PENS, max_tokens=40)
    message = whole.choices[0].message
    runs = message.model_extra["tool_runs"]
    assert runs and runs[0]["tool"] == "Calculator" and runs[0]["result"] == "391"
    chunks = list(client.chat.completions.create(model=NAME, messages=PENS, max_tokens=40, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == [whole.choices[0].finish_reason]


def test_required_tool_choice_forces_a_call_that_parses(model_server: Live) -> None:
    tool = {"type": "function", "function": {
        "name": "lookup_price", "description": "The price of some items in a shop.",
        "parameters": {"type": "object", "properties": {"item": {"type": "string", "enum": ["pen", "pencil"]},
                                                        "count": {"type": "integer"}},
                       "required": ["item", "count"]}}}
    reply = model_server.client(timeout=600).chat.completions.create(
        model=NAME, messages=[{"role": "user", "content": "How much do 3 pens cost?"}], tools=[tool],
        tool_choice={"type": "function", "function": {"name": "lookup_price"}}, max_tokens=40)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    arguments = json.loads(call.function.arguments)
    assert call.function.name == "lookup_price" and set(arguments) == {"item", "count"}
    assert arguments["item"] in ("pen", "pencil") and isinstance(arguments["count"], int)


@pytest.fixture(scope="module")
def hermes_server() -> Iterator[Live]:
    from toolcall.backends.transformers import TransformersBackend

    settings = ServerSettings(NAME, None, LoopConfig(max_new_tokens=60))
    yield from serve(TransformersBackend(), settings, dialect="hermes")


def test_hermes_client_tools_flow_on_the_embedded_model(hermes_server: Live) -> None:
    """tools -> tool_calls (a forced call, its JSON arguments under the tool's schema) -> role: tool -> the answer."""
    weather = {"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city now.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    client = hermes_server.client(timeout=600)
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(model=NAME, messages=ask, tools=[weather], tool_choice="required",
                                           max_tokens=40)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and isinstance(json.loads(call.function.arguments)["city"], str)
    messages = ask + [choice.message.model_dump(exclude_none=True, exclude={"tool_runs"}),
                      {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 degrees."}]
    second = client.chat.completions.create(model=NAME, messages=messages, tools=[weather], max_tokens=40)
    answer = second.choices[0]
    assert answer.finish_reason in ("stop", "length") and answer.message.tool_calls is None
    assert answer.message.content and "<tool_" not in answer.message.content
    streamed = client.chat.completions.create(model=NAME, messages=messages, tools=[weather], max_tokens=40,
                                              stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == answer.message.content


def test_a_structured_output_request_gets_its_object(model_server: Live) -> None:
    """openai-python's `.parse()` (LangChain's with_structured_output and the AI SDK's generateObject send the same
    response_format): the 135M model's reply is held to the schema, so it always parses."""
    pydantic = pytest.importorskip("pydantic")

    class Order(pydantic.BaseModel):
        item: str
        boxes: int
        pens_per_box: int

    reply = model_server.client(timeout=600).chat.completions.parse(
        model=NAME, messages=[{"role": "user", "content": PENS[0]["content"] + " Give the order as JSON."}],
        response_format=Order, max_tokens=60)
    assert isinstance(reply.choices[0].message.parsed, Order)
    assert reply.choices[0].finish_reason == "stop"
