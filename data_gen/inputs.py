"""Reading input texts: .jsonl (a "text" field per line, optionally its "date") or .txt (one text per non-empty line)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from toolcall.tools.calendar import parse_date

from toolcall.errors import ConfigError
from toolcall.jsonl import read_jsonl, read_lines, string_field

#: Record fields that describe the text (the tools read them through toolcall.tool_type.text_context), and that its
#: output record keeps: "date", the document's date as YYYY-MM-DD, is what the Calendar tool answers for that text,
#: as the paper dates each document; "id", a string or an integer, says which input the record came from.
TEXT_FIELDS = ("date", "id")


def read_inputs(path: Path, limit: int | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(text, its fields) for each input text, at most `limit`; a .txt line has no fields."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"input file {path} does not exist")
    if not path.is_file():  # a folder, a pipe: a run's texts are read again on --resume, so they must be a file
        raise ConfigError(f"input {path} is not a regular file; give a .jsonl or .txt file")
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".txt"):
        raise ConfigError(f"input {path} must end in .jsonl or .txt")
    texts: list[tuple[str, dict[str, Any]]] = []
    if suffix == ".jsonl":
        for where, record in read_jsonl(path, "input file"):
            if limit is not None and len(texts) >= limit:
                break
            texts.append((string_field(record, "text", where, allow_empty=True), _fields(record, where)))
        return texts
    for _, line in read_lines(path, "input file"):
        for piece in line.split("\r"):   # a file saved with classic Mac line ends (CR alone) holds many texts
            if limit is not None and len(texts) >= limit:
                return texts
            if piece.strip():
                texts.append((piece.strip(), {}))
    return texts


def _fields(record: dict[str, Any], where: str) -> dict[str, Any]:
    fields = {k: record[k] for k in TEXT_FIELDS if record.get(k) is not None}
    if "id" in fields and (isinstance(fields["id"], bool) or not isinstance(fields["id"], (str, int))):
        raise ConfigError(f"{where}: \"id\" must be a string or an integer, got {fields['id']!r}")
    if isinstance(fields.get("id"), int) and not -2**63 <= fields["id"] < 2**63:
        # The HF dataset stores ids as 64-bit integers: a larger one failed that export at the end of every run.
        raise ConfigError(f"{where}: an integer \"id\" must be in [-2^63, 2^63), got {fields['id']}; write a larger "
                          "one as a string")
    if "date" in fields:  # kept as the day it names (" 2024-01-05\n" was copied into the output record as written)
        fields["date"] = parse_date(fields["date"], f"{where}: \"date\" (the document's date)").isoformat()
    return fields
