"""Evaluating a model with tools disabled and enabled on the same prompts (Toolformer §4.2): math and dates (BFCL: toolcall.bfcl)."""
from __future__ import annotations

import calendar as _cal
import datetime as dt
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .grading import GRADERS
from .jsonl import read_jsonl
from .loop import LoopConfig
from .options import at_least, option

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
    input: Path | None = option(None, metavar="FILE", help='JSONL of {"question", "answer"} (dates may use "rule") '
                                                          "(default: the shipped sample)")
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
    calls: list[dict[str, Any]]
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
    call_share: float        # share of items with at least one executed call
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


# --- items ------------------------------------------------------------------------------------------

def sample_path(task: str) -> Path:
    """The shipped sample set of a task (toolcall/data/*_sample.jsonl)."""
    _check_task(task)
    return Path(str(resources.files("toolcall.data").joinpath(SAMPLE_FILES[task])))


def load_items(path: str | Path, task: str, today: dt.date | None = None, limit: int | None = None) -> list[EvalItem]:
    """Read {"question", "answer"} lines; date lines may carry a "rule" instead, answered for `today`."""
    _check_task(task)
    items: list[EvalItem] = []
    for where, record in read_jsonl(path, "eval input"):
        if limit is not None and len(items) >= limit:
            break
        items.append(_item(record, task, today, where))
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
        return EvalItem(record["question"].strip(), date_answer(record, today))
    if "answer" not in record or not str(record["answer"]).strip():
        raise ConfigError(f"{where}: each line needs an 'answer' (or, for dates, a 'rule')")
    return EvalItem(record["question"].strip(), str(record["answer"]).strip())


def date_answer(record: dict[str, Any], today: dt.date) -> str:
    """The gold answer of a rule-based date question for `today` (rules documented in toolcall/data/README.md)."""
    rule = record.get("rule")
    try:
        if rule == "weekday":
            return (today + dt.timedelta(days=int(record.get("days", 0)))).strftime("%A")
        if rule == "year":
            return str(today.year + int(record.get("years", 0)))
        if rule == "month":
            index = today.month - 1 + int(record.get("months", 0))
            return _cal.month_name[index % 12 + 1]
        if rule == "date":
            day = today + dt.timedelta(days=int(record.get("days", 0)))
            return f"{day:%B} {day.day}, {day.year}"
        if rule == "days_until":
            return str((_next_occurrence(today, int(record["month"]), int(record["day"]), same_day=True) - today).days)
        if rule == "days_in_month":
            return str(_cal.monthrange(today.year, today.month)[1])
        if rule == "leap_year":
            return "yes" if _cal.isleap(today.year) else "no"
        if rule == "days_passed":
            return str(today.timetuple().tm_yday - 1)
        if rule == "weekday_of_next":
            return _next_occurrence(today, int(record["month"]), int(record["day"]), same_day=False).strftime("%A")
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"date rule {rule!r} has missing or bad fields in {record}: {err}") from err
    raise ConfigError(f"unknown date rule {rule!r}; valid rules: weekday, year, month, date, days_until, "
                      "days_in_month, leap_year, days_passed, weekday_of_next")


def _next_occurrence(today: dt.date, month: int, day: int, same_day: bool) -> dt.date:
    for year in (today.year, today.year + 1, today.year + 2):
        try:
            when = dt.date(year, month, day)
        except ValueError:  # 29 February in a common year
            continue
        if when > today or (same_day and when == today):
            return when
    raise ValueError(f"no next occurrence of month {month}, day {day}")


# --- the no-leak rule -------------------------------------------------------------------------------

def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def check_no_leak(prompt: str, question: str, questions: Sequence[str]) -> None:
    """Raise if the prompt, apart from the asked question itself, contains any evaluated question."""
    at = prompt.rfind(question)
    context = _norm(prompt[:at] + prompt[at + len(question):] if at >= 0 else prompt)
    for other in questions:
        if _norm(other) and _norm(other) in context:
            raise ConfigError(f"the prompt's demonstrations contain an evaluated question ({other!r}); "
                              "evaluation items must not appear in the few-shot examples")


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
    for it in items:
        prompt = eval_prompt(it.question, dialect, registry, backend, few_shot)
        check_no_leak(prompt, it.question, questions)
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
                results.append(_grade(mode, it, out, dialect, grade, time.perf_counter() - start))
                if progress is not None:
                    progress(mode, len(results), results[-1])
            # 3. Aggregate.
            report.modes[mode] = _summarise(mode, results, time.perf_counter() - began, decoded)
            report.items.extend(results)
    return report


def _grade(mode: str, item: EvalItem, out: "LoopResult", dialect: "Dialect",
           grade: Callable[[str, str], tuple[bool, bool]], seconds: float) -> ItemResult:
    prediction = dialect.reply(out.text, keep_calls=False)
    correct, exact = grade(prediction, item.answer)
    # Only executed calls count as tool use; a call refused because tools are off is not one.
    calls = [c.to_dict() for c in out.calls if c.ok or c.error != "Error: tools are disabled"]
    return ItemResult(mode, item.question, item.answer, prediction, correct, exact, out.text, calls,
                      round(seconds, 3), out.stop_reason)


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


def write_items(report: EvalReport, path: str | Path) -> None:
    """One JSON line per (item, mode)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for item in report.items:
            fh.write(json.dumps(item.to_json(), ensure_ascii=False) + "\n")


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
