"""data_gen on Ray Data: the same `Pipeline.process` per text, in a pool of actors that each hold a model, across machines.

The plan is read -> map_batches -> write, each text carrying its input index as an id column. A re-run with the same
output directory reads back the rows written (a line cut short by a crash counts as none) and stages only the texts
that have none, so a text is done again rather than lost (Ray Data's checkpoint, which decided this before, once
recorded a text whose rows it had not written, and the resumed run skipped it). When the plan has finished, the driver joins the written rows in input order into the files a single-process run writes
(corpus.jsonl, progress.jsonl, rejected.jsonl, stats.json and the exports), so the two engines' outputs are the same
and either engine can resume the other's run.

Layout under the output directory: ray/input/ (the texts still to do, in shards: the plan's read), ray/rows/ (what
the actors wrote). On a cluster these paths must be on storage every node sees (a shared mount): the actors read the
one and write the other.
"""
from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from toolcall.errors import ConfigError, MissingDependencyError
from toolcall.toolset import Toolset

from .checkpoint import Commit, RunDir, json_line, swap_in
from .config import DataGenConfig
from .inputs import RunInputs, read_run_inputs
from .pipeline import Pipeline, run_record, write_outputs

RAY_DIR = "ray"
#: Texts per input shard: a shard is a read task, and its rows are written (and checkpointed) together.
SHARD_TEXTS = 4


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401  # the [data] part: a bare `ray` install lacks its dependencies
    except ImportError as err:
        raise MissingDependencyError("ray[data]", "ray", "data-gen --engine ray") from err
    return ray


@dataclass(frozen=True)
class PipelineSpec:
    """What an actor needs to build its own Pipeline: picklable names and options, never a loaded model.

    `backend_options` go to `get_scorer` (e.g. max_batch_tokens; the fake backend's `lm`). Each actor builds the
    registry from `toolset` as the command line does (None: the tools config.tools names); its `tools_from` files
    should be named absolutely, since an actor's working directory is not the driver's.
    """

    config: DataGenConfig
    backend: str = "transformers"
    model: str | None = None
    backend_options: dict[str, Any] = field(default_factory=dict)
    toolset: Toolset | None = None
    scorer_model: str | None = None     # the judge, when not `model` itself: each actor loads both

    def registry(self, backend: Any = None) -> Any:
        toolset = self.toolset if self.toolset is not None else Toolset(tuple(self.config.tools))
        registry = toolset.build(backend)
        if not len(registry):
            raise ConfigError("no tools; give --tools, --tools-from or --mcp")
        return registry

    def __call__(self) -> Pipeline:
        from toolcall.backends import get_scorer

        sampler = get_scorer(self.backend, self.model, **self.backend_options)
        scorer = sampler if self.scorer_model == self.model else get_scorer(self.backend, self.scorer_model,
                                                                             **self.backend_options)
        # MT decodes with this actor's sampling model.
        return Pipeline(scorer, self.registry(backend=sampler), self.config, sampler=sampler)


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide the Ray run is."""

    address: str | None = None   # None: start Ray on this machine (local mode); "auto" or "ray://host:10001": a cluster
    actors: int | None = None    # pipeline actors (each loads the model); None: one per GPU, else one per CPU slot
    cpus_per_actor: float = 1.0
    gpus_per_actor: float | None = None   # None: 1 when the cluster has GPUs, else 0

    def __post_init__(self) -> None:
        if self.actors is not None and self.actors < 1:
            raise ConfigError(f"--actors must be at least 1, got {self.actors}")
        if self.cpus_per_actor <= 0 or (self.gpus_per_actor is not None and self.gpus_per_actor < 0):
            raise ConfigError(f"an actor needs cpus_per_actor > 0 and gpus_per_actor >= 0; got {self.cpus_per_actor}, "
                              f"{self.gpus_per_actor}")


class _TextActor:
    """One Pipeline (one model) in a Ray actor; a batch of input rows in, one output row per text out."""

    def __init__(self, make_pipeline: Callable[[], Pipeline]) -> None:
        self.pipeline = make_pipeline()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"id": [], "record": [], "summary": [], "rejected": []}
        for index, text, fields in zip(batch["id"], batch["text"], batch["fields"]):
            record, summary = self.pipeline.process(str(text), fields=json.loads(fields))
            out["id"].append(int(index))
            # JSON strings, so Arrow never has to unify the records' nested, varying shapes across blocks.
            out["record"].append("" if record is None else json.dumps(record, ensure_ascii=False))
            out["summary"].append(json.dumps(summary, ensure_ascii=False))
            out["rejected"].append(json.dumps(self.pipeline.last_rejected, ensure_ascii=False))
        return out


def init_ray(address: str | None, num_cpus: int | None = None) -> Any:
    """ray.init for a run: a local Ray bound to 127.0.0.1 when `address` is None, else a connection to that cluster."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    if address is None:
        # Ray listens on the machine's external address by default; this switch (its single-machine mode) keeps
        # every local listener on loopback. Ray reads it when it is imported: the environment carries it to the
        # processes Ray starts, and the constant of an already imported Ray is set to match.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False
        # Logical CPUs for Ray's scheduler, not threads: the actors (one per real core) plus the read, checkpoint
        # filter and write tasks must all fit, or Ray Data's budget leaves the read task no CPU and the run hangs
        # (seen with 4 on 2 cores: two actors, the filter and one read task held them all).
        cpus = num_cpus if num_cpus is not None else max(8, 2 * (os.cpu_count() or 1) + 4)
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    else:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    return ray


def _pool(ray: Any, options: RayOptions) -> tuple[int, float, float]:
    """(actors, cpus each, gpus each): one actor per GPU on a GPU cluster, else one per CPU slot, leaving three CPUs
    for the read, checkpoint-filter and write tasks (an actor pool holding every CPU starves them and hangs)."""
    resources = ray.cluster_resources()
    gpus = options.gpus_per_actor if options.gpus_per_actor is not None else (1.0 if resources.get("GPU", 0) else 0.0)
    if options.actors is not None:
        return options.actors, options.cpus_per_actor, gpus
    if gpus:
        return max(1, int(resources.get("GPU", 0) // gpus)), options.cpus_per_actor, gpus
    slots = int((resources.get("CPU", 1) - 3) // options.cpus_per_actor)   # 3 left for read, filter and write
    if options.address is None:   # local mode reserves extra logical CPUs (init_ray): one actor per real core
        slots = min(slots, os.cpu_count() or 1)
    return max(1, slots), options.cpus_per_actor, 0.0


def _stage_inputs(texts: Iterable[tuple[str, dict[str, Any]]], done: set[int], folder: Path) -> int:
    """Write the texts not yet done as shards of {"id", "text", "fields"} lines (the plan's read), a text at a
    time; how many."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.jsonl"):
        old.unlink()
    todo = 0
    shard: TextIO | None = None
    try:
        for i, (text, fields) in enumerate(texts):
            if i in done:
                continue
            if shard is None or todo % SHARD_TEXTS == 0:
                if shard is not None:
                    shard.close()
                shard = (folder / f"{todo // SHARD_TEXTS:06d}.jsonl").open("w", encoding="utf-8")
            shard.write(json_line({"id": i, "text": text, "fields": json.dumps(fields)}) + "\n")
            todo += 1
    finally:
        if shard is not None:
            shard.close()
    return todo


class Rows(Mapping[int, dict[str, Any]]):
    """The rows the actors wrote, by text index, each read from its file when asked for (a row written twice is kept
    once: its content is the same); only where each row lies is held, as the rows of a large run are its corpus."""

    def __init__(self, folder: Path) -> None:
        self._where: dict[int, tuple[Path, int]] = {}
        self._open: tuple[Path, BinaryIO] | None = None
        for path in sorted(folder.glob("*.json*")) if folder.is_dir() else []:
            with path.open("rb") as fh:
                offset = 0
                for line in fh:
                    try:
                        row = json.loads(line) if line.strip() else None
                    except ValueError:   # a line cut short by a crash while it was written: its text is done again
                        row = None
                    if isinstance(row, dict) and "id" in row:
                        self._where.setdefault(int(row["id"]), (path, offset))
                    offset += len(line)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, offset = self._where[index]
        if self._open is None or self._open[0] != path:   # rows are asked for in index order, mostly a file's
            self.close()
            self._open = (path, path.open("rb"))
        fh = self._open[1]
        fh.seek(offset)
        row: dict[str, Any] = json.loads(fh.readline())
        return row

    def __iter__(self) -> Iterator[int]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def close(self) -> None:
        if self._open is not None:
            self._open[1].close()
            self._open = None


def read_rows(folder: Path) -> Rows:
    """The rows the actors wrote, by text index (Rows: each read when asked for)."""
    return Rows(folder)


def run_data_gen_ray(input_path: Path, output_dir: Path, make_pipeline: Callable[[], Pipeline],
                     config: DataGenConfig, registry: Any, *, resume: bool = False, limit: int | None = None,
                     progress: bool = True, options: RayOptions = RayOptions(),
                     models: dict[str, str | None] | None = None,
                     texts: RunInputs | None = None) -> dict[str, Any]:
    """`run_data_gen` on Ray Data: `make_pipeline` (picklable, e.g. a PipelineSpec) builds each actor's Pipeline;
    `config` and `registry` are the driver's view of the same run (its description, tools and thresholds), `models`
    names its models as `run_data_gen`'s does (a --resume with others is refused). Returns the stats; the output
    directory ends up as a single-process run leaves it. `texts`: the run's inputs (read_run_inputs), when checked already."""
    texts = read_run_inputs(input_path, limit, config) if texts is None else texts
    # Refuses a used directory without --resume, checks a resumed one.
    with RunDir(Path(output_dir), resume, run_record(input_path, limit, config, registry, models)) as run:
        work = run.path / RAY_DIR
        # The texts left are those neither committed nor with a whole row written, as read back here. Ray Data's
        # checkpoint decided it before, and once skipped a text whose rows it had not written (a crash between the
        # two): the text was lost. A checkpoint an earlier version left goes.
        written = read_rows(work / "rows")
        todo = _stage_inputs(texts, run.done | set(written), work / "input")
        written.close()
        shutil.rmtree(work / "checkpoint", ignore_errors=True)
        if todo:
            _execute(work, make_pipeline, progress, options)
        rows = read_rows(work / "rows")
        tools = tuple(registry.canonical(t) for t in config.tools)
        _assemble(run, rows, texts)
        return write_outputs(run.path, run.summaries(), len(texts), list(tools),
                             {t.lower(): config.for_tool(t)[2].tau_f for t in tools})


def _execute(work: Path, make_pipeline: Callable[[], Pipeline], progress: bool, options: RayOptions) -> None:
    ray = init_ray(options.address)
    from ray.data import ActorPoolStrategy, DataContext

    actors, cpus, gpus = _pool(ray, options)
    context = DataContext.get_current()
    context.enable_progress_bars = progress
    shards = sorted(str(p.resolve()) for p in (work / "input").glob("*.jsonl"))
    ds = ray.data.read_json(shards)   # pyarrow blocks: the checkpoint filter takes no pandas ones
    ds = ds.map_batches(_TextActor, fn_constructor_args=(make_pipeline,), batch_size=1,
                        compute=ActorPoolStrategy(size=actors), num_cpus=cpus, num_gpus=gpus or None)
    ds.write_json(str((work / "rows").resolve()))


def _assemble(run: RunDir, rows: Mapping[int, dict[str, Any]], texts: Iterable[tuple[str, dict[str, Any]]]) -> None:
    """Rewrite corpus.jsonl and progress.jsonl in input order from what is already committed there (a single-process
    run being resumed) and the rows Ray wrote; written aside, then moved into place, so a crash leaves the old ones.
    The rows' reasons for dropping samples are appended to rejected.jsonl as a single-process run logs them. A record
    at a time: what is committed is copied from the old corpus by its place there, a row read when its turn comes,
    and the texts (for the rejected log) read again alongside, in the same order."""
    committed = _committed_spans(run)
    corpus_tmp, progress_tmp = run.corpus.with_suffix(".tmp"), run.progress.with_suffix(".tmp")
    given = _TextsInOrder(texts)
    try:
        commits = _join(run, rows, committed, given, corpus_tmp, progress_tmp)
    finally:
        if isinstance(rows, Rows):
            rows.close()
    swap_in(run.path, [(corpus_tmp, run.corpus), (progress_tmp, run.progress)])
    run.commits, run.done = commits, {c.index for c in commits}


def _join(run: RunDir, rows: Mapping[int, dict[str, Any]],
          committed: dict[int, tuple[tuple[int, int] | None, tuple[int, int]]], given: _TextsInOrder,
          corpus_tmp: Path, progress_tmp: Path) -> list[Commit]:
    """_assemble's writing of the joined corpus and log aside; their commits."""
    size, end, commits = 0, 0, []
    with corpus_tmp.open("wb") as corpus, progress_tmp.open("wb") as log, run.corpus.open("rb") as old, \
            run.progress.open("rb") as old_log:
        for index in sorted(set(committed) | set(rows)):
            line: bytes | None = None
            if index in committed:
                span, (start, stop) = committed[index]
                if span is not None:
                    old.seek(span[0])
                    line = old.read(span[1] - span[0])
                old_log.seek(start)
                summary = json.loads(old_log.read(stop - start))
            else:
                row = rows[index]
                summary = json.loads(row["summary"])
                if row["record"]:
                    line = (json_line(json.loads(row["record"])) + "\n").encode("utf-8")
                rejected = json.loads(row["rejected"])
                if rejected:
                    # A row past this run's texts is one a run with a larger --limit did: kept, as a single-process
                    # resume keeps it, its dropped samples logged without the text around them.
                    run.log_rejected(index, given.text(index), rejected)
            if line is not None:
                corpus.write(line)
                size += len(line)
            entry = {"index": index, "corpus_bytes": size, **{k: v for k, v in summary.items()
                                                               if k not in ("index", "corpus_bytes")}}
            end += log.write((json_line(entry) + "\n").encode("utf-8"))
            commits.append(Commit(index, size, end))
    return commits


class _TextsInOrder:
    """The input texts read once, in order, to be asked for by rising index ("" past their end)."""

    def __init__(self, texts: Iterable[tuple[str, dict[str, Any]]]) -> None:
        self._texts = texts
        self._iter: Iterator[tuple[int, tuple[str, dict[str, Any]]]] | None = None
        self._at, self._text = -1, ""

    def text(self, index: int) -> str:
        while self._at < index:
            try:
                if self._iter is None:   # read only when a rejected log asks for a text
                    self._iter = enumerate(self._texts)
                self._at, (self._text, _) = next(self._iter, (index + 1, ("", {})))
            except ConfigError as err:   # the rows are there: they are joined, their dropped samples logged bare
                warnings.warn(f"toolcall: the rejected samples' log is written without their texts from here: {err}",
                              RuntimeWarning, stacklevel=2)
                self._iter, self._at = iter(()), index + 1
        return self._text if self._at == index else ""


def _committed_spans(run: RunDir) -> dict[int, tuple[tuple[int, int] | None, tuple[int, int]]]:
    """{index: (where its record lies in the corpus, or None; where its line lies in progress.jsonl)} of what the
    progress log commits: a commit whose corpus size grew owns the corpus's bytes since the one before."""
    out: dict[int, tuple[tuple[int, int] | None, tuple[int, int]]] = {}
    before = logged = 0
    for commit in run.commits:
        grew = commit.corpus_bytes > before
        out[commit.index] = ((before, commit.corpus_bytes) if grew else None, (logged, commit.progress_end))
        before, logged = commit.corpus_bytes, commit.progress_end
    return out


__all__ = ["PipelineSpec", "RayOptions", "init_ray", "read_rows", "run_data_gen_ray"]
