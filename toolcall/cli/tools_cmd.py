"""`toolcall tools` lists the registered tools; `toolcall tool NAME ARG...` runs one through the registry."""
from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from ..binding import json_kinds, parameter_order, resolve
from ..errors import ConfigError, ToolError
from ..executor import check_timeout
from ..registry import Tool, ToolRegistry
from ..terminal import escaped_controls, printable, stdout_to_stderr
from .tool_options import add_tool_options, toolset_from_args


def register(subparsers: Any) -> None:
    listing = subparsers.add_parser("tools", help="list the available tools with their descriptions and schemas",
                                    description="List built-in, entry-point and @tool tools.")
    listing.add_argument("--json", action="store_true", help="print a JSON list (name, aliases, timeout, schema, ...)")
    add_tool_options(listing, default="all", sources_replace_default=False)
    listing.set_defaults(func=run_list)

    single = subparsers.add_parser("tool", help="run one tool on arguments and print its result",
                                   description="Run a tool through the registry (argument coercion, time limit) and print its result. "
                                               "Exit status 1 with the error on stderr when the call fails.")
    single.add_argument("name", help="tool name or alias (any case), e.g. Calculator")
    single.add_argument("args", nargs="*", metavar="ARG",
                        help="arguments as text, in the tool's order (required ones first), or NAME=VALUE for its "
                             "parameter NAME, e.g. '400 / 1400' or expression='400 / 1400'; words past the last "
                             "parameter join it with spaces when it is a string")
    single.add_argument("--timeout", type=float, default=None, help="seconds before the call is abandoned (default: the tool's own)")
    # An argument that starts with a minus and then a digit, "." or "(" is a value ("-5+3", "-(2*3)"), not an unknown
    # option: argparse takes only a plain negative number ("-5") for one, and refused the rest.
    single._negative_number_matcher = re.compile(r"^-[\d.(]")
    add_tool_options(single, default="all", sources_replace_default=False)
    single.set_defaults(func=run_call)


def describe(item: Tool) -> dict[str, Any]:
    return {"name": item.name, "aliases": list(item.aliases), "description": item.description, "timeout": item.timeout,
            "cacheable": item.cacheable, "isolated": item.isolated, "uses_model": item.uses_model, "example": item.example,
            "schema": item.schema}


def _params(item: Tool) -> list[str]:
    props = item.parameters.get("properties", {})
    required = set(item.parameters.get("required", []))
    lines = []
    for name, given in props.items():
        spec = resolve(given if isinstance(given, dict) else {}, item.parameters)  # an MCP server's $ref, allOf
        kind = _kind_text(spec, item.parameters)
        flag = "required" if name in required else "optional"
        choices = f" one of {spec['enum']}" if "enum" in spec else ""
        lines.append(f"{name} ({kind}, {flag}{choices}): {spec.get('description', '')}")
    return lines or ["(no arguments)"]


def _kind_text(spec: Mapping[str, Any], root: Mapping[str, Any]) -> str:
    """The JSON type(s) a parameter takes, as `string|null`; an anyOf/oneOf lists its options' types."""
    options = spec.get("anyOf") or spec.get("oneOf")
    if isinstance(options, list):
        kinds = [k for o in options if isinstance(o, dict) for k in json_kinds(resolve(o, root))]
    else:
        kinds = json_kinds(spec)
    return "|".join(dict.fromkeys(kinds)) or "any"


def _registry(args: argparse.Namespace, *, read_corpus: bool = True) -> ToolRegistry:
    """The tools `--tools` names (default: every registered tool, kept beside --tools-from and --mcp tools). What a
    tools file prints while it is imported goes to stderr: stdout is the listing (`--json` is read by programs)."""
    with stdout_to_stderr():
        return toolset_from_args(args, names_given=True).build(read_corpus=read_corpus)


def run_list(args: argparse.Namespace) -> int:
    reg = _registry(args, read_corpus=False)   # a listing searches nothing: a large --wiki-corpus is not indexed
    if args.json:
        print(escaped_controls(json.dumps([describe(t) for t in reg], indent=2, ensure_ascii=False)))
        return 0
    width = max((len(t.name) for t in reg), default=4)
    for item in reg:
        aliases = f" (alias {', '.join(item.aliases)})" if item.aliases else ""
        mode = "process" if item.isolated else "thread"
        # Names and descriptions may come from an MCP server: printed, never obeyed by the terminal.
        print(printable(f"{item.name.ljust(width)}  {item.description.splitlines()[0] if item.description else ''}{aliases}"))
        print(" " * (width + 2) + f"timeout {item.timeout:g} s, runs in a {mode}{', cached' if item.cacheable else ''}")
        for line in _params(item):
            print(printable(textwrap.fill(line, width=100, initial_indent=" " * (width + 4), subsequent_indent=" " * (width + 6))))
    return 0


def run_call(args: argparse.Namespace) -> int:
    if args.timeout is not None:
        check_timeout(args.timeout, "--timeout")  # before any tool or MCP server is loaded
    reg = _registry(args)
    item = reg.get(args.name)
    with stdout_to_stderr():  # what the tool prints: stdout is its result, read by pipes
        result = reg.call(args.name, command_line_arguments(args.args, item), timeout=args.timeout, typed=False)
    if not result.ok:
        raise ToolError(result.error or result.text)
    text = printable(result.text)
    sys.stdout.write(text + ("\n" if not text.endswith("\n") else ""))
    return 0


def command_line_arguments(words: Sequence[str], item: Tool) -> tuple[str, ...] | dict[str, str]:
    """A shell's words as a call's arguments: NAME=VALUE for a parameter NAME of the tool (any other word holding
    "=" is a value: `x = 5` for Solve), the rest in the tool's positional order, those past the last parameter
    joined onto it with spaces when it takes a string (`toolcall tool WikiSearch Brown Act`); the words fill the
    parameters not named, in order (`look brown act lang=fr`); a name given twice is a ConfigError."""
    order = parameter_order(item.parameters)
    named: dict[str, str] = {}
    positional: list[str] = []
    for word in words:
        key, eq, value = word.partition("=")
        if eq and key in order:
            if key in named:
                raise ConfigError(f"{item.name}: {key}= is given twice")
            named[key] = value
        else:
            positional.append(word)
    # The words fill the parameters not given by name, in order; those past the last join it when it is a string.
    free = [n for n in order if n not in named] if named else order
    if free and len(positional) > len(free):
        last = (item.parameters.get("properties") or {}).get(free[-1]) or {}
        if "string" in json_kinds(last):
            positional = positional[:len(free) - 1] + [" ".join(positional[len(free) - 1:])]
    if not named:
        return tuple(positional)
    if len(positional) > len(free):
        raise ConfigError(f"{item.name}: takes at most {len(order)} argument(s) ({', '.join(order)}) but got "
                          f"{len(positional) + len(named)}")
    return {**dict(zip(free, positional)), **named}
