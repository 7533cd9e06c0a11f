"""Stage 6: interleave the surviving calls of all tools into the text, x* = x_{1:i-1}, e(c_i, r_i), x_{i:n}."""
from __future__ import annotations

from typing import Any

from .calls_text import parse_call
from .records import Candidate, TextRecord

CALL_FIELDS = ("tool", "args", "result", "position", "loss_minus", "loss_plus", "loss_reduction")
CURRENCY = "$€£¥"


def merge_record(record: TextRecord) -> dict[str, Any] | None:
    """The output record {"text", "original", "calls"}, or None when no call survived (such texts are dropped).

    At most one call per place in the text: when several tools (or samples) survive there, the one that `ranks`
    first wins; and one place per identical call (where it ranks first again).
    """
    original = record.text
    best: dict[int, Candidate] = {}
    for cand in record.candidates:
        if not cand.kept or _written_call(cand) is None:
            continue
        at = write_at(original, cand)
        if at not in best or rank(cand) > rank(best[at]):
            best[at] = cand
    # The same call (same string, same result) at several places of one text is kept once, where it helped most:
    # SmolLM2 kept "[Calculator(400 / 1400) -> 0.29]" at three adjacent places of one sentence.
    seen: dict[str, int] = {}
    for at, cand in sorted(best.items(), key=lambda item: rank(item[1]), reverse=True):
        if cand.text_call in seen:
            del best[at]
        else:
            seen[cand.text_call] = at
    if not best:
        return None
    text = original
    # Insert from the end so earlier character offsets stay valid; keep the space in front of the call (" [").
    for at in sorted(best, reverse=True):
        gap = " " if at < len(original) and original[at].isspace() else ""
        text = text[:at] + gap + best[at].text_call + text[at:]
    # In the order the text writes them: a prefix call moved before the space of its token comes before an inline one
    # scored at that token (listed by position, the two were the other way round).
    calls = [output_call(best[at]) for at in sorted(best)]
    return {"text": text, "original": original, "calls": calls}


def output_call(cand: Candidate) -> dict[str, Any]:
    """A kept call as corpus.jsonl writes it: CALL_FIELDS, then its source. Its args and result are the ones its text
    holds, as the dialect reads them back: the text writes a result on one line, its unpaired brackets and markup
    broken, stripped, and a long one cut (`[Echo(2) -> a］b]` for "a]b", "line1 | line2" for two lines), and the
    record said the tool's own output, so a reader of the corpus found calls in the text that its record did not."""
    written = _written_call(cand)
    if written is None:
        raise ValueError(f"a call that does not read back as one call was merged: {cand.text_call!r}")
    args, result = written
    return {**{k: getattr(cand, k) for k in CALL_FIELDS}, "args": list(args), "result": result, "source": cand.source}


def written_args(cand: Candidate) -> tuple[Any, ...]:
    """The candidate's arguments as its text writes them (a list argument is written as its text: `Sum("[12, 30]")`),
    the ones its output record lists; its own where it has no text yet."""
    written = _written_call(cand)
    return cand.args if written is None else written[0]


def reads_back(cand: Candidate) -> bool:
    """Whether the call's text reads back as one call of its tool (a kept call that does not is not written)."""
    return _written_call(cand) is not None


def _written_call(cand: Candidate) -> tuple[tuple[Any, ...], str | None] | None:
    """(args, result) of the call as its text writes it, or None when that text is not one call of its tool: such a
    call would be prose to every reader of the corpus, so it is not written."""
    call = parse_call(cand.text_call)
    if call is None or call.tool != cand.tool or not isinstance(call.args, tuple):
        return None
    return call.args, call.result


def rank(cand: Candidate) -> tuple[bool, float]:
    """Which of two kept calls wins a place: one a tool proposed (its result is what the text writes there, or its
    date is the one written there) before one only the model sampled, then the larger loss reduction. SmolLM2 put
    its sampled Calendar call before another day's date with a larger reduction than the proposed one had before
    today's weekday, and one place per identical call kept the wrong one."""
    return cand.source != "model", cand.loss_reduction if cand.loss_reduction is not None else float("-inf")


def write_at(original: str, cand: Candidate) -> int:
    """Where the call is written: before token i, or, for a call scored in prefix placement at a token that follows a
    space or a currency sign (SmolLM2 cuts " 2,800" into " " + "2", and " $180" into " $" + "1"), before that space
    and sign, so the text reads "of [Calculator(..) -> 2,800] 2,800" and "away [..] $180" as in the demonstrations
    rather than "of [..]2,800" or "$[..]180" (the prefix-placement loss does not depend on where the call is written;
    an inline-placed call is written exactly where it was scored)."""
    pos = cand.position
    if cand.placement != "prefix" or not 0 < pos < len(original) or original[pos].isspace():
        return pos
    at = pos
    while at > 0 and original[at - 1] in CURRENCY:
        at -= 1
    if at > 0 and original[at - 1].isspace():
        # Before the space, and before a whole line break: "\r\n42" keeps its "\r\n" together.
        return at - 2 if original[at - 2:at] == "\r\n" else at - 1
    return at if at < pos and (at == 0 or not original[at - 1].isalnum()) else pos
