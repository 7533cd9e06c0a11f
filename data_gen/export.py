"""Writing the corpus in other forms: an HF `datasets` dataset on disk and MOSS-format conversations.

MOSS mapping (moss-003 SFT plugin layout, one turn per text, written by the MOSS dialect):
- Human: "Continue the text: " + the original text up to where the first call is written (stripped);
- Inner Thoughts: "None" (the corpus has no reasoning to put there);
- Commands and Tool Responses: every call of the text, in order, with its result, under MOSS's API names;
- MOSS: the rest of the original text (from there on), so the reply is what the tools helped write.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from toolcall.calls import ToolCall
from toolcall.dialects.moss import MossDialect
from toolcall.dialects.toolformer import ToolformerDialect
from toolcall.errors import MissingDependencyError
from toolcall.jsonl import read_jsonl

from .checkpoint import json_line


class CorpusRecords:
    """The records of a corpus.jsonl this pipeline wrote, read again, a line at a time, by each pass over them (none
    when the file does not exist yet): the exports of a run that kept hundreds of thousands of texts held them all."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return iter(())
        return (record for _, record in read_jsonl(self.path, "corpus"))


def read_records(path: Path) -> CorpusRecords:
    """The records of a corpus.jsonl, read as they are asked for (CorpusRecords)."""
    return CorpusRecords(path)


def to_moss(record: dict[str, Any], index: int, tools: list[str]) -> dict[str, Any]:
    """One corpus record as a moss-003 conversation; `tools` are the run's tools, enabled in the meta-instruction."""
    moss = MossDialect()
    original = record["original"]
    first = _first_call_at(record)
    calls = [ToolCall(moss.api_name(c["tool"]), tuple(str(a) for a in c["args"]), str(c["result"]))
             for c in record["calls"]]
    turn = moss.render_turn(f"Continue the text: {original[:first].strip()}", "None", calls, original[first:].strip())
    meta = moss.meta_instruction([moss.api_name(t) for t in tools])
    return {"conversation_id": index + 1, "meta_instruction": meta, "num_turns": 1, "chat": {"turn_1": turn}}


def _first_call_at(record: dict[str, Any]) -> int:
    """Where the first call is written, as an offset into the original: the text before it is the original's (calls
    are only inserted), and a call is written before the space and currency sign of the token it was scored at
    (`so [Calculator(12 + 30) -> 42] $42`, position at "42"), which the calls' "position" does not say."""
    written = ToolformerDialect().parse(record["text"]).calls
    if written and record["text"][:written[0].span[0]] == record["original"][:written[0].span[0]]:
        return written[0].span[0]
    return int(record["calls"][0]["position"])


def write_moss(records: Iterable[dict[str, Any]], path: Path, tools: list[str]) -> None:
    """moss.jsonl, written aside and moved into place whole: a run killed while writing it left a file cut at any
    line in its place (a resumed run's whole one, too), which read as an export with fewer conversations."""
    staged = path.parent / f".{path.name}.tmp"
    try:
        with staged.open("w", encoding="utf-8") as fh:
            for i, rec in enumerate(records):
                fh.write(json_line(to_moss(rec, i, tools)) + "\n")
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)


#: Rows per Arrow batch of the dataset export: what it holds in memory at once.
EXPORT_BATCH = 1000


def write_hf_dataset(records: Iterable[dict[str, Any]], path: Path) -> None:
    """datasets.save_to_disk of the records, call args stored as strings so the Arrow schema is one type. Read in
    three passes (a list, or CorpusRecords, which reads its file again), a batch at a time: the columns and the ids'
    types, the schema of every row, then the rows, written to an Arrow file beside `path` that the dataset maps and
    saves; made at once from a list of every row, 5,000 records of 4 KB took 150 MB more than the run had used."""
    try:
        import datasets
        import pyarrow as pa
    except ImportError as err:
        raise MissingDependencyError("datasets", "hf", "exporting an HF dataset") from err
    if isinstance(records, Iterator):   # read more than once
        records = list(records)
    # Every row gets every column (a text without a date has date None): the columns are not the first row's alone.
    columns: dict[str, None] = {}
    id_types = set()
    for record in records:
        columns.update(dict.fromkeys(record))
        if record.get("id") is not None:
            id_types.add(type(record["id"]))
    as_text = len(id_types) > 1   # one Arrow type: ids as text

    def rows() -> Iterator[list[dict[str, Any]]]:
        batch = []
        for r in records:
            row = {k: r.get(k) for k in columns}
            row["calls"] = [{**c, "args": [str(a) for a in c["args"]], "result": str(c["result"])}
                            for c in r["calls"]]
            if as_text and row["id"] is not None:
                row["id"] = str(row["id"])
            batch.append(row)
            if len(batch) == EXPORT_BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    staged = path.parent / f".{path.name}.arrow"
    saved = path.parent / f".{path.name}.tmp"   # saved aside, then moved into place: a kill leaves no half dataset
    shutil.rmtree(saved, ignore_errors=True)
    # datasets draws a bar of its own for the save (to stderr, at every run's end, --no-progress or not): a save of
    # one small table needs none.
    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:   # the staged file, as large as the dataset, goes whatever happens
        if columns:
            # The types every row's values need, as one table of them all would infer them (a struct's fields united).
            schema = pa.unify_schemas([pa.Table.from_pylist(batch).schema for batch in rows()],
                                      promote_options="permissive")
            with pa.OSFile(str(staged), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
                for batch in rows():
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            ds = datasets.Dataset.from_file(str(staged))
        else:
            ds = datasets.Dataset.from_dict({"text": [], "original": [], "calls": []})
        ds.save_to_disk(str(saved))
        del ds
        _move_into_place(saved, path)
    finally:
        if shown:
            datasets.enable_progress_bars()
        staged.unlink(missing_ok=True)
        shutil.rmtree(saved, ignore_errors=True)


def _move_into_place(new: Path, path: Path) -> None:
    """The folder `new` moved to `path`, the one there before removed: at every moment `path` is a whole dataset or
    missing (a kill between the two moves; the next run's export writes it again), never a half-saved one."""
    old = path.parent / f".{path.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(new, path)
    shutil.rmtree(old, ignore_errors=True)
