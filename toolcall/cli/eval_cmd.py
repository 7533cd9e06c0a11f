"""`toolcall eval`: accuracy with tools disabled vs enabled on math word problems or date questions."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..bfcl import DEFAULT_MAX_NEW_TOKENS as BFCL_MAX_NEW_TOKENS
from ..bfcl import BfclConfig
from ..errors import ConfigError
from ..evaluation import EVAL_LOOP, EvalConfig, ResultsFile, check_output, software_versions
from ..loop import LoopConfig
from ..options import add_options, flag_of, from_args, given
from ..terminal import stdout_to_stderr
from ..tools._corpus import ENV_VAR as CORPUS_VARIABLE
from .generate_cmd import config_from_args
from .model_options import add_model_options
from .tool_options import add_tool_source_options, toolset_from_args

if TYPE_CHECKING:
    import datetime as dt

    from ..evaluation import EvalItem, EvalReport, ItemResult


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="accuracy with tools disabled vs enabled (Toolformer §4.2)",
        description="Runs the same model on the same prompts twice - the call-open token banned, then tools "
                    "enabled - and reports accuracy (math: first number in the reply; dates: answer within "
                    "the first five words), exact-answer accuracy, how often a tool was called, and time.")
    add_options(p, EvalConfig)
    add_options(p, BfclConfig, group="BFCL (--task bfcl)")
    add_tool_source_options(p)
    add_model_options(p)
    p.add_argument("--dialect", default=None, help="call dialect (default toolformer; hermes for --task bfcl)")
    # Both modes share these; tools_enabled is what the two modes differ in.
    add_options(p, LoopConfig, exclude=("tools_enabled", "json_schema"), base=EVAL_LOOP,
                group="generation (the decoding loop)")
    budget = flag_of(LoopConfig, "max_new_tokens")
    for action in p._actions:  # a BFCL reply writes its calls whole: its own default budget, said where the flag is
        if budget in action.option_strings and action.help:
            action.help = action.help.replace(f"(default: {EVAL_LOOP.max_new_tokens})",
                                              f"(default: {EVAL_LOOP.max_new_tokens}; {BFCL_MAX_NEW_TOKENS} for "
                                              "--task bfcl)")
    p.add_argument("--output", type=Path, default=None, help="write per-item results here (JSONL)")
    p.add_argument("--json", action="store_true", help="end with the summary as one JSON line")
    p.add_argument("--quiet", action="store_true", help="no per-item progress on stderr")
    p.set_defaults(func=run)


def _tool_files(args: argparse.Namespace) -> dict[str, Path | None]:
    """The --tools-from files and the WikiSearch corpus the run reads, each by its flag (a module name is no file):
    --output must not be one (`--tools-from my_tools.py --output my_tools.py` replaced the tools with the results,
    `--wiki-corpus wiki.jsonl --output wiki.jsonl` the passages)."""
    files: dict[str, Path | None] = {f"--tools-from {source}": Path(source)
                                     for source in getattr(args, "tools_from", None) or ()}
    corpus = getattr(args, "wiki_corpus", None)
    if corpus:
        files["--wiki-corpus"] = Path(corpus)
    elif os.environ.get(CORPUS_VARIABLE):   # what WikiSearch and QA search without --wiki-corpus
        files[f"${CORPUS_VARIABLE}"] = Path(os.environ[CORPUS_VARIABLE])
    return files


def run(args: argparse.Namespace) -> int:
    from ..evaluation import format_table, load_items, sample_path

    cfg: EvalConfig = from_args(EvalConfig, args)
    config = config_from_args(args, base=EVAL_LOOP)
    if cfg.task == "bfcl":
        return run_bfcl(args, cfg, config)
    refuse_bfcl_options(args, cfg.task)
    if cfg.tools == () and not (args.tools_from or args.mcp):
        # It offered the task's tool anyway; the no_tools mode already measures the model without one.
        raise ConfigError("--tools '' offers no tool, but the tools mode needs one (the no_tools mode is measured "
                          "beside it anyway): name the tools, or leave --tools out for the task's own")
    args.dialect = args.dialect or "toolformer"
    today = cfg.date()
    path = cfg.input or sample_path(cfg.task)
    if args.output is not None:
        check_output(args.output, {"--input" if cfg.input else "the task's sample": path, "--model": model_path(args),
                                   **_tool_files(args)})
    items = load_items(path, cfg.task, today, cfg.limit)
    # What a tools file prints at import, or a tool while it runs, goes to stderr: stdout is the report.
    with stdout_to_stderr():
        report = _measure(args, cfg, config, items, path, today)
    return _report(args, format_table(report), report.summary())


def _report(args: argparse.Namespace, table: str, summary: dict[str, Any]) -> int:
    """The report on stdout: the table, where the items went, and (--json) the summary as its last line."""
    print(table)
    if args.output is not None:
        print(f"per-item results: {args.output}")
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    return 0


def _measure(args: argparse.Namespace, cfg: EvalConfig, config: LoopConfig, items: "list[EvalItem]", path: Path,
             today: "dt.date | None") -> "EvalReport":
    """The math or dates task's report: both modes run over `items` with the tools the flags name."""
    from ..backends import get_backend
    from ..dialects import get_dialect
    from ..evaluation import check_few_shot, evaluate

    # --tools-from/--mcp tools are added to a typed --tools, and replace the task's default tool.
    registry = toolset_from_args(args, names=cfg.tool_names(), names_given=cfg.tools is not None).build() or None
    tools = tuple(item.name for item in registry) if (args.tools_from or args.mcp) and registry else cfg.tool_names()
    dialect = get_dialect(args.dialect)
    check_few_shot(cfg.few_shot, dialect, args.dialect, registry)
    results = ResultsFile(args.output) if args.output is not None else None  # an unwritable path fails here
    try:
        backend = get_backend(args.backend, args.model)
        settings = {"input": str(path), "backend": args.backend, "model": args.model or "embedded",
                    "dialect": args.dialect, "tools_offered": list(tools), "few_shot": cfg.few_shot,
                    "max_new_tokens": config.max_new_tokens, "max_calls": config.max_calls,
                    "trigger_top_k": config.trigger_top_k, "call_threshold": config.call_threshold,
                    "versions": software_versions()}

        def progress(mode: str, done: int, result: ItemResult) -> None:
            # Each item is written as it is graded, so a long run that is stopped keeps what it measured.
            if results is not None:
                results.write(result.to_json())
            if not args.quiet:
                mark = "ok " if result.correct else "-- "
                print(f"[{mode} {done}/{len(items)}] {mark}{result.prediction[:70]!r}", file=sys.stderr)

        return evaluate(items, cfg.task, backend, dialect, registry, config, few_shot=cfg.few_shot, today=today,
                        settings=settings, progress=progress)
    finally:
        if results is not None:
            results.close()


def refuse_bfcl_options(args: argparse.Namespace, task: str) -> None:
    """The BFCL options mean nothing to math or dates, and were ignored without a word."""
    flags = [flag_of(BfclConfig, name) for name in given(args, BfclConfig)]
    if flags:
        raise ConfigError(f"{', '.join(flags)}: {'options' if len(flags) > 1 else 'an option'} of --task bfcl, "
                          f"which --task {task} does not use; leave {'them' if len(flags) > 1 else 'it'} out")


def model_path(args: argparse.Namespace) -> Path | None:
    """--model as a path, when it names one (a script, a checkpoint directory), for the --output check."""
    return Path(args.model) if args.model else None


def run_bfcl(args: argparse.Namespace, cfg: EvalConfig, config: LoopConfig) -> int:
    """`--task bfcl`: one reply per BFCL item, its calls parsed with --dialect and judged by bfcl-eval's AST checker."""
    from ..backends import get_backend
    from ..bfcl import (
        DEFAULT_MAX_NEW_TOKENS,
        BfclResult,
        data_version,
        evaluate_bfcl,
        format_bfcl_table,
        load_bfcl_items,
    )
    from ..dialects import get_dialect

    bfcl: BfclConfig = from_args(BfclConfig, args)
    # BFCL items are chat requests with function schemas: a chat-model format fits them, Toolformer's does not.
    args.dialect = args.dialect or "hermes"
    if cfg.input is not None or cfg.tools is not None or args.tools_from or args.mcp or args.wiki_corpus:
        raise ConfigError("--task bfcl offers each item's own functions and reads BFCL's data: use --bfcl-data DIR "
                          "instead of --input, and no --tools, --tools-from, --mcp or --wiki-corpus")
    if cfg.few_shot is not None or cfg.today is not None:  # BFCL prompts show no worked examples and no Calendar
        raise ConfigError("--few-shot and --today are options of --task math and dates; --task bfcl does not use them")
    if bfcl.exclude_seed is not None and cfg.limit is None:
        raise ConfigError("--exclude-seed leaves out the sample --limit N draws with that seed; give --limit (without "
                          "it every item is evaluated, the excluded ones too)")
    if args.output is not None:
        check_output(args.output, {"--bfcl-data": bfcl.bfcl_data, "--model": model_path(args)})
    # The math/dates reply budget is too short for parallel calls; a typed --max-new-tokens still wins.
    budget = config.max_new_tokens if "max_new_tokens" in given(args, LoopConfig) else DEFAULT_MAX_NEW_TOKENS
    items = {c: load_bfcl_items(c, cfg.limit, bfcl.seed, bfcl.bfcl_data, bfcl.exclude_seed) for c in bfcl.names()}
    dialect = get_dialect(args.dialect)
    results = ResultsFile(args.output) if args.output is not None else None  # an unwritable path fails here
    try:
        backend = get_backend(args.backend, args.model)
        settings = {"backend": args.backend, "model": args.model or "embedded", "dialect": args.dialect,
                    "limit": cfg.limit, "seed": bfcl.seed, "exclude_seed": bfcl.exclude_seed, "max_new_tokens": budget,
                    "data": data_version(bfcl.bfcl_data), "constrain_calls": config.constrain_calls,
                    "trigger_top_k": config.trigger_top_k, "call_threshold": config.call_threshold,
                    "repeat_calls": config.repeat_calls, "versions": software_versions()}

        def progress(done: int, total: int, result: BfclResult) -> None:
            # Each item is written as it is judged, so a long run that is stopped keeps what it measured.
            if results is not None:
                results.write(result.to_json())
            if not args.quiet:
                mark = "ok " if result.valid else f"-- {result.kind} "
                print(f"[{done}/{total} {result.id}] {mark}{result.reply[:60]!r}", file=sys.stderr)

        report = evaluate_bfcl(items, backend, dialect, max_new_tokens=budget, settings=settings, config=config,
                               progress=progress)
    finally:
        if results is not None:
            results.close()
    return _report(args, format_bfcl_table(report), report.summary())
