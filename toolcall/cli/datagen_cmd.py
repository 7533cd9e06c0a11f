"""`toolcall data-gen`: build a Toolformer-style augmented corpus from plain texts (the data_gen pipeline)."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "data-gen", help="annotate texts with tool calls that lower the model's loss (Toolformer data generation)",
        description="Sample calls at likely positions, run them, keep those with L- - L+ >= tau_f, and write "
                    "DIR/corpus.jsonl, DIR/stats.json, DIR/loss_reduction_hist.png, DIR/hf_dataset/, DIR/moss.jsonl. "
                    "Stage flags given here apply to every tool; without them the paper's per-tool values are used "
                    "(tau_s 0.05, k 5, m 5, tau_f 1.0; Calculator and MT: tau_s 0.0, k 20, m 10, tau_f 0.5).")
    p.add_argument("--input", required=True, type=Path, help="texts: .jsonl with a \"text\" field per line, or .txt with one text per line")
    p.add_argument("--output", required=True, type=Path, help="output directory (must be new or empty unless --resume)")
    p.add_argument("--tools", default="calculator,calendar", help="comma-separated tool names (default: calculator,calendar)")
    p.add_argument("--backend", default="transformers", help="model backend with scoring support (default: transformers)")
    p.add_argument("--model", default=None, help="model path (.gguf file or checkpoint dir); default: the embedded SmolLM2")
    p.add_argument("--placement", choices=("prefix", "inline"), default="prefix",
                   help="where the call sits when scoring: before the whole text (paper) or at its position")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --output")
    p.add_argument("--limit", type=int, default=None, help="process only the first N texts")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    stage = p.add_argument_group("stage settings (override the per-tool defaults for every tool)")
    stage.add_argument("--tau-s", type=float, default=None, help="position threshold on p(call-open)")
    stage.add_argument("--top-k", type=int, default=None, help="positions kept per text and tool (k)")
    stage.add_argument("--samples", type=int, default=None, help="calls sampled per position (m)")
    stage.add_argument("--tau-f", type=float, default=None, help="filter threshold on L- - L+")
    stage.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (0 = greedy)")
    stage.add_argument("--max-new-tokens", type=int, default=32, help="longest sampled call")
    stage.add_argument("--seed", type=int, default=0, help="sampling seed")
    stage.add_argument("--workers", type=int, default=4, help="threads running tool calls")
    stage.add_argument("--call-timeout", type=float, default=None, help="seconds per tool call (default: the tool's own)")
    stage.add_argument("--no-prefilter", action="store_true", help="let every tool see every text")
    stage.add_argument("--max-batch-tokens", type=int, default=8192, help="rows x tokens per batched forward")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> Any:
    from toolcall.data_gen.config import (PAPER_OVERRIDES, DataGenConfig, ExecuteConfig, FilterConfig, PositionConfig,
                                 PrefilterConfig, SampleConfig)

    tools = tuple(t.strip() for t in args.tools.split(",") if t.strip())
    if not tools:
        raise ConfigError("--tools is empty; give at least one tool name, e.g. --tools calculator")
    for name, value in (("--top-k", args.top_k), ("--samples", args.samples), ("--limit", args.limit)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    given = {"tau_s": args.tau_s, "k": args.top_k, "m": args.samples, "tau_f": args.tau_f}
    # A flag given on the command line wins over the paper's per-tool value for every tool.
    overrides = {tool: replace(o, **{k: None for k, v in given.items() if v is not None}) for tool, o in PAPER_OVERRIDES.items()}
    pos = PositionConfig(**{k: v for k, v in (("tau_s", args.tau_s), ("k", args.top_k)) if v is not None})
    sam = SampleConfig(temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=args.seed,
                       **({"m": args.samples} if args.samples is not None else {}))
    fil = FilterConfig(placement=args.placement, **({"tau_f": args.tau_f} if args.tau_f is not None else {}))
    return DataGenConfig(tools=tools, prefilter=PrefilterConfig(enabled=not args.no_prefilter), positions=pos,
                         sample=sam, execute=ExecuteConfig(workers=args.workers, timeout=args.call_timeout),
                         filter=fil, overrides=overrides)


def run(args: argparse.Namespace) -> int:
    from toolcall.data_gen.pipeline import Pipeline, run_data_gen

    from ..backends import get_backend
    from ..registry import default_registry

    config = build_config(args)
    registry = default_registry(list(config.tools))
    if not args.input.is_file():
        raise ConfigError(f"--input {args.input} does not exist")
    out = args.output
    if out.exists() and any(out.iterdir()) and not args.resume:
        raise ConfigError(f"output directory {out} exists and is not empty; pass --resume to continue that run, or choose another directory")
    backend = get_backend(args.backend, args.model)
    if not callable(getattr(backend, "prefix_state", None)):
        raise ConfigError(f"backend {args.backend!r} cannot score with a reusable KV cache; data-gen needs --backend transformers")
    backend.max_batch_tokens = args.max_batch_tokens
    stats = run_data_gen(args.input, out, Pipeline(backend, registry, config), resume=args.resume, limit=args.limit,
                         progress=not args.no_progress)
    summary = {k: stats[k] for k in ("texts_in", "texts_after_prefilter", "texts_kept", "calls_kept")}
    summary["kept_per_tool"] = {t: v["kept"] for t, v in stats["per_tool"].items()}
    print(json.dumps(summary), file=sys.stdout)
    print(f"wrote {out}/corpus.jsonl, stats.json, loss_reduction_hist.png, hf_dataset/, moss.jsonl", file=sys.stderr)
    return 0
