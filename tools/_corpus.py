"""The local passage corpus shared by WikiSearch and QA: loading (JSONL or plain text), a lazily built, cached BM25 index."""
from __future__ import annotations

import functools
import math
import os
import re
import threading
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from toolcall.errors import ConfigError, MissingDependencyError
from toolcall.jsonl import content_suffix, read_jsonl, read_lines

ENV_VAR = "TOOLCALL_WIKI_CORPUS"
DEMO_CORPUS = Path(__file__).parent / "data" / "demo_wiki.jsonl"

_configured: Path | None = None
_lock = threading.Lock()
_indexes: dict[tuple[str, float], "Index"] = {}  # (path, mtime) -> index


@dataclass(frozen=True)
class Passage:
    title: str
    text: str


def configure(corpus: str | os.PathLike[str] | None) -> None:
    """Use this corpus file (JSONL with "title"/"text", or plain text with blank-line-separated paragraphs); None resets."""
    global _configured
    if corpus is not None and not Path(corpus).is_file():
        raise ConfigError(f"WikiSearch corpus {corpus} is not a file; give a .jsonl with title/text fields or a .txt of paragraphs")
    _configured = Path(corpus) if corpus is not None else None


def corpus_path() -> Path:
    """configure()'d path, else $TOOLCALL_WIKI_CORPUS, else the small demo corpus shipped with toolcall."""
    if _configured is not None:
        return _configured
    env = os.environ.get(ENV_VAR)
    if env:
        if not Path(env).is_file():
            raise ConfigError(f"{ENV_VAR}={env} is not a file")
        return Path(env)
    return DEMO_CORPUS


#: The most a corpus may hold, decompressed. The index takes several times its text in memory, and a small .gz can
#: expand to gigabytes; past this a corpus is read no further.
MAX_CORPUS_BYTES = 4 * 1024**3
#: A passage longer than this is searched as several: one giant passage (a .txt without blank lines, a record of a
#: whole book) made the index take twenty times its text, and a hit on it returns nothing a reader can use.
MAX_PASSAGE_CHARS = 20_000


def iter_passages(path: Path) -> Iterator[Passage]:
    """The corpus's passages, read a line at a time (JSONL with "title"/"text", or plain text with blank-line-separated
    paragraphs), each at most MAX_PASSAGE_CHARS (a longer one cut at white space into several, titled alike)."""
    if content_suffix(path) in (".jsonl", ".json"):   # wiki.jsonl.gz too: read_lines decompresses it
        for _, row in read_jsonl(path, "corpus", max_bytes=MAX_CORPUS_BYTES):
            body = str(row.get("text") or row.get("contents") or "").strip()
            if body:
                title = str(row.get("title") or "").strip()
                yield from (Passage(title, piece) for piece in _pieces(body))
        return
    block: list[str] = []
    size = 0
    for _, line in read_lines(path, "corpus", max_bytes=MAX_CORPUS_BYTES):
        if line.strip():
            block.append(line)
            size += len(line)
            if size < 8 * MAX_PASSAGE_CHARS:   # a paragraph's text, bounded: cut then into pieces of about equal size
                continue
        if block:
            yield from (Passage("", piece) for piece in _pieces(" ".join("".join(block).split())))
            block, size = [], 0
    if block:
        yield from (Passage("", piece) for piece in _pieces(" ".join("".join(block).split())))


_LAST_SPACE = re.compile(r".*\s", re.S)


def _pieces(text: str) -> Iterator[str]:
    """`text` in pieces of at most MAX_PASSAGE_CHARS and about equal length (no short tail piece: a 20,050-character
    text is two of ~10,000), each cut at the last white space before its end where there is one. Read by offset: cut
    off the front piece by piece, 64 MB took 147 s."""
    start = 0
    while len(text) - start > MAX_PASSAGE_CHARS:
        left = len(text) - start
        size = -(-left // -(-left // MAX_PASSAGE_CHARS))   # the rest in equal pieces of at most the limit
        end = start + size
        space = _LAST_SPACE.match(text, start + size // 2, end)
        cut = space.end() if space else end
        piece = text[start:cut].strip()
        if piece:
            yield piece
        start = cut
    rest = text[start:].strip()
    if rest:
        yield rest


def load_passages(path: Path) -> list[Passage]:
    passages = list(iter_passages(path))
    if not passages:
        raise ConfigError(f"corpus {path} holds no passages")
    return passages


def check() -> int:
    """How many passages the corpus searched now holds, read through without keeping them: what a process that
    will not search it checks (a data-gen run's Ray driver, whose actors search; indexing there took the corpus's
    index in the driver's memory for nothing)."""
    path = corpus_path()
    count = sum(1 for _ in iter_passages(path))
    if not count:
        raise ConfigError(f"corpus {path} holds no passages")
    return count


class Index:
    """BM25 (bm25s) over title + text of each passage."""

    def __init__(self, passages: list[Passage], path: Path | str = "given") -> None:
        try:
            import bm25s
        except ImportError as err:
            raise MissingDependencyError("bm25s", None, "WikiSearch and QA") from err
        self.bm25s = bm25s
        self.passages = passages
        self.retriever = bm25s.BM25()
        tokens = bm25s.tokenize([f"{p.title}. {p.text}" for p in passages], stopwords="en", show_progress=False)
        if not tokens.vocab:   # bm25s raises a bare ValueError (max() of an empty sequence) on it
            raise ConfigError(f"corpus {path} holds no word to search by (only stop words, single characters or punctuation); "
                              "give passages of text")
        self.retriever.index(tokens, show_progress=False)
        self._frequency: Counter[str] | None = None
        self._frequency_lock = threading.Lock()

    def idf(self, query_words: list[str]) -> dict[str, float]:
        """Inverse document frequency of each query word over the passages (rarer words weigh more). The passages'
        word counts are made once: made on every call, a QA call on a 20,000-passage corpus took seconds, and one
        with a long question ran on past its time limit."""
        with self._frequency_lock:
            if self._frequency is None:
                self._frequency = Counter(w for p in self.passages for w in set(words(f"{p.title} {p.text}")))
            frequency = self._frequency
        n = len(self.passages)
        return {w: math.log(1 + (n + 1) / (1 + frequency[w])) for w in set(query_words)}

    def search(self, query: str, k: int) -> list[tuple[Passage, float]]:
        tokens = self.bm25s.tokenize([query], stopwords="en", show_progress=False)
        if not any(len(ids) for ids in tokens.ids):
            return []
        k = min(k, len(self.passages))
        docs, scores = self.retriever.retrieve(tokens, k=k, show_progress=False)
        return [(self.passages[int(d)], float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]


def index() -> Index:
    """The index for the current corpus, built on first use and kept until the file changes. The demo corpus is
    said once: a corpus made or an answer given from its 34 passages is rarely what was meant."""
    path = corpus_path()
    if path == DEMO_CORPUS:
        _say_demo()
    key = (str(path.resolve()), path.stat().st_mtime)
    with _lock:
        found = _indexes.get(key)
        if found is None:
            # An edited file's older indexes go: each edit of a served corpus kept one more (30 MB each for 9 MB).
            for old in [k for k in _indexes if k[0] == key[0]]:
                del _indexes[old]
            found = _indexes[key] = Index(load_passages(path), path)
        return found


@functools.cache
def _say_demo() -> None:
    warnings.warn(f"toolcall: WikiSearch and QA search the demo corpus of 34 passages shipped with toolcall; give "
                  f"--wiki-corpus FILE (or ${ENV_VAR}) for your own passages", RuntimeWarning, stacklevel=4)


def suffix_stem(word: str) -> str:
    """A crude suffix strip so "landed" meets "land" and "founded" meets "found"."""
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def truncate(text: str, max_chars: int) -> str:
    """Cut at a word boundary and mark the cut with an ellipsis."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"


def sentences(text: str) -> list[str]:
    # No split after an initial ("Michael J. McGivney") - a capital letter alone before the full stop.
    return [s.strip() for s in re.split(r"(?<![\s.][A-Z]\.)(?<=[.!?])\s+(?=[A-Z0-9\"'])", text) if s.strip()]
