"""A ToolRegistry served as an MCP server (stdio or streamable HTTP) with the official `mcp` SDK's low-level Server."""
from __future__ import annotations

import ipaddress
import json
import logging
import socket
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, MissingDependencyError
from ..executor import CANCELLED
from ..server.guard import LOOPBACK_NAMES, UVICORN_LOGGERS, GuardConfig, RepeatFilter, uvicorn_config
from ..terminal import printable_logs
from . import DEFAULT_PORT, HTTP_PATH, RETURN_META, TRANSPORTS

try:
    import anyio
    from mcp import types
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server
except ImportError as err:  # the optional `mcp` extra
    raise MissingDependencyError("mcp", "mcp", "MCP servers and clients") from err

if TYPE_CHECKING:
    from mcp.server.transport_security import TransportSecuritySettings

    from ..registry import ToolRegistry

__all__ = ["DEFAULT_PORT", "HTTP_PATH", "TRANSPORTS", "build_server", "list_entry", "serve"]


def list_entry(item: Any) -> "types.Tool":
    """How one registry Tool is listed: its schema's `parameters` object is MCP's inputSchema, in JSON Schema's
    words (`json_schema`). The schema's "return" (a bare type, which MCP's object-only outputSchema cannot hold)
    travels in `_meta`."""
    meta = {RETURN_META: item.returns} if item.returns is not None else None
    return types.Tool(name=item.name, description=item.description, input_schema=json_schema(item.parameters),
                      _meta=meta)


def json_schema(schema: Any, depth: int = 0) -> Any:
    """A tool schema as JSON Schema writes it: transformers' `"nullable": true` (OpenAPI's word, which JSON Schema
    does not have, so a client that checks arguments against inputSchema refused null for an Optional parameter) as
    "null" among the types (and None among an enum's values, or a null option beside an anyOf). A copy; the
    registry's schema stays transformers'."""
    if depth > 64 or not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions", "patternProperties") and isinstance(value, dict):
            out[key] = {k: json_schema(v, depth + 1) for k, v in value.items()}
        elif key in ("anyOf", "oneOf", "allOf", "prefixItems") and isinstance(value, list):
            out[key] = [json_schema(v, depth + 1) for v in value]
        elif key in ("items", "additionalProperties", "not", "contains"):
            out[key] = ([json_schema(v, depth + 1) for v in value] if isinstance(value, list)
                        else json_schema(value, depth + 1))
        elif key != "nullable":
            out[key] = value
    if schema.get("nullable") is not True:
        return out
    kind = out.get("type")
    if "const" not in out and isinstance(kind, str | list):
        out["type"] = ([kind] if isinstance(kind, str) else list(kind)) + ([] if "null" in kind else ["null"])
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        return out
    if kind is None and "const" not in out and isinstance(out.get("anyOf"), list) and set(out) <= _ANNOTATIONS | {"anyOf"}:
        if {"type": "null"} not in out["anyOf"]:
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
        return out
    if not set(out) - _ANNOTATIONS:
        return out   # no constraint at all: null is allowed already
    # A $ref, an allOf, a const, an enum without a type: null as an option of its own beside them.
    kept = {k: out.pop(k) for k in list(out) if k in _ANNOTATIONS}
    return {**kept, "anyOf": [out, {"type": "null"}]}


#: Keywords that describe a value, or the document, and constrain nothing: they stay outside the anyOf that adds
#: null (a `$ref` inside it still finds `#/$defs/...` at the root).
_ANNOTATIONS = {"description", "title", "default", "examples", "$defs", "definitions", "$id", "$schema", "$comment",
                "$anchor"}


#: Tool calls running at once, in all and per client session: one client cannot take every worker thread (anyio
#: lends 40) and so hold up every other client's calls; a call past either limit is refused at once, with why.
MAX_RUNNING_CALLS = 32
MAX_SESSION_CALLS = 8


class CallRunner:
    """Runs tools/call requests through a registry, each in a worker thread, within the limits above. A call counts
    until its thread is done, even one its client cancelled (the thread may still be running it)."""

    def __init__(self, registry: "ToolRegistry", most: int = MAX_RUNNING_CALLS,
                 per_session: int = MAX_SESSION_CALLS) -> None:
        self.registry, self.most, self.per_session = registry, most, per_session
        self.running: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()  # calls running, by session
        self._lock = threading.Lock()  # the counts change in the event loop and in the worker threads

    def _enter(self, session: Any) -> bool:
        with self._lock:
            if sum(self.running.values()) >= self.most or self.running.get(session, 0) >= self.per_session:
                return False
            self.running[session] = self.running.get(session, 0) + 1
            return True

    def _leave(self, session: Any) -> None:
        with self._lock:
            self.running[session] -= 1

    async def call(self, session: Any, name: str, arguments: dict[str, Any]) -> tuple[str, bool]:
        """The call's result text and whether it succeeded (a refusal is an error result, as every failure is)."""
        if not self._enter(session):
            return (f"Error: {name}: not run: this server runs at most {self.most} tool calls at once, "
                    f"{self.per_session} per session; call it again when one has finished"), False
        cancelled = threading.Event()

        def run() -> Any:
            token = CANCELLED.set(cancelled)  # an isolated call gives its worker up when the client cancels
            try:
                return self.registry.call(name, arguments)
            finally:
                CANCELLED.reset(token)
                self._leave(session)

        try:
            # registry.call blocks on the tool's thread or worker process; a worker thread keeps the event loop
            # free to answer other requests (pings, concurrent calls) meanwhile. A cancelled request (the client's
            # notifications/cancelled, or its session ending) stops waiting at once and tells the call so.
            result = await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise
        return result.text, result.ok


def structured(text: str) -> dict[str, Any] | None:
    """A result's structuredContent: the result itself where it is a JSON object (a tool that returns a dict, a
    dataclass or a pydantic model is written as one), so a client reads its fields without parsing the text; the
    text block stays, as MCP asks for clients that read only text. None for anything else (a number, a list, prose,
    a result cut to the registry's limit). No outputSchema is declared: what a tool returns is written by rules its
    return annotation does not always match (a Decimal inside as a string), and a declared schema binds every result."""
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text, parse_constant=_not_json, parse_float=_finite, object_pairs_hook=_unique)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) and _depth_within(value, MAX_STRUCTURED_DEPTH) else None


#: The deepest structuredContent sent: the SDK's serialiser gives up at 255 levels, and the whole answer with it
#: (the text included), where the text alone would have gone.
MAX_STRUCTURED_DEPTH = 64


def _not_json(word: str) -> Any:
    """NaN and Infinity, which Python's json writes and JSON has no word for: no structured content then."""
    raise ValueError(f"{word} is not JSON")


def _finite(text: str) -> float:
    """A number too large for a double (1e400) is infinity to Python and null to the SDK: no structure, not a
    different value from the text's."""
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is past what a double holds")
    return value


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object with a key twice holds two values in the text and one in a dict: no structure then."""
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("a key is given twice")
    return out


def _depth_within(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return True


def _client_of(ctx: Any) -> Any:
    """The client connection a call came in on, by which calls are counted (a stdio server has one). The SDK makes a
    ServerSession per request, so counting by it counted every call alone and the per-session limit never held: the
    connection is the session's (a private attribute of the SDK's, read where it is there)."""
    session = getattr(ctx, "session", None)
    return getattr(session, "_connection", None) or session


def build_server(registry: "ToolRegistry", name: str = "toolcall") -> Server:
    """An MCP Server whose tools/list is the registry's tools and whose tools/call goes through `registry.call`
    (argument coercion, time limits, errors as text; a failed call is a result with isError set), a bounded number
    at once (CallRunner)."""
    from .. import __version__

    runner = CallRunner(registry)

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[list_entry(item) for item in registry])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        text, ok = await runner.call(_client_of(ctx) or runner, params.name, dict(params.arguments or {}))
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                    structured_content=structured(text) if ok else None, is_error=not ok)

    def input_schema(tool_name: str) -> dict[str, Any] | None:
        return json_schema(registry.get(tool_name).parameters) if tool_name in registry else None

    return Server(name, version=__version__, on_list_tools=list_tools, on_call_tool=call_tool,
                  get_tool_input_schema=input_schema)


def serve(registry: "ToolRegistry", transport: str = "stdio", host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          announce: Callable[[str], None] | None = None, allowed_hosts: Sequence[str] = (),
          allowed_origins: Sequence[str] = ()) -> None:
    """Serve until the client hangs up (stdio) or the process is stopped (http). For http, `announce` receives the
    endpoint URL once the port is listening (port 0 picks a free one); by default it is printed on stderr.
    `allowed_hosts` and `allowed_origins` are the Host names and web page origins accepted besides loopback's (see
    `transport_security`)."""
    if transport not in TRANSPORTS:
        raise ConfigError(f"unknown MCP transport {transport!r}; valid: {', '.join(TRANSPORTS)}")
    server = build_server(registry)
    if transport == "stdio":
        anyio.run(_serve_stdio, server)
    else:
        security = transport_security(host, allowed_hosts, allowed_origins)
        anyio.run(_serve_http, server, host, port, announce or _to_stderr, security)


async def _serve_stdio(server: Server) -> None:
    # stdio_server points fd 1 at stderr while serving, so a tool that prints cannot corrupt the JSON-RPC stream.
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


#: Sessions open at once over HTTP (a new one past that is a 503 the client can read) and the seconds a session may
#: stay unused before it is closed: a client that keeps its session busy keeps it.
MAX_SESSIONS = 256
SESSION_IDLE_SECONDS = 300.0


async def _serve_http(server: Server, host: str, port: int, announce: Callable[[str], None],
                      security: "TransportSecuritySettings | None") -> None:
    try:
        import uvicorn
    except ImportError as err:
        raise MissingDependencyError("uvicorn", "mcp", "the MCP streamable HTTP transport") from err
    # The SDK keeps up to 10,000 sessions, each for 30 minutes after its last request: a client that only opened
    # sessions took the server from 108 to 485 MB and then left every other client refused for half an hour.
    app = server.streamable_http_app(streamable_http_path=HTTP_PATH, host=host, transport_security=security,
                                     max_sessions=MAX_SESSIONS, session_idle_timeout=SESSION_IDLE_SECONDS)
    logging.getLogger("mcp.server.streamable_http_manager").addFilter(RepeatFilter())
    warning = exposure_warning(host) if security is None else None
    if warning is not None:
        print(warning, file=sys.stderr, flush=True)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        # Bound and listening before the URL is announced, so a client that reads it can connect at once.
        sock = socket.create_server((host, port), family=family)
    except OSError as err:
        raise ConfigError(f"cannot listen on {host}:{port}: {err}") from err
    shown_host = f"[{host}]" if family == socket.AF_INET6 else host
    announce(f"http://{shown_host}:{sock.getsockname()[1]}{HTTP_PATH}")
    # toolcall serve's connection bounds: deadlines for a request's head and body and for an unread answer, and a
    # cap on open connections (the MCP SDK's app sets none of them).
    config = uvicorn_config(app, GuardConfig(), log_level="warning", lifespan="on")
    # The SDK logs the Host and Origin headers it refuses as they were sent: a client's control characters.
    printable_logs(*UVICORN_LOGGERS)
    await uvicorn.Server(config).serve(sockets=[sock])


def transport_security(host: str, allowed_hosts: Sequence[str] = (),
                       allowed_origins: Sequence[str] = ()) -> "TransportSecuritySettings | None":
    """The SDK's Host and Origin checks for a server on `host`: a request must name this machine by a loopback name
    or one of `allowed_hosts` (`name` for any port, `name:port` for one), and a web page's request must come from a
    loopback page or one of `allowed_origins` (`scheme://host[:port]`); a request without Origin is a program's and
    passes. None where nothing is allowed beyond loopback and `host` is not a loopback address: the SDK then checks
    nothing (there is no list of the names this machine goes by), which `exposure_warning` says."""
    hosts = [_bracketed(h.strip().lower()) for h in allowed_hosts if h.strip()]
    origins = [o.strip().lower().rstrip("/") for o in allowed_origins if o.strip()]
    for name in hosts:
        if "/" in name or "*" in name:
            raise ConfigError(f"--allowed-host {name!r}: give a host name or address, optionally with :PORT "
                              "(no scheme, path or wildcard)")
    for origin in origins:
        if not origin.startswith(("http://", "https://")) or "/" in origin.split("://", 1)[1] or "*" in origin:
            raise ConfigError(f"--allowed-origin {origin!r}: give a web page origin, scheme://host[:port] "
                              "(http or https, no path or wildcard)")
    if not is_loopback(host) and not hosts:
        return None
    from mcp.server.transport_security import TransportSecuritySettings

    if is_loopback(host) and _bracketed(host.lower()) not in LOOPBACK_NAMES:
        hosts.append(_bracketed(host.lower()))  # another loopback address (127.0.0.2): its clients name it

    loopback = sorted(LOOPBACK_NAMES)
    named = [*loopback, *hosts]
    # A name without a port is allowed on every port ("name:*"); "[::1]:8766" keeps its brackets.
    host_patterns = [*named, *(f"{n}:*" for n in named if not _has_port(n))]
    origin_patterns = [*(f"{scheme}://{n}{port}" for n in loopback for scheme in ("http", "https")
                         for port in (":*", "")), *origins]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=host_patterns,
                                     allowed_origins=origin_patterns)


def is_loopback(host: str) -> bool:
    """Whether `host` is a name or address of this machine's loopback interface (all of 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bracketed(name: str) -> str:
    """An IPv6 address as a Host header writes it (`[fe80::1]`)."""
    return f"[{name}]" if name.count(":") >= 2 and not name.startswith("[") else name


def _has_port(name: str) -> bool:
    return name.rsplit("]", 1)[-1].count(":") == 1 if name.startswith("[") else name.count(":") == 1


def exposure_warning(host: str) -> str | None:
    """What to tell the user who serves tools beyond loopback with no --allowed-host, where the SDK checks no Host or
    Origin; else None."""
    if is_loopback(host):
        return None
    return (f"toolcall mcp-serve: warning: listening on {host}, not a loopback address: there the MCP SDK checks no Host "
            "or Origin header, so any machine that reaches this port, and any web page opened on one (DNS "
            "rebinding), can call these tools; name this machine's host names with --allowed-host to check them")


def _to_stderr(url: str) -> None:
    print(f"toolcall mcp-serve: listening on {url}", file=sys.stderr, flush=True)
