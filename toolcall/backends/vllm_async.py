"""vLLM's async engine (`AsyncLLM`) on an event loop of its own thread, so that sessions on other threads (a server's
replies) each stream their own engine request, token by token, while the engine batches every running request.

Each decode is one engine request over the session's token ids: it ends at a stop string (a call marker), at EOS or
at its budget; the tool then runs outside the engine and the reply resumes as a new request whose prompt shares the
prefix, which prefix caching serves. A request whose reader goes away (a client that disconnected) is aborted.
"""
from __future__ import annotations

import asyncio
import itertools
import queue
import threading
from collections.abc import Generator
from typing import Any

from ..errors import BackendError

_END = object()
#: How long a decode waits for the engine's next output before it counts the engine as stuck.
OUTPUT_TIMEOUT_SECONDS = 600.0


class AsyncEngine:
    """An `AsyncLLM` and the event loop that drives it, on a daemon thread; `stream` is called from any thread."""

    def __init__(self, path: str, options: dict[str, Any]) -> None:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="toolcall-vllm-async", daemon=True)
        self._thread.start()
        self._ids = itertools.count()

        async def build() -> Any:
            return AsyncLLM.from_engine_args(AsyncEngineArgs(model=path, **options))

        try:
            self.engine = asyncio.run_coroutine_threadsafe(build(), self.loop).result()
        except Exception:
            self.loop.call_soon_threadsafe(self.loop.stop)
            raise
        self.model_config = self.engine.model_config

    def tokenizer(self) -> Any:
        return self._running().get_tokenizer()

    def _running(self) -> Any:
        if self.engine is None:
            raise BackendError("the vLLM async engine was shut down (close() was called)")
        return self.engine

    def stream(self, prompt_ids: list[int], params: Any) -> Generator[Any, None, None]:
        """The request's outputs as the engine makes them (each cumulative); closing the iterator early aborts it."""
        engine = self._running()
        outputs: queue.Queue[Any] = queue.Queue()
        request_id = f"toolcall-{next(self._ids)}"

        async def pump() -> None:
            try:
                async for out in engine.generate({"prompt_token_ids": prompt_ids}, params, request_id):
                    outputs.put(out)
            except BaseException as err:  # noqa: BLE001  # handed to the reading thread, which raises it
                outputs.put(err)
            finally:
                outputs.put(_END)

        asyncio.run_coroutine_threadsafe(pump(), self.loop)
        finished = False
        try:
            while True:
                try:
                    item = outputs.get(timeout=OUTPUT_TIMEOUT_SECONDS)
                except queue.Empty:
                    raise BackendError(f"the vLLM engine gave no output for {OUTPUT_TIMEOUT_SECONDS:.0f} s") from None
                if item is _END:
                    finished = True
                    return
                if isinstance(item, BaseException):
                    finished = True
                    raise BackendError(f"vLLM request failed: {type(item).__name__}: {item}") from item
                yield item
        finally:
            if not finished:  # the reader left early: the engine stops working on it
                asyncio.run_coroutine_threadsafe(engine.abort(request_id), self.loop)

    def close(self) -> None:
        """Shut the engine down on its own loop (its output task then ends quietly) and stop the loop."""
        engine, self.engine = self.engine, None
        if engine is None:
            return

        async def shutdown() -> None:
            engine.shutdown()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout=60)
        finally:
            engine = None  # its finalizer runs now, not at interpreter exit when the modules it needs are gone
            self.loop.call_soon_threadsafe(self.loop.stop)
