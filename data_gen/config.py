"""One config dataclass per data_gen stage, with the Toolformer paper's defaults and per-tool overrides."""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from toolcall.errors import ConfigError

PLACEMENTS = ("prefix", "inline")


@dataclass(frozen=True)
class PrefilterConfig:
    """Which texts a tool's stages see at all (paper §4.1: only texts where the tool may help)."""

    enabled: bool = True
    number_window: int = 100       # characters: the calculator looks for three numbers a op b = c within this span
    min_numbers: int = 3


@dataclass(frozen=True)
class PositionConfig:
    """Where a call may start: p_i = p(call-open | P(x), x_{1:i-1}) > tau_s, the top k of them."""

    tau_s: float = 0.05
    k: int = 5
    open_texts: tuple[str, ...] = (" [", "[")   # both tokens open a call; p_i sums their probabilities
    min_token: int = 1                          # no call before the first token: it would have no context
    word_start_only: bool = True                # not inside a word ("o[..]n") or a number ("1,[..]240") (positions.call_may_start);
                                                # the paper does not say, subword splits make such positions likely


@dataclass(frozen=True)
class SampleConfig:
    """Up to m calls sampled per kept position, `]` as end of sequence (matched on text)."""

    m: int = 5
    temperature: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 32
    seed: int = 0
    stop: tuple[str, ...] = ("]",)


@dataclass(frozen=True)
class ExecuteConfig:
    """Running sampled calls through the tool registry."""

    workers: int = 4
    timeout: float | None = None     # per call; None = each tool's own timeout
    drop_errors: bool = True         # a call whose tool failed is not a candidate


@dataclass(frozen=True)
class FilterConfig:
    """Keep a call iff L- - L+ >= tau_f (paper §2), weights w_t = max(0, 1 - decay*t) normalised."""

    tau_f: float = 1.0
    placement: str = "prefix"          # "prefix": z before the whole text (paper fn. 3); "inline": z at position i
    decay: float = 0.2
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


@dataclass(frozen=True)
class DataGenConfig:
    """All stages together; `for_tool(name)` applies that tool's overrides."""

    tools: tuple[str, ...] = ("calculator", "calendar")
    prefilter: PrefilterConfig = field(default_factory=PrefilterConfig)
    positions: PositionConfig = field(default_factory=PositionConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    execute: ExecuteConfig = field(default_factory=ExecuteConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    overrides: dict[str, ToolOverride] = field(default_factory=lambda: dict(PAPER_OVERRIDES))

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
