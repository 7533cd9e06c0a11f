"""The Toolformer call grammar for constrained sampling: every string it accepts parses as one call, and runs.

Strings are drawn by walking llguidance's matcher with random choices among the tokens it allows (no model), over
a vocabulary of single characters plus tokens that span grammar pieces, as byte-level vocabularies have.
"""
from __future__ import annotations

import random
from typing import Any, Literal

import pytest

pytest.importorskip("llguidance")

from char_vocab import char_masks  # noqa: E402
from llguidance import LLMatcher  # noqa: E402

from toolcall.argument_grammar import arithmetic_grammar, namespaced, schema_argument_grammar  # noqa: E402
from toolcall.backends.constraint import TokenMasks  # noqa: E402
from toolcall.dialects import get_dialect  # noqa: E402
from toolcall.dialects.toolformer import ToolformerDialect  # noqa: E402
from toolcall.errors import ConfigError  # noqa: E402
from toolcall.registry import ToolRegistry, default_registry, tool, user_tools  # noqa: E402
from toolcall.tool_type import make_tool  # noqa: E402

# Multi-character tokens like SmolLM2's: closers glued to the argument's end, an arrow with its space, doubled brackets.
SPANNING = [")]", "))]", "()]", '")]', '")', " ->", "->", " →", "((", "))", " (", ", ", "1,", ",0", "00", " +", " *",
            "Calculator", "Calendar", "Search", "Wiki", "Calc", "ulate", "QA", " the"]
VOCAB = ["<s>", "</s>"] + [chr(c) for c in range(32, 127)] + ["×", "→", "é"] + SPANNING
ENDINGS = {")", "]", "->", " ->", "→", " →", ")]", "))]", "()]", '")]', '")', "))"}


@pytest.fixture(scope="module")
def masks() -> TokenMasks:
    return char_masks(VOCAB)


@pytest.fixture(scope="module")
def registry() -> ToolRegistry:
    return default_registry()


def walk(masks: TokenMasks, grammar: str, rng: random.Random, max_tokens: int = 80) -> str | None:
    """One string the grammar accepts, drawn token by token among the allowed ones (None if it did not end in time).

    Tokens that may end a piece are preferred now and then, so strings end instead of growing to the length caps."""
    (matcher,) = masks.matchers(grammar, 1)
    text = ""
    for _ in range(max_tokens):
        allowed = [int(i) for i in masks.allowed([matcher])[0].nonzero()[0]]
        assert allowed, f"the grammar allows nothing after {text!r}"
        enders = [i for i in allowed if VOCAB[i] in ENDINGS]
        token = rng.choice(enders if enders and rng.random() < 0.3 else allowed)
        assert token != 1, "end of sequence is allowed only once the call is closed, and then the walk has ended"
        masks.consume(matcher, token)
        text += VOCAB[token]
        if matcher.is_stopped():
            return text
    return None


def samples(masks: TokenMasks, grammar: str, n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    found = [s for s in (walk(masks, grammar, rng) for _ in range(n)) if s is not None]
    assert len(found) >= n * 0.8, f"only {len(found)} of {n} walks ended"
    return found


def one_call(text: str) -> Any:
    """The one call that `[` + a sampled text spells, closed like data_gen closes it."""
    source = "[" + text if text.endswith("]") else "[" + text + "]"
    parsed = get_dialect("toolformer").parse(source, strict=True)
    assert len(parsed.calls) == 1 and parsed.calls[0].span == (0, len(source)), source
    return parsed.calls[0]


def test_every_builtin_tool_grammar_validates(masks: TokenMasks, registry: ToolRegistry) -> None:
    dialect = ToolformerDialect()
    for item in registry:
        grammar = dialect.call_grammar([item.spec()])
        assert LLMatcher.validate_grammar(grammar) == "", item.name
        assert LLMatcher.validate_grammar(grammar, masks.tokenizer) == "", item.name
        # vLLM's guidance backend reads a grammar as Lark only when a line starts with %llguidance or start:.
        assert grammar.startswith("%llguidance")
    assert LLMatcher.validate_grammar(dialect.call_grammar(registry.specs())) == ""


@pytest.mark.parametrize("name", ["Calculator", "Calendar", "WikiSearch", "QA", "Search", "Solve", "MT"])
def test_sampled_calls_parse_and_name_the_tool(masks: TokenMasks, registry: ToolRegistry, name: str) -> None:
    item = registry.get(name)
    for text in samples(masks, ToolformerDialect().call_grammar([item.spec()]), 60, seed=len(name)):
        call = one_call(text)
        assert registry.canonical(call.tool) == item.name
        if name == "Calendar":
            assert call.args == ()
        else:
            assert len(call.args) == 1 and call.args[0]
        if name in ("WikiSearch", "QA", "Search"):
            assert '"' in text  # one quoted string, read back without its quotes
            assert '"' not in call.args[0]


def test_sampled_calculator_calls_execute(masks: TokenMasks, registry: ToolRegistry) -> None:
    calculator = registry.get("Calculator")
    assert calculator.arguments_grammar() == arithmetic_grammar()
    texts = samples(masks, ToolformerDialect().call_grammar([calculator.spec()]), 150, seed=1)
    assert any("," in t for t in texts) and any("(" in t[11:] for t in texts)  # thousands and groups were drawn
    for text in texts:
        call = one_call(text)
        result = registry.call(call.tool, call.args)
        # The grammar never divides by a literal zero; only a group that happens to be worth 0 can.
        assert result.ok or ("division by zero" in result.text and "/ (" in call.args[0].replace("/(", "/ (")), \
            (text, result.text)


def test_tokens_that_span_pieces_are_allowed(masks: TokenMasks, registry: ToolRegistry) -> None:
    grammar = ToolformerDialect().call_grammar([registry.get(n).spec() for n in ("Calculator", "WikiSearch", "Calendar")])
    index = {t: i for i, t in enumerate(VOCAB)}
    for prefix, token in [("Calculator(3+4", ")]"), ("Calculator(2*(3+4", "))]"), ("Calendar", "()]"),
                          ('WikiSearch("Paris', '")]'), ("Calculator(3)", " ->"), ("Calculator(1", ",0")]:
        (matcher,) = masks.matchers(grammar, 1)
        for char in prefix:
            masks.consume(matcher, index[char])
        assert masks.allowed([matcher])[0][index[token]], (prefix, token)
    (matcher,) = masks.matchers(grammar, 1)
    assert not masks.allowed([matcher])[0][index[" "]]  # no space right after "[": that would not be a call


def test_closers_pick_how_a_call_may_end(masks: TokenMasks, registry: ToolRegistry) -> None:
    dialect = ToolformerDialect()
    arrows = dialect.call_grammar([registry.get("Calendar").spec()], closers=dialect.call_markers)
    for text in samples(masks, arrows, 20):
        assert text.endswith(("->", "→")) and one_call(text).result == ""
    with pytest.raises(ConfigError, match="closes with"):
        dialect.call_grammar([registry.get("Calendar").spec()], closers=[")"])
    with pytest.raises(ConfigError, match="bracket spelling"):
        ToolformerDialect(spelling="tagged").call_grammar([registry.get("Calendar").spec()])
    with pytest.raises(ConfigError, match="at least one tool"):
        dialect.call_grammar([])


def temperature(value: float, unit: Literal["celsius", "fahrenheit"], days: int, rounded: bool = False) -> str:
    """Convert a temperature.

    Args:
        value: The temperature.
        unit: The unit to convert to.
        days: Days to average over.
        rounded: Round the result.
    """
    return f"{value} {unit} {days} {rounded}"


def test_schema_grammar_follows_types_order_and_optional_parameters(masks: TokenMasks) -> None:
    item = make_tool(temperature)
    grammar = ToolformerDialect().call_grammar([item.spec()])
    assert LLMatcher.validate_grammar(grammar) == ""
    registry = ToolRegistry([item])
    texts = samples(masks, grammar, 80, seed=3)
    counts = set()
    for text in texts:
        call = one_call(text)
        counts.add(len(call.args))
        assert call.args[1] in ("celsius", "fahrenheit")
        assert registry.call(call.tool, call.args).ok, text  # every argument binds to its type
    assert counts == {3, 4}  # the optional last parameter is sometimes there, sometimes not
    assert schema_argument_grammar({"type": "object", "properties": {}}) == ""


def _spec(properties: dict[str, Any], required: list[str] | None = None) -> Any:
    from toolcall.specs import ToolSpec

    return ToolSpec("f", "", {"type": "object", "properties": properties, "required": required or []})


def test_schema_grammars_a_client_may_send_build_and_read_back(masks: TokenMasks) -> None:
    """Function schemas from a server's clients: 28 optional parameters nested past what Lark takes; `anyOf: [true]`
    raised TypeError (a 500); enum values the dialect cannot write (a newline, a list) made calls that never bind;
    60,000 enum values took 10.5 s to compile under the engine's lock; 4,000 parameters crashed the process."""
    dialect = ToolformerDialect()
    many = _spec({f"p{i}": {"type": "integer"} for i in range(40)})
    assert LLMatcher.validate_grammar(dialect.call_grammar([many])) == ""
    with pytest.raises(ConfigError, match="at most 256 parameters; this tool has 4,000"):
        dialect.call_grammar([_spec({f"p{i}": {"type": "integer"} for i in range(4000)})])
    odd = _spec({"a": {"anyOf": [True, {"type": "integer"}]},
                 "b": {"enum": ["x\ny", [1, 2], "ok", "q\"u", "", None, 10**40]},
                 "c": {"enum": [f"v{i}" for i in range(60_000)]}}, ["a", "b", "c"])
    grammar = dialect.call_grammar([odd])
    assert LLMatcher.validate_grammar(grammar) == "" and len(grammar) < 5_000
    for text in samples(masks, grammar, 40, seed=5):
        call = one_call(text)
        assert call.args[1] in ("ok", "", "null"), text  # only the values it can write, each read back as itself


def test_const_and_one_of_hold_a_toolformer_argument(masks: TokenMasks) -> None:
    """`const` and `oneOf` (pydantic writes both) were not held: any string or any type could be written."""
    spec = _spec({"mode": {"const": "fast"}, "n": {"oneOf": [{"type": "integer"}, {"enum": ["all"]}]}}, ["mode", "n"])
    grammar = ToolformerDialect().call_grammar([spec])
    assert LLMatcher.validate_grammar(grammar) == ""
    for text in samples(masks, grammar, 30, seed=7):
        mode, n = one_call(text).args
        assert mode == "fast" and (n == "all" or str(n).lstrip("-").isdigit()), text


def test_hermes_leaves_a_schema_built_from_refs_open() -> None:
    """`additionalProperties: false` at the top of a `$ref` schema (pydantic's, for a recursive model) refused
    every argument, so no call could be written under constrain_calls."""
    from toolcall.dialects.hermes import _closed

    plain = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert _closed(plain)["additionalProperties"] is False
    for schema in ({"$ref": "#/$defs/Node", "$defs": {"Node": {"type": "object", "properties": {}}}},
                   {"type": "object", "allOf": [plain]}, {**plain, "additionalProperties": True}):
        assert _closed(schema) is schema


def test_a_tool_sets_its_own_argument_grammar() -> None:
    try:
        @tool(argument_grammar='start: "1" | "2"')
        def pick(n: str) -> str:
            """Pick one.

            Args:
                n: Which.
            """
            return n

        assert user_tools().get("pick").argument_grammar == 'start: "1" | "2"'
        assert make_tool(pick, timeout=3).arguments_grammar() == 'start: "1" | "2"'  # a copy keeps it
        grammar = ToolformerDialect().call_grammar([pick.spec()])
        assert '"pick(" t0_start ")"' in grammar and 't0_start: "1" | "2"' in grammar
    finally:
        user_tools().unregister("pick")


def test_namespacing_renames_only_what_the_grammar_defines() -> None:
    text = 'start: sum NUMBER\n?sum: "sum" /sum/ // sum\nNUMBER: /[0-9]+/\n%import common.WS\nitem[lazy]: WS\n'
    out = namespaced(text, "t3", "Tool")
    assert out == ('t3_start: t3_sum T3_NUMBER\n?t3_sum: "sum" /sum/ // sum\nT3_NUMBER: /[0-9]+/\n'
                   '%import common.WS\nt3_item[lazy]: WS\n')
    with pytest.raises(ConfigError, match="defines no `start` rule"):
        namespaced("args: NUMBER\n", "t0", "Tool")
    with pytest.raises(ConfigError, match="%ignore"):
        namespaced("start: NUMBER\n%ignore \" \"\n", "t0", "Tool")


@pytest.mark.parametrize(("text", "args"), [
    ("[Calculator((1*(2)*3))]", ("(1*(2)*3)",)),      # text after a group nested in a group (found by the walks above)
    ("[Calculator(4*((2)×3) - 1)]", ("4*((2)×3) - 1",)),
    ("[f((a, (b)), c)]", ("(a, (b))", "c")),           # inside parentheses a comma is text, outside it separates
])
def test_groups_nested_in_groups_parse(text: str, args: tuple[str, ...]) -> None:
    (call,) = get_dialect("toolformer").parse(text, strict=True).calls
    assert call.args == args


def test_an_object_or_array_argument_is_escaped_json_held_to_its_schema(masks: TokenMasks) -> None:
    """An object parameter (a pydantic model: the Agents SDK's tools) was a quoted string that could hold no quote, so
    a held call could never carry it: the model wrote `"./forecast.json"`, and no call bound."""
    from toolcall.specs import ToolSpec

    params = {"type": "object",
              "$defs": {"Loc": {"type": "object", "properties": {"city": {"type": "string"},
                                                                 "country": {"type": "string"}},
                                "required": ["city"]}},
              "properties": {"loc": {"$ref": "#/$defs/Loc"},
                             "unit": {"anyOf": [{"enum": ["c", "f"], "type": "string"}, {"type": "null"}]},
                             "tags": {"type": "array", "items": {"enum": ["rain", "wind"]}}},
              "required": ["loc", "unit"]}
    grammar = ToolformerDialect().call_grammar([ToolSpec("forecast", "", params)])
    assert LLMatcher.validate_grammar(grammar) == ""
    rng = random.Random(11)
    texts = [t for t in (walk(masks, grammar, rng, max_tokens=600) for _ in range(40)) if t is not None]
    assert len(texts) >= 30
    seen_tags = False
    for text in texts:
        call = one_call(text)
        from toolcall.binding import bind_arguments

        bound = bind_arguments(call.args, params, tool="forecast")
        assert set(bound["loc"]) <= {"city", "country"} and isinstance(bound["loc"]["city"], str), text
        assert set(bound.get("tags", [])) <= {"rain", "wind"}, text
        assert bound["unit"] in ("c", "f", None), text  # null is written bare (it was any quoted text)
        seen_tags = seen_tags or "tags" in bound
    assert seen_tags


def test_schemas_whose_refs_name_themselves_or_a_tree_are_bounded() -> None:
    """$refs share schemas: an anyOf that refers to itself recursed without end, and an object whose 50 properties
    refer to it again named 50^4 rules. Each is held to a depth, and past a size refused with why."""
    from toolcall.specs import ToolSpec

    itself = {"type": "object", "$defs": {"A": {"anyOf": [{"$ref": "#/$defs/A"}, {"type": "integer"}]},
                                          "B": {"type": "object", "properties": {"b": {"$ref": "#/$defs/B"}}}},
              "properties": {"a": {"$ref": "#/$defs/A"}, "b": {"$ref": "#/$defs/B"}}, "required": ["a", "b"]}
    assert LLMatcher.validate_grammar(ToolformerDialect().call_grammar([ToolSpec("f", "", itself)])) == ""
    tree = {"type": "object", "$defs": {"L": {"type": "object",
                                              "properties": {f"p{i}": {"$ref": "#/$defs/L"} for i in range(50)}}},
            "properties": {"x": {"$ref": "#/$defs/L"}}, "required": ["x"]}
    wide = {"type": "object", "$defs": {"A": {"anyOf": [{"$ref": "#/$defs/A"}, {"type": "integer"}] * 1000}},
            "properties": {"x": {"$ref": "#/$defs/A"}}, "required": ["x"]}
    for schema in (tree, wide):
        with pytest.raises(ConfigError, match="call grammar of more than 200,000 characters"):
            ToolformerDialect().call_grammar([ToolSpec("f", "", schema)])


def test_tuples_maps_and_deep_values_are_held_to_their_types(masks: TokenMasks) -> None:
    """`tuple[int, str]` (prefixItems) and `dict[str, int]` (additionalProperties) took any scalars, and past the depth
    bound a value could be any scalar where an object was required: calls that never bound."""
    from toolcall.binding import bind_arguments
    from toolcall.specs import ToolSpec

    deep: dict[str, Any] = {"type": "integer"}
    for _ in range(7):
        deep = {"type": "object", "properties": {"k": deep}, "required": ["k"]}
    params = {"type": "object", "properties": {
        "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}]},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "deep": deep}, "required": ["pair", "counts", "deep"]}
    grammar = ToolformerDialect().call_grammar([ToolSpec("f", "", params)])
    rng = random.Random(5)
    texts = [t for t in (walk(masks, grammar, rng, max_tokens=800) for _ in range(30)) if t is not None]
    assert len(texts) >= 20
    for text in texts:
        bound = bind_arguments(one_call(text).args, params, tool="f")
        assert isinstance(bound["pair"][0], int) and isinstance(bound["pair"][1], str), text
        assert all(isinstance(v, int) for v in bound["counts"].values()), text
    with pytest.raises(ConfigError, match="cannot be written in a Toolformer call"):
        ToolformerDialect().call_grammar([ToolSpec("f", "", {"type": "object", "properties": {"o": {
            "type": "object", "properties": {'x"y': {"type": "integer"}}, "required": ['x"y']}}})])
