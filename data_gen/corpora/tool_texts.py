"""Writes a corpus where tools help — arithmetic in prose and dates relative to a stated day — and a held-out test split.

Everything comes from templates and word lists written here for toolcall (no text from any data set). The training
texts are prose for data-gen: worked solutions, receipts, scaled recipes, travel times, unit conversions,
percentages, and notes that write today's date (each such record carries that date, so the Calendar answers for it).
The test split is made the same way from *other* templates, names and objects: math word problems and questions
about today's date for `toolcall eval`, never used for training. `overlap()` measures how much of each test item's
wording occurs in the training texts.

    python -m toolcall.data_gen.corpora.tool_texts --out DIR [--train 3000] [--test-math 150] [--test-dates 60] [--seed 0] [--force]

writes DIR/train.jsonl ({"id", "kind", "text"[, "date"], "gold": where a call belongs: [{"tool", "start", "value"}]}), DIR/test_math.jsonl ({"question", "answer"}),
DIR/test_dates.jsonl (the eval's date rules) and DIR/overlap.json (refusing a DIR that already holds them unless --force).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from random import Random
from typing import Any

from toolcall.errors import ToolcallError
from toolcall.terminal import printable

from .output import check_out

# ----------------------------------------------------------------------------------------------- word lists
# Training and test draw people and objects from different lists, so a test item never repeats a training sentence.
TRAIN_NAMES = ("Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Leo",
               "Maria", "Nadia", "Oscar", "Paula", "Rafael", "Sofia", "Tariq", "Uma", "Victor", "Wen", "Yusuf", "Zoe")
TEST_NAMES = ("Amelia", "Bruno", "Chloe", "Dmitri", "Esther", "Felix", "Gita", "Henrik", "Iris", "Joel", "Keiko",
              "Lucas", "Mei", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Samir", "Tessa")
SHE = {"Anna", "Carla", "Elena", "Grace", "Ines", "Kira", "Maria", "Nadia", "Paula", "Sofia", "Uma", "Wen", "Zoe",
       "Amelia", "Chloe", "Esther", "Gita", "Iris", "Keiko", "Mei", "Olga", "Priya", "Rosa", "Tessa"}

# (container, things) pairs for "groups of" texts.
TRAIN_GROUPS = (("box", "pencils"), ("crate", "apples"), ("tray", "cupcakes"), ("shelf", "books"), ("bag", "marbles"),
                ("carton", "eggs"), ("row", "chairs"), ("packet", "seeds"), ("jar", "cookies"), ("bus", "passengers"))
TEST_GROUPS = (("basket", "oranges"), ("drawer", "socks"), ("album", "photos"), ("van", "parcels"),
               ("tank", "fish"), ("box", "crayons"), ("table", "guests"), ("bundle", "sticks"))
TRAIN_ITEMS = ("notebook", "sandwich", "ticket", "towel", "lamp", "mug", "scarf", "plant", "battery", "poster")
TEST_ITEMS = ("kite", "helmet", "candle", "backpack", "puzzle", "umbrella", "wallet", "teapot")
TRAIN_PLACES = ("bakery", "library", "farm", "school", "garage", "cinema", "museum", "market")
TEST_PLACES = ("zoo", "harbour", "stadium", "hotel", "pharmacy", "gym")
INGREDIENTS = ("flour", "sugar", "butter", "rice", "oats", "milk")
VEHICLES = ("train", "truck", "ferry", "cyclist", "bus", "car")
TEST_VEHICLES = ("plane", "tram", "runner", "boat")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


def plural(noun: str) -> str:
    if noun.endswith("f"):
        return noun[:-1] + "ves"
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


def she(name: str) -> str:
    return "she" if name in SHE else "he"


def her(name: str) -> str:
    return "her" if name in SHE else "his"


def num(value: float) -> str:
    """A number as prose writes it: thousands separators, no trailing zeros."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def money(value: float) -> str:
    return f"${value:,.2f}" if not float(value).is_integer() else f"${int(value):,}"


# Gold spots are marked while a text is written and cut out after: where a computed number or today's date starts.
_CALC, _END_CALC, _DATE, _END_DATE = "\x02", "\x03", "\x04", "\x05"
_MARKS = re.compile("[\x02\x04]([^\x03\x05]*)[\x03\x05]")


def res(value: float) -> str:
    """A number the text computes from numbers written before it (a gold Calculator spot)."""
    return f"{_CALC}{num(value)}{_END_CALC}"


def res_money(value: float) -> str:
    """A computed amount of money; the spot starts at its digits (a call before the "$" counts too)."""
    return "$" + res(value) if float(value).is_integer() else f"${_CALC}{value:,.2f}{_END_CALC}"


def dated(mention: str) -> str:
    """Where the text writes today's date or weekday (a gold Calendar spot)."""
    return f"{_DATE}{mention}{_END_DATE}"


def unmark(marked: str) -> tuple[str, list[dict[str, Any]]]:
    """The text without its marks, and its gold spots {"tool", "start", "value"} (value: the number or the date as the
    text writes it), in the form of benchmarks/data/datagen_dev.jsonl."""
    gold: list[dict[str, Any]] = []
    out, pos = [], 0
    for m in _MARKS.finditer(marked):
        out.append(marked[pos:m.start()])
        start = sum(map(len, out))
        inner = m.group(1)
        if marked[m.start()] == _CALC:
            gold.append({"tool": "Calculator", "start": start, "value": inner})
        else:
            gold.append({"tool": "Calendar", "start": start, "value": inner})
        out.append(inner)
        pos = m.end()
    out.append(marked[pos:])
    return "".join(out), gold


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


# ----------------------------------------------------------------------------------------------- training texts
# Each family returns one text; the number a tool computes always comes after the numbers it is computed from.

def t_groups(r: Random) -> str:
    name, (box, things) = r.choice(TRAIN_NAMES), r.choice(TRAIN_GROUPS)
    a, b = r.randint(3, 48), r.randint(4, 36)
    return r.choice((
        f"{name} filled {a} {plural(box)} with {b} {things} each, so {she(name)} packed {res(a * b)} {things} in all.",
        f"There are {a} {plural(box)} and every {box} holds {b} {things}. Altogether that makes {res(a * b)} {things}.",
        f"Each {box} has {b} {things}. With {a} {plural(box)}, the total is {res(a * b)} {things}.",
        f"{name} counted {a} {plural(box)} of {b} {things}: {res(a * b)} {things} for the fair.",
        f"Question: {name} has {a} {plural(box)} with {b} {things} in each. How many {things} is that? "
        f"Answer: {cap(she(name))} has {res(a * b)} {things}.",
    ))


def t_share(r: Random) -> str:
    name, (box, things) = r.choice(TRAIN_NAMES), r.choice(TRAIN_GROUPS)
    k, each = r.randint(2, 12), r.randint(3, 40)
    total = k * each
    return r.choice((
        f"{name} shared {total} {things} equally among {k} friends, and each friend got {res(each)} {things}.",
        f"The {total} {things} were split evenly into {k} {plural(box)}, which put {res(each)} {things} in every {box}.",
        f"Dividing {total} {things} between {k} teams gives each team {res(each)} {things}.",
        f"Question: {total} {things} are packed equally into {k} {plural(box)}. How many go in each {box}? "
        f"Answer: Each {box} gets {res(each)} {things}.",
    ))


def t_left(r: Random) -> str:
    name, other = r.sample(TRAIN_NAMES, 2)
    things = r.choice(TRAIN_GROUPS)[1]
    a = r.randint(30, 900)
    b = r.randint(5, a - 5)
    return r.choice((
        f"{name} had {a} {things} and gave {b} of them to {other}, leaving {res(a - b)} {things}.",
        f"The {r.choice(TRAIN_PLACES)} started the week with {a} {things}. After {b} were used, {res(a - b)} remained.",
        f"Of the {a} {things}, {b} were sold, so {res(a - b)} are still in stock.",
        f"Question: {name} had {a} {things} and lost {b}. How many are left? Answer: {res(a - b)} {things} are left.",
    ))


def t_total(r: Random) -> str:
    place, things = r.choice(TRAIN_PLACES), r.choice(TRAIN_GROUPS)[1]
    a, b, c = r.randint(12, 950), r.randint(12, 950), r.randint(12, 400)
    return r.choice((
        f"The {place} received {a} {things} on Monday and {b} on Tuesday, {res(a + b)} {things} in total.",
        f"Last year the {place} had {a} visitors in June and {b} in July, together {res(a + b)} visitors.",
        f"The {place} sold {a} {things} in the morning, {b} at noon and {c} in the evening: {res(a + b + c)} in all.",
        f"Question: A {place} has {a} {things} and buys {b} more. How many does it have now? "
        f"Answer: It has {res(a + b)} {things}.",
    ))


def t_receipt(r: Random) -> str:
    item, other = r.sample(TRAIN_ITEMS, 2)
    n, price = r.randint(2, 9), r.choice((1.25, 2.5, 3.75, 4.2, 6.5, 7.99, 12.4, 15, 18.5, 24))
    extra = r.choice((2.75, 3.5, 5.25, 8, 9.99, 11.5))
    first = round(n * price, 2)
    return r.choice((
        f"Receipt: {n} x {item} at {money(price)} = {res_money(first)}; one {other} {money(extra)}; "
        f"total {res_money(round(first + extra, 2))}.",
        f"{r.choice(TRAIN_NAMES)} bought {n} {plural(item)} at {money(price)} each for {res_money(first)}, and with a "
        f"{money(extra)} {other} the bill came to {res_money(round(first + extra, 2))}.",
        f"{n} {plural(item)} cost {money(price)} each, so they come to {res_money(first)}.",
    ))


def t_recipe(r: Random) -> str:
    ingredient = r.choice(INGREDIENTS)
    grams, serves, factor = r.choice((120, 150, 200, 250, 300, 350, 400, 450)), r.choice((2, 4, 6)), r.randint(2, 5)
    return r.choice((
        f"The recipe needs {grams} g of {ingredient} for {serves} servings. Cooking {factor} times as much "
        f"takes {res(grams * factor)} g of {ingredient}.",
        f"For {serves} people the cake uses {grams} grams of {ingredient}; for {num(serves * factor)} people "
        f"multiply by {factor}, which gives {res(grams * factor)} grams.",
        f"One batch of bread uses {grams} g of {ingredient}, so {factor} batches use {res(grams * factor)} g.",
    ))


def t_travel(r: Random) -> str:
    vehicle = r.choice(VEHICLES)
    speed, hours = r.choice((15, 20, 40, 45, 50, 60, 75, 80, 90, 120)), r.randint(2, 9)
    dist = speed * hours
    return r.choice((
        f"The {vehicle} travelled at {speed} km/h for {hours} hours and covered {res(dist)} km.",
        f"At {speed} miles per hour, a {num(dist)}-mile trip by {vehicle} takes {res(hours)} hours.",
        f"The {vehicle} kept up {speed} km per hour, so after {hours} hours it was {res(dist)} km from home.",
        f"A {vehicle} going {num(dist)} km at {speed} km/h needs {res(hours)} hours for the journey.",
    ))


def t_convert(r: Random) -> str:
    x = r.randint(2, 48)
    return r.choice((
        f"There are 60 minutes in an hour, so {x} hours is {res(x * 60)} minutes.",
        f"A foot has 12 inches; {x} feet are {res(x * 12)} inches.",
        f"One kilometre is 1,000 metres, so the {x} km route is {res(x * 1000)} metres long.",
        f"With 7 days in a week, {x} weeks make {res(x * 7)} days.",
        f"A dozen is 12, so {x} dozen eggs are {res(x * 12)} eggs.",
        f"Each kilogram is 1,000 grams: {x} kg of rice weighs {res(x * 1000)} grams.",
    ))


def t_percent(r: Random) -> str:
    total, pct = r.choice((40, 60, 80, 120, 200, 250, 400, 500, 800, 1200)), r.choice((5, 10, 15, 20, 25, 30, 40, 75))
    part = total * pct / 100
    place = r.choice(TRAIN_PLACES)
    return r.choice((
        f"Of the {total} students at the {place}, {pct}% walk to class, that is {res(part)} students.",
        f"The {place} gave a {pct}% discount on a {money(total)} order, which saved {res_money(part)}.",
        f"{pct} percent of the {total} seats were empty: {res(part)} seats.",
    ))


def _a_date(r: Random) -> dt.date:
    return dt.date(2019, 1, 1) + dt.timedelta(days=r.randint(0, 365 * 8))


def t_today(r: Random) -> tuple[str, dt.date]:
    day = _a_date(r)
    full = f"{day:%A}, {day:%B} {day.day}, {day.year}"
    month_day = f"{day:%B} {day.day}"
    place, name = r.choice(TRAIN_PLACES), r.choice(TRAIN_NAMES)
    later = r.randint(2, 20)
    text = r.choice((
        f"Today is {dated(full)}, and the {place} stays open until 8 p.m.",
        f"Notice posted today, {dated(full)}: the {place} will be closed for repairs for {later} days.",
        f"It is {dated(f'{day:%A}')} today, so {name} has {her(name)} piano lesson after school.",
        f"{name} wrote in {her(name)} diary: today, {dated(month_day)}, it rained all morning.",
        f"The meeting is today, {dated(full)}, at 10 a.m. in room {r.randint(2, 40)}.",
        f"Happy {dated(f'{day:%A}')}! Today is {dated(month_day)} and the {place} has {later} new events this month.",
        f"As of today, {dated(month_day)}, {day.year}, the {place} has welcomed {r.randint(200, 9000):,} visitors.",
    ))
    return text, day


FAMILIES: tuple[tuple[str, Callable[[Random], Any], float], ...] = (
    ("groups", t_groups, 2.0), ("share", t_share, 1.5), ("left", t_left, 1.5), ("total", t_total, 1.5),
    ("receipt", t_receipt, 1.0), ("recipe", t_recipe, 0.8), ("travel", t_travel, 1.0), ("convert", t_convert, 0.8),
    ("percent", t_percent, 0.6), ("today", t_today, 1.5),
)


def training_texts(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """`n` distinct training records {"id", "kind", "text"[, "date"]}, drawn from the families by weight."""
    r = Random(seed)
    names, funcs, weights = zip(*((k, f, w) for k, f, w in FAMILIES))
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    while len(out) < n:
        i = r.choices(range(len(names)), weights=weights)[0]
        made = funcs[i](r)
        marked, day = made if isinstance(made, tuple) else (made, None)
        text, gold = unmark(marked)
        if text in seen:
            continue
        seen.add(text)
        rec: dict[str, Any] = {"id": f"{names[i]}-{len(out):05d}", "kind": names[i], "text": text}
        if day is not None:
            rec["date"] = day.isoformat()
        rec["gold"] = gold
        out.append(rec)
    return out


# ----------------------------------------------------------------------------------------------- test items

@dataclass(frozen=True)
class MathItem:
    question: str
    answer: str
    kind: str


def q_groups(r: Random) -> MathItem:
    name, (box, things) = r.choice(TEST_NAMES), r.choice(TEST_GROUPS)
    a, b = r.randint(3, 48), r.randint(4, 36)
    q = r.choice((
        f"{name} arranges {things} in {a} {plural(box)}, putting {b} in every {box}. How many {things} are there?",
        f"A store has {a} {plural(box)}, and each {box} contains {b} {things}. What is the total number of {things}?",
        f"If one {box} fits {b} {things}, how many {things} fit in {a} {plural(box)}?",
    ))
    return MathItem(q, num(a * b), "groups")


def q_share(r: Random) -> MathItem:
    name, (box, things) = r.choice(TEST_NAMES), r.choice(TEST_GROUPS)
    k, each = r.randint(2, 12), r.randint(3, 40)
    q = r.choice((
        f"{name} hands out {k * each} {things} so that {k} children get the same amount. How many does each child get?",
        f"{k * each} {things} are placed evenly on {k} {plural(box)}. How many {things} are on one {box}?",
    ))
    return MathItem(q, num(each), "share")


def q_left(r: Random) -> MathItem:
    name = r.choice(TEST_NAMES)
    things = r.choice(TEST_GROUPS)[1]
    a = r.randint(30, 900)
    b = r.randint(5, a - 5)
    q = r.choice((
        f"{name} owned {a} {things}. {cap(she(name))} sold {b} of them. How many {things} does {she(name)} still own?",
        f"A {r.choice(TEST_PLACES)} stored {a} {things} and {b} were taken away. How many {things} remain?",
    ))
    return MathItem(q, num(a - b), "left")


def q_total(r: Random) -> MathItem:
    place, things = r.choice(TEST_PLACES), r.choice(TEST_GROUPS)[1]
    a, b = r.randint(12, 950), r.randint(12, 950)
    q = r.choice((
        f"The {place} counted {a} {things} in the first week and {b} in the second week. How many {things} is that altogether?",
        f"{r.choice(TEST_NAMES)} collected {a} {things} and then found {b} more. How many {things} does that make?",
    ))
    return MathItem(q, num(a + b), "total")


def q_price(r: Random) -> MathItem:
    item = r.choice(TEST_ITEMS)
    n, price = r.randint(2, 9), r.choice((1.5, 2.25, 3.5, 4.75, 6, 8.5, 12.25, 16))
    q = r.choice((
        f"One {item} costs {money(price)}. What do {n} {plural(item)} cost?",
        f"{r.choice(TEST_NAMES)} pays for {n} {plural(item)} priced at {money(price)} apiece. How much is the bill in dollars?",
    ))
    return MathItem(q, num(round(n * price, 2)), "price")


def q_travel(r: Random) -> MathItem:
    vehicle = r.choice(TEST_VEHICLES)
    speed, hours = r.choice((12, 25, 30, 55, 65, 70, 85, 110)), r.randint(2, 9)
    if r.random() < 0.5:
        q = f"A {vehicle} moves at {speed} kilometres per hour. How far does it get in {hours} hours?"
        return MathItem(q, num(speed * hours), "travel")
    q = f"A {vehicle} must cover {num(speed * hours)} kilometres at {speed} kilometres per hour. How many hours will that take?"
    return MathItem(q, num(hours), "travel")


MATH_FAMILIES: tuple[Callable[[Random], MathItem], ...] = (q_groups, q_share, q_left, q_total, q_price, q_travel)

# Date questions in the eval's rule format (toolcall.evaluation.date_answer), worded unlike dates_sample.jsonl.
DATE_QUESTIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("Which day of the week are we on today?", {"rule": "weekday", "days": 0}),
    ("Do you know what weekday it is right now?", {"rule": "weekday", "days": 0}),
    ("Name the current day of the week.", {"rule": "weekday", "days": 0}),
    ("What is the date today?", {"rule": "date", "days": 0}),
    ("Give me today's full date, please.", {"rule": "date", "days": 0}),
    ("Which month are we in?", {"rule": "month", "months": 0}),
    ("Tell me the current month.", {"rule": "month", "months": 0}),
    ("Which year is it now?", {"rule": "year", "years": 0}),
    ("What is the current year?", {"rule": "year", "years": 0}),
    ("What weekday will tomorrow be?", {"rule": "weekday", "days": 1}),
    ("Which weekday was yesterday?", {"rule": "weekday", "days": -1}),
    ("What year will it be next year?", {"rule": "year", "years": 1}),
)


def test_math(n: int, seed: int = 1) -> list[dict[str, str]]:
    """`n` distinct math word problems {"question", "answer", "kind"}."""
    r = Random(seed)
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    while len(out) < n:
        item = MATH_FAMILIES[len(out) % len(MATH_FAMILIES)](r)
        if item.question not in seen:
            seen.add(item.question)
            out.append({"question": item.question, "answer": item.answer, "kind": item.kind})
    return out


def test_dates(n: int) -> list[dict[str, Any]]:
    """`n` date questions (cycling through the wordings), answered by the eval for its --today."""
    return [{"question": q, **rule} for q, rule in (DATE_QUESTIONS[i % len(DATE_QUESTIONS)] for i in range(n))]


# ----------------------------------------------------------------------------------------------- leakage check
_WORD = re.compile(r"[a-z]+|\d[\d,.]*")


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    """The word n-grams of `text`, lower-cased, every number replaced by '#' (so a template shows through)."""
    words = ["#" if w[0].isdigit() else w for w in _WORD.findall(text.lower())]
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def overlap(train: Iterable[str], test: Sequence[str], n: int = 5) -> dict[str, Any]:
    """For each test text, the share of its word 5-grams (numbers masked) that occur anywhere in the training texts:
    0 means no five-word run of it appears in training; a near-duplicate scores close to 1."""
    seen: set[tuple[str, ...]] = set()
    for text in train:
        seen |= shingles(text, n)
    shares = []
    for text in test:
        grams = shingles(text, n)
        shares.append(len(grams & seen) / len(grams) if grams else 0.0)
    worst = max(range(len(test)), key=lambda i: shares[i]) if test else None
    return {"ngram": n, "items": len(test), "max_share": round(max(shares, default=0.0), 4),
            "mean_share": round(sum(shares) / len(shares), 4) if shares else 0.0,
            "worst_item": test[worst] if worst is not None else None,
            "exact_duplicates": sum(1 for t in test if t in set(train))}


def write_corpus(out: Path, n_train: int = 3000, n_math: int = 150, n_dates: int = 60, seed: int = 0) -> dict[str, Any]:
    """Write train.jsonl, test_math.jsonl, test_dates.jsonl and overlap.json under `out`; returns the overlap report."""
    out.mkdir(parents=True, exist_ok=True)
    train = training_texts(n_train, seed)
    math_items = test_math(n_math, seed + 1)
    date_items = test_dates(n_dates)
    for name, rows in (("train.jsonl", train), ("test_math.jsonl", math_items), ("test_dates.jsonl", date_items)):
        with (out / name).open("w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    texts = [t["text"] for t in train]
    report = {"math": overlap(texts, [m["question"] for m in math_items]),
              "dates": overlap(texts, [d["question"] for d in date_items]),
              "train": {"texts": len(train), "per_kind": _count(t["kind"] for t in train)}, "seed": seed}
    (out / "overlap.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return counts


OUT_FILES = ("train.jsonl", "test_math.jsonl", "test_dates.jsonl", "overlap.json")



def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a tool-use training corpus and a held-out test split.")
    parser.add_argument("--out", type=Path, required=True, help="output directory (made if missing; one that "
                                                                 "already holds any of its files is refused unless "
                                                                 "--force)")
    parser.add_argument("--force", action="store_true", help="replace train.jsonl, test_math.jsonl, test_dates.jsonl "
                                                             "and overlap.json where --out already holds them")
    parser.add_argument("--train", type=int, default=3000, help="training texts")
    parser.add_argument("--test-math", type=int, default=150, help="math word problems in the test split")
    parser.add_argument("--test-dates", type=int, default=60, help="date questions in the test split")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args(argv)
    for flag, value, least in (("--train", args.train, 1), ("--test-math", args.test_math, 0),
                               ("--test-dates", args.test_dates, 0)):
        if value < least:
            parser.error(f"{flag} must be at least {least}, got {value}")
    try:
        check_out(args.out, OUT_FILES, args.force)
    except ToolcallError as err:
        print(f"{parser.prog}: error: {printable(str(err))}", file=sys.stderr)
        return 1
    report = write_corpus(args.out, args.train, args.test_math, args.test_dates, args.seed)
    print(json.dumps({"out": str(args.out), "train": report["train"]["texts"],
                      "math_overlap_max": report["math"]["max_share"], "dates_overlap_max": report["dates"]["max_share"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
