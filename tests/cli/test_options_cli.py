"""Every command takes its settings from the config dataclasses: the flags, their defaults and their help."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from toolcall.cli import build_parser, main
from toolcall.loop import LoopConfig


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_option_of_every_command_is_described() -> None:
    commands = subcommands()
    assert {"parse", "tools", "tool", "generate", "chat", "data-gen", "eval", "train", "serve"} <= set(commands)
    for name, parser in commands.items():
        for action in parser._actions:
            assert action.help and action.help != argparse.SUPPRESS, (name, action.option_strings or action.dest)
        parser.format_help()  # a stray % in a help text would fail here


@pytest.mark.parametrize("command", ["generate", "chat", "serve"])
def test_loop_flags_are_the_loopconfig_fields(command: str) -> None:
    from toolcall.cli.generate_cmd import config_from_args

    argv = [command, "--max-calls", "2", "--max-new-tokens", "50", "--trigger-top-k", "10", "--max-triggers", "3",
            "--call-timeout", "1.5", "--no-tools"] + (["q"] if command == "generate" else [])
    config = config_from_args(build_parser().parse_args(argv))
    assert config == LoopConfig(max_calls=2, max_new_tokens=50, trigger_top_k=10, max_triggers=3, call_timeout=1.5,
                                tools_enabled=False)
    base = [command] + (["q"] if command == "generate" else [])
    assert config_from_args(build_parser().parse_args(base)) == LoopConfig()
    assert "how often the top-K trigger may fire" in subcommands()[command].format_help()


def test_max_triggers_reaches_the_loop(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    import toolcall.cli.generate_cmd as generate_cmd

    seen: list[LoopConfig] = []
    original = generate_cmd.run_loop

    def spy(backend, prompt, dialect, registry, config):  # type: ignore[no-untyped-def]
        seen.append(config)
        return original(backend, prompt, dialect, registry, config)

    monkeypatch.setattr(generate_cmd, "run_loop", spy)
    script = tmp_path / "s.json"
    script.write_text(json.dumps(["Fine."]))
    assert main(["generate", "--backend", "fake", "--model", str(script), "--trigger-top-k", "5", "--max-triggers", "4",
                 "q"]) == 0
    assert capsys.readouterr().out == "Fine.\n"
    assert seen[0].max_triggers == 4 and seen[0].trigger_top_k == 5


def test_bad_loop_value_is_a_runtime_error_before_any_model(capsys: pytest.CaptureFixture[str]) -> None:
    # --backend transformers would load the model; the config check comes first.
    assert main(["generate", "--max-triggers", "-1", "q"]) == 1
    assert "max_triggers (--max-triggers) must be >= 0, got -1" in capsys.readouterr().err


def test_train_flags_build_the_trainconfig() -> None:
    from toolcall.options import from_args
    from toolcall.training import TrainConfig

    args = build_parser().parse_args(["train", "--corpus", "c", "--output", "o"])
    assert from_args(TrainConfig, args) == TrainConfig(Path("c"), Path("o"))
    argv = ["train", "--corpus", "c", "--output", "o", "--model", "m", "--epochs", "2", "--max-steps", "5", "--lr", "1e-3",
            "--batch-size", "2", "--grad-accum", "4", "--max-length", "64", "--warmup", "0", "--no-mask-results", "--lora",
            "--lora-r", "4", "--lora-alpha", "8", "--lora-dropout", "0.1", "--lora-targets", "q_proj, k_proj", "--bf16",
            "--seed", "7", "--no-verify", "--logging-steps", "3", "--dialect", "hermes", "--no-mask-prompt"]
    got = from_args(TrainConfig, build_parser().parse_args(argv))
    assert got == TrainConfig(Path("c"), Path("o"), "m", 2.0, 5, 1e-3, 2, 4, 64, 0.0, False, "hermes", False, True, 4, 8,
                              0.1, ("q_proj", "k_proj"), True, 7, False, 3)
    argv = ["train", "--corpus", "c", "--output", "o", "--from-adapter", "schema-tools-smollm2"]
    assert from_args(TrainConfig, build_parser().parse_args(argv)).from_adapter == "schema-tools-smollm2"


def test_eval_starts_from_its_own_loop_defaults() -> None:
    from toolcall.evaluation import EVAL_LOOP, EvalConfig
    from toolcall.options import from_args

    args = build_parser().parse_args(["eval", "--task", "dates", "--tools", "Calendar,Calculator", "--max-calls", "2"])
    assert from_args(LoopConfig, args, base=EVAL_LOOP) == LoopConfig(max_calls=2, max_new_tokens=48)
    cfg = from_args(EvalConfig, args)
    assert cfg.tool_names() == ("Calendar", "Calculator") and cfg.few_shot is None
    assert from_args(EvalConfig, build_parser().parse_args(["eval", "--task", "math"])).tool_names() == ("Calculator",)
    text = subcommands()["eval"].format_help()
    assert "(default: 48; 192 for --task bfcl)" in text and "--no-tools" not in text  # the two modes: tools off, then on


def test_serve_help_documents_the_endpoint() -> None:
    text = subcommands()["serve"].format_help()
    for part in ("POST /v1/chat/completions", "GET  /v1/models", "tool_runs", '"toolcall"', "127.0.0.1", "--port",
                 "--api-key", "TOOLCALL_API_KEY", "--host"):
        assert part in text, part
