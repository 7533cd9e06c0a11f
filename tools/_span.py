"""Answer spans for QA: the part of a corpus sentence that a question asks for (a date, a number, a name, a phrase)."""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from . import _corpus

MAX_PHRASE = 8  # words: a longer stretch of the sentence is a clause, not an answer
# Words that carry no content of their own: they neither show which part of a sentence the question is about nor
# make an answer, so a phrase is trimmed of them at both ends.
FUNCTION_WORDS = frozenset([
    "a", "an", "the", "and", "or", "but", "nor", "of", "in", "on", "at", "to", "for", "from", "by", "with",
    "without", "into", "onto", "over", "under", "about", "as", "than", "then", "that", "this", "these", "those",
    "there", "here", "it", "its", "it's", "he", "she", "they", "them", "their", "his", "her", "him", "we", "our",
    "you", "your", "i", "my", "me", "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did",
    "done", "has", "have", "had", "having", "will", "would", "can", "could", "shall", "should", "may", "might",
    "must", "not", "no", "so", "such", "what", "which", "who", "whom", "whose", "where", "when", "why", "how",
    "many", "much", "also", "very", "more", "most", "some", "any", "each", "every", "all", "both", "either",
    "neither", "other", "another", "one", "ones", "s"
])
CLAUSE_STARTS = frozenset([
    "in", "at", "on", "by", "for", "from", "around", "during", "since", "after", "before", "until", "when", "which",
    "who", "that", "while", "as"
])
_MONTH = (r"(?:January|February|March|April|May|June|July|August|September|October|November|December|"
          r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.?")
_DATE = re.compile(
    rf"\b(?:{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{3,4}}"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+\d{{3,4}}"
    rf"|{_MONTH}\s+\d{{3,4}}|(?:the\s+)?(?:early\s+|late\s+|mid-)?\d{{1,2}}(?:st|nd|rd|th)[\s-]century"
    r"|(?<![\d,.])\d{3,4}s?(?![,.]?\d))\b")
_SPELLED = (r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|"
            r"seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|"
            r"dozen|dozens|hundreds|thousands|millions|half)")
_NUMBER = re.compile(
    r"(?:\b(?:over|about|around|nearly|almost|approximately|roughly|some|up to|more than|less than|fewer than"
    r"|at least)\s+)?"
    rf"(?:[$£€]?\d[\d,]*(?:\.\d+)?|\b{_SPELLED}(?:[\s-]{_SPELLED})*\b)"
    r"(?:\s*(?:%|percent|per cent|million|billion|trillion|thousand|hundred))?"
    r"(?:\s+(?!and\b|or\b|of\b|in\b|to\b|the\b|a\b)[a-z]+)?", re.IGNORECASE)
_CONNECT = r"(?:\s+(?:of|de|du|da|la|le|von|van|der|the|and|y|upon|on)\s+|\s+|-)"
_NAME = re.compile(rf"\b[A-Z][\w'’.\-]*(?:{_CONNECT}[A-Z][\w'’.\-]*)*")
# A place names its region after a comma: "Scranton, Pennsylvania".
_PLACE = re.compile(rf"\b[A-Z][\w'’.\-]*(?:(?:{_CONNECT}|,\s+)[A-Z][\w'’.\-]*)*")
_QUOTED = re.compile(r"\"[^\"]{1,80}\"|“[^”]{1,80}”")
_WORD = re.compile(r"[$£€]?\d[\d,]*(?:\.\d+)?%?|[A-Za-z][\w'’\-]*")
_TOKEN = re.compile(_WORD.pattern + r"|[^\w\s]")  # a word, or one mark of punctuation
_TERM = re.compile(r"\w[\w'’]*")  # a word as a question or candidate is compared by: never an apostrophe alone
# The first words of a question say what kind of answer it wants.
_WANTS = [
    (re.compile(r"^(?:when|(?:in |on )?(?:what|which) (?:year|date|century))\b"), ("date",)),
    (re.compile(r"^(?:how (?:many|much|tall|long|high|far|old|big|large|deep|wide|heavy|fast|often)"
                r"|what (?:percentage|percent|number|amount))\b"), ("number",)),
    (re.compile(r"^(?:who|whom|whose)\b"), ("name",)),
    (re.compile(r"^(?:where|in (?:what|which) (?:city|country|state|place|region))\b"), ("place",)),
]


@dataclass(frozen=True)
class Candidate:
    start: int
    end: int
    text: str
    kind: int = 0  # 0: a date, number, name or quotation; 1: a plain phrase, chosen over those only when nearer


def stem(word: str) -> str:
    """The corpus's suffix_stem of the lower-cased word, and a final "e" dropped so "introduce" meets "introduced"."""
    word = _corpus.suffix_stem(word.lower().strip("'’"))
    return word[:-1] if word.endswith("e") and len(word) > 4 else word


def answer_span(question: str, sentence: str) -> str | None:
    """The span of `sentence` that `question` asks for, or None where no part of it fits.

    The answer is what the sentence says beside the question's own words: of the candidates of the kind the
    question wants (or, for "what"/"which" questions, of any kind and any phrase), the one nearest to where the
    question's words stand in the sentence; a candidate made of the question's own words is never the answer.
    """
    asked = {stem(w) for w in _TERM.findall(question.lower()) if w not in FUNCTION_WORDS}
    if not asked:
        return None
    words = [(m.start(), stem(m.group())) for m in _WORD.finditer(sentence) if m.group().lower() not in FUNCTION_WORDS]
    starts = [s for s, _ in words]
    anchors = [s for s, w in words if w in asked]
    wants = next((kinds for pattern, kinds in _WANTS if pattern.search(question.strip().lower())), ())
    found = _candidates(sentence, wants, asked)
    if not found and wants:
        found = _candidates(sentence, (), asked)
    if not found:
        return None
    return min(found, key=lambda c: _rank(c, anchors, starts)).text


def _candidates(sentence: str, wants: tuple[str, ...], asked: set[str]) -> list[Candidate]:
    kinds = wants or ("date", "number", "name", "quoted", "phrase")
    found: list[Candidate] = []
    numbers: list[Candidate] = []
    if "date" in kinds:
        numbers += _matches(_DATE, sentence)
    if "number" in kinds:
        numbers += _matches(_NUMBER, sentence)
    if "name" in kinds or "place" in kinds:
        names = [c for c in _matches(_NAME, sentence) if c.start > 0 or " " in c.text]
        if "place" in kinds:
            places = [c for c in _matches(_PLACE, sentence) if c.start > 0 or " " in c.text]
            names = [c for c in places if re.search(r"\b(?:in|at|near|from|to|on|into|across|of)\s+(?:the\s+)?$",
                                                    sentence[max(0, c.start - 16):c.start])] or places
        found += names
    if "quoted" in kinds:
        found += _matches(_QUOTED, sentence)
    if "phrase" in kinds:
        found += _phrases(sentence, asked)
    return ([Candidate(c.start, c.end, c.text, 0) for c in numbers if _new_number(c.text, asked)]
            + [c for c in found if _new(c.text, asked)])


def _matches(pattern: re.Pattern[str], sentence: str) -> list[Candidate]:
    out = []
    for m in pattern.finditer(sentence):
        text = m.group().rstrip(" ,;:.")
        if text.strip():
            out.append(Candidate(m.start(), m.start() + len(text), text))
    return out


def _phrases(sentence: str, asked: set[str]) -> list[Candidate]:
    """Stretches of the sentence between the question's words and punctuation, trimmed of function words."""
    out: list[Candidate] = []
    run: list[re.Match[str]] = []
    for m in _TOKEN.finditer(sentence):
        token = m.group()
        if (not token[0].isalnum() and token[0] not in "$£€") or stem(token) in asked:
            out += _trimmed(sentence, run)
            run = []
        else:
            run.append(m)
    out += _trimmed(sentence, run)
    return out


def _trimmed(sentence: str, run: list[re.Match[str]]) -> list[Candidate]:
    while run and run[0].group().lower() in FUNCTION_WORDS:
        run = run[1:]
    while run and run[-1].group().lower() in FUNCTION_WORDS:
        run = run[:-1]
    if len(run) > MAX_PHRASE:
        # A long stretch is cut where a new clause or prepositional phrase starts: "printing with movable metal type
        # | in Europe around 1440".
        cuts = [i for i in range(2, MAX_PHRASE + 1) if run[i].group().lower() in CLAUSE_STARTS]
        return _trimmed(sentence, run[: cuts[0]]) if cuts else []
    if not run:
        return []
    start, end = run[0].start(), run[-1].end()
    return [Candidate(start, end, sentence[start:end], 1)]


def _new(text: str, asked: set[str]) -> bool:
    """Whether a candidate says something the question does not: a content word or number of its own."""
    own = [stem(w) for w in _TERM.findall(text) if w.lower() not in FUNCTION_WORDS]
    return bool(own) and not any(w in asked for w in own if not w[0].isdigit()) and not all(w in asked for w in own)


def _new_number(text: str, asked: set[str]) -> bool:
    """Whether a date or number is not one the question already says (its unit may be the question's word)."""
    own = re.findall(r"\d[\d,.]*\d|\d|" + _SPELLED, text, re.IGNORECASE)
    return bool(own) and not all(stem(w.replace(",", "")) in asked or stem(w) in asked for w in own)


def _rank(c: Candidate, anchors: list[int], starts: list[int]) -> tuple[int, int, int, int]:
    """Nearer to the question's words first (in content words between), then a name or number before a plain
    phrase, then following those words before preceding them, then shorter."""
    before = bisect.bisect_left(anchors, c.start) - 1  # the nearest question word before the candidate
    after = bisect.bisect_left(anchors, c.end)  # and after it (question words inside it do not count)
    gaps = []
    if before >= 0:
        gaps.append((bisect.bisect_left(starts, c.start) - bisect.bisect_right(starts, anchors[before]), 0))
    if after < len(anchors):
        gaps.append((bisect.bisect_left(starts, anchors[after]) - bisect.bisect_left(starts, c.end), 1))
    gap, side = min(gaps) if gaps else (bisect.bisect_left(starts, c.start), 0)
    return (gap, c.kind, side, c.end - c.start)
