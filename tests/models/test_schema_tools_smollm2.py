"""The shipped generalist adapter, schema-tools-smollm2: found by name, and given three tools it has never seen, it
calls the right one (hermes, through the chat template)."""
from __future__ import annotations

import json

import pytest

import toolcall
from toolcall.models import named_model_path, resolve_model
from toolcall.registry import ToolRegistry

NAME = "schema-tools-smollm2"


@toolcall.tool
def get_air_quality(city: str) -> str:
    """Air quality index and the main pollutant in a city right now.

    Args:
        city: The city to report on.
    """
    return json.dumps({"city": city, "aqi": 42, "pollutant": "ozone"})


@toolcall.tool
def translate_text(text: str, target_language: str) -> str:
    """Translate a short text into another language.

    Args:
        text: The text to translate.
        target_language: The language to translate into, e.g. French.
    """
    return json.dumps({"translation": "buongiorno", "language": target_language})


@toolcall.tool
def search_library_catalogue(title: str, author: str = "") -> str:
    """Whether the public library holds a book, and on which shelf.

    Args:
        title: The book's title.
        author: The book's author, when known.
    """
    return json.dumps({"title": title, "available": True, "shelf": "F-12"})


#: Requests written for this test (none of the corpus's tools or wordings), each with the tool it needs.
REQUESTS = [("How clean is the air in Madrid today?", "get_air_quality"),
            ("Please translate 'good morning' into Italian.", "translate_text"),
            ("Does the library have the novel Middlemarch by George Eliot?", "search_library_catalogue")]
REQUESTS_TOOLS = {tool for _, tool in REQUESTS}


def test_the_generalist_resolves_by_name_to_its_folder() -> None:
    folder = named_model_path(NAME)
    assert folder is not None and (folder / "adapter_config.json").is_file()
    assert resolve_model(NAME) == str(folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "embedded" and config["peft_type"] == "LORA"
    recipe = (folder / "README.md").read_text()
    for step in ("schema_tools", "answer_filter", "toolcall train", "toolcall eval --task bfcl", "seed"):
        assert step in recipe, step


@pytest.mark.model
def test_the_generalist_picks_the_right_one_of_three_unseen_tools() -> None:
    from toolcall.api import make_backend

    backend = make_backend("transformers", NAME)          # loaded once, by name
    registry = ToolRegistry([get_air_quality, translate_text, search_library_catalogue])
    picked = []
    for request, _ in REQUESTS:
        result = toolcall.generate(request, backend=backend, dialect="hermes", tools=registry, few_shot=False,
                                   max_new_tokens=96, max_calls=1)
        picked.append(result.calls[0].tool if result.calls else None)
    right = sum(p == wanted for p, (_, wanted) in zip(picked, REQUESTS))
    print(f"{NAME} picked {picked}")                       # shown with -s: what it called, request by request
    # Measured when the second and the third version were shipped: ['get_air_quality', 'translate_text',
    # 'search_library_catalogue'] - the right tool for all three (the first version: [None, 'translate_text',
    # 'translate_text'], 1 of 3). The issue asks for the right one on 2 of 3.
    assert all(p in REQUESTS_TOOLS for p in picked), picked
    assert right >= 2, picked


@pytest.mark.model
def test_with_its_recommended_call_threshold_it_never_calls_the_wrong_tool() -> None:
    from toolcall.api import make_backend
    from toolcall.loop import LoopConfig
    from toolcall.models import recommended

    threshold = recommended(LoopConfig(), NAME).call_threshold
    assert threshold > 0                                   # the folder's toolcall.json
    backend = make_backend("transformers", NAME)
    registry = ToolRegistry([get_air_quality, translate_text, search_library_catalogue])
    picked = []
    for request, _ in REQUESTS:
        result = toolcall.generate(request, backend=backend, dialect="hermes", tools=registry, few_shot=False,
                                   max_new_tokens=96, max_calls=1, call_threshold=threshold)
        picked.append(result.calls[0].tool if result.calls else None)
    print(f"{NAME} with call_threshold {threshold} picked {picked}")
    # Measured with the second version's 0.95: ['get_air_quality', None, 'search_library_catalogue'] (the translation
    # request, where it was less sure it should call, got no call); with the third version's 0.96 the right tool for
    # all three. A threshold may withhold a call, never change which tool is called.
    assert all(p is None or p == wanted for p, (_, wanted) in zip(picked, REQUESTS)), picked
    assert sum(p is not None for p in picked) >= 2, picked


@pytest.mark.model
def test_the_top_k_trigger_leaves_the_call_it_opened_alone() -> None:
    """With --trigger-top-k and no threshold, the adapter opens its own call at the first token, and at the next one
    (a newline greedy, `<` in the top ten) the trigger wrote a second opener: `<tool_call>\n<tool_call>`. Inside a
    call the trigger now rests: one opener per call, each call well formed."""
    from toolcall.api import make_backend

    backend = make_backend("transformers", NAME)
    registry = ToolRegistry([get_air_quality, translate_text, search_library_catalogue])
    for request, _ in REQUESTS:
        result = toolcall.generate(request, backend=backend, dialect="hermes", tools=registry, few_shot=False,
                                   max_new_tokens=64, max_calls=1, trigger_top_k=10, call_threshold=0)
        assert "<tool_call>\n<tool_call>" not in result.text, result.text
        assert all(c.tool in REQUESTS_TOOLS for c in result.calls), result.text


@pytest.mark.model
def test_an_agent_with_tools_and_an_output_type_gets_a_call_then_its_object() -> None:
    """The OpenAI Agents SDK's `output_type` with tools over `toolcall serve`: `response_format` and `tools` in one
    request. The reply calls the client's function (handed back), and once its result is sent the answer is the
    schema's object; a request no tool fits gets the object at once (the adapter's call threshold)."""
    import jsonschema
    from live_server import serve

    from toolcall.api import make_backend
    from toolcall.loop import LoopConfig
    from toolcall.models import recommended
    from toolcall.server import ServerSettings

    weather = {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city.", "strict": True,
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                       "additionalProperties": False}}}
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "summary": {"type": "string"}},
              "required": ["city", "summary"], "additionalProperties": False}
    output = {"type": "json_schema", "json_schema": {"name": "final_output", "strict": True, "schema": schema}}
    settings = ServerSettings(NAME, None, recommended(LoopConfig(max_new_tokens=120), NAME))
    for live in serve(make_backend("transformers", NAME), settings, dialect="hermes"):
        client = live.client(timeout=600)
        messages: list[dict] = [{"role": "user", "content": "What's the weather in Paris?"}]
        first = client.chat.completions.create(model=NAME, messages=messages, tools=[weather], response_format=output)
        assert first.choices[0].finish_reason == "tool_calls", first
        (call,) = first.choices[0].message.tool_calls
        assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
        messages += [first.choices[0].message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"}]
        answer = client.chat.completions.create(model=NAME, messages=messages, tools=[weather], response_format=output)
        assert answer.choices[0].finish_reason == "stop" and not answer.choices[0].message.tool_calls
        final = json.loads(answer.choices[0].message.content)
        jsonschema.validate(final, schema)
        assert final["city"] == "Paris"          # measured: {"city": "Paris", "summary": "Sunny"}
        haiku = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "Write a haiku "
                                               "about the sea."}], tools=[weather], response_format=output)
        assert haiku.choices[0].finish_reason == "stop" and not haiku.choices[0].message.tool_calls
        jsonschema.validate(json.loads(haiku.choices[0].message.content), schema)
