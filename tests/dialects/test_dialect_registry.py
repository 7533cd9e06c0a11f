"""The dialect registry: lookup by name, options, and the error for unknown names."""
from __future__ import annotations

import pytest

from toolcall.dialects import Dialect, dialects, get_dialect, parse
from toolcall.dialects.moss import MossDialect
from toolcall.dialects.toolformer import ToolformerDialect
from toolcall.errors import ConfigError, UnknownNameError


def test_names_and_lookup() -> None:
    assert dialects.names() == ["hermes", "llama3_json", "mistral", "moss", "pythonic", "toolformer"]
    assert isinstance(get_dialect("TOOLFORMER"), ToolformerDialect)
    assert isinstance(get_dialect("moss"), MossDialect)
    assert isinstance(get_dialect("moss"), Dialect)


def test_unknown_dialect_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        get_dialect("toolfromer")
    message = str(info.value)
    assert "moss" in message and "toolformer" in message and "Did you mean 'toolformer'" in message
    with pytest.raises(UnknownNameError, match="Valid names: hermes, llama3_json, mistral, moss, pythonic, toolformer"):
        parse("x", "qwen")


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="bad options for dialect 'moss'"):
        get_dialect("moss", spelling="tagged")


def test_parse_accepts_an_instance() -> None:
    parsed = parse("[Calendar()] <API>[Calendar()]</API>", get_dialect("toolformer", spelling="tagged"))
    assert len(parsed.calls) == 2 and parsed.dialect == "toolformer"
