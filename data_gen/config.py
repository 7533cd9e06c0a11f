"""One config dataclass per data_gen stage, with the Toolformer paper's defaults and per-tool overrides.

Each field with help text is also a `toolcall data-gen` flag (toolcall.options turns the fields into options).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from toolcall.backends.base import MAX_TEMPERATURE
from toolcall.errors import ConfigError
from toolcall.executor import check_timeout
from toolcall.options import at_least, flag_of, option, within

PLACEMENTS = ("prefix", "inline")
#: `--prompt`: what precedes the text when positions are found and calls sampled ("few-shot": the paper's P(x)).
PROMPTS = ("few-shot", "none")


@dataclass(frozen=True)
class PrefilterConfig:
    """Which texts a tool's stages see at all (paper §4.1: only texts where the tool may help)."""

    enabled: bool = option(True, flag="--prefilter",
                           help="show a tool only the texts where it may help (paper §4.1); --no-prefilter lets every "
                                "tool see every text")
    number_window: int = option(100, metavar="CHARS",
                                help="Calculator prefilter: the span in which three numbers a op b = c must appear")
    min_numbers: int = option(3, metavar="N", help="Calculator prefilter: numbers needed within that span")

    def __post_init__(self) -> None:
        at_least(self, number_window=1, min_numbers=1)


@dataclass(frozen=True)
class PositionConfig:
    """Where a call may start: p_i = p(call-open | P(x), x_{1:i-1}) > tau_s, the top k of them."""

    tau_s: float = option(0.05, help="position threshold on p(call-open)")
    k: int = option(5, flag="--top-k", metavar="K", help="positions kept per text and tool (k)")
    open_texts: tuple[str, ...] = (" [", "[")   # both tokens open a call; p_i sums their probabilities
    min_token: int = option(1, metavar="N", help="no call before this token: the first ones have no context")
    # Not inside a word ("o[..]n") or a number ("1,[..]240") (positions.call_may_start): the paper does not say,
    # but subword splits make such positions likely.
    word_start_only: bool = option(True, help="let a call start only where a word or number starts")
    # On 10 GSM8K tuning solutions the embedded model, sampling under the admissible grammar at the Calculator's
    # proposal tokens, wrote 26 of the 39 right proposals itself and 0 of the 4 wrong ones (3 samples at temperature
    # 0.5; greedy: 19 and 1); at its own top-k positions it wrote 3 right calls in 254 samples on 40 texts.
    at_proposals: bool = option(True, help="the model also samples calls where a tool proposes one (default "
                                           "sampling), so it writes calls where they belong; a call it writes "
                                           "there that the tool proposed too has source both")
    prompt: str = option("few-shot", choices=PROMPTS,
                         help="what the model reads before the text when it finds positions and samples calls: "
                              "few-shot, the paper's P(x) (an instruction, worked examples, and the whole text as the "
                              "Input); none, only the text up to each position, as a model trained on annotated text "
                              "reads it (it then cannot copy what the text writes after the position)")

    def __post_init__(self) -> None:
        at_least(self, k=1, min_token=0)
        _no_nan(self, "tau_s")
        within(self, tau_s=(0.0, 1.0), k=(1, MAX_POSITIONS))
        if self.prompt not in PROMPTS:
            raise ConfigError(f"prompt {self.prompt!r} is not allowed; use one of: {', '.join(PROMPTS)}")


#: Positions kept per text and tool, and calls sampled per position, at most: the paper's are 20 and 10; a million
#: samples a position ran for minutes on the fake engine before a single text was done.
MAX_POSITIONS = 1_000
MAX_SAMPLES = 100


@dataclass(frozen=True)
class SampleConfig:
    """Up to m calls sampled per kept position: under the tool's call grammar, or freely with `]` as end of sequence."""

    m: int = option(5, flag="--samples", metavar="M", help="calls sampled per kept position (m; without this flag "
                                                             "the sampling mode's per-tool values hold: default "
                                                             "sampling gives Calculator 1 and Calendar 1)")
    temperature: float = option(1.0, help="sampling temperature (0 = greedy; without this flag, default sampling "
                                          "decodes Calculator calls greedily)")
    top_k: int = option(0, flag="--sample-top-k", metavar="K", help="sample among the K likeliest tokens only (0 = all)")
    max_new_tokens: int = option(32, metavar="N", help="longest sampled call, in tokens")
    seed: int = option(0, help="sampling seed")
    constrain: bool = option(True, help="sample only well-formed calls of the tool, its arguments following the "
                                        "tool's argument grammar (llguidance); --no-constrain samples freely and "
                                        "ends a sample at `]`, as the paper")
    admissible_only: bool = option(True, flag="--admissible",
                                   help="drop a sampled call that could not be written from the text before it "
                                        "(the tool's `admissible` rule; Calculator: its numbers are written there); "
                                        "never with --sampling paper")
    stop: tuple[str, ...] = ("]",)

    def __post_init__(self) -> None:
        at_least(self, m=1, temperature=0, top_k=0, max_new_tokens=1)
        within(self, m=(1, MAX_SAMPLES))
        # Checked before the model loads: inf made torch's sampler fail on NaN, and a seed past 2^32 overflowed the
        # per-position seed the engine derives from it.
        if not self.temperature <= MAX_TEMPERATURE:
            raise ConfigError(f"temperature (--temperature) must be in [0, {MAX_TEMPERATURE:g}], got {self.temperature}")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed (--seed) must be in [0, 2^32), got {self.seed}")


@dataclass(frozen=True)
class ExecuteConfig:
    """Running sampled calls through the tool registry."""

    workers: int = option(4, metavar="N", help="threads running tool calls")
    timeout: float | None = option(None, flag="--call-timeout", metavar="SECONDS",
                                   help="time limit per tool call (default: each tool's own)")
    drop_errors: bool = option(True, help="drop a call whose tool failed instead of keeping it as a candidate")
    restyle: bool = option(True, help="write a result the way the text writes the number after the call when both are "
                                      "the same value (-> 2,800 before \"2,800\"); never with --sampling paper")

    def __post_init__(self) -> None:
        at_least(self, workers=1)
        if self.timeout is not None:  # 0, -1, NaN and inf made every call fail and the run end with an empty corpus
            check_timeout(self.timeout, "call timeout (--call-timeout)")


@dataclass(frozen=True)
class FilterConfig:
    """Keep a call iff L- - L+ >= tau_f (paper §2), weights w_t = max(0, 1 - decay*t) normalised."""

    tau_f: float = option(1.0, help="filter threshold on L- - L+")
    placement: str = option("prefix", choices=PLACEMENTS,
                            help="where the call sits when scoring: before the whole text (prefix, the paper's "
                                 "footnote 3) or at its position (inline)")
    decay: float = option(0.2, help="loss weights w_t = max(0, 1 - decay * t), normalised; in (0, 1]")
    # A proposed call's result is what the text writes there by construction; what tells a right proposal from a
    # wrong one on real text is the proposer's own score (ProposeConfig.min_score), not the judge's loss. On 40 GSM8K
    # tuning solutions, of the proposals scoring >= 0.7 the right ones lowered the embedded model's loss by a median
    # 0.009 and the wrong ones by -0.010 (the shipped adapter judging: 0.377 and 0.303); Calculator P/R 0.946/0.904
    # at -0.5, 0.944/0.874 at -0.2, 0.944/0.496 at 0.0: a higher threshold only drops right calls. On 100 Debian
    # changelog entries no Calendar proposal was wrong at any threshold. So the filter only vetoes clear harm.
    tau_p: float = option(-0.5, help="filter threshold on L- - L+ for calls a tool proposed (--propose): kept unless "
                                     "the call raises the loss by more than this much; sampled calls keep tau_f")
    exact_losses: bool = option(False, help="score L(e(c, eps)) for every call; by default only for calls whose "
                                            "L_eps - L+ reaches the threshold, since L- <= L_eps: the others fail "
                                            "whatever it is (the same calls are kept, with less work), and their "
                                            "loss_reduction is that bound L_eps - L+ with loss_null unset. For "
                                            "analyses of the loss reductions")
    prefix_separator: str = "\n"       # between z and the text in prefix placement

    def __post_init__(self) -> None:
        _no_nan(self, "tau_f", "tau_p")
        if self.placement not in PLACEMENTS:
            raise ConfigError(f"placement {self.placement!r} is not allowed; use one of: {', '.join(PLACEMENTS)}")
        if not 0 < self.decay <= 1:
            raise ConfigError(f"decay must be in (0, 1], got {self.decay}")

    def threshold(self, source: str = "model") -> float:
        """tau_f for a call only the model sampled (source "model"), tau_p for one a tool proposed ("proposer", or
        "both" when the model sampled it too)."""
        return self.tau_f if source == "model" else self.tau_p

    def weights(self) -> list[float]:
        raw = []
        t = 0
        while (w := 1.0 - self.decay * t) > 0:
            raw.append(w)
            t += 1
        total = sum(raw)
        return [w / total for w in raw]


@dataclass(frozen=True)
class ProposeConfig:
    """Calls that tools propose by reading the text (default sampling only), judged by the same loss filter."""

    enabled: bool = option(True, flag="--propose",
                           help="let tools propose calls from the text itself besides the model's samples (Calculator: "
                                "expressions over earlier numbers placed before their result; Calendar: where today's "
                                "date is written); never with --sampling paper")
    # Chosen with tau_p on 40 GSM8K tuning solutions: at tau_p -0.5, P/R 0.946/0.904 at 0.7 against 0.799/0.911 at
    # 0.4, 0.919/0.919 at 0.6 and 0.952/0.889 at 0.8 (0.7: the largest F1, with the adapter judging too). Calendar
    # proposals score 1.0.
    min_score: float = option(0.7, help="keep a proposal only if its score (the proposer's confidence, 0 to 1) is at "
                                        "least this")
    per_position: int = option(2, metavar="N", help="proposals kept per tool and position, best first")
    per_text: int = option(40, metavar="N", help="proposals kept per tool and text, best first")

    def __post_init__(self) -> None:
        at_least(self, per_position=1, per_text=1)
        _no_nan(self, "min_score")
        within(self, min_score=(0.0, 1.0))


#: The stage configs whose fields are data-gen flags, by their DataGenConfig field name.
STAGES: dict[str, type] = {"prefilter": PrefilterConfig, "positions": PositionConfig, "sample": SampleConfig,
                           "propose": ProposeConfig, "execute": ExecuteConfig, "filter": FilterConfig}

#: `--sampling`: "default" = tools' proposals + the model's constrained samples; "paper" = the paper's procedure.
SAMPLINGS = ("default", "paper")


@dataclass(frozen=True)
class ToolOverride:
    """Per-tool values that replace the stage defaults (None = keep the default)."""

    tau_s: float | None = None
    k: int | None = None
    m: int | None = None
    temperature: float | None = None
    tau_f: float | None = None
    tau_p: float | None = None
    propose: bool | None = None     # False: this tool's proposer stays off

    def __post_init__(self) -> None:
        within(self, tau_s=(0.0, 1.0), k=(1, MAX_POSITIONS), m=(1, MAX_SAMPLES))


# Paper §4.1: Calculator and MT get a lower threshold and more positions/samples.
PAPER_OVERRIDES: dict[str, ToolOverride] = {
    "calculator": ToolOverride(tau_s=0.0, k=20, m=10, tau_f=0.5),
    "mt": ToolOverride(tau_s=0.0, k=20, m=10, tau_f=0.5),
}
# Default sampling: Calculator's proposals carry its recall (SmolLM2's own samples added no right call on the dev
# set), so the model gets fewer positions there; the paper's filter threshold stays. It writes one greedy call at
# each position: on 40 GSM8K tuning solutions, sampling at the proposals' tokens too, greedy wrote 52% of the kept
# calls (the proposal's own call) against 28% for 2 samples at temperature 1 and 60% for 3 at 0.5, in 78% and 66%
# more time; precision and recall were the same (0.924 / 0.896). Calendar takes no argument, so under the call
# grammar its m samples are all the same call: one is enough.
DEFAULT_OVERRIDES: dict[str, ToolOverride] = {
    "calculator": ToolOverride(tau_s=0.0, k=5, m=1, temperature=0.0, tau_f=0.5),
    "calendar": ToolOverride(m=1),
    "mt": ToolOverride(tau_s=0.0, k=20, m=10, tau_f=0.5),
}


def mode_overrides(sampling: str) -> dict[str, ToolOverride]:
    """The per-tool values of a sampling mode (a fresh dict)."""
    return dict(PAPER_OVERRIDES if sampling == "paper" else DEFAULT_OVERRIDES)


def without_overrides(overrides: dict[str, ToolOverride], names: set[str]) -> dict[str, ToolOverride]:
    """`overrides` with the fields in `names` cleared, so the stage value holds for every tool (a flag given on the
    command line wins over the paper's per-tool values)."""
    cleared = {f.name: None for f in fields(ToolOverride) if f.name in names}
    return {tool: replace(o, **cleared) for tool, o in overrides.items()}


#: What a .txt input holds (DataGenConfig.txt).
TXT_UNITS = ("lines", "whole")
#: The input options and their defaults (DataGenConfig.to_dict leaves them out at these).
_INPUT_DEFAULTS = {"text_field": "text", "txt": "lines", "date_field": "date", "id_field": "id"}


@dataclass(frozen=True)
class DataGenConfig:
    """All stages together; `for_tool(name)` applies that tool's overrides (None: those of the sampling mode)."""

    tools: tuple[str, ...] = option(("calculator", "calendar"), metavar="NAMES", help="comma-separated tool names")
    sampling: str = option("default", choices=SAMPLINGS,
                           help="default: the tools' proposals (--propose) join the model's samples, drawn under each "
                                "tool's call grammar; paper: the paper's procedure exactly (the model's positions and "
                                "free samples only, the paper's per-tool k, m and tau_f)")
    prefilter: PrefilterConfig = field(default_factory=PrefilterConfig)
    positions: PositionConfig = field(default_factory=PositionConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    propose: ProposeConfig = field(default_factory=ProposeConfig)
    execute: ExecuteConfig = field(default_factory=ExecuteConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    overrides: dict[str, ToolOverride] | None = None
    max_text_chars: int = option(4000, metavar="CHARS",
                                 help="split a longer input text at paragraph, line, sentence or word breaks into "
                                      "texts of at most this many characters (each its own record, with \"part\": 0, "
                                      "1, ...), which the model reads within its context (default 4000, about 1,000 "
                                      "tokens; the paper fine-tunes on 1,024)")
    text_field: str = option("text", metavar="NAME",
                             help="the field (.jsonl) or column (.parquet) that holds each text")
    date_field: str = option("date", metavar="NAME",
                             help="the field or column that holds each text's date, which the Calendar answers "
                                  "(CCNet's date_download, C4's timestamp; YYYY-MM-DD, an ISO 8601 timestamp that "
                                  "starts so, or an e-mail's date, read as the day it names)")
    id_field: str = option("id", metavar="NAME", help="the field or column kept as each text's \"id\" (a url)")
    txt: str = option("lines", choices=TXT_UNITS,
                      help="what a .txt input holds: lines, one text per non-empty line; whole, one document, split "
                           "at paragraph breaks into texts of at most --max-text-chars (a book or an article, whose "
                           "lines are wrapped)")

    def __post_init__(self) -> None:
        at_least(self, max_text_chars=100)
        if self.txt not in TXT_UNITS:
            raise ConfigError(f"txt {self.txt!r} is not allowed; use one of: {', '.join(TXT_UNITS)}")
        for name in ("text_field", "date_field", "id_field"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{name} ({flag_of(type(self), name)}) is the name of a field, e.g. "
                                  f"{_INPUT_DEFAULTS[name]}")
            if name != "text_field" and value == self.text_field:
                # Either flag may be the one typed (--text-field id meets --id-field's default): both are named.
                raise ConfigError(f"{flag_of(type(self), 'text_field')} and {flag_of(type(self), name)} both name "
                                  f"the field {value!r}: each split part would carry the whole document as its "
                                  f"{name.removesuffix('_field')}; give {flag_of(type(self), name)} another field")
        if not self.tools:
            raise ConfigError("tools is empty; give at least one tool name, e.g. --tools calculator")
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"sampling {self.sampling!r} is not allowed; use one of: {', '.join(SAMPLINGS)}")
        if self.sampling == "paper" and self.positions.prompt != "few-shot":
            raise ConfigError(f"--sampling paper prompts the model with the paper's P(x); --prompt "
                              f"{self.positions.prompt} is for the default sampling")

    def tool_overrides(self) -> dict[str, ToolOverride]:
        """The per-tool values in force: `overrides`, or the sampling mode's when it is None."""
        return mode_overrides(self.sampling) if self.overrides is None else self.overrides

    def for_tool(self, tool: str) -> tuple[PositionConfig, SampleConfig, FilterConfig]:
        o = self.tool_overrides().get(tool.lower(), ToolOverride())
        pos_values: dict[str, Any] = {k: v for k, v in (("tau_s", o.tau_s), ("k", o.k)) if v is not None}
        pos = replace(self.positions, **pos_values)
        sam_values: dict[str, Any] = {k: v for k, v in (("m", o.m), ("temperature", o.temperature)) if v is not None}
        sam = replace(self.sample, **sam_values)
        if self.sampling == "paper":
            # the paper samples freely, stops at "]", and judges every sample by the loss alone
            sam = replace(sam, constrain=False, admissible_only=False)
        fil_values: dict[str, Any] = {k: v for k, v in (("tau_f", o.tau_f), ("tau_p", o.tau_p)) if v is not None}
        fil = replace(self.filter, **fil_values)
        return pos, sam, fil

    def execute_config(self) -> ExecuteConfig:
        """The execute stage's settings: the paper writes results as the tool returns them (no restyle)."""
        return replace(self.execute, restyle=False) if self.sampling == "paper" else self.execute

    def proposes(self, tool: str) -> bool:
        """Whether `tool`'s proposer runs: default sampling, --propose, and not turned off for that tool."""
        o = self.tool_overrides().get(tool.lower(), ToolOverride())
        return self.sampling == "default" and self.propose.enabled and o.propose is not False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tools": list(self.tools), "sampling": self.sampling}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "overrides":
                out[f.name] = {k: {g.name: getattr(v, g.name) for g in fields(v)}
                               for k, v in sorted(self.tool_overrides().items())}
            elif f.name == "max_text_chars":
                out[f.name] = value
            elif f.name in _INPUT_DEFAULTS:
                # Written only when not the default, so a run from before these options resumes unchanged.
                if value != _INPUT_DEFAULTS[f.name]:
                    out[f.name] = value
            elif f.name not in ("tools", "sampling"):
                out[f.name] = {g.name: getattr(value, g.name) for g in fields(value)}
        return out


def _no_nan(config: Any, *names: str) -> None:
    """A ConfigError for a threshold that is NaN: every comparison with it is false, so --tau-f nan kept nothing and
    --min-score nan kept every proposal, without a word."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, float) and math.isnan(value):
            raise ConfigError(f"{name} ({flag_of(type(config), name)}) must be a number, got nan")
