"""The OpenAI client-tools flow in dialects whose results are not inline (hermes, pythonic), with the real openai client
against the live server (fake backend): tools -> tool_calls with JSON arguments -> role: tool results -> the answer."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from live_server import ASK_WEATHER, MODEL, WEATHER, Live, SlowFake, question, serve, settings

pytest.importorskip("openai", reason="the tests drive the server with the openai client (the [dev] extra)")


#: How each dialect writes a call of get_weather(city="Paris") and of Calculator(expression="17 * 23").
CALLS = {
    "hermes": ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
               '<tool_call>\n{"name": "Calculator", "arguments": {"expression": "17 * 23"}}\n</tool_call>'),
    "pythonic": ("[get_weather(city='Paris')]", "[Calculator(expression='17 * 23')]"),
}
OPENERS = {"hermes": "<tool_call>", "pythonic": ""}


def model(dialect: str):  # type: ignore[no-untyped-def]
    """A fake model for `dialect`: calls get_weather (or the Calculator), then answers from the result it was given."""
    weather, calc = CALLS[dialect]
    opener = OPENERS[dialect]

    def script(text: str) -> str:
        asked = question(text)
        reply = text[text.rfind("\nassistant:") + len("\nassistant:"):]
        if opener and reply.endswith(opener):  # the server opened the call (tool_choice required)
            return weather[len(opener):]
        if "sunny" in reply:
            return "It is sunny in Paris."
        if "391" in reply:
            return "So it is 391."
        if reply.endswith((weather, calc)):
            return ""  # its call written, the model waits for the result (the loop looks for more calls first)
        if "weather" in asked:
            return "Let me check.\n" + weather if dialect == "hermes" else weather
        if "17 * 23" in asked:
            return calc
        return f"You said: {asked}"

    return script


@pytest.fixture(scope="module", params=["hermes", "pythonic"])
def live(request: pytest.FixtureRequest) -> Iterator[Live]:
    yield from serve(SlowFake(script=model(request.param)), settings(), dialect=request.param)


def dialect_of(live: Live) -> str:
    return "hermes" if "<tool_call>" in model_text(live) else "pythonic"


def model_text(live: Live) -> str:
    return live.backend.script("user: What is the weather in Paris?\nassistant:")  # type: ignore[operator]


def stream(live: Live, **kwargs: Any) -> list[Any]:
    return list(live.client().chat.completions.create(model=MODEL, stream=True, **kwargs))


def test_client_tool_call_then_result_then_answer(live: Live) -> None:
    client = live.client()
    first = client.chat.completions.create(model=MODEL, messages=ASK_WEATHER, tools=[WEATHER])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert (choice.message.content or "") == ("Let me check." if dialect_of(live) == "hermes" else "")
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_") and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert choice.message.model_extra["tool_runs"] == []  # the server ran nothing
    messages = ASK_WEATHER + [choice.message.model_dump(exclude_none=True, exclude={"tool_runs"}),
                              {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}]
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER])
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.tool_calls is None
    assert second.choices[0].message.content == "It is sunny in Paris."
    # The call and its result went back into the assistant's text in the dialect's own form.
    prompt = live.backend.prompts[-1]
    assert "sunny, 21 C" in prompt and "get_weather" in prompt.split("assistant:")[-1]


def test_streamed_client_tool_call_equals_the_whole_reply(live: Live) -> None:
    whole = live.client().chat.completions.create(model=MODEL, messages=ASK_WEATHER, tools=[WEATHER])
    chunks = stream(live, messages=ASK_WEATHER, tools=[WEATHER])
    parts = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert parts and parts[0].function.name == "get_weather"
    arguments = "".join(p.function.arguments or "" for p in parts)
    assert arguments == whole.choices[0].message.tool_calls[0].function.arguments
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["tool_calls"]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == (whole.choices[0].message.content or "")
    assert "tool_call" not in "".join(c.choices[0].delta.content or "" for c in chunks)


def test_server_tools_run_inside_the_reply_in_this_dialect(live: Live) -> None:
    reply = live.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "17 * 23?"}])
    (run,) = reply.choices[0].message.model_extra["tool_runs"]
    assert run["tool"] == "Calculator" and run["ok"] and run["result"] == "391"
    assert run["arguments"] == {"expression": "17 * 23"}
    assert reply.choices[0].message.content == "So it is 391."


def test_tool_choice_required_opens_a_call(live: Live) -> None:
    reply = live.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hello"}],
                                                  tools=[WEATHER], tool_choice="required")
    if dialect_of(live) == "pythonic":
        # No call-open marker to write: the model is offered only the function, and a prose reply stays prose.
        assert reply.choices[0].finish_reason == "stop"
        return
    assert reply.choices[0].finish_reason == "tool_calls"
    assert reply.choices[0].message.tool_calls[0].function.name == "get_weather"


def test_a_client_call_with_arguments_that_do_not_bind_is_answered_with_an_error() -> None:
    bad = '<tool_call>\n{"name": "get_weather", "arguments": {"town": "Paris"}}\n</tool_call>'

    def script(text: str) -> str:
        reply = text.split("assistant:")[-1]
        return "Sorry." if "tool_response" in reply else "" if reply.endswith(bad) else bad

    for live in serve(SlowFake(script=script), settings(), dialect="hermes"):
        reply = live.client().chat.completions.create(model=MODEL, messages=ASK_WEATHER, tools=[WEATHER])
        assert reply.choices[0].finish_reason == "stop" and reply.choices[0].message.tool_calls is None
        (run,) = reply.choices[0].message.model_extra["tool_runs"]
        assert not run["ok"] and "town" in run["error"]
        assert reply.choices[0].message.content == "Sorry."


def test_max_calls_holds_for_server_tools_and_client_functions_alike() -> None:
    """Three calls in one pythonic list under toolcall.max_calls 1: the server tool ran three times and the client
    got three tool_calls; now one runs (or is handed back) and the others are shown with their error."""
    import httpx
    from side_effects import charging

    from toolcall.loop import LoopConfig
    from toolcall.registry import ToolRegistry
    from toolcall.server import ServerSettings

    ran, charge = charging()

    def script(text: str) -> str:
        if "client" in text and "tool_calls" not in text:
            return "[pay(amount=1), pay(amount=2), pay(amount=3)]"
        if text.rstrip().endswith("]") or "charged" in text or "Error" in text:
            return " done."
        return "[charge(amount=1), charge(amount=2), charge(amount=3)]"

    pay = {"type": "function", "function": {"name": "pay", "parameters": {
        "type": "object", "properties": {"amount": {"type": "integer"}}, "required": ["amount"]}}}
    settings_ = ServerSettings(MODEL, ToolRegistry([charge]), LoopConfig())
    for live in serve(SlowFake(script=script), settings_, dialect="pythonic"):
        url = live.url + "/v1/chat/completions"

        def post(body: dict[str, Any], url: str = url) -> Any:
            return httpx.post(url, json={"model": MODEL, **body}, timeout=30).json()

        reply = post({"messages": [{"role": "user", "content": "pay three times"}], "toolcall": {"max_calls": 1}})
        runs = reply["choices"][0]["message"]["tool_runs"]
        assert ran == [1] and [r.get("error") for r in runs] == [None, "call limit reached (1)", "call limit reached (1)"]
        reply = post({"messages": [{"role": "user", "content": "client pay"}], "tools": [pay],
                      "toolcall": {"max_calls": 1}})
        calls = reply["choices"][0]["message"]["tool_calls"]
        assert [c["function"]["arguments"] for c in calls] == ['{"amount": 1}']


def test_every_parallel_call_of_the_requests_functions_is_handed_back_past_the_servers_call_limit() -> None:
    """Four cities under the server's default max_calls (3): the fourth call was never decoded, and the client got
    three of the four calls with nothing said; an explicit toolcall.max_calls still holds."""
    import httpx

    cities = ["Paris", "Rome", "Berlin", "Madrid"]
    blocks = [f'<tool_call>\n{{"name": "get_weather", "arguments": {{"city": "{c}"}}}}\n</tool_call>' for c in cities]

    def script(text: str) -> str:  # the blocks not yet written in this reply
        written = text[text.rfind("\nassistant:"):].count("<tool_call>")
        return ("\n" if written else "") + "\n".join(blocks[written:])

    for live in serve(SlowFake(script=script), settings(), dialect="hermes"):
        body = {"model": MODEL, "messages": ASK_WEATHER, "tools": [WEATHER]}
        for extra, expected in (({}, cities), ({"toolcall": {"max_calls": 2}}, cities[:2]),
                                ({"parallel_tool_calls": False}, cities[:1])):
            reply = httpx.post(live.url + "/v1/chat/completions", json={**body, **extra}, timeout=30).json()
            calls = reply["choices"][0]["message"]["tool_calls"]
            assert [json.loads(c["function"]["arguments"])["city"] for c in calls] == expected, extra
            assert reply["choices"][0]["finish_reason"] == "tool_calls"


def test_a_request_may_end_its_call_group_at_a_call_written_again() -> None:
    """toolcall.repeat_calls false: the model's second, identical call is not handed back (a client would run it
    twice); by default, and for a call with other arguments, every call is."""
    import httpx

    blocks = [f'<tool_call>\n{{"name": "get_weather", "arguments": {{"city": "{c}"}}}}\n</tool_call>'
              for c in ("Paris", "Paris", "Rome")]

    def script(text: str) -> str:  # the blocks not yet written in this reply
        written = text[text.rfind("\nassistant:"):].count("<tool_call>")
        return ("\n" if written else "") + "\n".join(blocks[written:])

    for live in serve(SlowFake(script=script), settings(), dialect="hermes"):
        body = {"model": MODEL, "messages": ASK_WEATHER, "tools": [WEATHER]}
        for extra, expected in (({}, ["Paris", "Paris", "Rome"]), ({"toolcall": {"repeat_calls": False}}, ["Paris"])):
            reply = httpx.post(live.url + "/v1/chat/completions", json={**body, **extra}, timeout=30).json()
            calls = reply["choices"][0]["message"]["tool_calls"]
            assert [json.loads(c["function"]["arguments"])["city"] for c in calls] == expected, extra
            assert reply["choices"][0]["finish_reason"] == "tool_calls"


def test_the_client_calls_limit_leaves_the_servers_own_tools_at_theirs() -> None:
    """With a function of the request's own, the reply's limit rose to 16 for the server's tools too (and from
    --max-calls 0): a model calling the Calculator again and again ran it 6 times under the server's 3."""
    import httpx

    calc = '<tool_call>\n{"name": "Calculator", "arguments": {"expression": "1 + 1"}}\n</tool_call>'
    for limit in (3, 0):
        for live in serve(SlowFake(script=lambda text: calc), settings(max_calls=limit), dialect="hermes"):
            reply = httpx.post(live.url + "/v1/chat/completions", timeout=30, json={
                "model": MODEL, "messages": ASK_WEATHER, "tools": [WEATHER], "max_tokens": 400}).json()
            runs = reply["choices"][0]["message"]["tool_runs"]
            assert [r["ok"] for r in runs[:limit]] == [True] * limit
            assert runs[limit]["error"] == f"call limit reached ({limit})", runs


#: Two calls of get_weather and then what the model writes after them, as each dialect writes them one by one.
TWO_CALLS = {
    "hermes": ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
               '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'),
    "llama3_json": ('{"name": "get_weather", "parameters": {"city": "Paris"}}; '
                    '{"name": "get_weather", "parameters": {"city": "Rome", "unit": "celsius"}}'),
}


@pytest.mark.parametrize("dialect", sorted(TWO_CALLS))
@pytest.mark.parametrize("after", ["", "\nI have asked for both.", "\n<tool_response>\nsunny\n</tool_response>"])
def test_every_call_of_a_reply_is_handed_back_and_what_follows_them_is_not_shown(dialect: str, after: str) -> None:
    """hermes writes one block per call and pauses at each: the first used to end the reply, and the client never
    got the others. Text after the calls (prose, a made-up tool response) is not part of the reply."""
    full = TWO_CALLS[dialect] + after

    def script(text: str) -> str | None:
        reply = text[text.rfind("assistant:") + len("assistant:"):]
        return full[len(reply):] if full.startswith(reply) else None

    for live in serve(SlowFake(script=script), settings(), dialect=dialect):
        client = live.client()
        decoded: dict[bool, int] = {}
        for parallel in (True, False):
            whole = client.chat.completions.create(model=MODEL, messages=ASK_WEATHER, tools=[WEATHER],
                                                   parallel_tool_calls=parallel)
            choice = whole.choices[0]
            assert choice.finish_reason == "tool_calls" and not choice.message.content
            cities = [json.loads(c.function.arguments)["city"] for c in choice.message.tool_calls]
            assert cities == (["Paris", "Rome"] if parallel else ["Paris"])
            # Without parallel calls the reply ends at the first call: nothing after it is decoded only to be refused.
            assert (choice.message.model_extra.get("tool_runs") or []) == []
            decoded[parallel] = whole.usage.completion_tokens
            chunks = stream(live, messages=ASK_WEATHER, tools=[WEATHER], parallel_tool_calls=parallel)
            assert "".join(c.choices[0].delta.content or "" for c in chunks) == ""
            parts = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
            assert len({p.index for p in parts}) == len(cities)
            assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["tool_calls"]
        assert decoded[False] * 4 < decoded[True] * 3


def test_a_server_tool_called_after_a_client_call_is_not_run() -> None:
    """Its result could not reach the model (the reply ends with the client's calls): it is shown, not run."""
    full = TWO_CALLS["hermes"].split("\n<tool_call>")[0] + (
        '\n<tool_call>\n{"name": "Calculator", "arguments": {"expression": "17 * 23"}}\n</tool_call>')

    def script(text: str) -> str | None:
        reply = text[text.rfind("assistant:") + len("assistant:"):]
        return full[len(reply):] if full.startswith(reply) else None

    for live in serve(SlowFake(script=script), settings(), dialect="hermes"):
        reply = live.client().chat.completions.create(model=MODEL, messages=ASK_WEATHER, tools=[WEATHER])
        message = reply.choices[0].message
        assert [c.function.name for c in message.tool_calls] == ["get_weather"] and not message.content
        (run,) = message.model_extra["tool_runs"]
        assert run["tool"] == "Calculator" and not run["ok"] and "not run" in run["error"]


def moss_model(text: str) -> str:
    """A fake moss-003: thoughts, then a command (or None), then the answer after the results."""
    reply = text[text.rfind("<|Inner Thoughts|>:") + len("<|Inner Thoughts|>:"):]
    if "<|Results|>" in reply:
        return " It is sunny." if "sunny" in reply else " It is 391.<eom>"
    asked = text.split("<|Human|>:")[-1]
    if "weather" in asked:
        return ' I should look it up.<eot>\n<|Commands|>: get_weather("Paris")<eoc>'
    if "17 * 23" in asked:
        return ' I need to compute.<eot>\n<|Commands|>: Calculator("17 * 23")<eoc>'
    return " Nothing to run.<eot>\n<|Commands|>: None<eoc>"


def test_moss_replies_show_the_answer_field_and_give_the_thoughts_as_reasoning() -> None:
    """The MOSS fields (thoughts, commands, results, `<eom>`) were the content; now content is the answer field."""
    for live in serve(SlowFake(script=moss_model), settings(), dialect="moss"):
        client = live.client()
        for content, answer, tools in (("17 * 23?", "It is 391.", None), ("hello", "It is 391.", None),
                                       ("weather in Paris?", None, [WEATHER])):
            kwargs: dict[str, Any] = {"messages": [{"role": "user", "content": content}]}
            if tools:
                kwargs["tools"] = tools
            message = client.chat.completions.create(model=MODEL, **kwargs).choices[0].message
            assert message.content == answer
            thoughts = message.model_extra["reasoning_content"]
            assert thoughts in ("I need to compute.", "Nothing to run.", "I should look it up.")
            chunks = stream(live, **kwargs)
            assert "".join(c.choices[0].delta.content or "" for c in chunks) == (answer or "")
            assert "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                           for c in chunks if c.choices) == thoughts
        # The client answers the call; its reply, thoughts and all, is what the model continues.
        kwargs = {"messages": [{"role": "user", "content": "weather in Paris?"}], "tools": [WEATHER]}
        first = client.chat.completions.create(model=MODEL, **kwargs).choices[0].message
        (call,) = first.tool_calls
        kwargs["messages"] += [first.model_dump(exclude_none=True, exclude={"tool_runs"}),
                               {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
        second = client.chat.completions.create(model=MODEL, **kwargs).choices[0].message
        assert second.content == "It is sunny."
        assert live.backend.prompts[-1].endswith(
            "<|Inner Thoughts|>: I should look it up.<eot>\n<|Commands|>: get_weather(\"Paris\")<eoc>\n<|Results|>:\n"
            "get_weather(\"Paris\") => 'sunny'\n<eor>\n<|MOSS|>:")
        raw = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "17 * 23?"}],
                                             extra_body={"toolcall": {"keep_markup": True}}).choices[0].message
        assert raw.content.startswith("I need to compute.<eot>") and raw.content.endswith("It is 391.")


SERVER_THEN_CLIENT = {
    "hermes": ('I will compute first.\n<tool_call>\n{"name": "Calculator", "arguments": {"expression": "17 * 23"}}\n'
               '</tool_call>', '\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'),
    "pythonic": ("[Calculator(expression='17 * 23'), get_weather(city='Paris')]", ""),
}


def server_then_client(dialect: str) -> Callable[[str], str | None]:
    """A fake model that runs the Calculator, then calls get_weather, then answers with both results."""
    first, then = SERVER_THEN_CLIENT[dialect]

    def script(text: str) -> str | None:
        reply = text[text.rfind("assistant:") + len("assistant:"):]
        if "sunny" in reply:
            return " Sunny, and 391."
        if "get_weather" in reply:
            return None
        return then if "391" in reply else first

    return script


@pytest.mark.parametrize("dialect", sorted(SERVER_THEN_CLIENT))
def test_what_a_server_tool_told_the_model_before_a_client_call_is_kept_for_the_continuation(dialect: str) -> None:
    """The Calculator's call and result were cut from content, and the client sends back what it was shown: the
    continuation used to lose them. The server remembers the reply by its calls' ids and continues what the model
    wrote; a message the client edited is its own."""
    for live in serve(SlowFake(script=server_then_client(dialect)), settings(), dialect=dialect):
        client = live.client()
        messages: list[Any] = [{"role": "user", "content": "17 * 23, and the weather in Paris?"}]
        message = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER]).choices[0].message
        (run,) = message.model_extra["tool_runs"]
        assert run["result"] == "391" and "391" not in (message.content or "")
        (call,) = message.tool_calls
        sent = message.model_dump(exclude_none=True, exclude={"tool_runs"})
        for edited in (False, True):
            back = {**sent, "content": "I edited this."} if edited else sent
            more = [*messages, back, {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
            reply = client.chat.completions.create(model=MODEL, messages=more, tools=[WEATHER]).choices[0].message
            assert reply.content == "Sunny, and 391."
            prompt = live.backend.prompts[-1]
            assert ("391" in prompt) is not edited and ("I edited this." in prompt) is edited
            assert prompt.count("sunny") == 1


def test_a_function_tool_choice_leaves_out_gets_a_reason_not_none() -> None:
    """tool_choice names get_time; the model calls get_weather anyway (pythonic cannot open the named call for it):
    the model read `Error: get_weather: None`."""
    import httpx

    clock = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
    for live in serve(SlowFake(script=model("pythonic")), settings(), dialect="pythonic"):
        reply = httpx.post(live.url + "/v1/chat/completions", timeout=30, json={
            "model": MODEL, "messages": ASK_WEATHER, "tools": [WEATHER, clock],
            "tool_choice": {"type": "function", "function": {"name": "get_time"}}}).json()
        run = reply["choices"][0]["message"]["tool_runs"][0]  # this fake model calls it again after each error
        assert run["tool"] == "get_weather" and run["error"] == "get_weather: not offered in this reply"


def test_a_reply_that_max_tokens_ends_inside_a_call_shows_no_markup() -> None:
    full = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    for live in serve(SlowFake(script=lambda text: full), settings(), dialect="hermes"):
        for limit in (6, 12, 18):
            kwargs: dict[str, Any] = {"messages": ASK_WEATHER, "tools": [WEATHER], "max_tokens": limit}
            choice = live.client().chat.completions.create(model=MODEL, **kwargs).choices[0]
            assert choice.finish_reason == "length" and choice.message.content == "Let me check."
            chunks = stream(live, **kwargs)
            assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Let me check."


def test_a_call_that_max_tokens_ends_right_after_is_handed_back_or_run_never_shown_as_the_answer() -> None:
    """At every limit around the call's last token: a whole call is handed back (`tool_calls`) or, for a server
    tool, run (`length`); a call cut before its end is hidden (`length`). A call whose marker was the limit's last
    token came back as its markup with `finish_reason: "stop"`, neither run nor handed back."""
    weather = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    calc = 'Let me compute.\n<tool_call>\n{"name": "Calculator", "arguments": {"expression": "17 * 23"}}\n</tool_call>'
    for full, tools in ((weather, [WEATHER]), (calc, None)):
        whole_at = -(-len(full) // 4)  # the fake writes 4 characters a token
        for live in serve(SlowFake(script=lambda text, full=full: full + " And more."), settings(), dialect="hermes"):
            for limit in range(whole_at - 2, whole_at + 2):
                kwargs: dict[str, Any] = {"messages": ASK_WEATHER, "max_tokens": limit}
                if tools:
                    kwargs["tools"] = tools
                choice = live.client().chat.completions.create(model=MODEL, **kwargs).choices[0]
                message = choice.message
                assert "<tool_call>" not in (message.content or ""), (limit, message.content)
                if limit < whole_at:
                    assert choice.finish_reason == "length" and not message.tool_calls
                    assert message.model_extra["tool_runs"] == []
                elif tools:
                    assert choice.finish_reason == "tool_calls" and message.tool_calls[0].function.name == "get_weather"
                else:
                    (run,) = message.model_extra["tool_runs"]
                    assert run["result"] == "391" and choice.finish_reason == "length", (limit, choice)


def test_a_remembered_reply_is_used_only_in_its_own_conversation_and_as_it_was_sent() -> None:
    """The same assistant message after other messages, with other arguments, or with earlier rounds dropped, is the
    client's own: it is written back from what it says, never from the server's memory."""
    first, then = SERVER_THEN_CLIENT["hermes"]

    def script(text: str) -> str | None:
        reply = text[text.rfind("assistant:") + len("assistant:"):]
        if "sunny" in reply or "rainy" in reply:
            return " Done."
        if "get_weather" in reply:
            return None
        return then if "391" in reply else first

    for live in serve(SlowFake(script=script), settings(), dialect="hermes"):
        client = live.client()
        asked: list[Any] = [{"role": "user", "content": "17 * 23, and the weather in Paris?"}]
        message = client.chat.completions.create(model=MODEL, messages=asked, tools=[WEATHER]).choices[0].message
        sent = message.model_dump(exclude_none=True, exclude={"tool_runs"})
        (call,) = message.tool_calls
        rome = {**sent, "tool_calls": [{**sent["tool_calls"][0], "function": {
            "name": "get_weather", "arguments": '{"city": "Rome"}'}}]}
        # The AI SDK sends the arguments back re-serialised, openai-python's helpers add keys of their own: the same
        # message (the server tool's call and result were lost from the continuation, or the request was a 400).
        compact = {**sent, "tool_calls": [{**sent["tool_calls"][0], "index": 0, "function": {
            "name": "get_weather", "arguments": '{"city":"Paris"}', "parsed_arguments": None}}]}
        for before, back, remembered in (
                (asked, sent, True),
                (asked, compact, True),
                ([{"role": "user", "content": "Write a haiku about rain."}], sent, False),
                ([{"role": "system", "content": "Be brief."}, *asked], sent, False),
                (asked, rome, False)):
            more = [*before, back, {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
            client.chat.completions.create(model=MODEL, messages=more, tools=[WEATHER])
            prompt = live.backend.prompts[-1]
            assert ("391" in prompt) is remembered
            assert ("Rome" in prompt) is (back is rome)


def moss_two_rounds(text: str) -> str:
    """A fake MOSS model that thinks, computes, answers in part, thinks and computes again, then ends its answer."""
    reply = text.split("<|Human|>:")[-1]
    if reply.count("<|Results|>") == 2:
        return " Final.<eom>"
    if "<|Results|>" in reply:
        return ' It is 391. <|Inner Thoughts|>: Check it again.<eot>\n<|Commands|>: Calculator("391 / 23")<eoc>'
    return ' I need to compute.<eot>\n<|Commands|>: Calculator("17 * 23")<eoc>'


def test_a_second_moss_round_shows_its_thoughts_as_reasoning_and_its_fields_not_at_all() -> None:
    for live in serve(SlowFake(script=moss_two_rounds), settings(), dialect="moss"):
        kwargs: dict[str, Any] = {"messages": [{"role": "user", "content": "17 * 23?"}]}
        message = live.client().chat.completions.create(model=MODEL, **kwargs).choices[0].message
        assert message.content == "It is 391. Final."
        assert message.model_extra["reasoning_content"] == "I need to compute.\nCheck it again."
        chunks = stream(live, **kwargs)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "It is 391. Final."


def test_blank_text_after_a_handed_back_call_ends_the_reply_soon() -> None:
    full = TWO_CALLS["hermes"].split("\n<tool_call>")[0] + "\n" * 4000

    def script(text: str) -> str | None:
        reply = text[text.rfind("assistant:") + len("assistant:"):]
        return full[len(reply):] if full.startswith(reply) else None

    for live in serve(SlowFake(script=script), settings(), dialect="hermes"):
        reply = live.client().chat.completions.create(model=MODEL, messages=ASK_WEATHER, tools=[WEATHER],
                                                      max_tokens=2000)
        assert reply.choices[0].finish_reason == "tool_calls" and reply.usage.completion_tokens < 40


def test_a_reply_that_ends_normally_keeps_prose_that_mentions_call_markup() -> None:
    texts = {"mistral": "Calls start with [TOOL_CALLS] and a JSON list. Then they stop.",
             "toolformer": "The model writes [get_weather(Paris) in brackets, then goes on.",
             "hermes": "The tag is <tool"}
    for dialect, text in texts.items():
        def script(whole: str, text: str = text) -> str | None:
            reply = whole[whole.rfind("assistant:") + len("assistant:"):]
            return text[len(reply):] if text.startswith(reply) and len(reply) < len(text) else None

        for live in serve(SlowFake(script=script), settings(), dialect=dialect):
            reply = live.client().chat.completions.create(model=MODEL, messages=ASK_WEATHER)
            assert reply.choices[0].message.content == text


BOOK = {"type": "function", "function": {"name": "book", "strict": True, "parameters": {
    "type": "object", "additionalProperties": False, "required": ["n"],
    "properties": {"n": {"type": "integer", "maximum": 4}}}}}


def test_a_strict_functions_call_that_breaks_its_schema_is_not_handed_back() -> None:
    """In a dialect without a call grammar (pythonic) the calls of a strict function cannot be decoded under its
    schema: each is checked before it is handed back, and one that breaks the schema gets the error as its result,
    so the model can write it again (`book(n=99)` against a maximum of 4 was handed back as written)."""
    def script(text: str) -> str:
        reply = text[text.rfind("\nassistant:") + len("\nassistant:"):]
        return "[book(n=3)]" if "maximum" in reply else "[book(n=99)]"

    for live in serve(SlowFake(script=script), settings(), dialect="pythonic"):
        reply = live.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "book"}],
                                                      tools=[BOOK])
        message = reply.choices[0].message
        assert reply.choices[0].finish_reason == "tool_calls"
        assert [json.loads(c.function.arguments) for c in message.tool_calls] == [{"n": 3}]
        (run,) = message.model_extra["tool_runs"]
        assert run["tool"] == "book" and not run["ok"] and "99 is greater than the maximum of 4" in run["error"]
        loose = {"type": "function", "function": {**BOOK["function"], "strict": False}}
        reply = live.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "book"}],
                                                      tools=[loose])
        assert [json.loads(c.function.arguments) for c in reply.choices[0].message.tool_calls] == [{"n": 99}]
        patterned = {"type": "function", "function": {**BOOK["function"], "parameters": {
            "type": "object", "properties": {"code": {"type": "string", "pattern": "^(a+)+$"}}}}}
        answer = httpx.post(live.url + "/v1/chat/completions", timeout=30, json={
            "model": MODEL, "messages": [{"role": "user", "content": "book"}], "tools": [patterned]})
        assert answer.status_code == 400 and "'pattern'" in answer.json()["error"]["message"]


def test_the_servers_own_tools_run_every_call_the_model_writes_before_their_results() -> None:
    """A model that writes all its calls first (hermes blocks one after another, as Qwen and our corpora do) had only
    the first run: its result was spliced at the first closing tag, and the second call was never written."""
    calc = '<tool_call>\n{{"name": "Calculator", "arguments": {{"expression": "{}"}}}}\n</tool_call>'
    full = calc.format("17 * 23") + "\n" + calc.format("6 * 7") + "\n<tool_response>\nmade up\n</tool_response>"

    def script(text: str) -> str | None:
        reply = text[text.rfind("assistant:") + len("assistant:"):]
        if "391" in reply:
            return " 391 and 42." if "42" in reply else " only 391."
        return full[len(reply):] if full.startswith(reply) else None

    for live in serve(SlowFake(script=script), settings(), dialect="hermes"):
        for parallel, runs, answer in ((True, ["391", "42"], "391 and 42."), (False, ["391"], "only 391.")):
            reply = live.client().chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "17 * 23 and 6 * 7?"}], parallel_tool_calls=parallel)
            message = reply.choices[0].message
            assert [r["result"] for r in message.model_extra["tool_runs"]] == runs
            assert message.content == answer and "made up" not in message.content
