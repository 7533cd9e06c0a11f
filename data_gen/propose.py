"""Stage 3b: the calls a tool proposes by reading the text join the model's samples as candidates."""
from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from toolcall.calls import ToolCall
from toolcall.tool_type import Proposal

from .calls_text import render_call
from .config import ProposeConfig
from .records import Candidate, TextRecord, bump
from .tokens import TokenizedText
from .user_hooks import hook_value, usable_proposal

if TYPE_CHECKING:
    from toolcall.registry import ToolRegistry

CURRENCY = "$€£¥"


def propose_calls(record: TextRecord, tool: str, registry: ToolRegistry, tokenized: TokenizedText, config: ProposeConfig,
                  placement: str = "prefix") -> TextRecord:
    """record -> record with candidates += `tool`'s proposals for its text (`choose_proposals`, then `add_proposals`)."""
    return add_proposals(record, choose_proposals(record.text, tool, registry, tokenized, config, placement))


def choose_proposals(text: str, tool: str, registry: ToolRegistry, tokenized: TokenizedText, config: ProposeConfig,
                     placement: str = "prefix") -> tuple[Candidate, ...]:
    """`tool`'s proposals for `text` as Candidates with source "proposer" and the proposal's score.

    Kept: score >= min_score, the best `per_position` at each token and the best `per_text` in all; a proposal
    repeated at a token counts once. Each proposal's character position becomes the token where its text starts
    (`proposal_token`). Chosen before the model samples, so the model can sample at their tokens too
    (PositionConfig.at_proposals)."""
    if not config.enabled:
        return ()
    found = registry.get(tool)
    if found.proposer is None:
        return ()
    proposer = found.proposer
    # Under the tool's own time limit: a proposer that hung held the whole run (one that slept 30 s, each text).
    made: list[Any] = hook_value(found.name, "proposer", lambda: list(proposer(text)), [],
                                 lambda v: isinstance(v, list), timeout=found.timeout, owner=proposer)
    proposals: list[Proposal] = [p for p in made if _usable(found.name, p, len(text))]
    chosen: list[Candidate] = []
    taken: set[tuple[int, str]] = set()
    at_token: Counter[int] = Counter()
    # Best first; ties keep the proposer's order, so the result does not depend on how sorting breaks them.
    for proposal in sorted(proposals, key=lambda p: -p.score):
        if proposal.score < config.min_score or len(chosen) >= config.per_text:
            break
        token = proposal_token(tokenized, int(proposal.position), placement)
        key = render_call(ToolCall(found.name, tuple(proposal.args), None))
        if (token, key) in taken or at_token[token] >= config.per_position:
            continue
        taken.add((token, key))
        at_token[token] += 1
        chosen.append(Candidate(found.name, tuple(proposal.args), key, token, tokenized.starts[token],
                                source="proposer", score=proposal.score))
    return tuple(chosen)


def _usable(tool: str, proposal: Any, text_chars: int) -> bool:
    """Whether a proposal can become a call (usable_proposal); one that cannot is left out, and said once."""
    return hook_value(tool, "proposer", lambda: proposal, None, lambda v: usable_proposal(v, text_chars)) is not None


def add_proposals(record: TextRecord, proposals: tuple[Candidate, ...]) -> TextRecord:
    """record -> record with candidates += `proposals` (from `choose_proposals`). A proposal that equals a model
    sample at its token, spaces aside (`20*30` is `20 * 30`), is not added again: the sample, as the model wrote
    it, becomes source "both" (the model wrote it and a tool proposed it, so the filter judges it as a proposal)
    and the duplicate is counted as a proposal_duplicate."""
    if not proposals:
        return record
    cands = list(record.candidates)
    taken: dict[tuple[str, int, str], int] = {}
    for i, c in enumerate(cands):
        taken.setdefault((c.tool, c.token, _spaceless(c.call)), i)
    counts = record.counts
    added = 0
    for proposal in proposals:
        key = (proposal.tool, proposal.token, _spaceless(proposal.call))
        same = taken.get(key)
        if same is not None:
            if cands[same].source == "model":
                cands[same] = replace(cands[same], source="both", score=proposal.score)
            counts = bump(counts, proposal.tool, "proposal_duplicates")
            continue
        taken[key] = len(cands)
        added += 1
        cands.append(proposal)
    counts = bump(counts, proposals[0].tool, "proposed", added)
    return replace(record, candidates=tuple(cands), counts=counts)


def _spaceless(call: str) -> str:
    return "".join(call.split())


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
