"""The transformers Scorer against a naive full forward on a tiny random Llama: log-probs, branches, shared prefixes, sampling."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from toolcall.backends.base import Branch, Prefix, ReferenceScorer  # noqa: E402
from toolcall.backends.hf_scoring import HFScorer  # noqa: E402
from toolcall.errors import BackendError, ConfigError  # noqa: E402

# Every test here builds the tiny Llama and its tokenizer (a few seconds): not part of the fast tier.
pytestmark = pytest.mark.slow

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
    assert isinstance(scorer, ReferenceScorer)


def test_naive_logprobs_is_one_plain_forward(scorer: HFScorer) -> None:
    ids = [scorer.start_token_id()] + scorer.encode(TEXT)
    assert close(scorer.naive_logprobs(ids), naive(scorer.model, ids, 1), tol=0.0)


def test_sequence_logprobs_match_naive_with_padding(scorer: HFScorer) -> None:
    # No head shared by all four: they are batched whole, right-padded.
    ids = [scorer.start_token_id()] + scorer.encode(TEXT)
    seqs = [(ids, 5), (ids[:9], 1), (ids[:30], 29), (ids[3:20], 2)]
    got = scorer.sequence_logprobs(seqs)
    for (seq, start), row in zip(seqs, got):
        assert close(row, naive(scorer.model, seq, start))


def test_sequence_logprobs_same_when_split_into_small_batches(scorer: HFScorer) -> None:
    ids = scorer.encode(TEXT)
    seqs = [(ids[:n], 1) for n in (5, 17, 33, 40)] + [(ids[2:30], 3)]
    small = HFScorer(scorer.model, scorer.tokenizer, max_batch_tokens=40)
    assert all(close(a, b) for a, b in zip(scorer.sequence_logprobs(seqs), small.sequence_logprobs(seqs)))


def test_batch_size_must_be_positive(scorer: HFScorer) -> None:
    with pytest.raises(ConfigError, match="max_batch_tokens"):
        HFScorer(scorer.model, scorer.tokenizer, max_batch_tokens=0)


def test_transformers_backend_is_a_scorer_with_the_same_scores(scorer: HFScorer) -> None:
    from toolcall.backends import as_scorer
    from toolcall.backends.transformers import TransformersBackend

    backend = TransformersBackend.from_transformers(scorer.model, scorer.tokenizer, max_batch_tokens=40)
    assert backend.max_batch_tokens == 40 and as_scorer(backend) is backend
    ids = [scorer.start_token_id()] + scorer.encode(TEXT)
    seqs = [(ids[:n], 2) for n in (9, 30, 41)]
    assert all(close(a, b) for a, b in zip(backend.sequence_logprobs(seqs), scorer.sequence_logprobs(seqs)))
    with pytest.raises(ConfigError, match="max_batch_tokens"):
        TransformersBackend.from_transformers(scorer.model, scorer.tokenizer, max_batch_tokens=-1)


def test_prefix_state_gives_own_and_candidate_logprobs(scorer: HFScorer) -> None:
    ids = [scorer.start_token_id()] + scorer.encode("Out of 1400 participants")
    prefix = scorer.prefix_state(ids, [ids[1], ids[2]])
    assert prefix.ids == tuple(ids)
    assert close(list(prefix.token_logprobs), naive(scorer.model, ids, 1))
    assert len(prefix.candidate_logprobs) == len(ids)
    with torch.no_grad():
        logp = torch.log_softmax(scorer.model(torch.tensor([ids])).logits[0].float(), -1)
    for j, row in enumerate(prefix.candidate_logprobs):
        assert close(list(row), [float(logp[j, ids[1]]), float(logp[j, ids[2]])])
    assert scorer.prefix_state(ids).candidate_logprobs == ()


def test_branches_reuse_prefix_and_match_naive(scorer: HFScorer) -> None:
    ids = scorer.encode(TEXT)
    call = scorer.encode(" [Calculator(12 + 30)]")
    prefix = scorer.prefix_state(ids)
    branches = [Branch(4, tuple(call + ids[4:9]), len(call)), Branch(10, tuple(ids[10:20]), 0),
                Branch(25, tuple(call), 1), Branch(2, tuple(ids[2:3]), 0)]
    got = scorer.branch_logprobs(prefix, branches)
    for br, row in zip(branches, got):
        seq = ids[:br.cut] + list(br.new_ids)
        assert close(row, naive(scorer.model, seq, br.cut + br.score_from))


def test_a_prefix_from_another_engine_is_refused(scorer: HFScorer) -> None:
    foreign = Prefix((1, 2, 3), (0.0, 0.0), (), state="someone else's")
    with pytest.raises(BackendError, match="another engine"):
        scorer.branch_logprobs(foreign, [Branch(2, (3,), 0)])


def test_sequence_logprobs_share_a_head_and_match_plain(scorer: HFScorer) -> None:
    ids = scorer.encode(TEXT)
    head = scorer.encode("[Calculator(400 / 1400)]\n")
    other = scorer.encode("[Calendar()]\n")
    # The third sequence's first scored token is predicted by the shared head's last position.
    seqs = [([1] + head + ids, 1 + len(head)), ([1] + other + ids[:20], 1 + len(other)), ([1] + ids, 1)]
    # Here the first sequence is scored from inside the head the two share: that row is run whole instead.
    inside = [([1] + head + ids, 1), ([1] + head + ids[:10], 1 + len(head))]
    for group in (seqs, inside):
        got = scorer.sequence_logprobs(group)
        for (seq, start), row in zip(group, got):
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
    prefix = scorer.prefix_state(ids)
    opener = scorer.encode(" [")
    outs = scorer.sample_branches(prefix, [(7, opener), (15, opener + ids[16:18])], 2, stop=("\x00never",),
                                  max_new_tokens=6, temperature=0)
    for (cut, first), samples in zip([(7, opener), (15, opener + ids[16:18])], outs):
        want = scorer.decode_ids(naive_greedy(scorer.model, ids[:cut] + first, 6))
        assert samples == [(want, False), (want, False)]


def test_sampling_stops_on_text_inside_merged_tokens(scorer: HFScorer) -> None:
    # With a stop string that the greedy continuation contains, the text is cut before it and marked stopped.
    ids = scorer.encode(TEXT)
    prefix = scorer.prefix_state(ids)
    free = scorer.sample_branches(prefix, [(5, ids[5:6])], 1, stop=("\x00never",), max_new_tokens=6, temperature=0)[0][0][0]
    assert len(free) >= 3
    stop = free[2:4]
    text, stopped = scorer.sample_branches(prefix, [(5, ids[5:6])], 1, stop=(stop,), max_new_tokens=6, temperature=0)[0][0]
    assert stopped and text == free[:free.find(stop)]


def test_sampling_is_reproducible_per_seed(scorer: HFScorer) -> None:
    ids = scorer.encode(TEXT)
    prefix = scorer.prefix_state(ids)
    a = scorer.sample_branches(prefix, [(6, ids[6:7]), (12, ids[12:13])], 3, max_new_tokens=5, seed=7)
    b = scorer.sample_branches(prefix, [(6, ids[6:7]), (12, ids[12:13])], 3, max_new_tokens=5, seed=7)
    assert a == b and len(a) == 2 and all(len(s) == 3 for s in a)


def test_rows_ended_at_different_steps_match_naive_greedy(scorer: HFScorer) -> None:
    # Rows end at different steps (keep_going), finished rows ride along until a quarter of the batch has finished and
    # are then compacted away; every row must still be what a lone greedy decode gives, however the rows are batched.
    ids = scorer.encode(TEXT)
    prefix = scorer.prefix_state(ids)
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
    together = scorer.sample_branches(prefix, branches, 1, stop=("\x00never",), max_new_tokens=6, temperature=0,
                                      keep_going=keep_going)
    one_by_one = HFScorer(scorer.model, scorer.tokenizer)
    one_by_one.max_sample_kv_bytes = 1       # one row per batch
    alone = one_by_one.sample_branches(prefix, branches, 1, stop=("\x00never",), max_new_tokens=6, temperature=0,
                                       keep_going=keep_going)
    assert together == expected and alone == expected


def test_branches_packed_into_token_trees_match_naive_in_any_pack_size(scorer: HFScorer) -> None:
    # Branches at several cuts share heads (the call opening, the call up to its result); each pack size, down to
    # packs that split a shared head, must give every branch exactly its own sequence's log-probs.
    ids = scorer.encode(TEXT)
    prefix = scorer.prefix_state(ids)
    empty, full = scorer.encode(" [Calculator(12 + 30)]"), scorer.encode(" [Calculator(12 + 30) -> 42]")
    branches = [Branch(cut, tuple(call + ids[cut:cut + 5]), len(call)) for cut in (4, 9, 9, 17) for call in (empty, full)]
    branches += [Branch(9, tuple(ids[9:14]), 0), Branch(12, (), 0), Branch(30, tuple(full[:3]), 1)]
    want = [naive(scorer.model, ids[:br.cut] + list(br.new_ids), br.cut + br.score_from) for br in branches]
    for size in (3, 16, 512):
        small = HFScorer(scorer.model, scorer.tokenizer)
        small.max_pack_tokens = size
        got = small.branch_logprobs(small.prefix_state(ids), branches)
        assert all(close(row, exp) for row, exp in zip(got, want)), size
    assert scorer.branch_logprobs(prefix, branches)[branches.index(Branch(12, (), 0))] == []


def test_packs_grow_on_an_accelerator_and_stay_small_on_the_cpu(scorer: HFScorer,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    assert scorer._pack_limit() == scorer.max_pack_tokens == 512
    monkeypatch.setattr(scorer, "_device", lambda: SimpleNamespace(type="cuda"))
    assert scorer._pack_limit() == scorer.max_pack_tokens_accelerated == 4096
    monkeypatch.setattr(scorer, "max_batch_tokens", 1000)
    assert scorer._pack_limit() == 1000


def test_prefix_states_reuse_whole_blocks_of_a_recent_state_bit_for_bit(scorer: HFScorer) -> None:
    # A state computed after another that shares its head reuses the shared whole blocks; blocks are computed the
    # same way either way, so it equals (exactly) the state a fresh engine computes, and the naive forward (closely).
    head = scorer.encode("Here are some examples of API calls: [Calculator(400 / 1400)]\nInput: ")
    first = [scorer.start_token_id()] + head + scorer.encode("Out of 1400 participants, 400 passed.")
    second = [scorer.start_token_id()] + head + scorer.encode(TEXT)
    candidates = scorer.encode(" [") + scorer.encode("[")

    def engine() -> HFScorer:
        fresh = HFScorer(scorer.model, scorer.tokenizer)
        fresh.prefix_block = 4
        return fresh

    warm = engine()
    warm.prefix_state(first, candidates)
    runs: list[int] = []
    real = warm._forward
    warm._forward = lambda ids, *rest: runs.append(ids.shape[1]) or real(ids, *rest)   # type: ignore[method-assign]
    reused = warm.prefix_state(second, candidates)
    cold = engine().prefix_state(second, candidates)
    assert sum(runs) < len(second) - len(head) // 2          # the shared blocks were not run again
    assert reused.token_logprobs == cold.token_logprobs and reused.candidate_logprobs == cold.candidate_logprobs
    assert torch.equal(reused.state.hidden, cold.state.hidden)
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(reused.state.kv, cold.state.kv))
    assert close(list(reused.token_logprobs), naive(scorer.model, second, 1))
    assert warm.prefix_state(second, candidates) is reused     # the same ids and candidates again: nothing is run


def test_recent_prefix_states_are_forgotten_when_the_weights_change(scorer: HFScorer) -> None:
    engine = HFScorer(scorer.model, scorer.tokenizer)
    ids = [scorer.start_token_id()] + scorer.encode(TEXT)
    before = engine.prefix_state(ids)
    assert engine.prefix_state(ids) is before
    weight = next(scorer.model.parameters())
    with torch.no_grad():
        weight.add_(0.0)                    # an in-place update, as an optimizer step makes
    assert engine.prefix_state(ids) is not before


def test_a_bfloat16_model_gets_float32_logits_and_a_changed_head_is_read_again() -> None:
    model, tok = tiny_lm.tiny_model_and_tokenizer()
    model = model.to(torch.bfloat16)
    scorer = HFScorer(model, tok)
    hidden = torch.randn(3, model.config.hidden_size, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    weight = model.get_output_embeddings().weight
    exact = hidden.float() @ weight.float().T
    got = scorer._head(hidden)
    assert got.dtype == torch.float32 and torch.allclose(got, exact, atol=1e-5)
    assert not torch.equal(got, model.get_output_embeddings()(hidden).float())   # not rounded to bfloat16 first
    with torch.no_grad():
        weight.mul_(2)    # an optimizer step changes the weights in place
    assert torch.allclose(scorer._head(hidden), 2 * exact, atol=1e-4)
