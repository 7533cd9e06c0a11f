"""`toolcall serve`: a tiny local HTTP endpoint, POST /generate with JSON, answered with the generate --json object."""
from __future__ import annotations

import argparse
import json
import threading
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..api import make_dialect, make_registry
from ..errors import ToolcallError
from ..loop import LoopConfig, run_loop
from ..prompting import build_prompt, reply_text
from .generate_cmd import add_generation_options, backend_from_args, config_from_args, tool_names

LOOP_FIELDS = ("max_calls", "max_new_tokens", "trigger_top_k", "tools_enabled", "call_timeout")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("serve", help="serve POST /generate on 127.0.0.1 (stdlib HTTP, one model)",
                                   description='POST /generate {"prompt": ..., "tools": [...], "max_calls": N, ...} '
                                               "returns the JSON of `generate --json`. The model is loaded once.")
    add_generation_options(parser)
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765)")
    parser.set_defaults(func=run)


def make_server(args: argparse.Namespace, port: int) -> ThreadingHTTPServer:
    backend = backend_from_args(args)
    defaults = config_from_args(args)
    lock = threading.Lock()  # one generation at a time: the backend holds one model

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise ToolcallError('the request needs "prompt": a string')
        dialect = make_dialect(body.get("dialect", args.dialect))
        registry = make_registry(body.get("tools", tool_names(args)))
        config = LoopConfig(**{f: body.get(f, getattr(defaults, f)) for f in LOOP_FIELDS})
        shown = registry if config.tools_enabled else None
        full = prompt if body.get("raw") else build_prompt(prompt, dialect, shown, backend, body.get("history"))
        with lock:
            result = run_loop(backend, full, dialect, registry, config)
        return {"text": result.text, "reply": reply_text(dialect, result.text), "calls": [c.to_dict() for c in result.calls],
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
