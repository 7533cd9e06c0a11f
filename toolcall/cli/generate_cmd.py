"""`toolcall generate`: answer one prompt with tools and print the text (or JSON with the calls and counters)."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

from ..api import make_backend, make_dialect
from ..backends.base import Backend
from ..calls import args_json
from ..dialects.base import defuse
from ..errors import ConfigError
from ..jsonl import utf8_text
from ..loop import LoopConfig, offers_tools
from ..options import add_options, from_args
from ..runner import run_loop
from ..terminal import escaped_controls, printable, stdout_to_stderr
from ..toolset import set_up_tools
from .model_options import add_model_options
from .tool_options import add_tool_options, registry_from_args


def add_generation_options(parser: argparse.ArgumentParser, per_request: tuple[str, ...] = ()) -> None:
    """The options `generate`, `chat` and `serve` share: backend, model, dialect, tools and the LoopConfig fields
    (less `per_request`, the ones a server's client sets for each request)."""
    add_model_options(parser)
    parser.add_argument("--dialect", default="toolformer", help="toolformer (default), moss, hermes, pythonic, llama3_json, mistral, or auto (the one the "
                             "model's chat template implies; toolformer when it implies none)")
    add_tool_options(parser)
    add_options(parser, LoopConfig, exclude=per_request, group="generation (the decoding loop)")
    parser.add_argument("--prompt-file", default=None, metavar="PATH",
                        help="replace the instruction (Toolformer; {tools} is filled in) or the MOSS meta-instruction ({plugins})")
    parser.add_argument("--no-few-shot", action="store_true", help="instructions only, no worked examples")
    parser.add_argument("--temperature", type=float, default=None, help="sampling temperature (default: greedy)")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling threshold")
    parser.add_argument("--seed", type=int, default=None, help="random seed for sampling")


def backend_from_args(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> Backend:
    """The backend the flags name, with their sampling defaults and the command's own `extra` engine options."""
    options: dict[str, Any] = {k: v for k, v in (("temperature", args.temperature), ("top_p", args.top_p),
                                                  ("seed", args.seed)) if v is not None}
    return make_backend(args.backend, args.model, {**options, **(extra or {})})


def config_from_args(args: argparse.Namespace, base: LoopConfig | None = None) -> LoopConfig:
    """The LoopConfig of the command line: `base` (LoopConfig's defaults), then what the model's folder recommends
    (its toolcall.json), then the flags typed; a bad value raises ConfigError (exit 1) before any model loads."""
    from ..models import recommended

    config = from_args(LoopConfig, args, base=recommended(base or LoopConfig(), getattr(args, "model", None)))
    if config.force_call and not config.tools_enabled:
        raise ConfigError("--force-call starts every reply with a call and --no-tools runs none: give one of them")
    return config


def read_prompt(prompt: str) -> str:
    """PROMPT, or standard input for '-': UTF-8 text that says something (a ConfigError otherwise)."""
    if prompt == "-":  # read as bytes: the tokenizer raised TypeError on what the text reader let through
        prompt = utf8_text(sys.stdin.buffer.read(), "standard input")
    if not prompt.strip():
        raise ConfigError("the prompt is empty: give a question (or '-' and text on standard input)")
    return prompt


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("generate", help="answer one prompt, running tool calls as the model writes them",
                                   description="Answer PROMPT with a model that calls tools mid-generation.")
    parser.add_argument("prompt", metavar="PROMPT", help="the question or text ('-' reads standard input)")
    add_generation_options(parser)
    parser.add_argument("--raw", action="store_true", help="send PROMPT as is: no instructions, no chat template")
    parser.add_argument("--json", action="store_true", help="print {text, reply, calls, counters, stop_reason} as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    question = read_prompt(args.prompt)
    config = config_from_args(args)  # invalid numbers fail before the model loads
    auto = args.dialect.strip().lower() == "auto"
    dialect = None if auto else make_dialect(args.dialect)   # an unknown dialect fails before the model loads
    # What a tools file prints while it is imported, or a tool while it runs, goes to stderr: stdout is the reply
    # alone (--json is read by programs).
    with stdout_to_stderr():
        registry = registry_from_args(args)
        backend = backend_from_args(args)
        if registry is not None:
            set_up_tools(registry, backend)   # a tool that decodes with a model (MT) uses this one, not a second copy
        dialect = make_dialect(args.dialect, backend) if dialect is None else dialect   # "auto": from its template
        shown = registry.specs() if registry is not None and offers_tools(config, dialect) else None
        # Not --raw: the question is written into the chat template, with special tokens' texts broken (as
        # generate()).
        prompt = question if args.raw else dialect.prompt(defuse(question, backend.special_texts()), shown,
                                                          backend.chat_prompt, few_shot=not args.no_few_shot,
                                                          instruction=args.prompt_file)
        result = run_loop(backend, prompt, dialect, registry, config)
    # A reply held to JSON prints its JSON alone (what --json-schema promises parses); the calls it made before it
    # are told on stderr.
    reply = result.answer if result.answer is not None else dialect.reply(result.text)
    if args.json:
        # Controls (and lone surrogates, which cannot be printed) written as \u escapes: the same JSON.
        print(escaped_controls(json.dumps({"text": result.text, "reply": reply,
                                           "calls": [c.to_dict() for c in result.calls],
                                           "counters": asdict(result.counters), "stop_reason": result.stop_reason},
                                          ensure_ascii=False)))
    else:
        if result.answer is not None:
            for call in result.calls:
                print(printable(f"called {call.tool}({json.dumps(args_json(call.args), ensure_ascii=False)}) -> "
                                f"{call.result}"), file=sys.stderr)
        print(printable(reply))
    if config.json_schema is not None and not _parses(reply):
        # The grammar ends the reply once its JSON is complete; one cut first by the token limit is not JSON.
        print(f"toolcall generate: the reply ended ({result.stop_reason}) before its JSON was complete, so it does "
              f"not parse: raise --max-new-tokens ({config.max_new_tokens}), or bound the schema "
              "(additionalProperties: false, maxLength, maxItems) so that its JSON ends sooner", file=sys.stderr)
        return 1
    return 0


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
