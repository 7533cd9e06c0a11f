"""toolcall.binding: model-written arguments bound to a tool's JSON schema, by name or position, and back."""
from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolcall.binding import bind_arguments, parameter_order, positional_arguments
from toolcall.errors import ToolArgumentError

WEATHER = {"type": "object",
           "properties": {"unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}, "city": {"type": "string"},
                          "days": {"type": "integer"}, "exact": {"type": "boolean"}},
           "required": ["city", "days"]}


def bind(args: Any, parameters: dict[str, Any] = WEATHER, **kw: Any) -> dict[str, Any]:
    return bind_arguments(args, parameters, tool="weather", **kw)


def test_positional_order_is_the_call_grammars_required_first() -> None:
    assert parameter_order(WEATHER) == ["city", "days", "unit", "exact"]
    assert bind(("Paris", "3", "celsius", "yes")) == {"city": "Paris", "days": 3, "unit": "celsius", "exact": True}
    assert bind(("Paris", "3")) == {"city": "Paris", "days": 3}  # omitted optional ones are left out, not null


def test_keywords_are_checked_by_name_and_coerced() -> None:
    assert bind({"days": "2", "city": "Oslo"}) == {"days": 2, "city": "Oslo"}
    assert bind({"days": 2.0, "city": 5}) == {"days": 2, "city": "5"}


def test_null_is_no_string_and_leaves_an_optional_parameter_out() -> None:
    # null arrived as the text "null" (a city called null); for an optional parameter models mean "not given".
    with pytest.raises(ToolArgumentError, match="weather: argument 'city' = None is not valid: expected a string"):
        bind({"city": None, "days": 1})
    assert bind({"city": "Oslo", "days": 1, "unit": None, "exact": None}) == {"city": "Oslo", "days": 1}
    nullable = {"type": "object", "properties": {"note": {"type": "string", "nullable": True}}}
    assert bind({"note": None}, nullable) == {"note": None}
    listed = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}}
    with pytest.raises(ToolArgumentError, match="expected a string"):
        bind({"tags": ["a", None]}, listed)


@pytest.mark.parametrize("args, message", [
    ({"city": "Oslo", "days": 1, "colour": "red"}, "weather: unexpected argument 'colour'; it takes: city, days, unit, exact"),
    ({"days": 1}, "weather: missing required argument 'city'; it takes: city, days, unit, exact"),
    (("Oslo",), "weather: missing required argument 'days'"),
    (("Oslo", "x"), "weather: argument 'days' = 'x' is not valid: expected an integer"),
    (("Oslo", "1", "kelvin"), "weather: argument 'unit' = 'kelvin' is not valid: expected one of \"celsius\", \"fahrenheit\""),
    (("Oslo", "1", "celsius", "maybe"), "expected a boolean (true/false, yes/no)"),
    (("Oslo", "1", "celsius", "true", "more"), "weather: takes at most 4 argument(s) (city, days, unit, exact) but got 5"),
])
def test_errors_name_the_field_and_what_is_allowed(args: Any, message: str) -> None:
    with pytest.raises(ToolArgumentError) as info:
        bind(args)
    assert message in str(info.value)


def test_extra_pieces_join_onto_a_trailing_string_parameter() -> None:
    one = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    assert bind(("Paris", "France"), one) == {"q": "Paris, France"}
    assert bind(("658", "893 + 1"), one, joiner=",") == {"q": "658,893 + 1"}
    assert bind("a, b", one) == {"q": "a, b"}  # a bare string is one argument
    two = {"type": "object", "properties": {"n": {"type": "integer"}, "where": {"type": "string"}}, "required": ["n"]}
    assert bind(("2", "Paris", "France"), two) == {"n": 2, "where": "Paris, France"}
    last_not_text = {"type": "object", "properties": {"n": {"type": "integer"}}}
    with pytest.raises(ToolArgumentError, match="takes at most 1"):
        bind(("1", "2"), last_not_text)


def test_no_parameters() -> None:
    empty = {"type": "object", "properties": {}}
    assert bind((), empty) == {} and bind(("",), empty) == {} and bind({}, empty) == {}
    with pytest.raises(ToolArgumentError, match=r"takes at most 0 argument\(s\) \(no arguments\)"):
        bind(("x",), empty)


def test_json_types_from_text() -> None:
    schema = {"type": "object", "properties": {
        "n": {"type": "number"}, "big": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "integer"}},
        "opts": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}]},
        "maybe": {"type": "integer", "nullable": True}, "either": {"type": ["integer", "string"]},
        "any": {}, "level": {"enum": [1, 2, "max"]},
        "shape": {"anyOf": [{"type": "integer"}, {"type": "array", "items": {"type": "number"}}]}}}
    out = bind(("2.5", "1,200", "4, 5", '{"a": "yes"}', '[1, 2]', "null", "7", "as is", "2", "[1, 2]"), schema)
    assert out == {"n": 2.5, "big": 1200, "tags": [4, 5], "opts": {"a": True}, "pair": [1, "2"], "maybe": None,
                   "either": 7, "any": "as is", "level": 2, "shape": [1, 2]}
    assert bind({"either": "seven", "n": "3", "level": "max", "shape": "4"}, schema) == {
        "either": "seven", "n": 3, "level": "max", "shape": 4}
    assert bind({"n": 1e3}, schema) == {"n": 1000.0}
    with pytest.raises(ToolArgumentError, match="expected a number"):
        bind({"n": True}, schema)  # JSON true is not a number
    with pytest.raises(ToolArgumentError, match="expected a list of 2 items"):
        bind({"pair": [1]}, schema)
    with pytest.raises(ToolArgumentError, match='expected one of 1, 2, "max"'):
        bind({"level": True}, schema)
    with pytest.raises(ToolArgumentError, match="expected an integer or a number"):
        bind({"shape": "x"}, schema)


def test_a_const_is_an_enum_of_one() -> None:
    schema = {"type": "object", "properties": {"mode": {"const": "fast"}, "version": {"type": "integer", "const": 2}}}
    assert bind(("fast", "2"), schema) == {"mode": "fast", "version": 2}
    with pytest.raises(ToolArgumentError, match='expected one of "fast"'):
        bind({"mode": "slow"}, schema)
    with pytest.raises(ToolArgumentError, match="expected one of 2"):
        bind({"version": 3}, schema)


def test_a_malformed_schema_binds_what_it_can() -> None:
    assert bind(("x",), {"type": "object", "properties": {"a": 5}, "required": 5}) == {"a": "x"}
    assert bind({}, {"type": "object", "properties": ["a"]}) == {}
    assert parameter_order({"properties": {"a": {}, "b": {}}, "required": ["b", 3]}) == ["b", "a"]


def test_positional_arguments_is_the_inverse() -> None:
    assert positional_arguments({"days": 2, "city": "Oslo"}, WEATHER) == ("Oslo", 2)
    assert positional_arguments({"city": "Oslo", "days": 2, "unit": "celsius"}, WEATHER) == ("Oslo", 2, "celsius")
    nested = {"type": "object", "properties": {"xs": {"type": "array"}, "o": {"type": "object"}}}
    assert positional_arguments({"xs": [1, "a"], "o": {"k": 1}}, nested) == ('[1, "a"]', '{"k": 1}')
    with pytest.raises(ToolArgumentError, match="unexpected argument 'colour'"):
        positional_arguments({"colour": "red"}, WEATHER, tool="weather")
    with pytest.raises(ToolArgumentError, match="'exact' is given but 'unit' before it is not"):
        positional_arguments({"city": "Oslo", "days": 2, "exact": True}, WEATHER, tool="weather")


@given(city=st.text(alphabet=st.characters(exclude_characters=",", exclude_categories=("Cs",)), min_size=1)
       .filter(lambda s: s == s.strip()),
       days=st.integers(-10**6, 10**6), unit=st.sampled_from(["celsius", "fahrenheit"]), exact=st.booleans())
def test_round_trip_through_positions(city: str, days: int, unit: str, exact: bool) -> None:
    named = {"city": city, "days": days, "unit": unit, "exact": exact}
    assert bind(positional_arguments(named, WEATHER)) == named
    assert bind(tuple(str(v).lower() if isinstance(v, bool) else str(v) for v in positional_arguments(named, WEATHER))) == named


REFERRING = {
    "type": "object",
    "$defs": {"Point": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]},
              "Color": {"type": "string", "enum": ["red", "green"]}, "Count": {"type": "integer"},
              "Loop": {"$ref": "#/$defs/Pool"}, "Pool": {"$ref": "#/$defs/Loop"}},
    "properties": {"p": {"$ref": "#/$defs/Point"}, "color": {"allOf": [{"$ref": "#/$defs/Color"}]},
                   "n": {"$ref": "#/$defs/Count", "description": "How many."},
                   "points": {"type": "array", "items": {"$ref": "#/$defs/Point"}},
                   "loop": {"$ref": "#/$defs/Loop"}, "far": {"$ref": "other.json#/Thing"}},
}


def test_local_references_are_followed_as_pydantic_and_fastmcp_write_every_model_and_enum() -> None:
    """A `$ref` parameter took text as written: `{"x": 1}` went to the server as a string, "5" stayed "5", and an
    enum behind a reference was not checked."""
    bound = bind_arguments({"p": '{"x": "1"}', "color": "green", "n": "5", "points": '[{"x": 2}]'}, REFERRING,
                           tool="t")
    assert bound == {"p": {"x": 1}, "color": "green", "n": 5, "points": [{"x": 2}]}
    with pytest.raises(ToolArgumentError, match='one of "red", "green"'):
        bind_arguments({"color": "blue"}, REFERRING, tool="t")
    with pytest.raises(ToolArgumentError, match="an integer"):
        bind_arguments({"n": "many"}, REFERRING, tool="t")
    # A loop of references, or one to another document, takes the value as written.
    assert bind_arguments({"loop": "7", "far": "8"}, REFERRING, tool="t") == {"loop": "7", "far": "8"}


def test_a_typed_string_stays_the_string_it_is_where_a_string_is_allowed() -> None:
    """JSON and Python-literal calls carry their types: a zip code "02134" for string|integer lost its zero, and
    "None" for an optional string became null. A positional call's values are text, read as the first type they fit."""
    code = {"type": "object", "properties": {"code": {"type": ["string", "integer"]},
                                             "name": {"type": "string", "nullable": True},
                                             "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                                             "codes": {"type": "array", "items": {"type": ["string", "integer"]}}}}
    typed = bind({"code": "02134", "name": "None", "either": "007", "codes": ["02134", 5]}, code)
    assert typed == {"code": "02134", "name": "None", "either": "007", "codes": ["02134", 5]}
    assert bind({"code": 2134, "either": 7}, code) == {"code": 2134, "either": 7}
    assert bind(("02134", "None", "007"), code) == {"code": 2134, "name": None, "either": 7}  # text: as before
    assert bind(("1", None, None, '["02134", 5]'), code)["codes"] == ["02134", 5]  # JSON inside text is typed too
    assert bind(("1", None, None, "02134, 5"), code)["codes"] == [2134, 5]
    assert bind({"code": "02134"}, code, typed=False) == {"code": 2134}


def test_text_reads_a_digit_as_a_number_before_a_boolean() -> None:
    flag = {"type": "object", "properties": {"n": {"type": ["integer", "boolean"]}}}
    assert type(bind(("1",), flag)["n"]) is int and bind(("yes",), flag)["n"] is True and bind({"n": True}, flag)["n"] is True


def test_null_for_a_nullable_enum_is_null_not_a_refusal() -> None:
    """Optional[Literal[...]] and Optional[Enum]: HF writes the choices without null, and null was refused (or, for
    an optional parameter, silently replaced by the default)."""
    mode = {"type": "object", "properties": {"mode": {"type": "string", "enum": ["fast", "slow"], "nullable": True}},
            "required": ["mode"]}
    assert bind({"mode": None}, mode) == {"mode": None}
    assert bind({"mode": "slow"}, mode) == {"mode": "slow"}
    with pytest.raises(ToolArgumentError, match='expected one of "fast", "slow"'):
        bind({"mode": "x"}, mode)


@pytest.mark.parametrize(("text", "expected"), [
    ("12345678901234567890.0", 12345678901234567890), ("9007199254740993.0", 9007199254740993), ("1e3", 1000),
    ("1_000", 1000), ("1,200", 1200), ("3.0000000000000001", None), ("3.5", None), ("1e999999999", None),
    ("nan", None), ("Infinity", None), ("three", None)])
def test_an_integer_is_read_exactly_or_not_at_all(text: str, expected: int | None) -> None:
    """Through a float, "9007199254740993.0" became ...992 and "3.0000000000000001" became 3."""
    from toolcall.binding import integer_text

    assert integer_text(text) == expected


def test_json_text_with_a_number_past_pythons_digit_limit_is_a_mismatch_not_a_crash() -> None:
    """A list or object parameter's JSON text holding a 5,000-digit integer: Python's reader raises ValueError
    (its 4,300-digit limit), which ended a reply in the loop and was a 500 from the server."""
    listed = {"type": "object", "properties": {"values": {"type": "array", "items": {"type": "integer"}}},
              "required": ["values"]}
    for args in (("[" + "1" * 5000 + "]",), {"values": "[" + "1" * 5000 + "]"}):
        with pytest.raises(ToolArgumentError, match="at most 4,300 digits"):
            bind_arguments(args, listed, tool="total")


def test_a_schema_that_takes_other_arguments_or_requires_unlisted_ones_can_be_called() -> None:
    """An MCP server's `additionalProperties: true` was not honoured (`unexpected argument 'y'`), and a tool requiring
    a name its properties leave out could not be called either way."""
    from toolcall.binding import bind_arguments
    from toolcall.errors import ToolArgumentError

    listed = {"type": "object", "properties": {"x": {"type": "integer"}}}
    assert bind_arguments({"x": 1, "y": "z"}, {**listed, "additionalProperties": True}, tool="t") == {"x": 1, "y": "z"}
    typed = {**listed, "additionalProperties": {"type": "integer"}}
    assert bind_arguments({"x": 1, "y": 2}, typed, tool="t") == {"x": 1, "y": 2}
    with pytest.raises(ToolArgumentError, match="argument 'y' = 'z' is not valid"):
        bind_arguments({"x": 1, "y": "z"}, typed, tool="t")  # held to the schema given for them
    ghost = {"type": "object", "properties": {}, "required": ["ghost"]}
    assert bind_arguments({"ghost": 1}, ghost, tool="t") == {"ghost": 1}
    with pytest.raises(ToolArgumentError, match="missing required argument 'ghost'"):
        bind_arguments({}, ghost, tool="t")
    closed_ghost = {**listed, "required": ["x", "q"], "additionalProperties": False}
    with pytest.raises(ToolArgumentError, match="unexpected argument 'q'"):
        bind_arguments({"x": 1, "q": 2}, closed_ghost, tool="t")  # it forbids what it does not list
    for closed in (listed, {**listed, "additionalProperties": False}):  # the default: only what it lists
        with pytest.raises(ToolArgumentError, match="unexpected argument 'y'; it takes: x"):
            bind_arguments({"x": 1, "y": 2}, closed, tool="t")


def doubling(depth: int) -> dict[str, Any]:
    """A schema whose every level offers two options that both lead to the next level: 2**depth paths in 2 KB."""
    defs: dict[str, Any] = {f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
                            for i in range(depth)}
    defs[f"d{depth}"] = {"type": "integer"}
    return {"type": "object", "$defs": defs, "properties": {"a": {"$ref": "#/$defs/d0"}}, "required": ["a"]}


def test_a_value_meets_each_part_of_a_branching_schema_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every path was tried: a wrong value for 26 levels took a server's reply slot for ~15 minutes.
    import toolcall.binding as binding

    tries = 0
    inner = binding._coerce

    def counted(*args: Any) -> Any:
        nonlocal tries
        tries += 1
        return inner(*args)

    monkeypatch.setattr(binding, "_coerce", counted)
    with pytest.raises(ToolArgumentError, match="an integer"):
        bind({"a": "x"}, doubling(12))
    assert tries <= 3 * 13
    assert bind({"a": "7"}, doubling(40)) == {"a": 7}


def test_a_branching_schema_checks_in_bounded_steps() -> None:
    from toolcall.schema import schema_violation

    # jsonschema tries every option: 18 levels took 42 s; past the steps allowed, the arguments are refused.
    assert "took more than" in (schema_violation({"a": "x"}, doubling(16)) or "")
    assert schema_violation({"a": 5}, doubling(40)) is None
    assert schema_violation({"a": list(range(5000))}, {"type": "object", "properties": {"a": {
        "type": "array", "items": {"type": "integer"}}}}) is None
    # A wide schema read once per part fits: 200 codes against a oneOf of 250 documented consts.
    codes = {"type": "object", "properties": {"codes": {"type": "array", "items": {"oneOf": [
        {"const": f"C{i:03d}", "description": f"code {i}"} for i in range(250)]}}}}
    assert schema_violation({"codes": [f"C{i:03d}" for i in range(200)]}, codes) is None
