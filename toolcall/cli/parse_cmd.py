"""`toolcall parse`: print the calls in a text as JSON lines, malformed spans on stderr."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..calls import Parsed, SyntaxIssue, args_json
from ..dialects import dialects, get_dialect
from ..errors import ConfigError, DialectSyntaxError
from ..jsonl import utf8_text
from ..terminal import escaped_controls, printable


def call_lines(parsed: Parsed) -> list[str]:
    """One JSON object per call: tool, args (a list of positional values, or an object of keyword ones), result,
    start, end. Text stays unescaped, except what a terminal would act on (escaped as \\u, still the same JSON) and
    a line holding half of a surrogate pair (a Python `\\ud800` escape), which no UTF-8 output can carry: that line is
    written with \\u escapes."""
    out = []
    for c in parsed.calls:
        record = {"tool": c.tool, "args": args_json(c.args), "result": c.result, "start": c.span[0], "end": c.span[1]}
        line = json.dumps(record, ensure_ascii=False)
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            line = json.dumps(record)
        out.append(escaped_controls(line))
    return out


def issue_line(source: str, issue: SyntaxIssue | DialectSyntaxError) -> str:
    """`FILE:line:column: message (expected ...)`, the shape compilers and editors understand."""
    want = f" (expected {', '.join(issue.expected)})" if issue.expected else ""
    return printable(f"{source}:{issue.line}:{issue.column}: {issue.message}{want}")


def _read(path: str) -> tuple[str, str]:
    """The text as its bytes say, newlines untranslated, so spans index the file as it is (a CRLF file's spans were
    off by one a line read from a file, and right read from stdin)."""
    if path == "-":
        if sys.stdin is None:
            raise ConfigError("no standard input to read (it is closed): give a FILE")
        if getattr(sys.stdin, "buffer", None) is None:  # a text stream put in its place (an embedding program, tests)
            return "<stdin>", sys.stdin.read()
        source, data = "<stdin>", sys.stdin.buffer.read()
    else:
        try:
            source, data = path, Path(path).read_bytes()
        except OSError as err:
            raise ConfigError(f"cannot read {path!r}: {err.strerror or err}") from err
    return source, utf8_text(data, source)   # stdin's bytes that were not UTF-8 came through as surrogates


def run(args: argparse.Namespace) -> int:
    source, text = _read(args.file)
    dialect = get_dialect(args.dialect)
    try:
        parsed = dialect.parse(text, strict=args.strict)
    except DialectSyntaxError as err:
        print(issue_line(source, err), file=sys.stderr)
        return 1
    for issue in parsed.issues:
        print(issue_line(source, issue), file=sys.stderr)
    out = call_lines(parsed)
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "parse", help="list the tool calls in a text as JSON lines",
        description="Print one JSON object per call ({tool, args, result, start, end}); malformed call-like "
                    "spans go to stderr as FILE:line:column: message. Exit 0 unless --strict finds one (exit 1).",
    )
    parser.add_argument("--dialect", choices=dialects.names(), default="toolformer", help="call syntax (default: toolformer)")
    parser.add_argument("--strict", action="store_true", help="stop at the first malformed call and exit 1")
    parser.add_argument("file", nargs="?", default="-", metavar="FILE", help="text to read; '-' or nothing reads stdin")
    parser.set_defaults(func=run)
