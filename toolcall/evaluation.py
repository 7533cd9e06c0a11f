"""Evaluating a model with tools disabled and enabled on the same prompts (Toolformer §4.2): math and dates (BFCL: toolcall.bfcl)."""
from __future__ import annotations

import calendar as _cal
import datetime as dt
import json
import math
import os
import platform
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, field, fields
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .errors import ConfigError
from .grading import GRADERS, parse_gold
from .jsonl import content_suffix, parquet_columns, read_records, shown_columns
from .loop import LoopConfig, call_limit_reached
from .options import at_least, option
from .schema import short_json

if TYPE_CHECKING:
    from .backends.base import Backend
    from .dialects.base import Dialect
    from .loop import LoopResult
    from .registry import ToolRegistry

TASKS = ("math", "dates", "bfcl")
#: The tool each task is about (the paper evaluates each task with all tools available; one keeps the
#: prompt short for small models; --tools widens it).
TASK_TOOLS: dict[str, tuple[str, ...]] = {"math": ("Calculator",), "dates": ("Calendar",),
                                          "bfcl": ()}  # each BFCL item offers its own functions
SAMPLE_FILES = {"math": "math_sample.jsonl", "dates": "dates_sample.jsonl"}
MODES = ("no_tools", "tools")
#: The loop of an evaluation unless flags say otherwise: one call per item, as in the paper, and short replies.
EVAL_LOOP = LoopConfig(max_calls=1, max_new_tokens=48)


@dataclass(frozen=True)
class EvalConfig:
    """What an evaluation runs: the task, its items and tools, the prompt; every field is a `toolcall eval` flag."""

    task: str = option(choices=TASKS, help="math word problems, date questions, or BFCL function calling (bfcl)")
    input: Path | None = option(None, metavar="FILE", help='JSONL of {"question", "answer"} (dates may use "rule"; '
                                                          "a math answer may be GSM8K's, ending '#### 72'), "
                                                          "compressed (.gz, .bz2, .xz) or not, or a .parquet file "
                                                          "with those columns (default: the shipped sample)")
    tools: tuple[str, ...] | None = option(None, metavar="NAMES", help="comma-separated tools offered (default: "
                                                                       "Calculator for math, Calendar for dates)")
    limit: int | None = option(None, metavar="N", help="evaluate only the first N items (bfcl: N per category, "
                                                        "drawn with --seed)")
    few_shot: int | None = option(None, metavar="K", help="few-shot demonstrations in the prompt: 0 for none "
                                                          "(default: the dialect's own)")
    today: str | None = option(None, metavar="YYYY-MM-DD", help="the date the Calendar tool reports and date answers "
                                                                "are computed for (default: today)")

    def __post_init__(self) -> None:
        _check_task(self.task)
        at_least(self, limit=1, few_shot=0)
        if self.today is not None:
            _parse_date(self.today)  # a malformed --today fails here, before any model loads

    def tool_names(self) -> tuple[str, ...]:
        return self.tools or TASK_TOOLS[self.task]

    def date(self) -> dt.date | None:
        """The pinned date: --today, or the Calendar's today for the dates task; None when nothing needs one."""
        if self.today is not None:
            return _parse_date(self.today)
        return default_today() if self.task == "dates" else None


def _parse_date(text: str) -> dt.date:
    from toolcall.tools.calendar import parse_date

    return parse_date(text, "--today")


@dataclass(frozen=True)
class EvalItem:
    """One question and its gold answer (for dates: computed for the evaluation's today)."""

    question: str
    answer: str


@dataclass
class ItemResult:
    """What happened on one item in one mode; one line of the per-item JSONL."""

    mode: str
    question: str
    gold: str
    prediction: str          # the reply with tool calls cut out: what is scored
    correct: bool
    exact: bool
    transcript: str          # the generated text as decoded, calls and results included
    calls: list[dict[str, Any]]  # the tool use (see _tool_use): none with tools off, none refused past the call limit
    seconds: float
    stop_reason: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ModeSummary:
    """Aggregates of one mode."""

    mode: str
    n: int
    accuracy: float          # Toolformer's score: first number (math) / answer in the first words (dates)
    exact_accuracy: float    # normalised string equality of the answer line
    call_share: float        # share of items with at least one call in their `calls` (tools on; malformed ones too)
    avg_calls: float
    seconds: float
    decoded_tokens: int


@dataclass
class EvalReport:
    """Both modes on the same items; `summary()` is the JSON summary line."""

    task: str
    today: str | None
    settings: dict[str, Any]
    modes: dict[str, ModeSummary]
    items: list[ItemResult] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"task": self.task, "today": self.today, **self.settings,
                **{m: asdict(s) for m, s in self.modes.items()}}


#: The packages whose versions can change a model's replies or their judging: a run's report names those installed.
REPLY_PACKAGES = ("toolcall", "torch", "transformers", "peft", "llguidance", "gguf", "vllm", "bfcl-eval")


def software_versions() -> dict[str, str]:
    """Python's and the installed REPLY_PACKAGES' versions: a figure is comparable only with one made under the same
    versions and settings, and a rerun whose versions were not recorded could not be told apart from the first."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in REPLY_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


# --- items ------------------------------------------------------------------------------------------

def sample_path(task: str) -> Path:
    """The shipped sample set of a task (toolcall/data/*_sample.jsonl)."""
    _check_task(task)
    return Path(str(resources.files("toolcall.data").joinpath(SAMPLE_FILES[task])))


#: The fields an eval item is read from: its question and answer, or its date rule and the rule's counts.
ITEM_FIELDS = ("question", "answer", "rule", "days", "years", "months", "month", "day")


def load_items(path: str | Path, task: str, today: dt.date | None = None, limit: int | None = None) -> list[EvalItem]:
    """Read {"question", "answer"} records (JSON Lines, compressed or not, or Parquet rows, as GSM8K comes from the
    Hub); date records may carry a "rule" instead, answered for `today`."""
    _check_task(task)
    if limit is not None and limit < 1:   # 0 gave one item: the count was checked after the first was taken
        raise ConfigError(f"limit must be >= 1, got {limit}")
    if Path(path).is_dir():  # read_records would call it missing
        raise ConfigError(f"eval input {path} is a directory, not a file: give a .jsonl file with one "
                          '{"question", "answer"} object per line')
    items: list[EvalItem] = []
    columns = None
    if content_suffix(Path(path)) == ".parquet":   # only the fields an item reads: a corpus's text column stays unread
        names = parquet_columns(path, "eval input")
        if "question" not in names:
            raise ConfigError(f"eval input {path} has no column 'question'; its columns: {shown_columns(names)}")
        columns = [c for c in names if c in ITEM_FIELDS]
    for where, record in read_records(path, "eval input", columns=columns):   # JSON Lines, compressed or not; Parquet
        items.append(_item(record, task, today, where))
        if limit is not None and len(items) >= limit:
            break  # the line after the last item asked for is not read (a download cut mid-line stays usable)
    if not items:
        raise ConfigError(f"eval input {path} holds no items")
    return items


def _item(record: Any, task: str, today: dt.date | None, where: str) -> EvalItem:
    if not isinstance(record, dict) or not isinstance(record.get("question"), str) or not record["question"].strip():
        raise ConfigError(f"{where}: each line needs a non-empty string field 'question'")
    if "rule" in record:
        if task != "dates":
            raise ConfigError(f"{where}: 'rule' lines are date questions; use --task dates")
        if today is None:
            raise ConfigError(f"{where}: a rule-based date question needs a today date")
        return EvalItem(record["question"].strip(), date_answer(record, today, where))
    return EvalItem(record["question"].strip(), _gold(record, task, where))


#: What a math answer may look like: what toolcall.grading.parse_gold reads as one number.
_NUMBER_FORMS = '"168", "1,625", "-8", "34.5", "7/24", "3 / 4" or "$60"'


#: The last line of a GSM8K answer, which holds its final number after a worked solution.
_GSM8K_FINAL = re.compile(r"(?:^|\n)####[ \t]*([^\n]*)\s*\Z")


def _gold(record: dict[str, Any], task: str, where: str) -> str:
    """The gold answer as text. str() of anything else made null "None" and NaN "nan", gold answers no reply
    can match, so an item was scored wrong without a word: only text and finite numbers are answers, and a math
    answer must be one number the grader can read (or a worked solution ending in GSM8K's "#### 72" line)."""
    value = record.get("answer")
    if "answer" not in record or (isinstance(value, str) and not value.strip()):
        raise ConfigError(f"{where}: each line needs an 'answer' (or, for dates, a 'rule')")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{where}: 'answer' must be text or a number, got {short_json(value)}")
    text = value.strip() if isinstance(value, str) else _number_text(value, where)
    if task == "math" and (final := _GSM8K_FINAL.search(text)):
        text = final.group(1).strip()  # GSM8K's own lines: the worked solution, then "#### 72"
    if task == "math":
        number = parse_gold(text)
        if number is None or not math.isfinite(number):
            raise ConfigError(f"{where}: a math 'answer' must be one finite number, such as {_NUMBER_FORMS}; "
                              f"got {short_json(value)}")
    return text


def _number_text(value: int | float, where: str) -> str:
    """A JSON number as a person writes it: 168.0 as "168", 1e20 as "100000000000000000000" (not "1e+20", which the
    grader would read as two numbers)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{where}: 'answer' must be a finite number, got {short_json(value)}")
        if value.is_integer():
            value = int(value)
    return str(value) if isinstance(value, int) else format(Decimal(repr(value)), "f")


DATE_RULES = ("weekday", "year", "month", "date", "days_until", "days_in_month", "leap_year", "days_passed",
              "weekday_of_next")
#: The widest day offset that can stay inside the calendar (0001-01-01 to 9999-12-31).
MAX_DAYS = (dt.date.max - dt.date.min).days
_CALENDAR = f"the calendar ({dt.date.min} to {dt.date.max})"


def date_answer(record: dict[str, Any], today: dt.date, where: str | None = None) -> str:
    """The gold answer of a rule-based date question for `today` (rules documented in toolcall/data/README.md).

    Counts must be JSON integers in range: int() read 1.7 as 1 and true as 1, and an offset past the calendar
    raised OverflowError. `where` ("FILE:LINE") starts every error message."""
    rule = record.get("rule")
    at = f"{where}: " if where else ""
    if not isinstance(rule, str) or rule not in DATE_RULES:
        raise ConfigError(f"{at}unknown date rule {short_json(rule)}; valid rules: {', '.join(DATE_RULES)}")
    at = f"{at}date rule {rule!r}"
    if rule in ("weekday", "date"):
        day = _shift(today, _whole(record, "days", at, -MAX_DAYS, MAX_DAYS, default=0), at)
        return day.strftime("%A") if rule == "weekday" else f"{day:%B} {day.day}, {day.year}"
    if rule == "year":
        return str(_in_calendar(today.year + _whole(record, "years", at, -dt.MAXYEAR, dt.MAXYEAR, default=0),
                                today, at))
    if rule == "month":
        index = today.year * 12 + today.month - 1 + _whole(record, "months", at, -12 * dt.MAXYEAR, 12 * dt.MAXYEAR,
                                                            default=0)
        _in_calendar(index // 12, today, at)
        return _cal.month_name[index % 12 + 1]
    if rule in ("days_until", "weekday_of_next"):
        month, day_of_month = _month_day(record, at)
        when = _next_occurrence(today, month, day_of_month, same_day=rule == "days_until", at=at)
        return str((when - today).days) if rule == "days_until" else when.strftime("%A")
    if rule == "days_in_month":
        return str(_cal.monthrange(today.year, today.month)[1])
    if rule == "leap_year":
        return "yes" if _cal.isleap(today.year) else "no"
    return str(today.timetuple().tm_yday - 1)  # days_passed


def _whole(record: dict[str, Any], name: str, at: str, low: int, high: int, *, default: int | None = None) -> int:
    """record[name] as a whole number in [low, high]: a JSON integer, or a float without a fraction (7.0); never
    a bool, text or 1.7."""
    if name not in record:
        if default is None:
            raise ConfigError(f"{at} needs the field {name!r}, a whole number from {low:,} to {high:,}")
        return default
    value = record[name]
    number = int(value) if isinstance(value, float) and value.is_integer() else value
    if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
        raise ConfigError(f"{at}: field {name!r} must be a whole number from {low:,} to {high:,}, "
                          f"got {short_json(value)}")
    return number


def _month_day(record: dict[str, Any], at: str) -> tuple[int, int]:
    month = _whole(record, "month", at, 1, 12)
    day = _whole(record, "day", at, 1, 31)
    if day > _cal.monthrange(2000, month)[1]:  # 2000 is a leap year: 29 February is allowed
        raise ConfigError(f"{at}: month {month} has no day {day}")
    return month, day


def _shift(today: dt.date, days: int, at: str) -> dt.date:
    try:
        return today + dt.timedelta(days=days)
    except OverflowError:
        raise ConfigError(f"{at}: {days:+,} days from {today} falls outside {_CALENDAR}; choose another --today "
                          "or offset") from None


def _in_calendar(year: int, today: dt.date, at: str) -> int:
    if not dt.MINYEAR <= year <= dt.MAXYEAR:
        raise ConfigError(f"{at}: from {today} the answer is year {year}, outside {_CALENDAR}; choose another "
                          "--today or offset")
    return year


def _next_occurrence(today: dt.date, month: int, day: int, same_day: bool, at: str = "date rule") -> dt.date:
    # 29 February comes back within eight years (2096 -> 2104: 2100 is no leap year).
    for year in range(today.year, today.year + 9):
        if year > dt.MAXYEAR:
            break
        try:
            when = dt.date(year, month, day)
        except ValueError:  # 29 February in a common year
            continue
        if when > today or (same_day and when == today):
            return when
    raise ConfigError(f"{at}: the next month {month}, day {day} after {today} falls outside {_CALENDAR}; choose "
                      "another --today")


# --- the no-leak rule -------------------------------------------------------------------------------

def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def check_no_leak(prompt: str, question: str, questions: Sequence[str]) -> None:
    """Raise if the prompt, apart from the asked question itself, contains any evaluated question."""
    LeakCheck(questions).check(prompt, question)


def _holds_words(text: str, words: str) -> bool:
    """Whether `words` stands in `text` as whole words: a question "q" or "What is 2" is not in "quick" or
    "What is 25 + 1?" (a substring match stopped a run on such a prompt)."""
    start = text.find(words)
    while start >= 0:
        end = start + len(words)
        if ((start == 0 or not (text[start - 1].isalnum() and words[0].isalnum()))
                and (end == len(text) or not (text[end].isalnum() and words[-1].isalnum()))):
            return True
        start = text.find(words, start + 1)
    return False


class LeakCheck:
    """check_no_leak over many prompts: each question normalised once, and each distinct context (the prompt less
    its question: one per few-shot setting, however many items) searched once. Checked item by item, 1,319
    GSM8K-sized questions took 27 s before the first was asked (every question normalised again per prompt)."""

    def __init__(self, questions: Sequence[str]) -> None:
        self.questions = {n: q for q in questions if (n := _norm(q))}
        self.checked: set[str] = set()

    def check(self, prompt: str, question: str) -> None:
        at = prompt.rfind(question)
        context = _norm(prompt[:at] + prompt[at + len(question):] if at >= 0 else prompt)
        if context in self.checked:
            return
        for normed, other in self.questions.items():
            if normed in context and _holds_words(context, normed):
                raise ConfigError(f"the prompt's demonstrations contain an evaluated question ({other!r}); "
                                  "evaluation items must not appear in the few-shot examples")
        self.checked.add(context)


# --- running ----------------------------------------------------------------------------------------

def eval_prompt(question: str, dialect: "Dialect", registry: "ToolRegistry | None", backend: "Backend",
                few_shot: int | None = None) -> str:
    """The dialect's prompt for `question`; `few_shot` = K keeps the first K worked examples (None: all, 0: none)."""
    return dialect.prompt(question, registry.specs() if registry is not None else None, backend.chat_prompt,
                          few_shot=True if few_shot is None else few_shot)


@contextmanager
def pinned_today(today: dt.date | None) -> Iterator[None]:
    """Give the Calendar tool the evaluation's date for the duration of a run."""
    if today is None:
        yield
        return
    from toolcall.tools import calendar as calendar_tool

    calendar_tool.set_today(today)
    try:
        yield
    finally:
        calendar_tool.set_today(None)


def default_today() -> dt.date:
    """The date the Calendar tool would report now ($TOOLCALL_TODAY or the system clock)."""
    from toolcall.tools import calendar as calendar_tool

    return calendar_tool.today()


def evaluate(items: Sequence[EvalItem], task: str, backend: "Backend", dialect: "Dialect", registry: "ToolRegistry | None",
             loop_config: "LoopConfig", *, few_shot: int | None = None, today: dt.date | None = None,
             settings: dict[str, Any] | None = None,
             progress: Callable[[str, int, ItemResult], None] | None = None) -> EvalReport:
    """Run every item twice with the same prompt: tools disabled (call-open token banned), then enabled."""
    from dataclasses import replace

    from .runner import run_loop

    _check_task(task)
    grade = GRADERS[task]
    questions = [it.question for it in items]
    # 1. One prompt per item, shared by both modes; refuse any prompt whose demos hold an evaluated question.
    prompts = []
    leaks = LeakCheck(questions)
    for it in items:
        prompt = eval_prompt(it.question, dialect, registry, backend, few_shot)
        leaks.check(prompt, it.question)
        prompts.append(prompt)
    report = EvalReport(task, today.isoformat() if today else None, dict(settings or {}), {})
    with pinned_today(today):
        for mode in MODES:
            config = replace(loop_config, tools_enabled=(mode == "tools"))
            results: list[ItemResult] = []
            decoded = 0
            began = time.perf_counter()
            # 2. Decode each prompt; the loop pauses at call markers only when tools are on.
            for it, prompt in zip(items, prompts):
                start = time.perf_counter()
                out = run_loop(backend, prompt, dialect, registry, config)
                decoded += out.counters.decoded_tokens
                results.append(_grade(mode, it, out, dialect, config, grade, time.perf_counter() - start))
                if progress is not None:
                    progress(mode, len(results), results[-1])
            # 3. Aggregate.
            report.modes[mode] = _summarise(mode, results, time.perf_counter() - began, decoded)
            report.items.extend(results)
    return report


def _grade(mode: str, item: EvalItem, out: "LoopResult", dialect: "Dialect", config: "LoopConfig",
           grade: Callable[[str, str], tuple[bool, bool]], seconds: float) -> ItemResult:
    prediction = _before_unfinished_call(dialect.reply(out.text, keep_calls=False), dialect, out.stop_reason)
    correct, exact = grade(prediction, item.answer)
    return ItemResult(mode, item.question, item.answer, prediction, correct, exact, out.text, _tool_use(out, config),
                      round(seconds, 3), out.stop_reason)


def _tool_use(out: "LoopResult", config: "LoopConfig") -> list[dict[str, Any]]:
    """The calls that count as tool use: none with tools off (every call there was refused, or malformed, and nothing
    ran); with tools on, every call but those refused past the call limit. The refusal's error is "tools are disabled",
    where "Error: tools are disabled" was left out, so nothing was: with tools off, a dialect whose call opener cannot
    be banned (MOSS) was reported to call a tool on every item it wrote a command for."""
    if not config.tools_enabled:
        return []
    refused = call_limit_reached(config.max_calls)
    return [c.to_dict() for c in out.calls if c.error != refused]


def _before_unfinished_call(prediction: str, dialect: "Dialect", stop_reason: str | None) -> str:
    """The reply a person reads, without a call the token limit cut (`[Calculator(17 * 23` at its end): its numbers
    are the call's, not an answer, and the first-number rule read them as one. The server shows such a reply so too."""
    opener = dialect.call_start or dialect.open_marker
    if stop_reason != "length" or not opener:
        return prediction
    at = prediction.rfind(opener)
    return prediction[:at].rstrip() if at >= 0 and dialect.begins_call(prediction[at:]) else prediction


def _summarise(mode: str, results: Sequence[ItemResult], seconds: float, decoded: int) -> ModeSummary:
    n = len(results)

    def share(values: Iterator[bool]) -> float:
        return round(sum(values) / n, 4) if n else 0.0

    return ModeSummary(
        mode=mode, n=n,
        accuracy=share(r.correct for r in results),
        exact_accuracy=share(r.exact for r in results),
        call_share=share(bool(r.calls) for r in results),
        avg_calls=round(sum(len(r.calls) for r in results) / n, 4) if n else 0.0,
        seconds=round(seconds, 3), decoded_tokens=decoded,
    )


def check_output(output: Path, reads: Mapping[str, Path | None]) -> None:
    """Refuse, before any model loads, an --output that cannot be a file or would replace what the run reads
    (`reads`: each input by its flag). `--input mine.jsonl --output mine.jsonl` replaced the items with the results;
    overwriting an earlier results file stays allowed: rerunning an evaluation into it is normal; an existing file
    that holds anything else (a finished data-gen corpus, a script) is refused."""
    if output.is_dir():
        raise ConfigError(f"--output {output} is a directory; give the path of a file for the per-item results (JSONL)")
    for folder in output.absolute().parents:  # the nearest folder that exists must be one
        if folder.exists():
            if not folder.is_dir():
                raise ConfigError(f"--output {output}: {folder} is a file, not a directory")
            break
    if not output.exists():
        return
    for flag, source in reads.items():
        if source is None or not source.exists():
            continue
        if source.is_dir() and output.resolve().is_relative_to(source.resolve()):
            raise ConfigError(f"--output {output} is a file inside {flag} {source}, which this run reads; "
                              "write the results somewhere else")
        if not source.is_dir() and os.path.samefile(output, source):
            raise ConfigError(f"--output {output} is {flag} {source}, which this run reads: writing the results "
                              "there would replace it; give another file")
    found = _not_results(output) if output.is_file() else None   # a device (/dev/null) or a pipe holds nothing
    if found is not None:
        # A finished data-gen corpus, a script: replaced by the results without a word.
        raise ConfigError(f"--output {output} exists and is not an earlier eval results file: {found}; eval replaces "
                          "only a file of its own per-item results: give another path, or remove the file if it may "
                          "go")


#: The most of an existing --output read to tell whether it holds eval results: its first line, bounded.
RESULTS_PEEK_BYTES = 16 * 1024 * 1024


def results_fields() -> tuple[tuple[str, ...], ...]:
    """The fields a per-item results row always has, in order: math and dates (ItemResult), BFCL (BfclResult)."""
    from .bfcl import BfclResult

    return tuple(tuple(f.name for f in fields(kind) if f.default is MISSING and f.default_factory is MISSING)
                 for kind in (ItemResult, BfclResult))


def _not_results(output: Path) -> str | None:
    """What the existing file `output` looks like when it is not an eval results file (judged by its first non-blank
    line: a JSON object with the fields of a results row); None when it is one, or holds nothing but white space."""
    try:
        with output.open("rb") as fh:
            raw = b""
            while not raw.strip():
                raw = fh.readline(RESULTS_PEEK_BYTES)
                if not raw:
                    return None
    except OSError as err:
        return f"it cannot be read to tell ({err.strerror or err})"
    try:
        line = raw.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        return "its first line is not UTF-8 text (a binary file?)"
    shown = line if len(line) <= 60 else line[:60] + "..."
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):
        return f"its first line is not JSON ({shown!r})"
    if not isinstance(row, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(row), "a number")
        return f"its first line is JSON but {kind}, not an object ({shown!r})"
    need = results_fields()
    if any(row.keys() >= set(names) for names in need):
        return None
    has = ", ".join(str(k) for k in list(row)[:8]) + (" ..." if len(row) > 8 else "")
    rows = " or ".join(", ".join(names[:4]) + " ..." for names in need)
    return f"its first line is a JSON object with the fields {has or '(none)'}, not a results row ({rows})"


class ResultsFile:
    """The per-item results, one JSON line each, written and flushed as each item is graded, so a run that is
    stopped keeps what it measured. An existing file is emptied at the first line, not on opening: a run that fails
    before its first item (a model that does not load) leaves an earlier run's results as they were."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines = 0
        existed = path.exists()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh: IO[str] = path.open("a", encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"--output {path} cannot be written: {err.strerror or err}") from None
        self._created = not existed
        self._regular = path.is_file()  # /dev/null or a pipe cannot be emptied, and need not be

    def write(self, record: dict[str, Any]) -> None:
        try:
            if self.lines == 0 and self._regular:
                self._fh.truncate(0)
            self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._fh.flush()
        except OSError as err:
            raise ConfigError(f"--output {self.path}: writing line {self.lines + 1} failed: "
                              f"{err.strerror or err}") from None
        self.lines += 1

    def close(self) -> None:
        """Close; a file this run created and wrote nothing into is removed (the run failed before its first item).
        A line whose write failed (a full disk) is still in the buffer: closing tries it once more, and a failure
        then is the write's, already reported, not a second error (it came out as a traceback)."""
        try:
            self._fh.close()
        except OSError:
            pass
        if self._created and self.lines == 0 and self._regular:
            self.path.unlink(missing_ok=True)


def worked_examples(dialect: "Dialect", registry: "ToolRegistry | None", limit: int) -> int:
    """How many worked examples `dialect`'s prompt shows for these tools, counted up to `limit`: the least K whose
    prompt is the full one (0 for a dialect that shows none, whatever K)."""
    if registry is None:
        return 0
    specs = registry.specs()

    def chat(messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True,
             tools: Sequence[dict[str, Any]] | None = None) -> str:
        return json.dumps([dict(m) for m in messages]) + json.dumps(tools)  # any faithful rendering will do

    question = "How many worked examples are there?"
    full = dialect.prompt(question, specs, chat, few_shot=True)
    k = 0
    while k < limit and dialect.prompt(question, specs, chat, few_shot=k) != full:
        k += 1
    return k


def check_few_shot(few_shot: int | None, dialect: "Dialect", dialect_name: str, registry: "ToolRegistry | None") -> None:
    """Refuse a --few-shot K above the worked examples there are: the prompt showed all of them without a word."""
    if not few_shot:
        return
    available = worked_examples(dialect, registry, limit=few_shot)
    if available < few_shot:
        tools = ", ".join(t.name for t in registry) if registry is not None else "no tools"
        have = (f"holds {available} worked example{'s' if available > 1 else ''}; give at most {available}"
                if available else "holds no worked examples; leave --few-shot out or give 0")
        raise ConfigError(f"--few-shot {few_shot}: the {dialect_name} prompt for {tools} {have}")


def format_table(report: EvalReport) -> str:
    """A small fixed-width table: one row per mode."""
    head = f"{'mode':<10}{'n':>5}{'accuracy':>10}{'exact':>8}{'w/ call':>9}{'calls':>7}{'seconds':>9}"
    rows = [head, "-" * len(head)]
    for m in report.modes.values():
        rows.append(f"{m.mode:<10}{m.n:>5}{m.accuracy:>10.1%}{m.exact_accuracy:>8.1%}{m.call_share:>9.1%}"
                    f"{m.avg_calls:>7.2f}{m.seconds:>9.1f}")
    when = f", today {report.today}" if report.today else ""
    return f"task {report.task}{when}\n" + "\n".join(rows)


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ConfigError(f"unknown eval task {task!r}; valid tasks: {', '.join(TASKS)}")
