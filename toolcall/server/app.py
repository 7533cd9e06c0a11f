"""The FastAPI app: /health, /v1/models, /v1/chat/completions (JSON or SSE), the chat page at /, OpenAI-shaped errors."""
import asyncio
import json
import secrets
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from ..errors import MissingDependencyError
from .choice import Event, run_choice
from .engine import Engine
from .planning import Plan, ServerSettings, plan_request
from .protocol import ApiError, ChatRequest, completion_id, now, parse_request, split_arguments, usage

if TYPE_CHECKING:
    from fastapi import FastAPI, Request

    from ..backends.base import Backend
    from ..dialects.base import Dialect

MAX_BODY_BYTES = 1 << 20
#: Replies generated at once; more requests wait their turn (each reply holds a worker thread).
MAX_ACTIVE = 64
FINGERPRINT = "toolcall"


@dataclass
class Server:
    """Everything a request needs: the shared engine, the dialect, the settings, and the access key."""

    engine: Engine
    dialect: "Dialect"
    settings: ServerSettings
    api_key: str | None = None
    max_body_bytes: int = MAX_BODY_BYTES


def _fastapi() -> Any:
    try:
        import fastapi
    except ImportError as err:
        raise MissingDependencyError("fastapi", "serve", "toolcall serve") from err
    return fastapi


def create_app(backend: "Backend", dialect: "Dialect", settings: ServerSettings, *, api_key: str | None = None,
               max_body_bytes: int = MAX_BODY_BYTES) -> "FastAPI":
    """The OpenAI-compatible app over one loaded backend; run it with uvicorn (`toolcall serve` does)."""
    fastapi = _fastapi()
    from starlette.exceptions import HTTPException
    from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse

    Request = fastapi.Request  # noqa: N806 - the endpoints' annotations are evaluated here, where FastAPI reads them

    server = Server(Engine(backend), dialect, settings, api_key, max_body_bytes)
    app = fastapi.FastAPI(title="toolcall", description="OpenAI-compatible chat completions with tools run "
                          "mid-generation", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = server
    slots = asyncio.Semaphore(MAX_ACTIVE)

    def error(err: ApiError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(ApiError)
    async def api_error(_: Any, err: ApiError) -> JSONResponse:
        return error(err)

    @app.exception_handler(HTTPException)
    async def http_error(_: Any, err: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code)
        return error(ApiError(err.status_code, str(err.detail), code=code))

    @app.exception_handler(Exception)
    async def crash(_: Any, err: Exception) -> JSONResponse:
        return error(ApiError(500, f"internal error: {type(err).__name__}: {err}"))

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
        return {"status": "ok", "model": settings.model_id, "active": server.engine.active}

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
        return HTMLResponse(resources.files("toolcall.server").joinpath("static/index.html").read_text("utf-8"))

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):  # type: ignore[no-untyped-def]  # JSON or an SSE stream
        authorize(request)
        body = await _read_body(request, server.max_body_bytes)
        chat = parse_request(body)
        if chat.model != settings.model_id:
            raise ApiError(404, f"The model '{chat.model}' does not exist; this server serves "
                           f"'{settings.model_id}'", param="model", code="model_not_found")
        plan = plan_request(chat, settings, dialect, server.engine.backend)
        if chat.stream:
            return StreamingResponse(_sse(server, chat, plan, request, slots), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return JSONResponse(await _complete(server, chat, plan, request, slots))

    return app


STARTED = now()


async def _read_body(request: "Request", limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the request body is {declared} bytes; at most {limit} are accepted",
                       code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the request body exceeds {limit} bytes", code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


class _Choices:
    """The worker threads of one request's choices, and the queue their events reach the event loop through."""

    def __init__(self, server: Server, plan: Plan, n: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.cancel = threading.Event()
        self.live = n
        self.threads = [threading.Thread(target=run_choice, name=f"toolcall-reply-{i}", daemon=True,
                                         args=(server.engine, server.dialect, plan, i, self._emit, self.cancel))
                        for i in range(n)]

    def _emit(self, event: Event) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

    def start(self) -> None:
        for t in self.threads:
            t.start()

    async def events(self, request: "Request") -> AsyncIterator[Event]:
        """Events until every choice is done; stops the workers when the client disconnects."""
        while self.live:
            try:
                event = await asyncio.wait_for(self.queue.get(), timeout=0.5)
            except asyncio.TimeoutError:
                if await request.is_disconnected():  # no write fails while a tool runs: ask the connection
                    self.cancel.set()
                    return
                continue
            if event.kind in ("done", "error"):
                self.live -= 1
            yield event


def _run_delta(run: dict[str, Any]) -> dict[str, Any]:
    return {"tool_runs": [run]}


async def _complete(server: Server, chat: ChatRequest, plan: Plan, request: "Request",
                    slots: asyncio.Semaphore) -> dict[str, Any]:
    texts = [""] * chat.n
    runs: list[dict[str, dict[str, Any]]] = [{} for _ in range(chat.n)]
    calls: list[list[dict[str, Any]] | None] = [None] * chat.n
    finish = ["stop"] * chat.n
    prompt_tokens = completion_tokens = 0
    async with slots:
        choices = _Choices(server, plan, chat.n)
        choices.start()
        try:
            async for event in choices.events(request):
                i = event.index
                if event.kind == "text":
                    texts[i] += event.data
                elif event.kind == "run":
                    runs[i].setdefault(event.data["id"], {}).update(event.data)
                elif event.kind == "tool_calls":
                    calls[i] = event.data
                elif event.kind == "done":
                    finish[i] = event.data
                    counters = event.extra["counters"]
                    prompt_tokens += counters.prefilled_tokens
                    completion_tokens += counters.decoded_tokens
                elif event.kind == "error":
                    raise ApiError(500, f"generation failed: {event.data}")
        finally:
            choices.cancel.set()
    out = []
    for i in range(chat.n):
        message: dict[str, Any] = {"role": "assistant", "content": texts[i] or (None if calls[i] else ""),
                                   "refusal": None, "tool_runs": [_finished(r) for r in runs[i].values()]}
        if calls[i]:
            message["tool_calls"] = calls[i]
        out.append({"index": i, "message": message, "finish_reason": finish[i], "logprobs": None})
    if chat.n > 1:
        prompt_tokens //= chat.n  # every choice read the same prompt; count it once
    return {"id": completion_id(), "object": "chat.completion", "created": now(), "model": chat.model,
            "system_fingerprint": FINGERPRINT, "choices": out, "usage": usage(prompt_tokens, completion_tokens)}


def _finished(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if k != "status"}


async def _sse(server: Server, chat: ChatRequest, plan: Plan, request: "Request",
               slots: asyncio.Semaphore) -> AsyncIterator[str]:
    ident, created = completion_id(), now()
    with_usage = bool(chat.stream_options and chat.stream_options.include_usage)

    def chunk(i: int | None, delta: dict[str, Any] | None = None, finish: str | None = None,
              counted: dict[str, int] | None = None) -> str:
        data: dict[str, Any] = {"id": ident, "object": "chat.completion.chunk", "created": created,
                                "model": chat.model, "system_fingerprint": FINGERPRINT,
                                "choices": [] if i is None else [{"index": i, "delta": delta or {},
                                                                  "logprobs": None, "finish_reason": finish}]}
        if with_usage:
            data["usage"] = counted
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    prompt_tokens = completion_tokens = 0
    async with slots:
        choices = _Choices(server, plan, chat.n)
        choices.start()
        try:
            for i in range(chat.n):
                yield chunk(i, {"role": "assistant", "content": ""})
            async for event in choices.events(request):
                i = event.index
                if event.kind == "text":
                    yield chunk(i, {"content": event.data})
                elif event.kind == "run":
                    yield chunk(i, _run_delta(event.data))
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
                    counters = event.extra["counters"]
                    prompt_tokens += counters.prefilled_tokens
                    completion_tokens += counters.decoded_tokens
                    yield chunk(i, {}, event.data)
                elif event.kind == "error":
                    body = ApiError(500, f"generation failed: {event.data}").body()
                    yield f"data: {json.dumps(body)}\n\n"
                    return
            if choices.cancel.is_set():
                return
            if with_usage:
                yield chunk(None, counted=usage(prompt_tokens // chat.n, completion_tokens))
            yield "data: [DONE]\n\n"
        finally:
            choices.cancel.set()  # the client went away (the generator was closed) or the reply ended: stop decoding
