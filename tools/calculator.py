"""The Calculator tool (MOSS calls it Calculate): arithmetic written by a model, parsed by a whitelist, rounded like the paper."""
from __future__ import annotations

import bisect
import itertools
import json
import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation

from toolcall.errors import ToolError
from toolcall.tool_type import Proposal

from ._mathparse import format_number, parse_items
from ._written_numbers import CURRENCY, WrittenNumber, find_numbers, parse_decimal, sentence_starts


def _without_trailing(text: str) -> str:
    """`text` without the spaces, `=` and `?` models add after an expression ("27 + 4 * 2 =", "3*4?"). A linear
    scan: the pattern `[\\s=?]+$` is retried from every position of a long run of them, quadratic before the
    length limit is even checked (20,000 `=` took 4 s)."""
    end = len(text)
    while end and (text[end - 1] in "=?" or text[end - 1].isspace()):
        end -= 1
    return text[:end]


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression and return the result rounded to two decimals.

    Accepts + - * / ^ (or **), parentheses, percentages like 11.4%, thousands separators like 658,893,
    x, × and ÷ as operators, and functions such as sqrt, log, sin and factorial.

    Args:
        expression: The arithmetic expression to evaluate, for example "400 / 1400".

    Returns:
        The value, rounded to two decimal places, without ".0" for whole numbers.
    """
    text = _without_trailing(expression.strip().strip("\"'`"))
    if not text:
        raise ToolError("empty expression; write one like 27 + 4 * 2")
    items = parse_items(text, symbols=False)
    if len(items) != 1 or items[0][1] is not None:
        raise ToolError(f"expected one expression without '=' or ',' (a number like 1,234 needs groups of three digits), got {text!r}")
    return format_number(items[0][0])


# ------------------------------------------------------------------------------------------------ number style

_FOLLOWING_NUMBER = re.compile(rf"\s*[{CURRENCY}]?\s?(\d{{1,3}}(?:,\d{{3}})+(?:\.\d+)?(?![\d,])|\d+(?:\.\d+)?)")


def restyle(result: str, following: str) -> str:
    """`result` written the way the number that starts `following` is written, when the two are the same value:
    "2800" before "2,800" becomes "2,800", "1560.5" before "$1,560.50" becomes "1,560.50". A different value
    (or no number there) leaves `result` as it is: the style changes, never the value."""
    m = _FOLLOWING_NUMBER.match(following)
    if m is None:
        return result
    try:
        same = Decimal(result.strip()) == parse_decimal(m.group(1))
    except InvalidOperation:
        return result
    return m.group(1) if same else result


# ------------------------------------------------------------------------------------------------ proposals

OPERANDS_BACK = 6          # the quantities nearest before a number that may be its operands
THREE_OPERANDS_BACK = 4    # a op b op c only over the nearest four, and only where no a op b gives the number
SENTENCES_BACK = 1         # operands come from the number's sentence and the one before it ...
CHARS_BACK = 100           # ... or from the last 100 characters (receipts write one short sentence per line)
CUE_REACH = 80             # cue words are looked for this many characters before a number
# A number announced as the answer ("The answer is 51.", "Answer: $12") answers the whole text before it (a word
# problem's quantities sit in its earlier sentences), so its operands may be any quantities written before it.
_ANSWER_CUE = re.compile(rf"\banswer(?:\s+is|\s*:)\s*[{CURRENCY}]?$", re.I)
_EQUALS = re.compile(r"(?:=|\bequals\b|\bis\b|\bare\b|\bmakes\b|\bgives\b)\s*$", re.I)
# The tail of a written expression: numbers, operators, parentheses ("2*(8+5)", "23 times 2", "$3.75 x 2").
_EXPRESSION_TAIL = re.compile(rf"(?:[\d.,()%{CURRENCY}+\-*/×·÷−–\s]|\btimes\b|\bplus\b|\bminus\b|\bdivided by\b|"
                              r"\bmultiplied by\b|(?<=[\d)])\s*[xX]\s*(?=[\d(]))+$")
_WORD_OPS = (("multiplied by", "*"), ("divided by", "/"), ("times", "*"), ("plus", "+"), ("minus", "-"), ("×", "*"),
             ("·", "*"), ("÷", "/"), ("−", "-"), ("–", "-"))
_EXPRESSION_TOKEN = re.compile(r"\d[\d,]*(?:\.\d+)?%?|[()+\-*/]")
_APPROX = re.compile(rf"\b(?:about|roughly|approximately|approx\.?|around|nearly|almost|some|close to|just over|"
                     rf"just under|~|≈)\s*[{CURRENCY}]?$", re.I)
# Words that announce a computed number right before it ("so she has 36", "a total of $74", "that is 2.5 hours") ...
_CUE_BEFORE = re.compile(rf"(?:=|,\s*or\b|\b(?:so|thus|therefore|hence|total|totals|totaling|totalling|subtotal|"
                         r"altogether|overall|combined|sum|(?:which|that|this|it|what)(?:'s| is| was| gives| gave| makes| "
                         r"made| means| leaves| comes to| came to| adds up to| works out (?:to|at))|makes it|comes? to|"
                         r"came to|bringing|brings?|brought|adds? up to|works? out (?:to|at)|equals?|remain|remains|"
                         r"remaining|leaving|saving|savings|change|difference|average|still|in all|reaching|reaches))"
                         rf"(?:\s+[\w'-]+){{0,3}}[\s,:]*[{CURRENCY}]?$", re.I)
# ... or right after it ("375 km in all", "$21 altogether", "$0.38 in change").
_CUE_AFTER = re.compile(r"^[^\d.,;:!?]{0,30}?\b(?:in all|altogether|in total|total|combined|overall|left|remaining|"
                        r"back|in change|all together|together)\b", re.I)
_UNIT_WORDS = re.compile(r"\s*-?\s*([A-Za-z]+)(?:\s+([A-Za-z]+))?")
_NOT_UNITS = frozenset(["a", "an", "the", "of", "and", "or", "to", "in", "on", "at", "for", "per", "each", "with", "is", "are", "was", "were", "be", "from", "by", "so", "that", "this", "it", "its", "their", "his", "her", "our", "my", "your", "more", "less", "than", "new", "old", "about", "as", "if", "then", "but", "every"])


# Numbers a calculation may use without the text writing them: halving, doubling, percentages, thousands.
FREE_CONSTANTS = frozenset(Decimal(v) for v in (1, 2, 100, 1000))
_EXPRESSION_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?|\.\d+")


#: Numbers that name or date a thing rather than count it: never a calculation's operand ("libxkbcommon (1.3.1-1)":
#: SmolLM2 wrote `[Calculator(1.3-1) -> 0.3]` into a changelog's version).
NOT_OPERANDS = frozenset({"label", "date", "unread"})


def operands(before: str) -> list[WrittenNumber]:
    """The numbers written in `before` that a calculation may use: all but labels ("Room 214", versions, phone
    numbers) and dates."""
    return [n for n in find_numbers(before) if n.kind not in NOT_OPERANDS]


def calculator_admissible(args: tuple[object, ...], before: str) -> bool:
    """Whether one who has read only `before` could write this calculation: each of its numbers is written there as
    an operand (1,240 and 1240 alike; `operands`) or is a free constant (1, 2, 100, 1,000), and at least one is
    written there. A model sampling with the whole text in view copies numbers written after the call ("Kira counted
    [Calculator(352 / 22) -> 16] 16 jars of 22 cookies: 352"), and a calculation of free constants alone computes
    nothing the text says (SmolLM2 wrote `Tim gets [Calculator((100*2)*2 + 100*2) -> 600]` where no number was
    written yet)."""
    written = {n.value for n in operands(before)}
    uses_text = False
    for token in _EXPRESSION_NUMBER.findall(" ".join(str(a) for a in args)):
        try:
            value = parse_decimal(token)
        except InvalidOperation:
            return False
        if value in written:
            uses_text = True
        elif value not in FREE_CONSTANTS:
            return False
    return uses_text


#: At most this many distinct numbers, the last ones written before a call, make up its admissible grammar: a long
#: text's early numbers are rarely a late calculation's operands, and the grammar stays small.
ADMISSIBLE_NUMBERS = 64
# How the arithmetic grammar writes a number (grammars/arithmetic.lark NUMBER): a spelling outside it ("007", 13
# digits) is left out, so the restricted grammar stays a subset of what the Calculator evaluates.
_GRAMMAR_NUMBER = re.compile(r"(0|[1-9][0-9]{0,11})(\.[0-9]{1,6})?|[1-9][0-9]{0,2}(,[0-9]{3}){1,3}(\.[0-9]{1,6})?")
_FREE_SPELLINGS = ("1", "2", "100", "1000", "1,000")
#: The admissible grammar's rules over WRITTEN numbers (those written before the call), ANY number (those and the free
#: constants) and their nonzero spellings: every rule has a w-twin that holds at least one WRITTEN number, and `start`
#: is a w-sum or w-product with an operator at its top level (it computes, and about the text). The shapes are those
#: of grammars/arithmetic.lark: a change there must be made here too (the tests walk this grammar and check that the
#: tool's own grammar accepts every walk).
_ADMISSIBLE_RULES = """\
start: wproduct (("+" | "-") product)+ | product (("+" | "-") product)* ("+" | "-") wproduct (("+" | "-") product)* | wfactor mulpart+ | factor mulpart* wmulpart mulpart*
?sum: product (("+" | "-") product)*
wsum: (product ("+" | "-"))* wproduct (("+" | "-") product)*
?product: factor mulpart*
wproduct: wfactor mulpart* | factor mulpart* wmulpart mulpart*
mulpart: ("*" | "x" | "×") factor | "/" divisor
wmulpart: ("*" | "x" | "×") wfactor | "/" wdivisor
?factor: ANY "%"? | "-" factor | "(" sum ")"
wfactor: WRITTEN "%"? | "-" wfactor | "(" wsum ")"
?divisor: ANY_NONZERO "%"? | "-" divisor | "(" sum ")"
wdivisor: {written_divisor}"-" wdivisor | "(" wsum ")"
"""


def calculator_admissible_grammar(before: str) -> str:
    """The Calculator's argument grammar restricted to what one who has read only `before` could write, so that every
    expression it accepts passes `calculator_admissible`: the numbers written there (the last ADMISSIBLE_NUMBERS
    distinct values), each as written ("35,000", "2.50") and plain ("35000", "2.5"), and the free constants; at
    least one written number, a divisor that is not zero, and an operator at the top level (the expression
    computes). The shapes are those of grammars/arithmetic.lark (+ - * / x ×, unary minus, parentheses, percent).
    "" where no number is written yet: no calculation is admissible there."""
    values: dict[Decimal, set[str]] = {}
    for n in reversed(operands(before)):
        if n.value in values or len(values) < ADMISSIBLE_NUMBERS:
            values.setdefault(n.value, set()).update((n.text, _plain(n.value)))
    written = sorted((value, s) for value, group in values.items() for s in group if _GRAMMAR_NUMBER.fullmatch(s))
    if not written:   # nothing to compute about yet: free constants alone compute nothing the text says
        return ""
    free = [(parse_decimal(s), s) for s in _FREE_SPELLINGS if parse_decimal(s) not in values]
    nonzero = [(v, s) for v, s in written if v != 0]
    terminals = {"WRITTEN": written, "WRITTEN_NONZERO": nonzero, "ANY": written + free, "ANY_NONZERO": nonzero + free}
    rules = _ADMISSIBLE_RULES.format(written_divisor='WRITTEN_NONZERO "%"? | ' if nonzero else "")
    lines = [rules.rstrip("\n")] + [f"{name}: {' | '.join(json.dumps(s) for _, s in pairs)}"
                                     for name, pairs in terminals.items() if pairs]
    return "\n".join(lines) + "\n"


def _plain(value: Decimal) -> str:
    """A number without thousands separators or trailing decimal zeros: 35,000 -> "35000", 2.50 -> "2.5"."""
    return format(value.normalize(), "f") if value != 0 else "0"


def calculator_proposer(text: str) -> list[Proposal]:
    """Calculator calls for the numbers of `text` that follow from earlier ones, each placed where the number starts.

    A number written after an expression ("3*20=60", "2*(8+5)=26", "23 times 2 is 46") gets that expression when
    it evaluates to the number. Any other quantity gets the expressions a op b (+ - * /, and percentages) over the
    nearest quantities before it (its sentence and the one before, or the last 100 characters) whose result is
    the number as written (exactly, or to the decimals the text writes, or rounded after "about"); a op b op c
    only where no a op b fits. Years, times, dates, ordinals and labels ("Room 214") are neither operands nor
    results. The score (0 to 1) weighs the evidence that the number is computed rather than a coincidence: a cue
    word ("so", "total", "in all"), the same unit as an earlier number ("36 pencils" after "12 pencils"), near
    operands, two of them rather than three, and how often a op b of the same operands would hit a number that
    size by chance; a value the text already wrote ("it is still 25") scores lower.
    """
    numbers = find_numbers(text)
    starts = sentence_starts(text)
    sentence = [bisect.bisect_right(starts, n.start) - 1 for n in numbers]
    written, inside = _written_expressions(text, numbers)
    units = [_units(text, n) for n in numbers]
    # Where each unit and each quantity's value is first written: "an earlier number has it" in constant time, so a
    # long text costs linear time, not a pass over every earlier number per number.
    unit_first: dict[str, int] = {}
    for i, named in enumerate(units):
        for unit in named:
            unit_first.setdefault(unit, i)
    value_first: dict[Decimal, int] = {}
    for i, n in enumerate(numbers):
        if n.quantity:
            value_first.setdefault(n.value, i)
    out: list[Proposal] = []
    for t, target in enumerate(numbers):
        if not target.quantity or (t in inside and t not in written):
            continue
        if t in written:
            out.append(Proposal(target.start, (written[t],), 1.0))
            continue
        before = text[max(0, target.start - CUE_REACH):target.start]
        answer = _ANSWER_CUE.search(before) is not None
        window = _operands(numbers, sentence, t, answer)
        if not window:
            continue
        approx = _APPROX.search(before) is not None
        found = [(expr, far, 2) for expr, value, far in _two_operands(window, target) if _equal(value, target, approx)]
        if not found:
            found = [(expr, far, 3) for expr, value, far in _three_operands(window[-THREE_OPERANDS_BACK:], target)
                     if _equal(value, target, approx)]
        if not found:
            continue
        evidence = (0.2 if answer or _CUE_BEFORE.search(before) else 0.15 if _CUE_AFTER.match(text, target.end) else 0.0)
        if ((target.currency and any(n.currency == target.currency for n in window))
                or any(unit_first[u] < t for u in units[t])):
            evidence += 0.2
        if value_first.get(target.value, t) < t:
            evidence -= 0.25
        evidence -= 0.3 * _chance(window, target)
        best: dict[str, float] = {}
        for expr, far, count in found:
            score = (0.55 if count == 2 else 0.35) - 0.04 * far + evidence
            best[expr] = max(score, best.get(expr, -1.0))
        out += [Proposal(target.start, (expr,), round(min(max(score, 0.0), 1.0), 4)) for expr, score in best.items()]
    return out


def _operands(numbers: list[WrittenNumber], sentence: list[int], t: int, answer: bool) -> list[WrittenNumber]:
    """The quantities nearest before number `t` that may be its operands, in text order: the last OPERANDS_BACK of
    those in its sentence and the one before or within CHARS_BACK characters (any earlier one after an answer cue)."""
    target, found = numbers[t], []
    for i in range(t - 1, -1, -1):
        n = numbers[i]
        near = sentence[i] >= sentence[t] - SENTENCES_BACK or target.start - n.end <= CHARS_BACK
        if not (near or answer):
            break  # numbers further back are in earlier sentences and further away still
        if n.quantity:
            found.append(n)
            if len(found) == OPERANDS_BACK:
                break
    return found[::-1]


def _written_expressions(text: str, numbers: list[WrittenNumber]) -> tuple[dict[int, str], set[int]]:
    """{index of a number: the expression the text writes before it, when it evaluates to that number ("3*20=60"
    -> "3 * 20")} and the indexes of all numbers inside written expressions ("3", "20")."""
    results: dict[int, str] = {}
    inside: set[int] = set()
    for t, target in enumerate(numbers):
        head = text[max(0, target.start - len(target.currency) - 160):target.start - len(target.currency)]
        eq = _EQUALS.search(head)
        if eq is None:
            continue
        tail = _EXPRESSION_TAIL.search(head[:eq.start()][-120:])
        if tail is None:
            continue
        span = tail.group(0)
        span = span[span.rfind(", ") + 2:] if ", " in span else span    # ", " never separates thousands
        begin = target.start - len(target.currency) - len(head) + eq.start() - len(span)
        members = [i for i, n in enumerate(numbers[:t]) if n.start >= begin]
        if not members or any(not numbers[i].quantity for i in members):
            continue
        inside.update(members)
        expr = _normalise(span)
        if expr is None:
            continue
        try:
            value = float(parse_decimal(calculator(expr)))
        except (ToolError, InvalidOperation):
            continue
        if _equal(value, target, _APPROX.search(head) is not None):
            results[t] = expr
    return results, inside


def _normalise(span: str) -> str | None:
    """A written expression in the calculator's canonical spacing ("2*(8+5)" -> "2 * (8 + 5)"), or None when it
    has no operator between two numbers."""
    low = re.sub(rf"[{CURRENCY}]", "", span.lower())
    for word, op in _WORD_OPS:
        low = low.replace(word, f" {op} ")
    low = re.sub(r"(?<=[\d)])\s*x\s*(?=[\d(])", " * ", low)
    tokens = _EXPRESSION_TOKEN.findall(low)
    while tokens and tokens[0] in "+-*/)":
        tokens.pop(0)
    while tokens.count("(") > tokens.count(")") and "(" in tokens:
        tokens.remove("(")           # "(so 3*4 = 12": the parenthesis belongs to the prose
    if sum(1 for tok in tokens if tok[0].isdigit()) < 2 or not any(tok in "+-*/" for tok in tokens):
        return None
    return " ".join(tokens).replace("( ", "(").replace(" )", ")")


def _units(text: str, n: WrittenNumber) -> set[str]:
    """The words naming what a number counts ("36 pencils" -> {"pencil"}; "$3 a pound" -> {"pound"})."""
    m = _UNIT_WORDS.match(text, n.end)
    if m is None:
        return set()
    return {_singular(w.lower()) for w in m.groups() if w and w.lower() not in _NOT_UNITS}


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 2:
        return word[:-1]
    return word


def _value(n: WrittenNumber) -> float:
    return float(n.value) / 100 if n.percent else float(n.value)


def _two_operands(window: list[WrittenNumber], target: WrittenNumber) -> Iterator[tuple[str, float, int]]:
    """(expression, value, distance of its farther operand from the target) for a op b over the window."""
    last = len(window) - 1
    for i, j in itertools.combinations(range(len(window)), 2):
        a, b = window[i], window[j]
        far = last - i
        if target.percent:
            for x, y in ((a, b), (b, a)):
                if not (x.percent or y.percent) and y.value != 0:
                    yield f"{x.operand} / {y.operand} * 100", float(x.value) / float(y.value) * 100, far
            continue
        if a.percent and b.percent:
            continue
        if a.percent or b.percent:
            base, pct = (b, a) if a.percent else (a, b)
            p = _value(pct)
            yield f"{base.operand} * {pct.operand}", _value(base) * p, far
            yield f"{base.operand} * (1 + {pct.operand})", _value(base) * (1 + p), far
            yield f"{base.operand} * (1 - {pct.operand})", _value(base) * (1 - p), far
            continue
        u, v = float(a.value), float(b.value)
        yield f"{a.operand} + {b.operand}", u + v, far
        if u != v:
            big, small = (a, b) if u > v else (b, a)
            yield f"{big.operand} - {small.operand}", abs(u - v), far
        if 0 not in (u, v) and 1 not in (u, v):     # times or over 1 gives back a number already written
            yield f"{a.operand} * {b.operand}", u * v, far
            yield f"{a.operand} / {b.operand}", u / v, far
            yield f"{b.operand} / {a.operand}", v / u, far


def _three_operands(window: list[WrittenNumber], target: WrittenNumber) -> Iterator[tuple[str, float, int]]:
    """a op b op c over the window (no percentages): sums, products and the rule of three a * b / c."""
    if target.percent:
        return
    plain = [n for n in window if not n.percent and n.value not in (0, 1)]
    last = len(window) - 1
    for trio in itertools.combinations(plain, 3):
        far = last - window.index(trio[0])
        for a, b, c in itertools.permutations(trio):
            x, y, z = float(a.value), float(b.value), float(c.value)
            first = window.index(a) < window.index(b)   # write commutative pairs in text order, once
            if first:
                yield f"{a.operand} * {b.operand} / {c.operand}", x * y / z, far
                yield f"{a.operand} * {b.operand} + {c.operand}", x * y + z, far
                yield f"{a.operand} * {b.operand} - {c.operand}", x * y - z, far
                yield f"({a.operand} + {b.operand}) * {c.operand}", (x + y) * z, far
                yield f"({a.operand} + {b.operand}) / {c.operand}", (x + y) / z, far
                if window.index(b) < window.index(c):
                    yield f"{a.operand} + {b.operand} + {c.operand}", x + y + z, far
                    yield f"{a.operand} * {b.operand} * {c.operand}", x * y * z, far
            if window.index(b) < window.index(c):
                yield f"{a.operand} + {b.operand} - {c.operand}", x + y - z, far
                yield f"{a.operand} - {b.operand} - {c.operand}", x - y - z, far


def _equal(value: float, target: WrittenNumber, approx: bool) -> bool:
    """`value` is the number the text writes: exactly, or rounded to the decimals it shows (a text that writes
    decimals rounds; one that writes a whole number rounds only after "about")."""
    written = float(target.value)
    if value <= 0:
        return False
    if abs(value - written) <= 1e-9 * max(1.0, written):
        return True
    return (target.decimals > 0 or approx) and abs(value - written) <= 0.5 * 10 ** -target.decimals + 1e-9


def _chance(window: list[WrittenNumber], target: WrittenNumber) -> float:
    """How often a number near the target would equal some a op b of the window by chance: the share of the whole
    numbers around it (within a fifth of it, at least 2 either side) that the window's a op b hit. Small numbers
    among many small operands come out near 1; 1,920 from 320 and 6 near 0."""
    if target.decimals > 0 or target.percent:
        return 0.0
    center = int(target.value)
    reach = max(2, round(center * 0.2))
    hits = {round(v) for _, v, _ in _two_operands(window, target) if abs(v - round(v)) < 1e-9}
    near = [k for k in range(max(1, center - reach), center + reach + 1) if k != center]
    return sum(1 for k in near if k in hits) / len(near)
