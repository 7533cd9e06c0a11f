"""`toolcall serve`: the OpenAI-compatible server (FastAPI + uvicorn) that runs tools mid-generation, and its chat page."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..api import make_dialect
from ..errors import ConfigError, MissingDependencyError
from ..loop import LoopConfig
from ..options import add_options, from_args
from .generate_cmd import add_generation_options, backend_from_args, config_from_args
from .tool_options import registry_from_args

API_KEY_ENV = "TOOLCALL_API_KEY"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"

DESCRIPTION = f"""\
An OpenAI-compatible server: one model loaded once, tools run inside the generation.

  GET  /                      a chat page (streams replies, shows each tool call as a card)
  GET  /health                {{"status": "ok", "model", "active", "waiting"}}
  GET  /v1/models             the one model it serves (--served-model-name)
  POST /v1/chat/completions   OpenAI's chat completions: messages, max_tokens / max_completion_tokens,
                              temperature, top_p, seed, stop, n, stream (+ stream_options.include_usage),
                              tools, tool_choice (none/auto/required/a function), parallel_tool_calls
  POST /v1/responses          OpenAI's Responses API over the same replies: input (a string or message,
                              function_call, function_call_output and reasoning items), instructions, function
                              tools, tool_choice, max_output_tokens, text.format, stream (its events); stateless

The --tools run on the server while the model writes: each run is listed in the reply's message.tool_runs
(streamed as delta.tool_runs: index, id, tool, arguments, then that index with result or error and seconds).
Functions in a request's "tools" are the client's: a call of one ends the reply with finish_reason "tool_calls", and the
conversation goes on when the client sends "tool" messages with the results. The extension object
"toolcall": {{"keep_markup", "tools", "trigger_top_k", "call_threshold", "max_calls", "constrain_calls"}}
sets this server's tool handling per request. Errors are 4xx in OpenAI's shape
{{"error": {{"message", "type", "param", "code"}}}}. It binds 127.0.0.1 unless --host says otherwise; --api-key
(or ${API_KEY_ENV}) requires "Authorization: Bearer KEY" on /v1/. Requests from other web pages (Origin,
Sec-Fetch-Site), with a Host that is not this server's (--allowed-host) or with a body that is not JSON are
refused; slow and idle connections are closed (the "network" options below).

  curl -s localhost:8000/v1/chat/completions -H 'Content-Type: application/json' \\
       -d '{{"model": "{EMBEDDED_NAME}", "messages": [{{"role": "user", "content": "What is 17 * 23?"}}]}}'
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("serve", help="serve an OpenAI-compatible API and a chat page (tools run "
                                                 "mid-generation)",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_generation_options(parser, per_request=("json_schema",))  # a request's response_format
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--api-key", default=None, metavar="KEY",
                        help=f"require 'Authorization: Bearer KEY' on /v1/ (default: ${API_KEY_ENV} when set)")
    parser.add_argument("--served-model-name", default=None, metavar="NAME",
                        help="the model id clients send (default: the model's file or folder name; 'fake' for "
                             "--backend fake)")
    parser.add_argument("--max-tokens-limit", type=int, default=4096, metavar="N",
                        help="the largest max_tokens a request may ask for, and what a request without max_tokens may "
                             "use, cut to what its prompt leaves of the model's context (default 4096; "
                             "--max-new-tokens sets a smaller default)")
    parser.add_argument("--batch", action=argparse.BooleanOptionalAction, default=True,
                        help="decode concurrent replies together: their steps as one batch on transformers, their "
                             "requests streamed on the async engine on vLLM, which batches them continuously (each reply "
                             "is what it would be served alone) "
                             "(default: on)")
    add_options(parser, _guard_config(), group="network (who may connect, and for how long)")
    parser.set_defaults(func=run)


def _guard_config() -> type:
    from ..server.guard import GuardConfig

    return GuardConfig


def model_id(args: argparse.Namespace) -> str:
    """The id clients name the model by."""
    if args.served_model_name:
        return str(args.served_model_name)
    if args.backend == "fake":
        return "fake"
    if args.model is None:
        return EMBEDDED_NAME
    path = Path(args.model)
    return path.stem if path.suffix == ".gguf" else (path.name or str(args.model))


def build_app(args: argparse.Namespace) -> Any:
    """The app the flags describe (the model is loaded here)."""
    from ..server import ServerSettings, create_app

    if args.max_tokens_limit < 1:
        raise ConfigError(f"--max-tokens-limit must be >= 1, got {args.max_tokens_limit}")
    from_args(_guard_config(), args)  # bad network settings fail before the model loads
    # A reply without max_tokens may run to the end of the model's context, as OpenAI's and vLLM's do (the app cuts the
    # budget to what the prompt leaves), up to --max-tokens-limit; a typed --max-new-tokens sets a smaller default.
    config = config_from_args(args, LoopConfig(max_new_tokens=args.max_tokens_limit))  # bad numbers fail before loading
    auto = args.dialect.strip().lower() == "auto"
    dialect = None if auto else make_dialect(args.dialect)   # an unknown dialect fails before the model loads
    # vLLM serves concurrent replies on its async engine: each streams its own request, batched continuously.
    backend = backend_from_args(args, {"engine": "async"} if args.batch and args.backend == "vllm" else None)
    batch_concurrent = getattr(backend, "batch_concurrent", None)
    if args.batch and batch_concurrent is not None:
        batch_concurrent()
    dialect = make_dialect(args.dialect, backend) if dialect is None else dialect   # "auto": from its chat template
    registry = registry_from_args(args, backend)
    settings = ServerSettings(model_id(args), registry, config, few_shot=not args.no_few_shot,
                              instruction=args.prompt_file, max_tokens_limit=args.max_tokens_limit)
    key = args.api_key or os.environ.get(API_KEY_ENV) or None
    return create_app(backend, dialect, settings, api_key=key, guard=from_args(_guard_config(), args))


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError as err:
        raise MissingDependencyError("uvicorn", "serve", "toolcall serve") from err
    app = build_app(args)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"toolcall serve: http://{shown}:{args.port}/ (chat page), /v1/chat/completions (OpenAI API); "
          f"model {app.state.server.settings.model_id!r}; Ctrl-C to stop", flush=True)
    from ..server.guard import UVICORN_LOGGERS, uvicorn_config
    from ..terminal import printable_logs

    config = uvicorn_config(app, app.state.server.guard, host=args.host, port=args.port, log_level="warning")
    printable_logs(*UVICORN_LOGGERS)  # after uvicorn set up its handlers: a client writes paths and headers there
    uvicorn.Server(config).run()
    return 0
