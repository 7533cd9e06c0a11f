"""The MOSS (moss-003) dialect: `<|Commands|>: ...<eoc>` calls and their `<|Results|>: ...<eor>` block."""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput

from ..calls import Parsed, PendingCalls, SyntaxIssue, ToolCall
from ..errors import ConfigError
from ..specs import ToolSpec, ToolSpecs
from .base import (
    BARE_ARGUMENT,
    MAX_CALL_CHARS,
    Dialect,
    ResultSpan,
    apply_edits,
    args_from_tree,
    find_child,
    format_call,
    in_open_string,
    issue_from_error,
    line_column,
    load_parser,
    make_issue,
    paused_gc,
    raise_issue,
    rule,
    unquote,
    writable_name,
)
from .prompt_data import (
    ChatTemplate,
    PromptSource,
    builtin_key,
    first_line,
    read_data,
    read_json,
    read_override,
    shots,
    signature,
)

HUMAN_OPEN = "<|Human|>:"
THOUGHTS_OPEN = "<|Inner Thoughts|>:"
COMMANDS_OPEN = "<|Commands|>:"
RESULTS_OPEN = "<|Results|>:"
MOSS_OPEN = "<|MOSS|>:"
PLUGINS_FILE = "moss_plugins.json"
META_FILE = "moss_meta.txt"
_BLOCK = re.compile(r"<\|(Commands|Results)\|>:")
# Any field opener (`<|Human|>:`, `<|MOSS|>:`, ...) but not the numbered snippets `<|1|>:`.
_FIELD = re.compile(r"<\|[A-Za-z][A-Za-z ]*\|>:")
# A double-quoted string on one line, closed (group "close") or not. Possessive: with backtracking, the regex kept ~120
# bytes of state per character of a long string. A string that does not close is matched too, to its line's end: left
# to fail, the search tried again from each quote after it on the line (each one escaped, so each fails as well), which
# made a line of `\"` quadratic (40,000 characters took 10 s).
_QUOTED = re.compile(r'"(?:[^"\\\n]++|\\.)*+(?P<close>")?')
_SNIPPET_VALUE = re.compile(r"\s*<\|\d+\|>:[ \t]?(.*)", re.S)


# The common shapes of the two fields, exactly as grammars/moss.lark reads them: calls with at most one argument (a
# quoted string or common.lark's BARE text), and results written inline after "=>" (not `No result.`, no snippets).
# Anything else goes to the grammar.
_CALL_SHAPE = (r"[A-Za-z_][A-Za-z0-9_]*\([ \t]*(?:(?:\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*')[ \t]*"
               rf"|{BARE_ARGUMENT})?\)")
_ONE_CALL = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)\([ \t]*(?:(?P<quoted>\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*')"
                       rf"[ \t]*|(?P<bare>{BARE_ARGUMENT}))?\)")
_FAST_COMMANDS = re.compile(rf"(?:<\|Commands\|>:)?\s*(?P<calls>{_CALL_SHAPE}(?:[ \t]*,[ \t]*{_CALL_SHAPE})*)\s*<eoc>")
# The inline value is possessive (`*+`): backtracking over a long line's spaces was quadratic (100 KB took 31 s).
_ENTRY = rf"{_CALL_SHAPE}[ \t]*=>[ \t]*[^\s](?:(?!<eor>)[^\n])*+"
_FAST_RESULTS = re.compile(rf"<\|Results\|>:\s*(?P<entries>{_ENTRY}(?:[ \t]*\n\s*{_ENTRY})*)(?P<end>\s*<eor>)")
_FAST_ENTRY = re.compile(rf"(?P<call>{_CALL_SHAPE})[ \t]*=>[ \t]*(?P<inline>[^\s](?:(?!<eor>)[^\n])*+)")


def _fast_calls(text: str, start: int, end: int) -> list[ToolCall]:
    calls = []
    for m in _ONE_CALL.finditer(text, start, end):
        quoted, bare = m.group("quoted"), m.group("bare")
        args = (unquote(quoted),) if quoted is not None else (bare.strip(),) if bare is not None else ()
        calls.append(ToolCall(m.group("name"), args, None, m.span()))
    return calls


def _fast_field(text: str, start: int, limit: int,
                kind: str) -> tuple[int, int, list[ToolCall], list[str | None]] | None:
    """A field in its common shape: its end, where its body ends, its calls and (Results) their outcomes; else None."""
    if kind.startswith("Commands"):
        m = _FAST_COMMANDS.match(text, start, limit)
        if m is None or (kind == "Commands") != text.startswith(COMMANDS_OPEN, start):
            return None
        return m.end(), m.end() - len("<eoc>"), _fast_calls(text, *m.span("calls")), []
    m = _FAST_RESULTS.match(text, start, limit)
    if m is None:
        return None
    calls: list[ToolCall] = []
    outcomes: list[str | None] = []
    for entry in _FAST_ENTRY.finditer(text, *m.span("entries")):
        inline = entry.group("inline")
        if inline.startswith("No result.") and not inline[len("No result."):].strip():
            return None  # the grammar's NO_RESULT, not an inline value
        calls += _fast_calls(text, *entry.span("call"))
        outcomes.append(_strip_quotes(inline, "'"))
    return m.end(), m.start("end"), calls, outcomes


def _parser() -> Lark:
    return load_parser("moss.lark", ("commands", "commands_tail", "results"))


def _strip_quotes(value: str, quote: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == quote and value[-1] == quote:
        return value[1:-1]
    return value


def _commands_chunk(text: str, masked: str, start: int, limit: int) -> str | SyntaxIssue:
    """The text the Commands field at `text[start]` is read from: up to `limit`, and no more than MAX_CALL_CHARS
    characters; or the issue of a field whose <eoc> lies further (Lark's reading of a megabyte-long argument took 150
    bytes of memory per character). A field with no <eoc> at all is read up to the cap, so the grammar says where it
    breaks. `masked` is the text with its quoted strings blanked."""
    end = min(limit, start + MAX_CALL_CHARS)
    if end < limit and masked.find("<eoc>", start, end) < 0 and masked.find("<eoc>", end, limit) >= 0:
        line, column = line_column(text, start)
        return make_issue(text, end, f"a MOSS Commands field starting at line {line}, column {column} is longer than "
                                     f"{MAX_CALL_CHARS} characters")
    return text[start:end]


def _unanswered_issue(text: str, start: int) -> SyntaxIssue:
    """The issue of a Results field that answers no Commands field."""
    line, column = line_column(text, start)
    return make_issue(text, start, f"a MOSS Results field at line {line}, column {column} answers no Commands field: "
                                   "results belong to the calls a Commands field made, so its entries are not calls")


def _closer(tree: Tree) -> Token:
    """A field's `<eoc>` / `<eor>` token (`<eor>` with the whitespace before it) in the parsed chunk."""
    for child in tree.children:
        if isinstance(child, Token) and child.type in ("EOC", "END_RESULTS"):
            return child
    raise AssertionError("the grammar ends every field with its closer")


@dataclass
class _Round:
    """One Commands block and the Results block that answers it (either may be missing)."""

    commands: tuple[int, int] | None = None
    results: tuple[int, int] | None = None
    results_body: tuple[int, int] | None = None  # between the Results opener and the whitespace before <eor>
    calls: list[ToolCall] = field(default_factory=list)


def render_commands(calls: Sequence[ToolCall]) -> str:
    """The body of a Commands field: `None`, or the calls separated by ", " with double-quoted arguments."""
    return ", ".join(format_call(c, always_quote=True) for c in calls) if calls else "None"


def _render_outcome(call: ToolCall, result: str | None) -> str:
    head = f"{format_call(call, always_quote=True)} =>"
    if result is None or not result.strip():
        return f"{head} No result."
    lines = [line.strip() for line in result.splitlines() if line.strip()]
    if len(lines) > 1:
        return head + "".join(f'\n<|{i}|>: "{line}"' for i, line in enumerate(lines, 1))
    return f"{head} '{lines[0]}'"


def render_results(calls: Sequence[ToolCall], results: Sequence[str | None]) -> str:
    """The body of a Results field in MOSS's layout, one entry per call.

    `Search("a") =>` then `<|1|>: "snippet"` lines for a multi-line result (a list of snippets, one per line);
    `Calculate("10^16") => '10000000000000000'` for a one-line result; `Tool(...) => No result.` for an empty
    or missing one; `None` when there are no calls.
    """
    if len(calls) != len(results):
        raise ConfigError(f"render_results needs one result per call: {len(calls)} calls, {len(results)} results")
    if not calls:
        return "None"
    return "\n".join(_render_outcome(c, r) for c, r in zip(calls, results))


class MossDialect(Dialect):
    """MOSS plugin turns (moss-003): the model writes Inner Thoughts and Commands, the program writes Results,
    then the model answers in the MOSS field."""

    name = "moss"
    history_roles = ("user", "assistant")   # MOSS's turns: <|Human|> and <|MOSS|>
    call_markers = ("<eoc>",)
    end_markers = ("<eom>",)
    open_marker = COMMANDS_OPEN
    result_markers = (RESULTS_OPEN,)
    answer_opener = MOSS_OPEN
    thoughts_opener = THOUGHTS_OPEN
    thoughts_end = "<eot>"
    reserved = (HUMAN_OPEN, THOUGHTS_OPEN, COMMANDS_OPEN, RESULTS_OPEN, MOSS_OPEN, "<eoh>", "<eot>", "<eoc>", "<eor>",
                "<eom>")

    # -- parsing -------------------------------------------------------------------------------
    @staticmethod
    def _mask_quotes(text: str) -> str:
        """`text` with the inside of one-line double-quoted strings blanked, so markers in arguments are not fields."""
        return _QUOTED.sub(lambda m: '"' + " " * (len(m.group()) - 2) + '"' if m.group("close") else m.group(), text)

    @staticmethod
    def _field_limit(text: str, start: int) -> int:
        """Where the text a field may span ends: at the next field opener, trailing whitespace excluded."""
        nxt = _FIELD.search(text, start + 1)
        limit = nxt.start() if nxt else len(text)
        while limit > start and text[limit - 1].isspace():  # report a missing closer where the line ends
            limit -= 1
        return limit

    def _rounds(self, text: str, issues: list[SyntaxIssue], strict: bool) -> list[_Round]:
        parser = _parser()
        rounds: list[_Round] = []
        awaiting: _Round | None = None  # the round whose Commands field still waits for its Results
        masked = self._mask_quotes(text)
        blocks = [(m.start(), m.group(1)) for m in _BLOCK.finditer(masked)]
        first_field = _FIELD.search(masked)
        first_eoc = masked.find("<eoc>")
        if first_eoc >= 0 and (first_field is None or first_eoc < first_field.start()):
            blocks.insert(0, (0, "Commands_tail"))  # the text starts inside a Commands field
        for start, kind in blocks:
            limit = self._field_limit(masked, start)
            chunk_or_issue = _commands_chunk(text, masked, start, limit) if kind.startswith("Commands") else None
            if isinstance(chunk_or_issue, SyntaxIssue):
                if strict:
                    raise_issue(chunk_or_issue)
                issues.append(chunk_or_issue)
                awaiting = None
                continue
            if chunk_or_issue is not None:
                limit = start + len(chunk_or_issue)
            fast = _fast_field(text, start, limit, kind)
            if fast is not None:  # the common shape, read without the parser (tests check both agree)
                end, body_end, calls, answers = fast
                if kind.startswith("Commands"):
                    awaiting = _Round(commands=(start, end), calls=calls)
                    rounds.append(awaiting)
                    continue
                answered = awaiting if awaiting is not None else self._unanswered(text, rounds, issues, strict, start)
                answered.results, answered.results_body = (start, end), (start + len(RESULTS_OPEN), body_end)
                answers += [None] * (len(answered.calls) - len(answers))
                answered.calls = [c.with_result(r) for c, r in zip(answered.calls, answers)]
                awaiting = None
                continue
            chunk = text[start:limit]
            try:
                tree = parser.parse(chunk, start=kind.lower())
            except UnexpectedInput as err:
                issue = issue_from_error(err, parser, text, start, len(chunk), f"a MOSS {kind.split('_')[0]} field")
                if strict:
                    raise_issue(issue)
                issues.append(issue)
                awaiting = None  # Results after a broken Commands field name their own calls
                continue
            end = start + (_closer(tree).end_pos or 0)
            if kind.startswith("Commands"):
                awaiting = _Round(commands=(start, end), calls=self._commands(tree, chunk, start))
                rounds.append(awaiting)
                continue
            entries, blanket = self._results(tree, chunk, start)
            current = awaiting if awaiting is not None else self._unanswered(text, rounds, issues, strict, start)
            current.results = (start, end)
            current.results_body = (start + len(RESULTS_OPEN), start + (_closer(tree).start_pos or 0))
            # Results pair with the commands by position; a blanket `No result.` answers them all.
            outcomes: list[str | None] = [blanket] * len(current.calls) if blanket is not None else [r for _, r in entries]
            outcomes += [None] * (len(current.calls) - len(outcomes))
            current.calls = [c.with_result(r) for c, r in zip(current.calls, outcomes)]
            awaiting = None
        return rounds

    @staticmethod
    def _unanswered(text: str, rounds: list[_Round], issues: list[SyntaxIssue], strict: bool, start: int) -> _Round:
        """The round of a Results field with no Commands field before it to answer (none, or one already answered, or
        a broken one): no calls, and an issue. Its entries name calls, but only the program writes results, after the
        calls a Commands field made: read as calls, they showed results no tool gave (a model that wrote
        `<|Results|>:` itself forged them). Its span is kept: training still leaves its body out of the loss."""
        issue = _unanswered_issue(text, start)
        if strict:
            raise_issue(issue)
        issues.append(issue)
        rounds.append(_Round())
        return rounds[-1]

    @staticmethod
    def _call(tree: Tree, chunk: str, offset: int) -> ToolCall:
        args = args_from_tree(tree.children[1], chunk)
        return ToolCall(str(tree.children[0]), args, None, (offset + tree.meta.start_pos, offset + tree.meta.end_pos))

    def _commands(self, tree: Tree, chunk: str, offset: int) -> list[ToolCall]:
        call_list = find_child(tree, "call_list")
        if call_list is None:
            return []  # None
        return [self._call(c, chunk, offset) for c in call_list.children if isinstance(c, Tree)]

    def _results(self, tree: Tree, chunk: str, offset: int) -> tuple[list[tuple[ToolCall, str]], str | None]:
        """The (call, result) entries of a Results tree, and a result for every call (`No result.`) if any."""
        entries: list[tuple[ToolCall, str]] = []
        for child in tree.children:
            if isinstance(child, Token) and child.type == "NO_RESULT":
                return [], ""
            if not isinstance(child, Tree) or rule(child) != "entry":
                continue
            call_tree = find_child(child, "call")
            assert call_tree is not None
            entries.append((self._call(call_tree, chunk, offset), self._outcome(child)))
        return entries, None

    @staticmethod
    def _outcome(entry: Tree) -> str:
        last = entry.children[-1]
        if isinstance(last, Token) and last.type == "INLINE":
            return _strip_quotes(str(last), "'")
        if isinstance(last, Tree) and rule(last) in ("outcome", "snippet"):
            snippets = [last] if rule(last) == "snippet" else last.children
            values = []
            for snippet in snippets:
                m = _SNIPPET_VALUE.match(str(snippet.children[0]))
                values.append(_strip_quotes(m.group(1) if m else "", '"'))
            return "\n".join(values)
        return ""  # No result., or nothing after =>

    def parse(self, text: str, strict: bool = False) -> Parsed:
        issues: list[SyntaxIssue] = []
        with paused_gc(len(text)):
            calls = [c for r in self._rounds(text, issues, strict) for c in r.calls]
        return Parsed(text, calls, self.name, issues, tuple(calls))

    # -- rendering -----------------------------------------------------------------------------
    def render_call(self, call: ToolCall) -> str:
        writable_name(call.tool, self.name)
        return format_call(call, always_quote=True)

    def render(self, parsed: Parsed) -> str:
        """Rounds whose calls are unchanged stay verbatim; a changed round gets both fields re-rendered."""
        text = parsed.text
        rounds = self._rounds(text, [], False)
        mine: list[list[ToolCall]] = [[] for _ in rounds]
        for call in parsed.calls:
            for i, rnd in enumerate(rounds):
                home = rnd.commands or rnd.results
                if home and home[0] <= call.span[0] < home[1]:
                    mine[i].append(call)
                    break
            else:
                raise ConfigError(f"cannot render MOSS call {call.tool!r}: its span {call.span} lies in no "
                                  f"{COMMANDS_OPEN} or {RESULTS_OPEN} field of the text")
        edits: list[tuple[int, int, str]] = []
        for rnd, calls in zip(rounds, mine):
            if calls == rnd.calls:
                continue
            if rnd.commands:
                opener = f"{COMMANDS_OPEN} " if text.startswith(COMMANDS_OPEN, rnd.commands[0]) else " "
                edits.append((*rnd.commands, f"{opener}{render_commands(calls)}<eoc>"))
            body = render_results(calls, [c.result for c in calls])
            if rnd.results:
                edits.append((*rnd.results, f"{RESULTS_OPEN}\n{body}\n<eor>"))
            elif rnd.commands and any(c.result is not None for c in calls):
                end = rnd.commands[1]
                edits.append((end, end, f"\n{RESULTS_OPEN}\n{body}\n<eor>"))
        return apply_edits(text, edits)

    def result_spans(self, text: str) -> list[ResultSpan]:
        """The `<|Results|>:` opener of each Results field that parses, and after it what `close` writes: the body,
        `<eor>`, and the `<|MOSS|>:` opener that follows it. The opener stays in the loss (decoding freely, a model
        says with it that its commands are done, and MOSS's own training learns it); the `<eor>` and `<|MOSS|>:` the
        loop writes were learned too, before."""
        spans = []
        after = "\n" + MOSS_OPEN   # what close writes after <eor>
        for rnd in self._rounds(text, [], False):
            if rnd.results is not None and rnd.results_body is not None:
                opener = (rnd.results[0], rnd.results[0] + len(RESULTS_OPEN))
                end = rnd.results[1] + (len(after) if text.startswith(after, rnd.results[1]) else 0)
                spans.append((opener, (rnd.results_body[0], end)))
        return spans

    # -- the decoding loop ---------------------------------------------------------------------
    def pending(self, text: str) -> PendingCalls | None:
        """The calls of the last Commands field, when `text` ends with its `<eoc>` (none for `None<eoc>`)."""
        body = text.rstrip()
        if not body.endswith("<eoc>"):
            return None
        masked = self._mask_quotes(body)
        start = masked.rfind(COMMANDS_OPEN)
        kind = "commands"
        if start < 0:
            if _FIELD.search(masked):
                return None  # an <eoc> inside another field is no call
            start, kind = 0, "commands_tail"  # the text starts inside the Commands field
        parser = _parser()
        chunk = _commands_chunk(body, masked, start, len(body))
        if isinstance(chunk, SyntaxIssue):
            return PendingCalls((), (chunk,))
        try:
            tree = parser.parse(chunk, start=kind)
        except UnexpectedInput as err:
            if len(chunk) == len(body) - start and in_open_string(err, body, start):
                return None  # the <eoc> is part of a quoted argument: the field is still being written
            return PendingCalls((), (issue_from_error(err, parser, body, start, len(chunk), "a MOSS Commands field"),))
        if start + (_closer(tree).end_pos or 0) != len(body):
            return None  # the last Commands field closed earlier: the final <eoc> is not its closer
        limit = self._field_limit(masked, start)
        if limit < len(body):
            # A field opener in an unquoted argument (`Search(<|MOSS|>:)`) ends the field there, as parse reads it: the
            # call ran, and parse then found no call for its result.
            try:
                parser.parse(body[start:limit], start=kind)
            except UnexpectedInput as err:
                return PendingCalls((), (issue_from_error(err, parser, body, start, limit - start,
                                                          "a MOSS Commands field"),))
        return PendingCalls(tuple(self._commands(tree, chunk, start)))

    def write_calls(self, calls: Sequence[ToolCall]) -> str:
        """The Commands field holding these calls, through its `<eoc>`."""
        return f"{COMMANDS_OPEN} {', '.join(self.render_call(c.with_result(None)) for c in calls)}<eoc>"

    def close(self, pending: PendingCalls, results: Sequence[str]) -> str:
        """The Results field (`None` when there were no calls, the error text for a malformed Commands field),
        then the opener of the MOSS field for the answer."""
        if pending.malformed:
            if len(results) != 1:
                raise ConfigError(f"a malformed MOSS Commands field takes one error text, got {len(results)}")
            body = self.defuse_result(str(results[0])).strip()
        else:
            body = render_results(pending.calls, [self.defuse_result(str(r)) for r in results])
        return f"\n{RESULTS_OPEN}\n{body}\n<eor>\n{MOSS_OPEN}"

    # -- turns, prompts and replies ------------------------------------------------------------
    def render_turn(self, human: str, thoughts: str, calls: Sequence[ToolCall], reply: str) -> dict[str, str]:
        """One plugin turn as the moss-003 SFT data stores it: field name -> text; joined, it parses back to `calls`.

        Each call carries its result (None writes `No result.`); no calls writes `None` in both fields.
        """
        results = render_results(calls, [None if c.result is None else self.defuse_result(c.result) for c in calls])
        return {
            "Human": f"{HUMAN_OPEN} {human}<eoh>\n",
            "Inner Thoughts": f"{THOUGHTS_OPEN} {thoughts}<eot>\n",
            "Commands": f"{COMMANDS_OPEN} {render_commands(calls)}<eoc>\n",
            "Tool Responses": f"{RESULTS_OPEN}\n{results}\n<eor>\n",
            "MOSS": f"{MOSS_OPEN} {reply}<eom>\n",
        }

    @staticmethod
    def _plugin_key(names: Sequence[str]) -> str | None:
        """The plugin a tool serves, by its name or alias, or the plugin's API name (Calculate is the Calculator)."""
        plugins = read_json(PLUGINS_FILE)["plugins"]
        key = builtin_key(names, plugins)
        if key is None:
            by_api = {info["api"].split("(")[0]: k for k, info in plugins.items()}
            api = builtin_key(names, by_api)
            key = by_api[api] if api is not None else None
        return key

    def api_name(self, tool: str) -> str:
        """The name MOSS's own data uses for a toolcall tool (Calculator -> Calculate, WikiSearch -> Search)."""
        data = read_json(PLUGINS_FILE)
        renamed = builtin_key((tool,), data["api_names"])
        if renamed is not None:
            return str(data["api_names"][renamed])
        key = self._plugin_key((tool,))
        return str(data["plugins"][key]["api"].split("(")[0]) if key is not None else tool

    def meta_instruction(self, tools: Iterable[ToolSpec | str] | None = None, path: PromptSource = None) -> str:
        """MOSS's meta-instruction with one line per plugin: enabled ones with their API, the rest disabled.

        A tool the plugin list lacks gets an enable line of its own: `- name: enabled. API: name(params) -
        description` (a bare name, as an export has, gets `- name: enabled.`).
        `path` is a file replacing the meta-instruction; `{plugins}` in it is replaced by the lines.
        """
        plugins: dict[str, dict[str, str]] = read_json(PLUGINS_FILE)["plugins"]
        enabled: set[str] = set()
        custom: list[str] = []
        for t in tools or ():
            names = (t,) if isinstance(t, str) else (t.name, *t.aliases)
            key = self._plugin_key(names)
            if key is not None:
                enabled.add(key)
            elif isinstance(t, str):
                custom.append(f"- {t}: enabled.")
            else:
                description = first_line(t.description)
                custom.append(f"- {t.name}: enabled. API: {signature(t)}" + (f" - {description}" if description else ""))
        lines = [f"- {info['label']}: " + (f"enabled. API: {info['api']}" if key in enabled else "disabled.")
                 for key, info in plugins.items()]
        template = read_override(path) or read_data(META_FILE)
        return template.replace("{plugins}", "\n".join(lines + custom)).rstrip("\n") + "\n"

    def example_turns(self, tools: Iterable[ToolSpec], few_shot: int | bool = True) -> str:
        """Worked turns, one per enabled built-in plugin that has an example (the first K when few_shot is K)."""
        examples = read_json(PLUGINS_FILE)["examples"]
        turns = []
        for t in tools:
            key = builtin_key((t.name, *t.aliases), examples)
            if key is None:
                continue
            ex = examples[key]
            call = ToolCall(ex["tool"], tuple(ex["args"]), ex["result"])
            turns.append("".join(self.render_turn(ex["human"], ex["thoughts"], [call], ex["reply"]).values()))
        return "".join(turns[:shots(few_shot, len(turns))])

    def prompt(self, question: str, tools: ToolSpecs | None, chat: ChatTemplate,
               history: Sequence[Mapping[str, str]] | None = None, few_shot: int | bool = True,
               instruction: PromptSource = None) -> str:
        """Meta-instruction, worked turns, earlier turns, then `<|Human|>: question<eoh>` and the model's first field.

        MOSS has its own turn layout, so the model's chat template (`chat`) is not used.
        """
        parts = [self.meta_instruction(tools, instruction)]
        if tools is not None:
            parts.append(self.example_turns(tools, few_shot))
        for message in history or []:
            if message["role"] == "user":
                parts.append(f"{HUMAN_OPEN} {message['content']}<eoh>\n")
            elif message["role"] == "assistant":
                content = message["content"]
                if self.thoughts_end in content or COMMANDS_OPEN in content:
                    # A whole reply written back with its calls (the server's history): it opens with its thoughts
                    # field, as the worked turns do; only an answer alone goes after MOSS's opener.
                    parts.append(f"{THOUGHTS_OPEN}{'' if content.startswith(' ') else ' '}{content}<eom>\n")
                else:
                    parts.append(f"{MOSS_OPEN} {content}<eom>\n")
        parts.append(f"{HUMAN_OPEN} {question}<eoh>\n{THOUGHTS_OPEN}")
        return "".join(parts)

    def _answer_part(self, generated: str) -> str:
        """The last MOSS field: the answer after the thoughts, commands and results."""
        at = generated.rfind(self.answer_opener)
        body = generated[at + len(self.answer_opener):] if at >= 0 else generated
        return body.replace("<eom>", "").strip()
