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
    # Default sampling: Calculator's proposals carry its recall, so the model samples less there.
    # It writes one greedy call at each position (with the proposals' tokens among them).
    assert [(p.tau_s, p.k, s.m, s.temperature, f.tau_f, p.at_proposals)
            for p, s, f in [cfg.for_tool("Calculator")]] == [(0.0, 5, 1, 0.0, 0.5, True)]
    assert cfg.for_tool("calendar")[1].temperature == 1.0
    pos, sam, fil = cfg.for_tool("mt")
    assert (pos.tau_s, pos.k, sam.m, fil.tau_f) == (0.0, 20, 10, 0.5)
    assert sam.constrain and cfg.proposes("calculator") and fil.threshold("proposer") == fil.tau_p == -0.5
    assert fil.threshold("model") == 0.5


def test_paper_sampling_is_the_papers_procedure() -> None:
    cfg = DataGenConfig(sampling="paper")
    for tool in ("Calculator", "mt"):
        pos, sam, fil = cfg.for_tool(tool)
        assert (pos.tau_s, pos.k, sam.m, fil.tau_f) == (0.0, 20, 10, 0.5)
    assert not cfg.for_tool("calendar")[1].constrain       # free samples, ended at "]"
    assert not cfg.proposes("calculator") and not cfg.proposes("calendar")
    assert not cfg.execute_config().restyle and DataGenConfig().execute_config().restyle
    with pytest.raises(ConfigError, match="default, paper"):
        DataGenConfig(sampling="clever")


def test_a_tool_override_can_turn_one_proposer_off() -> None:
    from toolcall.data_gen.config import ProposeConfig, ToolOverride

    cfg = DataGenConfig(overrides={"calendar": ToolOverride(propose=False)})
    assert cfg.proposes("calculator") and not cfg.proposes("Calendar")
    assert not DataGenConfig(propose=ProposeConfig(enabled=False)).proposes("calculator")
    with pytest.raises(ConfigError, match=r"per_position \(--per-position\) must be >= 1"):
        ProposeConfig(per_position=0)


def test_proposals_pass_where_they_do_not_hurt_a_tool_may_differ_and_a_typed_tau_p_wins() -> None:
    from toolcall.data_gen.config import ToolOverride

    from toolcall.cli.datagen_cmd import build_config

    cfg = DataGenConfig()
    assert (cfg.for_tool("Calendar")[2].tau_p, cfg.for_tool("calculator")[2].tau_p) == (-0.5, -0.5)
    own = DataGenConfig(overrides={"calendar": ToolOverride(tau_p=0.2)})
    assert (own.for_tool("Calendar")[2].tau_p, own.for_tool("calculator")[2].tau_p) == (0.2, -0.5)
    typed = build_config(_args(tau_p=0.3))
    assert typed.for_tool("calendar")[2].tau_p == typed.for_tool("calculator")[2].tau_p == 0.3


def test_a_typed_temperature_or_sample_count_wins_over_the_tools_own() -> None:
    from toolcall.cli.datagen_cmd import build_config

    typed = build_config(_args(temperature=0.5))
    assert typed.for_tool("calculator")[1].temperature == typed.for_tool("calendar")[1].temperature == 0.5
    assert typed.for_tool("calculator")[1].m == 1      # untouched: only what was typed is cleared
    assert build_config(_args(samples=3)).for_tool("calculator")[1].m == 3


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
    assert cfg.for_tool("calculator")[0].k == 5       # not given: the sampling mode's per-tool value stays
    assert cfg.to_dict()["filter"]["tau_f"] == 2.0


def test_cli_rejects_zero_samples() -> None:
    from toolcall.cli.datagen_cmd import build_config

    with pytest.raises(ConfigError, match=r"m \(--samples\) must be >= 1, got 0"):
        build_config(_args(samples=0))


def test_no_stage_flag_keeps_the_papers_values_and_the_stage_defaults() -> None:
    from toolcall.cli.datagen_cmd import build_config

    cfg = build_config(_args())
    assert cfg == DataGenConfig()
    assert cfg.for_tool("calculator")[0].tau_s == 0.0 and cfg.for_tool("calendar")[0].tau_s == 0.05


def test_every_stage_field_has_its_flag() -> None:
    from toolcall.cli import build_parser
    from toolcall.cli.datagen_cmd import build_config

    argv = ["data-gen", "--input", "x.txt", "--output", "d", "--tools", "calendar", "--no-prefilter",
            "--number-window", "50", "--min-numbers", "2", "--tau-s", "0.1", "--top-k", "3", "--min-token", "2",
            "--no-word-start-only", "--samples", "4", "--temperature", "0.7", "--sample-top-k", "40",
            "--max-new-tokens", "16", "--seed", "9", "--workers", "2", "--call-timeout", "3", "--no-drop-errors",
            "--no-restyle",
            "--tau-f", "0.2", "--placement", "inline", "--decay", "0.5", "--tau-p", "0.3", "--sampling", "paper",
            "--no-propose", "--min-score", "0.6", "--per-position", "1", "--per-text", "9"]
    cfg = build_config(build_parser().parse_args(argv))
    assert cfg.tools == ("calendar",)
    assert (cfg.prefilter.enabled, cfg.prefilter.number_window, cfg.prefilter.min_numbers) == (False, 50, 2)
    assert (cfg.positions.tau_s, cfg.positions.k, cfg.positions.min_token, cfg.positions.word_start_only) == (0.1, 3, 2, False)
    assert (cfg.sample.m, cfg.sample.temperature, cfg.sample.top_k, cfg.sample.max_new_tokens, cfg.sample.seed) == \
        (4, 0.7, 40, 16, 9)
    assert (cfg.execute.workers, cfg.execute.timeout, cfg.execute.drop_errors, cfg.execute.restyle) == (2, 3.0, False, False)
    assert (cfg.filter.tau_f, cfg.filter.placement, cfg.filter.decay, cfg.filter.tau_p) == (0.2, "inline", 0.5, 0.3)
    assert cfg.sampling == "paper"
    assert (cfg.propose.enabled, cfg.propose.min_score, cfg.propose.per_position, cfg.propose.per_text) == \
        (False, 0.6, 1, 9)
    for tool in ("calculator", "mt"):  # every per-tool value was given on the command line
        pos, sam, fil = cfg.for_tool(tool)
        assert (pos.tau_s, pos.k, sam.m, fil.tau_f) == (0.1, 3, 4, 0.2)


def test_stage_validation_names_the_flag() -> None:
    from toolcall.data_gen.config import ExecuteConfig, PositionConfig, SampleConfig

    with pytest.raises(ConfigError, match=r"k \(--top-k\) must be >= 1"):
        PositionConfig(k=0)
    with pytest.raises(ConfigError, match=r"temperature \(--temperature\) must be >= 0"):
        SampleConfig(temperature=-1)
    with pytest.raises(ConfigError, match=r"workers \(--workers\) must be >= 1"):
        ExecuteConfig(workers=0)
    with pytest.raises(ConfigError, match="tools is empty"):
        DataGenConfig(tools=())


def test_cli_rejects_an_empty_tool_list() -> None:
    from toolcall.cli.datagen_cmd import build_config

    with pytest.raises(ConfigError, match="--tools calculator"):
        build_config(_args(tools=" , "))


@pytest.mark.parametrize(("flags", "message"), [
    ({"positions": {"tau_s": 2.0}}, r"tau_s \(--tau-s\) must be in \[0, 1\], got 2.0"),
    ({"positions": {"tau_s": -1.0}}, r"tau_s \(--tau-s\) must be in \[0, 1\], got -1.0"),
    ({"positions": {"k": 5000}}, r"k \(--top-k\) must be in \[1, 1000\]"),
    ({"sample": {"m": 1_000_000}}, r"m \(--samples\) must be in \[1, 100\]"),
    ({"propose": {"min_score": 2.0}}, r"min_score \(--min-score\) must be in \[0, 1\]")])
def test_thresholds_and_counts_out_of_their_range_are_refused(flags: dict[str, dict[str, float]],
                                                               message: str) -> None:
    """--tau-s 2 and --min-score 2 kept nothing without a word; --samples 1000000 ran for minutes on one text."""
    from toolcall.data_gen.config import STAGES

    ((stage, values),) = flags.items()
    with pytest.raises(ConfigError, match=message):
        STAGES[stage](**values)
