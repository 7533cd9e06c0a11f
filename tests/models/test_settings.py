"""A model folder's recommended settings (toolcall.json): applied under the typed flags, refused with a reason."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolcall.cli import build_parser
from toolcall.cli.generate_cmd import config_from_args
from toolcall.errors import ConfigError
from toolcall.evaluation import EVAL_LOOP
from toolcall.loop import LoopConfig
from toolcall.models import MAX_SETTINGS_BYTES, recommended


def folder(tmp_path: Path, content: str | bytes) -> str:
    (tmp_path / "toolcall.json").write_bytes(content.encode() if isinstance(content, str) else content)
    return str(tmp_path)


def test_a_folder_without_settings_changes_nothing(tmp_path: Path) -> None:
    assert recommended(LoopConfig(), str(tmp_path)) == LoopConfig()
    assert recommended(EVAL_LOOP, None) == EVAL_LOOP
    assert recommended(LoopConfig(), "no/such/model") == LoopConfig()


def test_the_recommended_values_apply_and_a_typed_flag_wins(tmp_path: Path) -> None:
    model = folder(tmp_path, json.dumps({"loop": {"call_threshold": 0.9, "max_calls": 2}, "other": {"x": 1}}))
    assert recommended(LoopConfig(), model) == LoopConfig(call_threshold=0.9, max_calls=2)
    config = config_from_args(build_parser().parse_args(["generate", "--model", model, "q"]))
    assert (config.call_threshold, config.max_calls) == (0.9, 2)
    typed = config_from_args(build_parser().parse_args(["generate", "--model", model, "--call-threshold", "0", "q"]))
    assert (typed.call_threshold, typed.max_calls) == (0.0, 2)
    # Over another command's base (eval's), only the recommended fields change.
    assert recommended(EVAL_LOOP, model) == LoopConfig(**{**EVAL_LOOP.__dict__, "call_threshold": 0.9, "max_calls": 2})


@pytest.mark.parametrize(("content", "message"), [
    ('{"loop": {"call_threshold": 0.9,}}', r"not JSON at line 1, column 33"),
    (b'{"loop": {"x": "\xff"}}', r"not UTF-8 at byte 16"),
    ('{"loop": {"temperature": 0.2}}', r"'temperature' not a loop setting; allowed: call_threshold, call_timeout"),
    ('{"loop": [1]}', r"whose 'loop' member is an object of settings"),
    ('[1, 2]', r"an object whose 'loop' member"),
    ('{"loop": {"call_threshold": 1.5}}', r"call_threshold \(--call-threshold\) must be below 1"),
    ('{"loop": {"max_calls": -1}}', r"max_calls \(--max-calls\) must be >= 0"),
    (" " * (MAX_SETTINGS_BYTES + 1), r"larger than 65536 bytes"),
])
def test_bad_settings_are_refused_with_where_and_what(tmp_path: Path, content: str | bytes, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        recommended(LoopConfig(), folder(tmp_path, content))
    assert str(tmp_path / "toolcall.json") in str(err.value)


def test_the_shipped_generalist_recommends_its_call_threshold() -> None:
    from toolcall.models import named_model_path

    path = named_model_path("schema-tools-smollm2")
    assert path is not None
    settings = json.loads((path / "toolcall.json").read_text(encoding="utf-8"))
    assert recommended(LoopConfig(), "schema-tools-smollm2").call_threshold == settings["loop"]["call_threshold"] > 0
    # It writes its one call twice now and then: its group ends before a call written again.
    assert recommended(LoopConfig(), "schema-tools-smollm2").repeat_calls is settings["loop"]["repeat_calls"] is False
    assert recommended(LoopConfig(), "toolformer-smollm2") == LoopConfig()
