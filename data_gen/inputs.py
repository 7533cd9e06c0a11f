"""Reading input texts: .jsonl (a "text" field per line) or .txt (one text per non-empty line)."""
from __future__ import annotations

import json
from pathlib import Path

from toolcall.errors import ConfigError


def read_texts(path: Path, limit: int | None = None) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"input file {path} does not exist")
    texts: list[str] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            if path.suffix == ".jsonl":
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ConfigError(f"{path}:{number}: not valid JSON ({err.msg})") from err
                if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                    raise ConfigError(f"{path}:{number}: each line must be an object with a string \"text\" field")
                texts.append(obj["text"])
            elif path.suffix == ".txt":
                texts.append(line.strip())
            else:
                raise ConfigError(f"input {path} must end in .jsonl or .txt")
            if limit is not None and len(texts) >= limit:
                break
    return texts
