"""ToolSpec: the schema a model is offered (pydantic's generated titles left out, everything else as given)."""
from __future__ import annotations

import copy
import json
from typing import Any

import openai
from pydantic import BaseModel, Field

from toolcall.dialects.chat import tools_prompt
from toolcall.dialects.hermes import HermesDialect
from toolcall.specs import ToolSpec, ToolSpecs, offered_parameters


class Place(BaseModel):
    city: str
    country_code: str = Field(description="ISO 3166 alpha-2.")


class GetWeather(BaseModel):
    place: Place
    unit_system: str = "metric"
    days: list[int] | None = None


def _titles(value: Any) -> list[str]:
    """Every `title` keyword's value in a schema (not properties named title)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, sub in value.items():
            if key == "title" and isinstance(sub, str):
                found.append(sub)
            elif key == "properties" and isinstance(sub, dict):
                for prop in sub.values():
                    found += _titles(prop)
            else:
                found += _titles(sub)
    elif isinstance(value, list):
        for sub in value:
            found += _titles(sub)
    return found


def test_pydantics_generated_titles_are_not_offered_and_the_rest_is() -> None:
    parameters = openai.pydantic_function_tool(GetWeather)["function"]["parameters"]
    assert set(_titles(parameters)) >= {"GetWeather", "Place", "City", "Country Code", "Unit System", "Days"}
    kept = copy.deepcopy(parameters)
    offered = offered_parameters(parameters)
    assert parameters == kept  # the tool's own schema (binding, strict checks) is left as it was
    assert _titles(offered) == []
    assert offered["$defs"]["Place"]["properties"]["country_code"] == {"description": "ISO 3166 alpha-2.",
                                                                       "type": "string"}
    assert offered["properties"]["days"]["anyOf"] == [{"items": {"type": "integer"}, "type": "array"},
                                                      {"type": "null"}]
    assert offered["required"] == parameters["required"]
    assert offered["additionalProperties"] is False


def test_a_title_that_says_more_than_the_name_and_a_property_named_title_are_kept() -> None:
    parameters = {"type": "object", "title": "anything at the top",
                  "properties": {"title": {"type": "string", "title": "Title"},
                                 "isbn": {"type": "string", "title": "ISBN-13 of the edition"},
                                 "tags": {"type": "array", "items": {"type": "string", "title": "Tags"}}},
                  "required": ["title"]}
    offered = offered_parameters(parameters)
    assert list(offered) == ["type", "properties", "required"]
    assert offered["properties"]["title"] == {"type": "string"}
    assert offered["properties"]["isbn"]["title"] == "ISBN-13 of the edition"
    assert offered["properties"]["tags"]["items"] == {"type": "string", "title": "Tags"}  # not a generated one


def test_the_prompt_shows_the_schema_without_generated_titles() -> None:
    parameters = openai.pydantic_function_tool(GetWeather)["function"]["parameters"]
    spec = ToolSpec("get_weather", "The weather.", parameters)
    assert spec.parameters is parameters

    def chat(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
        return json.dumps({"messages": messages, "tools": tools})

    shown = json.loads(tools_prompt(HermesDialect(), "Weather in Paris?", ToolSpecs([spec]), chat))
    assert shown["tools"] == [spec.schema] and _titles(shown["tools"]) == []
    assert shown["tools"][0]["function"]["parameters"]["properties"]["place"] == {"$ref": "#/$defs/Place"}


def test_a_schema_nested_past_any_tools_depth_is_left_as_it_is_below() -> None:
    deep: dict[str, Any] = {"type": "string", "title": "Leaf"}
    for _ in range(100):
        deep = {"type": "object", "properties": {"leaf": deep}, "title": "Leaf"}
    offered = offered_parameters(deep)
    node = offered
    depth = 0
    while "properties" in node:
        node = node["properties"]["leaf"]
        depth += 1
    assert depth == 100 and node == {"type": "string", "title": "Leaf"}  # below the 64th level, as given
    assert "title" not in offered["properties"]["leaf"]
