"""What a wire format and the decoding loop know of a tool: its name, description and JSON schema, as plain data."""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import DuplicateNameError

__all__ = ["TOOL_NAME", "ToolSpec", "ToolSpecs"]

#: A name every dialect can write in a call, Toolformer's `Name(args)` included: a letter or _, then letters,
#: digits and _ (64 at most, as OpenAI's tools allow).
TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


#: Keywords whose value is one schema, and those whose value is a list of schemas (JSON Schema 2020-12).
_ONE_SCHEMA = ("items", "additionalProperties", "unevaluatedProperties", "unevaluatedItems", "contains",
               "propertyNames", "not", "if", "then", "else")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_NAMED_SCHEMAS = ("properties", "$defs", "definitions")
#: Deeper than any schema a tool may have (toolcall.schema's and the MCP client's limit is 32): left as it is.
_TITLE_DEPTH = 64


def offered_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """`parameters` without the titles pydantic writes by itself: the whole object's (`get_forecastArguments`, the
    model's class name) and each property's or definition's that only repeats its name (`"city": {"title": "City"}`).
    Pydantic-made schemas carry them (FastMCP's and the MCP SDK's servers, openai's `pydantic_function_tool`, the
    Agents SDK's function tools); a small model offered them copies them into its calls as arguments
    (`{"city": "Paris", "title": "City", "type": "string"}`). A title that says more than the name is kept, and a
    property named `title` is a property like any other."""
    return _untitled(parameters, None, 0)


def _untitled(schema: Any, name: str | None, depth: int) -> Any:
    """`schema` without its title where it is generated (`name` None: any title; "": none)."""
    if not isinstance(schema, dict) or depth > _TITLE_DEPTH:
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str) and (name is None or (name and _same_words(value, name))):
            continue
        if key in _NAMED_SCHEMAS and isinstance(value, dict):
            out[key] = {k: _untitled(v, k, depth + 1) for k, v in value.items()}
        elif key in _ONE_SCHEMA:
            out[key] = _untitled(value, "", depth + 1)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_untitled(v, "", depth + 1) for v in value]
        else:
            out[key] = value
    return out


def _same_words(title: str, name: str) -> bool:
    """Whether `title` is `name` in pydantic's title case (`unit_price` -> `Unit Price`), spacing and case aside."""
    def words(text: str) -> str:
        return re.sub(r"[\s_-]", "", text).lower()
    return words(title) == words(name)


@dataclass(frozen=True)
class ToolSpec:
    """A tool as it is offered to a model: no function, nothing to run.

    `parameters` is the JSON schema of its arguments (an object schema, as transformers' get_json_schema writes it);
    `argument_grammar` is the Lark text of what may stand between a Toolformer call's parentheses (None: derived from
    the schema; "": no arguments); `joiner` glues positional pieces back into a tool's one string parameter.
    """

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    aliases: tuple[str, ...] = ()
    example: str | None = None
    argument_grammar: str | None = None
    joiner: str = ", "
    returns: dict[str, Any] | None = None

    @property
    def schema(self) -> dict[str, Any]:
        """{"type": "function", "function": {...}} in the form of transformers' get_json_schema (which writes no
        titles: see offered_parameters)."""
        function: dict[str, Any] = {"name": self.name, "description": self.description,
                                    "parameters": offered_parameters(self.parameters)}
        if self.returns is not None:
            function["return"] = self.returns
        return {"type": "function", "function": function}

    def arguments_grammar(self) -> str:
        """What constrained sampling lets a model write between this tool's parentheses: Lark text whose `start`
        rule is the argument list ("" for none). `argument_grammar` when set, else derived from the JSON schema."""
        if self.argument_grammar is not None:
            return self.argument_grammar
        from .argument_grammar import schema_argument_grammar

        return schema_argument_grammar(self.parameters)


class ToolSpecs:
    """The tools offered to one reply, in order, looked up by case-insensitive name or alias."""

    def __init__(self, specs: Iterable[ToolSpec] = ()) -> None:
        self._specs: list[ToolSpec] = []
        self._names: dict[str, ToolSpec] = {}
        for spec in specs:
            for key in (spec.name, *spec.aliases):
                owner = self._names.get(key.lower())
                if owner is not None and owner is not spec:
                    raise DuplicateNameError(f"tool name {key!r} is offered twice (for {owner.name!r} and "
                                             f"{spec.name!r})")
                self._names[key.lower()] = spec
            self._specs.append(spec)

    def find(self, name: str) -> ToolSpec | None:
        """The tool a call names (any case, or an alias), None when no offered tool has that name."""
        return self._names.get(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._names

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def names(self) -> list[str]:
        return [s.name for s in self._specs]

    def schemas(self) -> list[dict[str, Any]]:
        return [s.schema for s in self._specs]

    def subset(self, names: Iterable[str]) -> "ToolSpecs":
        """Only the named tools (unknown names are left out)."""
        chosen: list[ToolSpec] = []
        for name in names:
            spec = self.find(name)
            if spec is not None and all(spec is not c for c in chosen):
                chosen.append(spec)
        return ToolSpecs(chosen)
