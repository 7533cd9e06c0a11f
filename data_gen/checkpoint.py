"""Crash-safe progress for a data_gen run: records are appended when a text is finished, then a progress line commits it.

Commit order per text: append the record to corpus.jsonl, fsync; append {"index", "corpus_bytes", ...} to
progress.jsonl, fsync. On resume, the last complete progress line says how long corpus.jsonl may be; anything past
that (a record whose commit line never landed, a half-written line) is cut off, so no record is lost or written twice.
A corpus shorter than its progress says (a copy that lost its tail) keeps the texts whose records are whole; the
others are done again.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolcall.errors import ConfigError

CORPUS = "corpus.jsonl"
PROGRESS = "progress.jsonl"
RUN = "run.json"
REJECTED = "rejected.jsonl"


#: The line breaks JSON leaves raw in a string (ensure_ascii=False) that str.splitlines() splits on: a record holding
#: one (U+2028 in web text, a NEL from a cp1252 page) was two "lines" to every reader of the corpus that splits so.
_LINE_BREAKS = str.maketrans({"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def json_line(value: Any) -> str:
    """`value` as one line of JSON Lines, UTF-8 text kept as it is but for the line breaks that JSON leaves raw
    (`_LINE_BREAKS`), which are escaped: every line reader sees one line, and every JSON reader the same value."""
    return json.dumps(value, ensure_ascii=False).translate(_LINE_BREAKS)


def _append(path: Path, line: str) -> int:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())
        return fh.tell()


@dataclass(frozen=True, slots=True)
class Commit:
    """One text's commit: its input index, the corpus's size after it, and the progress log's."""

    index: int
    corpus_bytes: int
    progress_end: int


#: The journal of a pair of files being moved into place together (see `swap_in`).
SWAP = "swap.json"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def swap_in(folder: Path, moves: list[tuple[Path, Path]]) -> None:
    """Move each (new, old) file of `folder` into place, all of them or, across a crash, none until the next run on
    the folder finishes the job (`finish_swap`): a corpus and its progress log describe each other, and a kill
    between two renames left the new corpus with the old log, which the next --resume cut back by the old offsets."""
    for new, _ in moves:
        _fsync(new)
    pending = folder / (SWAP + ".tmp")
    pending.write_text(json.dumps([[new.name, old.name] for new, old in moves]), encoding="utf-8")
    _fsync(pending)
    os.replace(pending, folder / SWAP)   # from here on, the moves are as good as done
    _fsync(folder)
    finish_swap(folder)


def finish_swap(folder: Path) -> None:
    """Make the moves a journal left by `swap_in` says, those not made yet (a crash between them), and drop it."""
    journal = folder / SWAP
    if not journal.exists():
        return
    try:
        moves = json.loads(journal.read_text(encoding="utf-8"))
        if not (isinstance(moves, list) and all(isinstance(m, list) and len(m) == 2 and all(
                isinstance(n, str) and n and Path(n).name == n for n in m) for m in moves)):
            raise ValueError("not a list of [new, old] file names")
    except ValueError as err:   # written aside and renamed whole, so only damage from outside gives this
        raise ConfigError(f"{journal} is damaged ({err}): it lists files to move into place; if corpus.jsonl and "
                          "progress.jsonl are the pair you want, remove it, else move corpus.tmp and progress.tmp "
                          "into their places first") from None
    for new, old in moves:
        if (folder / new).exists():
            os.replace(folder / new, folder / old)
    _fsync(folder)
    journal.unlink()


def _commits(path: Path) -> list[Commit]:
    """The progress log's complete commit lines, read a line at a time (the log ends before a torn line or one that
    is no commit); only where each lies is kept, not its summary (a run of a million texts held them all)."""
    if not path.exists():
        return []
    good: list[Commit] = []
    end = 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.endswith(b"\n"):   # the piece after the last newline is incomplete
                break
            try:
                entry = json.loads(raw)
            except ValueError:  # not JSON, or not UTF-8: the log ends before this line
                entry = None
            if not (isinstance(entry, dict) and type(entry.get("index")) is int
                    and type(entry.get("corpus_bytes")) is int):
                if fh.readline():
                    # A crash tears only the last line; one broken before others is damage, and cutting the log
                    # there cut the corpus back to it: the texts committed after it were lost without a word.
                    raise ConfigError(f"{path}:{number}: not a progress line, and lines follow it: the log is "
                                      "damaged, and resuming from it would do every text committed after this line "
                                      f"again; restore the file, or keep only its first {number - 1} lines to do "
                                      "them again")
                break
            end += len(raw)
            good.append(Commit(entry["index"], entry["corpus_bytes"], end))
    return good


def check_output_dir(path: Path, resume: bool) -> None:
    """Refuse, with why, an output directory a run cannot use: a file, a path under a file or where nothing may be
    written, or a used directory without --resume. Nothing is created."""
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise ConfigError(f"output directory {path} is a file; choose a directory")
        if path.is_dir() and any(path.iterdir()) and not resume:
            raise ConfigError(f"output directory {path} exists and is not empty; pass --resume to continue that run, "
                              "or choose another directory")
        existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    except OSError as err:
        raise ConfigError(f"output directory {path} cannot be used: {err.strerror or err}") from None
    if not existing.is_dir():
        raise ConfigError(f"output directory {path} cannot be made: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"output directory {path} cannot be made or written: {existing} is not writable")


class RunDir:
    """The output directory of one run: corpus, progress log, run description."""

    def __init__(self, path: Path, resume: bool, run_info: dict[str, Any]) -> None:
        self.path = Path(path)
        run_info = json.loads(json.dumps(run_info))   # compare as stored: tuples become lists in JSON
        self.corpus = self.path / CORPUS
        self.progress = self.path / PROGRESS
        check_output_dir(self.path, resume)
        if self.path.exists() and any(self.path.iterdir()):
            if not resume:
                raise ConfigError(f"output directory {self.path} exists and is not empty; pass --resume to continue "
                                  "that run, or choose another directory")
            self._check_same_run(run_info)
        else:
            if resume:   # a mistyped directory started a new run without a word, the old one left as it was
                print(f"toolcall data-gen: --resume: {self.path} holds no run to resume; starting a new one there",
                      file=sys.stderr)
            try:
                self.path.mkdir(parents=True, exist_ok=True)
                (self.path / RUN).write_text(json.dumps(run_info, indent=2) + "\n", encoding="utf-8")
            except OSError as err:
                raise ConfigError(f"output directory {self.path} cannot be written: {err.strerror or err}") from None
        self._lock = self._take_lock()
        try:
            if resume:
                self._record_resume(run_info)
            finish_swap(self.path)
            self._recover()
        except ConfigError:
            self.close()
            raise
        except OSError as err:   # progress.jsonl or corpus.jsonl a folder, unreadable: a traceback before
            self.close()
            raise ConfigError(f"output directory {self.path} cannot be resumed: {err.filename or ''}: "
                              f"{err.strerror or err}; choose another directory") from None

    def _recover(self) -> None:
        """Cut the progress log and the corpus back to what was committed whole; note which texts are done."""
        size = self.corpus.stat().st_size if self.corpus.exists() else 0
        if size and not self.progress.exists():   # a run makes its log before its first record
            raise ConfigError(f"{self.progress} is missing, and {self.corpus} holds {size:,} bytes of records: which "
                              "texts they come from cannot be told, and resuming would empty the corpus and do every "
                              f"text again; restore the log, or remove {self.corpus.name} to do them again")
        self.commits = _commits(self.progress)
        kept = len(self.commits)
        while kept and self.commits[kept - 1].corpus_bytes > size:
            kept -= 1  # this text's record is not (whole) in the corpus: it is done again
        del self.commits[kept:]
        if self.progress.exists():
            os.truncate(self.progress, self.commits[-1].progress_end if self.commits else 0)
        corpus_bytes = self.commits[-1].corpus_bytes if self.commits else 0
        if size > corpus_bytes:
            os.truncate(self.corpus, corpus_bytes)
        self.done = {c.index for c in self.commits}
        self.corpus.touch()   # present even when no text keeps a call
        self.progress.touch()
        self._check_corpus()

    def _take_lock(self) -> Any:
        """An exclusive lock on the run's record for as long as this run lasts (`close`, or the process's end): a
        second run on the same directory, resumed or not, wrote the same texts' records twice (1,053 records for
        600 texts), and every later resume kept them."""
        try:
            handle = (self.path / RUN).open("r+b")
        except OSError as err:
            raise ConfigError(f"output directory {self.path}: its {RUN} cannot be opened: {err.strerror or err}") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise ConfigError(f"output directory {self.path} is in use by another data-gen run; wait for it to end "
                              "(then --resume), or choose another directory") from None
        return handle

    def _record_resume(self, run_info: dict[str, Any]) -> None:
        """run.json says the input path and --limit of the latest run on the directory (it kept the first run's, so a
        run resumed to --limit 600 still said 2). Written through the locked handle: a new file in its place would
        leave the lock on the old one."""
        handle = self._lock
        raw = handle.read()
        old = json.loads(raw.decode("utf-8"))
        new = {**old, **{key: run_info.get(key) for key in ("input", "limit")}}
        if "tool_data" not in old and run_info.get("tool_data"):   # a run from before it was recorded: from now on
            new["tool_data"] = run_info["tool_data"]
        if new != old:
            data = (json.dumps(new, indent=2) + "\n").encode("utf-8")
            # Padded with spaces to the old length (JSON allows them at the end), so nothing is cut after the write:
            # killed between a write and a truncate, the file held the old record's tail, and resuming was refused.
            data += b" " * max(0, len(raw) - len(data))
            handle.seek(0)
            handle.write(data)
            handle.truncate()
            handle.flush()
            os.fsync(handle.fileno())

    def close(self) -> None:
        """Let another run use the directory."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _check_corpus(self) -> None:
        """Every committed record is one JSON object: one damaged in the middle of the corpus was found only by the
        export, after every remaining text had been processed, and then again on every resume."""
        with self.corpus.open("rb") as fh:
            for number, raw in enumerate(fh, 1):
                try:
                    record = json.loads(raw)
                except ValueError:
                    record = None
                if not isinstance(record, dict):
                    self.close()
                    raise ConfigError(f"{self.corpus}:{number}: not a JSON object, so the corpus of this run is "
                                      "damaged; mend or remove that line's record (and its text's progress line), "
                                      "or start the run again in another directory")

    def _check_same_run(self, run_info: dict[str, Any]) -> None:
        run_file = self.path / RUN
        if not run_file.exists():
            raise ConfigError(f"{self.path} has no {RUN}; it is not a data-gen output directory, choose another one")
        try:
            old = json.loads(run_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"--resume: {run_file} could not be read ({err}); it is not a data-gen run's record, "
                              "choose another directory") from None
        if not isinstance(old, dict):
            raise ConfigError(f"--resume: {run_file} is not a data-gen run's record (a JSON object); choose another "
                              "directory")
        models = old.get("models")
        if isinstance(models, dict) and "dtype" not in models and "dtype" in (run_info.get("models") or {}):
            old["models"] = models = {**models, "dtype": "float32"}   # runs from before --dtype computed in float32
        if isinstance(models, dict) and "backend" not in models and "backend" in (run_info.get("models") or {}):
            # Runs from before the backend was recorded: which one made them is not known, so any may resume them.
            old["models"] = {**models, "backend": run_info["models"]["backend"]}
        if "tool_data" not in old:   # runs from before it was recorded: which corpus they searched is not known
            old["tool_data"] = run_info.get("tool_data")
        models = old.get("models")
        now = run_info.get("models")
        for key in ("input_sha256", "config", "models", "tool_code", "tool_data"):
            if key == "models" and isinstance(models, dict) and isinstance(now, dict):
                differences = _model_differences(models, now)
            elif key == "config":
                differences = _setting_differences(_canonical(old.get(key)), _canonical(run_info.get(key)))[:3]
            else:
                differences = [] if old.get(key) == run_info.get(key) else [""]
            if differences:
                what = "--wiki-corpus file's content" if key == "tool_data" else key.replace("_", " ")
                shown = f": {'; '.join(differences)}" if any(differences) else ""
                raise ConfigError(f"--resume: the {what} differs from the run in {self.path}{shown}; resume with the "
                                  "same input, models, --dtype, settings, tools' code and --wiki-corpus, or choose "
                                  "another directory")

    def log_rejected(self, index: int, text: str, rejected: list[dict[str, Any]]) -> None:
        """Append why text `index`'s samples and calls were dropped (a debug log: a text redone on resume appears twice)."""
        if not rejected:
            return
        lines = []
        for r in rejected:
            at = r.get("position", 0)
            before = r["before"] if "before" in r else text[max(0, at - 40):at]  # the pipeline's, when it gave one
            lines.append(json_line({"index": index, **r, "before": before}))
        with (self.path / REJECTED).open("a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")

    def commit(self, index: int, record: dict[str, Any] | None, summary: dict[str, Any]) -> None:
        size = self.corpus.stat().st_size if self.corpus.exists() else 0
        if record is not None:
            size = _append(self.corpus, json_line(record))
        entry = {"index": index, "corpus_bytes": size, **summary}
        end = _append(self.progress, json_line(entry))
        self.commits.append(Commit(index, size, end))
        self.done.add(index)

    def summaries(self) -> Iterator[dict[str, Any]]:
        """Each committed text's progress entry (its summary, index and corpus size), read from the log in commit
        order, a line at a time."""
        end = self.commits[-1].progress_end if self.commits else 0
        with self.progress.open("rb") as fh:
            while fh.tell() < end:
                yield json.loads(fh.readline())


#: The files of a model folder that make the model (weights, configs, tokenizer, chat template), as loaders read them
#: from its top level; a model card, a download's cache and lock files, training logs and checkpoint subfolders do not.
MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".json", ".model", ".txt", ".tiktoken", ".jinja")


def model_sha256(model: str | None) -> str | None:
    """What a model's files hold, as one SHA-256: a file's own, or a folder's over the names and contents of the files
    that make the model (MODEL_FILE_SUFFIXES, at its top level), so a run knows its model by what it is, not by how
    its path was typed; None for the embedded model and for a name that is no file here."""
    if model is None:
        return None
    path = Path(model)
    if path.is_file():
        return file_sha256(path)
    if not path.is_dir():
        return None
    digest = hashlib.sha256()
    for item in sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                       and p.suffix.lower() in MODEL_FILE_SUFFIXES):
        digest.update(f"{item.name}\0{file_sha256(item)}\0".encode())
    return digest.hexdigest()


def _model_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """How the models a run recorded differ from the ones given now: each role's by content where both runs know it
    (one model typed as another path is the same; a folder trained again is not), else by name as typed."""
    out = []
    for role in ("sampler", "scorer"):
        digest = f"{role}_sha256"
        if old.get(digest) is not None and new.get(digest) is not None:
            if old[digest] != new[digest]:
                out.append(f"the {role} model's files (that run: {old.get(role)} {old[digest][:12]}; now: "
                           f"{new.get(role)} {new[digest][:12]})")
        elif old.get(role) != new.get(role):
            out.append(f"the {role} model (that run: {old.get(role)}; now: {new.get(role)})")
    for key in ("dtype", "backend"):
        if old.get(key) != new.get(key):
            out.append(f"the {key} (that run: {old.get(key)}; now: {new.get(key)})")
    return out


def _canonical(config: Any) -> Any:
    """A run's config as compared on resume: tool names in any case are the same tools, as --tools reads them."""
    if isinstance(config, dict) and isinstance(config.get("tools"), list):
        return {**config, "tools": [t.lower() if isinstance(t, str) else t for t in config["tools"]]}
    return config


def _setting_differences(old: Any, new: Any, where: str = "") -> list[str]:
    """The settings that differ between two runs' configs, by their paths (`tools.Calculator.tau_f`)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in list(old) + [k for k in new if k not in old]:
            out += _setting_differences(old.get(key), new.get(key), f"{where}.{key}" if where else str(key))
        return out
    return [] if old == new else [f"{where or 'the settings'} (that run: {json.dumps(old)}; now: {json.dumps(new)})"]


def file_sha256(path: Path) -> str:
    """The file's SHA-256, read in pieces (read whole, a 614 MB input took its size in memory even for --limit 1)."""
    with Path(path).open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
