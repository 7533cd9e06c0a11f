"""Stage 3: sample up to m calls at each kept position (under the tool's call grammar), parse and deduplicate them."""
from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from toolcall.calls import ToolCall
from toolcall.dialects.toolformer import ToolformerDialect
from toolcall.errors import ConfigError

from .calls_text import parse_call, render_call
from .config import SampleConfig
from .positions import PromptStates
from .records import Candidate, TextRecord, bump
from .user_hooks import hook_value

#: The longest grammar an admissible_grammar may return: llguidance refused 50,000 alternatives ("Too many items")
#: only when it came to sample, and the Calculator's, over every number a long text writes, stays far below.
MAX_ADMISSIBLE_GRAMMAR = 65_536

if TYPE_CHECKING:
    from toolcall.registry import ToolRegistry

#: Maps a sampled tool name to the registry's name; raises KeyError for an unknown one (ToolRegistry.canonical).
Canonical = Callable[[str], str]


def sample_calls(record: TextRecord, tool: str, states: PromptStates, config: SampleConfig,
                 canonical: Canonical | None = None, names: Sequence[str] = ()) -> TextRecord:
    """record -> record with candidates += the sampled Candidates of `tool` (unique per position).

    `canonical(name) -> str` maps a sampled tool name to the registry's name (raises for unknown names); samples that
    call another tool, never close, or do not parse are counted and dropped, and their text and reason go to
    record.rejected. With `config.constrain` every sample follows the tool's call grammar (`call_grammar`), so
    it is a well-formed call of the tool unless max_new_tokens cut it short; with `config.admissible_only` and a tool
    that has an `admissible_grammar`, each position's grammar is restricted to the text before it, so no sample is
    inadmissible. Otherwise `names` are the spellings that call `tool` (its aliases); a sample that stops being one
    of them followed by "(" is ended at once instead of decoded to max_new_tokens.
    """
    positions = record.positions.get(tool, ())
    counts = record.counts
    cand = list(record.candidates)
    rejected = list(record.rejected)
    if positions:
        scorer = states.scorer
        registry = states.registry
        plen, _, state, _ = states.get(tool, record.text)
        branches = [(plen + tok, scorer.encode(open_text)) for tok, _, _, open_text in positions]
        # The seed depends on the text and tool only, so a resumed run samples exactly what a fresh one would.
        seed = config.seed * 1_000_003 + zlib.crc32(f"{tool}\0{record.text}".encode())
        spellings = tuple(dict.fromkeys((tool, *names)))
        grammar = call_grammar(tool, registry) if config.constrain else None
        if config.admissible_only and registry is None:
            raise ConfigError("admissible-only sampling needs the tool registry (PromptStates(..., registry=...))")
        admissible = registry.get(tool).admissible if config.admissible_only and registry is not None else None
        limit = registry.get(tool).timeout if registry is not None else None
        if grammar is not None and config.admissible_only and registry is not None \
                and registry.get(tool).admissible_grammar is not None:
            # Each position gets the grammar of what the text before it lets one write, so the model's samples are
            # not spent on calls `admissible` would drop (Calculator: numbers written only after the call).
            grammars = [call_grammar(tool, registry, record.text[:char]) for _, char, _, _ in positions]
            # A position where the text before it admits no call ("" - Calculator: no number written yet) is not
            # sampled at all: every sample there would be dropped.
            kept = [g != "" for g in grammars]
            positions = tuple(p for p, k in zip(positions, kept) if k)
            branches = [b for b, k in zip(branches, kept) if k]
            how: dict[str, Any] = {"grammar": [g for g in grammars if g]}
        elif grammar is not None:  # a sample cannot stray from `Tool(`, so there is nothing to cut short
            how = {"grammar": grammar}
        else:
            how = {"keep_going": lambda text: may_become_call(text, spellings)}
        outs = scorer.sample_branches(state, branches, config.m, stop=config.stop, max_new_tokens=config.max_new_tokens,
                                      temperature=config.temperature, top_k=config.top_k, seed=seed,
                                      **how) if branches else []
        for (tok, char, _, _), samples in zip(positions, outs):
            seen: set[str] = set()
            for text, stopped in samples:
                counts = bump(counts, tool, "samples")
                call, reason = sampled_call(text, stopped, tool, canonical, spellings, closed=grammar is not None)
                if call is None:
                    counts = bump(counts, tool, "unclosed" if reason == "unclosed" else "unparsed")
                    rejected.append({"stage": "sample", "tool": tool, "position": char, "sample": text, "reason": reason})
                    continue
                if admissible is not None \
                        and not _admissible(tool, admissible, tuple(call.args), record.text[:char], limit):
                    counts = bump(counts, tool, "inadmissible")
                    rejected.append({"stage": "sample", "tool": tool, "position": char, "sample": text,
                                     "reason": "not admissible: it uses what the text writes only after the call"})
                    continue
                key = render_call(call)
                if key in seen:
                    counts = bump(counts, tool, "duplicates")
                    continue
                seen.add(key)
                cand.append(Candidate(call.tool, tuple(call.args), key, tok, char))
    return replace(record, candidates=tuple(cand), counts=counts, rejected=tuple(rejected))


def may_become_call(text: str, names: Sequence[str]) -> bool:
    """`text` (what was sampled after the call-open) is, or can still grow into, `Name(` for one of `names`."""
    head = text.lstrip().lower()
    for name in names:
        low = name.lower()
        if low.startswith(head):
            return True
        if head.startswith(low) and (head[len(low):].lstrip() == "" or head[len(low):].lstrip().startswith("(")):
            return True
    return False


def call_grammar(tool: str, registry: ToolRegistry | None, before: str | None = None) -> str:
    """The grammar a constrained sample of `tool` follows: `Tool(` its arguments `)` (name or alias), then `]` or an
    arrow, as the Toolformer dialect writes a bracket call after its "[" (ToolformerDialect.call_grammar).

    With `before` (the text before the call) and a tool that has an `admissible_grammar`, the arguments are only
    what one who has read that text could write ("" when that is nothing: no call to sample there); otherwise they
    follow the tool's own argument grammar."""
    if registry is None:
        raise ConfigError("constrained call sampling needs the tool registry (PromptStates(..., registry=...)) to "
                          "know the tool's argument grammar; pass it, or sample with constrain=False")
    found = registry.get(tool)
    spec = found.spec()
    if before is not None and found.admissible_grammar is not None:
        grammar_of = found.admissible_grammar
        restricted = hook_value(found.name, "admissible_grammar", lambda: grammar_of(before), "",
                                lambda v: v is None or (isinstance(v, str) and len(v) <= MAX_ADMISSIBLE_GRAMMAR),
                                timeout=found.timeout, owner=grammar_of)
        if restricted == "":
            return ""     # nothing one could write from `before` alone
        if restricted is not None:
            spec = replace(spec, argument_grammar=restricted)
    return ToolformerDialect(spelling="bracket").call_grammar([spec])


def sampled_call(text: str, stopped: bool, tool: str, canonical: Canonical | None = None,
                 names: Sequence[str] | None = None, closed: bool = False) -> tuple[ToolCall | None, str]:
    """The call that a sample (the text generated after the call-open) spells, or (None, why not).

    A free sample is cut before its `]`; a `closed` one (sampled under the call grammar) keeps its closing `]` or
    arrow, and an arrow inside a quoted argument is then part of the argument."""
    if names is not None and not may_become_call(text, names):
        return None, f"not a call to {tool}"
    if not stopped:
        return None, "unclosed"
    if closed:
        call = parse_call("[" + text if text.endswith("]") else "[" + text + "]")
    else:
        # A sampled `-> result` is the model's guess; keep only the call, the tool supplies the result.
        body = text.split("->")[0].split("→")[0].strip()
        call = parse_call("[" + body + "]")
    if call is None:
        return None, "not a call"
    name = _canonical(call.tool, canonical)
    if name is None:
        return None, f"unknown tool {call.tool!r}"
    if name.lower() != tool.lower():
        return None, f"other tool {name!r}"
    return ToolCall(name, tuple(call.args), None, (0, 0)), ""


def _canonical(name: str, canonical: Canonical | None) -> str | None:
    if canonical is None:
        return name
    try:
        return str(canonical(name))
    except KeyError:
        return None


def _admissible(tool: str, admissible: Callable[[tuple[Any, ...], str], bool], args: tuple[Any, ...], before: str,
                timeout: float | None) -> bool:
    """The tool's `admissible` verdict, under the tool's time limit; a call it fails on (it raised, timed out, or said
    neither True nor False) is dropped."""
    return bool(hook_value(tool, "admissible", lambda: admissible(args, before), False, lambda v: isinstance(v, bool),
                           timeout=timeout, owner=admissible))
