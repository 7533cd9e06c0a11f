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
        """{"type": "function", "function": {...}} in the form of transformers' get_json_schema."""
        function: dict[str, Any] = {"name": self.name, "description": self.description, "parameters": self.parameters}
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
