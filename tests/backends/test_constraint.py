"""Grammar-constrained sampling (sample_branches(grammar=...), Steering.constrain) on the toy LM and tiny Llamas."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("llguidance")

from toolcall.backends.constraint import TokenMasks  # noqa: E402
from toolcall.backends.fake import FakeBackend  # noqa: E402
from toolcall.backends.toy_lm import ToyLM  # noqa: E402
from toolcall.dialects import get_dialect  # noqa: E402
from toolcall.dialects.toolformer import ToolformerDialect  # noqa: E402
from toolcall.errors import BackendError, ConfigError, MissingDependencyError  # noqa: E402
from toolcall.registry import default_registry  # noqa: E402

TOY_TEXTS = ["The store sold 12 apples and 30 pears, a total of [Calculator(12 + 30) -> 42] 42 fruits.",
             "Out of 1400 people, 400 [Calculator(400 / 1400)] passed, and [WikiSearch(\"pass rate\")] is low."]


@pytest.fixture(scope="module")
def grammar() -> str:
    registry = default_registry(["calculator", "calendar", "wikisearch"])
    return ToolformerDialect().call_grammar(registry)


def parses(text: str) -> bool:
    source = "[" + text if text.endswith("]") else "[" + text + "]"
    parsed = get_dialect("toolformer").parse(source)
    return len(parsed.calls) == 1 and not parsed.issues and parsed.calls[0].span == (0, len(source))


def test_toy_samples_under_a_grammar_are_whole_calls(grammar: str) -> None:
    backend = FakeBackend(lm=ToyLM(TOY_TEXTS, order=5, smoothing=0.1))
    ids = backend.encode("The shop sold 12 apples and 30 pears, a total of")
    prefix = backend.prefix_state(ids)
    branches = [(len(ids), backend.encode(" [")), (3, backend.encode("["))]
    outs = backend.sample_branches(prefix, branches, 20, max_new_tokens=40, seed=4, grammar=grammar)
    closed = [text for row in outs for text, stopped in row if stopped]
    assert len(closed) >= 30
    assert all(parses(text) for text in closed)
    assert all(text.endswith(("]", "->", "→")) for text in closed)  # the close is part of the sample
    # Greedy follows the toy's training text; the same seed gives the same samples.
    (greedy,) = backend.sample_branches(prefix, branches[:1], 1, temperature=0, grammar=grammar)
    assert greedy == [("Calculator(12 + 30) ->", True)]
    assert outs == backend.sample_branches(prefix, branches, 20, max_new_tokens=40, seed=4, grammar=grammar)


def test_a_grammar_llguidance_cannot_read_is_a_config_error() -> None:
    backend = FakeBackend(lm=ToyLM(TOY_TEXTS))
    ids = backend.encode("a total of")
    with pytest.raises(ConfigError, match="constraint grammar"):
        backend.sample_branches(backend.prefix_state(ids), [(2, [])], 1, grammar='start: /a(?=b)/ "b"\n')


def test_a_grammar_that_fails_at_its_first_mask_is_a_config_error() -> None:
    """llguidance reports some faults only when the first mask is computed (`{"$ref": "#"}`): that mask allowed only
    the end, and a reply held to the schema came back empty, as if complete, with a 200."""
    from char_vocab import char_masks

    masks = char_masks(["<s>", "</s>"] + [chr(c) for c in range(32, 127)])
    with pytest.raises(ConfigError, match="constraint grammar cannot be used"):
        masks.matchers('start: %json {"$ref": "#"}\n', 1)
    assert masks.matchers('start: %json {"type": "object"}\n', 1)


def test_token_masks_pad_ids_the_tokenizer_lacks() -> None:
    tokens = ["<s>", "</s>", "a", "b", "ab"]
    masks = TokenMasks.for_tokens(tokens, 1, lambda t: [tokens.index(c) for c in t], [0])
    wider = TokenMasks(masks.tokenizer, 8)   # an engine whose logits are wider than its vocabulary
    (matcher,) = wider.matchers('start: "bb" | "ab"\n', 1)
    allowed = wider.allowed([matcher])
    assert allowed.shape == (1, 8) and [int(i) for i in allowed[0].nonzero()[0]] == [2, 3, 4]


def test_missing_llguidance_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llguidance", None)
    backend = FakeBackend(lm=ToyLM(TOY_TEXTS))
    ids = backend.encode("a total of")
    with pytest.raises(MissingDependencyError, match=r"toolcall\[constrain\]"):
        backend.sample_branches(backend.prefix_state(ids), [(2, [])], 1, grammar='start: "a"\n')


# --- the transformers engine on tiny Llamas: random logits, so the grammar alone makes the calls ---------------------
def _tiny_lm():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("tiny_lm", Path(__file__).parents[1] / "data_gen" / "tiny_lm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny():  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from toolcall.backends.hf_scoring import HFScorer

    model, tok = _tiny_lm().tiny_model_and_tokenizer()
    return HFScorer(model, tok)


def naive_constrained_greedy(scorer, ids: list[int], grammar: str, steps: int) -> tuple[str, bool]:  # type: ignore[no-untyped-def]
    """One full forward per token, the grammar's mask applied, argmax: the reference for the batched sampler."""
    import torch

    masks = scorer._token_masks()
    (matcher,) = masks.matchers(grammar, 1)
    out: list[int] = []
    for _ in range(steps):
        with torch.no_grad():
            logits = scorer.model(torch.tensor([ids + out])).logits[0, -1].float()
        allowed = torch.from_numpy(masks.allowed([matcher])[0])
        tok = int(logits.masked_fill(~allowed, float("-inf")).argmax())
        masks.consume(matcher, tok)
        out.append(tok)
        if matcher.is_stopped():
            return scorer.decode_ids(out), True
    return scorer.decode_ids(out), False


@pytest.mark.slow
def test_tiny_llama_constrained_greedy_equals_a_naive_masked_decode(grammar: str) -> None:
    # The tiny Llama after a few seconds of training on bracket calls: different rows make different calls.
    from toolcall.backends.hf_scoring import HFScorer

    tiny = HFScorer(*_tiny_lm().trained_tiny_model_and_tokenizer())
    text = "The store sold 12 apples and 30 pears, a total of 42 fruits. Today is Monday, and 400 (or 29%) passed."
    ids = [tiny.start_token_id()] + tiny.encode(text)
    prefix = tiny.prefix_state(ids)
    cuts = [len(tiny.encode(text[:text.index(at)])) + 1 for at in (" 42 fruits", " Monday", " (or", " passed")]
    branches = [(cut, tiny.encode(" [")) for cut in cuts]
    expected = [[naive_constrained_greedy(tiny, ids[:cut] + first, grammar, 24)] for cut, first in branches]
    assert len({len(text) for (text, _), in expected}) > 1, "rows should end at different steps for the test to count"
    assert tiny.sample_branches(prefix, branches, 1, max_new_tokens=24, temperature=0, grammar=grammar) == expected


@pytest.mark.slow
def test_tiny_llama_random_samples_all_parse(tiny, grammar: str) -> None:  # type: ignore[no-untyped-def]
    ids = [tiny.start_token_id()] + tiny.encode("The store sold 12 apples and 30 pears, a total of 42.")
    prefix = tiny.prefix_state(ids)
    outs = tiny.sample_branches(prefix, [(9, tiny.encode(" [")), (14, tiny.encode("["))], 25, max_new_tokens=48,
                                temperature=1.0, seed=3, grammar=grammar)
    closed = [text for row in outs for text, stopped in row if stopped]
    assert len(closed) >= 35, outs
    assert all(parses(text) for text in closed), [t for t in closed if not parses(t)]


@pytest.mark.slow
def test_a_session_decodes_an_open_call_under_its_grammar_past_arrows_inside_it() -> None:
    # The transformers session: once "[" is written (here forced by a top-k trigger over the whole vocabulary), the
    # grammar decides every token; an arrow inside the quoted argument is argument text, only the closing one stops.
    from toolcall.backends.base import Steering
    from toolcall.backends.transformers import TransformersBackend

    model, tok = _tiny_lm().tiny_model_and_tokenizer()
    backend = TransformersBackend(lm=model, tokenizer=tok)
    grammar = '%llguidance {}\nstart: "Q(\\"a -> b\\")" close\nclose: "->"\n'
    steering = Steering("[", trigger_top_k=len(tok), constrain=grammar)
    session = backend.start("The store sold 12 apples")
    text = session.generate(["->"], 30, steering)
    assert text.lstrip() == '[Q("a -> b")->' and session.stop_reason == "stop" and session.matched_stop == "->"
    # The cache holds exactly the text: the next decode goes on from it like a fresh session over the same ids.
    assert backend.start_ids(session.ids).text == session.text


# --- one grammar per branch (data_gen: what the text before each position admits) -----------------------------------
def _branch_grammars(registry):  # type: ignore[no-untyped-def]
    from toolcall.data_gen.sample import call_grammar

    return [call_grammar("Calculator", registry, before) for before in ("The shop sold 12 apples and 30 pears",
                                                                        "We drove 3 hours at 60 miles per hour")]


def _numbers(text: str) -> set[str]:
    import re

    return set(re.findall(r"\d[\d,.]*", text))


def test_each_branch_samples_under_its_own_grammar() -> None:
    registry = default_registry(["calculator"])
    own = _branch_grammars(registry)
    backend = FakeBackend(lm=ToyLM(TOY_TEXTS + ["We drove 3 hours at 60 miles per hour, so [Calculator(3 * 60)] 180."],
                                   order=5, smoothing=0.1))
    ids = backend.encode("The shop sold 12 apples and 30 pears, a total of")
    prefix = backend.prefix_state(ids)
    branches = [(len(ids), backend.encode(" [")), (len(ids), backend.encode(" ["))]
    outs = backend.sample_branches(prefix, branches, 12, max_new_tokens=40, seed=4, grammar=own)
    free = {"1", "2", "100", "1000", "1,000"}
    written = ({"12", "30"} | free, {"3", "60"} | free)
    for row, allowed in zip(outs, written):
        closed = [text for text, stopped in row if stopped]
        assert len(closed) >= 8 and all(parses(text) for text in closed)
        assert set().union(*(_numbers(text) for text in closed)) <= allowed
    assert any({"12", "30"} & _numbers(text) for text, _ in outs[0])     # each branch uses its own numbers
    assert any({"3", "60"} & _numbers(text) for text, _ in outs[1])
    # One grammar for all branches is the same as that grammar repeated; the count must match the branches.
    single = backend.sample_branches(prefix, branches, 5, max_new_tokens=40, seed=4, grammar=own[0])
    assert single == backend.sample_branches(prefix, branches, 5, max_new_tokens=40, seed=4, grammar=[own[0]] * 2)
    with pytest.raises(ConfigError, match="one grammar .* per branch; got 1 for 2 branches"):
        backend.sample_branches(prefix, branches, 1, grammar=own[:1])


@pytest.mark.slow
def test_tiny_llama_samples_each_branch_under_its_own_grammar(tiny) -> None:  # type: ignore[no-untyped-def]
    registry = default_registry(["calculator"])
    own = _branch_grammars(registry)
    ids = [tiny.start_token_id()] + tiny.encode("The store sold 12 apples and 30 pears, a total of 42.")
    prefix = tiny.prefix_state(ids)
    branches = [(9, tiny.encode(" [")), (14, tiny.encode("["))]
    outs = tiny.sample_branches(prefix, branches, 12, max_new_tokens=48, temperature=1.0, seed=3, grammar=own)
    free = {"1", "2", "100", "1000", "1,000"}
    for row, allowed in zip(outs, ({"12", "30"} | free, {"3", "60"} | free)):
        closed = [text for text, stopped in row if stopped]
        assert len(closed) >= 4 and all(parses(text) for text in closed), row
        assert set().union(*(_numbers(text) for text in closed)) <= allowed, row
    # The greedy rows under one grammar for all are those under that grammar repeated, row by row.
    greedy = tiny.sample_branches(prefix, branches, 1, max_new_tokens=24, temperature=0, grammar=own[1])
    assert greedy == tiny.sample_branches(prefix, branches, 1, max_new_tokens=24, temperature=0, grammar=[own[1]] * 2)


def test_a_token_longer_than_llguidance_holds_is_a_backend_error_not_a_panic() -> None:
    tokens = ["<s>", "</s>", "a", " " * 1024]
    TokenMasks.for_tokens(tokens, 1, lambda t: [2], [0])   # the longest token its trie holds
    with pytest.raises(BackendError, match="token 3 is 1,025 bytes long; .* at most 1,024 bytes"):
        TokenMasks.for_tokens([*tokens[:3], " " * 1025], 1, lambda t: [2], [0])


def test_constrained_sampling_after_a_text_with_long_runs_of_spaces_and_brackets() -> None:
    # The toy LM took each run as one token, and llguidance panicked building its token trie over them.
    text = "The sum" + " " * 3000 + "of 12 and 30 is " + "[" * 3000 + " 42."
    backend = FakeBackend(lm=ToyLM([*TOY_TEXTS, text]))
    assert max(len(t) for t in backend.lm.vocabulary()) <= 17   # a leading space and 16 characters
    ids = backend.encode(text[:40])
    (rows,) = backend.sample_branches(backend.prefix_state(ids), [(len(ids), [])], 2, grammar='start: "a" | "b"\n')
    assert all(out in ("a", "b") for out, _ in rows)
