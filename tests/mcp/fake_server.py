"""A hand-written MCP server over stdio (no SDK), for edge cases a well-behaved server never shows.

Run: python fake_server.py MODE, where MODE is
  ok       answers initialize, lists `calculate` (a built-in's name), `echo_env` and `long_job` (which requires MCP
           tasks), and answers tools/call;
  silent   reads requests and never answers (a server stuck before `initialize`);
  garbage  prints a banner on stdout before any JSON-RPC;
  chatty   like ok, but prints a log line on stdout before each tools/call reply;
  flood    lists 1,000 tools besides ok's, one with a schema nested 5,000 levels deep, one with a 1 MB description and
           one with a 10,000-character name, and answers every call with 5 MB of text;
  never    like ok, but never answers a tools/call; each notifications/cancelled it gets is a line in the file
           FAKE_SERVER_LOG names;
  badlisting  like ok, but also lists a tool whose inputSchema is an array's and an entry without a name (not MCP
           tools: the SDK refuses the whole page for them);
  badresult  like ok, but answers a call with content that is not a list;
  endless  lists one tool a page, each page with a cursor to another;
  sessionerror  like ok, but answers a tools/call with the JSON-RPC error "Session not found" (a tool's own words
           over stdio, not a lost HTTP session); its starts are lines in the file FAKE_SERVER_LOG names;
  slowstart  like flaky's first start, then every later start takes 2 s before it answers initialize;
  badnotif like ok, but sends 20 malformed progress notifications before each tools/call reply;
  flaky    like ok, counting its starts in the file FAKE_SERVER_LOG names: the first start dies at its first call,
           the second exits before answering initialize (a server still restarting), later ones work.
"""
from __future__ import annotations

import json
import os
import sys
import time

TOOLS = [
    {"name": "calculate", "description": "Evaluate a sum of integers.",
     "inputSchema": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}},
    {"name": "echo_env", "description": "The value of an environment variable here, or <unset>.",
     "inputSchema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}},
    {"name": "long_job", "description": "Only runs as an MCP task.", "execution": {"taskSupport": "required"},
     "inputSchema": {"type": "object", "properties": {}}},
]


DEEP = "<deep schema>"  # replaced in the written reply: json.dumps itself cannot nest 5,000 levels


def flood_tools() -> list[dict[str, object]]:
    deep = DEEP
    many: list[dict[str, object]] = [{"name": f"t{i}", "description": f"Tool {i}.",
                                      "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}}}
                                     for i in range(1_000)]
    return [*TOOLS[:2], *many,
            {"name": "deep", "description": "Nested.", "inputSchema": {"type": "object", "properties": {"v": deep}}},
            {"name": "wordy", "description": "word " * 200_000, "inputSchema": {"type": "object", "properties": {}}},
            {"name": "n" * 10_000, "description": "Long name.", "inputSchema": {"type": "object", "properties": {}}}]


def reply(request_id: object, result: dict[str, object]) -> None:
    text = json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result})
    nested = '{"type": "object", "properties": {"a": ' * 40 + '{"type": "string"}' + "}}" * 40
    sys.stdout.write(text.replace(json.dumps(DEEP), nested) + "\n")
    sys.stdout.flush()


def call(name: str, arguments: dict[str, str]) -> str:
    if name == "calculate":
        return str(sum(int(part) for part in arguments["expression"].split("+")))
    if name == "echo_env":
        return os.environ.get(arguments["name"], "<unset>")
    raise ValueError(name)


def main(mode: str) -> None:
    if mode == "garbage":
        print("Welcome to the fake server, version 1!", flush=True)
    log = os.environ.get("FAKE_SERVER_LOG", "")
    start = 0
    if mode in ("flaky", "sessionerror", "slowstart"):
        with open(log, "a+") as counts:
            counts.seek(0)
            start = len(counts.read().split()) + 1
            counts.write(f"{start}\n")
    for line in sys.stdin:
        if mode == "silent":
            continue
        message = json.loads(line)
        method, request_id = message.get("method"), message.get("id")
        if request_id is None:
            if mode == "never" and method == "notifications/cancelled":
                with open(log, "a") as cancels:
                    cancels.write(f"{message['params']['requestId']}\n")
            continue  # a notification
        if method == "initialize" and mode == "flaky" and start == 2:
            sys.exit(1)
        if method == "initialize" and mode == "slowstart" and start > 1:
            time.sleep(2)
        if method == "tools/call" and mode in ("flaky", "slowstart") and start == 1:
            os._exit(1)
        if method == "tools/call" and mode == "sessionerror":
            sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": request_id,
                                         "error": {"code": -32000, "message": "Session not found"}}) + "\n")
            sys.stdout.flush()
            continue
        if method == "tools/call" and mode == "never":
            continue
        if method == "initialize":
            reply(request_id, {"protocolVersion": message["params"]["protocolVersion"], "capabilities": {"tools": {}},
                               "serverInfo": {"name": "fake-server", "version": "1"}})
        elif method == "tools/list" and mode == "endless":
            page = int((message.get("params") or {}).get("cursor") or 0)
            reply(request_id, {"tools": [{"name": f"t{page}", "inputSchema": {"type": "object"}}],
                               "nextCursor": str(page + 1)})
        elif method == "tools/list":
            broken = [{"name": "listy", "inputSchema": {"type": "array"}}, {"inputSchema": {"type": "object"}}]
            reply(request_id, {"tools": flood_tools() if mode == "flood" else
                               TOOLS + broken if mode == "badlisting" else TOOLS})
        elif method == "tools/call":
            params = message["params"]
            text = "x" * 5_000_000 if mode == "flood" else call(params["name"], params.get("arguments") or {})
            if mode == "chatty":
                print(f"calling {params['name']}", flush=True)
            if mode == "badresult":
                reply(request_id, {"content": "not a list"})
                continue
            if mode == "badnotif":
                for i in range(20):
                    print(json.dumps({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"bogus": i}}),
                          flush=True)
            reply(request_id, {"content": [{"type": "text", "text": text}], "isError": False})
        else:
            reply(request_id, {})
    if mode == "silent":
        time.sleep(3600)   # ignores the end of stdin too: the client has to kill it


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "ok")
