"""The MCP SDK's streamable HTTP transport on an HTTP client that bounds what a server's answers may cost."""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp.client.streamable_http import streamable_http_client

#: Seconds to connect, write or wait for a pooled connection, and to wait for the next bytes of a response (an event
#: stream may stay quiet long): the SDK's own client's timeouts.
TIMEOUT = 30.0
READ_TIMEOUT = 300.0
#: Bytes of one response body read at most, unless it is a successful event stream (whose events the SDK bounds
#: itself, at 1 MiB each). The SDK reads a JSON answer whole: a server that answered a tools/call with gigabytes would
#: hold them all in memory, several times over, though the model reads only 32,768 characters of a result.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
#: Objects and lists one such body may open: the SDK builds a model of each, so 16 MiB of empty content blocks took
#: 1.4 GB. A listing of 128 tools with rich schemas opens some thousands.
MAX_RESPONSE_OBJECTS = 50_000
#: Seconds a POST that expects no answer (a notification, or the client's answer to the server's own request, such as
#: a ping) may wait for the server's 202. The SDK sends them one after another, in line with the client's requests:
#: one the server never acknowledged held every later message (a tools/call included) for the 30 s timeout, and a
#: server flooding pings grew the client by 50 MB a second of waiting tasks. After one times out, the client's answers
#: are dropped unsent for ANSWER_PAUSE seconds (a ping unanswered is the server's loss).
ONE_WAY_TIMEOUT = 2.0
ANSWER_PAUSE = 10.0
#: Events a server may push on one event stream per second (beyond a second's worth at once); faster, the stream is
#: read more slowly, so that TCP holds the server back. The SDK starts a task for each request a server sends and
#: parses every event: pings pushed as fast as the socket takes them piled up 13,000 tasks in 6 s.
MAX_EVENTS_PER_SECOND = 200
#: Seconds between two openings of the server's event stream (GET): one that tells the client to retry at once and
#: closes was reopened a thousand times a second.
GET_INTERVAL = 1.0
#: Seconds the session's closing DELETE may take: one the server never answered held the client's shutdown for the
#: whole close timeout (10 s).
DELETE_TIMEOUT = 2.0


class ResponseTooLarge(httpx2.StreamError):
    """A response body went past MAX_RESPONSE_BYTES or MAX_RESPONSE_OBJECTS; the SDK answers the request with a parse
    error."""


class CallAbandoned(httpx2.SSEError):
    """The client gave up the request this event stream answers (its time limit passed): the stream is not read on.
    An SSEError, which the SDK takes as the stream's end without retrying it."""


class _QuietBounds(logging.Filter):
    """The SDK logs a traceback when it cannot read a response; a response cut off here reaches the caller as the
    request's error (a tool call's error text), so the traceback is not written too."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], (ResponseTooLarge, CallAbandoned)))


logging.getLogger("mcp.client.streamable_http").addFilter(_QuietBounds())


class _BoundedStream(httpx2.AsyncByteStream):
    """A response body read with bounds: bytes and objects (`limit` None: an event stream, not counted), and a stop
    once the request it answers is abandoned."""

    def __init__(self, inner: Any, limit: int | None, url: str, declared: int | None,
                 on_close: Callable[[], None] | None = None) -> None:
        self.inner, self.limit, self.url, self.declared, self.on_close = inner, limit, url, declared, on_close
        self.abandoned = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        # Raised while the body is read, where the SDK turns it into the request's error; raised from the transport,
        # it would end the whole session.
        if self.limit is not None and self.declared is not None and self.declared > self.limit:
            raise ResponseTooLarge(f"the server's response from {self.url} declares {self.declared:,} bytes, past "
                                   f"{self.limit:,}; not read")
        read = opened = events = 0
        started = time.monotonic()
        async for chunk in self.inner:
            if self.abandoned:
                raise CallAbandoned("the request was abandoned; its event stream is not read on")
            if self.limit is None:  # an event stream: paced
                events += chunk.count(b"\n\n") + chunk.count(b"\r\n\r\n")
                ahead = events / MAX_EVENTS_PER_SECOND - (time.monotonic() - started)
                if ahead > 1.0:
                    await asyncio.sleep(ahead - 1.0)
            else:
                read += len(chunk)
                opened += chunk.count(b"{") + chunk.count(b"[")
                if read > self.limit:
                    raise ResponseTooLarge(f"the server's response from {self.url} went past {self.limit:,} bytes; "
                                           "stopped reading")
                if opened > MAX_RESPONSE_OBJECTS:
                    raise ResponseTooLarge(f"the server's response from {self.url} opens more than "
                                           f"{MAX_RESPONSE_OBJECTS:,} objects and lists; stopped reading")
            yield chunk

    async def aclose(self) -> None:
        if self.on_close is not None:
            self.on_close()
        await self.inner.aclose()


#: Characters of an HTTP error page quoted in the request's error.
ERROR_EXCERPT = 200


async def _status_said(request: httpx2.Request, response: httpx2.Response, request_id: Any) -> httpx2.Response | None:
    """For a request the server refused with an HTTP error and no JSON-RPC error of its own (a proxy's 401 page, a
    500), a JSON-RPC error that says the status and the start of the page: the SDK's own stand-in said only "Server
    returned an error response", so a missing token read like a broken server. A 404 is left to the SDK, which reads
    it as a session the server no longer knows (see toolcall.mcp.client); None for every other answer."""
    status = response.status_code
    if status < 400 or status == 404 or \
            response.headers.get("content-type", "").lower().startswith("application/json"):
        return None
    body = b""
    try:
        async for chunk in response.aiter_bytes():  # decoded, should the page be compressed
            body += chunk
            if len(body) >= 4 * ERROR_EXCERPT:
                break
    finally:
        await response.aclose()
    page = " ".join(body.decode("utf-8", "replace").split())[:ERROR_EXCERPT]
    reason = httpx2.codes.get_reason_phrase(status)
    text = f"the server answered HTTP {status}{' ' + reason if reason else ''}" + (f": {page}" if page else "")
    error = {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32603, "message": text}}
    return httpx2.Response(status, headers={"content-type": "application/json"}, request=request,
                           content=json.dumps(error).encode())


def _message(request: httpx2.Request) -> dict[str, Any] | None:
    """The JSON-RPC message a POST from the SDK carries (the client's own, small), or None."""
    if request.method != "POST":
        return None
    try:
        data = json.loads(request.content)
    except (ValueError, httpx2.RequestNotRead):
        return None
    return data if isinstance(data, dict) else None


class BoundedTransport(httpx2.AsyncBaseTransport):
    """httpx2's own transport, bounding what the server's answers cost the client:

    - a response body that is not a successful event stream is read to `limit` bytes and MAX_RESPONSE_OBJECTS;
    - a request's event stream stops being read once the client cancels the request (notifications/cancelled);
    - a notification or an answer to the server waits ONE_WAY_TIMEOUT for its 202 (answers then pause ANSWER_PAUSE);
    - the server's event stream (GET) is opened at most once per GET_INTERVAL, the closing DELETE waits DELETE_TIMEOUT.
    """

    def __init__(self, limit: int, inner: httpx2.AsyncBaseTransport | None = None) -> None:
        self.inner = inner or httpx2.AsyncHTTPTransport()
        self.limit = limit
        self._answers_paused_until = float("-inf")
        self.streams: dict[Any, _BoundedStream] = {}  # JSON-RPC request id -> the event stream answering it
        self._last_get = float("-inf")

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method == "GET":
            wait = self._last_get + GET_INTERVAL - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_get = time.monotonic()
        if request.method == "DELETE":
            try:
                response = await asyncio.wait_for(self.inner.handle_async_request(request), DELETE_TIMEOUT)
            except TimeoutError:
                return httpx2.Response(204, request=request)  # the session ends here either way
            return self._bounded(request, response, None)
        message = _message(request)
        if message is not None and message.get("method") == "notifications/cancelled":
            params = message.get("params")
            abandoned = self.streams.get(params.get("requestId")) if isinstance(params, dict) else None
            if abandoned is not None:
                abandoned.abandoned = True
        if message is not None and ("method" not in message or "id" not in message):  # expects no answer
            answer = "method" not in message  # the client's answer to the server's own request
            if answer and time.monotonic() < self._answers_paused_until:
                return httpx2.Response(202, request=request)
            try:
                response = await asyncio.wait_for(self.inner.handle_async_request(request), ONE_WAY_TIMEOUT)
            except TimeoutError:
                if answer:
                    self._answers_paused_until = time.monotonic() + ANSWER_PAUSE
                return httpx2.Response(202, request=request)
            return self._bounded(request, response, None)
        response = await self.inner.handle_async_request(request)
        if message is not None and "id" in message and "method" in message:
            said = await _status_said(request, response, message["id"])
            if said is not None:
                return said
        return self._bounded(request, response, message.get("id") if message is not None else None)

    def _bounded(self, request: httpx2.Request, response: httpx2.Response, request_id: Any) -> httpx2.Response:
        events = (200 <= response.status_code < 300
                  and response.headers.get("content-type", "").lower().startswith("text/event-stream"))
        length = response.headers.get("content-length", "")
        declared = int(length) if length.isdigit() else None
        tracked = events and request_id is not None and request.method == "POST"
        stream = _BoundedStream(response.stream, None if events else self.limit, str(request.url), declared,
                                (lambda: self._forget(request_id, stream)) if tracked else None)
        if tracked:
            self.streams[request_id] = stream
        return httpx2.Response(response.status_code, headers=response.headers, request=request, stream=stream,
                               extensions=response.extensions)

    def _forget(self, request_id: Any, stream: _BoundedStream) -> None:
        if self.streams.get(request_id) is stream:
            del self.streams[request_id]

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def bounded_http_client(url: str, limit: int | None = None) -> AsyncIterator[Any]:
    """streamable_http_client(url) with the SDK's timeouts, on a BoundedTransport (`limit`: MAX_RESPONSE_BYTES)."""
    timeout = httpx2.Timeout(TIMEOUT, read=READ_TIMEOUT)
    transport = BoundedTransport(MAX_RESPONSE_BYTES if limit is None else limit)
    async with (httpx2.AsyncClient(timeout=timeout, transport=transport) as client,
                # An answer may come as one server-sent event (the SDK's servers answer so): the SDK's own cap of
                # 1 MiB an event failed results the transport's bound allows; that bound holds for events too.
                streamable_http_client(url, http_client=client,
                                       max_sse_event_size=MAX_RESPONSE_BYTES if limit is None else limit) as streams):
        yield streams
