"""Many users at once: replies interleave instead of queueing, the event loop stays free, a disconnect frees its slot."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from live_server import MODEL, Live, SlowFake, script, serve, settings

httpx = pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def slow() -> Iterator[Live]:
    backend = SlowFake(script=script)
    backend.delay = 0.02  # 50 tokens/s per reply if alone
    yield from serve(backend, settings())


def ask(live: Live, text: str) -> str:
    reply = live.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}])
    return reply.choices[0].message.content or ""


@pytest.mark.slow
def test_parallel_requests_are_all_answered_correctly(slow: Live) -> None:
    questions = [f"question number {i}" if i % 2 else "What is 17 * 23?" for i in range(16)]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda q: ask(slow, q), questions))
    for q, a in zip(questions, answers):
        assert a == ("Let me compute: so the answer is 391." if "17" in q else f"You said: {q}")


def test_replies_interleave_and_the_event_loop_stays_free(slow: Live) -> None:
    # Two ~10-token replies, 0.02 s a token: one after the other would take ~0.4 s; interleaved, both finish in
    # about the time of one, since the lock is held per token and each sleep happens inside a step.
    text = "interleave me please, a reply of some length"
    seen: dict[int, list[float]] = {0: [], 1: []}

    def run(i: int) -> None:
        for chunk in slow.client().chat.completions.create(model=MODEL, stream=True,
                                                           messages=[{"role": "user", "content": text}]):
            if chunk.choices and chunk.choices[0].delta.content:
                seen[i].append(time.monotonic())

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    began = time.monotonic()
    assert httpx.get(slow.url + "/health", timeout=5).json()["status"] == "ok"
    assert time.monotonic() - began < 0.5  # answered while both generate
    for t in threads:
        t.join(timeout=30)
    # Each reply's first text arrives before the other reply's last: they ran at the same time.
    assert seen[0] and seen[1]
    assert seen[0][0] < seen[1][-1] and seen[1][0] < seen[0][-1]


def test_disconnect_mid_stream_stops_generation(slow: Live) -> None:
    backend = slow.backend
    assert isinstance(backend, SlowFake)
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "long"}]}
    before = backend.pieces
    with httpx.stream("POST", slow.url + "/v1/chat/completions", json=body, timeout=30) as response:
        lines = response.iter_lines()
        got = [next(lines) for _ in range(10)]
    assert any(line.startswith("data: ") for line in got)
    assert_stopped(slow, backend, before)


def assert_stopped(live: Live, backend: SlowFake, before: int) -> None:
    """The server's replies all end soon, nothing decodes after, and the reply stopped early (it is ~500 tokens,
    10 s, whole)."""
    deadline = time.monotonic() + 5
    while httpx.get(live.url + "/health").json()["active"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert httpx.get(live.url + "/health").json()["active"] == 0
    decoded = backend.pieces - before
    time.sleep(0.3)
    assert backend.pieces - before == decoded and decoded < 400


def test_a_client_that_leaves_a_whole_reply_unwaited_stops_its_generation(slow: Live) -> None:
    """A reply that is not streamed has no write to fail: the connection is asked (with steady tokens too: below)."""
    backend = slow.backend
    assert isinstance(backend, SlowFake)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "long"}]}
    before = backend.pieces
    with pytest.raises(httpx.TimeoutException):
        httpx.post(slow.url + "/v1/chat/completions", json=body, timeout=0.5)
    assert_stopped(slow, backend, before)


def test_the_connection_is_asked_for_the_client_while_events_keep_coming() -> None:
    """The events of a reply whose tokens come steadily (the embedded model: one every ~30 ms, a reply of up to 4,096
    tokens) are no reason not to ask: the client of a non-streamed reply that left was found only after a quiet
    half second, which steady tokens never gave, and the reply decoded to its end."""
    import asyncio
    import types

    from toolcall.server import app
    from toolcall.server.choice import ReplyEvent

    async def main() -> tuple[int, bool, float]:
        choices = app._Choices.__new__(app._Choices)
        choices.queue, choices.cancel, choices.live = asyncio.Queue(), threading.Event(), 1
        asked: list[float] = []

        async def is_disconnected() -> bool:
            asked.append(time.monotonic())
            return len(asked) >= 2   # the client leaves after the first look

        async def feed() -> None:
            while not choices.cancel.is_set():
                choices.queue.put_nowait(ReplyEvent(0, "text", "x"))
                await asyncio.sleep(0.01)

        feeder = asyncio.ensure_future(feed())
        began, seen = time.monotonic(), 0
        async for _ in choices.events(types.SimpleNamespace(is_disconnected=is_disconnected)):  # type: ignore[arg-type]
            seen += 1
            if time.monotonic() - began > 5:
                break
        feeder.cancel()
        return seen, choices.cancel.is_set(), time.monotonic() - began

    seen, cancelled, seconds = asyncio.run(main())
    assert cancelled and seconds < 3 * app.LOOK_SECONDS + 1 and seen > 10


def test_a_request_cancelled_as_slots_free_up_loses_no_slot() -> None:
    """A waiting request whose client leaves (uvicorn cancels its task) in the same loop turn as a release: the
    release granted the cancelled waiter its slots, which were then held for good (8 of 64 per such request, until
    none were left and every request waited forever), and the request ended in a 500."""
    import asyncio

    from toolcall.server.app import ChoiceSlots

    async def main() -> tuple[int, BaseException | None]:
        slots = ChoiceSlots(64)
        await slots.acquire(64)
        waiter = asyncio.ensure_future(slots.acquire(8))
        behind = asyncio.ensure_future(slots.acquire(4))
        await asyncio.sleep(0)
        waiter.cancel()
        slots.release(8)  # the cancelled waiter is skipped; the one behind it gets its 4
        ended: BaseException | None = None
        try:
            await waiter
        except BaseException as err:  # noqa: BLE001 - the kind of ending is what is checked
            ended = err
        await behind
        slots.release(56)
        slots.release(4)
        return slots.free, ended

    free, ended = asyncio.run(main())
    assert free == 64 and isinstance(ended, asyncio.CancelledError)
