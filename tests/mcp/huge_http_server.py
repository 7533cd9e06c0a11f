"""A hostile MCP server over streamable HTTP, written as a bare ASGI app: it answers tools/call `big` with a JSON
body of SIZE bytes, streamed without a length (or, tool `declared`, with a Content-Length saying so; tool `event`, as
one server-sent event, as the SDK's own servers answer).

Run: python huge_http_server.py PORT SIZE
"""
from __future__ import annotations

import json
import sys
from typing import Any

import uvicorn

SIZE = int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 20
TOOLS = [{"name": name, "description": "A big answer.", "inputSchema": {"type": "object", "properties": {}}}
         for name in ("big", "declared", "event")]


async def respond(send: Any, status: int, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["method"] != "POST":
        return await respond(send, 405)
    request = json.loads(body)
    method, ident = request.get("method"), request.get("id")
    if ident is None:  # a notification
        return await respond(send, 202)
    json_type = [(b"content-type", b"application/json")]
    if method == "tools/call":
        head = b'{"jsonrpc":"2.0","id":%d,"result":{"content":[{"type":"text","text":"' % ident
        tail = b'"}]}}'
        headers = json_type
        if request["params"]["name"] == "event":
            head, tail = b"event: message\ndata: " + head, tail + b"\n\n"
            headers = [(b"content-type", b"text/event-stream")]
        if request["params"]["name"] == "declared":
            headers = [*json_type, (b"content-length", str(len(head) + SIZE + len(tail)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": head, "more_body": True})
        for start in range(0, SIZE, 1 << 20):
            await send({"type": "http.response.body", "body": b"x" * min(1 << 20, SIZE - start), "more_body": True})
        return await send({"type": "http.response.body", "body": tail})
    result: dict[str, Any] = {}
    if method == "initialize":
        result = {"protocolVersion": request["params"]["protocolVersion"], "capabilities": {"tools": {}},
                  "serverInfo": {"name": "huge", "version": "1"}}
    elif method == "tools/list":
        result = {"tools": TOOLS}
    await respond(send, 200, json.dumps({"jsonrpc": "2.0", "id": ident, "result": result}).encode(), json_type)


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
