"""The decoding loop with a tool registry answering every call: what generate, chat, eval and the API run."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from .backends.base import Backend, DecodeSession
from .loop import (
    CallRequest,
    Done,
    Event,
    LoopConfig,
    LoopResult,
    Outcome,
    Result,
    answered,
    decode_with_tools,
    resolve_dialect,
    step_batch,
)
from .registry import ToolRegistry

if TYPE_CHECKING:
    from .dialects.base import Dialect

__all__ = ["registry_executor", "resume_loop", "run_batch", "run_loop", "stream_loop"]


def registry_executor(registry: ToolRegistry, config: LoopConfig) -> Callable[[CallRequest], Outcome]:
    """Answers a CallRequest by running the tool through the registry (time limit, cache, errors as results)."""

    def run(request: CallRequest) -> Outcome:
        # Arguments the loop bound by name go through as such; otherwise the registry reports why they do not bind.
        args = request.arguments if request.arguments is not None else request.call.args
        res = registry.call(request.tool, args, timeout=config.call_timeout)
        return Result(res.text, res.ok, res.error, res.seconds)

    return run


def resume_loop(session: DecodeSession, dialect: "Dialect | str", registry: ToolRegistry | None,
                config: LoopConfig | None = None) -> Iterator[Event]:
    """The loop's events on a session the caller started (e.g. to keep its KV cache for the next chat turn), every
    call run by `registry`."""
    cfg = config or LoopConfig()
    tools = registry.specs() if registry is not None else None
    flow = decode_with_tools(session, resolve_dialect(dialect), tools, cfg)
    return answered(flow, registry_executor(registry or ToolRegistry(), cfg))


def stream_loop(backend: Backend, prompt: str, dialect: "Dialect | str", registry: ToolRegistry | None,
                config: LoopConfig | None = None) -> Iterator[Event]:
    """Events as they happen: text deltas, each call asked for and finished, then Done with the LoopResult."""
    return resume_loop(backend.start(prompt), dialect, registry, config)


def run_loop(backend: Backend, prompt: str, dialect: "Dialect | str", registry: ToolRegistry | None,
             config: LoopConfig | None = None) -> LoopResult:
    """Generate with tools and return the result; the same as the Done event of stream_loop."""
    for event in stream_loop(backend, prompt, dialect, registry, config):
        if isinstance(event, Done):
            return event.result
    raise AssertionError("the loop ended without a Done event")  # pragma: no cover


def run_batch(backend: Backend, prompts: Sequence[str], dialect: "Dialect | str", registry: ToolRegistry | None,
              config: LoopConfig | None = None) -> list[LoopResult]:
    """Several prompts in rounds: all live sessions decode together (Backend.generate_batch), then their calls run.

    vLLM schedules a round's sessions together; the transformers backend decodes them in turn.
    """
    cfg = config or LoopConfig()
    tools = registry.specs() if registry is not None else None
    sessions = backend.start_batch(list(prompts))
    return step_batch(sessions, backend, dialect, tools, cfg, registry_executor(registry or ToolRegistry(), cfg))
