"""BFCL evaluation: Berkeley Function Calling Leaderboard items offered as tools, one reply each, judged by bfcl-eval."""
from __future__ import annotations

import importlib.util
import json
import random
import sys
import time
import types
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .binding import parameter_order
from .calls import ToolCall, until_repeat
from .errors import BackendError, ConfigError, MissingDependencyError
from .jsonl import read_jsonl
from .options import at_least, option
from .specs import ToolSpec, ToolSpecs

if TYPE_CHECKING:
    from .backends.base import Backend, DecodeSession, Steering
    from .calls import Parsed
    from .dialects.base import Dialect
    from .loop import LoopConfig

__all__ = [
    "CATEGORIES",
    "LIVE",
    "NON_LIVE",
    "BfclConfig",
    "BfclItem",
    "BfclReport",
    "BfclResult",
    "ast_judge",
    "data_dir",
    "data_version",
    "evaluate_bfcl",
    "format_bfcl_table",
    "item_prompt",
    "item_specs",
    "item_steering",
    "judge_reply",
    "load_bfcl_items",
    "model_output",
    "to_json_schema",
    "write_bfcl_items",
]

#: Our category name -> BFCL v4's file stem (`BFCL_v4_<stem>.json`; the checker reads "parallel"/"multiple" in it).
CATEGORIES: dict[str, str] = {
    "simple": "simple_python", "multiple": "multiple", "parallel": "parallel",
    "parallel_multiple": "parallel_multiple", "irrelevance": "irrelevance",
    "live_simple": "live_simple", "live_multiple": "live_multiple", "live_parallel": "live_parallel",
    "live_parallel_multiple": "live_parallel_multiple", "live_irrelevance": "live_irrelevance",
    "live_relevance": "live_relevance",
}
NON_LIVE = ("simple", "multiple", "parallel", "parallel_multiple", "irrelevance")
#: Functions and requests contributed by real users: what a model is checked with, never tuned or selected on.
LIVE = tuple(c for c in CATEGORIES if c.startswith("live_"))
_GROUPS = {"non_live": NON_LIVE, "live": LIVE, "all": NON_LIVE + LIVE}
#: The reply budget when --max-new-tokens is not given: parallel items need several calls with their arguments.
DEFAULT_MAX_NEW_TOKENS = 192
#: BFCL's parameter types that JSON Schema spells otherwise. "any" is offered as a string because the checker
#: reads an "any" value as one.
_TYPES = {"dict": "object", "float": "number", "tuple": "array", "any": "string"}
_INSTALL = "pip install --no-deps bfcl-eval"


class BfclMissingError(MissingDependencyError):
    """bfcl-eval is absent: its wheel carries the data and the checker, and is installed without its dependencies."""

    def __init__(self) -> None:
        ImportError.__init__(self, f"bfcl-eval is not installed (needed for --task bfcl: its data and AST checker); "
                                   f"install it with: {_INSTALL} (its own dependencies are API SDKs the checker "
                                   "does not use)")
        self.package = "bfcl-eval"


@dataclass(frozen=True)
class BfclConfig:
    """Which BFCL items `toolcall eval --task bfcl` runs; every field is a flag."""

    categories: tuple[str, ...] = option(NON_LIVE, metavar="NAMES",
                                         help="comma-separated BFCL categories, or the groups non_live, live, all "
                                              f"(categories: {', '.join(CATEGORIES)})")
    seed: int = option(0, help="seed of the per-category sample drawn when --limit is below a category's size")
    exclude_seed: int | None = option(None, metavar="SEED",
                                      help="draw the sample from the items --seed SEED would not draw at the same "
                                           "--limit: a second sample disjoint from a first one (a report's)")
    bfcl_data: Path | None = option(None, metavar="DIR",
                                    help="a directory in BFCL's layout (BFCL_v4_<category>.json, possible_answer/) "
                                         "(default: the bfcl-eval package's)")

    def __post_init__(self) -> None:
        at_least(self, seed=0)
        if self.exclude_seed is not None:
            at_least(self, exclude_seed=0)
        self.names()  # an unknown category fails before any model loads

    def names(self) -> tuple[str, ...]:
        """The categories to run, groups expanded, each once, in the order given."""
        out: list[str] = []
        for name in self.categories:
            key = name.strip().lower()
            if key in _GROUPS:
                out.extend(_GROUPS[key])
            elif key in CATEGORIES:
                out.append(key)
            else:
                raise ConfigError(f"unknown BFCL category {name!r}; valid: {', '.join([*_GROUPS, *CATEGORIES])}")
        if not out:
            raise ConfigError("no BFCL category given")
        return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class BfclItem:
    """One BFCL entry: the conversation's first turn, the functions offered (BFCL's own form), the possible answers."""

    id: str
    category: str
    messages: tuple[Mapping[str, str], ...]
    functions: tuple[Mapping[str, Any], ...]
    answer: tuple[Mapping[str, Any], ...] | None   # None for (ir)relevance items: they have no ground truth


@dataclass
class BfclResult:
    """What happened on one item; one line of the per-item JSONL."""

    id: str
    category: str
    valid: bool
    kind: str                 # "ok" or the failure kind (see FAILURE_KINDS)
    error_type: str | None    # the checker's own error type, when it judged the calls
    error: list[str]
    calls: list[dict[str, Any]]   # the model_output handed to the checker: [{name: {arg: value}}]
    reply: str
    seconds: float
    # True when the calls were to be held to the offered schemas but this item's grammar could not be used, so its
    # reply was decoded without it.
    unconstrained: bool = False
    # With repeat_calls off, the reply's calls the loop's look would not take (`handed_calls`: from the first block
    # that repeats a call of the group, or after a malformed block): neither handed to a client nor judged.
    repeated: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


#: Why an item failed: no call where one was due; call-like text that did not parse; a function that is not the
#: expected one (or not offered); the wrong number of calls; the right function with wrong or missing arguments;
#: a call where no offered function fits (irrelevance); calls the AST checker raised an exception on (not accepted:
#: BFCL's own runner would stop there; the exception is the item's error).
FAILURE_KINDS = ("no_call", "unparsable", "wrong_function", "wrong_count", "wrong_args", "called_irrelevant",
                 "checker_error")


@dataclass
class CategorySummary:
    """Aggregates of one category."""

    category: str
    n: int
    accuracy: float       # share judged right (BFCL's AST accuracy; for irrelevance: no call written)
    call_rate: float      # share of replies with at least one parsed call
    failures: dict[str, int]
    seconds: float


@dataclass
class BfclReport:
    """Every category run; `summary()` is the JSON summary line."""

    settings: dict[str, Any]
    categories: dict[str, CategorySummary] = field(default_factory=dict)
    items: list[BfclResult] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"task": "bfcl", **self.settings, "categories": {k: asdict(v) for k, v in self.categories.items()}}


# --- data ---------------------------------------------------------------------------------------------------------

def data_dir() -> Path:
    """bfcl-eval's data directory, found without importing the package (its wheel is installed --no-deps)."""
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise BfclMissingError()
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def data_version(data: str | Path | None = None) -> str:
    """What the items come from: "bfcl-eval <version>", or the directory given instead."""
    if data is not None:
        return str(data)
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"bfcl-eval {version('bfcl-eval')}"
    except PackageNotFoundError as err:
        raise BfclMissingError() from err


#: The speakers a BFCL conversation may hold; the chat template is handed nothing else.
_ROLES = ("system", "user", "assistant")
_LAYOUT = "a BFCL data directory holds BFCL_v4_<category>.json and possible_answer/BFCL_v4_<category>.json"


def _found(record: Mapping[str, Any], key: str) -> str:
    """What a field holds, in JSON's words, for an error message."""
    return _json_kind(record[key]) if key in record else "no such field"


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "a list"
    kind = "a string" if isinstance(value, str) else "a number"
    # A short value is quoted so the line is easy to find; a long one is named only by its kind.
    shown = json.dumps(value[:41] if isinstance(value, str) else value, ensure_ascii=False)
    return f"{kind} ({shown})" if len(shown) <= 40 else kind


def _read_entries(path: Path, what: str) -> list[tuple[str, dict[str, Any]]]:
    """("FILE:LINE", object) for each line of a BFCL file (one JSON object per line, despite the .json name)."""
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist ({_LAYOUT})")
    try:
        # read_jsonl names FILE:LINE for bytes that are not UTF-8, lines that are not JSON or not objects.
        return list(read_jsonl(path, what))
    except OSError as err:
        raise ConfigError(f"cannot read {what} {path}: {err.strerror or err}") from err


def _entry_id(where: str, record: Mapping[str, Any], seen: dict[str, str]) -> str:
    """The line's "id", a non-empty string no earlier line of the file holds: answers are joined to items by it."""
    ident = record.get("id")
    if not isinstance(ident, str) or not ident.strip():
        raise ConfigError(f"{where}: field 'id' must be a non-empty string, found {_found(record, 'id')}")
    if ident in seen:
        raise ConfigError(f"{where}: id {ident!r} is already used at {seen[ident]}; each id must be unique")
    seen[ident] = where
    return ident


def _first_turn(where: str, record: Mapping[str, Any]) -> tuple[Mapping[str, str], ...]:
    """The messages of the entry's first turn (the one asked), after every turn's shape is checked."""
    shape = 'a non-empty list of turns, each a list of {"role", "content"} messages'
    question = record.get("question")
    if not isinstance(question, list) or not question:
        raise ConfigError(f"{where}: field 'question' must be {shape}, found {_found(record, 'question')}")
    for t, turn in enumerate(question):
        if not isinstance(turn, list):
            raise ConfigError(f"{where}: question[{t}] must be a list of {{\"role\", \"content\"}} messages, "
                              f"found {_json_kind(turn)}")
        for m, message in enumerate(turn):
            at = f"{where}: question[{t}][{m}]"
            if not isinstance(message, dict):
                raise ConfigError(f"{at} must be a {{\"role\", \"content\"}} message object, found "
                                  f"{_json_kind(message)}")
            if message.get("role") not in _ROLES:
                raise ConfigError(f"{at}: field 'role' must be one of {', '.join(_ROLES)}, found "
                                  f"{_found(message, 'role')}")
            if not isinstance(message.get("content"), str):
                raise ConfigError(f"{at}: field 'content' must be a string, found {_found(message, 'content')}")
    if not question[0]:
        raise ConfigError(f"{where}: question[0], the turn the model answers, holds no message")
    return tuple(question[0])


def _functions(where: str, record: Mapping[str, Any], judged: bool) -> tuple[Mapping[str, Any], ...]:
    """The entry's functions, each checked for what item_specs, model_output and the AST checker read of it."""
    functions = record.get("function")
    if not isinstance(functions, list):
        raise ConfigError(f"{where}: field 'function' must be a list of function objects (each with a 'name'), "
                          f"found {_found(record, 'function')}")
    if judged and not functions:
        # The checker compares the calls with the offered functions; an item offering none cannot be judged.
        raise ConfigError(f"{where}: field 'function' is empty; an item with a possible answer must offer at "
                          "least one function")
    names: dict[str, int] = {}
    for i, function in enumerate(functions):
        at = f"{where}: function[{i}]"
        if not isinstance(function, dict):
            raise ConfigError(f"{at} must be a function object (with a 'name'), found {_json_kind(function)}")
        name = function.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{at}: field 'name' must be a non-empty string, found {_found(function, 'name')}")
        if name.lower() in names:
            # Tools are looked up by name in any case: two alike could not both be offered.
            raise ConfigError(f"{at}: function name {name!r} is also function[{names[name.lower()]}]'s; the names "
                              "of an item's functions must differ (in any case)")
        names[name.lower()] = i
        if "description" in function and not isinstance(function["description"], str):
            raise ConfigError(f"{at}: field 'description' must be a string, found "
                              f"{_found(function, 'description')}")
        _check_parameters(at, function)
    return tuple(functions)


def _check_parameters(at: str, function: Mapping[str, Any]) -> None:
    # The AST checker reads parameters["properties"][name] and parameters["required"] without a default.
    shape = ("an object with 'properties' (an object of parameter schemas, each an object) and 'required' "
             "(a list of parameter names)")
    params = function.get("parameters")
    if not isinstance(params, dict):
        raise ConfigError(f"{at}: field 'parameters' must be {shape}, found {_found(function, 'parameters')}")
    properties, required = params.get("properties"), params.get("required")
    if not isinstance(properties, dict) or not all(isinstance(p, dict) for p in properties.values()):
        found = _found(params, "properties") if not isinstance(properties, dict) else "a schema that is not an object"
        raise ConfigError(f"{at}: field 'parameters' must be {shape}; its 'properties' holds {found}")
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        found = _found(params, "required") if not isinstance(required, list) else "a name that is not a string"
        raise ConfigError(f"{at}: field 'parameters' must be {shape}; its 'required' holds {found}")


def _answers(path: Path) -> dict[str, tuple[Mapping[str, Any], ...]]:
    """Each answer line's ground truth by id: a non-empty list of {function name: {argument: [accepted values]}}, the
    form the AST checker reads."""
    shape = 'a non-empty list of {"function name": {"argument": [accepted values]}} objects'
    answers: dict[str, tuple[Mapping[str, Any], ...]] = {}
    seen: dict[str, str] = {}
    for where, record in _read_entries(path, "BFCL answer file"):
        ident = _entry_id(where, record, seen)
        truth = record.get("ground_truth")
        if not isinstance(truth, list) or not truth:
            raise ConfigError(f"{where}: field 'ground_truth' must be {shape}, found {_found(record, 'ground_truth')}")
        for i, call in enumerate(truth):
            args = next(iter(call.values())) if isinstance(call, dict) and len(call) == 1 else None
            if not isinstance(args, dict) or not all(isinstance(v, list) for v in args.values()):
                raise ConfigError(f"{where}: ground_truth[{i}] must be one function name mapped to an object of "
                                  f"argument -> list of accepted values, found {_json_kind(call)}")
        answers[ident] = tuple(truth)
    return answers


def load_bfcl_items(category: str, limit: int | None = None, seed: int = 0,
                    data: str | Path | None = None, exclude_seed: int | None = None) -> list[BfclItem]:
    """The items of one category, all or `limit` of them drawn with `seed` (kept in file order); answers joined by id.
    With `exclude_seed`, the `limit` items are drawn from those the `exclude_seed` sample of the same size leaves out
    (all of them when fewer remain; none when that sample took the whole category).

    Every line of the category's files is checked, drawn or not, so a bad file fails whatever the sample: a
    ConfigError names FILE:LINE, the field and what it must hold. That a possible answer calls only offered functions
    is checked for the items drawn."""
    if category not in CATEGORIES:
        raise ConfigError(f"unknown BFCL category {category!r}; valid: {', '.join(CATEGORIES)}")
    root = Path(data) if data is not None else data_dir()
    stem = CATEGORIES[category]
    # (Ir)relevance items have no ground truth: they are judged by whether a call was written.
    judged = "relevance" not in category
    items: list[BfclItem] = []
    lines: dict[str, str] = {}
    for where, record in _read_entries(root / f"BFCL_v4_{stem}.json", "BFCL data file"):
        ident = _entry_id(where, record, lines)
        items.append(BfclItem(ident, category, _first_turn(where, record), _functions(where, record, judged), None))
    if limit is not None and (limit < len(items) or exclude_seed is not None):
        pool: Sequence[int] = range(len(items))
        if exclude_seed is not None:
            # A category no larger than the limit was sampled whole by that seed: none of its items is left (it was
            # all drawn again, so "30 other items" shared every one of live_relevance's 16).
            taken = set(_draw(pool, min(limit, len(pool)), exclude_seed, category))
            pool = [i for i in pool if i not in taken]
        items = [items[i] for i in _draw(pool, min(limit, len(pool)), seed, category)]
    if not judged:
        return items
    answer_file = root / "possible_answer" / f"BFCL_v4_{stem}.json"
    answers = _answers(answer_file)
    for i, item in enumerate(items):
        if item.id not in answers:
            raise ConfigError(f"BFCL item {item.id!r} ({lines[item.id]}) has no possible answer in {answer_file}: "
                              "an answer line with the same id is needed")
        offered = [str(f["name"]) for f in item.functions]
        # The checker looks each expected call's function up among the offered ones, and fails on one it lacks.
        for name in (next(iter(call)) for call in answers[item.id]):
            if name not in offered:
                raise ConfigError(f"BFCL item {item.id!r} ({lines[item.id]}): its possible answer in {answer_file} "
                                  f"calls {name!r}, which the item does not offer (offered: {', '.join(offered)})")
        items[i] = replace(item, answer=answers[item.id])
    return items


def _draw(pool: Sequence[int], k: int, seed: int, category: str) -> list[int]:
    # A string seed gives each category its own sample, the same on every run and machine; file order is kept.
    return sorted(random.Random(f"{seed}:{category}").sample(pool, k))


# --- offering the functions ---------------------------------------------------------------------------------------

def to_json_schema(schema: Any) -> Any:
    """A BFCL parameter schema in JSON Schema's words (dict -> object, float -> number, tuple -> array, any -> string),
    nested properties and items included."""
    if isinstance(schema, list):
        return [to_json_schema(s) for s in schema]
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            out[key] = _TYPES.get(value, value)
        elif key == "properties" and isinstance(value, Mapping):
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf"):
            out[key] = to_json_schema(value)
        else:
            out[key] = value
    return out


def item_specs(item: BfclItem) -> ToolSpecs:
    """The item's functions as the tools offered to the model."""
    return ToolSpecs(ToolSpec(str(f["name"]), str(f.get("description", "")),
                              to_json_schema(f.get("parameters") or {"type": "dict", "properties": {}}))
                     for f in item.functions)


def item_prompt(item: BfclItem, dialect: Dialect, chat: Callable[..., str]) -> str:
    """The item's conversation with its functions offered the dialect's way (the chat template's `tools=` for
    hermes and its kin); the last user message is the question, earlier messages its history."""
    messages = [dict(m) for m in item.messages]
    last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=len(messages) - 1)
    question = str(messages[last].get("content", ""))
    history = messages[:last] + messages[last + 1:]
    # ToolSpecs answers what a dialect asks of the tools it offers (their schemas, their number).
    return dialect.prompt(question, item_specs(item), chat, history=history, few_shot=False)


# --- reading the reply --------------------------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    # The checker compares with type(...) ==: mappings must be plain dicts, sequences lists. A key keeps its type: BFCL
    # decodes `{1: "a"}` with its int key, which the checker does not take for the answer's "1" (str() made it pass).
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def handed_calls(parsed: Parsed, dialect: Dialect, repeat_calls: bool = True) -> list[ToolCall]:
    """The calls of a reply that BFCL judges: all of them, or, with repeat_calls off where the dialect writes a
    group a block at a time (hermes, each block ending at a call marker), those the loop's look for more calls takes
    with it: the first block whole, then each block that makes no request made before it or twice in itself, up to
    the first that does (`until_repeat`) or a malformed call between blocks, where the look ends too. Dialects that
    write a group whole run it as written. (Calls after prose are judged as BFCL reads a reply, where the loop's
    group would have ended at the prose.)"""
    calls = list(parsed.calls)
    if repeat_calls or not dialect.continues_calls("") or not calls:
        return calls
    blocks: list[list[ToolCall]] = [[calls[0]]]
    reach = max(map(len, dialect.call_markers), default=0)
    for before, call in zip(calls, calls[1:]):
        if any(before.span[1] <= issue.pos < call.span[0] for issue in parsed.issues):
            break  # a malformed call after good ones ends the group: the look takes no malformed block
        # A block ends at a call marker after its last call (a single call's span holds its closing tag; a marker
        # inside a call's own arguments is no end).
        between = parsed.text[max(before.span[0], before.span[1] - reach):call.span[0]]
        if any(marker in between for marker in dialect.call_markers):
            blocks.append([call])
        else:
            blocks[-1].append(call)
    kept = list(blocks[0])
    for block in blocks[1:]:
        if len(until_repeat(block, kept)) < len(block):
            break
        kept += block
    return kept


def model_output(parsed: Parsed, item: BfclItem, calls: Sequence[ToolCall] | None = None) -> list[dict[str, Any]]:
    """The parsed calls (or `calls`, some of them) in BFCL's model_output form `[{name: {arg: value}}]`.

    Names stay as written: the functions are offered under their own names, dots included, and BFCL judges a model
    offered those (its prompting and local FC handlers, whose table entries say `underscore_to_dot=False`) by them, so
    `math_factorial` is not `math.factorial`. Positional arguments (Toolformer, MOSS) are named in the schema's
    parameter order.
    """
    offered = {str(f["name"]): f for f in item.functions}
    out: list[dict[str, Any]] = []
    for call in parsed.calls if calls is None else calls:
        if isinstance(call.args, Mapping):
            args = dict(call.args)
        else:
            params = offered.get(call.tool, {}).get("parameters") or {}
            args = dict(zip(parameter_order(params), call.args))
        out.append({call.tool: _plain(args)})
    return out


# --- the judge ----------------------------------------------------------------------------------------------------

Judge = Callable[[Sequence[Mapping[str, Any]], list[dict[str, Any]], Sequence[Mapping[str, Any]], str], dict[str, Any]]

#: The model name handed to the checker. It looks the model up in BFCL's table of leaderboard models only to learn
#: whether the names were offered with their dots as underscores; they are offered as they are (see model_output).
_MODEL_NAME = "toolcall"
_CHECKER = "bfcl_eval.eval_checker.ast_eval.ast_checker"
_MODEL_CONFIG = "bfcl_eval.constants.model_config"


class _NoRenaming(dict[str, Any]):
    """Stands in for BFCL's model table while the checker imports: every model keeps dotted names as they are."""

    def __missing__(self, key: str) -> Any:
        return types.SimpleNamespace(underscore_to_dot=False)


def _import_checker() -> types.ModuleType:
    """bfcl-eval's AST checker module, imported through its public path.

    The checker module imports BFCL's model table (constants/model_config.py), which imports every model handler and
    with them every API SDK; the checker reads one flag from it (see _MODEL_NAME). So, unless the real table is
    already loaded, a table answering "no renaming" stands in for it during the import and is removed afterwards:
    nothing else sees it, and bfcl-eval installs with --no-deps.
    """
    if _CHECKER in sys.modules:
        return sys.modules[_CHECKER]
    if importlib.util.find_spec("bfcl_eval") is None:
        raise BfclMissingError()
    placed = _MODEL_CONFIG not in sys.modules
    if placed:
        table = types.ModuleType(_MODEL_CONFIG, "BFCL's model table, as the AST checker sees it under toolcall")
        table.MODEL_CONFIG_MAPPING = _NoRenaming()  # type: ignore[attr-defined]
        sys.modules[_MODEL_CONFIG] = table
    try:
        return importlib.import_module(_CHECKER)
    except ImportError as err:
        raise MissingDependencyError("bfcl-eval", purpose=f"the BFCL AST checker ({err})") from err
    finally:
        if placed:
            sys.modules.pop(_MODEL_CONFIG, None)


def ast_judge() -> Judge:
    """bfcl-eval's `ast_checker` for Python functions: (functions, model_output, possible_answer, category) -> its
    verdict {"valid", "error", "error_type"}."""
    checker = _import_checker()
    python = importlib.import_module("bfcl_eval.constants.enums").Language.PYTHON

    def judge(functions: Sequence[Mapping[str, Any]], output: list[dict[str, Any]],
              answer: Sequence[Mapping[str, Any]], category: str) -> dict[str, Any]:
        verdict = checker.ast_checker([dict(f) for f in functions], output, [dict(a) for a in answer], python,
                                      CATEGORIES.get(category, category), _MODEL_NAME)
        return dict(verdict)

    return judge


def _failure_kind(error_type: str, output: list[dict[str, Any]], item: BfclItem) -> str:
    offered = {str(f["name"]) for f in item.functions}
    if error_type.endswith("wrong_func_name") or any(next(iter(c)) not in offered for c in output):
        return "wrong_function"
    if error_type.endswith("wrong_count"):
        return "wrong_count"
    return "wrong_args"


def judge_reply(item: BfclItem, reply: str, dialect: Dialect, judge: Judge | None,
                seconds: float = 0.0, repeat_calls: bool = True) -> BfclResult:
    """Parse one reply with the dialect and judge its calls (`handed_calls`, under repeat_calls) as BFCL does:
    irrelevance items are right when no call was written, live_relevance items when one was, the others when the AST
    checker accepts the calls (calls it raises on are not accepted: kind "checker_error", its exception kept as the
    error)."""
    parsed = dialect.parse(reply)
    handed = handed_calls(parsed, dialect, repeat_calls)
    output = model_output(parsed, item, handed)
    called = bool(output)
    silent = "no_call" if not parsed.issues else "unparsable"

    def result(valid: bool, kind: str, error_type: str | None = None, error: Sequence[str] = ()) -> BfclResult:
        return BfclResult(item.id, item.category, valid, kind, error_type, list(error), output, reply, round(seconds, 3),
                          repeated=len(parsed.calls) - len(handed))

    if "irrelevance" in item.category:
        return result(True, "ok") if not called else result(False, "called_irrelevant")
    if item.category.endswith("relevance"):
        return result(True, "ok") if called else result(False, silent)
    if not called:
        return result(False, silent)
    if judge is None or item.answer is None:
        raise ConfigError(f"BFCL item {item.id!r} needs the AST checker and its possible answer")
    try:
        verdict = judge(item.functions, output, item.answer, item.category)
    except Exception as err:  # noqa: BLE001 - any reply is judged; one the checker cannot read is not accepted
        # e.g. `[1]` for a list of objects whose answer may be left out: the checker calls .items() on the 1.
        return result(False, "checker_error", f"checker_error:{type(err).__name__}",
                      [f"the AST checker raised {type(err).__name__}: {err}"[:2000]])
    if verdict.get("valid"):
        return result(True, "ok")
    error_type = str(verdict.get("error_type", ""))
    return result(False, _failure_kind(error_type, output, item), error_type,
                  [str(e) for e in verdict.get("error", [])])


# --- running ------------------------------------------------------------------------------------------------------

def item_steering(item: BfclItem, dialect: Dialect, config: LoopConfig | None) -> Steering | None:
    """How the reply to `item` is steered under the loop's settings: the call-open marker banned with tools off; the
    top-K trigger and the call threshold; under constrain_calls every call held to one offered function and its
    schema (the dialect's call grammar), as a server with structured outputs does. None: the model decodes freely."""
    from .backends.base import Steering

    if config is None:
        return None
    if config.force_call:
        raise ConfigError("--force-call is not used with --task bfcl: a forced call would answer every irrelevance "
                          "item wrongly; use --constrain-calls or --trigger-top-k")
    wanted = (not config.tools_enabled or config.constrain_calls or config.trigger_top_k > 0
              or config.call_threshold > 0)
    if not wanted:
        return None
    if not dialect.open_marker:
        raise ConfigError(f"the {dialect.name} dialect has no call-open marker to steer: leave out --constrain-calls, "
                          "--trigger-top-k and --call-threshold")
    if not config.tools_enabled:
        return Steering(dialect.open_marker, disable=True)
    grammar = dialect.call_grammar(item_specs(item), closers=dialect.call_markers) if config.constrain_calls else None
    return Steering(dialect.open_marker, trigger_top_k=config.trigger_top_k, max_triggers=config.max_triggers,
                    constrain=grammar, min_open_prob=config.call_threshold, close_texts=dialect.call_closers)


def _replies(batch: Sequence[BfclItem], backend: Backend, dialect: Dialect, max_new_tokens: int,
             config: LoopConfig | None) -> list[tuple[str, bool]]:
    """(reply, decoded without its grammar) per item, the batch decoded together. The reply ends where the model
    starts writing a result itself: its calls are all written by then. When a call grammar cannot be used (a schema
    llguidance refuses), the batch is decoded item by item and only that item goes without its grammar."""
    steerings = [item_steering(it, dialect, config) for it in batch]
    stops = [dialect.result_markers] * len(batch)

    def decode(items: Sequence[BfclItem], steer: Sequence[Steering | None]) -> list[DecodeSession]:
        sessions = backend.start_batch([item_prompt(it, dialect, backend.chat_prompt) for it in items])
        backend.generate_batch(sessions, stops[:len(items)], [max_new_tokens] * len(items), list(steer))
        return sessions

    try:
        return [(s.generated, False) for s in decode(batch, steerings)]
    except (ConfigError, BackendError):
        if not any(st is not None and st.constrain for st in steerings):
            raise
    out = []
    for item, steering in zip(batch, steerings):
        try:
            out.append((decode([item], [steering])[0].generated, False))
        except (ConfigError, BackendError):
            if steering is None or not steering.constrain:
                raise
            out.append((decode([item], [None])[0].generated, True))
    return out


def _batches(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start:start + size]


def evaluate_bfcl(items_by_category: Mapping[str, Sequence[BfclItem]], backend: Backend, dialect: Dialect, *,
                  max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, judge: Judge | None = None, batch_size: int = 8,
                  settings: Mapping[str, Any] | None = None, config: LoopConfig | None = None,
                  progress: Callable[[int, int, BfclResult], None] | None = None) -> BfclReport:
    """One reply per item (no tool runs: BFCL judges the calls written), parsed and judged, summarised per category.

    `judge` defaults to bfcl-eval's AST checker, loaded only when an item needs it; `config`'s steering settings
    (constrain_calls, trigger_top_k, call_threshold, tools_enabled) apply to every reply (`item_steering`).
    """
    report = BfclReport(dict(settings or {}))
    total = sum(len(v) for v in items_by_category.values())
    done = 0
    for category, items in items_by_category.items():
        began = time.perf_counter()
        results: list[BfclResult] = []
        # A batching engine (vLLM) decodes a batch together; the others decode its sessions in turn.
        for batch in _batches(items, batch_size):
            start = time.perf_counter()
            replies = _replies(batch, backend, dialect, max_new_tokens, config)
            each = (time.perf_counter() - start) / len(batch)
            for item, (reply, unconstrained) in zip(batch, replies):
                if judge is None and item.answer is not None:
                    judge = ast_judge()
                results.append(judge_reply(item, reply, dialect, judge, each,
                                           config.repeat_calls if config is not None else True))
                results[-1].unconstrained = unconstrained
                done += 1
                if progress is not None:
                    progress(done, total, results[-1])
        report.categories[category] = _summarise(category, results, time.perf_counter() - began)
        report.items.extend(results)
    return report


def _summarise(category: str, results: Sequence[BfclResult], seconds: float) -> CategorySummary:
    n = len(results)
    kinds = Counter(r.kind for r in results if not r.valid)
    return CategorySummary(
        category=category, n=n,
        accuracy=round(sum(r.valid for r in results) / n, 4) if n else 0.0,
        call_rate=round(sum(bool(r.calls) for r in results) / n, 4) if n else 0.0,
        failures={k: kinds[k] for k in FAILURE_KINDS if kinds[k]},
        seconds=round(seconds, 3),
    )


def write_bfcl_items(report: BfclReport, path: str | Path) -> None:
    """One JSON line per item."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for item in report.items:
            fh.write(json.dumps(item.to_json(), ensure_ascii=False) + "\n")


def format_bfcl_table(report: BfclReport) -> str:
    """One row per category: accuracy, call rate, and the failure kinds."""
    head = f"{'category':<24}{'n':>5}{'accuracy':>10}{'calls':>8}  failures"
    rows = [head, "-" * (len(head) + 30)]
    for s in report.categories.values():
        kinds = ", ".join(f"{k} {v}" for k, v in s.failures.items()) or "-"
        if not s.n:  # no item drawn (--exclude-seed left none): no score, rather than a 0.0% that reads as one
            rows.append(f"{s.category:<24}{0:>5}{'n/a':>10}{'n/a':>8}  no items left to draw")
            continue
        rows.append(f"{s.category:<24}{s.n:>5}{s.accuracy:>10.1%}{s.call_rate:>8.1%}  {kinds}")
    return "task bfcl\n" + "\n".join(rows)
