"""`pending_from(text, start)` answers as `pending(text)` does, at every stop of a reply the loop writes.

The decoding loop keeps, per reply, where the next `pending_from` may start reading (0 at first), so that finding the
pending calls stays linear in the reply rather than reading the whole text again at every "]" or "}". This test writes
replies as a loop does, from fragments of each dialect (calls, broken calls, prose full of call markers, quotes,
forged results, turn tokens), in random pieces of 1 to 40 characters, several replies interleaved on one dialect (as
step_batch runs them); it stops where a piece completes a call marker (the backends' find_stop), compares
`pending_from` with `pending` on the whole text there (and the loop's ReplyReader, which also skips the stops inside
a call's open string, with both), and then closes the pending calls with their results as the
loop does, or leaves them handed back.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from counting_dialect import CountingDialect

from toolcall.backends import find_stop
from toolcall.calls import PendingCalls, ToolCall
from toolcall.dialects import get_dialect
from toolcall.dialects.base import Dialect, GrammarBudget, QuietValue, ReplyReader

NAMES = ("hermes", "pythonic", "llama3_json", "mistral", "toolformer", "moss")


@pytest.fixture(autouse=True)
def unbounded_grammar(monkeypatch: pytest.MonkeyPatch) -> None:
    """The grammar reads every broken call here: a read of the whole text spends its budget (GrammarBudget) on the
    candidates before the last, which a later start never reads, so past the budget the two may place a fault
    differently (the later start with the grammar, the whole text the cheap way). Within it they agree exactly."""
    monkeypatch.setattr(GrammarBudget, "BASE", 10**9)

# ---------------------------------------------------------------------------------------------- the fragments
TOOLS = ("Calculator", "get_weather", "f")
KEYWORDS: tuple[dict[str, Any], ...] = (
    {"expression": "2+3"}, {"city": "Paris", "days": 3}, {}, {"q": "a]b}c->d→e"}, {"n": 1.5, "b": True, "z": None},
    {"xs": [[1, 2], [3], []], "d": {"k": {"j": [{}]}}}, {"s": "quote \" and ' and \\ too"}, {"u": "é→ü <eoc> </API>"},
    {"long": "x]y}" * 12}, {"nl": "line\nline"}, {"n": 1}, {"n": 1.0},
)
POSITIONAL: tuple[tuple[str, ...], ...] = (
    ("2 * 3",), ("Paris",), ("a]b",), ("a -> b",), ("x, y",), ("1,000",), (), ("a", "b"), ('say "hi"',), ("x]" * 12,),
    ("→",),
)
# Prose any model may write, full of every dialect's call markers.
PROSE = (
    "The answer is ", "Let me check that. ", "\n", " ", "\n\n", "ok", '"', "'", "x = {a: 1}", "[1]", "[citation needed] ",
    "see [link](url) ", "{}", "}", "]", "]]", "}}", "->", "→", " -> ", "a -> b", "</tool_call>", "<eoc>",
    '{"a": [1, {"b": 2}]}', "[see(above)]", "f(x)", "[", "{", "(", ")", "\\", ",", ";", ":", "it's ", '"quoted]" ',
    "x → y\n", "[[1], [2]]", '{"name": "Bob"}', "[f(", "[Calculator(",
)
# Every dialect's markup: turn tokens, openers, result blocks a model might forge.
MARKUP = (
    "<tool_call>", "<tool_response>\n42\n</tool_response>\n", "<tool_response>", "</tool_response>", "<|im_end|>\n",
    "<|im_start|>assistant\n", "<|endoftext|>", "<|eot_id|>", "<|eom_id|>", "<|start_header_id|>assistant<|end_header_id|>\n\n",
    '<|start_header_id|>ipython<|end_header_id|>\n\n"42"<|eot_id|>', "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
    "<|python_tag|>", "[TOOL_CALLS]", "[TOOL_RESULTS]4[/TOOL_RESULTS]",
    '[TOOL_RESULTS]{"content": "4", "call_id": "a1B2c3D4e"}[/TOOL_RESULTS]', "[ARGS]", "[CALL_ID]a1B2c3D4e", "[INST]",
    "[/INST]", "</s>", "<API>", "</API>", "<|Commands|>:", "<|Results|>:\nSearch(\"x\") => 'y'\n<eor>\n", "<|MOSS|>:",
    "<|Inner Thoughts|>: hmm<eot>\n", "<|Human|>: hi<eoh>\n", "<eom>", "<eor>",
)
DEEP = "[" * 101 + "1" + "]" * 101  # one level past MAX_DEPTH
ASSISTANT = "<|start_header_id|>assistant<|end_header_id|>\n\n"

BROKEN: dict[str, tuple[str, ...]] = {
    "hermes": (
        '<tool_call>{"name": "f" 1}</tool_call>', '<tool_call>\n{"name": "f", "arguments": {"x": 1}\n</tool_call>',
        "<tool_call>not json</tool_call>", '<tool_call>{"name": "f", "arguments": "nope"}</tool_call>',
        '<tool_call>{"arguments": {}}</tool_call>', "<tool_call>\n", '<tool_call>{"name": "f", "arguments": {"x": 1e999}}'
        "</tool_call>", '<tool_call>{"name": "f", "arguments": {"x": "\\q"}}</tool_call>', "<tool_call></tool_call>",
        f'<tool_call>{{"name": "f", "arguments": {{"x": {DEEP}}}}}</tool_call>', "<tool_call>[1, 2]</tool_call>",
        '<tool_call>{"name": "f", "arguments": {"x": "a</tool_call>b"}}</tool_call>', '<tool_call>{"name": "f", ',
        '<tool_call>[{"name": "f", "arguments": {}}, 3]</tool_call>', '<tool_call>{"name": "f", "arguments": {}}',
        '<tool_call>{"name": "f", "arguments": {}} trailing</tool_call>',
    ),
    "pythonic": (
        "[f(1)]", "[Calculator(2, 3)]", "[f(x=y)]", "[f(x=1]", "[f(x='a]", '[f(x="[g(")]', "[f(x='[g(x=1)]')]",
        "[f(x=1e999)]", "[f(x=1, x=2)]", "[f(x=1)", "[f(x=[1, 2)]", f"[f(x={DEEP})]", "[f(x=1) g(y=2)]",
        "<|python_tag|>[f(1)]", "[f(x=1),]", "[f(x=)]", "[f(x=(1, 2), y=- 1)]", "[f(x=0x1F)]", "[a.b(c=[1, [2]])", "[f(**k)]",
        # A string argument still being written (code, a document): the prose after it goes on inside it.
        '[write_file(path="a.py", content="', "[note(text='", '[f(x=1, y=r"', '[f(x="a\\n\\tb',
        # Lists quoted in a string of a list that breaks before its first "]" (the quotes pair off from either start).
        '[f("[g(x=" ", y=[1])]', '[f("[f(x="",z=[]]', '[f(1, "[g(y="', "re(r'\\d+\\]')",
        # Data in an argument still being written, and more of it: the pieces after such a list go on inside it.
        "[plot(points=[[1, 2], [3, 4], [5, 6], [7, 8], [9, 0], ", "<|python_tag|>[f(d={'k': [1, 2], 'j': [[3], [4]], ",
        "[f(x=[1, [2, 3], (4, 5), {'a': ['b]', \"c]\"]}, ", "[a.b(c=[[1]], d=[", "[1, 2], [3, [4]], ", "{'k': [1]}, ",
        "'s]', [True, None], ", "'see [g(y=1)]', [1], ", "'a # b]', [2], ", "[1,\n 2], [3], ", "[-1.5e3, 0x1F], ",
        "[r'\\d]', 1], ", "[1 2], [3], ", "]], [4]]",
    ),
    "llama3_json": (
        '{"name": "f", "parameters": {"x": 1}', '{"name": "f"}', '{"name": "f", "parameters": "x"}',
        '{"name": "f", "parameters": {"x": 1e999}}', '<|python_tag|>{"name": "f"}', '{"name": "f", "parameters": {}} x',
        '{"name": "f", "parameters": {}}; ', '{"name": "f", "parameters": {}}; {"name": 1}', '{"name": ',
        f'{{"name": "f", "parameters": {{"x": {DEEP}}}}}', '{"name": "f", "parameters": {"s": "\\q"}}',
        '<|python_tag|>{"name": "f", "parameters": {}} {"name": "g", "parameters": {}}', '{"name": "f", "parameters": []}',
        # A string argument still being written (code, a document): the prose after it goes on inside it.
        '{"name": "write_file", "parameters": {"content": "', '<|python_tag|>{"name": "f", "parameters": {"s": "a\\"b\\n',
        # Data in an argument still being written, and more of it: the pieces after such a call go on inside it.
        '{"name": "plot", "parameters": {"points": [[1, 2], [3, 4], [5, 6], [7, 8], ', '{"name": "f", "parameters": {"d": {',
        '<|python_tag|>{"name": "f", "parameters": {"x": [{"a": [1]}, {"b": "c]}"}, ', '[1, 2], [3, [4]], ',
        '{"k": [1]}, ', '"s]}", [true, null], ', '"k": {"j": [1, 2]}, ', '[1,\n 2], [3], ', '"\\ud800", [1], ', "[1 2], ",
        '"a": 1}, ', "]], [4]]", "]}}",
    ),
    "mistral": (
        '[TOOL_CALLS][{"arguments": {}}]', '[TOOL_CALLS]f[ARGS]{"x": }', "[TOOL_CALLS][1, 2]", "[TOOL_CALLS] just prose ",
        "[TOOL_CALLS]f[ARGS][1]", '[TOOL_CALLS][{"name": "f", "arguments": {"x": 1}', '[TOOL_CALLS]f[ARGS]{"x": 1e999}',
        '[TOOL_CALLS][{"name": "f", "arguments": "x"}]', "[TOOL_CALLS][]", f'[TOOL_CALLS]f[ARGS]{{"x": {DEEP}}}',
        '[TOOL_CALLS]f[CALL_ID]bad id[ARGS]{}', '[TOOL_CALLS][{"name": "f", "arguments": {}}, 3]', "[TOOL_CALLS]f[ARGS]",
        '[TOOL_CALLS]f[ARGS]{"s": "\\q"}', '[TOOL_CALLS][{"name": "f", "arguments": {"s": "a]}b"}}, {"name"}]',
        # Data in an argument still being written, and more of it: the pieces after such a call go on inside it.
        '[TOOL_CALLS][{"name": "plot", "arguments": {"points": [[1, 2], [3, 4], [5, 6], ', '[TOOL_CALLS]f[ARGS]{"d": [',
        '[TOOL_CALLS]f[CALL_ID]a1B2c3D4e[ARGS]{"x": [{"a": [1]}, {"b": "c]}"}, ', '[1, 2], [3, [4]], ', '{"k": [1]}, ',
        '"s]}", [true, null], ', '"[TOOL_CALLS]", [1], ', '[1 2], ', "]], [4]]", "]}}]",
    ),
    "toolformer": (
        "[f(2, 3 ->", "[Calculator(1,) ->", '[f("unclosed ->', "<API> ->", "[Calculator(1) -> 2] ->", "[f(x)) ->",
        "<API>[f(x) ->", "<API> f(x) → 3 </API> →", "[f(\n) ->", "[Calculator(2 * 3) -> [nested] ->", "[f(a)(b) ->",
        "[Calc(" + "1,000," * 8 + ") -> ", '[QA("What is [x]?") ->', "[f('a -> b') ->", "[f(\"a]\") ->",
    ),
    "moss": (
        "<|Commands|>: Search(<eoc>", '<|Commands|>: Search("a<eoc>b")<eoc>', "<|Commands|>: f(1, 2<eoc>",
        "<|Commands|>: <eoc>", "<|Commands|>: Search(\"x\") Search(\"y\")<eoc>", "<eoc>", '<|Commands|>: Search("x")',
        "<|Commands|>: None, f()<eoc>", '<|Commands|>: Search("unclosed<eoc>', "<|Commands|>: f(a)(b)<eoc>",
        '<|Commands|>: Search("x")<eoc>\n<|Results|>:\nSearch("x") => \'forged\'\n<eor>\n',
    ),
}

PROMPTS: dict[str, tuple[str, ...]] = {
    "hermes": ("<|im_start|>user\nWhat is 2+3? [1] {x} -> y</tool_call><|im_end|>\n<|im_start|>assistant\n",),
    "pythonic": ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is [f(x=1)]?<|eot_id|>" + ASSISTANT,),
    "llama3_json": ('<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{"name": "q", "parameters": {}}<|eot_id|>'
                    + ASSISTANT,),
    "mistral": ("<s>[INST]What is 2+3? [x] {y}[/INST]",),
    "toolformer": ("Q: what is 2*3? -> [Calculator(2*3) -> 6]\nA: ", "Tell me -> "),
    "moss": ("<|Human|>: hi <eoc><eoh>\n<|Inner Thoughts|>:", "<|Human|>: hi<eoh>\n"),
}

# What tools answer: plain, empty, multi-line, and holding every dialect's markup (close breaks the reserved ones).
RESULTS = (
    "42", "", "Paris: 18°C", "a ] b } c -> d → e", "line one\nline two", '{"name": "f", "parameters": {}}', "[f(x=1)]",
    "<tool_call>{}</tool_call>", "<eoc>", "<|eot_id|>", "[TOOL_CALLS]", "Error: malformed call", "[unpaired", "x]",
)


def _pending_text(dialect: Dialect, call: ToolCall, spelling: str) -> str:
    """A Toolformer call up to its arrow in the tagged or paper spelling (write_calls writes the bracket one)."""
    marker = "\ue000"
    text = dialect.render_call(call.with_result(marker), spelling)  # type: ignore[call-arg]
    return text[:text.index(marker)].rstrip()


def _calls(name: str, dialect: Dialect, rng: random.Random) -> list[str]:
    """Well-formed calls as the model writes them in `name`, up to and including their call marker."""
    out: list[str] = []
    if name == "toolformer":
        for args in POSITIONAL:
            call = ToolCall(rng.choice(TOOLS), args)
            out.append(dialect.write_calls([call]))
            out.append(_pending_text(dialect, call, rng.choice(("tagged", "paper"))))
            out.append(dialect.render_call(call.with_result(rng.choice(("6", "Paris", "")))))  # a finished call
        return out
    names = TOOLS + (("a.b",) if name == "pythonic" else ())
    made = [ToolCall(rng.choice(names), kw, id=rng.choice((None, None, "a1B2c3D4e", "Zz9Yy8Xx7"))) for kw in KEYWORDS]
    if name == "moss":
        made = [ToolCall(rng.choice(("Search", "Calculate", "f_1")), args) for args in POSITIONAL]
    for n in range(len(made)):
        group = [made[(n + k) % len(made)] for k in range(1 + n % 3)]
        out.append(dialect.write_calls(group))
        if name == "mistral":
            out.append(get_dialect("mistral", spelling="args").write_calls(group))
        elif name in ("pythonic", "llama3_json") and n % 2:
            out.append("<|python_tag|>" + dialect.write_calls(group))
        if name == "llama3_json" and n % 3 == 1:
            out.append(ASSISTANT + dialect.write_calls(group))
    if name == "moss":
        out.append("<|Commands|>: None<eoc>")
    return out


@dataclass(frozen=True)
class Alphabet:
    """A dialect's fragments, by kind: a reply is drawn from them with weights that change from reply to reply."""

    calls: tuple[str, ...]
    broken: tuple[str, ...]
    prose: tuple[str, ...] = PROSE
    markup: tuple[str, ...] = MARKUP

    def kinds(self) -> tuple[tuple[str, ...], ...]:
        return self.calls, self.broken, self.prose, self.markup


# Weights of (calls, broken, prose, markup): an even mix; runs of calls (long handed-off runs, adjacent groups);
# mostly broken calls (the grammar's budget runs out, so later faults are placed by the cheap reading); mostly prose.
PROFILES = ((3, 2, 3, 2), (8, 1, 1, 1), (1, 8, 1, 1), (1, 1, 6, 3))


def _alphabet(name: str, dialect: Dialect) -> Alphabet:
    return Alphabet(tuple(_calls(name, dialect, random.Random(name))), BROKEN[name])


# ---------------------------------------------------------------------------------------------- the loop, simulated
def _answer(pending: PendingCalls | None) -> Any:
    """All that a pending answer says, exactly (arguments 1, 1.0 and True are different here, though equal)."""
    if pending is None:
        return None
    return {
        "calls": [(c.tool, type(c.args).__name__, repr(c.args), c.result, c.span, c.id) for c in pending.calls],
        "issues": [(i.message, i.pos, i.line, i.column, i.expected, i.context) for i in pending.issues],
        "closing": pending.closing,
        "malformed": pending.malformed,
    }


@dataclass
class Stats:
    """What the stops found: counts of each kind of answer, and the most calls one answer held."""

    stops: int = 0
    none: int = 0
    calls: int = 0
    malformed: int = 0
    most_calls: int = 0
    quiet: int = 0  # stops a ReplyReader answered without a look (inside a call's open string or its data)
    quiet_values: int = 0  # of those, the stops inside a call's data (a QuietValue)


@dataclass
class Reply:
    """One reply as the loop writes it: what the model will write, the session's text (prompt included), and where
    the next pending_from starts reading."""

    stream: str
    text: str = ""
    handoff: bool = False  # hand the pending calls back (no results) instead of answering them
    tails: bool = True  # sometimes stop after whitespace or an end-of-turn trailer that follows the marker
    start: int = 0
    written: int = 0
    answers: list[Any] = field(default_factory=list)  # pending's answer at each stop that had one
    reader: ReplyReader | None = None  # the loop's reader of this reply, made at its first stop

    @property
    def done(self) -> bool:
        return self.written >= len(self.stream)


def _tails(dialect: Dialect) -> tuple[str, ...]:
    """What may follow a call marker at a stop and leave the calls pending: whitespace, the end-of-turn trailers."""
    trailers = tuple(getattr(dialect, "trailers", ()))
    return (" ", "\n", " \n\n") + trailers + tuple(t + "\n" for t in trailers)


def _check(dialect: Dialect, reply: Reply, stats: Stats) -> PendingCalls | None:
    """pending_from against pending on the whole text, at a stop; the new start is kept for the next stop."""
    text = reply.text
    ref = dialect.pending(text)
    got, start = dialect.pending_from(text, reply.start)
    where = f"{dialect.name}: pending_from(text, {reply.start}) at a stop of this text of {len(text)} characters:\n{text!r}"
    assert isinstance(start, int) and 0 <= start <= len(text), f"start {start} outside the text; {where}"
    assert start >= reply.start, f"start went back from {reply.start} to {start}; {where}"
    assert _answer(got) == _answer(ref), where
    reply.start = start
    reply.reader = reply.reader or ReplyReader(CountingDialect(dialect))  # type: ignore[arg-type]
    spy = reply.reader.dialect
    assert isinstance(spy, CountingDialect)
    looks = spy.looks
    assert _answer(reply.reader.pending(text)) == _answer(ref), f"ReplyReader: {where}"
    stats.quiet += spy.looks == looks
    stats.quiet_values += spy.looks == looks and isinstance(reply.reader._quiet, QuietValue)
    stats.stops += 1
    if ref is None:
        stats.none += 1
    elif ref.malformed:
        stats.malformed += 1
    else:
        stats.calls += 1
        stats.most_calls = max(stats.most_calls, len(ref.calls))
    return ref


def _step(dialect: Dialect, reply: Reply, rng: random.Random, stats: Stats, max_piece: int = 40) -> None:
    """The model writes its next piece; at a call marker the text stops there (the rest of the piece comes after), the
    pending calls are found and then answered (their results appended as the loop appends them) or handed back."""
    before = len(reply.text)
    piece = reply.stream[reply.written:reply.written + rng.randint(1, max_piece)]
    reply.text += piece
    reply.written += len(piece)
    hit = find_stop(reply.text, dialect.call_markers, before)
    if hit is None:
        return
    end = hit[0]
    reply.written -= len(reply.text) - end
    reply.text = reply.text[:end]
    if reply.tails and rng.random() < 0.08:
        reply.text += rng.choice(_tails(dialect))
    pending = _check(dialect, reply, stats)
    if pending is None:
        return
    reply.answers.append(_answer(pending))
    if reply.handoff:
        return
    results = [rng.choice(RESULTS) for _ in range(1 if pending.malformed else len(pending.calls))]
    reply.text += dialect.close(pending, results)


def _run(dialect: Dialect, replies: Sequence[Reply], rng: random.Random, stats: Stats, max_piece: int = 40) -> None:
    """Write the replies to their end, a piece of a random one at a time, on one dialect (as step_batch does)."""
    live = [r for r in replies if not r.done]
    while live:
        reply = rng.choice(live)
        _step(dialect, reply, rng, stats, max_piece)
        live = [r for r in live if not r.done]


def _random_reply(name: str, alphabet: Alphabet, rng: random.Random) -> Reply:
    weights = rng.choice(PROFILES)
    kinds = alphabet.kinds()
    fragments = []
    for _ in range(rng.randint(3, 24)):
        kind = rng.choices(kinds, weights)[0]
        fragments.append(rng.choice(kind))
    prompt = rng.choice(("",) + PROMPTS[name])
    return Reply("".join(fragments), prompt, handoff=rng.random() < 0.25)


# ---------------------------------------------------------------------------------------------- random replies
# Replies per dialect: fewer where every "]" and "}" is a stop (the whole file runs in a few seconds).
REPLIES = {"hermes": 48, "pythonic": 44, "llama3_json": 40, "mistral": 24, "toolformer": 48, "moss": 48}


@pytest.mark.parametrize("name", NAMES)
def test_pending_from_answers_as_pending_at_every_stop_of_random_replies(name: str) -> None:
    dialect = get_dialect(name)
    alphabet = _alphabet(name, dialect)
    rng = random.Random(f"pending_from:{name}")
    stats = Stats()
    made = 0
    while made < REPLIES[name]:
        batch = [_random_reply(name, alphabet, rng) for _ in range(rng.randint(1, 3))]
        made += len(batch)
        _run(dialect, batch, rng, stats)
    # The replies reached what they are for: many stops with calls, with broken calls, with nothing pending, and runs
    # of several calls (handed back, or written as one group).
    assert stats.calls >= 100 and stats.malformed >= 50 and stats.none >= 10, stats
    assert stats.most_calls >= (1 if name == "toolformer" else 3), stats
    if name in ("pythonic", "llama3_json"):
        assert stats.quiet >= 50, stats  # stops inside open strings or data, answered without a look
    if name in ("pythonic", "llama3_json", "mistral"):
        assert stats.quiet_values >= 50, stats


# ---------------------------------------------------------------------------------------------- known subtle cases
def _hermes(*calls: tuple[str, dict[str, Any]]) -> str:
    return get_dialect("hermes").write_calls([ToolCall(t, a) for t, a in calls])


def _llama(*calls: tuple[str, dict[str, Any]]) -> str:
    return get_dialect("llama3_json").write_calls([ToolCall(t, a) for t, a in calls])


NESTED = "[" + ", ".join(f"[{i}, [{i}]]" for i in range(15)) + "]"
CASES: dict[str, tuple[str, str, int]] = {
    # name: (dialect, text the model writes, the most calls one stop must find pending when the calls are handed back)
    "hermes-adjacent-blocks": ("hermes", _hermes(("f", {"x": 1})) + "\n" + _hermes(("g", {"y": "]}"})) + "\n"
                               + _hermes(("h", {})), 3),
    "hermes-blocks-glued": ("hermes", _hermes(("f", {})) + _hermes(("g", {})) + "  \n" + _hermes(("h", {})), 3),
    "hermes-marker-in-string": ("hermes", '<tool_call>\n{"name": "f", "arguments": {"x": "a</tool_call>b"}}\n</tool_call>'
                                + "\n" + _hermes(("g", {})), 2),
    "hermes-prose-between": ("hermes", _hermes(("f", {})) + "\nthen\n" + _hermes(("g", {})) + "\n" + _hermes(("h", {})), 2),
    "hermes-response-between": ("hermes", _hermes(("f", {})) + "\n<tool_response>\n1\n</tool_response>\n"
                                + _hermes(("g", {})) + "\n" + _hermes(("h", {})), 2),
    "hermes-unclosed-then-closed": ("hermes", '<tool_call>\n{"name": "f", "arguments": {}}\n<|im_end|>\n'
                                    + _hermes(("g", {})), 1),
    "pythonic-marker-in-string": ("pythonic", "Sure: [f(x=\"a]b\"), g(y='c]]d', z=[1, [2]])]", 2),
    "pythonic-list-open-across-stops": ("pythonic", f"[get(xs={NESTED}, d={{'k': [[3], [4]]}}), f(q='[x]')]", 2),
    "pythonic-call-in-string": ("pythonic", "[f(x='[g(y=1)]')] and [h(z=\"[k(\")]", 1),
    "pythonic-broken-then-good": ("pythonic", "[f(1)] then [f(x=1)] [see(above)] [g(y=[1, 2])]", 1),
    "pythonic-after-turn": ("pythonic", "[f(x=1)]<|eot_id|>" + ASSISTANT + "<|python_tag|>[g(y=2)]", 1),
    "mistral-marker-in-string": ("mistral", '[TOOL_CALLS]f[ARGS]{"x": "a}b]"}[TOOL_CALLS]g[ARGS]{"y": ["]", "}"]}', 2),
    "mistral-list-open-across-stops": ("mistral", '[TOOL_CALLS][{"name": "f", "arguments": {"xs": ' + NESTED + "}}, "
                                       '{"name": "g", "arguments": {"d": {"a": {"b": {}}}}}]', 2),
    "mistral-adjacent-args": ("mistral", '[TOOL_CALLS]f[CALL_ID]a1B2c3D4e[ARGS]{"x": 1}[TOOL_CALLS]g[ARGS]{}'
                              "[TOOL_CALLS]h[ARGS]{\"z\": [{}]}", 3),
    "llama3_json-prose-then-call-reply": ("llama3_json", 'Sure, I would write {"name": "f", "parameters": {"x": 1}} and '
                                          'then {"a": {"b": 2}} more prose.<|eot_id|>' + ASSISTANT
                                          + _llama(("g", {"y": [1, {"z": "}"}]}), ("h", {})), 2),
    "llama3_json-prose-ending-in-a-call": ("llama3_json", 'I will call {"name": "f", "parameters": {"x": "}"}}'
                                           ' now.<|eot_id|>' + ASSISTANT + "<|python_tag|>" + _llama(("g", {})), 1),
    "llama3_json-calls-then-semicolon": ("llama3_json", _llama(("f", {"x": {"y": {}}})) + "; " + _llama(("g", {}))
                                         + "; {\"name\": \"h\"", 2),
    "toolformer-arrow-in-string": ("toolformer", 'Say [echo("a -> b") -> and [Calculator(2 * 3) -> ', 1),
    "toolformer-finished-then-open": ("toolformer", "It is [Calculator(2 * 3) -> 6] -> so [Calculator(6 * 7)->", 1),
    "toolformer-tagged-and-paper": ("toolformer", "<API>[Calculator(3*4)]-> and <API> Calculator(3*4) → x", 1),
    "moss-marker-in-string": ("moss", '<|Inner Thoughts|>: go<eot>\n<|Commands|>: Search("a<eoc>b")<eoc>', 1),
    "moss-two-rounds": ("moss", '<|Commands|>: Search("x"), Calculate("1+1")<eoc>\n<|MOSS|>: ok<eom>\n'
                        '<|Commands|>: None<eoc><|Commands|>: f_1("y")<eoc>', 2),
    "moss-tail-first": ("moss", 'Search("x")<eoc> then <|Commands|>: f_1()<eoc>', 1),
    # Broken calls enough to spend the grammar's usual budget (GrammarBudget; unbounded here, see unbounded_grammar):
    # pending_from must place the last faults as a read of the whole text does, though it does not read them again.
    "hermes-budget-spent": ("hermes", '<tool_call>{"name": "f" 1}</tool_call>\n' * 24
                            + '<tool_call>\n{"name": "f", "arguments": {"x": 1}\n</tool_call>\n' + _hermes(("g", {})), 1),
    "pythonic-budget-spent": ("pythonic", "[f(x='a [g(y=1)]\n" * 8 + "[f(x=1)] [f(x=1 [g(y=2)]\n"
                              + "[f(x=\"[g(\")] [h(z=1)]", 3),
    "mistral-budget-spent": ("mistral", '[TOOL_CALLS]f[ARGS]{"x": }\n' * 24
                             + '[TOOL_CALLS][{"name": "f", "arguments": {"x": 1}]' + '[TOOL_CALLS]g[ARGS]{"y": [2]}', 1),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("handoff", [False, True], ids=["answered", "handed-back"])
def test_pending_from_answers_as_pending_on_known_subtle_replies(case: str, handoff: bool) -> None:
    name, stream, most_calls = CASES[case]
    dialect = get_dialect(name)
    stats = Stats()
    one_by_one = Reply(stream, handoff=handoff, tails=False)
    _run(dialect, [one_by_one], random.Random(case), stats, max_piece=1)  # a stop at every marker, as written
    # Stops fall at every marker however the text is cut: random pieces add the prompt, trailers after a marker, and
    # a second reply interleaved on the same dialect.
    rng = random.Random(case)
    _run(dialect, [Reply(stream, handoff=handoff), Reply(stream, rng.choice(PROMPTS[name]), handoff=handoff)], rng, stats)
    if handoff:
        assert max(len(a["calls"]) for a in one_by_one.answers) == most_calls, one_by_one.answers


def test_pending_from_reads_a_long_handed_back_run_from_where_it_stopped() -> None:
    """Blocks handed back one after another: every stop finds the whole run pending, as pending does."""
    hermes = get_dialect("hermes")
    stats = Stats()
    reply = Reply("\n".join(_hermes(("f", {"i": i})) for i in range(60)), handoff=True)
    _run(hermes, [reply], random.Random(0), stats)
    assert stats.calls == 60 and stats.most_calls == 60, stats


@pytest.mark.parametrize("start", [-1, 10_000])
def test_a_start_outside_the_text_is_a_clear_error(start: int) -> None:
    from toolcall.errors import ConfigError

    with pytest.raises(ConfigError, match="outside the text"):
        get_dialect("pythonic").pending_from("[f(x=1)]", start)
