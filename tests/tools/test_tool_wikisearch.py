"""tools.wikisearch and tools.qa: BM25 over the demo corpus or a user's JSONL/plain-text corpus; extractive answers."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from toolcall.tools import _corpus, qa, wikisearch

from toolcall.errors import ConfigError


@pytest.fixture(autouse=True)
def _reset(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(_corpus.ENV_VAR, raising=False)
    yield
    wikisearch.configure(None, top_k=3, max_chars=200)
    qa.set_answerer(None)


def test_demo_corpus_works_out_of_the_box() -> None:
    out = wikisearch.wiki_search("Ghana flag red meaning")
    snippets = out.split(" | ")
    assert snippets[0].startswith("Flag of Ghana: The flag of Ghana has three horizontal stripes")
    assert len(snippets) <= 3 and all(len(s) <= 201 for s in snippets)
    assert wikisearch.wiki_search("zzzz qqqq") == "No result."


def test_configured_jsonl_and_text_corpora(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{"title": "Alpha", "text": "Alpha is the first letter of the Greek alphabet."},
            {"title": "Omega", "text": "Omega is the last letter of the Greek alphabet."}]
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    wikisearch.configure(jsonl, top_k=1, max_chars=30)
    assert wikisearch.wiki_search("last letter") == "Omega: Omega is the last…"

    text = tmp_path / "c.txt"
    text.write_text("Zebras have black and white stripes.\n\nLions live in prides\nin Africa.\n")
    wikisearch.configure(None, top_k=1, max_chars=200)
    monkeypatch.setenv(_corpus.ENV_VAR, str(text))
    assert wikisearch.wiki_search("where do lions live") == "Lions live in prides in Africa."
    assert qa.qa("What stripes do zebras have?") == "Zebras have black and white stripes."


def test_a_compressed_jsonl_corpus_is_read_as_its_rows(tmp_path: Path) -> None:
    import gzip

    # Read as text once files were decompressed, it was one passage of raw JSON.
    with gzip.open(tmp_path / "wiki.jsonl.gz", "wt", encoding="utf-8") as fh:
        for title, body in (("Paris", "Paris is the capital of France."), ("Berlin", "Berlin is the capital of Germany.")):
            fh.write(json.dumps({"title": title, "text": body}) + "\n")
    assert _corpus.load_passages(tmp_path / "wiki.jsonl.gz") == [
        _corpus.Passage("Paris", "Paris is the capital of France."),
        _corpus.Passage("Berlin", "Berlin is the capital of Germany.")]
    wikisearch.configure(tmp_path / "wiki.jsonl.gz", top_k=1, max_chars=200)
    assert wikisearch.wiki_search("capital of Germany") == "Berlin: Berlin is the capital of Germany."


def test_index_is_built_once_and_rebuilt_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("Cats purr.\n\nDogs bark.\n")
    wikisearch.configure(path)
    first = _corpus.index()
    assert _corpus.index() is first
    path.write_text("Cats purr.\n\nDogs bark.\n\nCows moo loudly.\n")
    import os

    os.utime(path, (1, 1))
    assert _corpus.index() is not first and "Cows moo loudly." in wikisearch.wiki_search("cows moo")


def test_bad_corpus_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="is not a file"):
        wikisearch.configure(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json}\n")
    wikisearch.configure(bad)
    with pytest.raises(ConfigError, match="bad.jsonl:1: not valid JSON"):
        wikisearch.wiki_search("x")
    bad.write_text('["a list"]\n')
    with pytest.raises(ConfigError, match="bad.jsonl:1: each line must be a JSON object"):
        wikisearch.wiki_search("x")
    text = tmp_path / "paragraphs.txt"
    text.write_bytes(b"Cows moo.\n\nCaf\xe9 au lait.\n")
    wikisearch.configure(text)
    with pytest.raises(ConfigError, match=r"paragraphs.txt:3:4: corpus is not UTF-8 text"):
        wikisearch.wiki_search("x")


@pytest.mark.parametrize("question, answer", [
    ("Where was Joe Biden born?", "He was born in Scranton, Pennsylvania, on November 20, 1942."),
    ("Where was the Knights of Columbus founded?", "It was founded by Father Michael J. McGivney in New Haven, Connecticut, in 1882."),
    ("How tall is Mount Everest?", "Its height is 8,849 metres according to a survey announced in 2020."),
    ("Who designed the flag of Ghana?", "It was designed by Theodosia Okoh and adopted in 1957."),
    ("What is the capital of Australia?", "Canberra is the capital city of Australia."),
])
def test_qa_is_extractive_over_the_demo_corpus(question: str, answer: str) -> None:
    assert qa.qa(question) == answer


@pytest.mark.parametrize("question", ["Who?", "Who is he?", "What is it?", "Who was it?"])
def test_qa_answers_nothing_to_a_question_that_names_nothing_in_the_corpus(question: str) -> None:
    """A question with no word to look for (or none the corpus has) has no answer here; "Who?" got a random sentence
    about Marie Curie, "Who is he?" one about Joe Biden."""
    assert qa.qa(question) == "No answer found."


def test_qa_answerer_is_pluggable() -> None:
    qa.set_answerer(lambda q: f"answer to {q}")
    assert qa.qa("why?") == "answer to why?"
    qa.set_answerer(None)
    assert qa.qa("the of and") == "No answer found."


def test_through_the_registry() -> None:
    from toolcall.registry import default_registry

    reg = default_registry(["WikiSearch", "QA"], entry_points=False)
    # An unquoted question split at its comma by a dialect still reaches QA whole.
    assert reg.call("QA", ("Where was Joe Biden born", "the president?")).text.startswith("He was born in Scranton")
    assert reg.call("wikisearch", ("Apollo 11 Moon landing",)).text.startswith("Apollo 11: ")


def test_an_edited_corpus_keeps_one_index(tmp_path: Path) -> None:
    # Each edit of a served corpus kept one more index for good (30 MB each for a 9 MB corpus).
    import os

    path = tmp_path / "c.txt"
    wikisearch.configure(path.write_text("Cats purr.\n") and path)
    for step in range(3):
        path.write_text("Cats purr.\n\n" + "Dogs bark.\n\n" * (step + 1))
        os.utime(path, (step + 10, step + 10))
        _corpus.index()
    assert [k for k in _corpus._indexes if k[0] == str(path.resolve())] == [(str(path.resolve()), 12.0)]


def test_qa_counts_the_corpus_words_once_and_bounds_its_question_and_answer(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # Every call re-read the whole corpus (3 s a call on 100,000 passages, and a long question ran on past the
    # limit); a passage with no sentence break came back whole.
    path = tmp_path / "c.jsonl"
    rows = [{"title": "Cats", "text": "Cats purr when they are content."},
            {"title": "Walls", "text": "bricks and mortar " * 400}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    wikisearch.configure(path)
    counted: list[str] = []
    real_words = _corpus.words
    monkeypatch.setattr(_corpus, "words", lambda text: counted.append(text) or real_words(text))
    assert qa.qa("When do cats purr?") == "Cats purr when they are content."
    read = len(counted)
    qa.qa("What do cats do?")
    assert len(counted) - read <= 8   # the question and the best passages' sentences, not every passage again
    answer = qa.qa("What are walls made of, bricks?")
    assert len(answer) <= qa.MAX_ANSWER_CHARS + 1 and answer.endswith("…")
    from toolcall.errors import ToolError

    with pytest.raises(ToolError, match="question too long"):
        qa.qa("why " * 1_000)


def test_the_demo_corpus_is_said_once_and_a_users_corpus_not_at_all(tmp_path: Path) -> None:
    _corpus._say_demo.cache_clear()
    with pytest.warns(RuntimeWarning, match=r"demo corpus of 34 passages .* --wiki-corpus FILE"):
        wikisearch.wiki_search("Ghana flag")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wikisearch.wiki_search("Joe Biden")   # said already
        own = tmp_path / "own.jsonl"
        own.write_text(json.dumps({"title": "Zorblax", "text": "Zorblax is a moon of Quux."}) + "\n")
        wikisearch.configure(own)
        assert wikisearch.wiki_search("Zorblax moon") == "Zorblax: Zorblax is a moon of Quux."


@pytest.mark.parametrize(("name", "content"), [("stop.txt", "the and of\n\nis a\n"),
                                               ("one.jsonl", '{"title": "a", "text": "5"}\n')])
def test_a_corpus_with_no_word_to_search_by_is_one_error(tmp_path: Path, name: str, content: str) -> None:
    # bm25s raised a bare ValueError (max() arg is an empty sequence) from inside its index.
    (tmp_path / name).write_text(content)
    wikisearch.configure(tmp_path / name)
    with pytest.raises(ConfigError, match=rf"corpus .*{name} holds no word to search by"):
        _corpus.index()


@pytest.mark.parametrize(("name", "content", "message"), [
    ("u16.txt", "Paris is the capital of France.\n\nBerlin is the capital of Germany.\n".encode("utf-16-le"),
     r"u16\.txt:1:2: corpus holds a NUL byte \(0x00\), and text files hold none; the file looks like UTF-16 \(a NUL "
     r"at every other byte\): save it as UTF-8"),
    ("nul.jsonl", b'{"title": "Paris", "text": "Paris is the capital of France."}\n{"text": "Berlin\x00"}\n',
     r"nul\.jsonl:2:17: corpus holds a NUL byte \(0x00\), and text files hold none"),
])
def test_a_corpus_holding_nul_bytes_is_one_error_at_its_line(tmp_path: Path, name: str, content: bytes,
                                                             message: str) -> None:
    """A UTF-16 .txt without a byte-order mark was read as passages of single letters."""
    (tmp_path / name).write_bytes(content)
    wikisearch.configure(tmp_path / name)
    for read in (_corpus.index, _corpus.check):
        with pytest.raises(ConfigError, match=message):
            read()
    escaped = tmp_path / "escaped.jsonl"   # JSON's escape of U+0000 is no NUL byte in the file
    escaped.write_text(json.dumps({"title": "Paris", "text": "Paris is the capital of France.\u0000"}) + "\n")
    assert _corpus.load_passages(escaped) == [_corpus.Passage("Paris", "Paris is the capital of France.\x00")]


def test_a_long_passage_is_searched_as_several(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A .txt without blank lines was one passage: 356 KB of gzip took 2 GB to index, and a hit on it returned its start.
    monkeypatch.setattr(_corpus, "MAX_PASSAGE_CHARS", 60)
    text = tmp_path / "lines.txt"
    text.write_text("".join(f"Line {i} tells of the river number {i}.\n" for i in range(10)))
    passages = _corpus.load_passages(text)
    assert len(passages) > 1 and all(len(p.text) <= 60 for p in passages)
    assert " ".join(p.text for p in passages) == " ".join(text.read_text().split())
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"title": "Book", "text": "word " * 50}) + "\n")
    book = _corpus.load_passages(rows)
    assert len(book) == 5 and {p.title for p in book} == {"Book"} and all(len(p.text) <= 60 for p in book)
    # About equal pieces, cut at any white space, without a short tail: 61 characters are two of ~30.
    assert [len(p) for p in _corpus._pieces("a\tb\n" * 15 + "c")] == [29, 31]


def test_a_corpus_past_its_size_bound_is_read_no_further(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_corpus, "MAX_CORPUS_BYTES", 1000)
    for name in ("big.txt", "big.jsonl"):
        line = "Some words of text.\n" if name.endswith(".txt") else json.dumps({"text": "Some words."}) + "\n"
        (tmp_path / name).write_text(line * 200)
        with pytest.raises(ConfigError, match="longer than 1,000 bytes"):
            _corpus.load_passages(tmp_path / name)
