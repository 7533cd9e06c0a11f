"""Reading record files: JSON Lines (one object per non-blank line, compressed or not) and Parquet (one object per
row), errors named by file and line or row."""
from __future__ import annotations

import bz2
import datetime as dt
import decimal
import gzip
import io
import json
import lzma
import re
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError, MissingDependencyError


def utf8_text(data: bytes, source: str) -> str:
    """`data` decoded as UTF-8, or a ConfigError naming `source` and the first byte that is not (its offset)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{source} is not UTF-8 text: byte 0x{data[err.start]:02x} at offset {err.start:,}") from None


#: The longest line read, in bytes: a line is read whole, so a 200 KB .gz that expands to one line of gigabytes
#: took that much memory before anything could say no. A record of a corpus (a C4 or FineWeb document, a book in
#: JSON) is far shorter.
MAX_LINE_BYTES = 64 * 1024 * 1024


def read_lines(path: str | Path, what: str = "input", *, max_bytes: int | None = None) -> Iterator[tuple[str, str]]:
    """Yield ("FILE:LINE", line) for every line of the UTF-8 text file `path` (a byte-order mark at the start of a
    line is dropped: files joined with `cat` carry one at each file's first line); bytes that are not UTF-8, and a NUL
    byte (no text file holds one; UTF-16 without its BOM has one at every other byte), raise ConfigError at their line
    and column instead of a codec traceback or a text of NULs. A line longer than MAX_LINE_BYTES, or lines past
    `max_bytes` in all, raise ConfigError when they are met, having read no more than that."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    number, total, pending = 0, 0, b""
    with open_binary(path) as fh:
        while True:
            raw, pending = pending, b""
            if not raw.endswith(b"\n") and len(raw) <= MAX_LINE_BYTES + 1:
                try:   # the line end is not counted: a line of MAX_LINE_BYTES and its CR LF is read whole
                    raw += fh.readline(MAX_LINE_BYTES + 2 - len(raw))
                except (OSError, EOFError, lzma.LZMAError, zlib.error) as err:
                    # A download cut short, or a file that only ends in .gz: the lines read so far were good.
                    raise ConfigError(f"{path}: {what} cannot be decompressed after line {number:,} ({err}); the "
                                      "file is damaged or not what its name says") from None
            if not raw:
                return
            number += 1
            where = f"{path}:{number}"
            if len(raw.rstrip(b"\r\n")) > MAX_LINE_BYTES:
                # A file with classic Mac line ends (CR alone) is one "line" to readline: what was read is given up
                # to its last CR, and the rest read on from there.
                cut = raw.rfind(b"\r", 0, MAX_LINE_BYTES + 1)
                if cut < 0:
                    raise ConfigError(f"{where}: {what} has a line longer than {MAX_LINE_BYTES:,} bytes (read no "
                                      "further); a record is one line of JSON, a text of a .txt file one line: split it")
                raw, pending = raw[:cut + 1], raw[cut + 1:]
            total += len(raw)
            if max_bytes is not None and total > max_bytes:
                raise ConfigError(f"{path}: {what} is longer than {max_bytes:,} bytes (read no further, at line "
                                  f"{number:,}): split it into files")
            nul = raw.find(b"\0")
            if nul >= 0:   # no text holds one: read on, a UTF-16 file without its BOM gave texts of a letter a word
                column = len(raw[:nul].decode("utf-8", errors="replace").removeprefix("\ufeff")) + 1
                raise ConfigError(f"{where}:{column}: {what} holds a NUL byte (0x00), and text files hold none"
                                  f"{_nul_hint(raw)}")
            try:
                line = raw.decode("utf-8-sig")
            except UnicodeDecodeError as err:
                column = len(raw[:err.start].decode("utf-8", errors="replace")) + 1
                raise ConfigError(f"{where}:{column}: {what} is not UTF-8 text (byte 0x{raw[err.start]:02x}: "
                                  f"{err.reason}); save it as UTF-8") from None
            yield where, line


def _nul_hint(raw: bytes) -> str:
    """What a line holding NUL bytes may be: where they stand at every other byte, as UTF-16 writes Latin text (its
    line end's second byte begins the next line), the file is UTF-16, to be saved as UTF-8."""
    body = raw.rstrip(b"\r\n")
    even, odd = body[0::2].count(0), body[1::2].count(0)
    most, least = max(even, odd), min(even, odd)
    # A NUL in at least half the bytes of one parity, and hardly one in the other.
    if len(body) >= 2 and most * 4 >= len(body) and least * 10 <= most:
        return "; the file looks like UTF-16 (a NUL at every other byte): save it as UTF-8"
    return " (is it a binary file? if the text is right otherwise, remove them: tr -d '\\000' < FILE > NEW)"


#: Compressed files are read as what their name says, as the corpora people download come (C4's .json.gz shards).
COMPRESSED = (".gz", ".bz2", ".xz")


def open_binary(path: Path) -> io.BufferedIOBase:
    """`path` opened for reading bytes, decompressed as its last suffix says (.gz, .bz2, .xz)."""
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.open(path, "rb")
    if suffix == ".bz2":
        return bz2.open(path, "rb")
    if suffix == ".xz":
        return lzma.open(path, "rb")
    return path.open("rb")


def content_suffix(path: Path) -> str:
    """The suffix that says what a file holds, under a compression suffix: .jsonl for `c4.jsonl.gz`."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def read_jsonl(path: str | Path, what: str = "input", *, max_bytes: int | None = None
               ) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ("FILE:LINE", object) for every non-blank line of `path` (past `max_bytes` in all: as read_lines).

    A missing file, bytes that are not UTF-8 or a NUL byte (a JSON escape `\\u0000` is text), a line that is not
    JSON (or nests deeper than Python's JSON reader goes), a line that is not a JSON object, or a string holding a
    lone surrogate (`"\\ud800"`, which no UTF-8 file can hold and nothing downstream can write) raises ConfigError
    naming the file, the line and what was found, so a caller can add its own field checks with the same location.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist (a .jsonl file with one JSON object per line is expected)")
    for where, line in read_lines(path, what, max_bytes=max_bytes):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{where}: not valid JSON ({err.msg} at column {err.colno}){_spread_hint(line)}") from err
        except RecursionError:
            raise ConfigError(f"{where}: the JSON nests deeper than can be read") from None
        except ValueError as err:  # an integer past Python's 4,300-digit conversion limit
            raise ConfigError(f"{where}: a number in it is too long to read ({err})") from None
        if not isinstance(record, dict):
            raise ConfigError(f"{where}: each line must be a JSON object, found {type(record).__name__}"
                              f"{_spread_hint(line) if isinstance(record, list) else ''}")
        try:
            field = _surrogate_field(record) if _ESCAPED_SURROGATE.search(line) else None
        except RecursionError:
            raise ConfigError(f"{where}: the JSON nests deeper than can be read") from None
        if field is not None:
            raise ConfigError(f"{where}: {field} holds a lone UTF-16 surrogate escape (\\ud800-\\udfff without its "
                              "pair), which is not text")
        yield where, record


def _spread_hint(line: str) -> str:
    """What to do when a line opens a JSON array or a pretty-printed object: a JSON document, not JSON Lines."""
    if not line.lstrip().startswith("[") and line.strip() != "{":
        return ""
    return ("; the file looks like one JSON document (an array, or an object over several lines), and this reads "
            "JSON Lines, one object per line: convert it with python -c \"import json, sys; d = "
            "json.load(open(sys.argv[1])); [print(json.dumps(r)) for r in (d if isinstance(d, list) else [d])]\" "
            "FILE > FILE.jsonl")


#: A JSON escape of a UTF-16 surrogate; only lines holding one are searched for a lone one after decoding.
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _surrogate_field(value: Any, name: str = "the line") -> str | None:
    """Where in a decoded JSON value a string holds a lone surrogate, or None."""
    if isinstance(value, str):
        return name if _SURROGATE.search(value) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and _SURROGATE.search(key):
            return f"a key of {name}"
        found = _surrogate_field(item, f"field {key!r}" if name == "the line" else f"{name}[{key!r}]")
        if found is not None:
            return found
    return None


def string_field(record: dict[str, Any], name: str, where: str, *, allow_empty: bool = False) -> str:
    """record[name] when it is a string (non-blank unless allow_empty), else a ConfigError at `where`."""
    value = record.get(name)
    if not isinstance(value, str) or not (allow_empty or value.strip()):
        kind = "string" if allow_empty else "non-empty string"
        raise ConfigError(f"{where}: each line needs a {kind} field {name!r}")
    return value


def read_records(path: str | Path, what: str = "input", *,
                 columns: Sequence[str] | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """("FILE:LINE" or "FILE: row N", object) for each record of a JSON Lines file (`read_jsonl`) or each row of a
    Parquet file (`.parquet`, the Hugging Face Hub's form), read a batch of rows at a time, so that taking the first
    few of a shard of gigabytes reads what they need; `columns`: the Parquet columns to read (each must be there:
    `parquet_columns` says which are)."""
    path = Path(path)
    if content_suffix(path) != ".parquet":
        yield from read_jsonl(path, what)
        return
    reader = _parquet_file(path, what)
    row = 0
    try:
        for batch in reader.iter_batches(batch_size=256, columns=None if columns is None else list(columns)):
            for record in _json_like(batch).to_pylist():
                row += 1
                # An empty cell is a field the record does not have, as a JSON line leaves it out.
                yield f"{path}: row {row:,}", {k: _plain(v) for k, v in record.items() if v is not None}
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - pyarrow's own: a damaged row group, a column type it cannot convert
        raise ConfigError(f"{what} {path} cannot be read after row {row:,} ({type(err).__name__}: {err})") from None


def _json_like(batch: Any) -> Any:
    """`batch` with float32 and float16 columns read as the numbers they print as (a float32 0.1 is
    0.10000000149011612 as a double; through its text, 0.1)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for index, field in enumerate(batch.schema):
        if pa.types.is_float32(field.type) or pa.types.is_float16(field.type):
            as_text = pc.cast(batch.column(index), pa.string())
            batch = batch.set_column(index, field.name, pc.cast(as_text, pa.float64()))
    return batch


def _plain(value: Any, depth: int = 0) -> Any:
    """A Parquet value as JSON would hold it: a Decimal as the number it is, a date or time as ISO 8601 text, in
    lists and structs too."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if depth < 32 and isinstance(value, list):
        return [_plain(v, depth + 1) for v in value]
    if depth < 32 and isinstance(value, dict):
        return {k: _plain(v, depth + 1) for k, v in value.items()}
    return value


def shown_columns(names: Sequence[str]) -> str:
    """A file's column names as an error message lists them: the first 20."""
    return ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")


def parquet_columns(path: str | Path, what: str = "input") -> list[str]:
    """The column names of a Parquet file (ConfigError for a file that is not Parquet)."""
    return list(_parquet_file(Path(path), what).schema_arrow.names)


def _parquet_file(path: Path, what: str) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise MissingDependencyError("pyarrow", "hf", f"reading .parquet files ({what})") from err
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    try:
        return pq.ParquetFile(path)
    except Exception as err:  # noqa: BLE001 - pyarrow's own errors (ArrowInvalid) for a file that is not Parquet
        raise ConfigError(f"{what} {path} cannot be read as Parquet ({err})") from None
