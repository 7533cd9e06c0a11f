"""toolcall.calls: what makes two calls the same request, and a group cut before its first repeat."""
from __future__ import annotations

from toolcall.calls import ToolCall, request_key, until_repeat


def test_the_same_request_is_the_tool_and_its_arguments_with_their_json_types() -> None:
    same = [ToolCall("f", {"a": 1, "b": [1, 2]}), ToolCall("f", {"b": [1, 2], "a": 1}, span=(4, 9), id="x")]
    assert request_key(same[0]) == request_key(same[1])  # field order, span and id do not count
    others = [ToolCall("f", {"a": 1.0, "b": [1, 2]}), ToolCall("f", {"a": True, "b": [1, 2]}),
              ToolCall("f", {"a": 1, "b": [2, 1]}), ToolCall("g", {"a": 1, "b": [1, 2]}), ToolCall("f", ("1",))]
    assert len({request_key(c) for c in [same[0], *others]}) == 6
    assert ToolCall("f", {"a": 1}).args == ToolCall("f", {"a": True}).args  # what == alone would take for one


def test_a_group_ends_before_its_first_repeat() -> None:
    a, b, c = (ToolCall("f", {"x": x}) for x in "abc")
    assert until_repeat([a, b, a, c]) == [a, b]
    assert until_repeat([b, c], earlier=[a, c]) == [b]
    assert until_repeat([a, b, c]) == [a, b, c] and until_repeat([]) == []


def test_keys_that_cannot_be_ordered_still_make_a_key() -> None:
    """A pythonic dict with an int and a str key: json.dumps(sort_keys=True) raised TypeError."""
    mixed = ToolCall("f", {"x": {1: 2, "a": 3}})
    assert request_key(mixed) == request_key(ToolCall("f", {"x": {1: 2, "a": 3}})) != request_key(ToolCall("f", {}))
