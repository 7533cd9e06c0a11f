"""`toolcall data-gen`: build a Toolformer-style augmented corpus from plain texts (the data_gen pipeline)."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from ..backends.base import Backend
from ..backends.hf_loading import DTYPES
from ..data_gen.checkpoint import check_output_dir, model_sha256
from ..data_gen.config import STAGES, DataGenConfig, ToolOverride, mode_overrides, without_overrides
from ..data_gen.inputs import read_run_inputs
from ..errors import ConfigError
from ..models import EMBEDDED, resolve_model
from ..options import add_options, from_args, given
from ..terminal import stdout_to_stderr
from .model_options import add_model_options
from .tool_options import add_tool_source_options, toolset_from_args


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "data-gen", help="annotate texts with tool calls that lower the model's loss (Toolformer data generation)",
        description="Sample calls at likely positions, run them, keep those with L- - L+ >= tau_f, and write "
                    "DIR/corpus.jsonl, DIR/stats.json, DIR/loss_reduction_hist.png, DIR/hf_dataset/, DIR/moss.jsonl. "
                    "Stage flags given here apply to every tool; without them the sampling mode's per-tool values are "
                    "used over the stage values (tau_s 0.05, k 5, m 5, tau_f 1.0, the paper's): with --sampling "
                    "default, Calculator tau_s 0.0, k 5, m 1 greedy, tau_f 0.5, Calendar m 1, MT tau_s 0.0, k 20, m 10, "
                    "tau_f 0.5; with --sampling paper, the paper's, Calculator and MT tau_s 0.0, k 20, m 10, tau_f 0.5.")
    p.add_argument("--input", required=True, type=Path, help="texts: .jsonl (or .json) with a \"text\" field per line, .txt with one text per line (--txt), or .parquet "
                        "with a \"text\" column (--text-field names another); .gz, .bz2 or .xz compressed too")
    p.add_argument("--output", required=True, type=Path, help="output directory (must be new or empty unless --resume)")
    add_options(p, DataGenConfig, only=("tools", "sampling", "max_text_chars", "text_field", "date_field", "id_field",
                                        "txt"))
    add_tool_source_options(p)
    add_model_options(p)
    p.add_argument("--scorer-model", default=None, metavar="MODEL",
                   help="the model whose loss judges the calls in the filter (same forms as --model, which then only "
                        f"finds positions and samples calls; {EMBEDDED}: the embedded base); default: --model itself, "
                        "one model for both as in the paper. It must share --model's tokenizer")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --output")
    p.add_argument("--limit", type=int, default=None, help="process only the first N texts")
    p.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    p.add_argument("--max-batch-tokens", type=int, default=None, metavar="N",
                   help="rows x tokens per batched scoring forward (default: the backend's own)")
    p.add_argument("--dtype", choices=DTYPES, default="auto",
                   help="the type the model computes in (transformers and vLLM backends): auto (default) is bfloat16 "
                        "where the hardware computes it natively (a GPU that supports it, a CPU with AVX512-BF16 or "
                        "AMX) and float32 elsewhere; vLLM's auto is its own default")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: one process, text by text (default); ray: Ray Data actors, one model each, with Ray "
                        "Data's checkpointing for --resume (needs toolcall[ray])")
    p.add_argument("--address", default=None,
                   help="with --engine ray: the Ray cluster to join (\"auto\", \"ray://HOST:10001\"); default: start Ray "
                        "on this machine, listening on 127.0.0.1 only")
    p.add_argument("--actors", type=int, default=None, metavar="N",
                   help="with --engine ray: pipeline actors, each loading the model (default: one per GPU on a GPU "
                        "cluster, else one per CPU slot)")
    for name, cls in STAGES.items():
        # open_texts, stop and prefix_separator are markers and whitespace of the call syntax, not settings to type.
        add_options(p, cls, exclude=("open_texts", "stop", "prefix_separator"), group=f"{name} stage")
    p.set_defaults(func=run)


def engine_name(backend: str) -> str:
    """The backend's own name for a name or alias as typed (an unknown one as it is: get_scorer refuses it)."""
    from ..backends import backends

    return backends.canonical(backend) if backend in backends else backend


def dtype_option(backend: str, dtype: str) -> dict[str, str]:
    """The backend option that loads the model in `dtype`: the transformers backend resolves "auto" for its device;
    vLLM keeps its own default unless a type is named; the fake backend has no weights."""
    name = engine_name(backend)
    if name == "transformers" or (name == "vllm" and dtype != "auto"):
        return {"dtype": dtype}
    return {}


def model_name(model: str | None) -> str | None:
    """A model as named on the command line, with "embedded" as None: the embedded model has one name."""
    return None if model is None or resolve_model(model) is None else model


def scorer_model(model: str | None, scorer: str | None) -> str | None:
    """The model whose loss judges the calls: `scorer` when typed, else `model` itself (the paper's one M). On real
    text a judge that has seen calls (the shipped adapter) parts right loss reductions from wrong far better, but
    at the default thresholds, where the proposer's score does that work, the base kept fewer wrong calls
    (data_gen/README.md, "Real, human-written text")."""
    return model_name(model if scorer is None else scorer)


def build_config(args: argparse.Namespace) -> DataGenConfig:
    """The DataGenConfig of the command line: stage flags given here replace the sampling mode's per-tool values for
    every tool."""
    stages = {name: from_args(cls, args) for name, cls in STAGES.items()}
    typed = set().union(*(given(args, cls) for cls in STAGES.values()))
    sampling = given(args, DataGenConfig).get("sampling", DataGenConfig.sampling)
    # None keeps the sampling mode's per-tool values; a per-tool value typed here clears them for every tool.
    overrides: dict[str, ToolOverride] | None = None
    if typed & {f.name for f in fields(ToolOverride)}:
        overrides = without_overrides(mode_overrides(sampling), typed)
    return from_args(DataGenConfig, args, overrides=overrides, **stages)


def run(args: argparse.Namespace) -> int:
    from ..api import make_registry
    from ..backends import get_scorer
    from ..data_gen.pipeline import Pipeline, run_data_gen

    config = build_config(args)
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {args.limit}")
    # Unknown tool names and broken --tools-from files fail before the model loads; --tools-from/--mcp tools are
    # added to a typed --tools, and replace the default one.
    tool_names, names_given = tuple(config.tools), "tools" in given(args, DataGenConfig)
    toolset = toolset_from_args(args, names=tool_names, names_given=names_given)
    # A Ray run's actors search the --wiki-corpus: the driver reads it through (to fail now) but does not index it.
    registry = toolset.build(read_corpus=args.engine != "ray") or None
    if registry is None:
        raise ConfigError("no tools; give --tools, --tools-from or --mcp")
    if args.engine == "ray":
        toolset.check_corpus(registry)
    if args.tools_from or args.mcp:  # the pipeline samples the tools config.tools names
        config = replace(config, tools=tuple(item.name for item in registry))
    if args.engine != "ray" and (args.address is not None or args.actors is not None):
        raise ConfigError("--address and --actors apply to --engine ray only")
    out = args.output
    check_output_dir(out, args.resume)  # before any model is loaded
    # Read (and checked: a malformed line, a bad date) before any model loads too; a failure took the model's load.
    texts = read_run_inputs(args.input, args.limit, config)
    options = {"max_batch_tokens": args.max_batch_tokens} if args.max_batch_tokens is not None else {}
    options.update(dtype_option(args.backend, args.dtype))
    sampler_model = model_name(args.model)
    judge = scorer_model(args.model, args.scorer_model)
    # Stored in run.json: a --resume with other models, or another engine, is refused (its calls would come from
    # another model: a fake run resumed on the embedded model mixed the toy's texts with SmolLM2's).
    engine = engine_name(args.backend)
    # Each model by its files too: the same folder typed as another path resumes, one trained again does not.
    sampler_sha = model_sha256(resolve_model(sampler_model))
    scorer_sha = sampler_sha if judge == sampler_model else model_sha256(resolve_model(judge))
    models = {"sampler": sampler_model, "scorer": judge, "sampler_sha256": sampler_sha, "scorer_sha256": scorer_sha,
              "dtype": args.dtype, "backend": engine}
    # What tools print (a --tools-from file's debugging) goes to stderr: stdout holds the summary line alone.
    with stdout_to_stderr():
        if args.engine == "ray":
            from ..backends import scoring_backends
            from ..data_gen.ray_engine import PipelineSpec, RayOptions, run_data_gen_ray

            if engine not in scoring_backends():  # refused before Ray starts
                raise ConfigError(f"backend {args.backend!r} cannot score log-probabilities for data generation; "
                                  f"backends that can: {', '.join(scoring_backends())}")
            # Each actor builds its own model and registry from the toolset; files are named absolutely for the workers.
            sources = tuple(str(Path(f).resolve()) if Path(f).exists() else f for f in toolset.tools_from)
            corpus = str(Path(toolset.wiki_corpus).resolve()) if toolset.wiki_corpus else None
            spec = PipelineSpec(config, args.backend, sampler_model, options,
                                replace(toolset, tools_from=sources, wiki_corpus=corpus), scorer_model=judge)
            stats = run_data_gen_ray(args.input, out, spec, config, registry, resume=args.resume, limit=args.limit,
                                     progress=not args.no_progress, options=RayOptions(args.address, args.actors),
                                     models=models, texts=texts)
        else:
            # A backend that cannot score is refused before a model is loaded.
            scorer = get_scorer(args.backend, judge, **options)
            sampler = None if judge == sampler_model else get_scorer(args.backend, sampler_model, **options)
            # Tools that need a model (MT) decode with the sampling model, when it is also a decoding backend.
            decoder = scorer if sampler is None else sampler
            make_registry(registry, backend=decoder if isinstance(decoder, Backend) else None)
            stats = run_data_gen(args.input, out, Pipeline(scorer, registry, config, sampler=sampler), resume=args.resume,
                                 limit=args.limit, progress=not args.no_progress, models=models, texts=texts)
    summary = {k: stats[k] for k in ("texts_in", "texts_after_prefilter", "texts_kept", "calls_kept")}
    summary["kept_per_tool"] = {t: v["kept"] for t, v in stats["per_tool"].items()}
    print(json.dumps(summary), file=sys.stdout)
    print(f"wrote {out}/corpus.jsonl, stats.json, loss_reduction_hist.png, hf_dataset/, moss.jsonl", file=sys.stderr)
    return 0
