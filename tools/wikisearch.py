"""The WikiSearch tool: BM25 (bm25s) over a local passage corpus, returning the top snippets."""
from __future__ import annotations

import os

from . import _corpus

TOP_K = 3
MAX_CHARS = 200
SEPARATOR = " | "


def configure(corpus: str | os.PathLike[str] | None = None, *, top_k: int | None = None, max_chars: int | None = None) -> None:
    """Point WikiSearch (and QA) at a corpus file and set how many snippets of what length come back."""
    global TOP_K, MAX_CHARS
    _corpus.configure(corpus)
    if top_k is not None:
        TOP_K = max(1, int(top_k))
    if max_chars is not None:
        MAX_CHARS = max(20, int(max_chars))


def wiki_search(query: str) -> str:
    """Search a local Wikipedia-style corpus with BM25 and return the best matching snippets.

    Args:
        query: The search terms, for example "Ghana flag red meaning".

    Returns:
        Up to three snippets, each "Title: text", separated by " | "; "No result." when nothing matches.
    """
    hits = _corpus.index().search(query, TOP_K)
    if not hits:
        return "No result."
    return SEPARATOR.join(_corpus.truncate(f"{p.title}: {p.text}" if p.title else p.text, MAX_CHARS) for p, _ in hits)
