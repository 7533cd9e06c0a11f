"""A hostile client and a hostile web page: cross-site requests, DNS rebinding, prompts past the context, `n` against
the choice limit, slow and idle connections on a real uvicorn (raw sockets), 500s that must be 400s, and the rest a
security reviewer would try. Every loop here is bounded in count and time."""
from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from live_server import MODEL, Live, SlowFake, script, serve, settings

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from toolcall.cli import build_parser, main
from toolcall.cli.serve_cmd import build_app
from toolcall.server.guard import Guard, GuardConfig, RepeatFilter, uvicorn_config

HI = [{"role": "user", "content": "hi"}]
CONTEXT = 2000  # the fake model's context, in tokens (4 characters each)
ACTIVE = 4      # choices generated at once
GUARD = GuardConfig(max_connections=16, header_timeout=1.0, body_timeout=1.0, keep_alive_timeout=1, send_timeout=1.0)


def hardened(backend: Any, guard: GuardConfig = GUARD, **options: Any) -> Iterator[Live]:
    """uvicorn as `toolcall serve` runs it (the guard's protocol and settings) on a free 127.0.0.1 port."""
    yield from serve(backend, settings(), guard=guard,
                     config=lambda app: uvicorn_config(app, guard, log_level="warning", lifespan="off"), **options)


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    backend = SlowFake(script=script, max_context=CONTEXT)
    backend.delay = 0.02
    yield from hardened(backend, max_active=ACTIVE)


def port_of(live: Live) -> int:
    return int(live.url.rsplit(":", 1)[1])


def post(live: Live, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None) -> httpx.Response:
    sent = {"Content-Type": "application/json", **(headers or {})}
    content = raw if raw is not None else json.dumps(body).encode()
    return httpx.post(live.url + "/v1/chat/completions", content=content, headers=sent, timeout=30)


def error_of(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


def ask(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}


# --- 1. no web page can drive the server ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                  None])
def test_a_body_not_declared_json_is_a_415_and_runs_nothing(live: Live, kind: str | None) -> None:
    before = len(live.backend.prompts)
    headers = {"Content-Type": kind} if kind else {}
    response = httpx.post(live.url + "/v1/chat/completions", content=json.dumps(ask("What is 17 * 23?")).encode(),
                          headers=headers, timeout=10)
    error_of(response, 415, "unsupported_media_type")
    assert len(live.backend.prompts) == before  # no model call, no tool run


def test_json_with_a_charset_is_accepted(live: Live) -> None:
    response = post(live, ask(), {"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "You said: hi"


@pytest.mark.parametrize("headers", [
    pytest.param({"Origin": "http://evil.example"}, id="other-origin"),
    pytest.param({"Origin": "null"}, id="null-origin"),
    pytest.param({"Origin": "http://localhost:1"}, id="other-port-same-site"),
    pytest.param({"Sec-Fetch-Site": "cross-site"}, id="sec-fetch-cross-site"),
    pytest.param({"Sec-Fetch-Site": "same-site"}, id="sec-fetch-same-site"),
])
def test_cross_site_requests_are_refused(live: Live, headers: dict[str, str]) -> None:
    before = len(live.backend.prompts)
    error_of(post(live, ask(), headers), 403, "cross_origin_request")
    assert len(live.backend.prompts) == before


def test_the_servers_own_page_may_post(live: Live) -> None:
    same = {"Origin": live.url, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}
    assert post(live, ask(), same).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1:1", "localhost.evil.example:{port}",
                                  "", "[::1"])
def test_a_host_that_is_not_this_server_is_refused(live: Live, host: str) -> None:
    # DNS rebinding: the attacker's own name resolves to 127.0.0.1, and the browser sends that name as the Host.
    headers = {"Host": host.format(port=port_of(live))}
    error_of(post(live, ask(), headers), 400, "invalid_host")
    error_of(httpx.get(live.url + "/v1/models", headers=headers, timeout=10), 400, "invalid_host")


def test_a_host_without_the_port_is_told_the_port_to_use(live: Live) -> None:
    """`Host: 127.0.0.1` (the scheme's port, 80) was told "use 127.0.0.1 or localhost", the name it had sent."""
    error = error_of(httpx.get(live.url + "/v1/models", headers={"Host": "127.0.0.1"}, timeout=10), 400,
                     "invalid_host")
    port = port_of(live)
    assert f"use 127.0.0.1:{port} or localhost:{port}" in error["message"], error


def test_a_port_written_in_other_digits_is_refused_not_a_crash(live: Live) -> None:
    # "²".isdigit() is true and int("²") raises: a plain 500 without the guard's headers.
    bad_host = {"Host": b"127.0.0.1:\xb2"}
    error_of(httpx.get(live.url + "/v1/models", headers=bad_host, timeout=10), 400, "invalid_host")
    refused = post(live, ask(), {"Origin": b"http://127.0.0.1:\xb9", "Sec-Fetch-Site": "same-origin"})  # type: ignore[dict-item]
    assert refused.status_code == 403 and refused.headers.get("x-frame-options")


@pytest.mark.parametrize("host", ["localhost:{port}", "127.0.0.1:{port}", "LOCALHOST:{port}"])
def test_loopback_names_on_the_bound_port_are_accepted(live: Live, host: str) -> None:
    assert post(live, ask(), {"Host": host.format(port=port_of(live))}).status_code == 200


def test_a_link_from_another_site_opens_the_page_but_cannot_fetch_the_api(live: Live) -> None:
    navigate = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    assert httpx.get(live.url + "/", headers=navigate, timeout=10).status_code == 200
    fetch = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Origin": "http://evil.example"}
    error_of(httpx.get(live.url + "/v1/models", headers=fetch, timeout=10), 403)


def test_a_preflight_gets_no_cors_grant(live: Live) -> None:
    response = httpx.options(live.url + "/v1/chat/completions", timeout=10, headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert response.status_code == 403 and "access-control-allow-origin" not in response.headers


def test_every_answer_forbids_framing_and_sniffing(live: Live) -> None:
    for response in (httpx.get(live.url + "/", timeout=10), post(live, ask()), post(live, None, raw=b"{")):
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_the_page_runs_only_its_own_script_and_talks_only_to_this_server(live: Live) -> None:
    """The page showed model text and tool results under `frame-ancestors 'none'` alone: any markup slip would run."""
    import base64
    import hashlib

    response = httpx.get(live.url + "/", timeout=10)
    policies = response.headers.get_list("content-security-policy")
    assert len(policies) == 1
    rules = dict(rule.strip().split(" ", 1) for rule in policies[0].split(";"))
    assert rules["default-src"] == "'none'" and rules["connect-src"] == "'self'"
    assert rules["frame-ancestors"] == "'none'" and rules["base-uri"] == "'none'" and rules["form-action"] == "'none'"
    script = re.search(r"<script>(.*?)</script>", response.text, re.DOTALL)
    assert script is not None
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    assert rules["script-src"] == f"'sha256-{digest}'"  # that script only: no 'unsafe-inline', no other source
    api = httpx.get(live.url + "/v1/models", timeout=10).headers.get_list("content-security-policy")
    assert api == ["frame-ancestors 'none'"]


def scope(host: str, *, method: str = "POST", origin: str | None = None, server: tuple[str, int] = ("127.0.0.1", 8000),
          kind: str = "application/json") -> dict[str, Any]:
    headers = [(b"host", host.encode()), (b"content-type", kind.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return {"type": "http", "method": method, "scheme": "http", "server": server, "headers": headers}


def test_allowed_hosts_and_origins_widen_the_defaults() -> None:
    strict = Guard(None, GuardConfig())  # type: ignore[arg-type]
    assert strict.refusal(scope("api.example:8000")) is not None
    assert strict.refusal(scope("192.168.1.5:8000", server=("192.168.1.5", 8000))) is None  # the bound address itself
    assert strict.refusal(scope("[::1]:8000", server=("::1", 8000))) is None
    wide = Guard(None, GuardConfig(allowed_hosts=("API.example", "proxy.example:443"),  # type: ignore[arg-type]
                                   allowed_origins=("https://app.example/",)))
    assert wide.refusal(scope("api.example:8000")) is None and wide.refusal(scope("api.example")) is None
    assert wide.refusal(scope("proxy.example:443")) is None and wide.refusal(scope("proxy.example:80")) is not None
    assert wide.refusal(scope("127.0.0.1:8000", origin="https://app.example")) is None
    refused = wide.refusal(scope("127.0.0.1:8000", origin="https://other.example"))
    assert refused is not None and refused.status == 403 and "--allowed-origin" in refused.message
    anything = Guard(None, GuardConfig(allowed_hosts=("*",)))  # type: ignore[arg-type]
    assert anything.refusal(scope("whatever.example")) is None


def test_serve_flags_reach_the_guard(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    script_file = tmp_path / "s.json"
    script_file.write_text(json.dumps(["Hello."]))
    args = build_parser().parse_args(["serve", "--backend", "fake", "--model", str(script_file), "--allowed-host",
                                      "a.example,b.example:9000", "--allowed-origin", "http://app.example:3000",
                                      "--header-timeout", "2", "--max-connections", "50"])
    guard = build_app(args).state.server.guard
    assert guard.allowed_hosts == ("a.example", "b.example:9000")
    assert guard.allowed_origins == ("http://app.example:3000",)
    assert (guard.header_timeout, guard.max_connections) == (2.0, 50)
    assert main(["serve", "--backend", "fake", "--max-connections", "0"]) == 1
    assert "--max-connections" in capsys.readouterr().err


# --- 2. a prompt past the model's context ----------------------------------------------------------------------------
def test_a_prompt_past_the_context_is_a_400_that_counts_tokens(live: Live) -> None:
    before = len(live.backend.prompts)
    error = error_of(post(live, ask("word " * 3000)), 400, "context_length_exceeded")
    found = re.search(r"maximum context length is (\d+) tokens\. However, your messages resulted in (\d+) tokens",
                      error["message"])
    assert found is not None, error
    assert int(found.group(1)) == CONTEXT and int(found.group(2)) > 15000 // 4
    assert error["param"] == "messages"
    assert len(live.backend.prompts) == before  # refused before any session started


def test_a_prompt_far_past_the_context_is_refused_from_a_prefix(live: Live) -> None:
    """A body near the 1 MiB limit is refused after counting a prefix of it, not the whole, under the model's lock."""
    error = error_of(post(live, ask("word " * 180_000)), 400, "context_length_exceeded")
    found = re.search(r"resulted in more than (\d+) tokens", error["message"])
    assert found is not None and CONTEXT < int(found.group(1)) < 180_000 * 5 // 4, error


def test_a_reply_without_max_tokens_gets_what_the_context_has_left(live: Live) -> None:
    assert post(live, ask("x")).status_code == 200
    base = len(live.backend.prompts[-1]) - 1  # the prompt around a one-character message
    left = 3
    reply = post(live, ask("x" * (4 * (CONTEXT - left) - base)))  # the fake model: 4 characters a token
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["usage"]["prompt_tokens"] == CONTEXT - left
    assert body["usage"]["completion_tokens"] <= left and body["choices"][0]["finish_reason"] == "length", body


def test_prompt_and_requested_reply_must_fit_together(live: Live) -> None:
    error = error_of(post(live, ask(max_tokens=CONTEXT)), 400, "context_length_exceeded")
    assert f"{CONTEXT} in the completion" in error["message"]
    assert post(live, ask(max_tokens=50)).status_code == 200


# --- 3. n counts against the limit -----------------------------------------------------------------------------------
def test_the_active_limit_counts_choices_not_requests(live: Live) -> None:
    peak_threads = peak_active = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak_threads, peak_active
        end = time.monotonic() + 60
        while not done.is_set() and time.monotonic() < end:
            peak_threads = max(peak_threads, sum(t.name.startswith("toolcall-reply") for t in threading.enumerate()))
            peak_active = max(peak_active, httpx.get(live.url + "/health", timeout=5).json()["active"])
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(6) as pool:
            replies = list(pool.map(lambda i: post(live, ask(f"request {i}", n=3)), range(6)))
    finally:
        done.set()
        watcher.join(timeout=10)
    assert all(r.status_code == 200 and len(r.json()["choices"]) == 3 for r in replies)
    assert 1 <= peak_threads <= ACTIVE and peak_active <= ACTIVE  # 18 choices asked, never more than 4 at once


def test_n_beyond_the_limit_is_a_400(live: Live) -> None:
    error_of(post(live, ask(n=ACTIVE + 1)), 400)


# --- 4. slow, idle and too many connections (raw sockets against uvicorn) -------------------------------------------
def connect(live: Live) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port_of(live)), timeout=5)
    return sock


def closed_after(sock: socket.socket, limit: float) -> tuple[float, bytes]:
    """Seconds until the server closes `sock` (reading what it sends), failing past `limit`."""
    began, got = time.monotonic(), b""
    sock.settimeout(limit)
    try:
        while time.monotonic() - began < limit:
            data = sock.recv(65536)
            if not data:
                break
            got += data
        else:
            pytest.fail(f"the connection was still open after {limit} s")
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the connection was still open after {limit} s")
    finally:
        sock.close()
    return time.monotonic() - began, got


def test_an_idle_connection_is_closed(live: Live) -> None:
    took, got = closed_after(connect(live), 5)
    assert took < GUARD.header_timeout + 1.5 and got == b""


def test_trickled_headers_are_cut_off(live: Live) -> None:
    sock = connect(live)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    began = time.monotonic()
    for _ in range(40):  # a header byte every 0.1 s: never done, always sending
        try:
            sock.sendall(b"X")
        except OSError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the server let headers trickle for 4 s")
    assert time.monotonic() - began < GUARD.header_timeout + 1.5
    sock.close()


def test_a_client_that_never_reads_its_answers_is_closed(live: Live) -> None:
    """Pipelined requests whose answers are never read: each connection held megabytes of queued answer for good."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port_of(live)))
    request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port_of(live)}\r\n\r\n".encode()
    sock.settimeout(5)
    with contextlib.suppress(OSError):
        for _ in range(400):  # 400 chat pages, 3.7 MB of answers
            sock.sendall(request)
    time.sleep(GUARD.send_timeout + 2)  # not reading: the server's send buffer fills and stays full
    took, got = closed_after(sock, 20)
    assert got.count(b"HTTP/1.1 200") < 400  # closed before it could answer them all


def test_a_head_sent_whole_is_held_to_the_limit_too(live: Live) -> None:
    # h11 bounds a head that arrives in pieces only: 60 KB in one write was accepted.
    response = httpx.get(live.url + "/health", headers={f"X-Pad-{i}": "a" * 1000 for i in range(60)}, timeout=10)
    error_of(response, 431, "headers_too_large")
    assert httpx.get(live.url + "/health", headers={"X-Pad": "a" * 8000}, timeout=10).status_code == 200


@pytest.mark.parametrize("framing", ["short-content-length", "unfinished-chunks"])
def test_a_body_that_never_ends_gets_a_408_and_is_closed(live: Live, framing: str) -> None:
    sock = connect(live)
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port_of(live)}\r\nContent-Type: application/json\r\n"
    if framing == "short-content-length":
        sock.sendall((head + "Content-Length: 1000\r\n\r\n").encode() + b'{"model": "fake"')
    else:
        sock.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode() + b'10\r\n{"model": "fake"\r\n')
    took, got = closed_after(sock, 5)
    assert got.startswith(b"HTTP/1.1 408"), got[:100]
    assert b"request_timeout" in got and took < GUARD.body_timeout + 2.5


def test_idle_connections_beyond_the_cap_make_room_for_an_honest_client(live: Live) -> None:
    flood = [connect(live) for _ in range(GUARD.max_connections + 24)]
    try:
        for sock in flood[:10]:  # the oldest idle ones were closed to make room, without waiting for a timeout
            took, _ = closed_after(sock, 2)
            assert took < 1
        began = time.monotonic()  # while the rest of the flood is still open:
        assert httpx.get(live.url + "/health", timeout=5).status_code == 200
        assert time.monotonic() - began < 1
    finally:
        for sock in flood:
            sock.close()


def test_bodies_never_sent_make_room_for_an_honest_client(live: Live) -> None:
    # Connections that sent their headers and held back the body kept every new client out until body_timeout.
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port_of(live)}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{").encode()
    flood = []
    try:
        for _ in range(GUARD.max_connections + 8):
            sock = connect(live)
            sock.sendall(head)
            flood.append(sock)
            time.sleep(0.01)
        began = time.monotonic()
        assert httpx.get(live.url + "/health", timeout=5).status_code == 200
        assert time.monotonic() - began < GUARD.body_timeout / 2
        took, _ = closed_after(flood[0], 2)  # the one that had been sending longest made room
        assert took < 0.5
    finally:
        for sock in flood:
            sock.close()


def test_an_upload_under_way_outlasts_a_flood_of_bodiless_requests(live: Live) -> None:
    # The connection sending its body longest was closed first: a flood of fresh header-only connections closed an
    # honest upload that had been going on longer than they had.
    body = json.dumps(ask()).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port_of(live)}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    honest = connect(live)
    honest.sendall(head + body[:5])
    time.sleep(0.05)
    flood = []
    try:
        for i in range(GUARD.max_connections + 8):
            sock = connect(live)
            sock.sendall(head[:-2] + b"X-Flood: 1\r\n\r\n")
            flood.append(sock)
            time.sleep(0.01)   # its headers read before the next one comes: it sends a body, not waits
            if i % 8 == 0:
                honest.sendall(body[5 + i // 8:6 + i // 8])   # a byte now and then: slow, but under way
        honest.sendall(body[6 + (GUARD.max_connections + 7) // 8:])
        honest.settimeout(10)
        assert honest.recv(65536).startswith(b"HTTP/1.1 200")
    finally:
        honest.close()
        for sock in flood:
            sock.close()


def test_busy_connections_are_not_closed_for_new_ones(live: Live) -> None:
    # A reply being streamed is never the one closed: a newcomer past the cap is refused instead.
    guard = GuardConfig(max_connections=2, header_timeout=5.0, body_timeout=5.0, keep_alive_timeout=5)
    backend = SlowFake(script=lambda _: "word " * 20)
    backend.delay = 0.03
    server = hardened(backend, guard)
    small = next(server)
    try:
        with httpx.Client(timeout=10) as client, client.stream(
                "POST", small.url + "/v1/chat/completions", json=ask(stream=True)) as first, client.stream(
                "POST", small.url + "/v1/chat/completions", json=ask(stream=True)) as second:
            assert first.status_code == 200 and second.status_code == 200
            took, got = closed_after(connect(small), 2)  # a third: closed at once, nothing sent to it
            assert took < 1 and got == b""
            assert sum(1 for line in first.iter_lines() if line.startswith("data: ")) > 10  # the streams go on
            assert "[DONE]" in second.read().decode()
    finally:
        next(server, None)


def test_an_oversized_request_head_is_refused(live: Live) -> None:
    head = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port_of(live)}\r\n".encode()
    sock = connect(live)
    sock.sendall(head + b"\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")  # the same head, without the big header, is answered
    sock.close()
    sock = connect(live)
    sock.sendall(head + b"X-Big: " + b"a" * 40_000)  # a head that keeps growing is refused before it ends
    _, got = closed_after(sock, 5)
    assert got.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431")) and b"invalid_host" not in got, got[:200]


class Counting(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_garbage_in_a_loop_does_not_flood_the_log(live: Live) -> None:
    counting = Counting()
    loggers = [logging.getLogger(n) for n in ("uvicorn.error", "asyncio", "toolcall.server")]
    for logger in loggers:
        logger.addHandler(counting)
    try:
        for _ in range(100):
            sock = connect(live)
            sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            closed_after(sock, 5)
    finally:
        for logger in loggers:
            logger.removeHandler(counting)
    assert len(counting.records) <= 10, [r.getMessage() for r in counting.records[:12]]
    assert sum(r.exc_info is not None for r in counting.records) <= 1


def test_the_repeat_filter_keeps_one_traceback_and_a_few_lines() -> None:
    quiet = RepeatFilter(per_window=5, window=60)
    try:
        raise OSError(24, "Too many open files")
    except OSError:
        import sys

        info = sys.exc_info()
    records = [logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "accept failed", None, info)
               for _ in range(1000)]
    passed = [r for r in records if quiet.filter(r)]
    assert len(passed) == 5 and passed[0].exc_info is not None and all(r.exc_info is None for r in passed[1:])
    other = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "another message", None, None)
    assert quiet.filter(other)
    quiet.window = 0.0  # the window is over: the next one passes and says how many were dropped
    time.sleep(0.01)
    later = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "accept failed", None, info)
    assert quiet.filter(later) and later.getMessage() == "accept failed [995 more like this were not logged]"


# --- 5. 500s that must be 400s, and a 500 that says nothing -----------------------------------------------------------
def function(parameters: Any, name: str = "f") -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": name, "parameters": parameters}}]


def nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return {"type": "object", "properties": {"x": schema}}


@pytest.mark.parametrize(("parameters", "text"), [
    pytest.param({"type": "object", "properties": {"x": 5}}, "properties/x", id="property-not-a-schema"),
    pytest.param({"type": "object", "properties": {"x": True}}, "properties.x", id="boolean-property"),
    pytest.param({"type": "object", "properties": {"x": {"type": "string"}}, "required": 5}, "required",
                 id="required-not-a-list"),
    pytest.param({"type": "object", "properties": {"x": {"type": "string"}}, "required": ["y"]}, '"y"',
                 id="required-unknown"),
    pytest.param({"type": "array", "items": {"type": "string"}}, "type 'object'", id="not-an-object"),
    pytest.param({"type": "object", "properties": {"x": {"type": "strng"}}}, "strng", id="unknown-type"),
    pytest.param({"type": "object", "properties": {"x": {"enum": []}}}, "enum", id="empty-enum"),
    pytest.param({"type": "object", "properties": {"x": {"anyOf": 5}}}, "anyOf", id="anyof-not-a-list"),
    pytest.param(nested(40), "deeper", id="deep-schema"),
])
def test_a_broken_function_schema_is_a_400_on_arrival(live: Live, parameters: Any, text: str) -> None:
    error = error_of(post(live, ask(tools=function(parameters))), 400, "invalid_value")
    assert error["param"] == "tools.0.function.parameters" and text in error["message"], error


def test_a_sound_function_schema_is_accepted(live: Live) -> None:
    parameters = {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
                  "required": ["city"]}
    assert post(live, ask(tools=function(parameters))).status_code == 200


def test_a_functions_null_description_and_parameters_are_read_as_left_out(live: Live) -> None:
    tools = [{"type": "function", "function": {"name": "now", "description": None, "parameters": None}}]
    assert post(live, ask(tools=tools)).status_code == 200


@pytest.mark.parametrize("seed", [2**64, 2**80, -1])
def test_a_seed_outside_64_bits_is_a_400(live: Live, seed: int) -> None:
    assert error_of(post(live, ask(seed=seed)), 400)["param"] == "seed"


def test_the_largest_seed_is_accepted(live: Live) -> None:
    assert post(live, ask(seed=2**64 - 1)).status_code == 200


def test_duplicate_tool_call_ids_are_a_400(live: Live) -> None:
    parameters = {"type": "object", "properties": {"x": {"type": "string"}}}
    call = {"id": "same", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = HI + [{"role": "assistant", "tool_calls": [call, dict(call)]},
                     {"role": "tool", "tool_call_id": "same", "content": "r"}]
    error = error_of(post(live, {"model": MODEL, "messages": messages, "tools": function(parameters)}), 400,
                     "duplicate_tool_call_id")
    assert "'same'" in error["message"]


SECRET = "/home/alice/.ssh/id_rsa sk-secret-key"


class Exploding(SlowFake):
    def start(self, prompt: str) -> Any:
        raise RuntimeError(f"could not open {SECRET}")


@pytest.fixture(scope="module")
def exploding() -> Iterator[Live]:
    yield from hardened(Exploding(script=script))


@pytest.mark.parametrize("stream", [False, True])
def test_a_500_names_a_request_id_and_not_the_exception(exploding: Live, stream: bool,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="toolcall.server"):
        response = post(exploding, ask(stream=stream))
    if stream:
        assert response.status_code == 200
        payload = json.loads(next(line for line in response.text.splitlines() if '"error"' in line)[len("data: "):])
    else:
        assert response.status_code == 500
        payload = response.json()
    message = payload["error"]["message"]
    assert payload["error"]["type"] == "server_error"
    assert SECRET not in json.dumps(payload) and "RuntimeError" not in message
    ident = re.search(r"req_[0-9a-f]{16}", message)
    assert ident is not None
    assert any(ident.group() in r.getMessage() and SECRET in r.getMessage() for r in caplog.records)


def test_a_crash_outside_generation_is_a_generic_500(exploding: Live, monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    import toolcall.server.app as app_module

    def broken(*_: Any) -> Any:
        raise KeyError(SECRET)

    monkeypatch.setattr(app_module, "plan_request", broken)
    with caplog.at_level(logging.ERROR, logger="toolcall.server"):
        response = post(exploding, ask())
    error = response.json()["error"]
    assert response.status_code == 500 and SECRET not in response.text and "req_" in error["message"]
    assert any(r.exc_info is not None and SECRET in str(r.exc_info[1]) for r in caplog.records)


# --- what a security reviewer adds ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("extra", "param"), [
    pytest.param({"stop": [str(i) for i in range(1000)]}, "stop", id="a-thousand-stops"),
    pytest.param({"stop": "x" * 10_000}, "stop", id="a-huge-stop"),
    pytest.param({"n": 10**6}, "n", id="huge-n"),
    pytest.param({"n": 2**70}, "n", id="n-past-64-bits"),
    pytest.param({"max_tokens": 10**12}, "max_tokens", id="absurd-max-tokens"),
    pytest.param({"max_completion_tokens": 10**12}, "max_completion_tokens", id="absurd-max-completion-tokens"),
    pytest.param({"tools": function({"type": "object", "properties": {}}) * 200}, "tools", id="two-hundred-tools"),
    pytest.param({"toolcall": {"trigger_top_k": 10**9}}, "toolcall.trigger_top_k", id="absurd-trigger"),
    pytest.param({"toolcall": {"call_threshold": 1.0}}, "toolcall.call_threshold", id="certain-threshold"),
    pytest.param({"toolcall": {"call_threshold": -1}}, "toolcall.call_threshold", id="negative-threshold"),
])
def test_absurd_sizes_are_400s(live: Live, extra: dict[str, Any], param: str) -> None:
    assert error_of(post(live, ask(**extra)), 400)["param"] == param


def test_very_many_messages_are_a_400(live: Live) -> None:
    messages = [{"role": "user", "content": "x"}] * 3000
    assert error_of(post(live, {"model": MODEL, "messages": messages}), 400)["param"] == "messages"


@pytest.mark.parametrize("depth", [300, 100_000])
def test_deeply_nested_json_is_a_400(live: Live, depth: int) -> None:
    raw = b'{"model": "fake", "messages": [{"role": "user", "content": "hi"}], "metadata": ' + b"[" * depth + \
        b"]" * depth + b"}"
    error_of(post(live, None, raw=raw), 400)
    assert post(live, ask()).status_code == 200


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_numbers_are_400s(live: Live, literal: bytes) -> None:
    raw = b'{"model": "fake", "messages": [{"role": "user", "content": "hi"}], "temperature": ' + literal + b"}"
    error_of(post(live, None, raw=raw), 400)


def test_a_lone_surrogate_is_not_a_500(live: Live) -> None:
    raw = b'{"model": "fake", "messages": [{"role": "user", "content": "a\\ud800b"}]}'
    assert post(live, None, raw=raw).status_code in (200, 400)


def test_the_server_answers_after_all_that(live: Live) -> None:
    assert httpx.get(live.url + "/health", timeout=5).json()["status"] == "ok"
    response = post(live, ask())
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "You said: hi"
