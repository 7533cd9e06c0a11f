"""Reading input texts: .jsonl (a "text" field per line, optionally its "date"), .txt (one text per non-empty line,
or the file as one document) or .parquet (a "text" column), compressed or not."""
from __future__ import annotations

import datetime as dt
import email.utils
import itertools
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from toolcall.tools.calendar import parse_date

from toolcall.errors import ConfigError
from toolcall.jsonl import (
    COMPRESSED,
    content_suffix,
    parquet_columns,
    read_jsonl,
    read_lines,
    read_records,
    shown_columns,
)

from .tokens import joins_previous

#: Record fields that describe the text (the tools read them through toolcall.tool_type.text_context), and that its
#: output record keeps: "date", the document's date as YYYY-MM-DD, is what the Calendar tool answers for that text,
#: as the paper dates each document; "id", a string or an integer, says which input the record came from.
TEXT_FIELDS = ("date", "id")


_SPACE = re.compile(r"\s*")  # the white space after a cut, which neither piece keeps
#: Where a long text is split, best first: a paragraph break, a line break, a sentence's end (a CJK one needs no
#: space after it), a space.
_BREAKS = (re.compile(r"\n[ \t]*\n\s*"), re.compile(r"\n\s*"),
           re.compile(r"[.!?][\"')\]]*\s+|[\u3002\uff01\uff1f][\u300d\u300f\"')\]\uff09]*\s*"), re.compile(r"\s+"))
def _whole_cut(text: str, cut: int, floor: int) -> int:
    """`cut` moved back, not below `floor`, until it splits no character from the marks and joiners that go with it
    (a hard cut before one would split a letter from its accent or an emoji sequence)."""
    while cut > floor and joins_previous(text, cut):
        cut -= 1
    return cut


def split_text(text: str, max_chars: int) -> list[str]:
    """`text` (stripped) in pieces of at most `max_chars` characters, each cut at the best break (see _BREAKS) in
    the second half of the piece it ends, else at `max_chars`; the pieces, in order, are the text less the white
    space at the cuts. Linear in the text."""
    pieces: list[str] = []
    text = text.strip()
    start = 0  # read by position: slicing off each piece copied the rest, quadratic in a long text
    while len(text) - start > max_chars:
        cut = _whole_cut(text, start + max_chars, start + max_chars // 2)
        for pattern in _BREAKS:
            ends = [m.end() for m in pattern.finditer(text, start + max_chars // 2, start + max_chars + 1)]
            if ends:
                cut = ends[-1]
                break
        pieces.append(text[start:cut].rstrip())
        start = _SPACE.match(text, cut).end()  # type: ignore[union-attr]
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def read_inputs(path: Path, limit: int | None = None, max_chars: int | None = None, *, text_field: str = "text",
                txt: str = "lines", date_field: str = "date",
                id_field: str = "id") -> list[tuple[str, dict[str, Any]]]:
    """(text, its fields) for each input text, at most `limit`, in a list (iter_inputs, read whole)."""
    kept, seen = [], set[str]()
    for text, fields in iter_inputs(path, limit, max_chars, text_field=text_field, txt=txt, date_field=date_field,
                                    id_field=id_field):
        kept.append((text, fields))
        seen.update(fields)
    _warn_unseen(Path(path), len(kept), seen, {"date": date_field, "id": id_field})
    return kept


def iter_inputs(path: Path, limit: int | None = None, max_chars: int | None = None, *, text_field: str = "text",
                txt: str = "lines", date_field: str = "date",
                id_field: str = "id") -> Iterator[tuple[str, dict[str, Any]]]:
    """(text, its fields) for each input text, at most `limit`, read as they are asked for. A .jsonl (or JSON Lines
    .json) line's text is its `text_field`, a .parquet row's that column, and its "date" and "id" those of
    `date_field` and `id_field` (CCNet's `date_download`, C4's `timestamp`, a `url`); a .txt file is one text per
    non-empty line (`txt="lines"`, no fields) or one document (`"whole"`). Files ending .gz, .bz2 or .xz are read
    decompressed. A text longer than `max_chars` is split (`split_text`) into texts of their own, each with its
    fields and "part" (0, 1, ...): the model reads each with the prompt before it, within its context, and the
    forward over a long one grows with its square (one 60 KB document took over 15 minutes, past the model's
    context). What is wrong with the file (missing, not a file, an unknown kind), or a `limit` below 1, is raised
    here, before any text."""
    path = Path(path)
    if limit is not None and limit < 1:   # -1 was itertools.islice's bare ValueError, 0 no text without a word
        raise ConfigError(f"limit must be at least 1, got {limit}")
    kind = content_suffix(path)
    texts = _read(path, kind, limit, text_field, txt, {"date": date_field, "id": id_field})
    whole = txt == "whole" and kind == ".txt"   # --txt says how a .txt file is read, only
    return texts if max_chars is None else _split(texts, max_chars, limit if whole else None)


def _split(texts: Iterator[tuple[str, dict[str, Any]]], max_chars: int,
           limit: int | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """The texts, each longer than `max_chars` split into its parts; at most `limit` parts in all (a whole file's
    --limit counts its parts, the texts the model reads)."""
    given = 0
    for text, fields in texts:
        pieces = split_text(text, max_chars) if len(text) > max_chars else [text]
        for k, piece in enumerate(pieces):
            if limit is not None and given >= limit:
                return
            given += 1
            yield piece, ({**fields, "part": k} if len(pieces) > 1 else fields)


def _warn_unseen(path: Path, count: int, seen: set[str], named: dict[str, str]) -> None:
    """A field named on purpose that no text has may be a misspelling (the Calendar then answers for the clock); a
    Parquet file without the column is an error (_parquet_rows), a JSON Lines file may hold it further on."""
    for key, field in named.items():
        if content_suffix(path) in (".jsonl", ".json") and field != key and count and key not in seen:
            warnings.warn(f"toolcall: --{key}-field {field!r}: none of the {count:,} input texts read from {path} "
                          "has that field", RuntimeWarning, stacklevel=3)


class RunInputs:
    """A data-gen run's input texts as its DataGenConfig says to read them (iter_inputs), not held: made, they are
    read through once, which checks every one (a malformed line, a bad date: an error before any model loads) and
    counts them (none is an error too); each pass over them reads the file again, a text at a time. Held in a list, a whole FineWeb shard
    took gigabytes before its first text was done."""

    def __init__(self, path: Path, limit: int | None, config: Any) -> None:
        self.path, self.limit = Path(path), limit
        self.options = {"max_chars": config.max_text_chars, "text_field": config.text_field, "txt": config.txt,
                        "date_field": config.date_field, "id_field": config.id_field}
        self._stamp: tuple[int, int, int] | None = None
        count, seen = 0, set[str]()
        for _, fields in self:
            count += 1
            seen.update(fields)
        if not count:   # the run "succeeded" on nothing, texts_in 0, and left a used output directory
            empty = "it has no rows" if content_suffix(self.path) == ".parquet" else "it is empty or only blank lines"
            raise ConfigError(f"input {self.path} holds no texts ({empty}); give a file with at least one")
        self.count = count
        _warn_unseen(self.path, count, seen, {"date": config.date_field, "id": config.id_field})

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        texts = iter_inputs(self.path, self.limit, **self.options)   # a missing or odd file is said first
        if self._stamp is None:
            self._stamp = self._stat()
            return texts
        self._same()
        return self._checked(texts)

    def _checked(self, texts: Iterator[tuple[str, dict[str, Any]]]) -> Iterator[tuple[str, dict[str, Any]]]:
        """The texts, the file looked at before each is given (a stat: nothing beside a text's processing)."""
        for item in texts:
            self._same()
            yield item

    def _stat(self) -> tuple[int, int, int]:
        stat = self.path.stat()
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def _same(self) -> None:
        if self._stat() != self._stamp:
            # Its texts would not be the ones counted, checked and hashed for run.json.
            raise ConfigError(f"input {self.path} changed while the run was reading it (a run reads its input again as "
                              "it goes); leave it as it was until the run ends, or start a run on the new file")


def read_run_inputs(path: Path, limit: int | None, config: Any) -> RunInputs:
    """The input texts of a data-gen run, checked and counted, read again by each pass over them (RunInputs)."""
    return RunInputs(path, limit, config)


#: The longest file `--txt whole` reads as one document (it is held whole, then split at its paragraphs): a long
#: book is a few megabytes; a file past this is many documents, or a decompression bomb.
MAX_WHOLE_BYTES = 256 * 1024 * 1024

#: What an input file may hold, by its suffix (under a compression suffix: `c4.json.gz` is JSON Lines).
INPUT_KINDS = (".jsonl", ".json", ".txt", ".parquet")


def _read(path: Path, kind: str, limit: int | None, text_field: str, txt: str,
          named: dict[str, str]) -> Iterator[tuple[str, dict[str, Any]]]:
    if not path.exists():
        raise ConfigError(f"input file {path} does not exist")
    if not path.is_file():  # a folder, a pipe: a run's texts are read again on --resume, so they must be a file
        raise ConfigError(f"input {path} is not a regular file; give a .jsonl, .txt or .parquet file")
    if kind not in INPUT_KINDS or (kind == ".parquet" and path.suffix.lower() in COMPRESSED):
        raise ConfigError(f"input {path} must end in .jsonl, .json (JSON Lines), .txt or .parquet (the first three "
                          f"may be compressed: .gz, .bz2, .xz)")
    if kind == ".parquet":
        return _take(_parquet_rows(path, text_field, named), limit)
    if kind != ".txt":
        return _take(((_text_of(record, text_field, where), _fields(record, where, named))
                      for where, record in read_jsonl(path, "input file")), limit)
    if txt == "whole":
        return _whole(path)
    return _take(((piece.strip(), {}) for _, line in read_lines(path, "input file")
                  # a file saved with classic Mac line ends (CR alone) holds many texts
                  for piece in line.split("\r") if piece.strip()), limit)


def _whole(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """A .txt file as one document (none when it holds only white space)."""
    whole = "".join(line for _, line in read_lines(path, "input file", max_bytes=MAX_WHOLE_BYTES))
    whole = whole.replace("\r\n", "\n").replace("\r", "\n").strip()
    if whole:
        yield whole, {}


def _take(items: Iterator[tuple[str, dict[str, Any]]], limit: int | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """The first `limit` items (all when None), read no further: a --limit 10 run of a large file reads 10 texts."""
    return items if limit is None else itertools.islice(items, limit)   # never pulls (and checks) one more


def _text_of(record: dict[str, Any], field: str, where: str) -> str:
    value = record.get(field)
    if isinstance(value, str):
        return value
    if value is None and field not in record:
        strings = [k for k, v in record.items() if isinstance(v, str)][:8]
        hint = f"; its text fields: {', '.join(strings)} (--text-field names the one to read)" if strings else ""
        raise ConfigError(f"{where}: each line needs a string field {field!r}{hint}")
    raise ConfigError(f"{where}: field {field!r} must be a string, got {type(value).__name__}")


def _parquet_rows(path: Path, text_field: str, named: dict[str, str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(text, fields) for each row of a Parquet file (its text column, and its date and id columns where it has
    them), read a batch of rows at a time."""
    names = parquet_columns(path, "input")
    if text_field not in names:
        raise ConfigError(f"input {path} has no column {text_field!r}; its columns: {shown_columns(names)} (--text-field "
                          "names the one holding the texts)")
    for key, field in named.items():
        if field != key and field not in names:
            raise ConfigError(f"input {path} has no column {field!r} (--{key}-field); its columns: {shown_columns(names)}")
    columns = list(dict.fromkeys([text_field, *(c for c in named.values() if c in names)]))
    for where, record in read_records(path, "input", columns=columns):
        text = record.get(text_field)   # an empty cell is a field not given
        if not isinstance(text, str):
            raise ConfigError(f"{where}: column {text_field!r} must hold text, got "
                              f"{'null' if text is None else type(text).__name__}")
        yield text, _fields(record, where, named)


def _fields(record: dict[str, Any], where: str, named: dict[str, str] | None = None) -> dict[str, Any]:
    """The record's TEXT_FIELDS, each read from the field `named` gives it (its own name by default)."""
    named = named or {k: k for k in TEXT_FIELDS}
    fields = {k: record[named[k]] for k in TEXT_FIELDS if record.get(named[k]) is not None}
    id_name, date_name = named["id"], named["date"]
    if "id" in fields and (isinstance(fields["id"], bool) or not isinstance(fields["id"], (str, int))):
        raise ConfigError(f"{where}: {id_name!r} (its id) must be a string or an integer, got {fields['id']!r}")
    if isinstance(fields.get("id"), int) and not -2**63 <= fields["id"] < 2**63:
        # The HF dataset stores ids as 64-bit integers: a larger one failed that export at the end of every run.
        raise ConfigError(f"{where}: an integer {id_name!r} (its id) must be in [-2^63, 2^63), got {fields['id']}; "
                          "write a larger one as a string")
    if "date" in fields:  # kept as the day it names (" 2024-01-05\n" was copied into the output record as written)
        fields["date"] = document_day(fields["date"], f"{where}: {date_name!r} (the document's date)").isoformat()
    return fields


def document_day(value: Any, what: str) -> dt.date:
    """The calendar day a document's date names, as written: YYYY-MM-DD; an ISO 8601 timestamp (FineWeb's
    `2013-05-18T05:48:54Z`, CCNet's `date_download`, C4's `timestamp`), or an e-mail's or feed's
    (`Sat, 06 May 2023 21:25:54 +0200`), is the day it was written in its own time zone; a Parquet date or timestamp
    its day."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if _ISO_STAMP.match(text):   # a day written YYYY-MM-DD first, as parse_date asks of a date alone
                return dt.datetime.fromisoformat(text).date()
            if _MAIL_DATE.match(text):
                return email.utils.parsedate_to_datetime(text).date()
            return parse_date(text, what)
        except (TypeError, ValueError, IndexError, ConfigError):
            pass
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:80] + "..."   # a whole document, by mistake
    raise ConfigError(f"{what}: {shown} is not a date: write YYYY-MM-DD, an ISO 8601 timestamp "
                      "(2013-05-18T05:48:54Z) or an e-mail's date (Sat, 06 May 2023 21:25:54 +0200)")


#: A timestamp that begins with its day as YYYY-MM-DD; an e-mail's or feed's date with a four-digit year (RFC 2822).
_ISO_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\S")
_MAIL_DATE = re.compile(r"(?:[A-Za-z]{3},\s*)?\d{1,2}\s+[A-Za-z]{3}\s+\d{4}\s")
