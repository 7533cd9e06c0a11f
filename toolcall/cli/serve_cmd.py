"""`toolcall serve`: a tiny local HTTP endpoint, POST /generate with JSON, answered with the generate --json object."""
from __future__ import annotations

import argparse
import json
import threading
from dataclasses import asdict, fields, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..api import make_dialect, make_registry
from ..errors import ToolcallError
from ..loop import LoopConfig, run_loop
from .generate_cmd import add_generation_options, backend_from_args, config_from_args
from .tool_options import tool_names

#: The body keys that set the decoding loop: every LoopConfig field.
LOOP_FIELDS = tuple(f.name for f in fields(LoopConfig))

DESCRIPTION = """\
A small local HTTP server (Python's standard library, one model loaded once, one generation at a time).
It listens on 127.0.0.1 only and answers one endpoint:

  POST /generate   Content-Type: application/json
    {"prompt": "What is 17 * 23?",      required: the question (or, with "raw", the whole prompt)
     "raw": false,                      send "prompt" as is: no instructions, no chat template
     "history": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}],
     "dialect": "toolformer",           default: --dialect
     "tools": ["Calculator"],           default: --tools
     "max_calls": 3, "max_new_tokens": 200, "trigger_top_k": 0, "max_triggers": 1,
     "tools_enabled": true, "call_timeout": null}      loop settings; defaults: the flags below
  200: {"text", "reply", "calls", "counters", "stop_reason"}, as `toolcall generate --json` prints
  400: {"error": "..."} for a malformed body, an unknown tool or dialect, or a bad setting; 404 for another path

  curl -s localhost:8765/generate -d '{"prompt": "What is 17 * 23?"}'
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("serve", help="serve POST /generate on 127.0.0.1 (stdlib HTTP, one model)",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_generation_options(parser)
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765; 0 picks a free one)")
    parser.set_defaults(func=run)


def make_server(args: argparse.Namespace, port: int) -> ThreadingHTTPServer:
    backend = backend_from_args(args)
    defaults = config_from_args(args)
    lock = threading.Lock()  # one generation at a time: the backend holds one model

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        prompt = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(prompt, str):
            raise ToolcallError('the request needs "prompt": a string')
        dialect = make_dialect(body.get("dialect", args.dialect))
        registry = make_registry(body.get("tools", tool_names(args)))
        config = replace(defaults, **{f: body[f] for f in LOOP_FIELDS if f in body})
        shown = registry if config.tools_enabled else None
        full = prompt if body.get("raw") else dialect.prompt(prompt, shown, backend.chat_prompt, body.get("history"))
        with lock:
            result = run_loop(backend, full, dialect, registry, config)
        return {"text": result.text, "reply": dialect.reply(result.text), "calls": [c.to_dict() for c in result.calls],
                "counters": asdict(result.counters), "stop_reason": result.stop_reason}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            if self.path != "/generate":
                return self._send(404, {"error": f"unknown path {self.path}; POST /generate"})
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                self._send(200, answer(body))
            except (ValueError, TypeError, ToolcallError) as err:
                self._send(400, {"error": str(err)})

        def _send(self, status: int, data: dict[str, Any]) -> None:
            payload = json.dumps(data, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet; the CLI prints its address once

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def run(args: argparse.Namespace) -> int:
    server = make_server(args, args.port)
    print(f"toolcall serve: POST http://127.0.0.1:{server.server_address[1]}/generate (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
