"""The FastAPI app: /health, /v1/models, /v1/chat/completions and /v1/responses (JSON or SSE), the chat page at /,
OpenAI-shaped errors."""
import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import re
import secrets
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeAlias

from ..errors import MissingDependencyError
from .choice import ReplyEvent, run_choice
from .guard import Guard, GuardConfig, Receive, Scope, Send
from .handoffs import HandoffMemory
from .planning import Plan, ServerSettings, plan_request
from .protocol import (
    ApiError,
    ChatRequest,
    UsageCount,
    completion_id,
    now,
    parse_request,
    split_arguments,
)
from .responses import OutputItems, ResponsesRequest, in_responses_terms, parse_responses, response_body, response_id
from .shared_model import SharedModel

if TYPE_CHECKING:
    from fastapi import FastAPI, Request

    from ..backends.base import Backend
    from ..dialects.base import Dialect

MAX_BODY_BYTES = 1 << 20
#: Choices generated at once (each holds a worker thread until it ends); a request waits until all its n fit.
MAX_ACTIVE = 64
FINGERPRINT = "toolcall"
LOG = logging.getLogger("toolcall.server")


@dataclass
class Server:
    """Everything a request needs: the shared engine, the dialect, the settings, and the access key."""

    engine: SharedModel
    dialect: "Dialect"
    settings: ServerSettings
    api_key: str | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    guard: GuardConfig = field(default_factory=GuardConfig)
    handoffs: HandoffMemory = field(default_factory=HandoffMemory)  # replies that ended with the client's calls


def page_policy(html: str) -> str:
    """The chat page's Content-Security-Policy: its own inline script and style run (by their hashes), it talks to
    this server only, and nothing else runs, loads or frames it: model text and tool results are shown in it, so a
    markup slip there must not become a script from the reply."""
    def hashes(tag: str) -> str:
        bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in bodies)

    return (f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; connect-src 'self'; "
            "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _fastapi() -> Any:
    try:
        import fastapi
    except ImportError as err:
        raise MissingDependencyError("fastapi", "serve", "toolcall serve") from err
    return fastapi


def create_app(backend: "Backend", dialect: "Dialect", settings: ServerSettings, *, api_key: str | None = None,
               max_body_bytes: int = MAX_BODY_BYTES, guard: GuardConfig | None = None,
               max_active: int = MAX_ACTIVE) -> "FastAPI":
    """The OpenAI-compatible app over one loaded backend; run it with uvicorn's settings from
    `toolcall.server.guard.uvicorn_config` (`toolcall serve` does)."""
    fastapi = _fastapi()
    from starlette.exceptions import HTTPException
    from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse

    Request: TypeAlias = fastapi.Request  # type: ignore[name-defined]  # fastapi is imported lazily; the endpoints below name it, so FastAPI passes the request

    server = Server(SharedModel(backend), dialect, settings, api_key, max_body_bytes, guard or GuardConfig())
    app = fastapi.FastAPI(title="toolcall", description="OpenAI-compatible chat completions with tools run "
                          "mid-generation", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = server
    slots = ChoiceSlots(max_active)
    app.state.slots = slots
    app.add_middleware(HideCrashes)
    app.add_middleware(Guard, config=server.guard)  # added last: it runs first
    page_html = resources.files("toolcall.server").joinpath("static/index.html").read_text("utf-8")
    page_headers = {"content-security-policy": page_policy(page_html)}

    def error(err: ApiError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(ApiError)
    async def api_error(_: Any, err: ApiError) -> JSONResponse:
        return error(err)

    @app.exception_handler(HTTPException)
    async def http_error(_: Any, err: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code)
        message = str(err.detail)
        if err.status_code == 404:  # a client built for another API (/v1/responses, /v1/completions) learns why
            message = ("Not Found: this server serves POST /v1/chat/completions, POST /v1/responses, GET /v1/models, "
                       "GET /health and the chat page at /; the legacy Completions API is not served")
        return error(ApiError(err.status_code, message, code=code))

    def authorize(request: Request) -> None:
        if server.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), server.api_key.encode()):
            raise ApiError(401, "Incorrect or missing API key: send 'Authorization: Bearer <key>'",
                           code="invalid_api_key")

    def model_card() -> dict[str, Any]:
        return {"id": settings.model_id, "object": "model", "created": STARTED, "owned_by": "toolcall"}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": settings.model_id, "active": server.engine.active,
                "waiting": slots.waiting}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        authorize(request)
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str, request: Request) -> dict[str, Any]:
        authorize(request)
        if model_id != settings.model_id:
            raise ApiError(404, f"The model '{model_id}' does not exist", param="model", code="model_not_found")
        return model_card()

    @app.get("/v1/toolcall/tools")
    async def tools(request: Request) -> dict[str, Any]:
        """The server's own tools (an extension, for the chat page): name, description, schema."""
        authorize(request)
        return {"object": "list", "data": [t.schema["function"] for t in settings.registry or ()],
                "auth": server.api_key is not None}

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(page_html, headers=page_headers)

    async def planned(chat: ChatRequest) -> Plan:
        """The request's plan, once its model, choices and context are known to fit this server."""
        if chat.model != settings.model_id:
            raise ApiError(404, f"The model '{chat.model}' does not exist; this server serves "
                           f"'{settings.model_id}'", param="model", code="model_not_found")
        if chat.n > slots.size:
            raise ApiError(400, f"n: this server generates at most {slots.size} choices at once, got {chat.n}",
                           param="n")
        # In a worker thread: the chat template is rendered, and under constrain_calls the call grammar built.
        plan = await asyncio.to_thread(plan_request, chat, settings, dialect, server.engine.backend, server.handoffs)
        room = await _check_context(server.engine, plan.prompt, chat)
        if room is not None and room < plan.config.max_new_tokens:  # the reply may use what the context has left
            plan.config = replace(plan.config, max_new_tokens=room)
        return plan

    def event_stream(events: AsyncIterator[str]) -> StreamingResponse:
        return StreamingResponse(events, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:  # JSON or an SSE stream
        authorize(request)
        body = await _read_body(request, server.max_body_bytes, server.guard.body_timeout)
        # In a worker thread: checking the functions' schemas takes up to about a second (MAX_SCHEMA_NODES), which
        # the event loop must not wait for while it serves every other connection.
        chat = await asyncio.to_thread(parse_request, body)
        plan = await planned(chat)
        if chat.stream:
            return event_stream(_sse(server, chat, plan, request, slots))
        return JSONResponse(await _complete(server, chat, plan, request, slots))

    @app.post("/v1/responses")
    async def responses(request: Request) -> Any:  # the Responses API over the same replies: JSON or SSE events
        authorize(request)
        body = await _read_body(request, server.max_body_bytes, server.guard.body_timeout)
        asked, chat, origins = await asyncio.to_thread(parse_responses, body)
        try:
            plan = await planned(chat)
        except ApiError as err:
            raise in_responses_terms(err, origins) from None
        if chat.stream:
            return event_stream(_response_events(server, asked, plan, request, slots))
        return JSONResponse(await _response(server, asked, plan, request, slots))

    return app


STARTED = now()


async def _read_body(request: "Request", limit: int, timeout: float) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the request body is {declared} bytes; at most {limit} are accepted",
                       code="request_too_large")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):  # a body that never ends (short Content-Length, no last chunk)
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, f"the request body exceeds {limit} bytes", code="request_too_large")
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(408, f"the request body did not arrive within {timeout:g} seconds ({size} bytes came)",
                       code="request_timeout") from None
    return b"".join(chunks)


async def _check_context(engine: SharedModel, prompt: str, chat: ChatRequest) -> int | None:
    """Refuse a prompt (with the reply it asks for) that cannot fit the model's context, before any decoding; return
    how many tokens the context has left for the reply (None when the engine states no bound)."""
    backend = engine.backend
    limit = backend.context_size()
    if limit is None:
        return None

    def count() -> tuple[int, bool]:
        # Tokenized under the model's lock (the tokenizer is the backend's, shared like the model), so a long prompt
        # is counted on growing prefixes (exactly up to 64 KiB): one far past the context is refused after a prefix,
        # never holding the lock, which every streaming reply waits on, for the whole 1 MiB a body may carry.
        size = max(65_536, 8 * (limit + 1))
        while True:
            with engine.lock:
                tokens = backend.prompt_tokens(prompt[:size])
            if size >= len(prompt):
                return tokens, True
            if tokens > limit + 1:  # a prefix over the context: the whole is too (a cut may split one token in two)
                return tokens - 1, False
            size *= 2

    tokens, whole = await asyncio.to_thread(count)
    asked = chat.max_completion_tokens or chat.max_tokens
    if tokens >= limit:
        counted = f"{tokens} tokens" if whole else f"more than {tokens} tokens"
        raise ApiError(400, f"This model's maximum context length is {limit} tokens. However, your messages resulted "
                       f"in {counted}. Please reduce the length of the messages.", param="messages",
                       code="context_length_exceeded")
    if asked is not None and tokens + asked > limit:
        raise ApiError(400, f"This model's maximum context length is {limit} tokens. However, you requested "
                       f"{tokens + asked} tokens ({tokens} in the messages, {asked} in the completion). Please reduce "
                       "the length of the messages or completion.", param="messages", code="context_length_exceeded")
    return limit - tokens


class ChoiceSlots:
    """At most `size` choices generate at once; a request waits, in arrival order, until all its n choices fit.

    Each choice holds its slot until its worker thread ends (not when its client leaves: a cancelled choice may still
    be inside a tool), so the slots bound the worker threads.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def waiting(self) -> int:
        return sum(n for n, _ in self._waiters)

    async def acquire(self, n: int) -> None:
        if not self._waiters and self.free >= n:
            self.free -= n
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((n, turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release(n)  # granted just as the request was cancelled: give it back
            else:
                with contextlib.suppress(ValueError):  # _wake may have dropped it already, as cancelled
                    self._waiters.remove((n, turn))
                self._wake()  # a large request leaving the head of the line may let smaller ones in
            raise

    def release(self, n: int) -> None:
        self.free += n
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            n, turn = self._waiters[0]
            if turn.done():
                # Cancelled (its client left) in the same loop turn as a release, before its task ran: granting it
                # took its n slots for good and raised in the releasing worker's callback.
                self._waiters.popleft()
                continue
            if self.free < n:
                return
            self._waiters.popleft()
            self.free -= n
            turn.set_result(None)


class HideCrashes:
    """ASGI middleware: an unexpected exception is logged with a request id, and the client gets a 500 that names the
    id but not the exception (its text may hold paths, prompts or keys)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:  # noqa: BLE001 - every crash becomes a logged 500, never a traceback to the client
            ident = _failure(f"{scope.get('method')} {scope.get('path')} failed")
            if started:  # a stream was cut mid-way: nothing more can be said to the client
                return
            body = json.dumps(ApiError(500, _generic(ident)).body()).encode()
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})


def _failure(what: str, detail: str | None = None) -> str:
    """Log a server-side failure (with the current exception's traceback, if any) under a new request id."""
    ident = "req_" + uuid.uuid4().hex[:16]
    if detail is None:
        LOG.exception("%s: %s", ident, what)
    else:
        LOG.error("%s: %s: %s", ident, what, detail)
    return ident


def _generic(ident: str) -> str:
    return f"The server had an error while processing your request (request id {ident}); its log has the details."


#: How often, at most, a reply's request asks its connection whether the client is still there.
LOOK_SECONDS = 0.5


class _Choices:
    """The worker threads of one request's choices, and the queue their events reach the event loop through."""

    def __init__(self, server: Server, plan: Plan, n: int, slots: ChoiceSlots) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[ReplyEvent] = asyncio.Queue()
        self.cancel = threading.Event()
        self.live = n
        self.slots = slots
        self.threads = [threading.Thread(target=self._work, name=f"toolcall-reply-{i}", daemon=True,
                                         args=(server, plan, i)) for i in range(n)]

    def _work(self, server: Server, plan: Plan, index: int) -> None:
        try:
            run_choice(server.engine, server.dialect, plan, index, self._emit, self.cancel, server.handoffs)
        finally:
            self._call(self.slots.release, 1)  # this thread's slot, now that it no longer runs

    def _emit(self, event: ReplyEvent) -> None:
        self._call(self.queue.put_nowait, event)

    def _call(self, func: Callable[..., None], *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(func, *args)
        except RuntimeError:  # the event loop is closed (the server stopped): no one is left to tell
            pass

    def start(self) -> None:
        """Start the workers; the request holds `len(threads)` slots, and each worker gives its own back."""
        for k, t in enumerate(self.threads):
            try:
                t.start()
            except RuntimeError:  # no more threads: the ones not started give their slots back now
                self.cancel.set()
                self.slots.release(len(self.threads) - k)
                raise

    async def events(self, request: "Request") -> AsyncIterator[ReplyEvent]:
        """Events until every choice is done; stops the workers when the client disconnects. The connection is asked
        at least every LOOK_SECONDS, whether events come or not: asked only after a quiet spell, a reply whose tokens
        came steadily (not streamed, no write to fail) went on decoding to its end for a client long gone."""
        clock = asyncio.get_running_loop().time
        look = clock() + LOOK_SECONDS
        while self.live:
            try:
                event: ReplyEvent | None = await asyncio.wait_for(self.queue.get(), timeout=LOOK_SECONDS)
            except TimeoutError:
                event = None
            if event is None or clock() >= look:
                if await request.is_disconnected():  # no write fails while a tool runs: ask the connection
                    self.cancel.set()
                    return
                look = clock() + LOOK_SECONDS
            if event is None:
                continue
            if event.kind in ("done", "error"):
                self.live -= 1
            yield event


def _run_delta(run: dict[str, Any], indices: dict[str, int]) -> dict[str, Any]:
    """A server tool run's piece of a streamed delta. Clients merge a delta's lists of objects by each entry's
    `index`, as they merge `tool_calls` (openai-python's stream helper refuses an entry without one), joining strings
    and adding numbers: so a run's first entry carries its id, tool and arguments, and its outcome (ok, result or
    error, seconds) comes in a second entry of the same index, with nothing the first already said. Merged, a run
    reads as the finished reply's `tool_runs` entry does (with its `index`)."""
    first = run["id"] not in indices
    index = indices.setdefault(run["id"], len(indices))
    entry = {"index": index}
    entry.update((key, value) for key, value in run.items()
                 if key != "status" and (first or key not in ("id", "tool", "arguments")))
    return {"tool_runs": [entry]}


async def _complete(server: Server, chat: ChatRequest, plan: Plan, request: "Request",
                    slots: ChoiceSlots) -> dict[str, Any]:
    texts = [""] * chat.n
    thoughts = [""] * chat.n
    runs: list[dict[str, dict[str, Any]]] = [{} for _ in range(chat.n)]
    calls: list[list[dict[str, Any]] | None] = [None] * chat.n
    finish = ["stop"] * chat.n
    counted = UsageCount()
    await slots.acquire(chat.n)
    choices = _Choices(server, plan, chat.n, slots)
    choices.start()
    try:
        async for event in choices.events(request):
            i = event.index
            if event.kind == "text":
                texts[i] += event.data
            elif event.kind == "reasoning":
                thoughts[i] += event.data
            elif event.kind == "run":
                runs[i].setdefault(event.data["id"], {}).update(event.data)
            elif event.kind == "tool_calls":
                calls[i] = event.data
            elif event.kind == "done":
                finish[i] = event.data
                counted.add(event.extra["counters"], event.extra["prompt"])
            elif event.kind == "error":
                raise ApiError(500, _generic(_failure("generation failed", event.data)))
    finally:
        choices.cancel.set()
    out = []
    for i in range(chat.n):
        message: dict[str, Any] = {"role": "assistant", "content": texts[i] or (None if calls[i] else ""),
                                   "refusal": None, "tool_runs": [_finished(r) for r in runs[i].values()]}
        if thoughts[i]:
            message["reasoning_content"] = thoughts[i]
        if calls[i]:
            message["tool_calls"] = calls[i]
        out.append({"index": i, "message": message, "finish_reason": finish[i], "logprobs": None})
    return {"id": completion_id(), "object": "chat.completion", "created": now(), "model": chat.model,
            "system_fingerprint": FINGERPRINT, "choices": out, "usage": counted.body()}


def _finished(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if k != "status"}


async def _sse(server: Server, chat: ChatRequest, plan: Plan, request: "Request",
               slots: ChoiceSlots) -> AsyncIterator[str]:
    ident, created = completion_id(), now()
    with_usage = bool(chat.stream_options and chat.stream_options.include_usage)

    def chunk(i: int | None, delta: dict[str, Any] | None = None, finish: str | None = None,
              used: dict[str, Any] | None = None) -> str:
        data: dict[str, Any] = {"id": ident, "object": "chat.completion.chunk", "created": created,
                                "model": chat.model, "system_fingerprint": FINGERPRINT,
                                "choices": [] if i is None else [{"index": i, "delta": delta or {},
                                                                  "logprobs": None, "finish_reason": finish}]}
        if with_usage:
            data["usage"] = used
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    counted = UsageCount()
    run_indices: list[dict[str, int]] = [{} for _ in range(chat.n)]
    await slots.acquire(chat.n)
    choices = _Choices(server, plan, chat.n, slots)
    choices.start()
    try:
        for i in range(chat.n):
            yield chunk(i, {"role": "assistant", "content": ""})
        async for event in choices.events(request):
            i = event.index
            if event.kind == "text":
                yield chunk(i, {"content": event.data})
            elif event.kind == "reasoning":
                yield chunk(i, {"reasoning_content": event.data})
            elif event.kind == "run":
                yield chunk(i, _run_delta(event.data, run_indices[i]))
            elif event.kind == "tool_calls":
                for k, call in enumerate(event.data):
                    pieces = split_arguments(call["function"]["arguments"])
                    yield chunk(i, {"tool_calls": [{"index": k, "id": call["id"], "type": "function",
                                                    "function": {"name": call["function"]["name"],
                                                                 "arguments": pieces[0]}}]})
                    for piece in pieces[1:]:
                        yield chunk(i, {"tool_calls": [{"index": k, "function": {"arguments": piece}}]})
            elif event.kind == "done":
                if event.data == "cancelled":
                    return
                counted.add(event.extra["counters"], event.extra["prompt"])
                yield chunk(i, {}, event.data)
            elif event.kind == "error":
                body = ApiError(500, _generic(_failure("generation failed", event.data))).body()
                yield f"data: {json.dumps(body)}\n\n"
                return
        if choices.cancel.is_set():
            return
        if with_usage:
            yield chunk(None, used=counted.body())
        yield "data: [DONE]\n\n"
    finally:
        choices.cancel.set()  # the client went away (the generator was closed) or the reply ended: stop decoding


async def _response(server: Server, asked: ResponsesRequest, plan: Plan, request: "Request",
                    slots: ChoiceSlots) -> dict[str, Any]:
    """A Responses request answered whole: the Response object."""
    output = OutputItems()
    counted = UsageCount()
    finish = "stop"
    await slots.acquire(1)
    choices = _Choices(server, plan, 1, slots)
    choices.start()
    try:
        async for event in choices.events(request):
            if event.kind == "error":
                raise ApiError(500, _generic(_failure("generation failed", event.data)))
            if event.kind == "done":
                finish = event.data
                counted.add(event.extra["counters"], event.extra["prompt"])
            else:
                output.feed(event.kind, event.data)
    finally:
        choices.cancel.set()
    output.finish(finish)
    return response_body(asked, response_id(), now(), finish=finish, output=output.items, usage=counted.body(),
                         tool_runs=output.tool_runs())


async def _response_events(server: Server, asked: ResponsesRequest, plan: Plan, request: "Request",
                           slots: ChoiceSlots) -> AsyncIterator[str]:
    """A Responses request answered as its stream of events (`event:` and `data:` lines, numbered in order)."""
    ident, created = response_id(), now()
    sequence = 0

    def sse(event: dict[str, Any]) -> str:
        nonlocal sequence
        data = {**event, "sequence_number": sequence}
        sequence += 1
        return f"event: {event['type']}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"

    output = OutputItems()
    counted = UsageCount()
    await slots.acquire(1)
    choices = _Choices(server, plan, 1, slots)
    choices.start()
    try:
        started = response_body(asked, ident, created)
        yield sse({"type": "response.created", "response": started})
        yield sse({"type": "response.in_progress", "response": started})
        async for event in choices.events(request):
            if event.kind == "error":
                failure = {"code": "server_error", "message": _generic(_failure("generation failed", event.data))}
                yield sse({"type": "response.failed", "response": response_body(
                    asked, ident, created, output=output.items, error=failure, tool_runs=output.tool_runs())})
                return
            if event.kind != "done":
                for piece in output.feed(event.kind, event.data):
                    yield sse(piece)
                continue
            if event.data == "cancelled":
                return
            counted.add(event.extra["counters"], event.extra["prompt"])
            for piece in output.finish(event.data):
                yield sse(piece)
            body = response_body(asked, ident, created, finish=event.data, output=output.items,
                                 usage=counted.body(), tool_runs=output.tool_runs())
            yield sse({"type": f"response.{body['status']}", "response": body})
    finally:
        choices.cancel.set()  # the client went away (the generator was closed) or the reply ended: stop decoding
