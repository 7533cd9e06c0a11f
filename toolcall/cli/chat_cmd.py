"""`toolcall chat`: an interactive REPL that streams replies and shows each tool call as it happens."""
from __future__ import annotations

import argparse
import io
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

from ..api import make_dialect
from ..backends.base import DecodeSession
from ..dialects.base import defuse
from ..errors import ConfigError, UnknownNameError
from ..loop import CallFinished, Done, LoopResult, TextDelta, offers_tools
from ..runner import resume_loop
from ..terminal import printable
from ..toolset import set_up_tools
from .generate_cmd import add_generation_options, backend_from_args, config_from_args
from .tool_options import registry_from_args

if TYPE_CHECKING:
    from ..registry import ToolRegistry

HISTORY_FILE = Path("~/.toolcall_history")
HELP = """commands:
  /tools          list the tools, on or off
  /enable NAME    turn a tool on
  /disable NAME   turn a tool off
  /reset          forget the conversation
  /help           this text
  /quit           leave (/exit, /q, Ctrl-D too); Ctrl-C stops the current reply
Each line is one message (no multi-line input); start it with // to send a message that begins with /.
Lines typed at a terminal are kept in ~/.toolcall_history (readable by you alone) for the arrow keys."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("chat", help="chat with a tool-using model in the terminal",
                                   description="An interactive chat; the model calls tools as it writes. " + HELP,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_generation_options(parser)
    parser.set_defaults(func=run)


class _Style:
    """ANSI dim/reset only when writing to a terminal, so piped output stays plain."""

    def __init__(self, out: TextIO) -> None:
        on = out.isatty() and os.environ.get("NO_COLOR") is None
        self.on = on
        self.dim, self.reset = ("\033[2m", "\033[0m") if on else ("", "")


def _setup_readline() -> None:
    try:
        import atexit
        import readline
    except ImportError:
        return  # no line editing on this platform; input() still works
    path = HISTORY_FILE.expanduser()
    try:
        readline.read_history_file(path)
    except OSError:
        pass
    readline.set_history_length(1000)

    def save() -> None:
        try:
            readline.write_history_file(path)
        except OSError:
            pass

    atexit.register(save)


def _format_call(record: Any) -> str:
    if isinstance(record.args, Mapping):   # keyword arguments (hermes, pythonic, llama3_json, mistral)
        args = ", ".join(f"{k}={v!r}" for k, v in record.args.items())
    else:
        args = ", ".join(str(a) for a in record.args)
    # One line per call: a result's line breaks are shown, so it cannot write lines (a fake "you> ") of its own.
    return printable(f"→ {record.tool}({args}) = {record.result}").replace("\n", "⏎")


@dataclass
class Turn:
    """One exchange: the question, and the reply as the decode session holds it and as a person reads it."""

    question: str
    held: str   # the model's text with its calls and results, exactly as in the session (its KV cache)
    read: str   # the dialect's reply: what a person reads, and what a fresh prompt shows of this turn


class Chat:
    """The REPL state: backend, dialect, all tools and which are on, the conversation and its decode session.

    The session (and its KV cache) lives across turns: each turn appends only the new text, so the model never
    re-reads the conversation. A fresh session starts when the prompt changed before its end (/reset, /enable,
    /disable, or a chat template that renders past replies differently from what the model wrote).
    """

    def __init__(self, args: argparse.Namespace, out: TextIO) -> None:
        self.args = args
        self.out = out
        self.style = _Style(out)
        auto = args.dialect.strip().lower() == "auto"
        dialect = None if auto else make_dialect(args.dialect)   # an unknown dialect fails before the model loads
        self.registry = registry_from_args(args)
        self.enabled = set(self.registry.names()) if self.registry is not None else set()
        self.config = config_from_args(args)
        self.backend = backend_from_args(args)
        if self.registry is not None:
            set_up_tools(self.registry, self.backend)   # a tool that decodes with a model (MT) uses this one
        self.dialect = make_dialect(args.dialect, self.backend) if dialect is None else dialect
        self.turns: list[Turn] = []
        self.session: DecodeSession | None = None

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    # --- slash commands -------------------------------------------------------------------
    def command(self, line: str) -> bool:
        """Run a /command; returns False when the chat should end."""
        name, _, rest = line[1:].partition(" ")
        name, rest = name.lower(), rest.strip()
        if name in ("quit", "exit", "q"):
            return False
        if name == "help":
            self.write(HELP + "\n")
        elif name == "reset":
            self.turns.clear()
            self.session = None
            self.write("(conversation cleared)\n")
        elif name == "tools":
            for t in (self.registry or []):
                self.write(f"  {'on ' if t.name in self.enabled else 'off'}  {t.name}: {t.description.splitlines()[0] if t.description else ''}\n")
            if not self.registry:
                self.write("  (no tools)\n")
        elif name in ("enable", "disable"):
            if self.registry is None:  # it said "usage: /enable NAME" to a NAME given
                self.write("this chat has no tools; start it with --tools (or --tools-from, --mcp) to offer some\n")
                return True
            if not rest:
                self.write(f"usage: /{name} NAME\n")
                return True
            try:
                canonical = self.registry.canonical(rest)
            except UnknownNameError as err:
                self.write(f"{err}\n")
                return True
            (self.enabled.add if name == "enable" else self.enabled.discard)(canonical)
            self.write(f"{canonical}: {'on' if canonical in self.enabled else 'off'}\n")
        else:
            self.write(f"unknown command /{name}; type /help\n")
        return True

    # --- one reply ----------------------------------------------------------------------------
    def _prompt(self, question: str, registry: "ToolRegistry | None", form: Literal["held", "read"]) -> str:
        """The whole prompt for `question`, earlier replies in `form` ("held" or "read")."""
        history: list[dict[str, str]] = []
        for turn in self.turns:
            history += [{"role": "user", "content": turn.question}, {"role": "assistant", "content": getattr(turn, form)}]
        return self.dialect.prompt(question, registry.specs() if registry is not None else None,
                                   self.backend.chat_prompt, history,
                                   few_shot=not self.args.no_few_shot, instruction=self.args.prompt_file)

    def _session_for(self, question: str, registry: "ToolRegistry | None") -> DecodeSession:
        """The session that answers `question`: the last one, extended by the new text, when the new prompt starts
        with all it holds; otherwise a fresh one."""
        prompt = self._prompt(question, registry, "held")
        limit = self.backend.context_size()
        if limit is not None and (tokens := self.backend.prompt_tokens(prompt)) >= limit:
            raise ConfigError(f"the conversation is {tokens:,} tokens and this model reads at most {limit:,}")
        session = self.session
        if session is not None and prompt.startswith(session.text):
            session.next_turn(prompt[len(session.text):])  # only the new text is prefilled
            return session
        # A fresh session shows earlier replies as a person reads them (for MOSS, its answer field alone).
        for turn in self.turns:
            turn.held = turn.read
        self.session = self.backend.start(self._prompt(question, registry, "held"))
        return self.session

    def reply(self, question: str) -> LoopResult | None:
        question = defuse(question, self.backend.special_texts())  # typed or pasted text cannot write turns
        registry = self.registry.subset(sorted(self.enabled)) if self.registry is not None and self.enabled else None
        config = self.config
        if registry is None and config.tools_enabled:
            config = replace(config, tools_enabled=False)  # every tool switched off: ban the call opener too
        dim, reset = self.style.dim, self.style.reset
        try:
            session = self._session_for(question, registry if offers_tools(config, self.dialect) else None)
        except ConfigError as err:  # the chat goes on: the next question may be shorter, or the history cleared
            self.write(f"{dim}({err}; /reset clears the conversation){reset}\n")
            return None
        result: LoopResult | None = None
        stopped = False
        try:
            for event in resume_loop(session, self.dialect, registry, config):
                if isinstance(event, TextDelta):
                    text = printable(event.text)  # the model's text and tool results: printed, never obeyed
                    self.write(f"{dim}{text}{reset}" if event.source == "tool" else text)
                elif isinstance(event, CallFinished):
                    if not self.style.on:
                        self.write(f"\n{_format_call(event.record)}\n")  # logs and pipes: one line per call
                    # On a terminal the result (or error) shows inline, dimmed: it is the spliced text that follows.
                elif isinstance(event, Done):
                    result = event.result
        except KeyboardInterrupt:
            stopped = True
            # Stopped inside a model step, the model's cache may hold more of some layers than of others: the next
            # turn reads the conversation again in a session of its own (continuing this one failed on a tensor size).
            self.session = None
        text = session.generated
        if stopped and not text.strip():
            # Stopped before the model wrote anything (a long question still being read): the question is dropped,
            # not kept to be read again before every later one.
            self.write(f"\n{dim}(stopped; the question was dropped){reset}\n")
            return None
        if stopped:
            self.write(f"\n{dim}(reply stopped){reset}")
        elif result is not None and result.stop_reason == "length":
            limit = self.backend.context_size()
            full = limit is not None and self.backend.prompt_tokens(session.text) >= limit - 1
            why = "the end of the model's context; /reset clears the conversation" if full else \
                f"the token limit, --max-new-tokens {config.max_new_tokens}"
            self.write(f"\n{dim}(reply cut: it reached {why}){reset}")
        self.write("\n")
        # What the session holds of this reply, also when it was stopped: the next turn continues after it.
        self.turns.append(Turn(question, text, self.dialect.reply(text)))
        return result

    def loop(self, stdin: TextIO) -> int:
        interactive = stdin.isatty()
        if interactive:
            _setup_readline()
            self.write(f"toolcall chat ({self.args.backend}, {self.dialect.name}; tools: "
                       f"{', '.join(sorted(self.enabled)) or 'none'}). /help for commands, Ctrl-D to leave.\n")
        number = 0
        while True:
            try:
                line = input("you> ") if interactive else stdin.readline()
            except EOFError:
                break
            except KeyboardInterrupt:
                self.write("\n")
                continue
            if not interactive and line == "":
                break  # end of piped input
            number += 1
            if _UNDECODED.search(line):
                # Read with surrogateescape (see run): a byte that is not UTF-8 ended the whole chat.
                self.write(f"(line {number} is not UTF-8 text; skipped)\n")
                continue
            line = line.strip()
            if not line:
                continue
            if line.startswith("/") and not line.startswith("//"):
                if not self.command(line):
                    break
                continue
            self.reply(line[1:] if line.startswith("//") else line)
        if interactive:
            self.write("\n")
        return 0


#: What surrogateescape makes of a byte that is not UTF-8.
_UNDECODED = re.compile("[\udc80-\udcff]")


def run(args: argparse.Namespace) -> int:
    if isinstance(sys.stdin, io.TextIOWrapper):
        sys.stdin.reconfigure(errors="surrogateescape")   # a bad line is skipped, not the end of the chat
    if sys.stdin.isatty() and args.backend != "fake":
        # Loading the embedded model takes ~20 s on a laptop CPU; say so instead of sitting silent.
        print(f"loading {args.model or 'the embedded SmolLM2-135M-Instruct'} ...", file=sys.stderr, flush=True)
    return Chat(args, sys.stdout).loop(sys.stdin)
