"""The MCP SDK's streamable HTTP transport on an HTTP client whose JSON response bodies are bounded in size."""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp.client.streamable_http import streamable_http_client

#: Seconds to connect, write or wait for a pooled connection, and to wait for the next bytes of a response (an event
#: stream may stay quiet long): the SDK's own client's timeouts.
TIMEOUT = 30.0
READ_TIMEOUT = 300.0
#: Bytes of one response body read at most, unless it is an event stream (whose events the SDK bounds itself, at
#: 1 MiB each). The SDK reads a JSON answer whole: a server that answered a tools/call with gigabytes would hold them
#: all in memory, several times over, though the model reads only 32,768 characters of a result.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024


class ResponseTooLarge(httpx2.StreamError):
    """A response body went past MAX_RESPONSE_BYTES; the SDK answers the request with a parse error."""


class _QuietTooLarge(logging.Filter):
    """The SDK logs a traceback when it cannot read a response; a response cut off here reaches the caller as the
    request's error (a tool call's error text), so the traceback is not written too."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ResponseTooLarge))


logging.getLogger("mcp.client.streamable_http").addFilter(_QuietTooLarge())


class _BoundedStream(httpx2.AsyncByteStream):
    def __init__(self, inner: Any, limit: int, url: str, declared: int | None) -> None:
        self.inner, self.limit, self.url, self.declared = inner, limit, url, declared

    async def __aiter__(self) -> AsyncIterator[bytes]:
        # Raised while the body is read, where the SDK turns it into the request's error; raised from the transport,
        # it would end the whole session.
        if self.declared is not None and self.declared > self.limit:
            raise ResponseTooLarge(f"the server's response from {self.url} declares {self.declared:,} bytes, past "
                                   f"{self.limit:,}; not read")
        read = 0
        async for chunk in self.inner:
            read += len(chunk)
            if read > self.limit:
                raise ResponseTooLarge(f"the server's response from {self.url} went past {self.limit:,} bytes; "
                                       "stopped reading")
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class BoundedTransport(httpx2.AsyncBaseTransport):
    """httpx2's own transport, with each response body that is not an event stream cut off past `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.limit = limit

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        if response.headers.get("content-type", "").lower().startswith("text/event-stream"):
            return response
        length = response.headers.get("content-length", "")
        declared = int(length) if length.isdigit() else None
        return httpx2.Response(response.status_code, headers=response.headers, request=request,
                               stream=_BoundedStream(response.stream, self.limit, str(request.url), declared),
                               extensions=response.extensions)

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def bounded_http_client(url: str, limit: int | None = None) -> AsyncIterator[Any]:
    """streamable_http_client(url) with the SDK's timeouts, on a BoundedTransport (`limit`: MAX_RESPONSE_BYTES)."""
    timeout = httpx2.Timeout(TIMEOUT, read=READ_TIMEOUT)
    transport = BoundedTransport(MAX_RESPONSE_BYTES if limit is None else limit)
    async with (httpx2.AsyncClient(timeout=timeout, transport=transport) as client,
                streamable_http_client(url, http_client=client) as streams):
        yield streams
