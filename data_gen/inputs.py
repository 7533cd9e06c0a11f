"""Reading input texts: .jsonl (a "text" field per line) or .txt (one text per non-empty line)."""
from __future__ import annotations

from pathlib import Path

from toolcall.errors import ConfigError
from toolcall.jsonl import read_jsonl, string_field


def read_texts(path: Path, limit: int | None = None) -> list[str]:
    """The input texts of a data-gen run, at most `limit` of them."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"input file {path} does not exist")
    if path.suffix not in (".jsonl", ".txt"):
        raise ConfigError(f"input {path} must end in .jsonl or .txt")
    texts: list[str] = []
    if path.suffix == ".jsonl":
        for where, record in read_jsonl(path, "input file"):
            if limit is not None and len(texts) >= limit:
                break
            texts.append(string_field(record, "text", where, allow_empty=True))
        return texts
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if limit is not None and len(texts) >= limit:
                break
            if line.strip():
                texts.append(line.strip())
    return texts
