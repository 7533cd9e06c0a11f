"""response_format: a reply held to JSON (any object, or a schema) from its first token, as the structured-output
paths of LangChain, the AI SDK, instructor and openai-python's `.parse()` ask for; with tools in hermes, calls
before it (the Agents SDK's `output_type`); refused where it cannot hold."""
from __future__ import annotations

from typing import Any

import pytest
from live_server import MODEL, WEATHER, SlowFake, serve, settings

httpx = pytest.importorskip("httpx")

PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}
ASK = [{"role": "user", "content": "Alice is 31. Give her as JSON."}]


def _post(url: str, **body: Any) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json={"model": MODEL, "messages": ASK, **body}, timeout=60)


def test_a_json_reply_is_decoded_under_its_schema_with_no_tools_offered() -> None:
    backend = SlowFake(script=lambda text: '{"name": "Alice", "age": 31}')
    for live in serve(backend, settings()):
        for form, schema in (({"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON,
                                                                       "strict": True}}, PERSON),
                             ({"type": "json_object"}, {"type": "object"})):
            response = _post(live.url, response_format=form)
            assert response.status_code == 200, response.text
            assert response.json()["choices"][0]["message"]["content"] == '{"name": "Alice", "age": 31}'
            stops, _, steering = backend.calls[-1]
            assert steering.open_text is None and steering.call_open
            assert steering.constrain.startswith("start: %json ") and f'"type": "{schema["type"]}"' in steering.constrain
            assert "Calculator" not in backend.prompts[-1]  # no tool is offered to a JSON reply
        assert _post(live.url, response_format={"type": "text"}).status_code == 200


def test_openai_pythons_parse_gets_the_object() -> None:
    pydantic = pytest.importorskip("pydantic")

    class Person(pydantic.BaseModel):
        name: str
        age: int

    for live in serve(SlowFake(script=lambda text: '{"name": "Alice", "age": 31}'), settings()):
        parsed = live.client().chat.completions.parse(model=MODEL, messages=ASK, response_format=Person)
        assert parsed.choices[0].message.parsed == Person(name="Alice", age=31)


def test_in_hermes_a_json_reply_may_call_the_tools_first() -> None:
    """The OpenAI Agents SDK's `output_type` with tools: `response_format` and `tools` in one request. The client's
    function is offered and its call handed back; with its result the answer is the object, under the same grammar."""
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    backend = SlowFake(script=[call, "", '{"name": "Paris", "age": 2000}'])  # "": after the call, it ends
    output = {"type": "json_schema", "json_schema": {"name": "final_output", "schema": PERSON}}
    for live in serve(backend, settings(), dialect="hermes"):
        first = _post(live.url, response_format=output, tools=[WEATHER])
        assert first.status_code == 200, first.text
        choice = first.json()["choices"][0]
        assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
        (handed,) = choice["message"]["tool_calls"]
        assert handed["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
        assert "get_weather" in backend.prompts[-1] and "Calculator" in backend.prompts[-1]  # server tools too
        _, _, steering = backend.calls[0]
        assert "reply_json: %json " in steering.constrain and "get_weather" in steering.constrain
        answered = [*ASK, choice["message"], {"role": "tool", "tool_call_id": handed["id"], "content": "sunny"}]
        second = httpx.post(live.url + "/v1/chat/completions", timeout=60, json={
            "model": MODEL, "messages": answered, "tools": [WEATHER], "response_format": output})
        assert second.status_code == 200, second.text
        assert second.json()["choices"][0]["message"]["content"] == '{"name": "Paris", "age": 2000}'
        assert "reply_call" in backend.calls[-1][2].constrain


def test_a_server_tool_whose_schema_cannot_be_held_leaves_the_json_reply_without_tools() -> None:
    """A server tool (an MCP server's, say) whose schema llguidance refuses (a backreference) made every
    response_format request a 400 once the reply could call tools; now such a reply runs none, as elsewhere."""
    from toolcall.loop import LoopConfig
    from toolcall.registry import ToolRegistry
    from toolcall.server import ServerSettings
    from toolcall.tool_type import Tool

    def lookup(code: str) -> str:
        return "x"

    odd = Tool(name="lookup", description="Look up a code.", func=lookup, parameters={
        "type": "object", "properties": {"code": {"type": "string", "pattern": "^(a)\\1$"}}, "required": ["code"]})
    backend = SlowFake(script=lambda text: '{"name": "Alice", "age": 31}')
    for live in serve(backend, ServerSettings(MODEL, ToolRegistry([odd]), LoopConfig()), dialect="hermes"):
        response = _post(live.url, response_format={"type": "json_object"})
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"] == '{"name": "Alice", "age": 31}'
        assert "lookup" not in backend.prompts[-1] and backend.calls[-1][2].constrain.startswith("start: %json ")
        # The request's own function with such a schema is still refused, as any unholdable schema is.
        weather = {"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string", "pattern": "^(a)\\1$"}}}}}
        refused = _post(live.url, response_format={"type": "json_object"}, tools=[weather])
        assert refused.status_code == 400 and "tools' schemas" in refused.json()["error"]["message"]


@pytest.mark.parametrize(("body", "dialect", "says"), [
    ({"response_format": {"type": "json_object"}, "tools": [WEATHER]}, "toolformer", "cannot call the request's tools"),
    ({"response_format": {"type": "json_object"}}, "moss", "writes its answer in a field"),
    ({"response_format": {"type": "json_schema"}}, "toolformer", "needs its json_schema object"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "objekt"}}}},
     "toolformer", "response_format"),
    ({"response_format": {"type": "xml"}}, "toolformer", "response_format"),
])
def test_what_cannot_be_held_is_a_400(body: dict[str, Any], dialect: str, says: str) -> None:
    for live in serve(SlowFake(script=lambda text: "{}"), settings(), dialect=dialect):
        response = _post(live.url, **body)
        assert response.status_code == 400 and says in response.json()["error"]["message"], response.text
        assert response.json()["error"]["param"].startswith("response_format")
    # With tool_choice "none" the tools are not offered, so the JSON reply may be held.
    for live in serve(SlowFake(script=lambda text: "{}"), settings()):
        assert _post(live.url, response_format={"type": "json_object"}, tools=[WEATHER],
                     tool_choice="none").status_code == 200
