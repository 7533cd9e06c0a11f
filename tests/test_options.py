"""toolcall.options: config dataclasses turned into argparse options and back."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

import pytest

from toolcall.errors import ConfigError
from toolcall.options import add_options, at_least, comma_list, from_args, given, option


@dataclass(frozen=True)
class Sample:
    """A config with one field of each kind the helper supports."""

    source: Path = option(help="where to read")
    count: int = option(3, metavar="N", help="how many")
    ratio: float = option(0.5, help="a share of 100%")
    name: str | None = option(None, help="an optional name")
    mode: Literal["fast", "exact"] = option("fast", help="how to work")
    colour: str = option("red", choices=("red", "green"), help="a colour")
    names: tuple[str, ...] = option(("a", "b"), help="comma-separated names")
    verbose: bool = option(False, help="say more")
    checks: bool = option(True, help="run the checks")
    tools_enabled: bool = option(True, flag="--no-tools", help="run no tools")
    k: int = option(5, flag="--top-k", metavar="K", help="the k of top-k")

    def __post_init__(self) -> None:
        at_least(self, count=1, k=1)


def parser_for(cls: type = Sample, **kwargs: object) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t", exit_on_error=False)
    add_options(parser, cls, **kwargs)
    return parser


def build(*argv: str, **overrides: object) -> Sample:
    return from_args(Sample, parser_for().parse_args(["--source", "in.txt", *argv]), **overrides)


def test_round_trip_of_the_defaults() -> None:
    assert build() == Sample(Path("in.txt"))


def test_every_kind_of_field_parses() -> None:
    got = build("--count", "7", "--ratio", "0.25", "--name", "x", "--mode", "exact", "--colour", "green",
                "--names", " c, d ,,e ", "--verbose", "--no-checks", "--no-tools", "--top-k", "9")
    assert got == Sample(Path("in.txt"), 7, 0.25, "x", "exact", "green", ("c", "d", "e"), True, False, False, 9)
    assert isinstance(got.source, Path) and isinstance(got.ratio, float)


def test_boolean_flags_turn_both_ways() -> None:
    assert build("--verbose").verbose and not build("--verbose", "--no-verbose").verbose
    assert build("--checks").checks and not build("--no-checks").checks
    with pytest.raises(SystemExit):
        parser_for().parse_args(["--source", "x", "--tools-enabled"])  # a --no-x flag has no positive twin


def test_bad_values_are_usage_errors() -> None:
    parser = parser_for()
    for argv in (["--count", "many"], ["--mode", "slow"], ["--colour", "blue"]):
        with pytest.raises(argparse.ArgumentError):
            parser.parse_args(["--source", "x", *argv])
    with pytest.raises(SystemExit):
        parser_for().parse_args([])  # --source is required: the field has no default


def test_validation_stays_in_the_dataclass() -> None:
    with pytest.raises(ConfigError, match=r"count \(--count\) must be >= 1, got 0"):
        build("--count", "0")
    with pytest.raises(ConfigError, match=r"k \(--top-k\) must be >= 1"):
        build("--top-k", "0")


def test_nan_is_below_every_bound() -> None:
    sample = build("--ratio", "nan")   # `nan < 0.0` is false: every bound let NaN through
    with pytest.raises(ConfigError, match=r"ratio \(--ratio\) must be >= 0.0, got nan"):
        at_least(sample, ratio=0.0)


def test_only_given_flags_are_in_the_namespace() -> None:
    args = parser_for().parse_args(["--source", "x", "--count", "3", "--no-checks"])
    assert given(args, Sample) == {"source": Path("x"), "count": 3, "checks": False}  # 3 equals the default: still given


def test_overrides_and_base() -> None:
    assert build("--count", "4", count=9).count == 9
    base = Sample(Path("b"), count=2, names=("z",))
    parser = parser_for(base=base)
    assert "(default: 2)" in parser.format_help() and "(default: z)" in parser.format_help()
    got = from_args(Sample, parser.parse_args(["--source", "x", "--ratio", "1.5"]), base=base)
    assert got == Sample(Path("x"), count=2, ratio=1.5, names=("z",))


def test_help_comes_from_the_metadata() -> None:
    text = parser_for().format_help()
    for line in ("how many (default: 3)", "a share of 100% (default: 0.5)", "comma-separated names (default: a,b)",
                 "--verbose, --no-verbose", "say more (default: off)", "run the checks (default: on)",
                 "--count N", "--top-k K", "{fast,exact}", "{red,green}", "--no-tools"):
        assert line in text, line
    assert "an optional name (default" not in text  # None is not shown as a default
    for action in parser_for()._actions:
        assert action.help, action.option_strings


def test_only_exclude_and_group() -> None:
    parser = argparse.ArgumentParser()
    add_options(parser, Sample, only=("source", "count", "verbose"), exclude=("verbose",), group="sample settings")
    text = parser.format_help()
    assert "sample settings:" in text and "A config with one field of each kind" in text
    assert "--count" in text and "--ratio" not in text and "--verbose" not in text


def test_a_field_without_help_or_with_an_unknown_type_is_refused() -> None:
    @dataclass
    class NoHelp:
        x: int = 1

    @dataclass
    class Odd:
        x: dict[str, int] = option(None, help="a mapping")

    with pytest.raises(TypeError, match="NoHelp.x has no help text"):
        parser_for(NoHelp)
    with pytest.raises(TypeError, match="Odd.x: type"):
        parser_for(Odd)


def test_two_configs_with_a_field_of_the_same_name_do_not_collide() -> None:
    @dataclass
    class A:
        size: int = option(1, help="a's size")

    @dataclass
    class B:
        size: int = option(2, flag="--b-size", help="b's size")

    parser = argparse.ArgumentParser()
    add_options(parser, A)
    add_options(parser, B)
    args = parser.parse_args(["--b-size", "5"])
    assert (from_args(A, args).size, from_args(B, args).size) == (1, 5)


def test_comma_list() -> None:
    assert comma_list("q_proj, v_proj") == ("q_proj", "v_proj") and comma_list(" , ") == ()


@pytest.mark.parametrize("cls_path", ["toolcall.loop:LoopConfig", "toolcall.training:TrainConfig",
                                      "toolcall.evaluation:EvalConfig", "toolcall.data_gen.config:PositionConfig",
                                      "toolcall.data_gen.config:SampleConfig", "toolcall.data_gen.config:FilterConfig",
                                      "toolcall.data_gen.config:ExecuteConfig", "toolcall.data_gen.config:PrefilterConfig"])
def test_the_project_configs_round_trip(cls_path: str) -> None:
    import importlib

    module, name = cls_path.split(":")
    cls = getattr(importlib.import_module(module), name)
    required = {"TrainConfig": ["--corpus", "c", "--output", "o"], "EvalConfig": ["--task", "math"]}.get(name, [])
    skip = {"open_texts", "stop", "prefix_separator"}  # call-syntax markers, not options
    parser = argparse.ArgumentParser()
    add_options(parser, cls, exclude=skip)
    made = from_args(cls, parser.parse_args(required))
    defaults = {"TrainConfig": dict(corpus=Path("c"), output=Path("o")), "EvalConfig": dict(task="math")}.get(name, {})
    assert made == cls(**defaults)
    assert all(f.name in skip or f.metadata.get("help") for f in fields(cls))


def test_a_config_made_in_python_holds_values_of_its_declared_types() -> None:
    from toolcall.loop import LoopConfig
    from toolcall.options import check_types

    # From Python, max_calls=None failed later inside the loop, and tools_enabled="no" counted as true.
    for changes, words in [({"max_calls": None}, r"max_calls \(--max-calls\) must be a whole number, got None"),
                           ({"tools_enabled": "no"}, r"tools_enabled \(--no-tools\) must be true or false, got 'no'"),
                           ({"max_new_tokens": 1.5}, "must be a whole number, got 1.5"),
                           ({"call_timeout": "5"}, r"call_timeout \(--call-timeout\) must be a number")]:
        with pytest.raises(ConfigError, match=words):
            LoopConfig(**changes)   # type: ignore[arg-type]
    assert LoopConfig(call_timeout=2, call_threshold=0).call_timeout == 2   # an int is a number
    sample = build()
    object.__setattr__(sample, "mode", "slow")
    with pytest.raises(ConfigError, match=r"mode \(--mode\) must be one of 'fast', 'exact', got 'slow'"):
        check_types(sample)
