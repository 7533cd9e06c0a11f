"""Bad input gets a 4xx in OpenAI's error shape, never a 500, and the server keeps answering; access and limits."""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from live_server import MODEL, Live, SlowFake, script, serve, settings

httpx = pytest.importorskip("httpx")

HI = [{"role": "user", "content": "hi"}]
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def post(live: Live, body: Any, *, raw: bytes | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
    content = raw if raw is not None else json.dumps(body).encode()
    return httpx.post(live.url + "/v1/chat/completions", content=content, timeout=30,
                      headers={"Content-Type": "application/json", **(headers or {})})


def assert_error(response: httpx.Response, status: int, param: str | None = None, text: str = "") -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["message"]
    if param is not None:
        assert error["param"] == param, error
    assert text in error["message"], error


BAD = [
    pytest.param({"model": MODEL, "messages": HI, "stream_options": {"include_usage": True}}, "stream_options",
                 'only allowed with "stream": true', id="stream-options-without-stream"),
    pytest.param({"messages": HI}, "model", "Missing required parameter", id="no-model"),
    pytest.param({"model": MODEL}, "messages", "Missing required parameter", id="no-messages"),
    pytest.param({"model": MODEL, "messages": []}, "messages", "", id="empty-messages"),
    pytest.param({"model": MODEL, "messages": "hi"}, "messages", "", id="messages-not-a-list"),
    pytest.param({"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role", "", id="role"),
    pytest.param({"model": MODEL, "messages": [{"role": "user", "content": 5}]}, None, "", id="content-type"),
    # A part the model cannot read is named; a broken text part says what it lacks (both were "not a valid string").
    pytest.param({"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]},
        "messages.0.content", 'part 1 is of type "image_url"', id="image-part"),
    pytest.param({"model": MODEL, "messages": [{"role": "user", "content": [{"type": "text"}]}]},
        "messages.0.content.0.text", "Missing required parameter", id="text-part-without-text"),
    pytest.param({"model": MODEL, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
                 None, "", id="image-content"),
    pytest.param({"model": MODEL, "messages": HI, "max_tokens": -1}, "max_tokens", "", id="negative-max-tokens"),
    pytest.param({"model": MODEL, "messages": HI, "max_tokens": 0}, "max_tokens", "", id="zero-max-tokens"),
    pytest.param({"model": MODEL, "messages": HI, "max_tokens": 10**9}, "max_tokens", "at most", id="huge-max-tokens"),
    pytest.param({"model": MODEL, "messages": HI, "max_tokens": "5"}, "max_tokens", "", id="string-max-tokens"),
    pytest.param({"model": MODEL, "messages": HI, "temperature": 3}, "temperature", "", id="temperature"),
    pytest.param({"model": MODEL, "messages": HI, "top_p": -0.1}, "top_p", "", id="top-p"),
    pytest.param({"model": MODEL, "messages": HI, "n": 0}, "n", "", id="n-zero"),
    pytest.param({"model": MODEL, "messages": HI, "n": 100}, "n", "", id="n-huge"),
    pytest.param({"model": MODEL, "messages": HI, "stream": "yes"}, "stream", "", id="stream-type"),
    pytest.param({"model": MODEL, "messages": HI, "stop": ["a", "b", "c", "d", "e"]}, "stop", "at most", id="stops"),
    pytest.param({"model": MODEL, "messages": HI, "frobnicate": 1}, "frobnicate", "Unrecognized", id="unknown-field"),
    pytest.param({"model": MODEL, "messages": HI, "logprobs": True}, "logprobs", "does not support", id="logprobs"),
    pytest.param({"model": MODEL, "messages": HI, "response_format": {"type": "json_schema"}}, "response_format",
                 "needs its json_schema object", id="response-format"),
    pytest.param({"model": MODEL, "messages": HI, "tools": [WEATHER], "tool_choice": {
        "type": "function", "function": {"name": "launch_rockets"}}}, "tool_choice", "launch_rockets", id="choice"),
    pytest.param({"model": MODEL, "messages": HI, "tool_choice": "required"}, "tool_choice", "", id="required-no-tools"),
    pytest.param({"model": MODEL, "messages": HI, "tool_choice": {"type": "custom", "custom": {"name": "x"}}},
                 "tool_choice", 'a tool_choice of type "custom" is not supported here', id="choice-type"),
    pytest.param({"model": MODEL, "messages": HI, "tools": [WEATHER], "tool_choice": {
        "type": "function", "function": {"name": "Calculator"}}}, "tool_choice", "one of the server's own tools",
                 id="choice-of-a-server-tool"),
    pytest.param({"model": MODEL, "messages": HI, "tool_choice": "sometimes"}, "tool_choice", "", id="choice-value"),
    pytest.param({"model": MODEL, "messages": HI, "tools": [{"type": "function", "function": {
        "name": "bad-name", "parameters": {"type": "object", "properties": {}}}}]}, "tools", "bad-name", id="name"),
    pytest.param({"model": MODEL, "messages": HI, "tools": [{"type": "retrieval"}]}, None, "", id="tool-type"),
    pytest.param({"model": MODEL, "messages": HI, "toolcall": {"tools": ["os_system"]}}, "toolcall.tools",
                 "not a tool of this server", id="unregistered-server-tool"),
    pytest.param({"model": MODEL, "messages": HI, "toolcall": {"max_calls": -2}}, "toolcall.max_calls", "",
                 id="extension-value"),
    pytest.param({"model": MODEL, "messages": [{"role": "tool", "tool_call_id": "x", "content": "r"}]}, "messages",
                 "no open call", id="orphan-tool-message"),
    pytest.param({"model": MODEL, "messages": HI + [{"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]}],
                  "tools": [WEATHER]}, "messages", "c1", id="unanswered-call"),
    pytest.param({"model": MODEL, "messages": HI + [{"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{not json"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "r"}], "tools": [WEATHER]}, "messages", "not valid JSON",
        id="call-arguments"),
    pytest.param({"model": MODEL, "messages": [{"role": "system", "content": "be brief"}]}, "messages",
                 "end with a user message", id="no-user-message"),
    # Each of these was a 500 with a traceback in the log.
    pytest.param({"model": MODEL, "messages": HI + [{"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "[" * 990 + "]" * 990}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "r"}], "tools": [WEATHER]}, "messages", "nests too deeply",
        id="deep-call-arguments"),
    pytest.param({"model": MODEL, "messages": HI + [{"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "\\ud800"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "r"}], "tools": [WEATHER]}, "messages", "lone surrogate",
        id="surrogate-in-call-arguments"),
    # Under constrain_calls the call grammar is built before decoding: a tool it cannot hold was a failure mid-reply.
    pytest.param({"model": MODEL, "messages": HI, "toolcall": {"constrain_calls": True}, "tools": [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
            f"p{i}": {"type": "integer"} for i in range(300)}}}}]}, "tools", "at most 256 parameters",
        id="unusable-call-grammar"),
    # Checked against JSON Schema's meta-schema at ~0.2 ms an object: 250,000 of them held the event loop 80 s.
    pytest.param({"model": MODEL, "messages": HI, "tools": [{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "allOf": [{}] * 10_000}}}]}, "tools",
        "hold more than 8,192 objects and lists together", id="schema-too-large"),
]


@pytest.mark.parametrize(("body", "param", "text"), BAD)
def test_bad_request_is_a_400(live: Live, body: dict[str, Any], param: str | None, text: str) -> None:
    assert_error(post(live, body), 400, param, text)


@pytest.mark.parametrize("raw", [b"{", b"", b"[1, 2]", b"null", b'"text"', b"\xff\xfe"])
def test_body_that_is_not_a_json_object(live: Live, raw: bytes) -> None:
    assert_error(post(live, None, raw=raw), 400)


def test_unknown_model_is_a_404(live: Live) -> None:
    assert_error(post(live, {"model": "gpt-9", "messages": HI}), 404, "model", "gpt-9")
    response = httpx.get(live.url + "/v1/models/gpt-9")
    assert_error(response, 404, "model")


def test_oversized_body_is_a_413(live: Live) -> None:
    big = {"model": MODEL, "messages": [{"role": "user", "content": "x" * (2 << 20)}]}
    assert_error(post(live, big), 413)


def test_unknown_path_and_method(live: Live) -> None:
    assert_error(httpx.get(live.url + "/v1/nothing"), 404)
    assert_error(httpx.get(live.url + "/v1/chat/completions"), 405)
    # A client built for another API learns what is served.
    assert_error(httpx.post(live.url + "/v1/completions", json={}), 404, None, "serves POST /v1/chat/completions, "
                 "POST /v1/responses")


def test_a_refused_value_is_shown_short(live: Live) -> None:
    response = post(live, {"model": MODEL, "messages": HI, "logit_bias": {"1": "a" * 900_000}})
    assert_error(response, 400, "logit_bias", "does not support")
    assert len(response.content) < 1_000  # the 900 KB value was echoed whole


def test_server_still_answers_after_all_that(live: Live) -> None:
    for param in BAD:
        post(live, param.values[0])
    response = post(live, {"model": MODEL, "messages": HI})
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "You said: hi"


def test_a_request_cannot_run_what_the_server_did_not_register(live: Live) -> None:
    # A client function named like a server tool is the client's: it comes back as a tool call, the server runs nothing.
    calc = {"type": "function", "function": {"name": "Calculator", "parameters": {
        "type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}}}
    response = post(live, {"model": MODEL, "messages": [{"role": "user", "content": "What is 17 * 23?"}],
                           "tools": [calc]}).json()
    message = response["choices"][0]["message"]
    assert response["choices"][0]["finish_reason"] == "tool_calls" and message["tool_runs"] == []
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"expression": "17 * 23"}


@pytest.fixture(scope="module")
def locked(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[Live]:
    yield from serve(SlowFake(script=script), settings(), api_key="s3cret")


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_api_key_is_required_when_set(locked: Live) -> None:
    body = {"model": MODEL, "messages": HI}
    assert post(locked, body).status_code == 401
    wrong = post(locked, body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    assert post(locked, body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert httpx.get(locked.url + "/v1/models").status_code == 401
    assert httpx.get(locked.url + "/health").status_code == 200  # liveness needs no key
    import openai

    with pytest.raises(openai.AuthenticationError):
        locked.client(api_key="nope").models.list()
    assert [m.id for m in locked.client(api_key="s3cret").models.list()] == [MODEL]


def test_a_text_part_with_a_hint_for_other_servers_is_read(live: Live) -> None:
    """`cache_control` (a prompt-caching hint some clients add to every part) means nothing here: the part is read."""
    part = {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}
    response = post(live, {"model": MODEL, "messages": [{"role": "user", "content": [part]}]})
    assert response.status_code == 200, response.text


def test_openai_python_3s_prompt_cache_fields_are_accepted(live: Live) -> None:
    """The Agents SDK's `prompt_cache_retention="24h"` was a 400: a caching hint, like prompt_cache_key."""
    response = post(live, {"model": MODEL, "messages": HI, "prompt_cache_retention": "24h",
                           "prompt_cache_options": {"mode": "auto"}})
    assert response.status_code == 200, response.text


class _AlternatingTemplate:
    """A tokenizer whose chat template raises on two user turns in a row, as many shipped templates do
    (`raise_exception('Conversation roles must alternate ...')`)."""

    chat_template = "{{ messages }}"

    def apply_chat_template(self, messages: list[dict[str, Any]], **_: Any) -> str:
        from jinja2.exceptions import TemplateError

        roles = [m["role"] for m in messages if m["role"] != "system"]
        if any(a == b for a, b in zip(roles, roles[1:])):
            raise TemplateError("Conversation roles must alternate user/assistant/user/assistant/...")
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"


def test_messages_the_models_chat_template_refuses_are_a_400_that_quotes_it() -> None:
    """A 500 naming only a request id, where the template's own message says what to change."""
    backend = SlowFake(script=lambda text: "ok")
    backend.tokenizer = _AlternatingTemplate()  # type: ignore[attr-defined]
    for live in serve(backend, settings()):
        twice = [{"role": "user", "content": "hi"}, {"role": "user", "content": "again"}]
        assert_error(post(live, {"model": MODEL, "messages": twice}), 400, "messages",
                     "the model's chat template refused the messages: Conversation roles must alternate")
        assert post(live, {"model": MODEL, "messages": HI}).json()["choices"][0]["message"]["content"] == "ok"
