"""The JSON-argument dialects (hermes, pythonic, llama3_json, mistral): outputs as real models write them, malformed
ones, round trips, the loop's pending/close, and the same calls under any chunking (vLLM's tool-parser test style)."""
from __future__ import annotations

import ast
import json
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolcall.calls import KeywordArgs, ToolCall
from toolcall.dialects import IncrementalParser, dialect_for_template, get_dialect
from toolcall.errors import ConfigError, DialectSyntaxError

NAMES = ("hermes", "pythonic", "llama3_json", "mistral")


def calls_of(text: str, name: str) -> list[tuple[str, dict, str | None]]:
    return [(c.tool, dict(c.args), c.result) for c in get_dialect(name).parse(text).calls]


# ---------------------------------------------------------------------------------------------- hermes
QWEN_PARALLEL = (
    "I'll check both cities.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Dallas\", "
    "\"unit\": \"fahrenheit\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
    "{\"city\": \"São Paulo\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n{\"temp\": 91}\n"
    "</tool_response>\n<tool_response>\n{\"temp\": 23}\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    "Dallas is 91°F and São Paulo 23°C.")


def test_hermes_parallel_calls_and_their_responses() -> None:
    assert calls_of(QWEN_PARALLEL, "hermes") == [
        ("get_weather", {"city": "Dallas", "unit": "fahrenheit"}, '{"temp": 91}'),
        ("get_weather", {"city": "São Paulo"}, '{"temp": 23}')]
    parsed = get_dialect("hermes").parse(QWEN_PARALLEL)
    assert parsed.issues == [] and get_dialect("hermes").render(parsed) == QWEN_PARALLEL
    first = parsed.calls[0]
    assert QWEN_PARALLEL[first.span[0]:first.span[1]].startswith("<tool_call>")
    assert QWEN_PARALLEL[first.span[0]:first.span[1]].endswith("</tool_call>")


@pytest.mark.parametrize("body, args", [
    ('{"name":"f","arguments":{"q":"a \\"quoted\\" word","n":-1.5e3,"ok":true,"none":null,"list":[1,[2,{"x":[]}]]}}',
     {"q": 'a "quoted" word', "n": -1500.0, "ok": True, "none": None, "list": [1, [2, {"x": []}]]}),
    ('\n  {\n    "name": "f",\n    "arguments": {\n      "text": "line one\nline two",\n      "emoji": "\\ud83d\\ude00 ü"\n    }\n  }\n',
     {"text": "line one\nline two", "emoji": "😀 ü"}),
    ('{"name": "f", "parameters": {"k": 0}}', {"k": 0}),
    ('{"name": "f", "arguments": "{\\"k\\": 1}"}', {"k": 1}),  # arguments as a JSON string (OpenAI's wire form)
    ('{"name": "f"}', {}),
    ('{"name": "f", "arguments": {"html": "</tool_call> is text here"}}', {"html": "</tool_call> is text here"}),
])
def test_hermes_json_as_models_write_it(body: str, args: dict) -> None:
    text = f"<tool_call>{body}</tool_call>"
    parsed = get_dialect("hermes").parse(text)
    assert parsed.issues == [] and [(c.tool, dict(c.args)) for c in parsed.calls] == [("f", args)]
    assert get_dialect("hermes").render(parsed) == text


def test_hermes_last_block_without_its_closing_tag() -> None:
    text = 'Sure.\n<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n'
    parsed = get_dialect("hermes").parse(text)
    assert parsed.issues == [] and [(c.tool, dict(c.args), c.span) for c in parsed.calls] == [("f", {"a": 1}, (6, len(text) - 1))]
    assert get_dialect("hermes").render(parsed) == text
    stream = IncrementalParser(get_dialect("hermes"))
    assert [stream.feed(ch) for ch in text] and stream.reported == []  # not final: the tag may still come
    assert [c.tool for c in stream.finish().calls] == ["f"] and stream.reported[0].span == (6, len(text) - 1)


@pytest.mark.parametrize("name", ["hermes", "pythonic", "llama3_json", "mistral", "moss", "toolformer"])
def test_the_incremental_parser_takes_a_dialects_name_as_every_entry_point_does(name: str) -> None:
    """`IncrementalParser("pythonic")` found no calls in any chunk and failed in `finish` with an AttributeError."""
    dialect = get_dialect(name)
    text = dialect.write_calls([ToolCall("f", KeywordArgs({"a": 1}) if dialect.named_arguments else (1,))])
    text += dialect.close(dialect.pending(text), ["2"]) + " Done."  # type: ignore[arg-type]
    by_name, by_object = IncrementalParser(name), IncrementalParser(dialect)
    for ch in text:
        assert by_name.feed(ch) == by_object.feed(ch)
    assert [c.tool for c in by_name.finish().calls] == [c.tool for c in by_object.finish().calls] == ["f"]


def test_hermes_array_inside_one_tag() -> None:
    text = '<tool_call>[{"name": "a", "arguments": {}}, {"name": "b", "arguments": {"x": 1}}]</tool_call>'
    assert calls_of(text, "hermes") == [("a", {}, None), ("b", {"x": 1}, None)]


@pytest.mark.parametrize("text, line, column, found", [
    ('<tool_call>\n{"name": "f", "arguments": {"a": 1}\n</tool_call>', 3, 1, "unexpected '</tool_call>'"),  # last } missing
    ('<tool_call>\n{"name": "f"}, "arguments": "{\\"a\\": 1}"}\n</tool_call>', 2, 14, "unexpected ','"),
    ("<tool_call>\n[{'name': 'f', 'arguments': {'a': 1}}]\n</tool_call>", 2, 3, "unexpected character \"'\""),
    ('<tool_call>\n{"name": "f", "arguments": {"city": "Dal', 2, 41, "unexpected end of input"),  # token limit
    ('<tool_call>\n{"arguments": {"a": 1}}\n</tool_call>', 2, 1, 'needs a "name" string'),
    ('<tool_call>\n{"name": "f", "arguments": [1, 2]}\n</tool_call>', 2, 28, "must be a JSON object"),
])
def test_hermes_malformed_outputs_are_issues(text: str, line: int, column: int, found: str) -> None:
    parsed = get_dialect("hermes").parse("Before. " + text)
    assert parsed.calls == [] and len(parsed.issues) == 1
    issue = parsed.issues[0]
    assert found in issue.message and (issue.line, issue.column) == (line, column + (8 if line == 1 else 0))
    assert get_dialect("hermes").render(parsed) == "Before. " + text
    with pytest.raises(DialectSyntaxError) as info:
        get_dialect("hermes").parse("Before. " + text, strict=True)
    assert info.value.line == line


def test_hermes_prose_with_json_is_not_a_call() -> None:
    text = 'Use JSON like {"name": "f", "arguments": {}} or a list [1, 2]; tags: <tool_response>x</tool_response>'
    parsed = get_dialect("hermes").parse(text)
    assert parsed.calls == [] and parsed.issues == []


def test_hermes_pending_and_close_cycle() -> None:
    hermes = get_dialect("hermes")
    text = 'Sure.\n<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>'
    pending = hermes.pending(text)
    assert pending is not None and [(c.tool, dict(c.args)) for c in pending.calls] == [("add", {"a": 2, "b": 3})]
    closed = text + hermes.close(pending, ["5"])
    assert closed.endswith("</tool_call>\n<tool_response>\n5\n</tool_response>\n")
    assert calls_of(closed, "hermes") == [("add", {"a": 2, "b": 3}, "5")]
    assert hermes.pending(closed + "Then <tool_call>x") is None  # no marker at the end
    # A string holding the marker is not the end of the call: nothing pending yet, the loop decodes on.
    assert hermes.pending('<tool_call>\n{"name": "f", "arguments": {"s": "</tool_call>') is None
    # A malformed call is pending with its issue and takes one error text.
    bad = hermes.pending('<tool_call>\n{"name": "f", "arguments": {"a": 1}\n</tool_call>')
    assert bad is not None and bad.malformed and bad.issues[0].line == 3
    again = '<tool_call>\n{"name": "f", "arguments": {"a": 1}\n</tool_call>' + hermes.close(bad, ["Error: malformed call"])
    assert hermes.parse(again).calls == []
    later = again + '<tool_call>\n{"name": "g", "arguments": {}}\n</tool_call>\n<tool_response>\nok\n</tool_response>'
    assert calls_of(later, "hermes") == [("g", {}, "ok")]  # the error response answered the malformed call
    spans = hermes.result_spans(closed)   # the opener says the calls are done; the rest is the loop's
    assert [(closed[m[0]:m[1]], closed[r[0]:r[1]]) for m, r in spans] == [("<tool_response>", "\n5\n</tool_response>\n")]


def test_hermes_render_changed_and_new_calls() -> None:
    hermes = get_dialect("hermes")
    parsed = hermes.parse(QWEN_PARALLEL)
    parsed.calls[0] = ToolCall("get_weather", {"city": "Austin"}, "{\"temp\": 99}", parsed.calls[0].span)
    out = hermes.render(parsed)
    assert calls_of(out, "hermes")[0] == ("get_weather", {"city": "Austin"}, '{"temp": 99}')
    assert calls_of(out, "hermes")[1] == ("get_weather", {"city": "São Paulo"}, '{"temp": 23}')
    parsed.calls[1] = parsed.calls[1].with_result(None)
    assert calls_of(hermes.render(parsed), "hermes")[1] == ("get_weather", {"city": "São Paulo"}, None)
    dropped = hermes.parse(QWEN_PARALLEL)
    del dropped.calls[0]
    # The dropped call leaves with its response, so the other keeps its own.
    assert calls_of(hermes.render(dropped), "hermes") == [("get_weather", {"city": "São Paulo"}, '{"temp": 23}')]
    with pytest.raises(ConfigError, match="positional arguments"):
        hermes.render_call(ToolCall("f", ("x",)))


# ---------------------------------------------------------------------------------------------- pythonic
def test_pythonic_as_llama_writes_it() -> None:
    text = "[get_weather(city='San Francisco', metric='celsius'), get_time()]"
    assert calls_of(text, "pythonic") == [("get_weather", {"city": "San Francisco", "metric": "celsius"}, None),
                                          ("get_time", {}, None)]
    odd = ("<|python_tag|>[search.web(query=\"it's \\\"new\\\"\", k=3, filters={'lang': ['en', 'de'], 'safe': True}, "
           "after=None, t=(1, 2.5), neg=-0.5e-3,)]")
    assert calls_of(odd, "pythonic") == [("search.web", {"query": 'it\'s "new"', "k": 3, "filters": {"lang": ["en", "de"], "safe": True},
                                                         "after": None, "t": [1, 2.5], "neg": -0.0005}, None)]
    prose = "See [1], [a, b], [link](http://x.org) and [x for x in y]."
    assert get_dialect("pythonic").parse(prose).calls == [] and get_dialect("pythonic").parse(prose).issues == []


@pytest.mark.parametrize("text, found", [
    ("[get_weather('Paris')]", "unexpected"),          # positional
    ("[f(x=y)]", "unexpected"),                         # a variable, never evaluated
    ("[f(x=__import__('os').system('ls'))]", "unexpected"),
    ("[f(x=1 + 2)]", "unexpected"),
    ("[f(city='Par", "unexpected"),                     # cut off
])
def test_pythonic_never_evaluates(text: str, found: str) -> None:
    parsed = get_dialect("pythonic").parse(text)
    assert parsed.calls == [] and parsed.issues and found in parsed.issues[0].message
    assert parsed.issues[0].pos >= 1


def test_a_keyword_given_twice_is_a_positioned_issue_as_python_makes_it() -> None:
    # The last value won silently: `city='Rome'` ran for a request about Paris.
    for text, pos in [("[get_weather(city='Paris', city='Rome')]", 27), ("x [f(a=1), g(b=2, c=3, b=4)] y", 23)]:
        parsed = get_dialect("pythonic").parse(text)
        assert parsed.calls == [] and len(parsed.issues) == 1 and parsed.issues[0].pos == pos
        assert "keyword argument" in parsed.issues[0].message and "repeated" in parsed.issues[0].message


# Values Python reads one way and the grammar's reading read another, silently: `\01` was NUL then "1", `\101` stayed
# as written, `\N{BULLET}` too, and `1__0` (no Python number) was 10.
@pytest.mark.parametrize("literal", [r"'\00'", r"'\01'", r"'\1'", r"'\101'", r"'\777'", r"'a\0b'", r"'\8'",
                                     r"'\N{BULLET}'", r"'\N{bullet}'", r"'\N{LINE FEED}'", r"'\x41\u00e9\U0001F600'",
                                     "1_000", "1e1_0", "0_0", "00", "1.e5", ".5", "1_0.5_0", "-1_0"])
@pytest.mark.parametrize("template", ["[f(a={})]", "[f(a={}); g()]"])  # `;` is the grammar's alone
def test_pythonic_values_read_as_python_reads_them(literal: str, template: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Python 3.12 warns of `\777` and `\8`, and reads them all the same
        expected = ast.literal_eval(literal)
    parsed = get_dialect("pythonic").parse(template.format(literal))
    assert parsed.issues == [] and parsed.calls[0].args["a"] == expected


@pytest.mark.parametrize("literal, at", [
    (r"'\N{NO SUCH NAME}'", 1), (r"'ab\N{LATIN CAPITAL LETTER A WITH MACRON AND GRAVE}'", 3), (r"'\N'", 1),
    (r"'\x4'", 1), (r"'a\u12'", 2), (r"'\U00110000'", 1),  # escapes Python refuses
    ("1__0", 1), ("01", 0), ("1_", 1), ("1_.5", 1), ("007", 0), ("-0_1", 0),  # numbers Python refuses
])
def test_pythonic_values_python_refuses_are_positioned_issues(literal: str, at: int) -> None:
    with pytest.raises(SyntaxError):
        ast.literal_eval(literal)
    for template in ("[f(a={})]", "[f(a={}); g()]"):
        parsed = get_dialect("pythonic").parse(template.format(literal))
        assert parsed.calls == [] and len(parsed.issues) == 1 and parsed.issues[0].pos == len("[f(a=") + at, parsed
        if literal.lstrip("-").startswith("0"):   # said as Python says it, not "unexpected '1'"
            assert "without leading zeros" in parsed.issues[0].message


def test_pythonic_pending_waits_for_the_closing_bracket() -> None:
    pythonic = get_dialect("pythonic")
    assert pythonic.pending("[f(a=[1, 2]") is None  # the loop paused at a "]" inside the call
    pending = pythonic.pending("[f(a=[1, 2]), g(b='x]')]")
    assert pending is not None and [c.tool for c in pending.calls] == ["f", "g"]
    closed = "[f(a=[1, 2]), g(b='x]')]" + pythonic.close(pending, ["3", "y"])
    assert "<|start_header_id|>ipython<|end_header_id|>\n\n3<|eot_id|>" in closed
    assert closed.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert calls_of(closed, "pythonic") == [("f", {"a": [1, 2]}, "3"), ("g", {"b": "x]"}, "y")]
    assert pythonic.pending("see [1]") is None


# ---------------------------------------------------------------------------------------------- llama3_json
@pytest.mark.parametrize("text, expected", [
    ('{"name": "get_weather", "parameters": {"city": "Dallas"}}', [("get_weather", {"city": "Dallas"}, None)]),
    ('<|python_tag|>{"name": "a", "parameters": {}}; {"name": "b", "arguments": {"x": [1, 2]}}',
     [("a", {}, None), ("b", {"x": [1, 2]}, None)]),
    ('\n  {"name": "f",\n   "parameters": {"q": "multi\nline"}}  \n', [("f", {"q": "multi\nline"}, None)]),
    # Prose before the calls, as other servers' parsers take it: the JSON that runs to the end of the reply is calls.
    ('Let me look that up. {"name": "f", "parameters": {}}', [("f", {}, None)]),
    ('Here is an example: {"name": "f", "parameters": {}} in a sentence.', []),   # JSON inside prose
    ('{"name": "Bob", "age": 3}', []),                              # a JSON reply that is not a call
    ('{"name": "f", "parameters": {}} and then prose', []),         # not the whole reply
])
def test_llama3_json_calls_end_their_reply(text: str, expected: list) -> None:
    parsed = get_dialect("llama3_json").parse(text)
    assert [(c.tool, dict(c.args), c.result) for c in parsed.calls] == expected
    assert get_dialect("llama3_json").render(parsed) == text


@pytest.mark.parametrize("text, column", [
    ('{"name": "f", "parameters": {"a": 1}', 37),                           # last } missing
    ('{"name": "f"}, "parameters": "{\\"a\\": 1}"}', 14),                   # name object closed early
    ('<|python_tag|>{"name": "f", "parameters": {"a": 1}} trailing', 53),
])
def test_llama3_json_malformed(text: str, column: int) -> None:
    parsed = get_dialect("llama3_json").parse(text)
    assert parsed.calls == [] and [i.column for i in parsed.issues] == [column]


def test_llama3_json_turns_and_results() -> None:
    llama = get_dialect("llama3_json")
    head = "<|start_header_id|>assistant<|end_header_id|>\n\n"
    text = head + '{"name": "add", "parameters": {"a": 1, "b": 2}}'
    pending = llama.pending(text)
    assert pending is not None and pending.calls[0].tool == "add"
    assert llama.pending(head + '{"name": "add", "parameters": {"a": 1') is None  # still being written
    closed = text + llama.close(pending, ["3"])
    assert calls_of(closed, "llama3_json") == [("add", {"a": 1, "b": 2}, "3")]
    (marker, body), = llama.result_spans(closed)   # the model ends its turn; the ipython turn is the loop's
    assert marker == (body[0], body[0]) and closed[:body[0]].endswith("<|eot_id|>") and body[1] == len(closed)
    assert closed[body[0]:] == ("<|start_header_id|>ipython<|end_header_id|>\n\n3<|eot_id|>"
                                "<|start_header_id|>assistant<|end_header_id|>\n\n")


# ---------------------------------------------------------------------------------------------- mistral
def test_mistral_both_spellings_and_ids() -> None:
    v3 = ('[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "aB3dE6gH9"}, '
          '{"name": "get_time", "arguments": {}, "id": "Zz9Yy8Xx7"}]</s>[TOOL_RESULTS] {"content": "noon", '
          '"call_id": "Zz9Yy8Xx7"}[/TOOL_RESULTS][TOOL_RESULTS] {"content": {"temp": 20}, "call_id": "aB3dE6gH9"}[/TOOL_RESULTS]')
    parsed = get_dialect("mistral").parse(v3)
    assert [(c.tool, dict(c.args), c.result, c.id) for c in parsed.calls] == [
        ("get_weather", {"city": "Paris"}, '{"temp": 20}', "aB3dE6gH9"), ("get_time", {}, "noon", "Zz9Yy8Xx7")]
    v11 = '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[CALL_ID]abc123def[ARGS]{}'
    assert [(c.tool, dict(c.args), c.id) for c in get_dialect("mistral").parse(v11).calls] == [
        ("get_weather", {"city": "Paris"}, None), ("get_time", {}, "abc123def")]
    new = get_dialect("mistral").render_call(ToolCall("f", {"x": 1}))
    made = get_dialect("mistral").parse(new).calls[0]
    assert made.id is not None and len(made.id) == 9 and made.id.isalnum()
    assert get_dialect("mistral", spelling="args").render_call(ToolCall("f", {"x": 1})) == '[TOOL_CALLS]f[ARGS]{"x": 1}'


def test_mistral_malformed_and_pending() -> None:
    mistral = get_dialect("mistral")
    for text in ('[TOOL_CALLS][{"name": "f", "arguments": {"a": 1}]', "[TOOL_CALLS][{'name': 'f'}]",
                 '[TOOL_CALLS]f[ARGS]{"a": '):
        parsed = mistral.parse(text)
        assert parsed.calls == [] and len(parsed.issues) == 1 and parsed.issues[0].pos > 0
    assert mistral.pending('[TOOL_CALLS][{"name": "f", "arguments": {"a": [1]') is None
    pending = mistral.pending('[TOOL_CALLS][{"name": "f", "arguments": {"a": [1]}, "id": "abcdefghi"}]')
    assert pending is not None
    closed = '[TOOL_CALLS][{"name": "f", "arguments": {"a": [1]}, "id": "abcdefghi"}]' + mistral.close(pending, ["ok"])
    assert closed.endswith('[TOOL_RESULTS]{"content": "ok", "call_id": "abcdefghi"}[/TOOL_RESULTS]')
    assert calls_of(closed, "mistral") == [("f", {"a": [1]}, "ok")]


# ---------------------------------------------------------------------------------------------- templates
@pytest.mark.parametrize("template, name", [
    ("{%- if tools %}<tools>{{ tool }}</tools> For each call: <tool_call>\n{...}\n</tool_call>{% endif %}", "hermes"),
    ("{{ '[AVAILABLE_TOOLS]' + tools|tojson + '[/AVAILABLE_TOOLS]' }}{% if m.tool_calls %}[TOOL_CALLS]{% endif %}", "mistral"),
    ("{%- if builtin_tools %}<|python_tag|>{% endif %}{{ '<|eom_id|>' }}", "llama3_json"),
    ("Respond as [func_name1(params_name1=params_value1), func_name2(params)] <|python_tag|>", "pythonic"),
    ("{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}", None),
    ("", None),
])
def test_dialect_for_template(template: str, name: str | None) -> None:
    assert dialect_for_template(template) == name


# ---------------------------------------------------------------------------------------------- property tests
KEYS = st.text(st.characters(min_codepoint=0x61, max_codepoint=0x7A), min_size=1, max_size=6)
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False, width=32) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3), max_leaves=6)
TOOL_NAMES = st.sampled_from(["get_weather", "search", "Calculator", "f_2"])
RESULTS = st.none() | st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=10).map(str.strip).filter(
    lambda r: "<" not in r and "[" not in r)
PROSE = st.sampled_from(["Sure.", "Let me check", "[1]", "{not json}", "a, b", "ü →", "\n", "[see](x)", "(x)", ""])


def _call_strategy(name: str) -> st.SearchStrategy[ToolCall]:
    results = RESULTS if name != "llama3_json" else st.none()
    return st.builds(lambda t, a, r: ToolCall(t, KeywordArgs(a), r), TOOL_NAMES,
                     st.dictionaries(KEYS, JSON, max_size=3), results)


def _texts(name: str) -> st.SearchStrategy[tuple[str, list[ToolCall]]]:
    dialect = get_dialect(name)

    def build(parts: list[tuple[str, ToolCall | None]]) -> tuple[str, list[ToolCall]]:
        pieces, calls = [], []
        for prose, call in parts:
            # Prose before each call: calls separated only by whitespace are one run of parallel calls, whose results
            # answer them in order, which is not what a generated mix of answered and unanswered calls means.
            pieces.append(prose if prose.strip() else "Then")
            if call is None:
                continue
            if name == "llama3_json":  # a call is a whole reply, between turn tokens
                text = "<|start_header_id|>assistant<|end_header_id|>\n\n" + dialect.render_call(call) + "<|eot_id|>"
            else:
                text = dialect.render_call(call)
                if call.result is not None:
                    text += dialect.close(dialect.pending(text), [call.result])  # type: ignore[arg-type]
            pieces.append(text)
            calls.append(call)
        return " ".join(pieces), calls

    return st.lists(st.tuples(PROSE, st.none() | _call_strategy(name)), max_size=5).map(build)


def _same(found: list[ToolCall], expected: list[ToolCall]) -> bool:
    return [(c.tool, dict(c.args), c.result) for c in found] == [(c.tool, dict(c.args), c.result) for c in expected]


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_and_any_chunking(name: str) -> None:
    dialect = get_dialect(name)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_texts(name), st.lists(st.integers(1, 12), max_size=40))
    def check(made: tuple[str, list[ToolCall]], cuts: list[int]) -> None:
        text, expected = made
        parsed = dialect.parse(text)
        assert parsed.issues == [] and _same(parsed.calls, expected), text
        assert dialect.render(parsed) == text
        # Replaced by equal values, the calls render canonically and parse back the same.
        parsed.calls[:] = [ToolCall(c.tool, dict(c.args), c.result, c.span, c.id) for c in parsed.calls]
        assert _same(dialect.parse(dialect.render(parsed)).calls, expected)
        # Any chunking: the streaming parser reports the same calls, and early reports are final.
        for sizes in (cuts or [1], [1]):
            stream = IncrementalParser(dialect)
            pos, step = 0, 0
            while pos < len(text):
                size = sizes[step % len(sizes)]
                for call in stream.feed(text[pos:pos + size]):
                    assert call in [c.with_result(None) for c in parsed.original_calls], call
                pos, step = pos + size, step + 1
            whole = stream.finish()
            assert whole.calls == dialect.parse(text).calls
            assert stream.reported == [c.with_result(None) for c in whole.calls]

    check()


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(list('{}[]()"\',:;=<>/|_ \nabfnrtuxTNFe0123456789') + [
    "<tool_call>", "</tool_call>", "[TOOL_CALLS]", "[ARGS]", "<|python_tag|>", '"name"', '"arguments"', "<tool_response>",
    "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "<|eot_id|>"]), max_size=60).map("".join))
def test_garbage_never_raises(name: str, text: str) -> None:
    dialect = get_dialect(name)
    parsed = dialect.parse(text)
    assert dialect.render(parsed) == text
    for issue in parsed.issues:
        assert 0 <= issue.pos <= len(text) and issue.line == text.count("\n", 0, issue.pos) + 1
    for call in parsed.calls:
        assert 0 <= call.span[0] < call.span[1] <= len(text)
    pending = dialect.pending(text)
    if pending is not None:
        results = ["Error: malformed call"] if pending.malformed else ["r"] * len(pending.calls)
        dialect.parse(text + dialect.close(pending, results))
    dialect.result_spans(text)


def test_keyword_args_are_hashable_and_equal_to_dicts() -> None:
    call = ToolCall("f", {"a": [1, {"b": None}]})
    assert isinstance(call.args, KeywordArgs) and call.keyword and call.args == {"a": [1, {"b": None}]}
    assert hash(call) == hash(ToolCall("f", {"a": [1, {"b": None}]})) and len({call, ToolCall("f", ("x",))}) == 2
    assert ToolCall("f", ["x"]).args == ("x",) and not ToolCall("f", ["x"]).keyword
    assert json.loads(json.dumps(dict(call.args))) == {"a": [1, {"b": None}]}


# ---------------------------------------------------------------------------------------------- other parsers' conventions
def test_a_broken_sibling_is_an_issue_and_the_good_calls_stay() -> None:
    hermes = get_dialect("hermes").parse(
        '<tool_call>[{"name": "a", "arguments": {}}, {"arguments": {"x": 1}}, {"name": "c", "arguments": [1]}]</tool_call>')
    assert [c.tool for c in hermes.calls] == ["a"] and len(hermes.issues) == 2
    assert 'needs a "name"' in hermes.issues[0].message and "must be a JSON object" in hermes.issues[1].message
    mistral = get_dialect("mistral").parse('[TOOL_CALLS][{"name": "a", "arguments": {}}, {"name": 3}]')
    assert [c.tool for c in mistral.calls] == ["a"] and len(mistral.issues) == 1
    llama = get_dialect("llama3_json").parse('{"name": "a", "parameters": {}}; {"name": "b"}')
    assert [c.tool for c in llama.calls] == ["a"] and "needs its arguments" in llama.issues[0].message


@pytest.mark.parametrize("text", [
    "[get_weather(city='Paris'); get_time()]",
    "[get_weather(city='Paris')\nget_time()]",
    "[get_weather(city='Paris'), get_time(),]",
])
def test_pythonic_calls_separated_by_semicolons_or_newlines(text: str) -> None:
    parsed = get_dialect("pythonic").parse(text)
    assert [(c.tool, dict(c.args)) for c in parsed.calls] == [("get_weather", {"city": "Paris"}), ("get_time", {})]
    assert parsed.issues == []


def test_qwen_reply_with_its_turn_token_and_no_closing_tag() -> None:
    text = 'Checking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n<|im_end|>\n<|im_start|>user\nok'
    parsed = get_dialect("hermes").parse(text)
    assert [(c.tool, dict(c.args)) for c in parsed.calls] == [("get_weather", {"city": "Paris"})] and parsed.issues == []
    assert text[parsed.calls[0].span[0]:parsed.calls[0].span[1]].endswith('"Paris"}}')
    assert get_dialect("hermes").render(parsed) == text


def test_calls_followed_by_prose_and_arguments_as_strings() -> None:
    assert calls_of('<tool_call>{"name": "f", "arguments": "{\\"a\\": 1}"}</tool_call> Then I answer.', "hermes") == [
        ("f", {"a": 1}, None)]
    assert calls_of("[f(a=1)] and then some prose.", "pythonic") == [("f", {"a": 1}, None)]
    assert calls_of('[TOOL_CALLS]f[ARGS]{"a": 1} and prose', "mistral") == [("f", {"a": 1}, None)]
    # A bare string cannot be bound to a parameter the wire format does not know: an issue, not a guess.
    bare = get_dialect("hermes").parse('<tool_call>{"name": "f", "arguments": "Paris"}</tool_call>')
    assert bare.calls == [] and "not a JSON object" in bare.issues[0].message


def test_many_blocks_and_responses_pair_in_order() -> None:
    block = '<tool_call>{"name": "f", "arguments": {"i": %d}}</tool_call>\n<tool_response>%d</tool_response>\nok.\n'
    text = "".join(block % (i, i) for i in range(300))
    parsed = get_dialect("hermes").parse(text)
    assert [(dict(c.args)["i"], c.result) for c in parsed.calls] == [(i, str(i)) for i in range(300)]


def test_a_broken_llama3_json_reply_is_reported_the_same_at_any_size() -> None:
    # Past 64 KiB the grammar read only the reply's start: 1,986 good calls came back and the broken end was dropped.
    for n in (1_000, 20_000):
        text = '{"name": "f", "parameters": {}}; ' * n + "x"
        parsed = get_dialect("llama3_json").parse(text)
        assert parsed.calls == [] and len(parsed.issues) == 1 and parsed.issues[0].pos == len(text) - 1


def test_equal_calls_hash_alike_whatever_their_numbers_type() -> None:
    # {"n": 1} == {"n": 1.0}, as in Python, but their JSON differed, so a set held both.
    one, one_float, true = (ToolCall("f", {"n": v}) for v in (1, 1.0, True))
    assert one == one_float == true and len({one, one_float, true}) == 1
    assert len({ToolCall("f", {"a": [1, {"b": 2}]}), ToolCall("f", {"a": [1.0, {"b": 2.0}]})}) == 1


@pytest.mark.parametrize("text", [
    "[obtener(monto_del_credito=1000000.0, año_vehiculo=2024)]",     # as Python's parser reads it
    "[obtener(monto_del_credito=1000000.0;\n año_vehiculo=2024)]".replace(";", ","),
    "[obtener(monto_del_credito=1000000.0, año_vehiculo=2024); other()]",   # as the grammar alone reads it
])
def test_pythonic_keywords_in_any_script(text: str) -> None:
    # A tool registered from `def obtener(monto_del_credito: float, año_vehiculo: int)` got a schema, and its call was
    # "unexpected character 'ñ'" (a BFCL live item) and could not be rendered.
    pythonic = get_dialect("pythonic")
    parsed = pythonic.parse(text)
    assert parsed.issues == [] and (parsed.calls[0].tool, dict(parsed.calls[0].args)) == (
        "obtener", {"monto_del_credito": 1000000.0, "año_vehiculo": 2024})
    assert text[parsed.calls[0].span[0]:parsed.calls[0].span[1]].endswith("año_vehiculo=2024)")
    rendered = pythonic.render_call(parsed.calls[0])
    assert [dict(c.args) for c in pythonic.parse(rendered).calls] == [dict(parsed.calls[0].args)]


def test_a_pythonic_keyword_is_kept_as_written() -> None:
    # Python's parser reads the ligature "ﬁle" as "file" (NFKC); a schema's name is matched as the model spelt it.
    for text in ("[f(ﬁle=1)]", "[f(ﬁle=1); g()]", "é [f(x='é', ﬁle=1)]"):
        assert dict(get_dialect("pythonic").parse(text).calls[0].args) == {"ﬁle": 1} | (
            {"x": "é"} if "x=" in text else {}), text


def test_llama3_json_a_call_shaped_object_in_the_data_of_a_call_being_written_is_not_run() -> None:
    # After prose or the python tag, a call-shaped object in the arguments of a call still being written was pending:
    # the loop ran `g` mid-argument, and once `batch` closed, a look from where it had gone on missed `batch` itself.
    llama = get_dialect("llama3_json")
    head = 'Sure. <|python_tag|>{"name": "batch", "parameters": {"calls": [{"name": "g", "parameters": {"x": 1}}'
    assert llama.pending(head) is None and llama.pending(head + "]}") is None
    reader_start = llama.pending_from(head, 0)[1]
    assert reader_start == head.index("<|python_tag|>")
    whole = head + "]}}"
    pending = llama.pending_from(whole, reader_start)[0]
    assert pending is not None and [c.tool for c in pending.calls] == ["batch"] and pending == llama.pending(whole)
    assert dict(pending.calls[0].args) == {"calls": [{"name": "g", "parameters": {"x": 1}}]}
    # A turn that ended with the call left open: `g` is still the data of `batch`, which never closed (the loop never
    # ran it either).
    assert llama.parse(head + "<|eot_id|>").calls == []


@pytest.mark.parametrize("text", [
    'Use the "{" key. {"name": "get_weather", "parameters": {"city": "Paris"}}',
    'Sets look like {1, 2. In C a block opens with {. {"name": "get_weather", "parameters": {"city": "Paris"}}'])
def test_llama3_json_a_brace_in_prose_that_opens_no_json_hides_no_call(text: str) -> None:
    """The first nesting rule counted every prose "{" and no prose "}": an unmatched one hid every later call."""
    llama = get_dialect("llama3_json")
    assert [c.tool for c in llama.parse(text).calls] == ["get_weather"]
    assert llama.pending(text) is not None


@pytest.mark.parametrize("text", [
    'Here is an example config: {"service": {"name": "prod", "parameters": {"replicas": 3}}, "region": "eu"} ok',
    '{"type": "function", "function": {"name": "get_current_traffic", "parameters": {"location": "Sydney"}}}',
    '{"type": "function", "function": {"name": "get_current_traffic", "parameters": {"location": "Sydney"}}'])
def test_llama3_json_a_call_shaped_object_inside_another_object_is_its_data(text: str) -> None:
    """Llama-3.2-Vision's reply (vllm#11786) and an example config in prose: at the inner object's "}" the loop saw a
    call, and ran it mid-object, where the whole reply parses to none."""
    llama = get_dialect("llama3_json")
    assert llama.parse(text).calls == []
    for i, c in enumerate(text):
        if c == "}":
            assert llama.pending(text[:i + 1]) is None, text[:i + 1]


def test_llama3_json_a_call_written_type_first_is_a_call_or_an_issue_like_one_written_name_first() -> None:
    """Meta's own examples of Llama 3.1/3.3 replies write `{"type": "function", "name": ...}`: after text, or cut off,
    it was no call and no issue, so a cut reply was shown as its JSON."""
    llama = get_dialect("llama3_json")
    for head in ('{"name": ', '{"type": "function", "name": '):
        assert [c.tool for c in llama.parse(head + '"f", "parameters": {"x": 1}}').calls] == ["f"]
        assert [c.tool for c in llama.parse("Sure. " + head + '"f", "parameters": {"x": 1}}').calls] == ["f"]
        followed = llama.parse(head + '"getOpenIncidentsTool", "parameters": {}} \n\nWould you like to know more?')
        assert followed.calls == [] and "unexpected character 'W'" in followed.issues[0].message
        cut = head + '"trending_songs", "parameters": {"n": "10", "genre": "al'
        assert llama.begins_call(cut) and llama.parse(cut).issues


def test_llama3_json_objects_left_open_in_prose_are_decoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each `{"name":` was decoded to the reply's end: 928 KB of `{"name": "a", "parameters": {` took 9.8 s."""
    from toolcall.dialects import llama3_json

    decoded: list[int] = []
    real = llama3_json._reply_calls
    monkeypatch.setattr(llama3_json, "_reply_calls",
                        lambda reply, pos, breaks=None: decoded.append(pos) or real(reply, pos, breaks))
    get_dialect("llama3_json").parse("Sure. " + '{"name": "a", "parameters": {"x": ' * 2_000 + "<|eot_id|>")
    assert len(decoded) <= 2
    # A run of calls broken by text at its end was decoded again from each of its calls (quadratic; 106 KB: 9 s).
    decoded.clear()
    get_dialect("llama3_json").parse("Hi " + '{"type": "function", "name": "a", "parameters": {}}; ' * 2_000 + "x")
    assert len(decoded) <= 2


def test_a_pythonic_tool_name_python_would_normalise_is_no_tool_name() -> None:
    # Python's reader took `ﬁle(` as `file(` once the list closed, while the grammar (ASCII tool names) read the list
    # as malformed while it was written: the loop's answer depended on where its look started.
    pythonic = get_dialect("pythonic")
    text = "[f(x=[1], y=[2]), ﬁle(a=[3]), file(a=[4])]"
    parsed = pythonic.parse(text)
    assert parsed.calls == [] and "unexpected 'ﬁle'" in parsed.issues[0].message
    stops = [text[:i + 1] for i, c in enumerate(text) if c == "]"]
    start = 0
    for stop in stops:
        got, start = pythonic.pending_from(stop, start)
        assert got == pythonic.pending(stop), stop


def test_hermes_a_call_drafted_in_the_thoughts_is_not_made() -> None:
    """Qwen3 drafts a call inside <think> and writes it again after </think>: both were read, and the loop ran the
    draft at its </tool_call> (QwenLM/Qwen3#1459: duplicate calls). A <think> left open runs to the end."""
    hermes = get_dialect("hermes")
    call = '<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>'
    text = f"<think>I could write {call} here.</think>\n\n{call}"
    assert [c.span[0] for c in hermes.parse(text).calls] == [text.rindex("<tool_call>")]
    draft_end = text.index("</tool_call>") + len("</tool_call>")
    assert hermes.pending(text[:draft_end]) is None and hermes.pending(text) is not None
    assert hermes.parse(f"<think>still thinking {call}").calls == []
    assert hermes.parse(f"<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>a {call}</think>{call}").calls
    # Only thoughts that open a reply: a `<think>` quoted in a result, an argument or prose is text (one in a web
    # page's text switched every later call off), and the loop's look from where it left off agrees at every stop.
    result = "\n<tool_response>\nQwen3 writes its reasoning in <think> tags.\n</tool_response>\n"
    quoted = '<tool_call>\n{"name": "a", "arguments": {"q": "<think>"}}\n</tool_call>'
    for text in (call + result + call, quoted + call, f"I wrote <think> in prose. {call}",
                 f"<think>\nI could call {call}\nor maybe {call}\n</think>\n\n{call}"):
        whole = hermes.parse(text).calls
        assert len(whole) == (1 if text.startswith(("<think>", "I wrote")) else 2), text
        start = 0
        for i in range(len(text)):
            if text.startswith("</tool_call>", i):
                stop = text[:i + len("</tool_call>")]
                got, start = hermes.pending_from(stop, start)
                assert got == hermes.pending(stop), stop
    # Streamed in chunks, a long thought's drafted call is still a thought's.
    long = "<think>" + "x" * 3000 + call + "</think>" + call
    for size in (1, 7, 37, 400):
        parser = IncrementalParser(hermes)
        for k in range(0, len(long), size):
            parser.feed(long[k:k + size])
        assert [c.span[0] for c in parser.finish().calls] == [long.rindex("<tool_call>")]
        assert [c.span[0] for c in parser.reported] == [long.rindex("<tool_call>")]
