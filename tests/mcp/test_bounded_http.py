"""What a remote MCP server's answers may cost the client (toolcall.mcp.bounded_http), on a scripted HTTP transport:
bodies by bytes and objects, redirects, abandoned calls' event streams, pushed events, one-way POSTs, reconnects."""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

pytest.importorskip("mcp")

import httpx2  # noqa: E402  (the MCP SDK's HTTP client)

from toolcall.mcp import bounded_http  # noqa: E402
from toolcall.mcp.bounded_http import BoundedTransport, CallAbandoned, ResponseTooLarge  # noqa: E402

URL = "http://127.0.0.1:9/mcp"
EVENTS = {"content-type": "text/event-stream"}
JSON = {"content-type": "application/json"}


class Chunks(httpx2.AsyncByteStream):
    """A body sent in pieces, as a server streams it; counts what the client took."""

    def __init__(self, pieces: Callable[[], AsyncIterator[bytes]]) -> None:
        self.pieces, self.taken = pieces, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for piece in self.pieces():
            self.taken += 1
            yield piece


def transport(handler: Callable[[httpx2.Request], Awaitable[httpx2.Response]], limit: int = 1 << 20) -> BoundedTransport:
    return BoundedTransport(limit, inner=httpx2.MockTransport(handler))


async def read_all(bounded: BoundedTransport, request: httpx2.Request) -> bytes:
    response = await bounded.handle_async_request(request)
    body = b""
    async for chunk in response.stream:  # type: ignore[union-attr]
        body += chunk
    return body


def post(message: dict[str, Any]) -> httpx2.Request:
    return httpx2.Request("POST", URL, json=message)


def repeat(piece: bytes, times: int) -> Callable[[], AsyncIterator[bytes]]:
    async def pieces() -> AsyncIterator[bytes]:
        for _ in range(times):
            yield piece
    return pieces


def test_json_bodies_are_bounded_by_bytes_and_by_objects() -> None:
    async def big(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers=JSON, stream=Chunks(repeat(b"x" * 65536, 40)))

    async def blocks(request: httpx2.Request) -> httpx2.Response:  # 16 MiB of these took 1.4 GB
        return httpx2.Response(200, headers=JSON, stream=Chunks(repeat(b'{"type":"text","text":""},' * 1000, 60)))

    async def declared(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={**JSON, "content-length": str(5 << 20)}, stream=Chunks(repeat(b"x", 1)))

    request = post({"jsonrpc": "2.0", "id": 1, "method": "tools/call"})
    with pytest.raises(ResponseTooLarge, match="went past 1,048,576 bytes"):
        asyncio.run(read_all(transport(big), request))
    with pytest.raises(ResponseTooLarge, match="opens more than 50,000 objects and lists"):
        asyncio.run(read_all(transport(blocks, limit=16 << 20), request))
    with pytest.raises(ResponseTooLarge, match="declares 5,242,880 bytes"):
        asyncio.run(read_all(transport(declared), request))


def test_an_http_error_without_a_json_rpc_error_says_its_status_and_a_404_is_left_to_the_sdk() -> None:
    """A proxy's 401 page or a 500 reached the user as the SDK's "Server returned an error response": a missing
    token read like a broken server."""
    import json

    async def handler(request: httpx2.Request) -> httpx2.Response:
        status = int(request.url.path.rsplit("/", 1)[-1])
        return httpx2.Response(status, text=f"  <h1>no\n  entry</h1>{'x' * 5000}",
                               headers={"content-type": "text/html"})

    async def main() -> list[tuple[int, bytes]]:
        bounded = transport(handler)
        out = []
        for status in (401, 500, 404):
            request = httpx2.Request("POST", f"http://127.0.0.1:9/{status}", json={
                "jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {}})
            response = await bounded.handle_async_request(request)
            out.append((response.status_code, await read_all_of(response)))
        return out

    async def read_all_of(response: httpx2.Response) -> bytes:
        body = b""
        async for chunk in response.stream:  # type: ignore[union-attr]
            body += chunk
        return body

    (s401, b401), (s500, b500), (s404, b404) = asyncio.run(main())
    said = json.loads(b401)
    assert s401 == 401 and said["id"] == 7 and said["error"]["message"].startswith(
        "the server answered HTTP 401 Unauthorized: <h1>no entry</h1>xxx")
    assert len(said["error"]["message"]) < 300
    assert json.loads(b500)["error"]["message"].startswith("the server answered HTTP 500 Internal Server Error")
    assert s404 == 404 and b404.startswith(b"  <h1>no")  # the SDK reads a bare 404 as a lost session


def test_a_redirect_cannot_pass_an_endless_body_off_as_an_event_stream() -> None:
    # Only a successful event stream is left to the SDK's per-event bound: a 307 "event stream" it reads whole.
    async def redirect(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(307, headers={**EVENTS, "location": "/mcp"}, stream=Chunks(repeat(b": " + b"x" * 65536, 10**6)))

    with pytest.raises(ResponseTooLarge, match="went past"):
        asyncio.run(read_all(transport(redirect), httpx2.Request("GET", URL)))


def test_an_abandoned_calls_event_stream_is_not_read_on() -> None:
    """The call timed out and the client sent notifications/cancelled: the server's endless stream for it was read
    (1.3 CPU-seconds a second) until the session closed."""
    endless = Chunks(repeat(b'data: {"jsonrpc":"2.0","method":"notifications/progress","params":{}}\n\n', 10**9))

    async def server(request: httpx2.Request) -> httpx2.Response:
        if json.loads(request.content).get("method") == "tools/call":
            return httpx2.Response(200, headers=EVENTS, stream=endless)
        return httpx2.Response(202)

    async def main() -> None:
        bounded = transport(server)
        response = await bounded.handle_async_request(post({"jsonrpc": "2.0", "id": 7, "method": "tools/call"}))
        stream = response.stream.__aiter__()  # type: ignore[union-attr]
        for _ in range(3):
            await stream.__anext__()
        await bounded.handle_async_request(post({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                                 "params": {"requestId": 7}}))
        with pytest.raises(CallAbandoned):
            await stream.__anext__()
        await response.aclose()
        assert bounded.streams == {}

    asyncio.run(main())
    assert endless.taken <= 4


def test_pushed_events_are_read_at_a_bounded_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pings pushed as fast as the socket takes them piled up 13,000 of the SDK's tasks in 6 s; past the rate the
    stream is read more slowly (TCP then holds the server back)."""
    monkeypatch.setattr(bounded_http, "MAX_EVENTS_PER_SECOND", 100)
    ping = b'data: {"jsonrpc":"2.0","id":"p","method":"ping"}\n\n'

    async def server(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers=EVENTS, stream=Chunks(repeat(ping * 50, 6)))  # 300 events at once

    began = time.monotonic()
    body = asyncio.run(read_all(transport(server), httpx2.Request("GET", URL)))
    assert body.count(b"\n\n") == 300 and time.monotonic() - began >= 1.9  # 100 a second, a second's worth ahead


def test_one_way_posts_wait_briefly_and_unanswered_answers_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK sends notifications and its answers to the server in line with its requests: one the server never
    acknowledged held every later message, a tools/call included, for 30 s."""
    monkeypatch.setattr(bounded_http, "ONE_WAY_TIMEOUT", 0.2)
    sent: list[str] = []

    async def server(request: httpx2.Request) -> httpx2.Response:
        message = json.loads(request.content)
        sent.append(message.get("method", "answer"))
        if "method" not in message or "id" not in message:
            await asyncio.sleep(60)  # never acknowledged
        return httpx2.Response(200, headers=JSON, json={"jsonrpc": "2.0", "id": message.get("id"), "result": {}})

    async def main() -> None:
        bounded = transport(server)
        began = time.monotonic()
        for message in ({"jsonrpc": "2.0", "method": "notifications/initialized"},
                        {"jsonrpc": "2.0", "id": "p1", "result": {}}, {"jsonrpc": "2.0", "id": "p2", "result": {}}):
            assert (await bounded.handle_async_request(post(message))).status_code == 202
        assert time.monotonic() - began < 1.0  # 0.2 s each, and the second answer was not sent at all
        assert (await bounded.handle_async_request(post({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}))).status_code == 200

    asyncio.run(main())
    assert sent == ["notifications/initialized", "answer", "tools/list"]


def test_the_event_stream_is_reopened_at_most_once_a_second_and_closing_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bounded_http, "GET_INTERVAL", 0.2)
    monkeypatch.setattr(bounded_http, "DELETE_TIMEOUT", 0.2)
    opened: list[float] = []

    async def server(request: httpx2.Request) -> httpx2.Response:
        if request.method == "DELETE":
            await asyncio.sleep(60)
        opened.append(time.monotonic())
        return httpx2.Response(200, headers=EVENTS, content=b"retry: 0\n\n")

    async def main() -> None:
        bounded = transport(server)
        for _ in range(5):  # a server that says "retry at once" and closes
            await read_all(bounded, httpx2.Request("GET", URL))
        began = time.monotonic()
        assert (await bounded.handle_async_request(httpx2.Request("DELETE", URL))).status_code == 204
        assert time.monotonic() - began < 1.0

    asyncio.run(main())
    gaps = [b - a for a, b in zip(opened, opened[1:])]
    assert len(gaps) == 4 and min(gaps) >= 0.19


def test_the_sdks_log_is_one_line_a_record_for_our_clients(caplog: pytest.LogCaptureFixture) -> None:
    """A server's garbage made the SDK log a traceback per event, forever; for toolcall's clients each record is one
    line, at most 5 of a kind a minute (the outcome reaches the user as the call's error anyway)."""
    import logging

    from toolcall.mcp import client as client_module

    logger = logging.getLogger("mcp.client.streamable_http")
    token = client_module._CLIENT.set(object())  # type: ignore[arg-type]
    try:
        with caplog.at_level(logging.WARNING, logger="mcp.client.streamable_http"):
            for i in range(8):
                try:
                    raise ValueError(f"bad event {i}\nline two")
                except ValueError:
                    logger.exception("Error parsing SSE message: %s", f"event {i}\nmore")
    finally:
        client_module._CLIENT.reset(token)
    records = [r for r in caplog.records if r.name == "mcp.client.streamable_http"]
    assert len(records) == 5
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in records)
    assert records[0].getMessage() == "MCP server ?: Error parsing SSE message: event 0"
