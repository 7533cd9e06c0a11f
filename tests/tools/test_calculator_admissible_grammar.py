"""The Calculator's admissible grammar: constrained sampling can write only calls `calculator_admissible` accepts."""
from __future__ import annotations

import random
import re
from dataclasses import replace

import pytest

pytest.importorskip("llguidance")

from char_vocab import char_masks  # noqa: E402
from llguidance import LLMatcher  # noqa: E402
from toolcall.data_gen.sample import call_grammar  # noqa: E402
from toolcall.tools.calculator import (  # noqa: E402
    ADMISSIBLE_NUMBERS,
    calculator,
    calculator_admissible,
    calculator_admissible_grammar,
)

from toolcall.backends.constraint import TokenMasks  # noqa: E402
from toolcall.errors import ToolError  # noqa: E402
from toolcall.registry import ToolRegistry, default_registry, tool, user_tools  # noqa: E402
from toolcall.tool_type import make_tool  # noqa: E402

# One token per character, plus a few pieces that span a number's digits and what follows, as real tokenizers have.
VOCAB = ["<s>", "</s>"] + [chr(c) for c in range(32, 127)] + ["×", "→", "00", "35", ",0", "0)", ".5", " +", " *"]
TEXT = "Tom paid $35,000 for the van, $2.50 a mile for 12 miles, and 7% tax."


@pytest.fixture(scope="module")
def masks() -> TokenMasks:
    return char_masks(VOCAB)


@pytest.fixture(scope="module")
def registry() -> ToolRegistry:
    return default_registry(["calculator"])


def accepts(masks: TokenMasks, grammar: str, text: str) -> bool:
    """Whether `grammar` lets a sampler write `text` one character at a time, and then the text is complete."""
    (matcher,) = masks.matchers(grammar, 1)
    for char in text:
        token = VOCAB.index(char)
        if not masks.allowed([matcher])[0][token]:
            return False
        masks.consume(matcher, token)
    return bool(matcher.is_accepting())


def test_the_grammar_spells_each_written_number_as_written_and_plain_plus_the_free_constants() -> None:
    grammar = calculator_admissible_grammar(TEXT)
    assert LLMatcher.validate_grammar(grammar) == ""

    def terminal(name: str, text: str = grammar) -> str:
        found = re.search(rf"^{name}: (.*)$", text, re.M)
        assert found is not None, name
        return found.group(1)

    assert terminal("WRITTEN") == '"2.5" | "2.50" | "7" | "12" | "35,000" | "35000"'
    assert terminal("ANY") == terminal("WRITTEN") + ' | "1" | "2" | "100" | "1000" | "1,000"'
    assert terminal("WRITTEN_NONZERO") == terminal("WRITTEN") and terminal("ANY_NONZERO") == terminal("ANY")
    # Zero is a number one may write once it is written, but never a divisor; the same text gives the same grammar.
    with_zero = calculator_admissible_grammar("0 of the 12 eggs broke")
    assert terminal("WRITTEN", with_zero) == '"0" | "12"' and terminal("WRITTEN_NONZERO", with_zero) == '"12"'
    assert calculator_admissible_grammar(TEXT) == grammar
    # A free constant the text writes is a written number.
    assert '"2"' in terminal("WRITTEN", calculator_admissible_grammar("He ate 2 of them"))
    # Labels and dates are not operands: a changelog's version offers nothing to compute with.
    assert calculator_admissible_grammar("libxkbcommon (1.3.1-1) unstable; urgency=medium") == ""
    assert terminal("WRITTEN", calculator_admissible_grammar("Room 214 holds 12 chairs")) == '"12"'


@pytest.mark.parametrize(("expression", "offered", "admissible"), [
    ("35,000 + 12", True, True),           # as written
    ("35000 * 7%", True, True),            # plain, and a percentage
    ("2.50 * 12", True, True),
    ("2.5 * 12", True, True),              # a decimal without its trailing zero
    ("(35,000 - 1,000) / 2", True, True),  # free constants, written either way
    ("12 * 100 / 1000", True, True),
    ("12 + 3", False, False),              # 3 is not written
    ("35,001 - 1", False, False),
    ("120 / 12", False, False),            # 120 starts like 12, and is not written
    ("12 + 42", False, False),             # 42 is written only after the call
    ("0 * 12", False, False),              # nor is 0
    ("2.500 * 12", False, True),           # the value is written, but the text spells it neither way
    ("12", False, True),                   # a bare number computes nothing: written, but not offered
    ("2", False, False),                   # nor is a free constant alone: 2 is not written (2.50 is)
    ("2 * 100", False, False),             # free constants alone compute nothing the text says
    ("(2 + 1) * 100 / 1,000", False, False),
    ("(2 + 1) * 100 / 12", True, True),    # one written number is enough
    ("100 - 7", True, True),
    ("-(1 - 7)", False, True),             # computes, but not at the top level (as "(12 + 2)")
    ("(12 + 2)", False, True),             # the operator must stand at the top level
    ("-12 + 35000", True, True),
    ("12 x 2.5", True, True),
])
def test_the_grammar_offers_admissible_calls_only(masks: TokenMasks, registry: ToolRegistry, expression: str,
                                                  offered: bool, admissible: bool) -> None:
    grammar = call_grammar("Calculator", registry, TEXT)
    assert accepts(masks, grammar, f"Calculator({expression})]") is offered
    assert calculator_admissible((expression,), TEXT) is admissible
    # The tool's own grammar takes them all: the restriction is what refuses.
    assert accepts(masks, call_grammar("Calculator", registry), f"Calculator({expression})]")


def test_random_walks_under_the_grammar_are_admissible_calls_that_run(masks: TokenMasks, registry: ToolRegistry) -> None:
    grammar = call_grammar("Calculator", registry, TEXT + " In all, he paid 42")
    rng = random.Random(0)
    walked = []
    for _ in range(60):
        (matcher,) = masks.matchers(grammar, 1)
        text = ""
        for _ in range(60):
            allowed = [int(i) for i in masks.allowed([matcher])[0].nonzero()[0]]
            closers = [i for i in allowed if VOCAB[i] in (")", "]")]
            token = rng.choice(closers if closers and rng.random() < 0.4 else allowed)
            masks.consume(matcher, token)
            text += VOCAB[token]
            if matcher.is_stopped():
                walked.append(text)
                break
    assert len(walked) >= 50
    for text in walked:
        call = re.fullmatch(r"(?:Calculator|Calculate) ?\((.*)\) ?(?:\]|->|→)", text)
        assert call is not None, text
        expression = call.group(1)
        assert calculator_admissible((expression,), TEXT + " In all, he paid 42"), text
        # Its rules copy the shapes of grammars/arithmetic.lark: the tool's own grammar takes every walk.
        assert accepts(masks, call_grammar("Calculator", registry), text), text
        try:
            calculator(expression)
        except ToolError as err:           # only a computed zero divisor, which no grammar of literals can refuse
            assert "zero" in str(err).lower(), (text, err)
    assert any("42" in text for text in walked) and any("35,000" in text for text in walked)


def test_only_the_last_numbers_before_the_call_are_offered() -> None:
    before = " ".join(f"{n} boxes," for n in range(10, 10 + ADMISSIBLE_NUMBERS + 20))
    grammar = calculator_admissible_grammar(before)
    offered = set(re.findall(r'"([\d.,]+)"', grammar.split("\nANY:")[1].split("\n")[0]))
    last = {str(n) for n in range(30, 10 + ADMISSIBLE_NUMBERS + 20)}
    assert offered == last | {"1", "2", "100", "1000", "1,000"}
    assert calculator_admissible_grammar("nothing written") == ""    # no number yet: no calculation to offer


def test_the_calculator_declares_it_and_copies_keep_it() -> None:
    calc = default_registry(["calculator"]).get("Calculator")
    assert calc.admissible_grammar is calculator_admissible_grammar
    assert make_tool(calc, timeout=3.0).admissible_grammar is calculator_admissible_grammar

    def only(before: str) -> str:
        return 'start: "1"\n'

    try:
        @tool(name="_admissible_grammar_probe", admissible_grammar=only, replace=True)
        def probe(x: str) -> str:
            """Echo.

            Args:
                x: Anything.
            """
            return x

        assert probe.admissible_grammar is only
        assert user_tools().get("_admissible_grammar_probe").admissible_grammar is only
    finally:
        user_tools().unregister("_admissible_grammar_probe")


def test_a_tool_without_it_keeps_its_own_grammar(registry: ToolRegistry) -> None:
    calc = registry.get("Calculator")
    plain = ToolRegistry([replace(calc, admissible_grammar=None)])
    assert call_grammar("Calculator", plain, TEXT) == call_grammar("Calculator", registry)
    declines = ToolRegistry([replace(calc, admissible_grammar=lambda before: None)])
    assert call_grammar("Calculator", declines, TEXT) == call_grammar("Calculator", registry)
