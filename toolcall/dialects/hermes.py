"""The Hermes dialect (Hermes 2 Pro/3, Qwen2.5, Qwen3): `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`."""
from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from lark import Lark, Tree

from ..calls import SyntaxIssue, ToolCall
from ..errors import ConfigError
from .base import MAX_CALL_CHARS, GrammarBudget, load_parser, make_issue, rule

if TYPE_CHECKING:
    from ..specs import ToolSpec
from .structured import (
    Fault,
    Group,
    ResultBlock,
    Scan,
    StructuredDialect,
    Truncated,
    call_from_object,
    call_from_value,
    closing_bracket,
    decode_items,
    decode_json,
    dump_call_json,
    json_break,
    keyword_args,
    skip_space,
)

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
RESPONSE_OPEN = "<tool_response>"
RESPONSE_CLOSE = "</tool_response>"
#: A reasoning model's thoughts (Qwen3, QwQ): a call drafted in them is not made there; the model writes it again
#: after `</think>` (run at both places, it ran twice). Thoughts open a reply: a `<think>` first in the text or in an
#: assistant turn, up to the first `</think>` (a `<think>` never closed runs to the end). One anywhere else (quoted in
#: a tool's result, in an argument, in prose) is text, or a web page could switch every later call off.
_THOUGHTS_OPEN = re.compile(r"(?:\A|<\|im_start\|>assistant\n)[ \t\r\n]*(<think>)")
_ASSISTANT_TURN = "<|im_start|>assistant\n"
_LEADING_THINK = re.compile(r"[ \t\r\n]*<think>")


def _thoughts(text: str, start: int) -> list[tuple[int, int]]:
    """The spans of the thoughts that open a reply, from the turn `start` is in on, in order."""
    turn = text.rfind(_ASSISTANT_TURN, 0, start + 1)
    spans: list[tuple[int, int]] = []
    pos = max(turn, 0)
    while (m := _THOUGHTS_OPEN.search(text, pos)) is not None:
        close = text.find("</think>", m.end(1))
        spans.append((m.start(1), len(text) if close < 0 else close + len("</think>")))
        if close < 0:
            break
        pos = close
    return spans


# Text that more text may turn into a `<think>` first in a window: blanks, then a part of the tag (or nothing).
_THINK_TO_COME = re.compile(r"[ \t\r\n]*(?:<(?:t(?:h(?:i(?:n(?:k)?)?)?)?)?)?")


def _unambiguous(text: str, resume: int, floor: int) -> int:
    """`resume`, or a little before it (no earlier than `floor`, where the calls reported end), so that a window of the
    text from there reads thoughts as the whole text does, whatever text comes next.

    A window is read as a text of its own, so a `<think>` first in it opens thoughts there. Where the text seen so far
    ends with blanks or a part of `<think>` (`<t`), or nothing, after `resume`, the next window would start with the
    rest of that tag and read the calls after it as thoughts, though in the whole text the tag is prose (a `<think>`
    opens thoughts only first in the text or in an assistant turn); likewise a window starting inside a turn's header
    misses the thoughts the header opens. The window then starts at the header's "<", or at the last character
    before the blanks (the ">" that ends the last reported call, say), which no `<think>` can follow at a window's start.
    """
    lt = text.rfind("<", max(floor, resume - len(_ASSISTANT_TURN) + 1), resume)
    if lt >= 0 and _ASSISTANT_TURN.startswith(text[lt:lt + len(_ASSISTANT_TURN)]):
        resume = lt  # a turn's header (perhaps still being written) runs over `resume`: read it whole
    if resume == 0 or not _THINK_TO_COME.fullmatch(text, resume):
        return resume  # what comes next cannot make a `<think>` first in the window
    last = len(text[:resume].rstrip(" \t\r\n"))  # past the last character before the blanks
    if text.endswith(_ASSISTANT_TURN[:-1], 0, last) and text.startswith("\n", last):
        return resume  # right after a turn's header: a `<think>` there opens thoughts in the whole text too
    return max(floor - 1, last - 1, 0)


# End-of-turn tokens a reply decoded with its special tokens kept may end with, right after an unclosed call.
TURN_ENDS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>")


def _parser() -> Lark:
    return load_parser("hermes.lark", ("start",))


#: The closing tag as the format writes it, at the start of a line (after blanks).
_LINE_CLOSE = re.compile(r"\n[ \t]*" + re.escape(CALL_CLOSE))


def _swallowed_close(text: str, body: int, limit: int) -> tuple[int, int] | None:
    """Where a JSON string of the block whose JSON starts at `text[body]` opens, and where the closing tag ends that it
    runs over, when that tag starts a line (read up to `limit`: where the JSON ends, else where the block may); None
    when the JSON ends or breaks before the first such tag.

    Strings may hold raw line breaks and the tag itself as text (`"</tool_call> is text here"`), but a string still
    open at a closing tag that starts a line is the model closing its call with the quote forgotten
    (`{"expression": "1+1}}\\n</tool_call>`): read on, the loop saw no call at that tag and gave no error, and the
    model went on to write its own <tool_response>. The block ends at that tag, malformed, where the loop gives the
    model its error."""
    tag = _LINE_CLOSE.search(text, body, limit)
    if tag is None:
        return None
    where = json_break(text, body, tag.start())
    if isinstance(where, Fault) and where.message.startswith("unterminated string"):
        return where.pos, tag.end()
    return None


class HermesDialect(StructuredDialect):
    """Hermes-style calls: each call a JSON object in `<tool_call>` tags, parallel calls as blocks in a row.

    A result is a `<tool_response>` block (the format's own): `close` writes, for each call in order,
    `<tool_response>\\n{result}\\n</tool_response>` on lines of their own after the call, which is what the model's
    chat template writes for a `role: tool` message (Qwen puts it in a user turn; here it follows in the same
    reply). A `<tool_response>` answers the first unanswered call of the run of `<tool_call>` blocks before it.
    A JSON array of call objects inside one tag is read as several calls; a call object needs "name" and takes
    "arguments" (or "parameters"): a JSON object, or a string holding one. A last block whose JSON is whole but whose
    closing tag is missing (the model ended its reply there) is a call; one whose JSON is cut off is an issue.
    """

    name = "hermes"
    call_markers = (CALL_CLOSE,)
    reserved = (CALL_OPEN, CALL_CLOSE, RESPONSE_OPEN, RESPONSE_CLOSE, "<|im_start|>", "<|im_end|>", "<|endoftext|>")
    end_markers = ()
    open_marker = CALL_OPEN
    result_markers = (RESPONSE_OPEN,)
    # The call grammar ends a call with "}\n</tool_call>"; inside it a line break is JSON's blank, after which no "<"
    # may follow, and a JSON string holds no raw line break: the first "\n</tool_call>" is the call's end.
    held_call_end = "\n" + CALL_CLOSE
    # A block without its closing tag ends a reply that the loop never paused in, so no call ran: a <tool_response>
    # after it is the model's own invention, not the call's result.
    unanswered_styles = frozenset({"unclosed"})
    _forged_message = (f"a {RESPONSE_OPEN} after a {CALL_OPEN} block that was never closed with {CALL_CLOSE} answers "
                       "nothing (no call ran there)")

    def continues_calls(self, text: str) -> bool:
        rest = text.lstrip()
        return rest.startswith(CALL_OPEN) or CALL_OPEN.startswith(rest)

    def _groups(self, text: str, issues: list[SyntaxIssue], failed: list[tuple[int, int]],
                budget: GrammarBudget, start: int = 0) -> tuple[list[Group], bool]:
        parser = _parser()
        groups: list[Group] = []
        cut = False
        thoughts = _thoughts(text, start) if "<think>" in text else []
        ends = [b for _, b in thoughts]
        start = text.find(CALL_OPEN, start)
        while start >= 0:
            k = bisect.bisect_right(ends, start)
            if k < len(thoughts) and thoughts[k][0] < start:  # drafted in the thoughts: read on after them
                start = text.find(CALL_OPEN, thoughts[k][1])
                continue
            # A block is read no further than the next opening tag (or MAX_CALL_CHARS): hostile text with many
            # unclosed blocks is then read once, not once per block.
            following = text.find(CALL_OPEN, start + len(CALL_OPEN))
            end = min(len(text) if following < 0 else following, start + MAX_CALL_CHARS)
            made = self._block(parser, text, start, end, issues, failed, budget)
            region = len(text) if following < 0 else following
            if made is None and end < region and failed and failed[-1][0] == start:
                # Longer than the parser reads: malformed whatever it made of the start, the block ends at the closing
                # tag after its JSON closes (the loop then gives the model its error), or is still being written.
                close = closing_bracket(text, skip_space(text, start + len(CALL_OPEN)), region)
                tag = -1 if close is None else text.find(CALL_CLOSE, close, region)
                if tag >= 0:
                    failed[-1] = (start, max(failed[-1][1], tag + len(CALL_CLOSE)))
                elif region == len(text):
                    made = False
            cut = made is False
            stop = end
            if isinstance(made, tuple):
                group, stop = made
                if group is not None:
                    groups.append(group)
            start = following if following >= stop or following < 0 else text.find(CALL_OPEN, stop)
        return groups, cut

    def _block(self, parser: Lark, text: str, start: int, end: int, issues: list[SyntaxIssue],
               failed: list[tuple[int, int]], budget: GrammarBudget) -> tuple[Group | None, int] | None | bool:
        """The block at `start`: its group (None when its faults went to `issues`) and where it ends; None or False
        (cut off by the end of the text) as `_candidate` says."""
        body = skip_space(text, start + len(CALL_OPEN))
        decoded = decode_json(text, body, end)
        swallowed = _swallowed_close(text, body, decoded[1] if isinstance(decoded, tuple) else end)
        if swallowed is not None:
            quote, close = swallowed
            issues.append(make_issue(text, quote, f"a string not closed before the {CALL_CLOSE} that starts a line, "
                                                  "in a <tool_call> block"))
            failed.append((start, close))
            return None, close
        if isinstance(decoded, Truncated):
            if end < len(text):  # it runs into the next block: no need for the grammar to say so
                issues.append(self._unfinished(text, start, end, "a <tool_call> block"))
                failed.append((start, end))
                return None
            decoded = None  # cut off by the end of the text: the grammar says what was expected
        if isinstance(decoded, Fault):
            self._fault(text, start, decoded, issues, failed, end)
            return None
        chunk = None
        style = ""
        cheap: Fault | Truncated | None = None  # where the block breaks, when the grammar's budget is spent
        if decoded is not None:
            value, json_end = decoded
            after = skip_space(text, json_end)
            if text.startswith(CALL_CLOSE, after):
                stop = after + len(CALL_CLOSE)
            elif after == len(text) or text.startswith(TURN_ENDS, after):
                # The JSON is whole and only the closing tag is missing where the reply ends (the model stopped there,
                # or its end-of-turn token was kept): a call, as the format's other readers take it.
                stop, style = json_end, "unclosed"
                chunk = text[start:json_end] + CALL_CLOSE
            else:
                stop = -1  # something else follows the JSON: the grammar says what was expected
            call = call_from_value(value, (start, stop)) if stop >= 0 else None
            if call is not None:
                return Group((start, stop), [call], style), stop
            if stop >= 0 and isinstance(value, list) and value:  # parallel calls as one array: each item its own span
                items = decode_items(text, body, end)
                listed = [call_from_value(v, (s, e)) for v, s, e in items[0]] if isinstance(items, tuple) else []
                if listed and all(c is not None for c in listed):
                    return Group((start, stop), [c for c in listed if c is not None], style), stop
            cheap = (Fault(after, f"expected {CALL_CLOSE} after the call object") if stop < 0 else
                     Fault(body, 'no call object (one needs a "name" string and "arguments", a JSON object)'))

        def where() -> Fault | Truncated | None:
            return cheap if decoded is not None else json_break(text, body, end)

        got = self._candidate(parser, text, start, end, (CALL_CLOSE,), "a <tool_call> block", issues, failed, budget,
                              where, chunk)
        if not isinstance(got, tuple):
            return got
        tree, stop = got
        if style:
            stop -= len(CALL_CLOSE)
        payload = next(c for c in tree.children if isinstance(c, Tree))
        objects = [payload] if rule(payload) == "object" else [c for c in payload.children if isinstance(c, Tree)]
        calls: list[ToolCall] = []
        for obj in objects:
            if rule(obj) != "object":
                self._fault(text, start, Fault(start + obj.meta.start_pos, "a <tool_call> array holds call objects only"),
                            issues, failed, stop)
                continue
            span = (start, stop) if obj is payload else (start + obj.meta.start_pos, start + obj.meta.end_pos)
            made = call_from_object(obj, start, span)
            if isinstance(made, Fault):  # its siblings are still calls
                self._fault(text, start, made, issues, failed, stop)
            else:
                calls.append(made)
        if not calls and not objects:
            self._fault(text, start, Fault(start, "a <tool_call> block holds no call"), issues, failed, stop)
        return (Group((start, stop), calls, style) if calls else None), stop

    @staticmethod
    def _fault(text: str, start: int, fault: Fault, issues: list[SyntaxIssue], failed: list[tuple[int, int]],
               end: int) -> None:
        issues.append(make_issue(text, fault.pos, fault.message + " in a <tool_call> block"))
        close = text.find(CALL_CLOSE, fault.pos, end)
        failed.append((start, close + len(CALL_CLOSE) if close >= 0 else max(start + 1, min(end, fault.pos + 1))))

    def stream_scan(self, text: str) -> tuple[list[ToolCall], int, bool]:
        """As for every structured dialect, but a later parse never starts inside thoughts (IncrementalParser reads a
        window of the text from `resume` on, and a window that began inside them read the calls drafted there), nor
        where text still to come may make the window read thoughts the whole text does not (see `_unambiguous`)."""
        final, resume, open_call = super().stream_scan(text)
        if "<think>" in text:
            thoughts = _thoughts(text, 0)
            inside = next(((a, b) for a, b in thoughts if a < resume < b), None)
            if inside is not None:  # not inside thoughts: from their end once closed, else from their opener
                resume = inside[1] if inside[1] < len(text) else inside[0]
            else:
                # Nor right before a `<think>` that opens no thoughts here (in prose): the window would read it as one.
                m = _LEADING_THINK.match(text, resume)
                if m is not None and m.end() - len("<think>") not in {a for a, _ in thoughts}:
                    resume = m.end()
        return final, _unambiguous(text, resume, max((c.span[1] for c in final), default=0)), open_call

    def _resume(self, text: str, end: int, found: Scan, start: int) -> int:
        """As for every structured dialect, but never past the opener of thoughts still open at the end: a later look
        reads thoughts from the assistant turn `start` is in, and one that began after a turn header written inside
        the thoughts (`<think>x<|im_start|>assistant\\n</tool_call>`) did not see them, so it ran a call the model
        drafted in them, which a read of the whole text leaves out."""
        resume = super()._resume(text, end, found, start)
        if "<think>" in text:
            open_thoughts = [a for a, b in _thoughts(text, start) if b == len(text)]
            if open_thoughts:
                resume = min(resume, open_thoughts[0])
        return resume

    def _settled(self, text: str, found: Scan) -> int:
        """Up to the end of the last closed block (an unclosed one at the end may still get its closing tag)."""
        closed = [g for g in found.groups if g.style != "unclosed"]
        return closed[-1].span[1] if closed else 0

    def _result_blocks(self, text: str, start: int = 0) -> list[ResultBlock]:
        # str.find from where the last block ended: an opening tag whose closing tag never comes ends the search
        # (every later one has none either), so the search stays linear.
        blocks = []
        pos = start
        while (start := text.find(RESPONSE_OPEN, pos)) >= 0:
            body = start + len(RESPONSE_OPEN)
            close = text.find(RESPONSE_CLOSE, body)
            if close < 0:
                break
            # A closing tag closes the nearest opening tag before it: close() writes results with their markup broken,
            # so an earlier opener is one the model left unclosed, and pairing with it swallowed the calls after it
            # (and the result the loop wrote for them). rfind reads only the stretch find just read: still linear.
            start = max(start, text.rfind(RESPONSE_OPEN, body, close))
            body = start + len(RESPONSE_OPEN)
            end = close + len(RESPONSE_CLOSE)
            blocks.append(ResultBlock((start, end), (start, body), (body, close), text[body:close].strip()))
            pos = end
        return blocks

    def _render_group(self, calls: Sequence[ToolCall], style: str) -> str:
        return "\n".join(f"{CALL_OPEN}\n{dump_call_json({'name': c.tool, 'arguments': keyword_args(c, self.name)}, self.reserved)}"
                         f"\n{CALL_CLOSE}" for c in calls)

    def _render_results(self, calls: Sequence[ToolCall], results: Sequence[str]) -> str:
        return "".join(f"\n{RESPONSE_OPEN}\n{r}\n{RESPONSE_CLOSE}" for r in results) + "\n"

    def call_grammar(self, tools: Iterable["ToolSpec"], closers: Sequence[str] | None = None) -> str:
        """What follows `<tool_call>`: one call object of an offered tool, its arguments following the tool's JSON
        schema (llguidance's %json), then the closing tag."""
        closers = tuple(closers) if closers is not None else self.call_markers
        if closers != (CALL_CLOSE,):
            raise ConfigError(f"a hermes call closes with {CALL_CLOSE!r}, not {', '.join(closers)}")
        rules, names = [], []
        for number, spec in enumerate(tools):
            schema = _closed(spec.parameters)
            head = json.dumps('\n{"name": ' + json.dumps(spec.name) + ', "arguments": ')
            rules.append(f"call{number}: {head} args{number} " + json.dumps("}\n" + CALL_CLOSE))
            rules.append(f"args{number}: %json {json.dumps(schema)}")
            names.append(f"call{number}")
        if not names:
            raise ConfigError("a call grammar needs at least one tool")
        return "start: " + " | ".join(names) + "\n" + "\n".join(rules) + "\n"


def _closed(parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters' schema with no arguments besides its properties, where it lists them at its top and says
    nothing of others: so the model cannot invent one. A schema built from `$ref`, `allOf`, `anyOf` or `oneOf`, or
    one that sets additionalProperties itself, is left as it is (closed at the top, a `$ref`'s properties would all
    be refused)."""
    combined = any(k in parameters for k in ("$ref", "allOf", "anyOf", "oneOf", "additionalProperties"))
    if combined or not isinstance(parameters.get("properties"), dict):
        return parameters
    return {**parameters, "additionalProperties": False}
