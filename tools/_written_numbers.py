"""Numbers as prose writes them ($1,560.50, 2,800, 12.5%, 3*20=60): where they are, their value and style, and
which of them are quantities rather than years, times, dates, ordinals or labels ("Room 214", "#20417")."""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from decimal import Decimal

CURRENCY = "$€£¥"
CONTEXT = 40        # characters either side of a number that decide its kind
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
#: A month's name, whole or cut ("Sept.", "Jan"), as a regular expression without groups.
MONTH = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|" \
         r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"

# A written number: an optional currency sign, digits with or without thousands separators, decimals, a percent sign.
# Never the tail of a longer number ("1,2" or "3.5.1" are not read from their middle).
NUMBER = re.compile(rf"(?<![\d.,])(?P<cur>[{CURRENCY}]\s?)?(?P<num>\d{{1,3}}(?:,\d{{3}})+(?:\.\d+)?(?!\d|,\d)|\d+(?:\.\d+)?)"
                    r"(?P<pct>\s?%|\s?per ?cent\b)?", re.I)
# Words after which a number names a thing rather than counts it: "Room 214", "aisle 12", "no. 4471", "#20417".
_LABEL_BEFORE = re.compile(
    r"(?:\b(?:rooms?|floors?|aisles?|shelf|shelves|gates?|platforms?|routes?|bus|lines?|chapters?|pages?|steps?|"
    r"levels?|tables?|apartments?|apt|suites?|units?|exits?|buildings?|halls?|kilometers?|kilometres?|km|miles?|"
    r"markers?|no|nos|numbers?|codes?|invoices?|receipts?|orders?|tickets?|flights?|seats?|rows?|tracks?|lanes?|"
    r"highways?|interstate|boxes|lockers?|grades?|versions?|models?|sizes?|channels?|doors?|stations?|bays?|blocks?|"
    r"lots?|wards?|zones?|piers?|terminals?|sections?|articles?|clauses?|verses?|episodes?|seasons?|volumes?|vol|"
    r"parts?|figures?|fig|items?|batch|groups?|teams?|class|stages?|phases?|rounds?|week|day|id|pin|area|district|"
    r"sectors?|windows?|cabin|car|counter|desk|level|lot|plot|house|flat|box|bed|cell|slot|stall|tier|"
    r"question|problem|exercise|lesson|unit|act|scene|psalm|year|form)\.?\s*#?|#|№)\s*$", re.I)
# A number followed by a street word is a house number: "18 Pine Road", "42 Elm Street".
_ADDRESS_AFTER = re.compile(r"\s+(?:[A-Z][a-z]+\s+){0,2}(?:Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Dr|Boulevard|"
                            r"Blvd|Way|Place|Pl|Court|Ct|Square|Sq|Terrace|Highway|Hwy|Parkway|Close|Crescent)\b")
#: The rest of a written sum after a number: operators and numbers up to "=" ("-5=15", " - $5 - 2 = 13").
_EQUATION_AFTER = re.compile(r"(?:\s*[-+*/x\u00d7]\s*\$?\d[\d,.]*){0,8}\s*=(?!=)")
_ORDINAL_AFTER = re.compile(r"(?:st|nd|rd|th)\b", re.I)
_DECADE_AFTER = re.compile(r"'?s\b")
_TIME_AFTER = re.compile(r":\d\d|\s*(?:a\.m\.|p\.m\.|am\b|pm\b|o'clock|o’clock|h\d\d|hrs?\b(?=\s*(?:sharp|$)))", re.I)
# "starts at 8.", "left at 7 in the morning", "open until 10 tonight" (but "sold at 10 each", "divide by 2").
_AT_TIME = re.compile(r"\b(?:at|until|till|around)\s+$", re.I)
_AFTER_A_TIME = re.compile(r"\s*(?:$|[.,;!?)]|\s(?:and|in|tonight|today|tomorrow|sharp|o'clock)\b)", re.I)
_YEAR_BEFORE = re.compile(r"\b(?:in|since|from|by|until|till|year|circa|before|after|during|early|late|mid|"
                          r"spring|summer|autumn|fall|winter)\s+$", re.I)
_WORD_AFTER = re.compile(r"\s+[a-z]")
_DATE_NEAR = re.compile(rf"(?:\b{MONTH}\s+(?:the\s+)?$)|(?:\b{MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+$)", re.I)
_MONTH_AFTER = re.compile(rf"(?:st|nd|rd|th)?\s+(?:of\s+)?{MONTH}(?![a-z])", re.I)
_ISO_DATE = re.compile(r"\b\d{4}-\d\d-\d\d\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b")
# Numbers written in a notation this reader does not take, whose digits are not their value: a decimal comma
# ("€12,50", "2,5 kg": read as 12 and 2) and thousands grouped by a space or an apostrophe ("1 200", "3'000": read
# as 1 and 200). `NUMBER` reads 1,200 whole, so a comma right after the digits it read starts such a tail.
_COMMA_TAIL = re.compile(r",\d")
_GROUPED_RUN = re.compile(r"(?<![\d.,])\d{1,3}(?P<sep>[ \u00a0\u202f\u2009'\u2019])\d{3}(?!\d)(?:(?P=sep)\d{3}(?!\d))*"
                          r"(?![.,]\d)")
# A plain space after a result starts the next line of a worked solution whose line breaks were lost ("= 282 141 +
# 282" is 282, then 141), not a group.
_RESULT_BEFORE = re.compile(r"=\s*[$\u20ac\u00a3\u00a5]?\s*$")


@dataclass(frozen=True)
class WrittenNumber:
    """One number in a text: `start`/`end` span its digits (`end` after a "%"), `text` is its digits as written."""

    start: int
    end: int
    text: str
    value: Decimal
    currency: str = ""
    percent: bool = False
    kind: str = "quantity"   # "quantity", or why it is not one: "year", "time", "date", "ordinal", "label", "signed",
    #                          "unread" (a decimal comma, or thousands grouped by a space: see _COMMA_TAIL)

    @property
    def decimals(self) -> int:
        return len(self.text.split(".")[1]) if "." in self.text else 0

    @property
    def grouped(self) -> bool:
        """Written with thousands separators (1,920)."""
        return "," in self.text

    @property
    def operand(self) -> str:
        """How the number is written inside a Calculator expression: its digits, and "%" for a percentage."""
        return self.text + ("%" if self.percent else "")

    @property
    def quantity(self) -> bool:
        return self.kind == "quantity"


def parse_decimal(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


def find_numbers(text: str) -> list[WrittenNumber]:
    """Every number written in `text`, in order, each with the kind that tells a quantity from a year or a label."""
    dates = [m.span() for m in _ISO_DATE.finditer(text)]
    groups = grouped_runs(text)
    found = []
    for m in NUMBER.finditer(text):
        start, end = m.span("num")
        digits = m.group("num")
        percent = bool(m.group("pct"))
        number = WrittenNumber(start, m.end() if percent else end, digits, parse_decimal(digits),
                               (m.group("cur") or "").strip(), percent)
        kind = _kind(text, number, dates, groups)
        found.append(number if kind == "quantity" else WrittenNumber(**{**number.__dict__, "kind": kind}))
    return found


def _inside(spans: list[tuple[int, int]], at: int) -> bool:
    """Whether `at` lies in one of `spans` (in order, not overlapping): a bisection, so a text of many numbers and
    groups stays linear (a scan of every span per number took 18 s on 120 KB of "1 000 ")."""
    k = bisect.bisect_right(spans, (at, float("inf"))) - 1
    return k >= 0 and spans[k][0] <= at < spans[k][1]


def grouped_runs(text: str) -> list[tuple[int, int]]:
    """Spans of numbers whose thousands are grouped by a space or an apostrophe ("1 200", "3\u202f000", "1'000")."""
    return [m.span() for m in _GROUPED_RUN.finditer(text)
            if not (m.group("sep") == " " and (_RESULT_BEFORE.search(text[max(0, m.start() - 4):m.start()])
                                               or text.startswith("-", m.end())))]


def _kind(text: str, n: WrittenNumber, dates: list[tuple[int, int]], groups: list[tuple[int, int]]) -> str:
    # What decides a kind sits within a few words of the number (and searching a whole prefix would be quadratic).
    start = n.start - len(n.currency)
    before, after = text[max(0, start - CONTEXT):start], text[n.start + len(n.text):n.start + len(n.text) + CONTEXT]
    bare = not n.currency and not n.percent
    if _inside(dates, n.start):
        return "date"
    if _COMMA_TAIL.match(after) or _inside(groups, n.start):
        return "unread"             # "12,50", "1 200", "3'000": not the number the digits alone say
    # Numbers joined by a hyphen are a label ("555-1234", "3-4 kids") unless the run ends in "=": "20-5=15".
    joined = (before[-1:] == "-" and before[-2:-1].isdigit()) or re.match(r"-\$?\d", after)
    if before[-1:].isalpha() or (before[-1:] == "-" and before[-2:-1].isalpha()) \
            or (joined and not _EQUATION_AFTER.match(after)) or re.match(r"\.\d|:\d+(?:[.~+-]\w+)+|[eE][+-]?\d", after):
        return "label"              # "B12", "libusb-1.0", "3.2.1", a Debian epoch "1:4.4.26-1", "42e3"
    if not joined and before[-1:] in ("-", "\u2212") and not before[-2:-1].isalnum():
        return "signed"             # "-42": its value is not the digits' (a call before them would split it)
    if bare and _ORDINAL_AFTER.match(after):
        return "ordinal"
    if bare and (_TIME_AFTER.match(after) or before.endswith(":") and before[-2:-1].isdigit()):
        return "time"
    if bare and (_DATE_NEAR.search(before) or (len(n.text) <= 2 and _MONTH_AFTER.match(after))):
        return "date"
    if (bare and n.decimals == 0 and not n.grouped and len(n.text) == 4 and 1800 <= n.value <= 2100
            and (_DECADE_AFTER.match(after) or _YEAR_BEFORE.search(before) or not _WORD_AFTER.match(after))):
        return "year"
    if bare and n.decimals == 0 and len(n.text) <= 2 and _AT_TIME.search(before) and n.value <= 24 \
            and _AFTER_A_TIME.match(after):
        return "time"
    if bare and (_LABEL_BEFORE.search(before) or _ADDRESS_AFTER.match(after)):
        return "label"
    if bare and _DECADE_AFTER.match(after) and len(n.text) in (2, 4):
        return "year"               # "the 90s"
    return "quantity"


def sentence_starts(text: str) -> list[int]:
    """Character offsets where sentences start: after . ! ? ; or a line break followed by white space (a decimal
    point is never followed by a space)."""
    starts = [0]
    for m in re.finditer(r"[.!?;]+[\"')\]]*\s+|\n+", text):
        starts.append(m.end())
    return starts
