"""The `toolcall` command line: one sub-command module each, wired here."""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ..errors import ToolcallError
from ..terminal import plain_warnings, printable, printable_logs

# Each module defines `register(subparsers)`, which adds its parser and sets `func=run(args) -> int`.
COMMAND_MODULES = ("parse_cmd", "tools_cmd", "generate_cmd", "chat_cmd", "datagen_cmd", "eval_cmd", "train_cmd", "serve_cmd",
                   "mcp_serve_cmd")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toolcall", description="Language models that use tools, Toolformer and MOSS style.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "tool" and extra[0] == "--":
        args.args += extra[1:]  # `toolcall tool NAME --timeout 3 -- -x`: all after "--" are the tool's
    elif extra and args.command == "tool" and not any(e.startswith("-") and not _number(e) for e in extra):
        args.args += extra  # words after an option (`toolcall tool Sleep --timeout 2 5`) are the tool's too
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except ToolcallError as err:
        # The message may quote what an MCP server or a tool sent (its error text, its protocol version).
        print(f"toolcall {args.command}: error: {printable(str(err))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def entry() -> int:
    """The `toolcall` command as a process runs it: log lines (an MCP SDK's, quoting what a server sent) print their
    control characters visibly too (see toolcall.terminal.printable_logs), then `main`, then the calls still running
    are abandoned."""
    from ..executor import abandon_calls

    printable_logs()
    plain_warnings()
    try:
        return main()
    finally:
        # The process ends now: threads still waiting on tools (a thread pool's, which the exit joins) stop waiting,
        # so Ctrl-C does not wait out each running call's time limit.
        abandon_calls()


if __name__ == "__main__":
    sys.exit(entry())
