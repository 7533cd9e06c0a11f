"""`toolcall parse`: print the calls in a text as JSON lines, malformed spans on stderr."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..calls import Parsed, SyntaxIssue, args_json
from ..dialects import dialects, get_dialect
from ..errors import ConfigError, DialectSyntaxError


def call_lines(parsed: Parsed) -> list[str]:
    """One JSON object per call: tool, args (a list of positional values, or an object of keyword ones), result,
    start, end. Text stays unescaped, except a line holding half of a surrogate pair (a Python `\\ud800` escape),
    which no UTF-8 output can carry: that line is written with \\u escapes."""
    out = []
    for c in parsed.calls:
        record = {"tool": c.tool, "args": args_json(c.args), "result": c.result, "start": c.span[0], "end": c.span[1]}
        line = json.dumps(record, ensure_ascii=False)
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            line = json.dumps(record)
        out.append(line)
    return out


def issue_line(source: str, issue: SyntaxIssue | DialectSyntaxError) -> str:
    """`FILE:line:column: message (expected ...)`, the shape compilers and editors understand."""
    want = f" (expected {', '.join(issue.expected)})" if issue.expected else ""
    return f"{source}:{issue.line}:{issue.column}: {issue.message}{want}"


def _read(path: str) -> tuple[str, str]:
    if path == "-":
        try:
            return "<stdin>", sys.stdin.read()
        except UnicodeDecodeError as err:
            raise ConfigError(f"cannot read standard input as UTF-8 text: {err}") from err
    try:
        return path, Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {path!r}: {err}") from err


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
