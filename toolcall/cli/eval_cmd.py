"""`toolcall eval`: accuracy with tools disabled vs enabled on math word problems or date questions."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..evaluation import EVAL_LOOP, EvalConfig
from ..loop import LoopConfig
from ..options import add_options, from_args
from .tool_options import add_tool_source_options, build_registry


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="accuracy with tools disabled vs enabled (Toolformer §4.2)",
        description="Runs the same model on the same prompts twice - the call-open token banned, then tools "
                    "enabled - and reports accuracy (math: first number in the reply; dates: answer within "
                    "the first five words), exact-answer accuracy, how often a tool was called, and time.")
    add_options(p, EvalConfig)
    add_tool_source_options(p)
    p.add_argument("--backend", default="transformers", help="transformers (default), vllm or fake")
    p.add_argument("--model", default=None, help="checkpoint dir, .gguf, LoRA adapter dir or a shipped model "
                                                         "(toolformer-smollm2) (default: embedded SmolLM2)")
    p.add_argument("--dialect", default="toolformer", help="call dialect (default toolformer)")
    # Both modes share these; tools_enabled is what the two modes differ in.
    add_options(p, LoopConfig, exclude=("tools_enabled",), base=EVAL_LOOP, group="generation (the decoding loop)")
    p.add_argument("--output", type=Path, default=None, help="write per-item results here (JSONL)")
    p.add_argument("--json", action="store_true", help="end with the summary as one JSON line")
    p.add_argument("--quiet", action="store_true", help="no per-item progress on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..backends import get_backend
    from ..dialects import get_dialect
    from ..evaluation import evaluate, format_table, load_items, sample_path, write_items

    cfg: EvalConfig = from_args(EvalConfig, args)
    config: LoopConfig = from_args(LoopConfig, args, base=EVAL_LOOP)
    today = cfg.date()
    path = cfg.input or sample_path(cfg.task)
    items = load_items(path, cfg.task, today, cfg.limit)
    # --tools-from/--mcp tools are added to a typed --tools, and replace the task's default tool.
    registry = build_registry(list(cfg.tool_names()), tools_from=args.tools_from, mcp=args.mcp,
                              names_given=cfg.tools is not None)
    tools = tuple(item.name for item in registry) if (args.tools_from or args.mcp) and registry else cfg.tool_names()
    dialect = get_dialect(args.dialect)
    backend = get_backend(args.backend, args.model)
    settings = {"input": str(path), "backend": args.backend, "model": args.model or "embedded", "dialect": args.dialect,
                "tools_offered": list(tools), "few_shot": cfg.few_shot, "max_new_tokens": config.max_new_tokens,
                "max_calls": config.max_calls, "trigger_top_k": config.trigger_top_k}

    def progress(mode: str, done: int, result: object) -> None:
        if not args.quiet:
            mark = "ok " if getattr(result, "correct", False) else "-- "
            print(f"[{mode} {done}/{len(items)}] {mark}{getattr(result, 'prediction', '')[:70]!r}", file=sys.stderr)

    report = evaluate(items, cfg.task, backend, dialect, registry, config, few_shot=cfg.few_shot, today=today,
                      settings=settings, progress=progress)
    if args.output is not None:
        write_items(report, args.output)
    print(format_table(report))
    if args.output is not None:
        print(f"per-item results: {args.output}")
    if args.json:
        print(json.dumps(report.summary(), sort_keys=True))
    return 0
