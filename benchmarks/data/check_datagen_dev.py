"""Validate the gold annotations of benchmarks/data/datagen_dev.jsonl and print a one-line JSON summary."""

from __future__ import annotations

import ast
import datetime as dt
import json
import operator
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_PATH = Path(__file__).with_name("datagen_dev.jsonl")
KINDS = {"worked_solution", "shopping", "travel", "recipe", "receipt", "unit_conversion", "date"}
MONTHS = ["january", "february", "march", "april", "may", "june", "july",
          "august", "september", "october", "november", "december"]
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

# A number as written in prose: 1,560.50 / 1560.50 / 12 / 0.74 (never the digits of a bigger token).
TEXT_NUMBER = re.compile(r"(?<![\d.,])\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?<![\d.,])\d+(?:\.\d+)?")
VALUE_FORMAT = re.compile(r"^(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")
EXPR_NUMBER = re.compile(r"\d+(?:\.\d+)?")
EXPR_CHARS = re.compile(r"^[\d.\s+\-*/()]+$")

_MONTH = "(" + "|".join(MONTHS) + ")"
_WEEKDAY = "(?:(" + "|".join(WEEKDAYS) + "),?\\s*)?"
_ORD = r"(?:st|nd|rd|th)?"
DATE_FORMS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], tuple[int | None, int, int]]]] = [
    (re.compile(rf"^{_WEEKDAY}(\d{{4}})-(\d\d)-(\d\d)$", re.IGNORECASE),
     lambda m: (int(m[2]), int(m[3]), int(m[4]))),
    (re.compile(rf"^{_WEEKDAY}{_MONTH}\s+(\d{{1,2}}){_ORD}(?:,?\s+(\d{{4}}))?$", re.IGNORECASE),
     lambda m: (int(m[4]) if m[4] else None, MONTHS.index(m[2].lower()) + 1, int(m[3]))),
    (re.compile(rf"^{_WEEKDAY}(?:the\s+)?(\d{{1,2}}){_ORD}\s+(?:of\s+)?{_MONTH}(?:,?\s+(\d{{4}}))?$", re.IGNORECASE),
     lambda m: (int(m[4]) if m[4] else None, MONTHS.index(m[3].lower()) + 1, int(m[2]))),
]

_OPS: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
}


def safe_eval(expression: str) -> float:
    """Evaluate + - * / arithmetic over numeric literals, with parentheses."""
    if not EXPR_CHARS.match(expression):
        raise ValueError(f"disallowed characters in expression {expression!r}")

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        raise ValueError(f"unsupported syntax in expression {expression!r}")

    return walk(ast.parse(expression, mode="eval"))


def to_float(written: str) -> float:
    return float(written.replace(",", ""))


def value_matches(result: float, value_text: str) -> bool:
    """Within 0.01 or 0.5%, or equal after rounding the result to the value's (at most 2) decimals."""
    value = to_float(value_text)
    if abs(result - value) <= 0.01 or abs(result - value) <= 0.005 * abs(value):
        return True
    decimals = len(value_text.split(".")[1]) if "." in value_text else 0
    return decimals <= 2 and round(result, decimals) == round(value, decimals)


def parse_calendar(value: str) -> tuple[str | None, tuple[int | None, int, int] | None]:
    """Return (weekday or None, (year or None, month, day) or None); raises on an unknown form."""
    stripped = value.strip()
    if stripped.lower() in WEEKDAYS:
        return stripped.lower(), None
    for pattern, build in DATE_FORMS:
        m = pattern.match(stripped)
        if m:
            weekday = m[1].lower() if m[1] else None
            return weekday, build(m)
    raise ValueError(f"unrecognised date/weekday {value!r}")


def check_calculator(text: str, spot: dict[str, Any], where: str) -> list[str]:
    errors: list[str] = []
    start, value, expression = spot.get("start"), spot.get("value"), spot.get("expression")
    if not isinstance(start, int) or not isinstance(value, str) or not isinstance(expression, str):
        return [f"{where}: Calculator spot needs int start, str value, str expression"]
    if not VALUE_FORMAT.match(value):
        errors.append(f"{where}: value {value!r} is not a plain written number")
    if text[start:start + len(value)] != value:
        errors.append(f"{where}: text[{start}:{start + len(value)}]={text[start:start + len(value)]!r} != {value!r}")
    before, after = text[start - 1:start] if start > 0 else "", text[start + len(value):start + len(value) + 2]
    if re.match(r"[\d.,]", before) or re.match(r"\d|[.,]\d", after):
        errors.append(f"{where}: value {value!r} at {start} is part of a longer number")
    try:
        result = safe_eval(expression)
    except (ValueError, SyntaxError, ZeroDivisionError) as exc:
        return errors + [f"{where}: {exc}"]
    if VALUE_FORMAT.match(value) and not value_matches(result, value):
        errors.append(f"{where}: {expression} = {result:g}, but value is {value!r}")
    earlier = {to_float(n) for n in TEXT_NUMBER.findall(text[:start])}
    for number in EXPR_NUMBER.findall(expression):
        if float(number) not in earlier:
            errors.append(f"{where}: expression number {number} does not appear in the text before {start}")
    return errors


def check_calendar(text: str, spot: dict[str, Any], today: dt.date | None, where: str) -> list[str]:
    start, value = spot.get("start"), spot.get("value")
    if not isinstance(start, int) or not isinstance(value, str):
        return [f"{where}: Calendar spot needs int start and str value"]
    errors: list[str] = []
    if text[start:start + len(value)] != value:
        errors.append(f"{where}: text[{start}:{start + len(value)}]={text[start:start + len(value)]!r} != {value!r}")
    if today is None:
        return errors + [f"{where}: Calendar spot in a text without a valid 'today'"]
    try:
        weekday, ymd = parse_calendar(value)
    except ValueError as exc:
        return errors + [f"{where}: {exc}"]
    if weekday is not None and weekday != WEEKDAYS[today.weekday()]:
        errors.append(f"{where}: weekday {weekday} != today's {WEEKDAYS[today.weekday()]} ({today})")
    if ymd is not None:
        year, month, day = ymd
        if (month, day) != (today.month, today.day) or (year is not None and year != today.year):
            errors.append(f"{where}: date {value!r} != today {today}")
    return errors


def check_record(record: Any, line_no: int, seen: set[str]) -> tuple[list[str], int, int]:
    where = f"line {line_no}"
    if not isinstance(record, dict):
        return [f"{where}: not a JSON object"], 0, 0
    errors: list[str] = []
    rid, kind, text, gold = record.get("id"), record.get("kind"), record.get("text"), record.get("gold")
    where = f"line {line_no} ({rid})"
    if not isinstance(rid, str) or not rid:
        errors.append(f"{where}: missing id")
    elif rid in seen:
        errors.append(f"{where}: duplicate id")
    else:
        seen.add(rid)
    if kind not in KINDS:
        errors.append(f"{where}: kind {kind!r} not allowed")
    extra = set(record) - {"id", "kind", "text", "today", "gold"}
    if extra:
        errors.append(f"{where}: unexpected fields {sorted(extra)}")
    if not isinstance(text, str) or not text.strip():
        return errors + [f"{where}: missing text"], 0, 0
    if not isinstance(gold, list):
        return errors + [f"{where}: gold must be a list"], 0, 0
    today: dt.date | None = None
    if kind == "date" or "today" in record:
        if kind != "date":
            errors.append(f"{where}: 'today' is only for date texts")
        try:
            today = dt.date.fromisoformat(str(record.get("today")))
            if not 2025 <= today.year <= 2027:
                errors.append(f"{where}: today {today} outside 2025-2027")
        except ValueError:
            errors.append(f"{where}: date text needs today as YYYY-MM-DD")
    n_calc = n_cal = 0
    spans: list[tuple[int, int]] = []
    for i, spot in enumerate(gold):
        spot_where = f"{where} gold[{i}]"
        if not isinstance(spot, dict):
            errors.append(f"{spot_where}: not an object")
            continue
        tool = spot.get("tool")
        if tool == "Calculator":
            n_calc += 1
            errors += check_calculator(text, spot, spot_where)
        elif tool == "Calendar":
            n_cal += 1
            errors += check_calendar(text, spot, today, spot_where)
        else:
            errors.append(f"{spot_where}: unknown tool {tool!r}")
            continue
        if isinstance(spot.get("start"), int) and isinstance(spot.get("value"), str):
            spans.append((spot["start"], spot["start"] + len(spot["value"])))
    if spans != sorted(spans):
        errors.append(f"{where}: gold spots are not in text order")
    for (_, end), (nxt, _) in zip(sorted(spans), sorted(spans)[1:]):
        if nxt < end:
            errors.append(f"{where}: gold spots overlap")
    if not gold:
        errors.append(f"{where}: no gold spots")
    return errors, n_calc, n_cal


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT_PATH
    errors: list[str] = []
    seen: set[str] = set()
    texts = n_calc = n_cal = 0
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        texts += 1
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"line {line_no}: invalid JSON ({exc})")
            continue
        errs, c, k = check_record(record, line_no, seen)
        errors += errs
        n_calc += c
        n_cal += k
    for error in errors:
        print(error, file=sys.stderr)
    print(json.dumps({"texts": texts, "calculator_spots": n_calc, "calendar_spots": n_cal, "errors": len(errors)}))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
