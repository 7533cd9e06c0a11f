"""`toolcall eval`: accuracy with tools disabled vs enabled on math word problems or date questions."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from ..errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="accuracy with tools disabled vs enabled (Toolformer §4.2)",
        description="Runs the same model on the same prompts twice - the call-open token banned, then tools "
                    "enabled - and reports accuracy (math: first number in the reply; dates: answer within "
                    "the first five words), exact-answer accuracy, how often a tool was called, and time.")
    p.add_argument("--task", required=True, choices=("math", "dates"))
    p.add_argument("--input", type=Path, default=None,
                   help="JSONL of {\"question\", \"answer\"} (dates may use \"rule\"); default: the shipped sample")
    p.add_argument("--backend", default="transformers", help="transformers (default), vllm or fake")
    p.add_argument("--model", default=None, help="checkpoint dir, .gguf or LoRA adapter dir (default: embedded SmolLM2)")
    p.add_argument("--dialect", default="toolformer", help="call dialect (default toolformer)")
    p.add_argument("--tools", default=None,
                   help="comma-separated tools offered (default: Calculator for math, Calendar for dates)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N items")
    p.add_argument("--few-shot", type=int, default=None, metavar="K",
                   help="few-shot demonstrations in the prompt: 0 for none; default the dialect's own")
    p.add_argument("--max-new-tokens", type=int, default=48, help="tokens per reply (default 48)")
    p.add_argument("--max-calls", type=int, default=1, help="calls per item (default 1, as in the paper)")
    p.add_argument("--trigger-top-k", type=int, default=0,
                   help="open a call when its token is in the top-k (paper: 10); 0 = plain greedy")
    p.add_argument("--today", default=None, metavar="YYYY-MM-DD",
                   help="the date the Calendar tool reports and date answers are computed for (default: today)")
    p.add_argument("--output", type=Path, default=None, help="write per-item results here (JSONL)")
    p.add_argument("--json", action="store_true", help="end with the summary as one JSON line")
    p.add_argument("--quiet", action="store_true", help="no per-item progress on stderr")
    p.set_defaults(func=run)


def _today(text: str | None) -> dt.date:
    from ..evaluation import default_today

    if text is None:
        return default_today()
    try:
        return dt.date.fromisoformat(text)
    except ValueError as err:
        raise ConfigError(f"--today {text!r} is not a date in the form YYYY-MM-DD") from err


def run(args: argparse.Namespace) -> int:
    from ..backends import get_backend
    from ..dialects import get_dialect
    from ..evaluation import TASK_TOOLS, evaluate, format_table, load_items, sample_path, write_items
    from ..loop import LoopConfig
    from ..registry import default_registry

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    if args.few_shot is not None and args.few_shot < 0:
        raise ConfigError(f"--few-shot must be >= 0, got {args.few_shot}")
    today = _today(args.today) if args.task == "dates" or args.today else None
    path = args.input or sample_path(args.task)
    items = load_items(path, args.task, today, args.limit)
    tools = tuple(t.strip() for t in args.tools.split(",") if t.strip()) if args.tools else TASK_TOOLS[args.task]
    registry = default_registry(list(tools))
    dialect = get_dialect(args.dialect)
    backend = get_backend(args.backend, args.model)
    config = LoopConfig(max_calls=args.max_calls, max_new_tokens=args.max_new_tokens, trigger_top_k=args.trigger_top_k)
    settings = {"input": str(path), "backend": args.backend, "model": args.model or "embedded", "dialect": args.dialect,
                "tools_offered": list(tools), "few_shot": args.few_shot, "max_new_tokens": args.max_new_tokens,
                "max_calls": args.max_calls, "trigger_top_k": args.trigger_top_k}

    def progress(mode: str, done: int, result: object) -> None:
        if not args.quiet:
            mark = "ok " if getattr(result, "correct", False) else "-- "
            print(f"[{mode} {done}/{len(items)}] {mark}{getattr(result, 'prediction', '')[:70]!r}", file=sys.stderr)

    report = evaluate(items, args.task, backend, dialect, registry, config, few_shot=args.few_shot, today=today,
                      settings=settings, progress=progress)
    if args.output is not None:
        write_items(report, args.output)
    print(format_table(report))
    if args.output is not None:
        print(f"per-item results: {args.output}")
    if args.json:
        print(json.dumps(report.summary(), sort_keys=True))
    return 0
