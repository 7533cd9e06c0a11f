"""Build the real Calendar dev and test sets of benchmarks/data/real/ from Debian package changelogs.

    python benchmarks/data/build_changelog_devset.py [--docs /usr/share/doc] [--out benchmarks/data/real]

Every Debian package ships `changelog.Debian.gz`: entries its maintainers wrote, each signed with the day it was
written (` -- Name <address>  Mon, 02 Jan 2023 13:06:21 +0100`). An entry is a dated document that writes its own
date, which is what the Calendar answers. One entry is drawn per source package (a fixed seed over the sorted
package names), half for tuning and half held out; benchmarks/data/real/README.md says how the gold spots are defined.
"""
from __future__ import annotations

import argparse
import datetime as dt
import email.utils
import gzip
import json
import random
import re
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "real"
SEED = 20
HEADER = re.compile(r"^(?P<source>[a-z0-9][a-z0-9.+-]*) \((?P<version>[^()\s]+)\) [^;]+;.*$")
# The signature line: the date is written in the maintainer's own time zone, so its calendar day is the text's date.
TRAILER = re.compile(r"^ -- (?P<who>.+?) <[^<>]*>  (?P<when>(?P<day>\w{3}, +\d{1,2} \w{3} \d{4}) \S+ [+-]\d{4})\s*$")
MIN_CHARS, MAX_CHARS = 120, 1000
# Entries written by the build daemons, not by a person.
MACHINE_WRITTEN = re.compile(r"binary-only non-maintainer upload|no source changes", re.I)


def entries(changelog: str) -> list[str]:
    """The changelog's entries, each from its header line through its signature line."""
    out: list[str] = []
    current: list[str] | None = None
    for line in changelog.splitlines():
        if current is None:
            if HEADER.match(line):
                current = [line]
            continue
        current.append(line)
        if TRAILER.match(line):
            out.append("\n".join(current))
            current = None
    return out


def signed_date(entry: str) -> tuple[dt.date, int, str] | None:
    """(the day the entry was signed, where its date starts, the date as written) for an entry whose weekday agrees
    with its date; None otherwise."""
    last = entry.rsplit("\n", 1)[-1]
    match = TRAILER.match(last)
    if match is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(match.group("when"))
    except (TypeError, ValueError):
        return None
    written = match.group("day")
    if written[:3].lower() != f"{when:%a}".lower():
        return None
    return when.date(), len(entry) - len(last) + match.start("day"), written


def writes_date_before(entry: str, day: dt.date, end: int) -> bool:
    """Whether the entry writes its own date before `end` too (ISO, "6 May 2023", "May 6, 2023", "06 May 2023"),
    which would make a second place a Calendar call answers."""
    forms = {day.isoformat(), f"{day.day} {day:%B} {day.year}", f"{day:%B} {day.day}, {day.year}",
             f"{day.day:02d} {day:%b} {day.year}", f"{day.day} {day:%b} {day.year}", f"{day:%b} {day.day}, {day.year}"}
    return any(form.lower() in entry[:end].lower() for form in forms)


def candidates(changelog: str) -> list[tuple[str, dt.date, int, str]]:
    """(entry, date, spot, date as written) for each entry a person wrote, of a length the model reads whole, that
    writes its date only where it is signed."""
    out = []
    for entry in entries(changelog):
        signed = signed_date(entry)
        if signed is None or not MIN_CHARS <= len(entry) <= MAX_CHARS or MACHINE_WRITTEN.search(entry):
            continue
        if signed[0].year < 1995 or writes_date_before(entry, signed[0], signed[1]):
            continue
        out.append((entry, *signed))
    return out


def build(docs: Path, n: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One drawn entry for each of n source packages, in the draw's order."""
    by_source: dict[str, tuple[str, list[tuple[str, dt.date, int, str]]]] = {}
    for path in sorted(docs.glob("*/changelog.Debian.gz")):
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
            found = candidates(fh.read())
        if not found:
            continue
        header = HEADER.match(found[0][0].split("\n", 1)[0])
        assert header is not None
        by_source.setdefault(header.group("source"), (path.parent.name, found))
    rng = random.Random(SEED)
    names = sorted(by_source)
    rng.shuffle(names)
    rows = []
    for source in names[:n]:
        package, found = by_source[source]
        entry, day, start, written = rng.choice(found)
        header = HEADER.match(entry.split("\n", 1)[0])
        assert header is not None
        rows.append({"id": f"debian-{source}-{header.group('version')}", "kind": "debian_changelog", "text": entry,
                     "date": day.isoformat(), "package": package,
                     "gold": [{"tool": "Calendar", "start": start, "value": written}]})
    meta = {"source": "Debian package changelogs (changelog.Debian.gz) as installed under " + str(docs),
            "licence": "each package's own licence, as its copyright file beside the changelog states (DFSG-free)",
            "source_packages_seen": len(by_source), "chosen": len(rows)}
    return rows, meta


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=Path("/usr/share/doc"))
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--n", type=int, default=200, help="entries (half tuning, half held out)")
    args = parser.parse_args(argv)
    rows, meta = build(args.docs, args.n)
    half = len(rows) // 2
    write_jsonl(args.out / "debian_changelog_tune.jsonl", rows[:half])
    write_jsonl(args.out / "debian_changelog_heldout.jsonl", rows[half:])
    debian_version = Path("/etc/debian_version")
    meta |= {"tune": half, "heldout": len(rows) - half,
             "debian_version": debian_version.read_text().strip() if debian_version.exists() else None}
    sources_path = args.out / "sources.json"
    sources = json.loads(sources_path.read_text(encoding="utf-8")) if sources_path.exists() else {}
    sources["debian_changelogs"] = meta
    sources_path.write_text(json.dumps(sources, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
