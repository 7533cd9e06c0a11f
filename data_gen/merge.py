"""Stage 6: interleave the surviving calls of all tools into the text, x* = x_{1:i-1}, e(c_i, r_i), x_{i:n}."""
from __future__ import annotations

from typing import Any

CALL_FIELDS = ("tool", "args", "result", "position", "loss_minus", "loss_plus", "loss_reduction")


def merge_record(record: dict[str, Any]) -> dict[str, Any] | None:
    """The output record {"text", "original", "calls"}, or None when no call survived (such texts are dropped).

    At most one call per place in the text: when several tools (or samples) survive there, the one with the largest
    loss reduction wins; and one place per identical call (the largest reduction wins again).
    """
    original = record["text"]
    best: dict[int, dict[str, Any]] = {}
    for cand in record.get("candidates", []):
        if not cand.get("kept"):
            continue
        at = write_at(original, cand)
        if at not in best or cand["loss_reduction"] > best[at]["loss_reduction"]:
            best[at] = cand
    # The same call (same string, same result) at several places of one text is kept once, where it helped most:
    # SmolLM2 kept "[Calculator(400 / 1400) -> 0.29]" at three adjacent places of one sentence.
    seen: dict[str, int] = {}
    for at, cand in sorted(best.items(), key=lambda item: -item[1]["loss_reduction"]):
        if cand["text_call"] in seen:
            del best[at]
        else:
            seen[cand["text_call"]] = at
    if not best:
        return None
    text = original
    # Insert from the end so earlier character offsets stay valid; keep the space in front of the call (" [").
    for at in sorted(best, reverse=True):
        gap = " " if at < len(original) and original[at].isspace() else ""
        text = text[:at] + gap + best[at]["text_call"] + text[at:]
    calls = [{k: cand[k] for k in CALL_FIELDS} for cand in sorted(best.values(), key=lambda c: c["position"])]
    return {"text": text, "original": original, "calls": calls}


def write_at(original: str, cand: dict[str, Any]) -> int:
    """Where the call is written: before token i, or, for a call scored in prefix placement at a token that follows a
    space (SmolLM2 cuts " 2,800" into " " + "2"), before that space, so the text reads "of [Calculator(..) -> 2800] 2,800"
    as in the demonstrations rather than "of [..]2,800" (the prefix-placement loss does not depend on where the call is
    written; an inline-placed call is written exactly where it was scored)."""
    pos = cand["position"]
    if (cand.get("placement", "prefix") == "prefix" and 0 < pos < len(original) and original[pos - 1].isspace()
            and not original[pos].isspace()):
        return pos - 1
    return pos
