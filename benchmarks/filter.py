"""Benchmark: filter-stage candidates scored per second - toolcall (prefix and inline placement) vs the lucidrains peer.

One JSON line. Same model (the embedded SmolLM2-135M-Instruct through transformers, float32, CPU), same process,
same candidates for every path, all measured in this run:
- peer: lucidrains/toolformer-pytorch 0.0.30 `filter_tokens_with_api_response` (three full padded forwards per batch
  of PEER_BATCH candidates: the text, the text with the call, the text with the call and its result; nothing reused).
  Set-up: `pip install --no-deps toolformer-pytorch==0.0.30 && pip install beartype einops`.
- toolcall: `data_gen.filter.score_candidates` per text, in prefix and in inline placement, scoring every loss
  (`exact_losses`, as the peer does) and as the default does (L(e(c, eps)) only for calls it can still decide; the
  kept calls must be the same: `*_default_keeps_the_same`);
- naive: `data_gen.reference.naive_losses` (one un-batched full forward per scored sequence): the oracle whose losses
  toolcall must equal within 1e-4 (`max_abs_loss_diff`).
Candidates are built without sampling, from the worked solutions of benchmarks/data/datagen_dev.jsonl: at each
number (after two others), the text's own calculation when the gold annotation has one there, plus wrong ones over
the two nearest earlier numbers (a + b, a * b), each run by the real Calculator tool.
"""
from __future__ import annotations

import argparse
import importlib.machinery
import json
import os
import platform
import re
import sys
import time
import types
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEV = Path(__file__).with_name("data") / "datagen_dev.jsonl"
NUMBER = re.compile(r"(?<![\d.,])\d+(?:,\d{3})*(?:\.\d+)?")
PEER_BATCH = 8


def load_texts(limit: int) -> list[dict[str, Any]]:
    """The first `limit` dev records whose gold spots are Calculator calls."""
    records = [json.loads(line) for line in DEV.read_text(encoding="utf-8").split("\n") if line.strip()]
    return [r for r in records if any(g["tool"] == "Calculator" for g in r["gold"])][:limit]


def candidates(scorer: Any, registry: Any, record: dict[str, Any], per_spot: int) -> list[dict[str, Any]]:
    """Right and wrong calculator calls at the text's numbers, as the filter receives them (result included)."""
    from toolcall.data_gen.tokens import tokenize

    text = record["text"]
    tt = tokenize(scorer, text)
    token_at = {start: i for i, start in enumerate(tt.starts) if i > 0}
    gold = {g["start"]: g["expression"] for g in record["gold"] if g["tool"] == "Calculator"}
    out: list[dict[str, Any]] = []
    seen: list[str] = []
    for match in NUMBER.finditer(text):
        s = match.start()
        # A call goes before the space token in front of the number when there is one (" [..] 36"), else at the digit.
        i = token_at.get(s - 1) if s > 0 and text[s - 1] == " " and (s - 1) in token_at else token_at.get(s)
        number = match.group().replace(",", "")
        if i is not None and len(seen) >= 2:
            a, b = seen[-2], seen[-1]
            exprs = ([gold[s]] if s in gold else []) + [f"{a} + {b}", f"{a} * {b}"]
            for expr in list(dict.fromkeys(exprs))[:per_spot]:
                result = registry.call("Calculator", [expr]).text
                out.append({"tool": "Calculator", "args": [expr], "result": result, "token": i,
                            "position": tt.starts[i], "right": result == number})
        seen.append(number)
    return out


def as_record(text: str, cands: list[dict[str, Any]]) -> Any:
    """The filter stage's input record for `cands`."""
    from toolcall.data_gen.records import Candidate, TextRecord

    return TextRecord(text, candidates=tuple(Candidate(c["tool"], tuple(c["args"]), "", c["token"], c["position"],
                                                       result=c["result"]) for c in cands))


def peer_inputs(record: dict[str, Any], cand: dict[str, Any]) -> dict[str, str]:
    """The peer's three texts for a candidate: its call markers " [" and " ]" must be single tokens (")]" is not)."""
    text, at = record["text"], cand["position"]
    call = f"Calculator({cand['args'][0]})"
    if text[at:at + 1] == " ":
        with_call, with_result = f" [{call} ]", f" [{call} → {cand['result']} ]"
    else:
        with_call, with_result = f" [{call} ] ", f" [{call} → {cand['result']} ] "
    return {"plain": text, "with_call": text[:at] + with_call + text[at:], "with_result": text[:at] + with_result + text[at:]}


def peer_filter() -> Any:
    """lucidrains' filter function, imported as its own set-up allows on a machine without torchvision."""
    try:
        import x_clip  # noqa: F401  # its tokenizer is imported by toolformer_pytorch, but the filter does not use it
    except ImportError:
        for name in ("x_clip", "x_clip.tokenizer"):
            stub = types.ModuleType(name)
            stub.__spec__ = importlib.machinery.ModuleSpec(name, None)
            stub.tokenizer = types.SimpleNamespace(vocab_size=49152, encode=None, decode=None)
            sys.modules[name] = stub
    try:
        from toolformer_pytorch.toolformer_pytorch import filter_tokens_with_api_response
    except ImportError as err:
        raise SystemExit("the peer is not installed: pip install --no-deps toolformer-pytorch==0.0.30 && "
                         f"pip install beartype einops ({err})") from err
    return filter_tokens_with_api_response


def run_peer(model: Any, tokenizer: Any, rows: list[dict[str, str]]) -> tuple[float, int]:
    """Seconds the peer takes over `rows`, and how many candidates it refused (its asserts on the markers)."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    filter_fn = peer_filter()

    class Logits(torch.nn.Module):
        def __init__(self, m: Any) -> None:
            super().__init__()
            self.m = m

        def forward(self, ids: Any) -> Any:
            return self.m(ids).logits

    open_id = tokenizer.encode(" [", add_special_tokens=False)
    close_id = tokenizer.encode(" ]", add_special_tokens=False)
    assert len(open_id) == 1 and len(close_id) == 1, (open_id, close_id)
    lm = Logits(model)
    failed = 0
    began = time.perf_counter()
    with torch.no_grad():
        for at in range(0, len(rows), PEER_BATCH):
            chunk = rows[at:at + PEER_BATCH]
            a, b, c = (pad_sequence([torch.tensor(tokenizer.encode(x[k], add_special_tokens=False)).long() for x in chunk],
                                    batch_first=True, padding_value=0) for k in ("plain", "with_call", "with_result"))
            try:
                filter_fn(lm, tokens=a, tokens_without_api_response=b, tokens_with_api_response=c,
                          api_start_token_id=open_id[0], api_end_token_id=close_id[0], filter_threshold=1.0)
            except AssertionError:
                failed += len(chunk)
    return time.perf_counter() - began, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=19, help="dev texts with calculator gold to use")
    parser.add_argument("--per-spot", type=int, default=2, help="calls per number position")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive oracle (no max_abs_loss_diff)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own); 1 keeps a busy neighbour from stalling every "
                             "parallel operation on a shared machine")
    args = parser.parse_args()

    import torch
    from toolcall.data_gen.config import FilterConfig
    from toolcall.data_gen.filter import score_candidates
    from toolcall.data_gen.reference import naive_losses

    from toolcall.backends.hf_loading import load_model_and_tokenizer
    from toolcall.backends.hf_scoring import HFScorer
    from toolcall.registry import default_registry

    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = load_model_and_tokenizer(None)
    scorer = HFScorer(model, tokenizer)
    registry = default_registry(["calculator"])
    records = load_texts(args.texts)
    work = [(r, candidates(scorer, registry, r, args.per_spot)) for r in records]
    n = sum(len(c) for _, c in work)
    score_candidates(as_record(records[0]["text"], work[0][1][:2]), scorer, {"calculator": FilterConfig()})
    result: dict[str, Any] = {
        "benchmark": "filter", "model": "SmolLM2-135M-Instruct (embedded GGUF, transformers, float32)",
        "hardware": f"{platform.machine()} CPU, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
        "texts": len(records), "candidates": n, "right_calls": sum(c["right"] for _, cs in work for c in cs)}

    peer_s, failed = run_peer(model, tokenizer, [peer_inputs(r, c) for r, cs in work for c in cs])
    result["peer"] = "lucidrains/toolformer-pytorch 0.0.30 filter_tokens_with_api_response"
    result["peer_cands_per_s"] = round(n / peer_s, 2)
    result["peer_failed"] = failed
    worst = 0.0
    exact_kept: dict[str, list[list[bool]]] = {}
    for placement in ("prefix", "inline"):
        cfg = {"calculator": FilterConfig(placement=placement, exact_losses=True)}   # every loss, as the peer
        began = time.perf_counter()
        fast = [score_candidates(as_record(r["text"], c), scorer, cfg).candidates for r, c in work]
        fast_s = time.perf_counter() - began
        result[f"toolcall_{placement}_cands_per_s"] = round(n / fast_s, 2)
        result[f"{placement}_vs_peer"] = round(peer_s / fast_s, 2)
        exact_kept[placement] = [[c.kept for c in row] for row in fast]
        # The default filter: L(e(c, eps)) only for calls it can still decide (L- <= L_eps); the same calls kept.
        lazy_cfg = {"calculator": FilterConfig(placement=placement)}
        began = time.perf_counter()
        lazy = [score_candidates(as_record(r["text"], c), scorer, lazy_cfg).candidates for r, c in work]
        lazy_s = time.perf_counter() - began
        result[f"toolcall_{placement}_default_cands_per_s"] = round(n / lazy_s, 2)
        result[f"{placement}_default_vs_peer"] = round(peer_s / lazy_s, 2)
        result[f"{placement}_default_keeps_the_same"] = [[c.kept for c in row] for row in lazy] == exact_kept[placement]
        if not args.no_naive:
            began = time.perf_counter()
            slow = [[naive_losses(scorer, r["text"], cand, placement=placement) for cand in as_record(r["text"], c).candidates]
                    for r, c in work]
            result[f"naive_{placement}_cands_per_s"] = round(n / (time.perf_counter() - began), 2)
            for f_row, s_row in zip(fast, slow):
                for cand, (minus, plus) in zip(f_row, s_row):
                    worst = max(worst, abs(cand.loss_minus - minus), abs(cand.loss_plus - plus))
    if not args.no_naive:
        result["max_abs_loss_diff"] = worst
    print(json.dumps(result))


if __name__ == "__main__":
    main()
