"""The QA tool: extractive question answering over the WikiSearch corpus (best BM25 passages → best-matching sentence).

Extractive means the answer is copied from the corpus: by default the best-matching sentence; `short_answer` gives
the span of it that the question asks for, as the paper's QA (a retrieval-augmented LM) answered. Plug in another
answerer (any `question -> answer` callable, `short_answer` included) with set_answerer().
"""
from __future__ import annotations

import re
from collections.abc import Callable

from toolcall.errors import ToolError

from . import _corpus, _span

PASSAGES = 3
# Question words and glue that say nothing about which sentence answers.
_STOP = {"the", "and", "was", "were", "is", "are", "did", "does", "do", "what", "which", "who", "whom", "whose", "where",
         "when", "why", "how", "many", "much", "for", "from", "with", "that", "this", "has", "have", "had", "its", "his", "her"}
# Sentences that hold the kind of thing a question word asks for get a bonus.
_KIND = [
    (re.compile(r"^(when|what year|in what year|what date)\b"), re.compile(r"\b(1\d{3}|20\d{2})\b|January|February|March|April|May|June|July|August|September|October|November|December")),
    (re.compile(r"^how (many|much|tall|long|high|far|old|big|large|deep)\b"), re.compile(r"\d")),
    (re.compile(r"^where\b"), re.compile(r"\b(in|at|near|on) [A-Z]")),
    (re.compile(r"^who\b"), re.compile(r"\S\s+[A-Z][a-z]+ [A-Z][a-z]+")),
]
KIND_BONUS = 1.5
#: A question longer than this is no question: each of its words is weighed against every sentence read.
MAX_QUESTION_CHARS = 1_000
#: The longest answer returned: a passage with no sentence break came back whole, up to the registry's cut (~32 K).
MAX_ANSWER_CHARS = 500
_answerer: Callable[[str], str] | None = None


def set_answerer(answerer: Callable[[str], str] | None) -> None:
    """Use `answerer(question) -> answer` instead of the extractive default; None restores the default."""
    global _answerer
    _answerer = answerer


def extractive_answer(question: str) -> str:
    """The corpus sentence that best matches the question."""
    return best_sentence(question) or "No answer found."


def short_answer(question: str) -> str:
    """The span of the best-matching corpus sentence that the question asks for (the sentence where none fits)."""
    sentence = best_sentence(question)
    if sentence is None:
        return "No answer found."
    return _span.answer_span(question, sentence) or sentence


def best_sentence(question: str) -> str | None:
    """The corpus sentence sharing the most (IDF-weighted) words with the question, from the top BM25 passages."""
    hits = _corpus.index().search(question, PASSAGES)
    if not hits:
        return None
    asked = [_corpus.suffix_stem(w) for w in _corpus.words(question) if (len(w) > 2 or w.isdigit()) and w not in _STOP]
    if not asked:
        return None  # "Who?", "Who is he?": nothing to look for (the search matched "who" and answered at random)
    idf = _corpus.index().idf(asked)
    kinds = [pattern for ask, pattern in _KIND if ask.search(question.strip().lower())]
    best, best_score = "", -1.0
    for rank, (passage, _) in enumerate(hits):
        for sentence in _corpus.sentences(passage.text):
            # The title counts, because sentences say "He was born ..." about the passage's subject.
            present = {_corpus.suffix_stem(w) for w in _corpus.words(f"{passage.title} {sentence}")}
            score = sum(idf[w] for w in set(asked) if w in present)
            if score <= 0:
                continue  # shares no word the question asks about: no answer to it
            if kinds and any(k.search(sentence) for k in kinds):
                score *= KIND_BONUS
            score -= 0.01 * rank  # ties go to the better-ranked passage
            if score > best_score:
                best, best_score = sentence, score
    return best or None


def qa(question: str) -> str:
    """Answer a factual question from the local corpus (extractive: returns the best-matching sentence).

    Args:
        question: The question, for example "Where was Joe Biden born?".

    Returns:
        A sentence from the corpus that answers the question, or "No answer found."
    """
    if len(question) > MAX_QUESTION_CHARS:
        raise ToolError(f"question too long ({len(question):,} characters; at most {MAX_QUESTION_CHARS:,}): ask one "
                        "short factual question")
    return _corpus.truncate((_answerer or extractive_answer)(question), MAX_ANSWER_CHARS)
