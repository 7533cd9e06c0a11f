"""One config dataclass per data_gen stage, with the Toolformer paper's defaults and per-tool overrides.

Each field with help text is also a `toolcall data-gen` flag (toolcall.options turns the fields into options).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from toolcall.errors import ConfigError
from toolcall.options import at_least, option

PLACEMENTS = ("prefix", "inline")


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

    def __post_init__(self) -> None:
        at_least(self, k=1, min_token=0)


@dataclass(frozen=True)
class SampleConfig:
    """Up to m calls sampled per kept position, `]` as end of sequence (matched on text)."""

    m: int = option(5, flag="--samples", metavar="M", help="calls sampled per kept position (m)")
    temperature: float = option(1.0, help="sampling temperature (0 = greedy)")
    top_k: int = option(0, flag="--sample-top-k", metavar="K", help="sample among the K likeliest tokens only (0 = all)")
    max_new_tokens: int = option(32, metavar="N", help="longest sampled call, in tokens")
    seed: int = option(0, help="sampling seed")
    stop: tuple[str, ...] = ("]",)

    def __post_init__(self) -> None:
        at_least(self, m=1, temperature=0, top_k=0, max_new_tokens=1)


@dataclass(frozen=True)
class ExecuteConfig:
    """Running sampled calls through the tool registry."""

    workers: int = option(4, metavar="N", help="threads running tool calls")
    timeout: float | None = option(None, flag="--call-timeout", metavar="SECONDS",
                                   help="time limit per tool call (default: each tool's own)")
    drop_errors: bool = option(True, help="drop a call whose tool failed instead of keeping it as a candidate")

    def __post_init__(self) -> None:
        at_least(self, workers=1)


@dataclass(frozen=True)
class FilterConfig:
    """Keep a call iff L- - L+ >= tau_f (paper §2), weights w_t = max(0, 1 - decay*t) normalised."""

    tau_f: float = option(1.0, help="filter threshold on L- - L+")
    placement: str = option("prefix", choices=PLACEMENTS,
                            help="where the call sits when scoring: before the whole text (prefix, the paper's "
                                 "footnote 3) or at its position (inline)")
    decay: float = option(0.2, help="loss weights w_t = max(0, 1 - decay * t), normalised; in (0, 1]")
    prefix_separator: str = "\n"       # between z and the text in prefix placement

    def __post_init__(self) -> None:
        if self.placement not in PLACEMENTS:
            raise ConfigError(f"placement {self.placement!r} is not allowed; use one of: {', '.join(PLACEMENTS)}")
        if not 0 < self.decay <= 1:
            raise ConfigError(f"decay must be in (0, 1], got {self.decay}")

    def weights(self) -> list[float]:
        raw = []
        t = 0
        while (w := 1.0 - self.decay * t) > 0:
            raw.append(w)
            t += 1
        total = sum(raw)
        return [w / total for w in raw]


#: The stage configs whose fields are data-gen flags, by their DataGenConfig field name.
STAGES: dict[str, type] = {"prefilter": PrefilterConfig, "positions": PositionConfig, "sample": SampleConfig,
                           "execute": ExecuteConfig, "filter": FilterConfig}


@dataclass(frozen=True)
class ToolOverride:
    """Per-tool values that replace the stage defaults (None = keep the default)."""

    tau_s: float | None = None
    k: int | None = None
    m: int | None = None
    tau_f: float | None = None


# Paper §4.1: Calculator and MT get a lower threshold and more positions/samples.
PAPER_OVERRIDES: dict[str, ToolOverride] = {
    "calculator": ToolOverride(tau_s=0.0, k=20, m=10, tau_f=0.5),
    "mt": ToolOverride(tau_s=0.0, k=20, m=10, tau_f=0.5),
}


def without_overrides(overrides: dict[str, ToolOverride], names: set[str]) -> dict[str, ToolOverride]:
    """`overrides` with the fields in `names` cleared, so the stage value holds for every tool (a flag given on the
    command line wins over the paper's per-tool values)."""
    cleared = {f.name: None for f in fields(ToolOverride) if f.name in names}
    return {tool: replace(o, **cleared) for tool, o in overrides.items()}


@dataclass(frozen=True)
class DataGenConfig:
    """All stages together; `for_tool(name)` applies that tool's overrides."""

    tools: tuple[str, ...] = option(("calculator", "calendar"), metavar="NAMES", help="comma-separated tool names")
    prefilter: PrefilterConfig = field(default_factory=PrefilterConfig)
    positions: PositionConfig = field(default_factory=PositionConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    execute: ExecuteConfig = field(default_factory=ExecuteConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    overrides: dict[str, ToolOverride] = field(default_factory=lambda: dict(PAPER_OVERRIDES))

    def __post_init__(self) -> None:
        if not self.tools:
            raise ConfigError("tools is empty; give at least one tool name, e.g. --tools calculator")

    def for_tool(self, tool: str) -> tuple[PositionConfig, SampleConfig, FilterConfig]:
        o = self.overrides.get(tool.lower(), ToolOverride())
        pos = replace(self.positions, **{k: v for k, v in (("tau_s", o.tau_s), ("k", o.k)) if v is not None})
        sam = replace(self.sample, **({"m": o.m} if o.m is not None else {}))
        fil = replace(self.filter, **({"tau_f": o.tau_f} if o.tau_f is not None else {}))
        return pos, sam, fil

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tools": list(self.tools)}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "overrides":
                out[f.name] = {k: {g.name: getattr(v, g.name) for g in fields(v)} for k, v in sorted(value.items())}
            elif f.name != "tools":
                out[f.name] = {g.name: getattr(value, g.name) for g in fields(value)}
        return out
