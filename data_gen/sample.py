"""Stage 3: sample up to m calls at each kept position, `]` as end of sequence, parse and deduplicate them."""
from __future__ import annotations

import zlib
from typing import Any

from .calls_text import parse_call, render_call
from .config import SampleConfig
from .positions import PromptStates


def sample_calls(record: dict[str, Any], tool: str, states: PromptStates, config: SampleConfig,
                 canonical: Any = None) -> dict[str, Any]:
    """record -> record with candidates += [{"tool","args","call","token","position"}] for `tool` (unique per position).

    `canonical(name) -> str` maps a sampled tool name to the registry's name (raises for unknown names); samples that
    call another tool, never close, or do not parse are counted and dropped.
    """
    positions = record.get("positions", {}).get(tool, [])
    counts = dict(record.get("counts", {}))
    cand = list(record.get("candidates", []))
    if positions:
        scorer = states.scorer
        plen, _, state, _ = states.get(tool, record["text"])
        branches = [(plen + tok, scorer.encode(open_text)) for tok, _, _, open_text in positions]
        # The seed depends on the text and tool only, so a resumed run samples exactly what a fresh one would.
        seed = config.seed * 1_000_003 + zlib.crc32(f"{tool}\0{record['text']}".encode())
        outs = scorer.sample_branches(state, branches, config.m, stop=config.stop, max_new_tokens=config.max_new_tokens,
                                      temperature=config.temperature, top_k=config.top_k, seed=seed)
        for (tok, char, _, _), samples in zip(positions, outs):
            seen: set[str] = set()
            for text, stopped in samples:
                _bump(counts, tool, "samples")
                if not stopped:
                    _bump(counts, tool, "unclosed")
                    continue
                # A sampled `-> result` is the model's guess; keep only the call, the tool supplies the result.
                body = text.split("->")[0].split("→")[0]
                call = parse_call("[" + body.strip() + "]")
                name = _canonical(call.tool, canonical) if call is not None else None
                if call is None or name is None or name.lower() != tool.lower():
                    _bump(counts, tool, "unparsed")
                    continue
                call = call.__class__(name, tuple(call.args), None, (0, 0))
                key = render_call(call)
                if key in seen:
                    _bump(counts, tool, "duplicates")
                    continue
                seen.add(key)
                cand.append({"tool": name, "args": list(call.args), "call": key, "token": tok, "position": char})
    return {**record, "candidates": cand, "counts": counts}


def _canonical(name: str, canonical: Any) -> str | None:
    if canonical is None:
        return name
    try:
        return str(canonical(name))
    except KeyError:
        return None


def _bump(counts: dict[str, Any], tool: str, key: str) -> None:
    per = dict(counts.get(tool, {}))
    per[key] = per.get(key, 0) + 1
    counts[tool] = per
