"""The Responses API (/v1/responses) over the live server (fake backend), driven by the real openai client: the same
replies as chat completions, written as output items and stream events; client functions handed back and answered
as items; errors said in the Responses request's own terms."""
from __future__ import annotations

import json
from typing import Any

import pytest
from live_server import MODEL, WEATHER, Live, SlowFake, serve, settings
from test_client_tools import moss_model, moss_two_rounds, server_then_client

httpx = pytest.importorskip("httpx")
pytest.importorskip("openai", reason="the tests drive the server with the openai client (the [dev] extra)")

TOOL = {"type": "function", **WEATHER["function"]}  # the Responses API writes a function flat
CALC = "What is 17 * 23?"


def post(live: Live, **body: Any) -> httpx.Response:
    return httpx.post(live.url + "/v1/responses", json={"model": MODEL, **body}, timeout=60)


def test_a_reply_is_a_response_with_its_text_usage_and_tool_runs(live: Live) -> None:
    response = live.client().responses.create(model=MODEL, input=CALC)
    chat = live.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": CALC}])
    assert response.object == "response" and response.id.startswith("resp_") and response.status == "completed"
    assert response.model == MODEL and response.created_at > 1_600_000_000 and response.error is None
    (message,) = response.output
    assert message.type == "message" and message.role == "assistant" and message.status == "completed"
    assert message.id.startswith("msg_") and message.content[0].type == "output_text"
    assert response.output_text == chat.choices[0].message.content == "Let me compute: so the answer is 391."
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens) == (chat.usage.prompt_tokens, chat.usage.completion_tokens)
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0 and usage.output_tokens_details.reasoning_tokens == 0
    (run,) = response.model_extra["tool_runs"]
    assert run["tool"] == "Calculator" and run["result"] == "391" and "status" not in run
    assert response.tools == [] and response.tool_choice == "auto" and response.parallel_tool_calls
    assert response.store is False and response.text.format.type == "text"
    from openai.types.responses import Response

    Response.model_validate(post(live, input=CALC).json())  # every field openai's types require, of its type


def test_the_stream_builds_the_same_response_through_openais_own_accumulator(live: Live) -> None:
    """openai-python's `responses.stream` checks every event against what it has built (an item's identity, its
    index, no unfinished item at the end) and raises where they disagree."""
    whole = live.client().responses.create(model=MODEL, input=CALC)
    with live.client().responses.stream(model=MODEL, input=CALC) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert final.output_text == whole.output_text and final.status == "completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    runs = [e.model_extra["run"] for e in events if e.type == "toolcall.tool_run"]
    assert [r["status"] for r in runs] == ["running", "done"] and runs[1]["result"] == "391"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == whole.output_text
    assert final.usage is not None and final.usage.output_tokens == whole.usage.output_tokens
    raw = httpx.post(live.url + "/v1/responses", json={"model": MODEL, "input": CALC, "stream": True}, timeout=60)
    frames = [f for f in raw.text.split("\n\n") if f]
    assert all(f.startswith("event: ") and "\ndata: " in f for f in frames)  # each event named, as OpenAI sends it
    assert json.loads(frames[-1].split("data: ", 1)[1])["type"] == "response.completed"


def test_a_client_function_is_handed_back_as_a_function_call_item_and_answered_with_its_output(live: Live) -> None:
    client = live.client()
    asked = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.responses.create(model=MODEL, input=asked, tools=[TOOL])
    said, call = first.output
    assert said.type == "message" and said.content[0].text == "I will look it up."
    assert call.type == "function_call" and call.id.startswith("fc_") and call.status == "completed"
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris", "unit": "celsius"}
    assert first.tools[0].name == "get_weather" and first.status == "completed"
    chat = client.chat.completions.create(model=MODEL, messages=asked, tools=[WEATHER]).choices[0].message
    assert chat.content == said.content[0].text and chat.tool_calls[0].function.arguments == call.arguments
    # The items come back as the client got them, ids and status included, with the call's output.
    answered = [*asked, *[o.model_dump(exclude_none=True) for o in first.output],
                {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}]
    second = client.responses.create(model=MODEL, input=answered, tools=[TOOL])
    assert second.output_text == "It is sunny in Paris."
    prompt = live.backend.prompts[-1]
    # The same conversation over chat completions is written into the same prompt.
    messages = [*asked, chat.model_dump(exclude_none=True, exclude={"tool_runs"}),
                {"role": "tool", "tool_call_id": chat.tool_calls[0].id, "content": "sunny"}]
    client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER])
    assert live.backend.prompts[-1] == prompt.replace(call.call_id, chat.tool_calls[0].id)
    streamed = list(client.responses.create(model=MODEL, input=asked, tools=[TOOL], stream=True))
    (done,) = [e for e in streamed if e.type == "response.function_call_arguments.done"]
    assert done.arguments == "".join(e.delta for e in streamed if e.type == "response.function_call_arguments.delta")
    assert json.loads(done.arguments) == {"city": "Paris", "unit": "celsius"}


def test_a_server_tools_work_before_a_client_call_is_kept_for_the_continuation() -> None:
    """The server remembers a reply that ran its own tool before handing the client's call back; the items the client
    sends back find it, as the same chat messages do."""
    for live in serve(SlowFake(script=server_then_client("hermes")), settings(), dialect="hermes"):
        asked: list[Any] = [{"role": "user", "content": "17 * 23, and the weather in Paris?"}]
        reply = live.client().responses.create(model=MODEL, input=asked, tools=[TOOL])
        assert reply.model_extra["tool_runs"][0]["result"] == "391" and "391" not in reply.output_text
        call = reply.output[-1]
        sent = [o.model_dump(exclude_none=True) for o in reply.output]
        for edited in (False, True):
            back = [{**sent[0], "content": [{"type": "output_text", "text": "I edited this."}]}, *sent[1:]] \
                if edited else sent
            more = [*asked, *back, {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}]
            answer = live.client().responses.create(model=MODEL, input=more, tools=[TOOL])
            assert answer.output_text == "Sunny, and 391."
            prompt = live.backend.prompts[-1]
            assert ("391" in prompt) is not edited and ("I edited this." in prompt) is edited


def test_moss_thoughts_are_a_reasoning_item_and_come_back_with_the_call() -> None:
    for live in serve(SlowFake(script=moss_model), settings(), dialect="moss"):
        client = live.client()
        asked = [{"role": "user", "content": "weather in Paris?"}]
        first = client.responses.create(model=MODEL, input=asked, tools=[TOOL])
        thought, call = first.output
        assert thought.type == "reasoning" and thought.content[0].text == "I should look it up."
        assert call.type == "function_call" and call.name == "get_weather"
        with client.responses.stream(model=MODEL, input=asked, tools=[TOOL]) as stream:
            kinds = [e.type for e in stream]
            assert [o.type for o in stream.get_final_response().output] == ["reasoning", "function_call"]
        assert "response.reasoning_text.delta" in kinds and "response.reasoning_text.done" in kinds
        answered = [*asked, *[o.model_dump(exclude_none=True) for o in first.output],
                    {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}]
        assert client.responses.create(model=MODEL, input=answered, tools=[TOOL]).output_text == "It is sunny."
        assert live.backend.prompts[-1].endswith(
            "<|Inner Thoughts|>: I should look it up.<eot>\n<|Commands|>: get_weather(\"Paris\")<eoc>\n<|Results|>:\n"
            "get_weather(\"Paris\") => 'sunny'\n<eor>\n<|MOSS|>:")


def test_instructions_max_output_tokens_and_tool_choice_none(live: Live) -> None:
    reply = post(live, input="Say something long.", instructions="Be brief.", max_output_tokens=5)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["output"][0]["status"] == "incomplete" and body["usage"]["output_tokens"] == 5
    assert body["instructions"] == "Be brief." and body["max_output_tokens"] == 5
    prompt = live.backend.prompts[-1]
    assert prompt.index("Be brief.") < prompt.index("Say something long.")
    events = list(live.client().responses.create(model=MODEL, input="Say something long.", max_output_tokens=5,
                                                 stream=True))
    assert events[-1].type == "response.incomplete" and events[-1].response.status == "incomplete"
    none = post(live, input=CALC, tool_choice="none").json()
    assert none["tool_runs"] == [] and none["tool_choice"] == "none" and "Calculator" not in live.backend.prompts[-1]


def test_text_format_holds_the_reply_to_json() -> None:
    person = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    backend = SlowFake(script=lambda text: '{"name": "Alice", "age": 31}')
    for live in serve(backend, settings()):
        fmt = {"type": "json_schema", "name": "person", "schema": person, "strict": True}
        reply = post(live, input="Alice is 31.", text={"format": fmt})
        assert reply.status_code == 200, reply.text
        assert reply.json()["output"][0]["content"][0]["text"] == '{"name": "Alice", "age": 31}'
        assert reply.json()["text"]["format"] == fmt
        assert '"age"' in backend.calls[-1][2].constrain
        pydantic = pytest.importorskip("pydantic")

        class Person(pydantic.BaseModel):
            name: str
            age: int

        parsed = live.client().responses.parse(model=MODEL, input="Alice is 31.", text_format=Person)
        assert parsed.output_parsed == Person(name="Alice", age=31)


@pytest.mark.parametrize(("body", "status", "param", "says"), [
    ({"input": "hi", "previous_response_id": "resp_1"}, 400, "previous_response_id", "keeps no responses"),
    ({"input": "hi", "background": True}, 400, "background", "leave it out"),
    ({"input": "hi", "include": ["reasoning.encrypted_content", "message.output_text.logprobs"]}, 400, "include",
     "log probabilities"),
    ({"input": "hi", "include": ["reasoning.encrypted_content"], "store": False, "truncation": "auto"}, 200, None,
     None),
    ({"input": "hi", "n": 2}, 400, "n", "Unrecognized request argument"),
    ({"input": []}, 400, "input", "1 to 2048 items"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, 400, "input.0.type", "keeps no stored items"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}, 400, "input.0.content",
     "reads text only"),
    ({"input": [{"role": "user", "content": "hi"}, {"type": "function_call", "name": "f", "arguments": "{}"}]},
     400, "input.1.call_id", "Missing required parameter"),
    ({"input": [{"role": "user", "content": 5}]}, 400, "input.0.content", "Invalid value"),
    ({"input": "hi", "tools": [{"type": "web_search"}]}, 400, "tools", "runs no hosted tools"),
    ({"input": "hi", "tools": [{**TOOL, "defer_loading": True}]}, 400, "tools.0.defer_loading", "Invalid value"),
    ({"input": "hi", "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": []}}, 400, "tool_choice",
     "send only those in 'tools'"),
    ({"input": "hi", "tools": [TOOL], "max_tool_calls": 1}, 400, "max_tool_calls", "toolcall"),
    ({"input": [{"role": "user", "content": "hi"}, {"type": "message", "role": "assistant", "content": "ok"},
                {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{bad"},
                {"type": "function_call_output", "call_id": "c1", "output": "x"}], "tools": [TOOL]}, 400, "input",
     "input.1 to input.2: arguments of function call 'c1' is not valid JSON"),
    ({"input": [{"role": "user", "content": "hi"}] + [{"type": "function_call", "call_id": "c1", "name": "get_weather",
                                                      "arguments": "{}"}] * 2, "tools": [TOOL]}, 400, "input",
     "input.1 to input.2: call_id 'c1' is used twice there"),
    ({"input": "hi", "tools": [TOOL, TOOL]}, 400, "tools", "tools.1: function 'get_weather' is declared twice"),
    ({"input": "hi", "tools": [{**TOOL, "allowed_callers": ["programmatic"]}]}, 400, "tools.0.allowed_callers",
     "directly only"),
    ({"input": "hi", "tools": [{**TOOL, "async_": True}]}, 400, "tools.0.async_", "Unrecognized"),
    ({"input": [{"role": "user", "content": "hi"}, {"type": "function_call", "call_id": "c1", "name": "get_weather",
                                                    "arguments": "{}"}], "tools": [TOOL]}, 400, "input",
     "function calls without a function_call_output item answering them"),
    ({"input": [{"role": "user", "content": "hi"}] * 2048, "instructions": "x"}, 400, "input", "2048 items besides the instructions"),
    ({"input": "hi", "tools": [{**TOOL, "parameters": {"type": "array"}}]}, 400, "tools.0.parameters",
     "of type 'object'"),
    ({"input": "hi", "tool_choice": {"type": "function", "name": "nope"}, "tools": [TOOL]}, 400, "tool_choice",
     "not among the request's tools"),
    ({"input": "hi", "max_output_tokens": 100_000}, 400, "max_output_tokens", "max_output_tokens: at most"),
    ({"input": "hi", "text": {"format": {"type": "json_schema", "name": "x"}}}, 200, None, None),
    ({"input": "hi", "text": {"format": {"type": "json_schema", "schema": {}}}}, 400, "text.format.name", "Missing"),
    ({"input": [{"role": "user", "content": "hi"}, {"type": "function_call_output", "call_id": "c1",
                                                    "output": "x"}]}, 400, "input", "input.1:"),
    ({"input": "hi", "model": "gpt-4o"}, 404, "model", "does not exist"),
])
def test_bad_requests_are_said_in_the_responses_apis_terms(live: Live, body: dict[str, Any], status: int,
                                                         param: str | None, says: str | None) -> None:
    reply = post(live, **body)
    assert reply.status_code == status, reply.text
    if status != 200:
        error = reply.json()["error"]
        assert error["param"] == param and says in error["message"], error
        for chat_word in ("messages", "response_format", "tool message", "'tool_calls'", "function.arguments"):
            assert chat_word not in error["message"], error


def test_a_prompt_past_the_context_is_said_of_the_input() -> None:
    for live in serve(SlowFake(script=lambda text: "x", max_context=2000), settings()):
        for body, says in (({"input": "word " * 3000}, "your input resulted in"),
                           ({"input": "hi", "max_output_tokens": 1999}, "in the completion")):
            error = post(live, **body).json()["error"]
            assert error["code"] == "context_length_exceeded" and error["param"] == "input" and says in error["message"]
            assert "messages" not in error["message"]


def test_a_reply_that_fails_ends_the_stream_with_response_failed() -> None:
    class Broken(SlowFake):
        def start(self, prompt: str) -> Any:
            raise RuntimeError("the engine broke")

    for live in serve(Broken(script=lambda text: "x"), settings()):
        assert post(live, input="hi").status_code == 500
        events = list(live.client().responses.create(model=MODEL, input="hi", stream=True))
        assert events[-1].type == "response.failed" and events[-1].response.status == "failed"
        assert "request id" in events[-1].response.error.message
        assert "the engine broke" not in events[-1].response.error.message


def test_the_guard_and_the_key_hold_for_responses_too() -> None:
    for live in serve(SlowFake(script=lambda text: "x"), settings(), api_key="k"):
        url, body = live.url + "/v1/responses", {"model": MODEL, "input": "hi"}
        key = {"Authorization": "Bearer k"}
        assert httpx.post(url, json=body, timeout=30).status_code == 401
        assert httpx.post(url, json=body, headers={**key, "Origin": "https://evil.example"}, timeout=30).status_code == 403
        assert httpx.post(url, content=json.dumps(body), headers={**key, "Content-Type": "text/plain"},
                          timeout=30).status_code == 415
        assert httpx.post(url, json=body, headers=key, timeout=30).status_code == 200


def test_a_moss_reply_is_one_message_and_one_reasoning_item_however_its_rounds_interleave() -> None:
    """A second round's thoughts came after some of the answer: the answer was cut into two message items at that
    point (mid-number: "It is 3" and "91. Final."), and the Agents SDK, which reads the last one, answered "91."."""
    for live in serve(SlowFake(script=moss_two_rounds), settings(), dialect="moss"):
        whole = live.client().responses.create(model=MODEL, input="17 * 23?")
        with live.client().responses.stream(model=MODEL, input="17 * 23?") as stream:
            list(stream)
            streamed = stream.get_final_response()
        for response in (whole, streamed):
            assert [o.type for o in response.output] == ["reasoning", "message"]
            assert response.output[0].content[0].text == "I need to compute.\nCheck it again."
            assert response.output_text == "It is 391. Final."


def test_assistant_items_make_one_turn_only_where_they_can_be_one_reply(live: Live) -> None:
    def prompt(*items: dict[str, Any]) -> str:
        reply = post(live, input=[{"role": "user", "content": "hi"}, *items, {"role": "user", "content": "bye"}])
        assert reply.status_code == 200, reply.text
        return live.backend.prompts[-1]

    said = [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": t}]}
            for t in ("Hello.", "How can I help?")]
    two = prompt(*said)
    assert "assistant: Hello.\nassistant: How can I help?\nuser: bye" in two  # two turns, not "Hello.How"
    refused = {"type": "message", "role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]}
    assert "No." not in prompt(refused)  # another server's refusal part is read as the chat API's refusal: not text


def test_function_tools_as_openais_types_allow_them(live: Live) -> None:
    tool = {**TOOL, "description": None, "strict": None, "output_schema": {"type": "object"},
            "allowed_callers": ["direct"], "async": False, "defer_loading": False}
    bare = {"type": "function", "name": "now", "parameters": None, "strict": None}
    reply = post(live, input="What is the weather in Paris?", tools=[tool, bare])
    assert reply.status_code == 200, reply.text
    prompt = live.backend.prompts[-1]
    assert "get_weather" in prompt and "now" in prompt and "The weather in a city now." not in prompt
    assert reply.json()["tools"][0]["async"] is False


def test_max_tool_calls_limits_the_servers_tools(live: Live) -> None:
    limited = post(live, input=CALC, max_tool_calls=0).json()
    assert limited["tool_runs"] == [] and limited["max_tool_calls"] == 0  # the model may not call (the fake's "["
    assert "391" not in limited["output"][0]["content"][0]["text"]        # is banned)
    assert post(live, input=CALC, max_tool_calls=1).json()["tool_runs"][0]["result"] == "391"


@pytest.mark.parametrize("name", ["messages", "response_format", "max_tokens", "messages[0]", "tool call"])
def test_what_an_error_quotes_of_the_request_is_left_as_written(live: Live, name: str) -> None:
    """The chat errors' words are said the Responses way, but a name or id the client sent that holds them was
    rewritten too: a tool_choice naming "response_format" was "function 'text.format' is not among the tools"."""
    tools = [TOOL, {**TOOL, "name": "get_time"}]
    error = post(live, input="hi", tools=tools, tool_choice={"type": "function", "name": name}).json()["error"]
    assert repr(name) in error["message"] and error["param"] == "tool_choice", error
    items = [{"role": "user", "content": "hi"}, {"type": "function_call_output", "call_id": name, "output": "x"}]
    error = post(live, input=items).json()["error"]
    assert repr(name) in error["message"] and error["message"].startswith("input.1: "), error


def test_a_cut_reply_marks_only_the_item_the_limit_cut_incomplete() -> None:
    script = ' I need to compute.<eot>\n<|Commands|>: None<eoc>\n<|MOSS|>: ' + "It is a long answer. " * 20
    for live in serve(SlowFake(script=lambda text: script), settings(), dialect="moss"):
        body = post(live, input="hello", max_output_tokens=40).json()
        assert body["status"] == "incomplete", body
        assert [(o["type"], o["status"]) for o in body["output"]] == [("reasoning", "completed"),
                                                                       ("message", "incomplete")]
