"""Stage configs: the paper's defaults, per-tool overrides, validation, and the CLI flags that set them."""
from __future__ import annotations

import argparse

import pytest

from toolcall.data_gen.config import DataGenConfig, FilterConfig
from toolcall.errors import ConfigError


def test_weights_are_the_papers() -> None:
    w = FilterConfig().weights()
    assert w == pytest.approx([1 / 3, 0.8 / 3, 0.6 / 3, 0.4 / 3, 0.2 / 3])


def test_defaults_and_per_tool_overrides() -> None:
    cfg = DataGenConfig()
    pos, sam, fil = cfg.for_tool("QA")
    assert (pos.tau_s, pos.k, sam.m, fil.tau_f) == (0.05, 5, 5, 1.0)
    for tool in ("Calculator", "mt"):
        pos, sam, fil = cfg.for_tool(tool)
        assert (pos.tau_s, pos.k, sam.m, fil.tau_f) == (0.0, 20, 10, 0.5)


def test_bad_placement_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="prefix, inline"):
        FilterConfig(placement="middle")


def _args(**over: object) -> argparse.Namespace:
    from toolcall.cli import build_parser

    argv = ["data-gen", "--input", "x.txt", "--output", "d"]
    for key, value in over.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return build_parser().parse_args(argv)


def test_cli_flags_override_every_tool() -> None:
    from toolcall.cli.datagen_cmd import build_config

    cfg = build_config(_args(tau_f=2.0, samples=3, placement="inline"))
    for tool in ("calculator", "calendar"):
        pos, sam, fil = cfg.for_tool(tool)
        assert (sam.m, fil.tau_f, fil.placement) == (3, 2.0, "inline")
    assert cfg.for_tool("calculator")[0].k == 20      # not given: the paper's per-tool value stays
    assert cfg.to_dict()["filter"]["tau_f"] == 2.0


def test_cli_rejects_zero_samples() -> None:
    from toolcall.cli.datagen_cmd import build_config

    with pytest.raises(ConfigError, match="--samples"):
        build_config(_args(samples=0))
