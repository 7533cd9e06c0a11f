"""Stage 3b: the calls a tool proposes by reading the text join the model's samples as candidates."""
from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING

from toolcall.calls import ToolCall
from toolcall.errors import ToolError
from toolcall.tool_type import Proposal

from .calls_text import render_call
from .config import ProposeConfig
from .records import Candidate, TextRecord, bump
from .tokens import TokenizedText

if TYPE_CHECKING:
    from toolcall.registry import ToolRegistry

CURRENCY = "$€£¥"


def propose_calls(record: TextRecord, tool: str, registry: ToolRegistry, tokenized: TokenizedText, config: ProposeConfig,
                  placement: str = "prefix") -> TextRecord:
    """record -> record with candidates += `tool`'s proposals for its text: Candidates with source "proposer" and
    the proposal's score.

    Kept: score >= min_score, the best `per_position` at each token and the best `per_text` in all. A proposal
    that equals a model sample at that token is not added again: the sample becomes source "both" (proposed
    too, so the filter judges it as a proposal) and the duplicate is counted. Each proposal's character position
    becomes the token where its text starts (`proposal_token`). They then meet the same execution and loss filter
    as sampled calls.
    """
    if not config.enabled:
        return record
    found = registry.get(tool)
    if found.proposer is None:
        return record
    text = record.text
    try:
        proposals: list[Proposal] = list(found.proposer(text))
    except Exception as err:  # a custom proposer's bug is reported with the tool's name
        raise ToolError(f"{found.name}: its proposer failed on the text {text[:60]!r}: {type(err).__name__}: {err}") from err
    cands = list(record.candidates)
    taken = {(c.tool, c.token, c.call): i for i, c in enumerate(cands)}
    counts = record.counts
    at_token: Counter[int] = Counter()
    kept = 0
    # Best first; ties keep the proposer's order, so the result does not depend on how sorting breaks them.
    for proposal in sorted(proposals, key=lambda p: -p.score):
        if proposal.score < config.min_score or kept >= config.per_text:
            break
        if not 0 <= proposal.position < len(text):
            continue
        token = proposal_token(tokenized, proposal.position, placement)
        key = render_call(ToolCall(found.name, tuple(proposal.args), None))
        if (found.name, token, key) in taken:
            same = taken[(found.name, token, key)]
            if cands[same].source == "model":
                cands[same] = replace(cands[same], source="both", score=proposal.score)
            counts = bump(counts, found.name, "proposal_duplicates")
            continue
        if at_token[token] >= config.per_position:
            continue
        taken[(found.name, token, key)] = len(cands)
        at_token[token] += 1
        kept += 1
        cands.append(Candidate(found.name, tuple(proposal.args), key, token, tokenized.starts[token],
                               source="proposer", score=proposal.score))
    counts = bump(counts, found.name, "proposed", kept)
    return replace(record, candidates=tuple(cands), counts=counts)


def proposal_token(tokenized: TokenizedText, position: int, placement: str = "prefix") -> int:
    """The token where a call proposed at character `position` goes: the token that starts there (SmolLM2 cuts
    " 2,800" into " " + "2", so the number's first digit starts a token), else the token holding that character.

    Inline placement scores the call exactly where it is written, so there a lone space or currency token before
    it (" ", " $") is taken too: the text reads "of [Calculator(..) -> 2,800] 2,800", "[..] $180". Prefix placement
    scores from the number itself and merge.write_at writes the call before the space and currency sign.
    """
    i = max(bisect.bisect_right(tokenized.starts, position) - 1, 0)
    if placement == "inline" and i > 0:
        before = tokenized.text[tokenized.starts[i - 1]:tokenized.starts[i]]
        if before and not before.strip(" \t" + CURRENCY) and (before[0].isspace() or before[0] in CURRENCY):
            i -= 1
    return i
