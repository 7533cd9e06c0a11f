"""Where a corpus writer may write: its --out folder checked before anything is made or loaded."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from toolcall.errors import ConfigError


def check_out(out: Path, names: Sequence[str], force: bool) -> None:
    """ConfigError unless `out` is a folder (or can be made one) where the files `names` can be written: none of them
    may already hold data unless `force` (a rerun into the same folder would silently replace a corpus)."""
    for parent in (out, *out.parents):  # the nearest part of the path that exists must be a folder
        if parent.exists():
            if not parent.is_dir():
                where = "is a file" if parent == out else f"is inside {parent}, which is a file"
                raise ConfigError(f"--out {out} {where}; give a folder (new or empty) for {', '.join(names)}")
            break
    for name in names:
        path = out / name
        if path.is_dir():
            raise ConfigError(f"--out {out}: {path} is a folder, where the file {name} is written; give another "
                              "folder")
        if not force and path.is_file() and path.stat().st_size > 0:
            raise ConfigError(f"--out {out} already holds {name} ({path.stat().st_size:,} bytes); give a new or "
                              "empty folder, or pass --force to replace its files")
