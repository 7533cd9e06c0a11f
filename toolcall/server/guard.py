"""The server's defences below the endpoints: who may send requests (Host, Origin, JSON bodies) and how long and how many connections may stay open."""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..options import at_least, option

if TYPE_CHECKING:
    from .protocol import ApiError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Host names that always mean this machine (DNS rebinding sends the attacker's own name, never these).
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})
#: Methods that change nothing: a cross-site page can start them anyway (an <img>, a link), and learns nothing back.
SAFE_METHODS = frozenset({"GET", "HEAD"})
#: Headers every answer carries: no framing by another page, no content sniffing, no referrer leaking the URL.
SECURITY_HEADERS = [(b"x-frame-options", b"DENY"), (b"content-security-policy", b"frame-ancestors 'none'"),
                    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
#: The largest request head (request line and headers) accepted, in bytes.
MAX_HEADER_BYTES = 16 * 1024
#: File descriptors kept for everything but client connections (the model's files, tools, logs).
RESERVED_DESCRIPTORS = 64
#: Seconds Ctrl-C (or SIGTERM) lets the replies in flight finish before they are cancelled: uvicorn waited for them
#: without end, so a reply inside a slow tool held the stopping server for the tool's whole time limit.
SHUTDOWN_GRACE = 3


@dataclass
class GuardConfig:
    """Who may reach the server, and how long and how many connections may stay open."""

    allowed_hosts: tuple[str, ...] | None = option(
        None, flag="--allowed-host", metavar="HOST[:PORT],...",
        help="Host header values accepted besides 127.0.0.1, localhost, [::1] and the bound address, on the bound "
             "port (comma-separated; a name without a port accepts any port; '*' accepts any Host: only behind a "
             "proxy that checks it). Needed when clients reach the server by a name, e.g. behind a reverse proxy")
    allowed_origins: tuple[str, ...] | None = option(
        None, flag="--allowed-origin", metavar="ORIGIN,...",
        help="web page origins (scheme://host[:port], comma-separated) allowed to send requests besides the "
             "server's own chat page; every other cross-site request is refused")
    max_connections: int = option(
        128, metavar="N", help="open client connections at most; more are closed at once (lowered to fit the "
                               "process's file-descriptor limit)")
    header_timeout: float = option(
        10.0, metavar="SECONDS", help="how long a connection may take to send a request's headers, counted from "
                                      "when it opened or finished its previous request")
    body_timeout: float = option(
        30.0, metavar="SECONDS", help="how long a request may take to send its body after its headers")
    keep_alive_timeout: int = option(
        5, metavar="SECONDS", help="how long an idle connection is kept open between requests")
    send_timeout: float = option(
        30.0, metavar="SECONDS", help="how long a client may leave the server's answer unread (its send buffer "
                                      "full) before the connection is closed")

    def __post_init__(self) -> None:
        at_least(self, max_connections=1, header_timeout=0.1, body_timeout=0.1, keep_alive_timeout=1,
                 send_timeout=0.1)
        self.allowed_hosts = tuple(h.strip().lower() for h in self.allowed_hosts or () if h.strip())
        self.allowed_origins = tuple(o.strip().lower().rstrip("/") for o in self.allowed_origins or () if o.strip())


# --- requests: Host, Origin, content type --------------------------------------------------------------------------
def _split_host(value: str, default_port: int) -> tuple[str, int] | None:
    """("name", port) of a Host header or an origin's authority; None when it is not one."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[:end + 1], value[end + 1:]
    else:
        name, sep, port = value.partition(":")
        rest = sep + port
    if not name:
        return None
    if not rest:
        return name, default_port
    # isascii: "²".isdigit() is true, and int() refuses it (a 500 without the guard's headers).
    if not rest.startswith(":") or not (rest[1:].isascii() and rest[1:].isdigit()) or len(rest) > 6:
        return None
    return name, int(rest[1:])


def _origin(value: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an Origin header; None for "null" or anything that is not an http(s) origin."""
    scheme, sep, authority = value.strip().lower().partition("://")
    if not sep or scheme not in ("http", "https") or "/" in authority:
        return None
    host = _split_host(authority, 443 if scheme == "https" else 80)
    return None if host is None else (scheme, *host)


class Guard:
    """ASGI middleware: refuses requests no honest client sends before they reach an endpoint.

    - the Host must name this server (loopback, the address it was reached on, or --allowed-host), so a page whose
      own name was rebound to 127.0.0.1 (DNS rebinding) is refused;
    - a request from a web page must come from the server's own page or an --allowed-origin (Origin, and
      Sec-Fetch-Site where browsers send it); plain navigations to a page are let through;
    - a POST must say its body is JSON, which no cross-site form or no-cors fetch can send without a preflight
      (that this server never answers);
    - every answer says it may not be framed or sniffed.
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], config: GuardConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is not None:
            await _answer(refusal, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                own = {name.lower() for name, _ in message.get("headers", ())}  # the page sets a stricter CSP
                message["headers"] = [*message.get("headers", ()), *(h for h in SECURITY_HEADERS if h[0] not in own)]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def refusal(self, scope: Scope) -> ApiError | None:
        """Why this request is refused, or None."""
        # Imported here: pydantic comes with the [serve] extra, and the CLI reads GuardConfig without it.
        from .protocol import ApiError

        raw = scope.get("headers", ())
        # h11 bounds only a head that arrives in pieces; one sent in a single write is whole before it is measured.
        size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") + sum(
            len(k) + len(v) + 4 for k, v in raw)
        if size > MAX_HEADER_BYTES:
            return ApiError(431, f"the request's headers are {size:,} bytes; at most {MAX_HEADER_BYTES:,} are "
                            "accepted", code="headers_too_large")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}
        scheme = scope.get("scheme", "http")
        host_header = headers.get("host", "")
        host = _split_host(host_header, 443 if scheme == "https" else 80)
        if host is None or not self._host_allowed(host, scope.get("server")):
            # With the port this server listens on: a Host without one means the scheme's (80), which is not ours,
            # and "use 127.0.0.1" read as a contradiction to a client that had sent 127.0.0.1.
            server = scope.get("server")
            port = f":{server[1]}" if server and len(server) > 1 and server[1] else ""
            return ApiError(400, f"Host {host_header!r} is not a name of this server; use 127.0.0.1{port} or "
                            f"localhost{port}, or start it with --allowed-host NAME", code="invalid_host")
        method = scope.get("method", "GET")
        navigation = method in SAFE_METHODS and headers.get("sec-fetch-mode") == "navigate"
        if not navigation:
            refused = self._origin_refusal(headers, scheme, host)
            if refused is not None:
                return refused
        if method not in SAFE_METHODS and method != "OPTIONS":
            media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media != "application/json":
                shown = repr(media) if media else "none"
                return ApiError(415, f"Content-Type {shown} is not accepted: a {method} body must be JSON, sent with "
                                "'Content-Type: application/json'", code="unsupported_media_type")
        return None

    def _host_allowed(self, host: tuple[str, int], server: Any) -> bool:
        name, port = host
        allowed = self.config.allowed_hosts or ()
        if "*" in allowed or name in allowed or f"{name}:{port}" in allowed:
            return True
        if not server:  # a Unix socket: no port to compare
            return name in LOOPBACK_NAMES
        address, bound_port = server[0], server[1]
        literal = f"[{address}]" if ":" in str(address) else str(address)
        return port == bound_port and (name in LOOPBACK_NAMES or name == literal.lower())

    def _origin_refusal(self, headers: dict[str, str], scheme: str, host: tuple[str, int]) -> ApiError | None:
        from .protocol import ApiError

        origin = headers.get("origin")
        site = headers.get("sec-fetch-site", "").lower()
        if origin is not None and origin.strip().lower().rstrip("/") in (self.config.allowed_origins or ()):
            return None
        if origin is not None and _origin(origin) != (scheme, *host):
            return ApiError(403, f"cross-origin request refused: a page at {origin!r} may not use this server; start "
                            "it with --allowed-origin ORIGIN to allow one", code="cross_origin_request")
        if site in ("cross-site", "same-site"):
            return ApiError(403, f"cross-site request refused (Sec-Fetch-Site: {site}); start the server with "
                            "--allowed-origin ORIGIN to allow a page", code="cross_origin_request")
        return None


async def _answer(error: ApiError, send: Send) -> None:
    body = json.dumps(error.body()).encode()
    await send({"type": "http.response.start", "status": error.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})


# --- connections: uvicorn's settings, and the deadlines it lacks --------------------------------------------------
def protocol_class(config: GuardConfig) -> type:
    """uvicorn's h11 protocol with a connection cap and read deadlines.

    uvicorn times out only an idle connection after a response; a connection that never sends, trickles its headers
    or never finishes its body would be held forever. Here a request must have its headers within header_timeout of
    the connection's start (or of its previous response), and its body within body_timeout more. Past
    max_connections, a new connection closes the one that has waited longest without sending a request, else the one
    sending its body slowest (bytes a second since its headers; the oldest of equals), or, when every connection is
    being answered, is closed itself: idle sockets, or bodies sent never or a byte at a time, can neither use up the
    file descriptors nor keep an honest client, who sends its request at once, out, and a flood of new connections
    that send headers only cannot close an upload under way (the oldest sender was the one closed).
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._deadline: asyncio.TimerHandle | None = None
            self._idle_since = self.loop.time()
            self._body_since: float | None = None   # when its headers arrived, while its body is still coming
            self._body_bytes = 0   # bytes received since then
            if len(self.connections) > config.max_connections:
                others = [c for c in self.connections if c is not self and isinstance(c, GuardedH11Protocol)]
                idle = [c for c in others if c._waiting()]
                # 140 connections that sent headers and never their body kept every client out for 30 s at a time.
                sending = [c for c in others if c._sending_body()]
                if idle:
                    min(idle, key=lambda c: c._idle_since).transport.abort()
                elif sending:
                    now = self.loop.time()
                    min(sending, key=lambda c: (c._body_rate(now), c._body_since or 0.0)).transport.abort()
                else:
                    transport.close()
                    return
            self._arm(config.header_timeout)

        def _waiting(self) -> bool:
            """Open and waiting for a request's headers (new, or idle between requests)."""
            return self.conn.their_state is h11.IDLE and not self.transport.is_closing()

        def _sending_body(self) -> bool:
            """Open, its request's headers in and its body not yet whole."""
            return (self._body_since is not None and self.conn.their_state is h11.SEND_BODY
                    and not self.transport.is_closing())

        def _body_rate(self, now: float) -> float:
            """Bytes a second its body has come at since its headers."""
            return self._body_bytes / max(now - (self._body_since or now), 0.001)

        def _arm(self, seconds: float) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(seconds, self._expired)

        def _expired(self) -> None:
            self._deadline = None
            if not self.transport.is_closing() and self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
                self.transport.abort()  # no answer is owed to a request that never arrived whole

        def data_received(self, data: bytes) -> None:
            waiting = self.conn.their_state is h11.IDLE
            if not waiting and self._body_since is not None:
                self._body_bytes += len(data)
            super().data_received(data)
            if waiting and self.conn.their_state is not h11.IDLE:  # the headers are in: the body's turn
                self._body_since, self._body_bytes = self.loop.time(), 0
                self._arm(config.body_timeout + 1)  # the app answers 408 at body_timeout; this closes a second later

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._idle_since = self.loop.time()
                self._arm(config.header_timeout + config.keep_alive_timeout)

        def pause_writing(self) -> None:
            # The client has left send_timeout's worth of answer unread (pipelined requests it never reads, a stream
            # it stopped taking): nothing else closes such a connection, which holds its buffered answer.
            super().pause_writing()
            self._unstall()
            self._stall: asyncio.TimerHandle | None = self.loop.call_later(config.send_timeout, self._stalled)

        def resume_writing(self) -> None:
            super().resume_writing()
            self._unstall()

        def _unstall(self) -> None:
            stall: asyncio.TimerHandle | None = getattr(self, "_stall", None)
            if stall is not None:
                stall.cancel()
                self._stall = None

        def _stalled(self) -> None:
            self._stall = None
            if not self.transport.is_closing():
                self.transport.abort()

        def connection_lost(self, exc: Exception | None) -> None:
            if getattr(self, "_deadline", None) is not None:
                self._deadline.cancel()  # type: ignore[union-attr]
            self._unstall()
            super().connection_lost(exc)

    return GuardedH11Protocol


def descriptor_budget(wanted: int) -> int:
    """The connection cap that fits this process's open-file limit: the soft limit is raised to the hard one, and
    RESERVED_DESCRIPTORS stay free for everything else."""
    try:
        import resource
    except ImportError:  # not on this platform: nothing to fit
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + RESERVED_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - RESERVED_DESCRIPTORS))


def uvicorn_config(app: Any, config: GuardConfig, **options: Any) -> Any:
    """uvicorn's Config for `app` with the guard's bounds: connections, keep-alive, header size, deadlines; no
    WebSocket (nothing here speaks it, and a browser lets any page open one); no X-Forwarded-* trusted. `options` go
    to uvicorn as they are (host, port, log_level)."""
    import uvicorn

    limit = descriptor_budget(config.max_connections)
    bounded = replace(config, max_connections=limit)
    quiet_repeats()
    return uvicorn.Config(app, http=protocol_class(bounded), limit_concurrency=limit + 1,
                          timeout_keep_alive=config.keep_alive_timeout, h11_max_incomplete_event_size=MAX_HEADER_BYTES,
                          proxy_headers=False, server_header=False, ws="none",
                          timeout_graceful_shutdown=SHUTDOWN_GRACE, **options)


# --- the log ------------------------------------------------------------------------------------------------------
class RepeatFilter(logging.Filter):
    """Lets through `per_window` records of one kind (logger, message template, exception type) per `window` seconds,
    the traceback with the first only; the first record of the next window says how many were dropped. A client that
    sends garbage or opens connections in a loop cannot flood the log."""

    def __init__(self, per_window: int = 5, window: float = 60.0) -> None:
        super().__init__()
        self.per_window = per_window
        self.window = window
        self.seen: dict[tuple[str, str, str], tuple[float, int]] = {}  # kind -> (window start, records in it)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is asyncio.CancelledError:
            # A reply still running when the server stopped, cancelled after SHUTDOWN_GRACE: no fault to trace.
            record.msg, record.args = "a reply still running when the server stopped was cancelled", ()
            record.exc_info, record.exc_text = None, None
        kind = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        key = (record.name, str(record.msg)[:200], kind)
        now = time.monotonic()
        start, count = self.seen.get(key, (now, 0))
        dropped = 0
        if now - start > self.window:
            dropped = max(0, count - self.per_window)
            start, count = now, 0
        if len(self.seen) > 1000:  # many kinds: forget them rather than grow
            self.seen.clear()
        self.seen[key] = (start, count + 1)
        if count >= self.per_window:
            return False
        if count >= 1:
            record.exc_info, record.exc_text = None, None
        if dropped:
            record.msg = f"{record.msg} [{dropped} more like this were not logged]"
        return True


#: The loggers a client can make write: uvicorn's (bad requests, app errors), asyncio's (accept failures), ours.
NOISY_LOGGERS = ("uvicorn.error", "asyncio", "toolcall.server")
#: The loggers uvicorn gives handlers of its own.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def quiet_repeats() -> None:
    """Put one RepeatFilter on each of NOISY_LOGGERS (once)."""
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatFilter) for f in logger.filters):
            logger.addFilter(RepeatFilter())
