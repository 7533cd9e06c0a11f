"""Reading input texts: .jsonl (a "text" field per line, optionally its "date") or .txt (one text per non-empty line)."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from toolcall.errors import ConfigError
from toolcall.jsonl import read_jsonl, read_lines, string_field

#: Record fields that describe the text (the tools read them through toolcall.tool_type.text_context), and that its
#: output record keeps: "date", the document's date as YYYY-MM-DD, is what the Calendar tool answers for that text,
#: as the paper dates each document; "id", a string or an integer, says which input the record came from.
TEXT_FIELDS = ("date", "id")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def read_inputs(path: Path, limit: int | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(text, its fields) for each input text, at most `limit`; a .txt line has no fields."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"input file {path} does not exist")
    if path.suffix not in (".jsonl", ".txt"):
        raise ConfigError(f"input {path} must end in .jsonl or .txt")
    texts: list[tuple[str, dict[str, Any]]] = []
    if path.suffix == ".jsonl":
        for where, record in read_jsonl(path, "input file"):
            if limit is not None and len(texts) >= limit:
                break
            texts.append((string_field(record, "text", where, allow_empty=True), _fields(record, where)))
        return texts
    for _, line in read_lines(path, "input file"):
        if limit is not None and len(texts) >= limit:
            break
        if line.strip():
            texts.append((line.strip(), {}))
    return texts


def _fields(record: dict[str, Any], where: str) -> dict[str, Any]:
    fields = {k: record[k] for k in TEXT_FIELDS if record.get(k) is not None}
    if "id" in fields and (isinstance(fields["id"], bool) or not isinstance(fields["id"], (str, int))):
        raise ConfigError(f"{where}: \"id\" must be a string or an integer, got {fields['id']!r}")
    if "date" in fields:
        date = fields["date"]
        try:
            # A string written YYYY-MM-DD (fromisoformat also reads 20230130 and 2023-W05-1).
            if not isinstance(date, str) or not _ISO_DATE.fullmatch(date):
                raise ValueError
            dt.date.fromisoformat(date)
        except ValueError:
            raise ConfigError(f"{where}: \"date\" must be YYYY-MM-DD (the document's date), got {date!r}") from None
    return fields
