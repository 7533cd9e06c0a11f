"""tools.search: one snippet per line, back-off on rate limits, cache; a fake at the search-function seam, never the network."""
from __future__ import annotations

import builtins
from collections.abc import Iterator
from typing import Any

import pytest
from toolcall.tools import search as search_mod

from toolcall.errors import MissingDependencyError, ToolError


class FakeSearch:
    def __init__(self, fail_times: int = 0, error: Exception | None = None) -> None:
        self.queries: list[tuple[str, int]] = []
        self.fail_times = fail_times
        self.error = error

    def __call__(self, query: str, max_results: int) -> list[dict[str, Any]]:
        self.queries.append((query, max_results))
        if self.error is not None:
            raise self.error
        if len(self.queries) <= self.fail_times:
            raise search_mod.RateLimited("202 Ratelimit")
        return [{"title": "A", "href": "https://a", "body": f"first   result for {query}"},
                {"title": "B", "href": "https://b", "body": "second " + "word " * 100}][:max_results]


@pytest.fixture()
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    waited: list[float] = []
    monkeypatch.setattr(search_mod, "sleep", waited.append)
    yield waited
    search_mod.set_search_function(None)


def test_one_snippet_per_line_and_truncation(sleeps: list[float]) -> None:
    fake = FakeSearch()
    search_mod.set_search_function(fake)
    out = search_mod.search("Scranton  population")
    lines = out.split("\n")
    assert lines[0] == "first result for Scranton population"
    assert lines[1].startswith("second word") and lines[1].endswith("…") and len(lines[1]) <= search_mod.SNIPPET_CHARS + 1
    assert fake.queries == [("Scranton population", 3)]
    assert search_mod.format_results([]) == "No result."
    assert search_mod.format_results([{"title": "", "body": "  "}, {"title": "T"}]) == "T"  # empty rows are dropped


def test_each_dialect_lays_the_snippets_out_its_own_way(sleeps: list[float]) -> None:
    from toolcall.dialects import get_dialect

    search_mod.set_search_function(FakeSearch())
    out = search_mod.search("cats")
    moss, toolformer = get_dialect("moss"), get_dialect("toolformer")
    moss_text = '<|Commands|>: Search("cats")<eoc>'
    closed = moss_text + moss.close(moss.pending(moss_text), [out])
    assert '\n<|1|>: "first result for cats"\n<|2|>: "second word' in closed
    assert moss.parse(closed).calls[0].result == out
    tf_text = "[Search(cats) ->"
    closed = tf_text + toolformer.close(toolformer.pending(tf_text), [out])
    assert closed.startswith("[Search(cats) -> first result for cats | second word") and "\n" not in closed


def test_results_are_cached(sleeps: list[float]) -> None:
    fake = FakeSearch()
    search_mod.set_search_function(fake)
    assert search_mod.search("a b") == search_mod.search("A  B")
    assert len(fake.queries) == 1


def test_rate_limit_backs_off_exponentially_then_succeeds(sleeps: list[float]) -> None:
    fake = FakeSearch(fail_times=2)
    search_mod.set_search_function(fake)
    assert search_mod.search("q").startswith("first result for q\n")
    assert sleeps == [1.0, 2.0] and len(fake.queries) == 3


def test_rate_limit_gives_up_with_an_error(sleeps: list[float]) -> None:
    search_mod.set_search_function(FakeSearch(fail_times=99))
    with pytest.raises(ToolError, match="rate-limiting"):
        search_mod.search("q")
    assert sleeps == [1.0, 2.0, 4.0]


def test_ddgs_rate_limit_exception_is_recognised(sleeps: list[float]) -> None:
    class RatelimitException(Exception):  # same name as ddgs's, as raised by a transport that does not wrap it
        pass

    search_mod.set_search_function(FakeSearch(error=RatelimitException("slow down")))
    with pytest.raises(ToolError, match="rate-limiting"):
        search_mod.search("q")
    search_mod.set_search_function(FakeSearch(error=ValueError("other")))
    with pytest.raises(ValueError, match="other"):
        search_mod.search("q")


def test_registry_turns_failures_into_results(sleeps: list[float]) -> None:
    from toolcall.registry import default_registry

    search_mod.set_search_function(FakeSearch(fail_times=99))
    reg = default_registry(["Search"], entry_points=False)
    result = reg.call("Search", ("q",))
    assert not result.ok and result.text.startswith("Error: Search: the search engine is rate-limiting")


def test_missing_ddgs_gives_a_pip_hint(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    real_import = builtins.__import__

    def no_ddgs(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("ddgs"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ddgs)
    with pytest.raises(MissingDependencyError, match=r"toolcall\[search\]"):
        search_mod.ddgs_search("q", 3)


@pytest.mark.network
def test_real_search() -> None:
    search_mod.set_search_function(None)
    out = search_mod.search("Python programming language")
    assert out != "No result." and "<|" not in out
