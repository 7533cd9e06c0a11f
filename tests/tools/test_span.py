"""tools._span and qa.short_answer: the part of a sentence a question asks for, never the question's own words."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from toolcall.tools import _corpus, _span, qa

VICTORIA = ("Conditions on the gold fields were cramped and unsanitary; an outbreak of typhoid at Buckland Valley in "
            "1854 killed over 1,000 miners.")
KARP = ("In 1972, Richard Karp took this idea a leap forward with his landmark paper, \"Reducibility Among "
        "Combinatorial Problems\", in which he showed that 21 diverse problems are NP-complete.")


@pytest.fixture(autouse=True)
def _reset(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(_corpus.ENV_VAR, raising=False)
    yield
    qa.set_answerer(None)


@pytest.mark.parametrize("question, sentence, answer", [
    ("How many miners died in the typhoid outbreak of 1854?", VICTORIA, "over 1,000 miners"),
    ("What were the conditions on the gold fields?", VICTORIA, "cramped and unsanitary"),
    ("When was there an outbreak of typhoid at Buckland Valley?", VICTORIA, "1854"),
    ("Where was there an outbreak of typhoid in 1854?", VICTORIA, "Buckland Valley"),
    ("What paper did Richard Karp write?", KARP, "Reducibility Among Combinatorial Problems"),
    ("Who took this idea a leap forward?", KARP, "Richard Karp"),
])
def test_the_span_the_question_asks_for(question: str, sentence: str, answer: str) -> None:
    assert _span.answer_span(question, sentence) == answer


def test_a_number_carries_its_next_word_not_the_other_number() -> None:
    # 1972 is a number the question does not say, but 21 stands beside the question's words.
    assert _span.answer_span("How many problems did he show were NP-complete?", KARP) == "21 diverse"


def test_the_question_s_own_words_are_never_the_answer() -> None:
    # "1854" is asked about, so the number answered is the other one; a name the question says is not an answer.
    assert _span.answer_span("How many died at Buckland Valley in 1854?", VICTORIA) == "over 1,000 miners"
    assert _span.answer_span("Who is Richard Karp?", "Richard Karp.") is None
    assert _span.answer_span("the of and", VICTORIA) is None


def test_no_year_inside_a_thousands_number() -> None:
    assert _span.answer_span("When did the miners die?", "It killed 1,000 miners.") != "000"


def test_stems_meet_across_inflections() -> None:
    assert _span.stem("introduced") == _span.stem("introduce") == _span.stem("Introduces")
    assert _corpus.suffix_stem("founded") == "found" and _corpus.suffix_stem("introduce") == "introduce"


@pytest.mark.parametrize("question, answer", [
    ("Where was Joe Biden born?", "Scranton, Pennsylvania"),
    ("Where was the Knights of Columbus founded?", "New Haven, Connecticut"),
    ("How tall is Mount Everest?", "8,849 metres"),
    ("Who designed the flag of Ghana?", "Theodosia Okoh"),
    ("When did Apollo 11 land on the Moon?", "July 20, 1969"),
    ("Who first reached the summit of Everest?", "Tenzing Norgay and Edmund Hillary"),
])
def test_short_answers_over_the_demo_corpus(question: str, answer: str) -> None:
    assert qa.short_answer(question) == answer
    assert answer in qa.extractive_answer(question)  # the default still answers with the whole sentence
    qa.set_answerer(qa.short_answer)
    assert qa.qa(question) == answer


def test_short_answer_falls_back_to_the_sentence_and_to_no_answer() -> None:
    assert qa.short_answer("the of and") == "No answer found."
    sentence = qa.extractive_answer("What is the capital city of Australia?")
    assert qa.short_answer("Canberra Australia capital city") == sentence  # nothing asked beyond its own words


def test_long_and_hostile_input_stays_fast() -> None:
    import time

    sentence = "Alpha " * 2000 + "was founded in 1882 by " + "Beta of " * 2000 + "Gamma."
    began = time.perf_counter()
    _span.answer_span("When was Alpha founded? " + "why " * 500, sentence)
    assert time.perf_counter() - began < 5


@pytest.mark.parametrize("question, sentence", [
    ("What did Ann say?", "Ann said \"'\" today."),       # a quotation of a lone apostrophe: a word that stems to nothing
    ("What did Ann say?", "Ann said “’” today."),
    ("’s Bob?", "’ ’s Bob ’"), ("", "Anything at all."), ("Who is Ann?", ""), ("漢字 Ann?", "Ann met 漢字 Bo."),
])
def test_odd_input_gives_a_span_of_the_sentence_or_none(question: str, sentence: str) -> None:
    out = _span.answer_span(question, sentence)
    assert out is None or (out and out in sentence)
