"""The real openai client against the live server (fake backend): shapes, streaming invariants, tools both ways."""
from __future__ import annotations

import json
from typing import Any

import pytest
from live_server import ASK_WEATHER, MODEL, WEATHER, Live

pytest.importorskip("openai", reason="the tests drive the server with the openai client (the [dev] extra)")

ASK_CALC = [{"role": "user", "content": "What is 17 * 23?"}]


def stream(live: Live, **kwargs: Any) -> list[Any]:
    return list(live.client().chat.completions.create(model=MODEL, stream=True, **kwargs))


def test_health_and_models(live: Live) -> None:
    client = live.client()
    assert [m.id for m in client.models.list()] == [MODEL]
    assert client.models.retrieve(MODEL).owned_by == "toolcall"
    import httpx

    assert httpx.get(live.url + "/health").json()["status"] == "ok"


def test_server_tool_runs_inside_the_generation(live: Live) -> None:
    reply = live.client().chat.completions.create(model=MODEL, messages=ASK_CALC)
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-") and reply.model == MODEL
    assert isinstance(reply.created, int) and reply.created > 1_600_000_000
    choice = reply.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    # The call and its result are cut from the text; the loop ran it and the model went on after it.
    assert choice.message.content == "Let me compute: so the answer is 391."
    (run,) = choice.message.model_extra["tool_runs"]
    assert run["tool"] == "Calculator" and run["arguments"] == {"expression": "17 * 23"}
    assert run["ok"] and run["result"] == "391" and run["error"] is None and run["seconds"] >= 0
    assert reply.usage.completion_tokens > 0 and reply.usage.prompt_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_usage_counts_the_prompt_once_and_every_choices_results(live: Live) -> None:
    """usage.prompt_tokens was the prefilled tokens over n choices divided by n; it is the input, as OpenAI counts
    it: the prompt once, then each choice's spliced results (the fake model: 4 characters a token)."""
    one = live.client().chat.completions.create(model=MODEL, messages=ASK_CALC)
    two = live.client().chat.completions.create(model=MODEL, messages=ASK_CALC, n=2)
    prompt = -(-len(live.backend.prompts[-1]) // 4)
    result = one.usage.prompt_tokens - prompt
    assert result > 0 and two.usage.prompt_tokens == prompt + 2 * result
    assert two.usage.completion_tokens == 2 * one.usage.completion_tokens
    assert one.usage.prompt_tokens_details.cached_tokens == 0
    chunks = list(live.client().chat.completions.create(model=MODEL, messages=ASK_CALC, n=2, stream=True,
                                                        stream_options={"include_usage": True}))
    assert chunks[-1].usage.prompt_tokens == two.usage.prompt_tokens


def test_keep_markup_keeps_the_inline_call(live: Live) -> None:
    reply = live.client().chat.completions.create(model=MODEL, messages=ASK_CALC,
                                                  extra_body={"toolcall": {"keep_markup": True}})
    assert reply.choices[0].message.content == "Let me compute: [Calculator(17 * 23) -> 391] so the answer is 391."


def test_the_request_steering_reaches_the_engine(live: Live) -> None:
    from toolcall.backends.base import Steering

    live.backend.calls.clear()
    live.client().chat.completions.create(model=MODEL, messages=ASK_CALC,
                                          extra_body={"toolcall": {"call_threshold": 0.8, "trigger_top_k": 4}})
    assert live.backend.calls[0][2] == Steering("[", trigger_top_k=4, min_open_prob=0.8, close_texts=("->", "→", "]"))


def test_stream_invariants_and_equal_text(live: Live) -> None:
    whole = live.client().chat.completions.create(model=MODEL, messages=ASK_CALC)
    chunks = stream(live, messages=ASK_CALC, stream_options={"include_usage": True})
    ids = {c.id for c in chunks}
    assert len(ids) == 1 and all(c.object == "chat.completion.chunk" and c.model == MODEL for c in chunks)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert [d.role for d in deltas if d.role] == ["assistant"] and deltas[0].role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert "".join(d.content or "" for d in deltas) == whole.choices[0].message.content
    runs = [r for d in deltas for r in (d.model_extra or {}).get("tool_runs", [])]
    # The run's id, tool and arguments first, its outcome later under the same index (clients merge by index).
    assert runs == [{"index": 0, "id": runs[0]["id"], "tool": "Calculator", "arguments": {"expression": "17 * 23"}},
                    {"index": 0, "ok": True, "result": "391", "error": None, "seconds": runs[1]["seconds"]}]
    assert runs[0]["id"].startswith("run_")
    # include_usage: one last chunk with no choices and the usage; every other chunk has usage null.
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == whole.usage.total_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_the_clients_stream_helper_merges_the_runs_into_the_finished_replys(live: Live) -> None:
    whole = live.client().chat.completions.create(model=MODEL, messages=ASK_CALC)
    with live.client().chat.completions.stream(model=MODEL, messages=ASK_CALC) as helper:
        for _ in helper:  # openai-python merges each delta into its snapshot: an entry without `index` raised
            pass
        final = helper.get_final_completion()
    message = final.choices[0].message
    assert message.content == whole.choices[0].message.content
    (merged,) = message.model_extra["tool_runs"]
    (done,) = whole.choices[0].message.model_extra["tool_runs"]
    assert {k: v for k, v in merged.items() if k not in ("index", "id", "seconds")} == \
        {k: v for k, v in done.items() if k not in ("id", "seconds")}
    assert merged["index"] == 0 and merged["id"].startswith("run_") and merged["seconds"] >= 0


def test_stream_without_usage_has_no_usage_chunk(live: Live) -> None:
    chunks = stream(live, messages=[{"role": "user", "content": "hello"}])
    assert all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "You said: hello"


def test_client_tool_call_and_continuation(live: Live) -> None:
    client = live.client()
    first = client.chat.completions.create(model=MODEL, messages=ASK_WEATHER, tools=[WEATHER])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "I will look it up."
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_") and call.function.name == "get_weather"
    # Positional arguments, mapped to the schema's properties in order.
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}
    assert choice.message.model_extra["tool_runs"] == []  # the server ran nothing
    messages = ASK_WEATHER + [choice.message.model_dump(exclude_none=True, exclude={"tool_runs"}),
                              {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}]
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER])
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "It is sunny in Paris."
    # The call and its result went back into the assistant's text, the dialect's way, and the model continued it.
    assert live.backend.prompts[-1].endswith("I will look it up. [get_weather(Paris, celsius) -> sunny, 21 C]")


def test_streamed_tool_call_fragments_reassemble(live: Live) -> None:
    whole = live.client().chat.completions.create(model=MODEL, messages=ASK_WEATHER, tools=[WEATHER])
    chunks = stream(live, messages=ASK_WEATHER, tools=[WEATHER])
    parts = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(parts) > 1 and parts[0].id and parts[0].function.name == "get_weather"
    assert all(p.id is None and p.function.name is None for p in parts[1:])  # id and name arrive once
    assert {p.index for p in parts} == {0}
    arguments = "".join(p.function.arguments or "" for p in parts)
    assert arguments == whole.choices[0].message.tool_calls[0].function.arguments
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["tool_calls"]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "I will look it up."


def test_tool_choice_none_offers_no_tools(live: Live) -> None:
    reply = live.client().chat.completions.create(model=MODEL, messages=ASK_WEATHER, tools=[WEATHER],
                                                  tool_choice="none")
    assert reply.choices[0].finish_reason == "stop" and reply.choices[0].message.tool_calls is None
    assert "get_weather" not in live.backend.prompts[-1]  # not offered in the prompt


def test_server_tools_can_be_switched_off_per_request(live: Live) -> None:
    reply = live.client().chat.completions.create(model=MODEL, messages=ASK_CALC, extra_body={"toolcall": {"tools": []}})
    assert reply.choices[0].message.model_extra["tool_runs"] == []
    assert "Calculator(" not in live.backend.prompts[-1].split("user: What is 17 * 23?")[0]


def test_malformed_call_is_reported_as_a_failed_run(live: Live) -> None:
    reply = live.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "broken"}])
    (run,) = reply.choices[0].message.model_extra["tool_runs"]
    assert run["tool"] is None and not run["ok"] and "malformed" in run["error"]
    assert reply.choices[0].message.content == "Try Done."


def test_stop_sequence_and_length(live: Live) -> None:
    client = live.client()
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hello there"}],
                                           stop=["there"])
    assert reply.choices[0].message.content == "You said: hello" and reply.choices[0].finish_reason == "stop"
    chunks = stream(live, messages=[{"role": "user", "content": "hello there"}], stop="there")
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "You said: hello"
    short = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "long"}], max_tokens=3)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 3
    also = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "long"}],
                                          max_completion_tokens=2)
    assert also.usage.completion_tokens == 2


def test_a_stop_after_a_prose_bracket_ends_the_reply(live: Live) -> None:
    """After "[1]" in prose a stop sequence was never applied (held back as a possible call, the text was released
    unsearched at the end): the reply ran on past it, and its text was shown."""
    client = live.client()
    ask = [{"role": "user", "content": "see [1] for details. STOP here, and more"}]
    whole = client.chat.completions.create(model=MODEL, messages=ask)
    reply = client.chat.completions.create(model=MODEL, messages=ask, stop=["STOP"])
    assert reply.choices[0].message.content == "You said: see [1] for details." == "".join(
        c.choices[0].delta.content or "" for c in stream(live, messages=ask, stop=["STOP"]))
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens < whole.usage.completion_tokens   # decoding ended at the stop


def test_n_choices(live: Live) -> None:
    reply = live.client().chat.completions.create(model=MODEL, messages=ASK_CALC, n=3)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert {c.message.content for c in reply.choices} == {"Let me compute: so the answer is 391."}
    chunks = stream(live, messages=ASK_CALC, n=2)
    for i in range(2):
        deltas = [c.choices[0].delta for c in chunks if c.choices[0].index == i]
        assert "".join(d.content or "" for d in deltas) == "Let me compute: so the answer is 391."
        assert [c.choices[0].finish_reason for c in chunks if c.choices[0].index == i][-1] == "stop"


def test_a_seeded_requests_choices_each_sample_with_a_seed_of_their_own(live: Live, monkeypatch: Any) -> None:
    """The same seed made every choice of n the same text; choice i samples with seed + i (choice 0 is the reply the
    same request with n=1 gets), wrapping past 2^64 - 1."""
    from toolcall.server.shared_model import SharedModel

    seeds: list[int | None] = []
    original = SharedModel.start

    def start(self: SharedModel, prompt: str, cancel: Any, sampling: Any) -> Any:
        seeds.append(sampling.seed)
        return original(self, prompt, cancel, sampling)

    monkeypatch.setattr(SharedModel, "start", start)
    live.client().chat.completions.create(model=MODEL, messages=ASK_CALC, n=3, temperature=0.7, seed=2**64 - 2)
    assert sorted(seeds) == [0, 2**64 - 2, 2**64 - 1]  # type: ignore[type-var]
    seeds.clear()
    live.client().chat.completions.create(model=MODEL, messages=ASK_CALC, n=2, temperature=0.7)
    assert seeds == [None, None]  # unseeded choices draw from fresh randomness each


def test_an_explicit_null_is_the_field_left_out(live: Live) -> None:
    """OpenAI reads `"n": null` as no n; clients and proxies that send every field got a 400 for n, stream and
    parallel_tool_calls."""
    import httpx

    body = {"model": MODEL, "messages": ASK_CALC, "n": None, "stream": None, "parallel_tool_calls": None,
            "temperature": None, "stop": None, "tools": None, "tool_choice": None, "stream_options": None}
    reply = httpx.post(live.url + "/v1/chat/completions", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    assert [c["message"]["content"] for c in reply.json()["choices"]] == ["Let me compute: so the answer is 391."]


def test_sampling_fields_are_accepted(live: Live) -> None:
    reply = live.client().chat.completions.create(model=MODEL, messages=ASK_CALC, temperature=0.7, top_p=0.9, seed=3,
                                                  user="u1", metadata={"a": "b"})
    assert reply.choices[0].message.content == "Let me compute: so the answer is 391."


def test_a_request_that_allows_no_call_is_offered_no_tools(live: Live) -> None:
    """toolcall.max_calls 0 banned every call, while the prompt still offered the tools and showed calls to copy."""
    client = live.client()
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hello"}])
    assert "Calculator" in live.backend.prompts[-1]
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hello"}],
                                   extra_body={"toolcall": {"max_calls": 0}})
    assert "Calculator" not in live.backend.prompts[-1]
