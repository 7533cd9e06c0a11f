"""Stage 6: interleave the surviving calls of all tools into the text, x* = x_{1:i-1}, e(c_i, r_i), x_{i:n}."""
from __future__ import annotations

from typing import Any

CALL_FIELDS = ("tool", "args", "result", "position", "loss_minus", "loss_plus", "loss_reduction")


def merge_record(record: dict[str, Any]) -> dict[str, Any] | None:
    """The output record {"text", "original", "calls"}, or None when no call survived (such texts are dropped).

    At most one call per position: when several tools (or samples) survive at the same token, the one with the
    largest loss reduction wins.
    """
    best: dict[int, dict[str, Any]] = {}
    for cand in record.get("candidates", []):
        if cand.get("kept") and (cand["token"] not in best or cand["loss_reduction"] > best[cand["token"]]["loss_reduction"]):
            best[cand["token"]] = cand
    if not best:
        return None
    original = record["text"]
    text = original
    # Insert from the end so earlier character offsets stay valid; keep token i's leading space in front of the call.
    for cand in sorted(best.values(), key=lambda c: c["position"], reverse=True):
        pos = cand["position"]
        gap = " " if pos < len(original) and original[pos].isspace() else ""
        text = text[:pos] + gap + cand["text_call"] + text[pos:]
    calls = [{k: cand[k] for k in CALL_FIELDS} for cand in sorted(best.values(), key=lambda c: c["position"])]
    return {"text": text, "original": original, "calls": calls}
