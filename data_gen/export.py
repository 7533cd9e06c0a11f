"""Writing the corpus in other forms: an HF `datasets` dataset on disk and MOSS-format conversations.

MOSS mapping (moss-003 SFT plugin layout, one turn per text, written by the MOSS dialect):
- Human: "Continue the text: " + the original text up to where the first call is written (stripped);
- Inner Thoughts: "None" (the corpus has no reasoning to put there);
- Commands and Tool Responses: every call of the text, in order, with its result, under MOSS's API names;
- MOSS: the rest of the original text (from there on), so the reply is what the tools helped write.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from toolcall.calls import ToolCall
from toolcall.dialects.moss import MossDialect
from toolcall.dialects.toolformer import ToolformerDialect
from toolcall.errors import MissingDependencyError
from toolcall.jsonl import read_jsonl


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a corpus.jsonl this pipeline wrote (none when the file does not exist yet)."""
    if not path.exists():
        return []
    return [record for _, record in read_jsonl(path, "corpus")]


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


def write_moss(records: list[dict[str, Any]], path: Path, tools: list[str]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for i, rec in enumerate(records):
            fh.write(json.dumps(to_moss(rec, i, tools), ensure_ascii=False) + "\n")


def write_hf_dataset(records: list[dict[str, Any]], path: Path) -> None:
    """datasets.save_to_disk; call args are stored as strings so the Arrow schema is one type."""
    try:
        import datasets
    except ImportError as err:
        raise MissingDependencyError("datasets", "hf", "exporting an HF dataset") from err
    rows = [{**r, "calls": [{**c, "args": [str(a) for a in c["args"]], "result": str(c["result"])} for c in r["calls"]]}
            for r in records]
    # Every row gets every column (a text without a date has date None): the columns are not the first row's alone.
    columns = list(dict.fromkeys(k for r in rows for k in r))
    rows = [{k: r.get(k) for k in columns} for r in rows]
    if len({type(r["id"]) for r in rows if r.get("id") is not None}) > 1:
        rows = [{**r, "id": None if r["id"] is None else str(r["id"])} for r in rows]  # one Arrow type: ids as text
    if rows:
        ds = datasets.Dataset.from_list(rows)
    else:
        ds = datasets.Dataset.from_dict({"text": [], "original": [], "calls": []})
    # datasets draws a bar of its own for the save (to stderr, at every run's end, --no-progress or not): a save of
    # one small table needs none.
    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        ds.save_to_disk(str(path))
    finally:
        if shown:
            datasets.enable_progress_bars()
