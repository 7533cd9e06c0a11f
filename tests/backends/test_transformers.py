"""The transformers backend on the embedded SmolLM2: a KV cache kept across tool calls, stop overhang, steering."""
from __future__ import annotations

import pytest

from toolcall.backends.base import Steering
from toolcall.dialects import get_dialect
from toolcall.loop import LoopConfig, TextDelta
from toolcall.registry import ToolRegistry
from toolcall.runner import resume_loop

pytestmark = pytest.mark.model

RAW = "Question: A crate holds 17 rows of 23 bottles. How many bottles are in the crate?\nAnswer: The crate holds"
PROMPT = "<|im_start|>user\nWhat is 17 times 23? Use [Calculator(2 * 3) -> 6] for arithmetic.<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def backend():  # type: ignore[no-untyped-def]
    from toolcall.backends.transformers import TransformersBackend

    return TransformersBackend()


def test_kv_resume_equals_a_from_scratch_run(backend) -> None:  # type: ignore[no-untyped-def]
    session = backend.start(RAW)
    session.generate([], 4)  # decode a little, then pretend a call was made
    session.append(" [Calculator(17 * 23) -> 391]")
    cut = list(session.ids)
    resumed = session.generate([], 12)
    assert resumed.strip()
    # From scratch on the same tokens, and on the re-tokenized text where the tokenization agrees.
    assert backend.start_ids(cut).generate([], 12) == resumed
    text = session.text[: len(session.text) - len(resumed)]
    if backend.encode(text) == cut:
        assert backend.start(text).generate([], 12) == resumed


def test_resume_after_decoding_prefills_only_the_spliced_tokens(backend) -> None:  # type: ignore[no-untyped-def]
    session = backend.start(RAW)
    first = session.generate([], 6)
    prefilled = session.counters.prefilled_tokens
    assert prefilled == len(backend.encode(RAW))
    splice = " [Calculator(17 * 23) -> 391]"
    session.append(splice)
    cut = list(session.ids)
    second = session.generate([], 6)
    assert session.counters.prefilled_tokens - prefilled == len(backend.encode(splice))
    # Identical to a from-scratch run over the very same token ids.
    fresh = backend.start_ids(cut)
    assert fresh.text == RAW + first + splice
    assert fresh.generate([], 6) == second


def test_stop_inside_a_token_rolls_the_cache_back(backend) -> None:  # type: ignore[no-untyped-def]
    prompt = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    free = backend.start(prompt).generate([], 8)
    assert "Paris" in free
    session = backend.start(prompt)
    out = session.generate(["Par"], 8)  # " Paris" is one token: the stop ends inside it
    assert out.endswith("Par") and session.stop_reason == "stop" and session.rollback_tokens >= 1
    assert backend.decode_ids(session.ids) == session.text
    cut = list(session.ids)
    more = session.generate([], 5)
    assert more == backend.start_ids(cut).generate([], 5)


def test_trigger_top_k_forces_a_call_and_disable_bans_it(backend) -> None:  # type: ignore[no-untyped-def]
    plain = backend.start(PROMPT)
    free = plain.generate([], 10)
    forced = backend.start(PROMPT)
    text = forced.generate(["->"], 10, Steering("[", trigger_top_k=10))
    assert forced.triggers == 1 and "[" in text and text != free
    banned = backend.start(PROMPT + "17 times 23 is")
    assert "[" not in banned.generate([], 10, Steering("[", disable=True))
    # The next reply in the same session (a chat turn) may trigger again: the limit counts per reply.
    forced.next_turn(" 391]<|im_end|>\n" + PROMPT.split("<|im_end|>\n", 1)[0].replace("17 times 23", "12 plus 34")
                     + "<|im_end|>\n<|im_start|>assistant\n")
    assert forced.triggers == 0 and forced.generated == "" and forced.counters.decoded_tokens == 0
    again = forced.generate(["->"], 10, Steering("[", trigger_top_k=10))
    assert forced.triggers == 1 and "[" in again


@pytest.mark.parametrize("close", [(), ("]",)])
def test_the_trigger_and_the_threshold_leave_an_open_call_alone(backend, close) -> None:  # type: ignore[no-untyped-def]
    """Inside a call the decode itself opened, the trigger forced a second opener (the schema adapter wrote
    `<tool_call>` and then, forced, `<tool_call>` again) and the threshold banned the opener's tokens from the
    arguments. Now both apply only where a call may open: the one opener is the model's or the trigger's, and the
    arguments are what the free model writes after it. With the dialect's close texts, a decode that starts inside
    a call (the session's text ends in one) knows it is: the prompt's own `[...]` example is closed."""
    free = backend.start(PROMPT).generate(["->"], 16)
    steer = Steering("[", trigger_top_k=10, max_triggers=5, close_texts=close)
    forced = backend.start(PROMPT)
    text = forced.generate(["->"], 16, steer)
    assert text.count("[") == 1 and forced.triggers == 1 and "[" not in free
    head = text[:text.index("[") + 1]
    plain = backend.start(PROMPT + head).generate(["->"], 12)
    assert text.endswith(plain)  # after the opener: what the free model writes
    opened = backend.start(PROMPT)
    assert opened.generate(["["], 16, steer) == head  # the trigger opens the call; this decode stops right after it
    rest = opened.generate(["->"], 12, steer)
    # Without close texts a decode cannot tell it starts inside a call: the trigger fired in its arguments.
    assert (rest == plain, opened.triggers) == ((True, 1) if close else (False, 2))
    if close:
        held = backend.start(PROMPT + head)
        after = held.generate(["->"], 8, Steering("[", min_open_prob=0.99, close_texts=close))
        assert after == backend.start(PROMPT + head).generate(["->"], 8)


def test_the_call_threshold_holds_back_the_trigger_where_a_call_is_unlikely(backend) -> None:  # type: ignore[no-untyped-def]
    free = backend.start(PROMPT).generate([], 10)
    gated = backend.start(PROMPT)
    text = gated.generate(["->"], 10, Steering("[", trigger_top_k=10, min_open_prob=0.99))
    assert gated.triggers == 0 and "[" not in text and text == free
    low = backend.start(PROMPT)
    assert "[" in low.generate(["->"], 10, Steering("[", trigger_top_k=10, min_open_prob=1e-9)) and low.triggers == 1


def test_loop_reprefill_per_call_equals_spliced_tokens(backend) -> None:  # type: ignore[no-untyped-def]
    def calculator(expression: str) -> str:
        """Evaluate an arithmetic expression.

        Args:
            expression: The expression.
        """
        return "391"

    prompt = ("Question: A box holds 24 rows of 15 eggs. How many eggs are in the box?\n"
              "Answer: The box holds [Calculator(24 * 15) -> 360] 360 eggs.\n" + RAW + " [Calculator(17 * 23)")
    session = backend.start(prompt)
    events = list(resume_loop(session, get_dialect("toolformer"), ToolRegistry([calculator]),
                              LoopConfig(max_new_tokens=6)))
    result = events[-1].result
    spliced = [e.text for e in events if isinstance(e, TextDelta) and e.source == "tool"]
    assert [c.result for c in result.calls] == ["391"] and spliced == [" 391]"]
    # Prompt once, then only the spliced tokens (plus any stop-overhang re-encoding, counted on its own).
    expected = len(backend.encode(prompt)) + len(backend.encode(" 391]")) + session.reprefilled_tokens
    assert result.counters.prefilled_tokens == expected
    # The input: the prompt and the result, each once (re-encoded overhang is the model's own text).
    assert result.counters.input_tokens == len(backend.encode(prompt)) + len(backend.encode(" 391]"))


def test_constrained_calls_opened_by_the_trigger_parse_and_run(backend) -> None:  # type: ignore[no-untyped-def]
    from toolcall.backends.transformers import TransformersBackend
    from toolcall.registry import default_registry
    from toolcall.runner import run_loop

    registry = default_registry(["calculator", "calendar"])
    dialect = get_dialect("toolformer")
    config = LoopConfig(trigger_top_k=10, constrain_calls=True, max_new_tokens=40)
    greedy = run_loop(backend, PROMPT, dialect, registry, config)
    assert greedy.calls and all(c.ok and c.tool in ("Calculator", "Calendar") for c in greedy.calls), greedy.calls
    # Sampled at temperature 1 the model writes other calls, and every one it starts is a call that runs.
    sampler = TransformersBackend(lm=backend.model, tokenizer=backend.tokenizer, temperature=1.0, seed=0)
    calls = [c for _ in range(3) for c in run_loop(sampler, PROMPT, dialect, registry, config).calls]
    assert calls and all(c.ok and c.issue is None for c in calls), calls
    assert all(c.tool != "Calculator" or c.result.replace(".", "").replace("-", "").isdigit() for c in calls)


def test_a_long_prompt_is_prefilled_in_chunks_with_the_same_result(backend) -> None:  # type: ignore[no-untyped-def]
    long = RAW + " " + " ".join(f"Crate {i} holds 23 bottles." for i in range(60)) + "\nAnswer: The crate holds"
    whole = backend.start(long)
    before = backend.prefill_chunk
    try:
        backend.prefill_chunk = 0
        expected = whole.generate([], 8)
        backend.prefill_chunk = 64
        chunked = backend.start(long)
        deltas = list(chunked.stream([], 8))
    finally:
        backend.prefill_chunk = before
    steps = len(backend.encode(long)) // 64
    assert deltas[:steps] == [""] * steps  # one empty step per chunk before the first token
    assert "".join(deltas) == expected
    assert chunked.counters.prefilled_tokens == whole.counters.prefilled_tokens


def test_a_rollback_crop_keeps_the_first_tokens_and_decodes_as_from_scratch(backend) -> None:  # type: ignore[no-untyped-def]
    """The stop-overhang rollback drops cached tokens (transformers 5 refuses a positive crop length; 4 reads it as the
    length to keep): after it, the session decodes what a fresh one over the kept tokens decodes."""
    session = backend.start(RAW)
    session.generate([], 6)
    session._prefill()
    keep = len(session.token_ids) - 4
    kept = session.token_ids[:keep]
    session._crop(keep)
    assert session.token_ids == kept and session._cache.get_seq_length() == keep
    session._fresh = [kept[-1]]  # what _roll_back queues when nothing of the dropped tokens is kept
    session._crop(keep - 1)
    assert session.generate([], 8) == backend.start_ids(kept).generate([], 8)


def test_special_texts_are_what_the_tokenizer_reads_as_one_token_and_defused_they_are_text(backend) -> None:  # type: ignore[no-untyped-def]
    from toolcall.dialects.base import defuse

    texts = backend.special_texts()
    assert {"<|endoftext|>", "<|im_start|>", "<|im_end|>"} <= set(texts)
    eos = backend.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    quoted = "Models end with <|endoftext|> here."
    assert eos in backend.encode(quoted) and eos not in backend.encode(defuse(quoted, texts))


def test_a_reply_held_to_a_json_schema_is_that_json_and_ends_with_it(backend) -> None:  # type: ignore[no-untyped-def]
    """LoopConfig.json_schema (the server's response_format): held from the first token, sampled too, and ended once
    the value is complete; no tool runs."""
    import json

    import jsonschema

    from toolcall.backends.transformers import TransformersBackend
    from toolcall.registry import default_registry
    from toolcall.runner import run_loop

    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                               "count": {"type": "integer", "minimum": 0, "maximum": 1000}},
              "required": ["name", "count"], "additionalProperties": False}
    config = LoopConfig(json_schema=json.dumps(schema), max_new_tokens=60)
    prompt = "<|im_start|>user\nA crate holds 17 rows of 23 bottles. Answer in JSON.<|im_end|>\n<|im_start|>assistant\n"
    sampler = TransformersBackend(lm=backend.model, tokenizer=backend.tokenizer, temperature=1.0, seed=0)
    for engine in (backend, sampler, sampler):
        out = run_loop(engine, prompt, get_dialect("toolformer"), default_registry(["calculator"]), config)
        jsonschema.validate(json.loads(out.text), schema)
        assert out.calls == [] and out.stop_reason == "eos"
