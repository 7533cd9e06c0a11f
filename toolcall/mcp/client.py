"""An MCP server's tools as registry Tools: a client session owned by an asyncio loop in a background thread."""
from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import json
import logging
import os
import re
import shlex
import sys
import threading
import time
import warnings
from collections.abc import Collection, Mapping
from contextlib import AsyncExitStack
from contextvars import ContextVar
from typing import Any, Self
from urllib.parse import urlsplit

from ..errors import ConfigError, MissingDependencyError, ToolError, ToolTimeoutError
from ..schema import MAX_OFFERED_TOOLS, MAX_SCHEMA_DEPTH, meta_schema_problem, nesting_depth
from ..server.guard import RepeatFilter
from ..tool_type import DEFAULT_TIMEOUT, Tool
from . import RETURN_META

try:
    from mcp import ClientSession, StdioServerParameters, types
    from mcp.client.stdio import stdio_client
    from pydantic import BaseModel, ConfigDict, ValidationError

    from .bounded_http import bounded_http_client
except ImportError as err:  # the optional `mcp` extra
    raise MissingDependencyError("mcp", "mcp", "MCP servers and clients") from err

#: Seconds to start a server, initialize the session and list its tools.
CONNECT_TIMEOUT = 30.0
#: Seconds `close` waits for the session and the server process to wind down (the SDK's own shutdown is bounded
#: by about 3 s: stdin closed, 2 s to exit, then the process is killed).
CLOSE_TIMEOUT = 10.0
#: Characters of a server's name shown in errors a model reads.
NAME_LIMIT = 40
#: tools/list pages read at most (a server that keeps answering with a cursor is not followed forever), and tools
#: listed past which no further page is asked for (MAX_TOOLS are offered; 3 pages of 350,000 took 2.2 GB).
MAX_PAGES = 100
MAX_LISTED = 1_024
#: What one server may offer, so that its listing cannot flood every prompt the tools are offered in: tools (as many
#: as a chat request to `toolcall serve` or OpenAI's API may declare), characters of a name (OpenAI's limit) and of a
#: description, characters of an inputSchema written as JSON, and how deep it nests (toolcall.schema's limit, as for
#: a request's functions). A tool past a limit is not offered, and a warning says which and why.
MAX_TOOLS = MAX_OFFERED_TOOLS
MAX_NAME = 64
MAX_DESCRIPTION = 8_192
MAX_SCHEMA_CHARS = 32_768
#: Seconds an imported tool's call waits for the server at most. The registry's limit (the tool's timeout, or a
#: per-call override such as --call-timeout, which the tool cannot see) ends the call for the model first; this
#: ceiling only ends the abandoned wait and cancels the request on the server.
WAIT_CEILING = 600.0
#: Seconds between looks at whether the registry gave a call up (it then cancels the request on the server).
GIVEN_UP_POLL = 0.1
#: Seconds after a failed try to start a lost server again (or reach it) before the next: a server still restarting is
#: tried again by a later call, not by every call at once.
REVIVE_INTERVAL = 1.0

__all__ = ["CLOSE_TIMEOUT", "CONNECT_TIMEOUT", "WAIT_CEILING", "MCPClient", "callable_name", "close_all", "connect",
           "import_tools", "remote_tool", "tasks_required"]


#: The client whose transport runs in this context: the SDK's stdout reader is a task started from the client's
#: owner task, so it sees the client here when it reports a line it cannot parse.
_CLIENT: ContextVar[MCPClient | None] = ContextVar("toolcall_mcp_client", default=None)


class _StdoutGarbage(logging.Filter):
    """The SDK logs a traceback for each stdout line that is not JSON-RPC, in the reader, before it reads the next
    line. For our own clients the line goes to the client instead (one line of report, and a reply that follows it
    can never be taken first); other users of the SDK keep its log."""

    def filter(self, record: logging.LogRecord) -> bool:
        client = _CLIENT.get()
        if client is None or not record.getMessage().startswith("Failed to parse JSONRPC message"):
            return True
        client._stdout_garbage(record.exc_info[1] if record.exc_info else None)
        return False


class _OneLine(logging.Filter):
    """What the SDK logs while it serves toolcall's own clients, as one line per record and at most 5 of a kind a
    minute: a server's garbage made it log a traceback per event, forever, from its event stream, while the call's
    own outcome (an error text, a failed connection) reaches the user anyway. Other users of the SDK keep its log."""

    def __init__(self) -> None:
        super().__init__()
        self.repeats = RepeatFilter()

    def filter(self, record: logging.LogRecord) -> bool:
        client = _CLIENT.get()
        if client is None:
            return True
        if not self.repeats.filter(record):  # keyed by the message's template, before it is filled in
            return False
        record.msg = f"MCP server {getattr(client, 'name', '?')}: " + \
            record.getMessage().strip().split("\n", 1)[0][:300]
        record.args, record.exc_info, record.exc_text, record.stack_info = (), None, None, None
        return True


logging.getLogger("mcp.client.stdio").addFilter(_StdoutGarbage())
# The SDK's client session logs as "client" (the validation of what a server sends it, notifications included).
for _name in [n for n in logging.Logger.manager.loggerDict if n.startswith(("mcp.client", "mcp.shared"))] + ["client"]:
    logging.getLogger(_name).addFilter(_OneLine())


class MCPClient:
    """One connection to an MCP server, usable from synchronous code.

    `server` is a command line (the server runs as a subprocess speaking stdio) or an http(s) URL (streamable
    HTTP). An asyncio loop in a daemon thread owns the session: one task enters the transport and the session and
    holds them open until `close()` (anyio scopes must be left by the task that entered them); each call is a task
    of its own, submitted with run_coroutine_threadsafe and waited for with a timeout.
    """

    def __init__(self, server: str, *, env: Mapping[str, str] | None = None) -> None:
        self.server = server.strip()
        if not self.server:
            raise ConfigError("--mcp needs a server: a command line (stdio) or an http(s):// URL (streamable HTTP)")
        self.is_http = self.server.lower().startswith(("http://", "https://"))
        try:
            self.argv = [] if self.is_http else shlex.split(self.server)
        except ValueError as err:
            raise ConfigError(f"--mcp {self.server!r}: not a valid command line ({err})") from err
        # The command was typed by the user, so by default it runs with the user's environment (the SDK's default
        # passes only a few variables such as PATH and HOME, which would drop PYTHONPATH, virtualenv settings and
        # TOOLCALL_*); `env` narrows that to chosen variables, to which the SDK adds its few.
        self.env = dict(os.environ if env is None else env)
        #: A short name for messages a model may read (never the command line, which can hold paths): the name the
        #: server gives itself once initialized, else its program's or host's name.
        self.name = _short_name(self.argv[0] if self.argv else urlsplit(self.server).hostname or "server")
        self.tools: list[types.Tool] = []
        self.skipped: dict[str, list[str]] = {}   # why -> the listed tools not offered for it (see not_offered)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="toolcall-mcp", daemon=True)
        self._session: ClientSession | None = None
        self._ready = threading.Event()
        self._closing = asyncio.Event()  # set (from any thread, through the loop) to end the session
        self._holder: concurrent.futures.Future[None] | None = None
        self._finished = threading.Event()   # the owner task has left the transport (the server process is gone)
        self._failure: BaseException | None = None
        self._garbage = 0   # stdout lines that were not JSON-RPC
        self._lock = threading.Lock()
        self._revive_lock = threading.Lock()
        self._gone = False   # a call found the connection closed (the server exited): the next call starts it again
        self._next_revive = float("-inf")
        self.closed = False

    def __repr__(self) -> str:
        return f"MCPClient({self.server!r})"

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ lifecycle

    def open(self, timeout: float = CONNECT_TIMEOUT) -> Self:
        """Start the server (stdio) or reach it (http), initialize the session and list its tools."""
        if self.closed:
            raise ConfigError(f"MCP server {self.server!r}: this connection was closed; open a new one")
        if self._holder is not None:
            return self
        self._thread.start()
        self._holder = asyncio.run_coroutine_threadsafe(self._hold(), self._loop)
        if not self._ready.wait(timeout):
            self.close()
            raise ConfigError(f"MCP server {self.server!r}: not ready within {timeout:g} s (started, initialized "
                              "and listed its tools); a slow server may need a longer --mcp-timeout")
        if self._session is None:
            self.close()
            failure = self._failure
            why = str(failure) if isinstance(failure, ConfigError) else _describe(failure)
            raise ConfigError(f"cannot connect to MCP server {self.server!r}: {why}") from failure
        return self

    def _transport(self) -> Any:
        if self.is_http:
            return bounded_http_client(self.server)
        params = StdioServerParameters(command=self.argv[0], args=self.argv[1:], env=self.env)
        return stdio_client(params, errlog=_errlog())

    async def _hold(self) -> None:
        """The owner task: enter transport and session, list the tools, then wait until close() is asked for."""
        _CLIENT.set(self)   # this task's context, which the transport's tasks inherit
        try:
            async with AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport())
                session = await stack.enter_async_context(ClientSession(read, write))
                started = await session.initialize()
                self.name = _short_name(started.server_info.name) or self.name
                listed, invalid = await _list_all(session)
                if self._failure is not None:   # it printed garbage before answering: refuse it however it answered
                    return
                self.tools, self.skipped = offered(listed)
                for why, names in invalid.items():
                    self.skipped.setdefault(why, []).extend(names)
                self._session = session
                self._gone = False  # a start that outlived the call that made it (a slow server) is the connection
                self._ready.set()
                await self._closing.wait()
                self._session = None
        except Exception as err:  # noqa: BLE001 - any failure to connect is reported by open() in one line
            self._failure = self._failure or err
        finally:
            self._session = None
            self._ready.set()
            self._finished.set()

    def _stdout_garbage(self, err: BaseException | None) -> None:
        """A stdout line that is not JSON-RPC (called in the SDK's reader, in stream order). Before the session is
        ready it ends the connection (a stdio server may write only protocol messages there); later it is reported
        once, in one line, and ignored."""
        line = _bad_line(err)
        if self._session is None:
            if self._failure is None:
                self._failure = ConfigError(f"it printed a line that is not JSON-RPC: {line!r} (an MCP server over "
                                            "stdio may write only protocol messages to stdout; logs go to stderr)")
            self._ready.set()   # open() fails now rather than after its timeout
            return
        self._garbage += 1
        if self._garbage == 1:
            print(f"toolcall: MCP server {self.name}: ignoring a stdout line that is not JSON-RPC: {line!r}",
                  file=sys.stderr)

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """End the session (a stdio server is asked to exit, then terminated) and stop the loop thread."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
        _OPEN.discard(self)
        if self._thread.is_alive():
            if self._holder is not None:
                if self._session is not None:
                    self._loop.call_soon_threadsafe(self._closing.set)   # a live session ends politely
                else:
                    self._holder.cancel()   # still starting (or stuck in initialize): nothing to wait for
                if not self._finished.wait(timeout):
                    self._holder.cancel()
                    self._finished.wait(timeout)
            try:  # calls still waiting (abandoned after a timeout) end now, not as "destroyed but pending" tasks
                asyncio.run_coroutine_threadsafe(_cancel_others(), self._loop).result(timeout)
            except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()

    # ------------------------------------------------------------------------------------------ calls

    def call(self, name: str, arguments: Mapping[str, Any], timeout: float | None = DEFAULT_TIMEOUT,
             label: str | None = None, *, again: bool = True) -> str:
        """Call tool `name`; its text, or ToolError (ToolTimeoutError after `timeout` seconds; None waits). Error
        messages begin with `label` (the name the registry knows the tool by), else `name`. A call an HTTP server
        refused because it no longer knows the session (it restarted) never ran there: it is made once more, in a
        new session (`again`)."""
        shown = label or name
        if self._gone and not self.closed:
            self._revive(CONNECT_TIMEOUT if timeout is None else min(max(timeout, 1.0), CONNECT_TIMEOUT))
        session = self._session
        if session is None or self.closed:
            why = f": {_describe(self._failure)}" if self._failure is not None else ""
            raise ToolError(f"{shown}: the MCP server {self.name} is not connected{why}")
        # The SDK's own read timeout is only a backstop, later than ours, so a slow tool reads as a timeout.
        backstop = None if timeout is None else timeout + 5.0
        request = self._own(session.call_tool(name, dict(arguments), read_timeout_seconds=backstop))
        try:
            future = asyncio.run_coroutine_threadsafe(request, self._loop)
        except RuntimeError as err:  # closed in the meantime by another thread
            request.close()
            raise ToolError(f"{shown}: the MCP server {self.name} is not connected (closed)") from err
        try:
            result = _result(future, timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()  # cancels the request task, which tells the server the call was abandoned
            raise ToolTimeoutError(f"{shown}: timed out after {timeout:g} s") from None
        except _GivenUp:
            future.cancel()
            raise ToolError(f"{shown}: the call was given up by its caller") from None
        except Exception as err:  # a dead server, a closed pipe, a protocol error: the model gets text
            lost = self.is_http and _session_lost(err)
            if lost or _connection_closed(err):
                if session is self._session:  # not one another call has already replaced
                    self._gone = True
                if again and lost:
                    return self.call(name, arguments, timeout, label, again=False)
            raise ToolError(f"{shown}: MCP server {self.name} failed: {_describe(err)}") from err
        text = result_text(result)
        if result.is_error:
            # toolcall's own servers send "Error: ..."; the registry adds that prefix again, so it is dropped here.
            raise ToolError(text.removeprefix("Error: "))
        return text

    async def _own(self, request: Any) -> Any:
        """`request` awaited in this client's context: what the SDK logs while it serves the call (a server's
        malformed notifications in the call's stream) is then ours to shorten (_OneLine)."""
        _CLIENT.set(self)
        return await request

    def _revive(self, timeout: float) -> None:
        """After a call found the connection closed (the server exited, an HTTP server went away or forgot the
        session): start the server, or reach it, again, as a person would, so a long-running `serve` or `chat` goes
        on. Once per loss, however many calls find it at once; a server that cannot be started (or reached) again
        leaves that call failing with why, and a later one tries again, at most once per REVIVE_INTERVAL."""
        with self._revive_lock:
            if not self._gone or self.closed:
                return
            if self._holder is not None and not self._ready.is_set() and not self._finished.is_set():
                # The last try is still starting it (a server slower to start than a call's time limit): wait for
                # that one rather than kill it and start another that would be cut short the same way.
                self._ready.wait(timeout)
                self._gone = self._session is None
                return
            if time.monotonic() < self._next_revive:
                return
            if self._holder is not None and not self._finished.is_set():
                self._loop.call_soon_threadsafe(self._closing.set)   # the old owner task leaves its dead transport
                if not self._finished.wait(CLOSE_TIMEOUT):
                    self._holder.cancel()
                    self._finished.wait(CLOSE_TIMEOUT)
            self._ready, self._finished, self._closing = threading.Event(), threading.Event(), asyncio.Event()
            self._session, self._failure = None, None
            self._holder = asyncio.run_coroutine_threadsafe(self._hold(), self._loop)
            self._ready.wait(timeout)
            # Lost until a session is up again: a failed start (the server still restarting) is tried again later.
            self._gone = self._session is None
            self._next_revive = time.monotonic() + REVIVE_INTERVAL if self._gone else float("-inf")

    def registry_tools(self, timeout: float = DEFAULT_TIMEOUT) -> list[Tool]:
        """The server's tools as registry Tools (each calls through this connection)."""
        # A name the grammars accept is the tool's own; only the others are renamed, around them: renamed in listing
        # order, `a-b` took `a_b`, the server's real `a_b` became `a_b_`, and a call of `a_b` ran `a-b`.
        # Names are told apart without case, as the registry looks them up: of `Add` and `add`, the second is renamed.
        kept: dict[int, str] = {}
        taken: set[str] = set()
        for i, entry in enumerate(self.tools):
            if callable_name(entry.name) == entry.name and entry.name.lower() not in taken:
                kept[i] = entry.name
                taken.add(entry.name.lower())
        out = []
        for i, entry in enumerate(self.tools):
            local = kept.get(i) or callable_name(entry.name, taken)
            taken.add(local.lower())
            out.append(remote_tool(self, entry, timeout, local))
        return out


def _connection_closed(err: BaseException) -> bool:
    """Whether a call failed because the connection to the server is gone (not because of the call): closed, or an
    HTTP server that no longer knows the session (restarted: a 404, which the SDK reports as "Session terminated",
    or the server's own "Session not found"; the MCP spec then asks the client for a new session)."""
    import anyio
    import httpx2
    from mcp.shared.exceptions import MCPError
    from mcp.types import CONNECTION_CLOSED

    if isinstance(err, MCPError):
        # The SDK's own error for a closed connection; a server may answer -32000 ("server error") itself.
        return err.code == CONNECTION_CLOSED and err.error.message.strip().lower().startswith("connection closed")
    return isinstance(err, (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, EOFError,
                            BrokenPipeError, ConnectionError, httpx2.TransportError))


def _session_lost(err: BaseException) -> bool:
    """Whether an HTTP server refused a request because it does not know the session (so the request never ran): the
    SDK's own words for a 404 to a request of a session (`Session terminated`), or its server's (`Session not
    found`), as the whole message; a tool's own error that mentions a session is not this."""
    from mcp.shared.exceptions import MCPError

    return isinstance(err, MCPError) and bool(_SESSION_LOST.fullmatch(err.error.message.strip()))


#: How an HTTP server's answer says it no longer knows the session.
_SESSION_LOST = re.compile(r"session (?:terminated|not found)\.?", re.IGNORECASE)


class _GivenUp(Exception):
    """The call's caller stopped waiting for it (its time limit in the registry passed, or it was cancelled)."""


def _result(future: concurrent.futures.Future[Any], timeout: float | None) -> Any:
    """The call's result within `timeout` seconds (TimeoutError after); _GivenUp as soon as the registry gives the call
    up (its own limit passed first, or its caller cancelled it), so the request is cancelled on the server then, not
    when WAIT_CEILING ends the abandoned wait."""
    from ..tool_loop import GIVEN_UP

    given_up = GIVEN_UP.get()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise concurrent.futures.TimeoutError
        if given_up is not None and given_up.is_set():
            raise _GivenUp
        step = GIVEN_UP_POLL if left is None else min(left, GIVEN_UP_POLL)
        try:
            return future.result(step if given_up is not None else left)
        except concurrent.futures.TimeoutError:
            if given_up is None:
                raise


async def _cancel_others() -> None:
    """Cancel every task on this loop but the caller, and let them finish."""
    others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


async def _list_all(session: ClientSession) -> tuple[list[types.Tool], dict[str, list[str]]]:
    """The tools the server lists (MAX_PAGES pages, MAX_LISTED tools at most), and those that are not MCP tools at
    all by why: the SDK refuses a whole page for one such entry (an inputSchema whose type is not "object"), and with
    it every other tool of the server; such a page is read again as plain JSON and its tools taken one by one."""
    listed: list[types.Tool] = []
    invalid: dict[str, list[str]] = {}
    cursor: str | None = None
    for page_number in range(MAX_PAGES + 1):
        if page_number == MAX_PAGES:
            invalid.setdefault(f"its listing goes on past {MAX_PAGES} pages; the tools of the first {MAX_PAGES} are "
                               "offered", [])
            break
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        try:
            page = await session.list_tools(params=params)
            tools, cursor = list(page.tools), page.next_cursor
        except ValidationError:
            send_raw = getattr(getattr(session, "_dispatcher", None), "send_raw_request", None)
            if send_raw is None:  # an SDK without the raw request (ours is pinned below 3): the listing's error
                raise
            tools, cursor = await _list_leniently(send_raw, params, invalid)
            absorb = getattr(session, "_absorb_tool_listing", None)
            if absorb is not None:  # what the session keeps of a listing (output schemas), or each call lists again;
                # it also drops the tools the protocol says a client must not use
                tools = list(absorb(types.ListToolsResult(tools=tools), complete=False).tools)
        listed.extend(tools)
        if not cursor or len(listed) >= MAX_LISTED:
            break
    return listed, invalid


class _RawListing(BaseModel):
    """A tools/list page whose tools are taken as plain JSON, each checked on its own."""

    model_config = ConfigDict(title="ListToolsResult")  # what an error about the page calls it

    tools: list[Any] = []
    nextCursor: str | None = None  # noqa: N815 - the wire's name


async def _list_leniently(send_raw: Any, params: types.PaginatedRequestParams | None,
                          invalid: dict[str, list[str]]) -> tuple[list[types.Tool], str | None]:
    """One page of tools/list read as plain JSON (the SDK's session checks a whole page against the protocol, so its
    raw request is used): its valid tools, its next cursor; the others go to `invalid`."""
    data = params.model_dump(by_alias=True, mode="json", exclude_none=True) if params is not None else None
    raw = _RawListing.model_validate(await send_raw("tools/list", data, {}))
    cursor = raw.nextCursor
    tools: list[types.Tool] = []
    for number, entry in enumerate(raw.tools):
        try:
            tools.append(types.Tool.model_validate(entry))
        except ValidationError as err:
            name = entry.get("name") if isinstance(entry, dict) else None
            problem = err.errors()[0] if err.errors() else {"loc": (), "msg": str(err)}
            where = ".".join(str(part) for part in problem.get("loc", ()))
            why = f"it is not an MCP tool ({where}: {problem.get('msg')})" if where else "it is not an MCP tool"
            invalid.setdefault(why, []).append(name if isinstance(name, str) else f"tools[{number}]")
    return tools, cursor if isinstance(cursor, str) else None


def result_text(result: types.CallToolResult) -> str:
    """A tool result as the text a model reads: its text blocks joined; other blocks named; else structured JSON."""
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, types.TextContent):
            parts.append(block.text)
        elif isinstance(block, (types.ImageContent, types.AudioContent)):
            parts.append(f"[{block.type} {block.mime_type}]")
        elif isinstance(block, types.ResourceLink):
            parts.append(f"[resource {block.uri}]")
        elif isinstance(block, types.EmbeddedResource):
            inner = block.resource
            parts.append(inner.text if isinstance(inner, types.TextResourceContents) else f"[resource {inner.uri}]")
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False)
    return "\n".join(parts)


def _errlog() -> Any:
    """Where a stdio server's stderr goes: ours, if it is a real file (a subprocess needs a descriptor; notebooks
    and captured test output replace sys.stderr with objects that have none), else the process's original one."""
    for stream in (sys.stderr, sys.__stderr__):
        try:
            if stream is not None:
                stream.fileno()
                return stream
        except (AttributeError, OSError, ValueError):
            continue
    return open(os.devnull, "w")


def offered(listed: list[types.Tool]) -> tuple[list[types.Tool], dict[str, list[str]]]:
    """The listed tools toolcall offers, and the others by why they are not (see not_offered and MAX_TOOLS)."""
    tools: list[types.Tool] = []
    skipped: dict[str, list[str]] = {}
    for entry in listed:
        why = not_offered(entry)
        if why is None and len(tools) >= MAX_TOOLS:
            why = f"the server lists more than {MAX_TOOLS} tools; the first {MAX_TOOLS} are offered"
        if why is None:
            tools.append(entry)
        else:
            skipped.setdefault(why, []).append(entry.name)
    return tools, skipped


def not_offered(entry: types.Tool) -> str | None:
    """Why a listed tool is not offered, or None: it can only run as an MCP task, or it is past a listing limit."""
    if tasks_required(entry):
        return "it requires MCP tasks (execution.taskSupport \"required\"), which toolcall does not run"
    if len(entry.name) > MAX_NAME:
        return f"its name is longer than {MAX_NAME} characters"
    if len(entry.description or "") > MAX_DESCRIPTION:
        return f"its description is longer than {MAX_DESCRIPTION:,} characters"
    schema = entry.input_schema or {}
    if schema.get("type", "object") != "object":  # MCP's rule: a call's arguments are one object
        return f"its inputSchema is not an object's (type {json.dumps(schema.get('type'))[:40]})"
    if nesting_depth(schema, MAX_SCHEMA_DEPTH) > MAX_SCHEMA_DEPTH:
        return f"its inputSchema nests deeper than {MAX_SCHEMA_DEPTH} levels"
    if len(json.dumps(schema, ensure_ascii=False)) > MAX_SCHEMA_CHARS:
        return f"its inputSchema is longer than {MAX_SCHEMA_CHARS:,} characters as JSON"
    invalid = meta_schema_problem(schema)  # under 32 KiB of JSON: a few thousand objects at most
    if invalid is not None:
        return f"its inputSchema is {invalid}"
    return None


def tasks_required(entry: types.Tool) -> bool:
    """Whether a listed tool can only be called as an MCP task (`execution.taskSupport: "required"`), which this
    client does not do: every plain call of it would fail."""
    execution = entry.execution
    return execution is not None and execution.task_support == "required"


def _short_name(text: str) -> str:
    """A name fit for a message a model reads: the last path part, without control characters, cut short."""
    base = re.split(r"[\\/]", text.strip())[-1]
    clean = "".join(c for c in base if c.isprintable())
    return clean if len(clean) <= NAME_LIMIT else clean[:NAME_LIMIT - 3] + "..."


def _bad_line(err: BaseException | None) -> str:
    """The stdout line a parse error was raised for (pydantic keeps it as the error's input), cut short."""
    line: Any = None
    errors = getattr(err, "errors", None)
    if callable(errors):
        try:
            line = errors()[0].get("input")
        except Exception:  # noqa: BLE001 - any other shape: fall back to the message
            line = None
    text = str(line if isinstance(line, str) else err)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe(err: BaseException | None) -> str:
    """The first real error inside anyio's exception groups, as 'Type: message'."""
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    if err is None:
        return "unknown error"
    if isinstance(err, ValidationError) and err.errors():
        # What the server sent that breaks the protocol, where: pydantic's own text runs to dozens of lines, and its
        # first says only "1 validation error for CallToolResult".
        first = err.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        return f"the server's {err.title} breaks the MCP protocol at {where or 'its top'}: {first.get('msg')}{more}"
    # The first line, bounded.
    text = str(err).strip().split("\n", 1)[0][:300]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


# ---------------------------------------------------------------------------------------------- tools


def callable_name(name: str, taken: Collection[str] = ()) -> str:
    """The name a model writes for an MCP tool: the tool's own when the call grammars accept it (a letter or _,
    then letters, digits and _), else with every other character as "_" (`get-forecast` -> `get_forecast`)."""
    safe = re.sub(r"[^A-Za-z0-9_]", "_", name) or "tool"
    if safe[0].isdigit():
        safe = "_" + safe
    while safe.lower() in taken:
        safe += "_"
    return safe


def remote_tool(client: MCPClient, entry: types.Tool, timeout: float = DEFAULT_TIMEOUT,
                name: str | None = None) -> Tool:
    """A registry Tool for one MCP tool: schema from its name (`name` replaces it; see callable_name), description
    and inputSchema; calling it calls the server by its own name. The registry binds a model's arguments by the
    inputSchema (toolcall.binding), so the function receives the JSON object the server asked for, keyed by its own
    property names, whatever characters they hold."""
    parameters = dict(entry.input_schema or {"type": "object", "properties": {}})
    remote = entry.name
    name = name or callable_name(remote)
    wait = max(timeout, WAIT_CEILING) if timeout and timeout > 0 else None

    def call_remote(**arguments: Any) -> str:
        # Only the arguments the model gave are sent: an omitted optional one takes the server's own default.
        return client.call(remote, arguments, wait, name)

    call_remote.__name__ = call_remote.__qualname__ = name
    call_remote.__doc__ = entry.description
    returns = (entry.meta or {}).get(RETURN_META)
    # Remote results may change between calls (the server holds the state), so they are never cached.
    return Tool(name=name, description=entry.description or "", parameters=parameters, func=call_remote,
                timeout=timeout, cacheable=False, returns=returns if isinstance(returns, dict) else None)


# ---------------------------------------------------------------------------------------------- process-wide

_OPEN: set[MCPClient] = set()
_CONNECTED: dict[tuple[str, tuple[tuple[str, str], ...] | None], MCPClient] = {}
_CONNECT_LOCK = threading.Lock()


def connect(server: str, timeout: float = CONNECT_TIMEOUT, *, env: Mapping[str, str] | None = None) -> MCPClient:
    """An open client for `server` (`env`: see MCPClient), shared within the process (a second `--mcp` of the same
    server, or a registry built again, reuses the connection); closed at exit. Tools that require MCP tasks are not
    offered; a warning names them."""
    key = (server.strip(), None if env is None else tuple(sorted(env.items())))
    with _CONNECT_LOCK:
        client = _CONNECTED.get(key)
        if client is not None and not client.closed and client._session is not None:
            return client
        client = MCPClient(server, env=env)
        _OPEN.add(client)
        try:
            client.open(timeout)
        except BaseException:
            _OPEN.discard(client)
            raise
        _CONNECTED[key] = client
    for why, names in client.skipped.items():
        if not names:  # about the listing, not a tool
            warnings.warn(f"toolcall: --mcp {client.name}: {why}", RuntimeWarning, stacklevel=2)
            continue
        shown = ", ".join(repr(n if len(n) <= MAX_NAME else n[:MAX_NAME] + "...") for n in names[:5])
        more = f" and {len(names) - 5:,} more" if len(names) > 5 else ""
        warnings.warn(f"toolcall: --mcp {client.name}: not offering {shown}{more}: {why}", RuntimeWarning, stacklevel=2)
    return client


def import_tools(server: str, timeout: float = DEFAULT_TIMEOUT, *, connect_timeout: float = CONNECT_TIMEOUT,
                 env: Mapping[str, str] | None = None) -> list[Tool]:
    """The tools of MCP server `server` (a command line or an http(s) URL) as registry Tools with `timeout`."""
    return connect(server, connect_timeout, env=env).registry_tools(timeout)


@atexit.register
def close_all() -> None:
    """Close every client this process opened (registered with atexit, so servers do not outlive the command)."""
    for client in list(_OPEN):
        try:
            client.close()
        except Exception as err:  # noqa: BLE001 - one server failing to close must not keep the others open
            print(f"toolcall: closing MCP server {client.name} failed: {_describe(err)}", file=sys.stderr)
    _CONNECTED.clear()
