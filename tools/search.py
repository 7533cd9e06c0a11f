"""The Search tool (MOSS's Search plugin): web search through `ddgs`, with back-off on rate limits, a result cache and a test seam."""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from toolcall.errors import MissingDependencyError, ToolError

MAX_RESULTS = 3
RETRIES = 3          # attempts after the first one when rate-limited
BACKOFF = 1.0        # seconds before the first retry; doubles each time
CACHE_SIZE = 256
SNIPPET_CHARS = 300

# The seam: search_function(query, max_results) -> [{"title", "href", "body"}, ...]. Tests install a fake.
SearchFunction = Callable[[str, int], list[dict[str, Any]]]
_search_function: SearchFunction | None = None
sleep: Callable[[float], None] = time.sleep  # replaced in tests so back-off costs no time
_cache: OrderedDict[tuple[str, int], str] = OrderedDict()
_cache_lock = threading.Lock()


class RateLimited(ToolError):
    """The search backend refused for now; a fake search function may raise this to simulate it."""


def set_search_function(func: SearchFunction | None) -> None:
    """Install the function that fetches results (None restores the ddgs one) and empty the cache."""
    global _search_function
    _search_function = func
    clear_cache()


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def ddgs_search(query: str, max_results: int) -> list[dict[str, Any]]:
    """The real backend: DuckDuckGo and others through the `ddgs` package (needs the network)."""
    try:
        from ddgs import DDGS
        from ddgs.exceptions import RatelimitException
    except ImportError as err:
        raise MissingDependencyError("ddgs", "search", "the Search tool") from err
    try:
        return list(DDGS().text(query, max_results=max_results) or [])
    except RatelimitException as err:
        raise RateLimited(str(err) or "rate limited") from err


def _is_rate_limit(err: Exception) -> bool:
    return isinstance(err, RateLimited) or type(err).__name__ == "RatelimitException"


def fetch(query: str, max_results: int = MAX_RESULTS) -> list[dict[str, Any]]:
    """Results for `query`, retrying with exponential back-off while the backend is rate-limited."""
    func = _search_function or ddgs_search
    delay = BACKOFF
    for attempt in range(RETRIES + 1):
        try:
            return func(query, max_results)
        except Exception as err:
            if not _is_rate_limit(err):
                raise
            if attempt == RETRIES:
                raise ToolError(f"the search engine is rate-limiting requests (gave up after {RETRIES + 1} attempts); try again later") from err
            sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def format_results(results: list[dict[str, Any]]) -> str:
    """One snippet per line, whitespace collapsed and long ones cut; "No result." when there are none.

    Each dialect lays the lines out its own way (MOSS numbers them, Toolformer joins them on one line).
    """
    lines = []
    for row in results:
        body = " ".join(str(row.get("body") or row.get("snippet") or row.get("title") or "").split())
        if len(body) > SNIPPET_CHARS:
            body = body[:SNIPPET_CHARS].rsplit(" ", 1)[0] + "…"
        if body:
            lines.append(body)
    return "\n".join(lines) if lines else "No result."


def search(query: str) -> str:
    """Search the web and return the top result snippets.

    Args:
        query: The search query, for example "Scranton Pennsylvania population".

    Returns:
        The top snippets, one per line; "No result." when there are none.
    """
    query = " ".join(query.split())
    if not query:
        raise ToolError("empty query")
    key = (query.lower(), MAX_RESULTS)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    text = format_results(fetch(query, MAX_RESULTS))
    with _cache_lock:
        _cache[key] = text
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return text
