"""Run statistics from the per-text progress log: counts per stage and tool, loss-reduction distribution, histogram."""
from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def _quantiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    import numpy as np

    return {f"q{int(q * 100)}": float(np.quantile(values, q)) for q in QUANTILES}


def _histogram(values: Sequence[float], bins: int = 20) -> dict[str, list[float]]:
    if not values:
        return {"edges": [], "counts": []}
    import numpy as np

    counts, edges = np.histogram(values, bins=bins)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def aggregate(summaries: Iterable[dict[str, Any]], texts_in: int, tools: list[str]) -> dict[str, Any]:
    """The run's statistics from its texts' progress entries, read once (a run's whole log is not held); `texts_in`
    is raised to the texts done where a --resume with a smaller --limit read fewer inputs than were done."""
    per_tool: dict[str, dict[str, Any]] = {t: {"texts_after_prefilter": 0, "positions": 0, "samples": 0, "unclosed": 0,
                                               "unparsed": 0, "inadmissible": 0, "duplicates": 0, "executed": 0, "errors": 0,
                                               "candidates_scored": 0, "kept": 0} for t in tools}
    reductions = array("d")
    kept_reductions = array("d")
    # Who wrote the calls that were kept: the model ("model"), a tool's proposer ("proposer"), or both alike ("both").
    kept_by_source: dict[str, int] = {}
    done = after_prefilter = texts_kept = calls_kept = 0
    seconds: float = 0   # an empty run says 0, as before
    for s in summaries:
        done += 1
        after_prefilter += bool(s.get("tools"))
        texts_kept += bool(s.get("kept"))
        calls_kept += s.get("kept", 0)
        seconds += s.get("seconds", 0.0)
        for tool in s.get("tools", []):
            per_tool.setdefault(tool, {}).setdefault("texts_after_prefilter", 0)
            per_tool[tool]["texts_after_prefilter"] += 1
        for tool, n in s.get("positions", {}).items():
            per_tool[tool]["positions"] = per_tool[tool].get("positions", 0) + n
        for tool, counts in s.get("counts", {}).items():
            for key, n in counts.items():
                per_tool[tool][key] = per_tool[tool].get(key, 0) + n
        for tool, red, _kept, merged, *source in s.get("scored", []):  # runs before the source was logged have none
            per_tool[tool]["candidates_scored"] += 1
            reductions.append(red)
            if merged:
                per_tool[tool]["kept"] += 1
                kept_reductions.append(red)
                who = source[0] if source else "unknown"
                kept_by_source[who] = kept_by_source.get(who, 0) + 1
    return {
        "texts_in": max(texts_in, done),
        "texts_done": done,
        "texts_after_prefilter": after_prefilter,
        "texts_kept": texts_kept,
        "calls_kept": calls_kept,
        "calls_kept_by_source": kept_by_source,
        "per_tool": per_tool,
        "loss_reduction_all": {"n": len(reductions), **_quantiles(reductions), "histogram": _histogram(reductions)},
        "loss_reduction_kept": {"n": len(kept_reductions), **_quantiles(kept_reductions)},
        "seconds": seconds,
    }


def write_stats(stats: dict[str, Any], out_dir: Path, taus: dict[str, float]) -> None:
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    plot_histogram(stats, out_dir / "loss_reduction_hist.png", taus)


def plot_histogram(stats: dict[str, Any], path: Path, taus: dict[str, float]) -> None:
    try:
        import matplotlib
    except ImportError:
        return  # the png is optional; stats.json carries the same bins
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = stats["loss_reduction_all"]["histogram"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if hist["counts"]:
        edges = hist["edges"]
        ax.stairs(hist["counts"], edges, fill=True, alpha=0.6)
    for tool, tau in sorted(taus.items()):
        ax.axvline(tau, linestyle="--", linewidth=1, label=f"tau_f {tool} = {tau}")
    ax.set_xlabel("loss reduction L- - L+ (nats, weighted)")
    ax.set_ylabel("candidate calls")
    ax.set_title(f"{stats['loss_reduction_all']['n']} candidates, {stats['calls_kept']} calls kept")
    if taus:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
