"""Call dialects, looked up by name: each owns one wire format, from parsing calls to the prompt that offers the tools."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..calls import Parsed
from ..errors import ConfigError
from ..name_registry import NameRegistry
from .base import Dialect
from .chat import dialect_for_template
from .hermes import HermesDialect
from .llama3_json import Llama3JsonDialect
from .mistral import MistralDialect
from .moss import MossDialect
from .pythonic import PythonicDialect
from .streaming import IncrementalParser
from .toolformer import ToolformerDialect

__all__ = ["Dialect", "HermesDialect", "IncrementalParser", "Llama3JsonDialect", "MistralDialect", "MossDialect",
           "PythonicDialect", "ToolformerDialect", "dialect_for_template", "dialects", "get_dialect", "parse", "render"]

# Name -> factory taking the dialect's options (e.g. spelling="tagged" for toolformer).
dialects: NameRegistry[Callable[..., Dialect]] = NameRegistry("dialect")
dialects.register("toolformer", ToolformerDialect)
dialects.register("moss", MossDialect)
dialects.register("hermes", HermesDialect)
dialects.register("pythonic", PythonicDialect)
dialects.register("llama3_json", Llama3JsonDialect)
dialects.register("mistral", MistralDialect)


def get_dialect(name: str, **options: Any) -> Dialect:
    """A dialect by (case-insensitive) name, built with its options; unknown names list the valid ones."""
    factory = dialects.get(name)
    try:
        return factory(**options)
    except TypeError as err:
        raise ConfigError(f"bad options for dialect {dialects.canonical(name)!r}: {err}") from err


def _resolve(dialect: str | Dialect) -> Dialect:
    return dialect if isinstance(dialect, Dialect) else get_dialect(dialect)


def parse(text: str, dialect: str | Dialect = "toolformer", strict: bool = False) -> Parsed:
    """Every call in `text`; malformed call-like spans go to `issues`, or raise DialectSyntaxError if strict."""
    if not isinstance(text, str):
        raise ConfigError(f"parse() reads text (a str), got {type(text).__name__}")
    return _resolve(dialect).parse(text, strict=strict)


def render(parsed: Parsed, dialect: str | Dialect | None = None) -> str:
    """The text of `parsed` with its calls; `render(parse(s)) == s`. Defaults to the dialect it was parsed with."""
    if not isinstance(parsed, Parsed):
        raise ConfigError(f"render() writes what parse() returned (a Parsed), got {type(parsed).__name__}")
    return _resolve(dialect if dialect is not None else parsed.dialect).render(parsed)
