"""Reading JSON Lines files: one object per non-blank line, errors named by file and line number."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ConfigError


def read_jsonl(path: str | Path, what: str = "input") -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ("FILE:LINE", object) for every non-blank line of `path`.

    A missing file, a line that is not JSON, or a line that is not a JSON object raises ConfigError naming the file,
    the line and what was found, so a caller can add its own field checks with the same location.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist (a .jsonl file with one JSON object per line is expected)")
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ConfigError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from err
            if not isinstance(record, dict):
                raise ConfigError(f"{where}: each line must be a JSON object, found {type(record).__name__}")
            yield where, record


def string_field(record: dict[str, Any], name: str, where: str, *, allow_empty: bool = False) -> str:
    """record[name] when it is a string (non-blank unless allow_empty), else a ConfigError at `where`."""
    value = record.get(name)
    if not isinstance(value, str) or not (allow_empty or value.strip()):
        kind = "string" if allow_empty else "non-empty string"
        raise ConfigError(f"{where}: each line needs a {kind} field {name!r}")
    return value
