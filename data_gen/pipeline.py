"""The Toolformer corpus pipeline: prefilter -> positions -> sample (+ proposals) -> execute -> filter -> merge, per text,
resumable."""
from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolcall.backends import as_scorer
from toolcall.backends.base import Scorer
from toolcall.errors import ConfigError
from toolcall.tool_files import is_toolcall_source, tool_source
from toolcall.tool_type import about_text

from .author_text import safe_text
from .checkpoint import CORPUS, RunDir, file_sha256
from .config import DataGenConfig
from .execute import CallRunner, execute_calls
from .export import read_records, write_hf_dataset, write_moss
from .filter import score_candidates
from .inputs import RunInputs, read_run_inputs
from .merge import merge_record, reads_back, written_args
from .positions import PromptStates, add_positions, find_positions
from .prefilter import prefilter
from .propose import add_proposals, choose_proposals
from .records import Candidate, TextRecord
from .sample import call_grammar, sample_calls
from .stats import aggregate, write_stats
from .tokens import tokenize

if TYPE_CHECKING:
    from toolcall.registry import ToolRegistry

STAGES = ("prefilter", "positions", "sample", "execute", "filter", "merge")


class Pipeline:
    """The stages bound to one tool registry, one config and a model: `scorer` (anything implementing the Scorer
    protocol) judges the calls in the filter; `sampler`, when given, finds the positions and samples the calls
    instead of it (the paper uses one model M for both). Both must share a tokenizer."""

    def __init__(self, scorer: Scorer, registry: ToolRegistry, config: DataGenConfig,
                 sampler: Scorer | None = None) -> None:
        self.scorer = as_scorer(scorer)    # a backend that cannot score fails here, naming what it lacks
        self.sampler = self.scorer if sampler is None else as_scorer(sampler)
        self.registry = registry
        self.config = config
        self.tools = tuple(registry.canonical(t) for t in config.tools)
        self.states = PromptStates(self.sampler, config.positions.open_texts, registry, prompt=config.positions.prompt)
        special = getattr(self.scorer, "special_texts", None)
        self.special: tuple[str, ...] = tuple(special()) if callable(special) else ()
        self.runner = CallRunner(registry, config.execute_config(), self.special)
        self.filters = {t.lower(): config.for_tool(t)[2] for t in self.tools}
        self._check_call_grammars()
        self.last_rejected: list[dict[str, Any]] = []   # why the last text's samples/calls were dropped (debug log)
        self.last_scored: tuple[Candidate, ...] = ()     # the last text's scored candidates, kept or not

    def _spellings(self, tool: str) -> tuple[str, ...]:
        found = self.registry.get(tool)
        return (found.name, *getattr(found, "aliases", ()))

    def _check_call_grammars(self) -> None:
        """Each constrained tool's call grammar compiled now, so a tool whose argument grammar the engine cannot use
        fails before the first text, naming it (it failed when the tool was first sampled, texts into the run)."""
        check = getattr(self.sampler, "check_constraint", None)
        if check is None:
            return
        for tool in self.tools:
            if self.config.for_tool(tool)[1].constrain:
                try:
                    check(call_grammar(tool, self.registry))
                except ConfigError as err:
                    raise ConfigError(f"{tool}: its call grammar cannot be sampled under: {err}") from None

    def process(self, text: str, tick: Callable[[str], None] = lambda stage: None,
                fields: dict[str, Any] | None = None) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """One text through every stage: (output record or None, summary for stats). `fields` describe the text
        (its "date"): the tools' proposers and calls see them, and the output record keeps them. Markup the text
        already holds (calls, special tokens) is broken first (`safe_text`): the record's "original" is that text."""
        with about_text(fields):
            out, summary = self._process(safe_text(text, self.special), tick)
        if out is not None and fields:
            out = {**out, **fields}
        return out, summary

    def _process(self, text: str, tick: Callable[[str], None]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        began = time.perf_counter()
        rec = prefilter(TextRecord(text), self.tools, self.config.prefilter)
        tick("prefilter")
        # Proposals are chosen first, so the model can sample at their tokens too; they join the candidates after
        # the model's samples, so a proposal the model wrote as well is one candidate with source "both".
        proposals: dict[str, tuple[Candidate, ...]] = {}
        proposing = [tool for tool in rec.tools if self.config.proposes(tool)]
        if proposing:
            tokenized = tokenize(self.scorer, text)
            for tool in proposing:
                proposals[tool] = choose_proposals(text, tool, self.registry, tokenized, self.config.propose,
                                                   self.config.filter.placement)
        for tool in rec.tools:
            pos_cfg = self.config.for_tool(tool)[0]
            rec = find_positions(rec, tool, self.states, pos_cfg)
            if pos_cfg.at_proposals and proposals.get(tool):
                rec = add_positions(rec, tool, self.states, (c.token for c in proposals[tool]))
        tick("positions")
        for tool in rec.tools:
            _, sam_cfg, _ = self.config.for_tool(tool)
            rec = sample_calls(rec, tool, self.states, sam_cfg, self.registry.canonical, self._spellings(tool))
        for tool in proposing:
            rec = add_proposals(rec, proposals[tool])
        tick("sample")
        rec = execute_calls(rec, self.runner)
        tick("execute")
        rec = score_candidates(rec, self.scorer, self.filters)
        tick("filter")
        out = merge_record(rec)
        tick("merge")
        written = (out or {}).get("calls", [])
        scored = tuple(c for c in rec.candidates if c.scored)
        self.last_scored = scored
        # Which scored candidates the corpus holds: each written call answers for one candidate only (two samples of
        # the same call at a place both matched it, and the per-tool counts said 2 where one call was written).
        # Arguments as JSON text: a list argument (`Sum([12, 30])`) is no key of a Counter.
        unclaimed = Counter((c["tool"], c["position"], c["loss_reduction"], _args_key(c["args"])) for c in written)
        in_corpus = []
        for c in scored:
            key = (c.tool, c.position, c.loss_reduction, _args_key(written_args(c)))   # as the record lists them
            in_corpus.append(unclaimed[key] > 0)
            unclaimed[key] -= 1 if in_corpus[-1] else 0
        self.last_rejected = list(rec.rejected) + [
            {"stage": "filter", "tool": c.tool, "position": c.position, "call": c.text_call,
             "reason": _why_left_out(c),
             **{k: getattr(c, k) for k in ("loss_eps", "loss_null", "loss_plus", "loss_reduction")}}
            for c, kept in zip(scored, in_corpus) if not kept]
        # The text around each, from the text annotated (markup broken: positions count its zero-width spaces).
        self.last_rejected = [{**r, "before": text[max(0, r.get("position", 0) - 40):r.get("position", 0)]}
                              for r in self.last_rejected]
        summary = {
            "tools": list(rec.tools),
            "positions": {t: len(p) for t, p in rec.positions.items()},
            "counts": {t: dict(per) for t, per in rec.counts.items()},
            "scored": [[c.tool, c.loss_reduction, c.kept, kept, c.source] for c, kept in zip(scored, in_corpus)],
            "kept": len(written),
            "seconds": time.perf_counter() - began,
        }
        return out, summary


def run_record(input_path: Path, limit: int | None, config: DataGenConfig, registry: ToolRegistry,
               models: dict[str, str | None] | None) -> dict[str, Any]:
    """What run.json says of a run, and a --resume must match (checkpoint.RunDir): its input, settings, models and
    its user tools' code. Both engines write it."""
    tools = [registry.canonical(t) for t in config.tools]
    code, data = tool_code(registry, tools), tool_data(registry, tools)
    return {"input": str(input_path), "input_sha256": file_sha256(input_path), "limit": limit,
            "config": config.to_dict(), **({"models": models} if models is not None else {}),
            **({"tool_code": code} if code else {}), **({"tool_data": data} if data else {})}


def tool_code(registry: ToolRegistry, tools: Sequence[str]) -> dict[str, str]:
    """The sha256 of the file that defines each user tool of the run (not toolcall's own), by tool: a --resume with a
    changed --tools-from file mixed the old code's results with the new one's in one corpus."""
    out: dict[str, str] = {}
    for name in tools:
        source = tool_source(registry.get(name).func)
        if source is not None and not is_toolcall_source(source) and Path(source).is_file():
            out[name] = file_sha256(Path(source))
    return out


#: The built-in tools whose results come from the passages of --wiki-corpus.
CORPUS_READERS = ("toolcall.tools.wikisearch", "toolcall.tools.qa")


def tool_data(registry: ToolRegistry, tools: Sequence[str]) -> dict[str, str]:
    """The sha256 of the data the run's tools answer from, beyond their code: the --wiki-corpus file that WikiSearch
    and QA search (a --resume with another corpus, or none, mixed two corpora's results in one run without a word)."""
    if any(getattr(registry.get(name).func, "__module__", None) in CORPUS_READERS for name in tools):
        from toolcall.tools import _corpus

        return {"wiki_corpus_sha256": file_sha256(_corpus.corpus_path())}
    return {}


def _why_left_out(cand: Candidate) -> str:
    """Why a scored candidate is not in the corpus (rejected.jsonl's reason)."""
    if not cand.kept:
        return "below tau_f"
    if not reads_back(cand):
        return "its call, written with its result, does not read back as one call of its tool"
    return "another call won at this position, or the same call was kept at another"


def _args_key(args: Any) -> str:
    return json.dumps(list(args), sort_keys=True, ensure_ascii=False, default=str)


def run_data_gen(input_path: Path, output_dir: Path, pipeline: Pipeline, *, resume: bool = False,
                 limit: int | None = None, progress: bool = True,
                 on_text_done: Callable[[int], None] | None = None,
                 models: dict[str, str | None] | None = None,
                 texts: RunInputs | None = None) -> dict[str, Any]:
    """Process every input text not already done in output_dir, then write stats and the exports; returns the stats.

    `models` names the sampling and scoring models ({"sampler": ..., "scorer": ...}): stored in run.json, and a
    --resume with other models is refused, since its calls would come from another model than the first part's.
    `texts`: the run's inputs (read_run_inputs), when the caller has checked them already (before its models loaded)."""
    texts = read_run_inputs(input_path, limit, pipeline.config) if texts is None else texts
    with RunDir(Path(output_dir), resume, run_record(input_path, limit, pipeline.config, pipeline.registry,
                                                     models)) as run:
        bars = _bars(len(texts), len(run.done), progress)
        began, finished = time.perf_counter(), 0
        try:
            for index, (text, fields) in enumerate(texts):
                if index in run.done:
                    continue
                record, summary = pipeline.process(text, lambda stage: bars[stage].update(1) if bars else None, fields)
                run.log_rejected(index, text, pipeline.last_rejected)
                run.commit(index, record, summary)
                finished += 1
                if bars:
                    bars[STAGES[-1]].set_postfix_str(texts_per_minute(finished, time.perf_counter() - began))
                if on_text_done is not None:
                    on_text_done(index)
        finally:
            for bar in (bars or {}).values():
                bar.close()
        return finish(run, len(texts), pipeline)


def finish(run: RunDir, texts_in: int, pipeline: Pipeline) -> dict[str, Any]:
    return write_outputs(run.path, run.summaries(), texts_in, list(pipeline.tools),
                         {t: f.tau_f for t, f in pipeline.filters.items()})


def write_outputs(path: Path, summaries: Iterable[dict[str, Any]], texts_in: int, tools: list[str],
                  taus: dict[str, float]) -> dict[str, Any]:
    """stats.json (and its histogram), moss.jsonl and hf_dataset/ from a run directory's corpus and progress log;
    every engine ends a run with this, so their outputs are alike. Returns the stats."""
    # The stats describe the directory's corpus: a --resume with a smaller --limit reads fewer inputs than were done.
    stats = aggregate(summaries, texts_in, tools)
    write_stats(stats, path, taus)
    records = read_records(path / CORPUS)
    write_moss(records, path / "moss.jsonl", tools)
    write_hf_dataset(records, path / "hf_dataset")
    return stats


def texts_per_minute(texts: int, seconds: float) -> str:
    """The throughput shown on the progress bar of the last stage, e.g. "4.2 texts/min" (texts done in this run)."""
    return f"{60.0 * texts / max(seconds, 1e-9):.1f} texts/min"


def _bars(total: int, done: int, enabled: bool) -> dict[str, Any] | None:
    if not enabled:
        return None
    import sys

    from tqdm import tqdm

    return {stage: tqdm(total=total, initial=done, desc=f"{stage:>9}", position=i, file=sys.stderr, leave=True,
                        dynamic_ncols=True) for i, stage in enumerate(STAGES)}
