"""The async vLLM engine reads the loop's look past a call marker in the call's own request: the replies, calls,
stops and token counts are those of the look in a request of its own, with fewer requests."""
from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.backends.test_vllm import CharTokenizer, double, structured_stand_in  # noqa: F401  # a fixture, used below
from toolcall.loop import LoopConfig
from toolcall.registry import ToolRegistry
from toolcall.runner import run_loop

pytestmark = pytest.mark.usefixtures("structured_stand_in")   # a stand-in vllm module, with structured outputs
EOS = 0
CALL = '<tool_call>\n{{"name": "double", "arguments": {{"x": {}}}}}\n</tool_call>'
Model = Callable[[str], str]


class MergingTokenizer(CharTokenizer):
    """One token a character, except ">\n", one token: a call marker "</tool_call>" followed by a line break then ends
    inside a token."""

    MERGED = 300

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        ids: list[int] = []
        i = 0
        while i < len(text):
            if text.startswith(">\n", i):
                ids.append(self.MERGED)
                i += 2
            else:
                ids.append(ord(text[i]))
                i += 1
        return ids

    def decode(self, ids: list[int], **_: Any) -> str:
        return "".join(">\n" if i == self.MERGED else chr(i) for i in ids)


class GluingTokenizer(CharTokenizer):
    """One token a character, except "<tool_call>\n", one token that glues the call opener to more text: the steering
    of constrained calls bans it, so a call opens at a token's end."""

    GLUED, TEXT = 301, "<tool_call>\n"

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        pieces = text.split(self.TEXT)
        ids = [ord(c) for c in pieces[0]]
        for piece in pieces[1:]:
            ids += [self.GLUED, *(ord(c) for c in piece)]
        return ids

    def decode(self, ids: list[int], **_: Any) -> str:
        return "".join(self.TEXT if i == self.GLUED else chr(i) for i in ids)

    def __len__(self) -> int:
        return self.GLUED + 1


def outputs(tok: CharTokenizer, prompt_ids: list[int], reply: str, params: Any) -> Iterator[Any]:
    """The cumulative outputs vLLM streams for `reply` under `params`: a token at a time, ended by a stop string (its
    text cut there, its ids not), max_tokens, a grammar's end ("</tool_call>" under structured outputs), or the EOS token after the reply."""
    # A banned token (toolcall's logits processor's rule) is written a character at a time instead.
    banned = set(((getattr(params, "extra_args", None) or {}).get("toolcall") or {}).get("ban", ()))
    ids = [*(j for i in tok.encode(reply) for j in ([ord(c) for c in tok.decode([i])] if i in banned else [i])), EOS]
    held = getattr(params, "structured_outputs", None)
    # Under a call's grammar the request ends with the call, unless free text may follow it.
    grammar = held is not None and "TOOLCALL_FREE_TAIL" not in held.grammar
    for n in range(1, len(ids) + 1):
        text = tok.decode(ids[:n - 1] if n == len(ids) else ids[:n])   # EOS is a token, not text
        finish, reason = None, None
        hits = sorted((text.find(s) + len(s), s) for s in params.stop if s in text)
        if hits:
            text, finish, reason = text[:hits[0][0]], "stop", hits[0][1]
        elif grammar and "</tool_call>" in text:   # the grammar is complete (a real one never glues ">\n" there)
            text, finish = text[:text.index("</tool_call>") + len("</tool_call>")], "stop"
        elif n == params.max_tokens:
            finish = "length"
        elif n == len(ids):
            finish = "stop"   # EOS
        done = types.SimpleNamespace(text=text, token_ids=ids[:n], finish_reason=finish, stop_reason=reason,
                                     logprobs=None)
        yield types.SimpleNamespace(prompt_token_ids=prompt_ids, num_cached_tokens=0, outputs=[done])
        if finish is not None:
            return


class OfflineStandIn:
    """vLLM's offline engine over a model that is a function of its text."""

    def __init__(self, model: Model, tok: CharTokenizer) -> None:
        self.model, self.tokenizer, self.requests = model, tok, 0

    def get_tokenizer(self) -> CharTokenizer:
        return self.tokenizer

    def generate(self, prompts: Any, params: Any, use_tqdm: bool = False) -> list[Any]:
        out = []
        for prompt, p in zip(prompts, params):
            self.requests += 1
            ids = prompt["prompt_token_ids"]
            out.append(list(outputs(self.tokenizer, ids, self.model(self.tokenizer.decode(ids)), p))[-1])
        return out


class AsyncStandIn(OfflineStandIn):
    """The async engine (AsyncEngine.stream) over the same model: outputs one token at a time."""

    grammars = 0   # requests decoded under a call's grammar

    def stream(self, ids: list[int], params: Any) -> Iterator[Any]:
        self.requests += 1
        self.grammars += getattr(params, "structured_outputs", None) is not None
        yield from outputs(self.tokenizer, ids, self.model(self.tokenizer.decode(ids)), params)


def scripted(prompt: str, reply: str, answer: str) -> Model:
    """The model writes `reply` (calls, then made-up results) and, once the text parts from it, `answer`."""
    def model(text: str) -> str:
        written = text[len(prompt):]
        return reply[len(written):] if reply.startswith(written) else answer
    return model


def backends(model: Model, tok: CharTokenizer) -> tuple[Any, Any]:
    """The offline engine and the async one over `model`."""
    from toolcall.backends.vllm import VLLMBackend

    # The stand-ins apply no logits processor (it would only ban or force tokens); the backends send its rules.
    offline = VLLMBackend.from_vllm(OfflineStandIn(model, tok), logits_processor=True)
    streamed = VLLMBackend.from_vllm(OfflineStandIn(model, tok), logits_processor=True)
    streamed.async_engine = AsyncStandIn(model, tok)
    return offline, streamed


def without_read_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The async engine as it was: each look a request of its own."""
    from toolcall.backends.vllm import VLLMSession

    monkeypatch.setattr(VLLMSession, "_read_on_markers", lambda *_: ())


def summary(result: Any) -> tuple[Any, ...]:
    return (result.text, [(c.tool, c.args, c.result) for c in result.calls], result.stop_reason,
            result.counters.decoded_tokens)


SCRIPTS = {
    "one call": (CALL.format(21) + "\n<tool_response>\n0\n</tool_response>\nmore", " The answer is 42."),
    "two calls": (CALL.format(1) + "\n" + CALL.format(2) + "\n<tool_response>\n0", " 2 and 4."),
    "call then end": (CALL.format(3), " Six."),
    "call, blank, call": (CALL.format(1) + "\n\n  \n" + CALL.format(5) + "\n<tool_response>", " 2 and 10."),
}


@pytest.mark.parametrize("look", [8, 80], ids=["short look", "long look"])  # 80: a whole next call is read on
@pytest.mark.parametrize("script", sorted(SCRIPTS))
@pytest.mark.parametrize("tok", [CharTokenizer(), MergingTokenizer(), GluingTokenizer()], ids=["chars", "merged", "glued"])
@pytest.mark.parametrize("config", [LoopConfig(), LoopConfig(constrain_calls=True), LoopConfig(call_threshold=0.3)],
                         ids=["free", "constrained", "threshold"])
def test_replies_are_those_of_looks_in_requests_of_their_own_at_every_budget(monkeypatch: pytest.MonkeyPatch,
                                                         look: int, script: str, tok: CharTokenizer,
                                                         config: LoopConfig) -> None:
    import toolcall.loop as loop

    monkeypatch.setattr(loop, "LOOK_AHEAD_TOKENS", look)
    reply, answer = SCRIPTS[script]
    model = scripted("P:", reply, answer)
    budgets = range(1, len(reply) + len(answer) + 40, 3)
    got, requests = [], 0
    for budget in budgets:
        _, streamed = backends(model, tok)
        result = run_loop(streamed, "P:", "hermes", ToolRegistry([double]),
                          LoopConfig(**{**config.__dict__, "max_new_tokens": budget}))
        # Every call still decoded under its grammar where calls are constrained.
        got.append((*summary(result), streamed.async_engine.grammars))
        requests += streamed.async_engine.requests
    with monkeypatch.context() as patch:
        without_read_on(patch)
        for budget, have in zip(budgets, got):
            _, streamed = backends(model, tok)
            result = run_loop(streamed, "P:", "hermes", ToolRegistry([double]),
                              LoopConfig(**{**config.__dict__, "max_new_tokens": budget}))
            assert have == (*summary(result), streamed.async_engine.grammars), budget
            requests -= streamed.async_engine.requests
    assert got[-1][0].endswith(answer)   # the largest budgets wrote the whole reply
    # The looks read on saved requests; none where each marker ends inside a token (">\n"): nothing is read on then.
    assert requests < 0 or (requests == 0 and type(tok) is MergingTokenizer)


def test_a_single_call_costs_two_requests_not_three() -> None:
    """The call's request reads the look's tokens; the answer's is the second. Without the look (parallel_calls off)
    it is two as well, and the offline engine needs a third for the look."""
    reply, answer = SCRIPTS["one call"]
    model = scripted("P:", reply, answer)
    counts = {}
    for name, config in (("look", LoopConfig()), ("no look", LoopConfig(parallel_calls=False))):
        offline, streamed = backends(model, CharTokenizer())
        results = [run_loop(b, "P:", "hermes", ToolRegistry([double]), config) for b in (offline, streamed)]
        assert summary(results[0]) == summary(results[1])
        counts[name] = (offline.llm.requests, streamed.async_engine.requests)
    assert counts == {"look": (3, 2), "no look": (2, 2)}


def test_two_calls_in_a_row_are_both_run_before_their_results() -> None:
    reply, answer = SCRIPTS["two calls"]
    _, streamed = backends(scripted("P:", reply, answer), CharTokenizer())
    result = run_loop(streamed, "P:", "hermes", ToolRegistry([double]), LoopConfig())
    assert [c.result for c in result.calls] == ["2", "4"]
    assert result.text == (CALL.format(1) + "\n" + CALL.format(2) + "\n<tool_response>\n2\n</tool_response>\n"
                           "<tool_response>\n4\n</tool_response>\n" + answer)


def test_read_tokens_are_dropped_once_text_is_appended() -> None:
    """Tokens read past a marker belong to the point they were read at: a decode after appended text (a tool result)
    or from an earlier point never takes them."""
    reply, answer = SCRIPTS["one call"]
    _, streamed = backends(scripted("P:", reply, answer), CharTokenizer())
    session = streamed.start("P:")
    session.read_on_markers, session.read_on_tokens = ("</tool_call>",), 8
    stop = ["</tool_call>"]
    assert "".join(session.stream(stop, 200)).endswith("</tool_call>") and session._read is not None
    point = session.checkpoint()
    assert "".join(session.stream(stop, 8)) == "\n<tool_response>\n0"[:8]    # from the tokens read
    assert streamed.async_engine.requests == 1
    session.rewind(point)
    assert "".join(session.stream(["\n"], 8)) == "\n"      # other stops than they were read under: a request
    assert streamed.async_engine.requests == 2 and session._read is None
    session.rewind(point)
    assert "".join(session.stream(stop, 200)) == "\n<tool_response>\n0\n</tool_response>\nmore"
    assert streamed.async_engine.requests == 3
    session.rewind(point)
    assert session._read is None    # that request decoded from there itself
    again = streamed.start("P:")
    again.read_on_markers, again.read_on_tokens = ("</tool_call>",), 8
    "".join(again.stream(stop, 200))
    assert again._read is not None
    again.append(" result")         # after a tool result the read tokens are no continuation
    assert again._read is None and "".join(again.stream(stop, 200)) == " The answer is 42."


def test_a_read_cut_by_its_requests_budget_does_not_end_a_longer_decode() -> None:
    """The request that read on ended at its own max_tokens: a later decode from the marker with more tokens left goes
    on past them, as a request of its own does, and does not stop there with "length"."""
    reply = CALL.format(1) + "\n" + CALL.format(2) + "\n<tool_response>"
    _, streamed = backends(scripted("P:", reply, "x"), CharTokenizer())
    session = streamed.start("P:")
    session.read_on_markers, session.read_on_tokens = ("</tool_call>",), 8
    stop = ["</tool_call>"]
    assert "".join(session.stream(stop, len(CALL.format(1)) + 3)) == CALL.format(1)   # 3 tokens read on
    assert ("".join(session.stream(stop, 200)), session.stop_reason) == ("\n" + CALL.format(2), "stop")


class TagTokenizer(CharTokenizer):
    """One token a character, except "<tool_call>" and "</tool_call>", one token each (as in Qwen's vocabulary)."""

    TAGS = {302: "<tool_call>", 303: "</tool_call>"}

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        ids, i = [], 0
        while i < len(text):
            tag = next((k for k, t in self.TAGS.items() if text.startswith(t, i)), None)
            ids.append(ord(text[i]) if tag is None else tag)
            i += 1 if tag is None else len(self.TAGS[tag])
        return ids

    def decode(self, ids: list[int], **_: Any) -> str:
        return "".join(self.TAGS.get(i, chr(i)) for i in ids)

    def __len__(self) -> int:
        return 304


class MergedOutputs(AsyncStandIn):
    """Outputs of up to `k` new tokens each, as vLLM's async engine hands a slow reader (or speculative decoding)."""

    k = 1

    def stream(self, ids: list[int], params: Any) -> Iterator[Any]:
        kept = None
        for out in super().stream(ids, params):
            kept = out
            if len(out.outputs[0].token_ids) % self.k == 0 or out.outputs[0].finish_reason is not None:
                yield out
                kept = None
        if kept is not None:
            yield kept


@pytest.mark.parametrize("k", [3, 16])
@pytest.mark.parametrize("tok", [TagTokenizer(), MergingTokenizer(), CharTokenizer()], ids=["tags", "merged", "chars"])
@pytest.mark.parametrize("constrain", [False, True], ids=["free", "constrained"])
def test_outputs_of_several_tokens_are_charged_up_to_the_stop(monkeypatch: pytest.MonkeyPatch, k: int,
                                                              tok: CharTokenizer, constrain: bool) -> None:
    """A request of its own ends at the token that completes a stop; the request reading on runs past it, and an
    output may bring several tokens: only those up to the one that completes the stop or marker are the decode's."""
    reply, answer = CALL.format(1) + "\n" + CALL.format(2) + "\n<tool_response>\n0", " 2 and 4."
    model = scripted("P:", reply, answer)
    monkeypatch.setattr(MergedOutputs, "k", k)

    def run(budget: int) -> tuple[Any, ...]:
        _, streamed = backends(model, tok)
        streamed.async_engine = MergedOutputs(model, tok)
        return summary(run_loop(streamed, "P:", "hermes", ToolRegistry([double]),
                                LoopConfig(constrain_calls=constrain, max_new_tokens=budget)))

    budgets = range(40, 170, 3)
    got = [run(b) for b in budgets]
    with monkeypatch.context() as patch:
        without_read_on(patch)
        assert got == [run(b) for b in budgets]
    assert got[-1][0].endswith(answer)


def echo(s: str) -> str:
    """Echo a text.

    Args:
        s: The text.
    """
    return s


class CountingWork(AsyncStandIn):
    """Counts every token the engine decoded (the last output each request handed out)."""

    produced = 0

    def stream(self, ids: list[int], params: Any) -> Iterator[Any]:
        last = None
        try:
            for out in super().stream(ids, params):
                last = out
                yield out
        finally:
            if last is not None:
                self.produced += len(last.outputs[0].token_ids)


NO_LOOK_AFTER = {
    # a good call that is the reply's last (max_calls 1): no look follows it
    "last call": (CALL.format(21) + "\n<tool_response>\n0", [double]),
    # a malformed call: no look follows it; its error result is appended and the reply goes on
    "malformed": (CALL.format("]") + "\n<tool_response>\n0", [double]),
    # markers inside a string argument: each stops the decode, and the next decode starts there
    "markers in an argument": ('<tool_call>\n{"name": "echo", "arguments": {"s": "' + "a</tool_call>bbbbbbbbbbbbbbb" * 6
                               + '"}}\n</tool_call>\n<tool_response>', [echo]),
}


@pytest.mark.parametrize("script", sorted(NO_LOOK_AFTER))
@pytest.mark.parametrize("max_calls", [3, 1], ids=["max_calls 3", "max_calls 1"])
def test_the_engine_decodes_no_more_than_max_new_tokens(script: str, max_calls: int) -> None:
    """Tokens read past a marker that no look takes were still the engine's work: max_new_tokens bounds it all, as it
    did with each look a request of its own (a review found 308 to 356 tokens decoded under a budget of 300)."""
    reply, tools = NO_LOOK_AFTER[script]
    model = scripted("P:", reply, " " + "a" * 400)
    _, streamed = backends(model, CharTokenizer())
    streamed.async_engine = CountingWork(model, CharTokenizer())
    result = run_loop(streamed, "P:", "hermes", ToolRegistry(tools), LoopConfig(max_new_tokens=300, max_calls=max_calls))
    assert streamed.async_engine.produced <= 300 and result.counters.decoded_tokens == 300
