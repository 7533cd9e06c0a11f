"""HFScoringMixin against a naive full forward on a tiny random Llama: log-probs, branches, shared prefixes, sampling."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from toolcall.backends.hf_scoring import Branch, HFScorer  # noqa: E402

_spec = importlib.util.spec_from_file_location("tiny_lm", Path(__file__).parents[1] / "data_gen" / "tiny_lm.py")
tiny_lm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tiny_lm)

TEXT = "Out of 1400 participants, 400 (or [Calculator(400 / 1400) -> 0.29] 29%) passed the test on Monday."


@pytest.fixture(scope="module")
def scorer() -> HFScorer:
    model, tok = tiny_lm.tiny_model_and_tokenizer()
    return HFScorer(model, tok)


def naive(model, ids: list[int], start: int) -> list[float]:
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
    return [float(logp[j - 1, ids[j]]) for j in range(max(start, 1), len(ids))]


def close(a: list[float], b: list[float], tol: float = 1e-5) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))


def test_encode_decode_roundtrip(scorer: HFScorer) -> None:
    ids = scorer.encode(TEXT)
    assert scorer.decode_ids(ids) == TEXT
    assert scorer.start_token_id() == scorer.tokenizer.bos_token_id


def test_token_logprobs_match_naive_with_padding(scorer: HFScorer) -> None:
    ids = [scorer.start_token_id()] + scorer.encode(TEXT)
    seqs = [(ids, 5), (ids[:9], 1), (ids[:30], 29), (ids[3:20], 2)]
    got = scorer.token_logprobs(seqs)
    for (seq, start), row in zip(seqs, got):
        assert close(row, naive(scorer.model, seq, start))


def test_token_logprobs_same_when_split_into_small_batches(scorer: HFScorer) -> None:
    ids = scorer.encode(TEXT)
    seqs = [(ids[:n], 1) for n in (5, 17, 33, 40)]
    small = HFScorer(scorer.model, scorer.tokenizer, max_batch_tokens=40)
    assert all(close(a, b) for a, b in zip(scorer.token_logprobs(seqs), small.token_logprobs(seqs)))


def test_next_token_logprobs_every_position(scorer: HFScorer) -> None:
    ids = scorer.encode("Out of 1400 participants")
    rows = scorer.next_token_logprobs(ids, [ids[0], ids[1]])
    assert len(rows) == len(ids) + 1
    full = naive(scorer.model, [scorer.start_token_id()] + ids, 1)
    assert abs(rows[0][0] - full[0]) < 1e-5   # position 0 is conditioned on the start token only
    within = naive(scorer.model, ids, 1)
    assert abs(rows[1][1] - within[0]) < 1e-5


def test_branches_reuse_prefix_and_match_naive(scorer: HFScorer) -> None:
    ids = scorer.encode(TEXT)
    call = scorer.encode(" [Calculator(12 + 30)]")
    state = scorer.prefix_state(ids, keep_logits=True)
    branches = [Branch(4, tuple(call + ids[4:9]), len(call)), Branch(10, tuple(ids[10:20]), 0),
                Branch(25, tuple(call), 1), Branch(2, tuple(ids[2:3]), 0)]
    got = scorer.branch_logprobs(state, branches)
    for br, row in zip(branches, got):
        seq = ids[:br.cut] + list(br.new_ids)
        assert close(row, naive(scorer.model, seq, br.cut + br.score_from))


def test_shared_prefix_logprobs_match_plain(scorer: HFScorer) -> None:
    ids = scorer.encode(TEXT)
    head = scorer.encode("[Calculator(400 / 1400)]\n")
    other = scorer.encode("[Calendar()]\n")
    seqs = [([1] + head + ids, 1 + len(head)), ([1] + other + ids[:20], 1 + len(other)), ([1] + ids, 1)]
    got = scorer.shared_prefix_logprobs(seqs)
    for (seq, start), row in zip(seqs, got):
        assert close(row, naive(scorer.model, seq, start))


def naive_greedy(model, ids: list[int], steps: int) -> list[int]:
    out = []
    for _ in range(steps):
        with torch.no_grad():
            tok = int(model(torch.tensor([ids + out])).logits[0, -1].argmax())
        out.append(tok)
    return out


def test_greedy_branch_sampling_equals_naive_greedy(scorer: HFScorer) -> None:
    ids = scorer.encode(TEXT)
    state = scorer.prefix_state(ids)
    opener = scorer.encode(" [")
    outs = scorer.sample_branches(state, [(7, opener), (15, opener + ids[16:18])], 2, stop=("\x00never",),
                                  max_new_tokens=6, temperature=0)
    for (cut, first), samples in zip([(7, opener), (15, opener + ids[16:18])], outs):
        want = scorer.decode_ids(naive_greedy(scorer.model, ids[:cut] + first, 6))
        assert samples == [(want, False), (want, False)]


def test_sampling_stops_on_text_inside_merged_tokens(scorer: HFScorer) -> None:
    # With a stop string that the greedy continuation contains, the text is cut before it and marked stopped.
    ids = scorer.encode(TEXT)
    state = scorer.prefix_state(ids)
    free = scorer.sample_branches(state, [(5, ids[5:6])], 1, stop=("\x00never",), max_new_tokens=6, temperature=0)[0][0][0]
    assert len(free) >= 3
    stop = free[2:4]
    text, stopped = scorer.sample_branches(state, [(5, ids[5:6])], 1, stop=(stop,), max_new_tokens=6, temperature=0)[0][0]
    assert stopped and text == free[:free.find(stop)]


def test_sampling_is_reproducible_per_seed(scorer: HFScorer) -> None:
    ids = scorer.encode(TEXT)
    state = scorer.prefix_state(ids)
    a = scorer.sample_branches(state, [(6, ids[6:7]), (12, ids[12:13])], 3, max_new_tokens=5, seed=7)
    b = scorer.sample_branches(state, [(6, ids[6:7]), (12, ids[12:13])], 3, max_new_tokens=5, seed=7)
    assert a == b and len(a) == 2 and all(len(s) == 3 for s in a)


def test_rows_ended_at_different_steps_match_naive_greedy(scorer: HFScorer) -> None:
    # Rows end at different steps (keep_going), finished rows ride along until a quarter of the batch has finished and
    # are then compacted away; every row must still be what a lone greedy decode gives, however the rows are batched.
    ids = scorer.encode(TEXT)
    state = scorer.prefix_state(ids)
    branches = [(cut, ids[cut:cut + 1]) for cut in (3, 5, 8, 11, 14, 17, 20, 23)]
    budget = 7

    def keep_going(text: str) -> bool:
        return len(text) < budget

    def want(cut: int, first: list[int]) -> tuple[str, bool]:
        got: list[int] = []
        for tok in naive_greedy(scorer.model, ids[:cut] + first, 6):
            got.append(tok)
            text = scorer.decode_ids(got)
            if not keep_going(text):
                return text, False
        return text, False

    expected = [[want(cut, list(first))] for cut, first in branches]
    lengths = {len(e[0][0]) for e in expected}
    assert len(lengths) > 1, "rows should end at different steps for this test to mean anything"
    together = scorer.sample_branches(state, branches, 1, stop=("\x00never",), max_new_tokens=6, temperature=0,
                                      keep_going=keep_going)
    one_by_one = HFScorer(scorer.model, scorer.tokenizer)
    one_by_one.max_sample_kv_bytes = 1       # one row per batch
    alone = one_by_one.sample_branches(state, branches, 1, stop=("\x00never",), max_new_tokens=6, temperature=0,
                                       keep_going=keep_going)
    assert together == expected and alone == expected
