"""data_gen on real, human-written dev sets: precision/recall per tool, who wrote the kept calls, and how the loss
reduction of right and wrong candidates is distributed, per sampling model and scoring model.

For each --samplers model the pipeline runs on every text (tools from --tools, the default config unless --tau-f /
--tau-p); every scored candidate is kept with its loss reduction and labelled right or wrong by the matching rule
of benchmarks/datagen_quality.py (at a gold spot of its tool, with the gold value). Each --scorers model then scores
those same candidates again. For each (sampler, scorer) pair the line reports, all measured in this run:
- `at_defaults`: precision/recall of what the merge keeps at the configured thresholds, kept calls by source;
- `loss_reduction`: quantiles of right and wrong candidates' loss reduction, per source;
- `sweep`: precision/recall for each (tau_f, tau_p) of a grid, merged as the pipeline merges, and the `best` pair
  (the largest recall with precision >= 0.9, else the largest F1) - choose thresholds on a tuning set only;
- `min_score_sweep`: the same at the configured thresholds for each proposal min_score (with --no-at-proposals: the
  runs then propose down to 0.4 and the figures above drop what the configured min_score would not propose; with
  the model sampling at the proposals' tokens, as by default, a lower proposal would add places to sample, so the
  runs propose at the configured min_score and there is no sweep).
`sampling` records m and temperature per tool and whether the model samples at the proposals' tokens (--samples,
--temperature and --at-proposals change them as data-gen's flags do).
One JSON line; --candidates writes every labelled candidate, --plot a histogram per pair.

    python benchmarks/datagen_real.py --data benchmarks/data/real/gsm8k_train_tune.jsonl --limit 20 \
        --tools calculator --samplers embedded,toolformer-smollm2 --scorers embedded,toolformer-smollm2
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from datagen_quality import hardware, right, score, spot_of, today_of
from toolcall.data_gen.config import DataGenConfig, FilterConfig, mode_overrides, without_overrides
from toolcall.data_gen.filter import score_candidates
from toolcall.data_gen.merge import merge_record
from toolcall.data_gen.pipeline import Pipeline
from toolcall.data_gen.records import Candidate, TextRecord
from toolcall.tools import calendar

EMBEDDED = "embedded"
TAU_F = (-0.5, -0.2, -0.1, 0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
TAU_P = (-0.5, -0.2, -0.1, -0.05, 0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
TARGET_PRECISION = 0.9
MIN_SCORES = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def model_arg(name: str) -> str | None:
    return None if name == EMBEDDED else name


def label(rec: dict[str, Any], cand: Candidate) -> bool:
    call = {"tool": cand.tool, "position": cand.position, "result": cand.result}
    calendar.set_today(today_of(rec))
    try:
        spot = spot_of(rec["text"], call, rec["gold"])
        return spot is not None and right(call, spot)
    finally:
        calendar.set_today(None)


def merged_at(records: list[dict[str, Any]], scored: list[tuple[Candidate, ...]], tau_f: float,
              tau_p: float) -> list[dict[str, Any] | None]:
    """What the merge writes for each text when the filter keeps loss reduction >= tau_f (sampled) / tau_p (proposed)."""
    config = FilterConfig(tau_f=tau_f, tau_p=tau_p)
    return merged_by(records, scored, lambda tool: config)


def merged_by(records: list[dict[str, Any]], scored: list[tuple[Candidate, ...]],
              filter_for: Callable[[str], FilterConfig]) -> list[dict[str, Any] | None]:
    """What the merge writes for each text under the thresholds `filter_for(tool name)` gives: the figures of a
    --from-candidates file follow today's thresholds, not those of the run that wrote it."""
    outputs = []
    for rec, cands in zip(records, scored):
        kept = tuple(replace(c, kept=c.loss_reduction is not None
                             and c.loss_reduction >= filter_for(c.tool).threshold(c.source)) for c in cands)
        outputs.append(merge_record(TextRecord(rec["text"], candidates=kept)))
    return outputs


def above(scored: list[tuple[Candidate, ...]], min_score: float) -> list[tuple[Candidate, ...]]:
    """The candidates as a run with ProposeConfig.min_score = `min_score` has them: proposals scoring less are gone
    (a call the model sampled too stays, as the model's)."""
    out = []
    for cands in scored:
        kept = []
        for c in cands:
            if c.source in ("proposer", "both") and c.score is not None and c.score < min_score:
                if c.source == "proposer":
                    continue
                c = replace(c, source="model", score=None)
            kept.append(c)
        out.append(tuple(kept))
    return out


def min_score_sweep(records: list[dict[str, Any]], scored: list[tuple[Candidate, ...]],
                    filters: dict[str, FilterConfig]) -> list[dict[str, Any]]:
    """Precision/recall at the configured per-tool thresholds (`filters`, by lower-case tool name) for each proposal
    min_score of MIN_SCORES."""
    grid = []
    for min_score in MIN_SCORES:
        result = score(records, merged_by(records, above(scored, min_score), lambda tool: filters[tool.lower()]))
        grid.append({"min_score": min_score, **{k: v for k, v in brief(result).items()
                                                if k in ("precision", "recall", "kept", "share_model_written")}})
    return grid


def quantiles(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    qs = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {"n": len(values), "q25": round(qs[0], 3), "median": round(qs[1], 3), "q75": round(qs[2], 3),
            "min": round(min(values), 3), "max": round(max(values), 3)}


def distributions(records: list[dict[str, Any]], scored: list[tuple[Candidate, ...]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for source in ("all", "model", "proposer", "both"):
        for ok in (True, False):
            values = [c.loss_reduction for rec, cands in zip(records, scored) for c in cands
                      if c.loss_reduction is not None and (source == "all" or c.source == source)
                      and label(rec, c) is ok]
            if values or source == "all":
                out[f"{source}_{'right' if ok else 'wrong'}"] = quantiles(values)
    return out


def brief(result: dict[str, Any]) -> dict[str, Any]:
    kept = result["kept_by_source"]
    model_written = sum(v["kept"] for s, v in kept.items() if s in ("model", "both"))
    return {"precision": result["precision"], "recall": result["recall"], "kept": result["kept"],
            "kept_right": result["kept_right"], "gold": result["gold"],
            "per_tool": {t: v for t, v in result["per_tool"].items() if v["gold"] or v["kept"]},
            "kept_by_source": kept,
            "share_model_written": round(model_written / result["kept"], 3) if result["kept"] else None}


def sweep(records: list[dict[str, Any]], scored: list[tuple[Candidate, ...]]) -> dict[str, Any]:
    grid = []
    for tau_f, tau_p in itertools.product(TAU_F, TAU_P):
        result = score(records, merged_at(records, scored, tau_f, tau_p))
        grid.append({"tau_f": tau_f, "tau_p": tau_p, **brief(result)})
    good = [g for g in grid if g["precision"] is not None and g["precision"] >= TARGET_PRECISION]

    def f1(g: dict[str, Any]) -> float:
        p, r = g["precision"] or 0.0, g["recall"] or 0.0
        return 2 * p * r / (p + r) if p + r else 0.0

    best = max(good, key=lambda g: (g["recall"] or 0.0, g["precision"], -g["tau_f"], -g["tau_p"])) if good \
        else max(grid, key=f1)
    return {"best": best, "rule": f"largest recall with precision >= {TARGET_PRECISION}" if good else "largest F1",
            "grid": [{k: g[k] for k in ("tau_f", "tau_p", "precision", "recall", "kept", "share_model_written")}
                     for g in grid]}


def plot(path: Path, records: list[dict[str, Any]], pairs: dict[str, list[tuple[Candidate, ...]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 3.5), squeeze=False)
    for ax, (name, scored) in zip(axes[0], pairs.items()):
        for ok, colour in ((True, "tab:green"), (False, "tab:red")):
            values = [c.loss_reduction for rec, cands in zip(records, scored) for c in cands
                      if c.loss_reduction is not None and label(rec, c) is ok]
            ax.hist(values, bins=30, range=(-1.5, 2.5), alpha=0.6, color=colour,
                    label=f"{'right' if ok else 'wrong'} ({len(values)})")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("loss reduction L- - L+")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def as_row(pair: str, rec: dict[str, Any], cand: Candidate) -> dict[str, Any]:
    return {"pair": pair, "id": rec.get("id"), "tool": cand.tool, "args": list(cand.args), "call": cand.call,
            "token": cand.token, "position": cand.position, "source": cand.source, "score": cand.score,
            "result": cand.result, "text_call": cand.text_call, "placement": cand.placement,
            "loss_minus": cand.loss_minus, "loss_plus": cand.loss_plus, "loss_reduction": cand.loss_reduction,
            "kept": cand.kept, "right": label(rec, cand)}


def from_rows(path: Path, records: list[dict[str, Any]]) -> dict[str, list[tuple[Candidate, ...]]]:
    """The scored candidates of a --candidates file, per pair, for the texts every pair finished."""
    by_pair: dict[str, dict[str, list[Candidate]]] = {}
    done: dict[str, set[str]] = {}
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            continue
        row = json.loads(line)
        if "done" in row:
            done.setdefault(row["pair"], set()).add(row["done"])
            continue
        by_pair.setdefault(row["pair"], {}).setdefault(row["id"], []).append(Candidate(
            row["tool"], tuple(row["args"]), row["call"], row["token"], row["position"], source=row["source"],
            score=row["score"], result=row["result"], text_call=row["text_call"], placement=row["placement"],
            loss_minus=row["loss_minus"], loss_plus=row["loss_plus"], loss_reduction=row["loss_reduction"],
            kept=row["kept"]))
    finished = set.intersection(*done.values()) if done else set()
    records[:] = [r for r in records if r["id"] in finished]
    return {pair: [tuple(per.get(r["id"], ())) for r in records] for pair in done for per in [by_pair.get(pair, {})]}


def measure(records: list[dict[str, Any]], registry: Any, config: DataGenConfig, models: dict[str, Any],
            samplers: list[str], scorer_names: list[str] | None,
            out: Path | None) -> tuple[dict[str, list[tuple[Candidate, ...]]], dict[str, float]]:
    """Text by text, each sampler's candidates scored by its first scorer in the pipeline, then re-scored by the
    others; every labelled candidate is appended to `out` as it is scored, so a cut-short run still leaves data."""
    pairs: dict[str, list[tuple[Candidate, ...]]] = {}
    seconds: dict[str, float] = {}
    filters = {t.lower(): config.for_tool(t)[2] for t in config.tools}
    pipelines = {s: Pipeline(models[scorer_names[0] if scorer_names else s], registry, config, sampler=models[s])
                 for s in samplers}
    fh = out.open("w", encoding="utf-8") if out is not None else None
    try:
        for n, rec in enumerate(records, 1):
            calendar.set_today(today_of(rec))
            try:
                for sampler, pipeline in pipelines.items():
                    names = scorer_names or [sampler]
                    began = time.perf_counter()
                    pipeline.process(rec["text"])
                    found = {f"{sampler}/{names[0]}": pipeline.last_scored}
                    seconds[f"{sampler}/{names[0]}"] = seconds.get(f"{sampler}/{names[0]}", 0.0) + time.perf_counter() - began
                    for other in names[1:]:
                        began = time.perf_counter()
                        bare = tuple(replace(c, kept=False, loss_reduction=None) for c in pipeline.last_scored)
                        found[f"{sampler}/{other}"] = score_candidates(
                            TextRecord(rec["text"], candidates=bare), models[other], filters).candidates
                        seconds[f"{sampler}/{other}"] = seconds.get(f"{sampler}/{other}", 0.0) + time.perf_counter() - began
                    for pair, cands in found.items():
                        pairs.setdefault(pair, []).append(cands)
                        if fh is not None:
                            fh.write("".join(json.dumps(as_row(pair, rec, c)) + "\n" for c in cands))
                            fh.write(json.dumps({"pair": pair, "done": rec.get("id")}) + "\n")
                            fh.flush()
            finally:
                calendar.set_today(None)
            print(f"{n}/{len(records)} texts, {json.dumps({k: round(v) for k, v in seconds.items()})} s", file=sys.stderr)
    finally:
        if fh is not None:
            fh.close()
    return pairs, {k: round(v, 1) for k, v in seconds.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--data", type=Path, required=True, help="gold texts (jsonl: text, gold spots)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N texts")
    parser.add_argument("--skip", type=int, default=0, help="leave out the first N texts (before --limit)")
    parser.add_argument("--tools", default="calculator", help="tools to annotate with, comma-separated")
    parser.add_argument("--samplers", default=EMBEDDED, help=f"sampling models, comma-separated ({EMBEDDED}: SmolLM2)")
    parser.add_argument("--scorers", default=None,
                        help="scoring models, comma-separated (default: each sampler, as `toolcall data-gen` does)")
    parser.add_argument("--tau-f", type=float, default=None, help="tau_f for every tool (default: the config's)")
    parser.add_argument("--tau-p", type=float, default=None, help="tau_p for every tool (default: the config's)")
    parser.add_argument("--backend", default="transformers", help="model backend (fake: the toy LM, for tests)")
    parser.add_argument("--no-sweep", action="store_true", help="report the configured thresholds only")
    parser.add_argument("--corpus", type=Path, default=None, help="passages for WikiSearch/QA (jsonl title/text)")
    parser.add_argument("--qa-answer", choices=("sentence", "short"), default="sentence",
                        help="what QA returns: the best-matching sentence (the tool's default) or its answer span")
    parser.add_argument("--candidates", type=Path, default=None, help="write every labelled candidate here (jsonl)")
    parser.add_argument("--from-candidates", type=Path, default=None,
                        help="analyse a --candidates file of an earlier run (its finished texts) instead of running")
    parser.add_argument("--plot", type=Path, default=None, help="histograms of right/wrong loss reduction (png)")
    parser.add_argument("--min-score", type=float, default=None,
                        help="proposals' min_score for the figures (default: the config's); every run proposes down "
                             f"to {MIN_SCORES[0]} so that `min_score_sweep` can read the lower ones")
    parser.add_argument("--samples", type=int, default=None, help="m for every tool (default: the config's)")
    parser.add_argument("--temperature", type=float, default=None, help="sampling temperature (default: the config's)")
    parser.add_argument("--at-proposals", action=argparse.BooleanOptionalAction, default=None,
                        help="the model samples at the proposals' tokens too (default: the config's)")
    args = parser.parse_args(argv)
    records = [json.loads(line) for line in args.data.read_text(encoding="utf-8").split("\n") if line.strip()]
    records = records[args.skip:]
    records = records[:args.limit] if args.limit else records
    if args.corpus is not None:
        from toolcall.tools import _corpus

        _corpus.configure(args.corpus)
    if args.qa_answer == "short":
        from toolcall.tools import qa

        qa.set_answerer(qa.short_answer)

    from toolcall.backends import get_scorer
    from toolcall.registry import default_registry

    tools = tuple(t.strip() for t in args.tools.split(",") if t.strip())
    registry = default_registry(list(tools), entry_points=False)
    # Exact losses for every candidate: the distributions and the threshold sweep read each one's L- - L+.
    config = DataGenConfig(tools=tools)
    min_score = config.propose.min_score if args.min_score is None else args.min_score
    if args.at_proposals is not None:
        config = replace(config, positions=replace(config.positions, at_proposals=args.at_proposals))
    # Proposing lower than min_score lets `min_score_sweep` read lower thresholds; not when the model samples at the
    # proposals' tokens, since it would then sample where a run at min_score does not.
    sweep_min_score = not config.positions.at_proposals
    config = replace(config, filter=replace(config.filter, exact_losses=True),
                     propose=replace(config.propose, min_score=min(MIN_SCORES[0], min_score) if sweep_min_score
                                     else min_score))
    taus = {k: v for k, v in (("tau_f", args.tau_f), ("tau_p", args.tau_p)) if v is not None}
    sampling = {k: v for k, v in (("m", args.samples), ("temperature", args.temperature)) if v is not None}
    if taus or sampling:
        # A value typed here replaces the mode's per-tool value too (a tau_f, m or temperature), as the CLI's stage
        # flags do.
        config = replace(config, filter=replace(config.filter, **taus), sample=replace(config.sample, **sampling),
                         overrides=without_overrides(mode_overrides(config.sampling), set(taus) | set(sampling)))
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    scorer_names = [s.strip() for s in args.scorers.split(",")] if args.scorers else None
    load_seconds: dict[str, float] = {}
    filters = {t.lower(): config.for_tool(t)[2] for t in tools}
    if args.from_candidates is not None:
        pairs, seconds = from_rows(args.from_candidates, records), {}
    else:
        models: dict[str, Any] = {}
        for name in dict.fromkeys(samplers + (scorer_names or [])):
            began = time.perf_counter()
            models[name] = get_scorer(args.backend, model_arg(name))
            load_seconds[name] = round(time.perf_counter() - began, 1)
        pairs, seconds = measure(records, registry, config, models, samplers, scorer_names, args.candidates)
    report: dict[str, Any] = {}
    for name, every in pairs.items():
        scored = above(every, min_score)
        at_defaults = score(records, merged_by(records, scored, lambda tool: filters[tool.lower()]))
        entry: dict[str, Any] = {"at_defaults": brief(at_defaults), "loss_reduction": distributions(records, scored),
                 "seconds": seconds.get(name)}
        if not args.no_sweep:
            entry["sweep"] = sweep(records, scored)
            entry["min_score_sweep"] = min_score_sweep(records, every, filters) if sweep_min_score else \
                "not with --at-proposals: the model samples at the tokens of the proposals it is given"
        report[name] = entry
    if args.plot is not None:
        plot(args.plot, records, {name: above(every, min_score) for name, every in pairs.items()})
    print(json.dumps({"benchmark": "datagen_real", "data": args.data.name, "skip": args.skip, "texts": len(records),
                      **({"qa_answer": args.qa_answer} if "qa" in (t.lower() for t in tools) else {}),
                      "tools": list(tools),
                      "thresholds": {t: {"tau_f": f.tau_f, "tau_p": f.tau_p} for t, f in filters.items()},
                      "min_score": min_score,
                      "sampling": {"m": {t: config.for_tool(t)[1].m for t in tools},
                                   "temperature": {t: config.for_tool(t)[1].temperature for t in tools},
                                   "at_proposals": config.positions.at_proposals},
                      "pairs": report, "model_load_seconds": load_seconds, "hardware": hardware()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
