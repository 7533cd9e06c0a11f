"""`toolcall mcp-serve` listed and called by the MCP SDK's own client (stdio subprocess and streamable HTTP), and the
round trip: a tool exported by mcp-serve and imported back gives the same schema and the same result."""
from __future__ import annotations

import json
import os
import queue
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

import anyio
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from toolcall.mcp.client import MCPClient
from toolcall.registry import ToolRegistry, default_registry

TOOLS_FILE = '''
import toolcall

print("importing the served tools")  # over stdio this must not reach the JSON-RPC stream


@toolcall.tool
def scale(value: float, factor: int = 2, negate: bool = False) -> float:
    """Multiply a number.

    Args:
        value: The number to multiply.
        factor: What to multiply it by.
        negate: Whether to flip the sign too.
    """
    return -value * factor if negate else value * factor


@toolcall.tool
def locate(city: str) -> dict:
    """Where a city is.

    Args:
        city: The city's name.
    """
    return {"city": city, "lat": 51.05, "lon": 3.72, "tags": ["port", None]}


@toolcall.tool
def nest(depth: int) -> dict:
    """A record holding a record, depth times.

    Args:
        depth: How deep.
    """
    value: dict = {}
    for _ in range(depth):
        value = {"in": value}
    return value


@toolcall.tool
def explode(reason: str) -> str:
    """Always fail.

    Args:
        reason: What the error says.
    """
    raise RuntimeError(reason)
'''
SERVED = "calculator,calendar,solve"
ENV = {**os.environ, "TOOLCALL_TODAY": "2023-01-30"}


@pytest.fixture
def tools_file(tmp_path: Path) -> Path:
    path = tmp_path / "served_tools.py"
    path.write_text(TOOLS_FILE, encoding="utf-8")
    return path


def serve_argv(tools_file: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "toolcall", "mcp-serve", "--tools", SERVED, "--tools-from", str(tools_file), *extra]


async def exercise(session: ClientSession) -> tuple[list[types.Tool], dict[str, types.CallToolResult]]:
    """List the tools and make the same few calls over any transport."""
    await session.initialize()
    listed = (await session.list_tools()).tools
    calls = {"calc": await session.call_tool("Calculator", {"expression": "17 * 23"}),
             "alias": await session.call_tool("calculate", {"expression": "2^10"}),
             "scale": await session.call_tool("scale", {"value": 1.5, "factor": 4}),
             "record": await session.call_tool("locate", {"city": "Ghent"}),
             "deep": await session.call_tool("nest", {"depth": 300}),
             "error": await session.call_tool("explode", {"reason": "out of cheese"}),
             "bad_args": await session.call_tool("scale", {"value": "lots"}),
             "unknown": await session.call_tool("nope", {})}
    return listed, calls


def check(listed: list[types.Tool], calls: dict[str, types.CallToolResult], tools_file: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("served_tools_check", tools_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = {t.name: t.schema["function"] for t in default_registry(SERVED.split(","))}
    expected.update({t.name: t.schema["function"] for t in (module.scale, module.locate, module.nest, module.explode)})
    # The input schemas are exactly the registry's "parameters" objects; descriptions are the tools'.
    assert {t.name: {"name": t.name, "description": t.description, "parameters": t.input_schema}
            for t in listed} == {n: {k: f[k] for k in ("name", "description", "parameters")} for n, f in expected.items()}

    def text(result: types.CallToolResult) -> str:
        assert len(result.content) == 1 and isinstance(result.content[0], types.TextContent)
        return result.content[0].text

    assert (text(calls["calc"]), calls["calc"].is_error) == ("391", False)
    assert (text(calls["alias"]), calls["alias"].is_error) == ("1024", False)
    assert (text(calls["scale"]), calls["scale"].is_error) == ("6.0", False)
    # A JSON object comes back as structuredContent too (its text stays); nothing else does.
    record = {"city": "Ghent", "lat": 51.05, "lon": 3.72, "tags": ["port", None]}
    assert json.loads(text(calls["record"])) == calls["record"].structured_content == record
    assert [n for n, c in calls.items() if c.structured_content is not None] == ["record"]
    assert text(calls["deep"]).count('{"in": ') == 300 and not calls["deep"].is_error   # the text alone, whole
    assert calls["error"].is_error and text(calls["error"]) == "Error: explode: RuntimeError: out of cheese"
    assert calls["bad_args"].is_error and "argument 'value' = 'lots' is not valid" in text(calls["bad_args"])
    assert calls["unknown"].is_error and "unknown tool 'nope'" in text(calls["unknown"])


def test_stdio_server_listed_and_called_by_the_sdk_client(tools_file: Path) -> None:
    async def main() -> tuple[list[types.Tool], dict[str, types.CallToolResult]]:
        argv = serve_argv(tools_file)
        params = StdioServerParameters(command=argv[0], args=argv[1:], env=ENV)
        with anyio.fail_after(60):
            async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                return await exercise(session)

    listed, calls = anyio.run(main)
    check(listed, calls, tools_file)


def announced_url(proc: subprocess.Popen[str], limit: float = 30.0, log: list[str] | None = None) -> str:
    """The URL mcp-serve prints on stderr once it listens, read with a bounded wait; every stderr line, then and
    later, is appended to `log`."""
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stderr is not None
    stderr, kept = proc.stderr, log if log is not None else []
    threading.Thread(target=lambda: [(lines.put(line), kept.append(line)) for line in stderr], daemon=True).start()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if proc.poll() is not None:
                raise AssertionError(f"mcp-serve exited with {proc.returncode} before listening") from None
            continue
        if "listening on " in line:
            return line.rsplit(" ", 1)[-1].strip()
    raise AssertionError(f"mcp-serve did not announce its URL within {limit} s")


def test_http_server_on_a_free_loopback_port(tools_file: Path) -> None:
    proc = subprocess.Popen(serve_argv(tools_file, "--transport", "http", "--port", "0"), env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = announced_url(proc)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp")

        async def main() -> tuple[list[types.Tool], dict[str, types.CallToolResult]]:
            with anyio.fail_after(60):
                async with streamable_http_client(url) as (read, write), ClientSession(read, write) as session:
                    return await exercise(session)

        listed, calls = anyio.run(main)
        check(listed, calls, tools_file)
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode is not None


def test_sessions_are_bounded_and_refusals_logged_a_few_times(tools_file: Path) -> None:
    """The SDK's defaults kept 10,000 sessions for 30 minutes each: a client that only opened sessions took the
    server from 108 to 485 MB, locked every other client out, and logged each refusal."""
    import httpx

    from toolcall.mcp.server import MAX_SESSIONS

    log: list[str] = []
    proc = subprocess.Popen(serve_argv(tools_file, "--transport", "http", "--port", "0"), env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = announced_url(proc, log=log)
        opening = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}}
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        with httpx.Client(timeout=10) as client:
            codes = [client.post(url, headers=headers, json=opening).status_code for _ in range(MAX_SESSIONS + 20)]
        assert codes == [200] * MAX_SESSIONS + [503] * 20
        time.sleep(0.5)
        assert sum("Refusing to open a new session" in line for line in log) <= 5
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_http_server_refuses_other_web_pages_and_host_names(tools_file: Path) -> None:
    """Any web page the user opens can reach a loopback port: a request from another origin (CSRF), under another host
    name (DNS rebinding) or not declared JSON never reaches a tool (the SDK's transport security, which mcp-serve
    configures; checked here so that an upgrade that drops it fails). --allowed-host and --allowed-origin add names,
    and the refused headers reach the log with their control characters shown, not obeyed by the terminal."""
    import httpx

    log: list[str] = []
    proc = subprocess.Popen(serve_argv(tools_file, "--transport", "http", "--port", "0", "--allowed-host",
                                       "tools.lan", "--allowed-origin", "https://app.example"),
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace")
    try:
        url = announced_url(proc, log=log)
        port = url.rsplit(":", 1)[1].split("/")[0]
        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
        accept = {"Accept": "application/json, text/event-stream"}

        def status(**headers: str | bytes) -> int:
            return client.post(url, json=body, headers={**accept, **headers}).status_code

        with httpx.Client(timeout=30) as client:
            assert status(Origin="http://evil.example") == 403
            assert status(Host=f"evil.example:{port}") == 421
            plain = client.post(url, content=json.dumps(body), headers={**accept, "Content-Type": "text/plain"})
            assert plain.status_code == 400
            assert status() == 200  # a local client without a page
            assert status(Host=f"tools.lan:{port}") == 200 and status(Host=f"localhost:{port}") == 200
            assert status(Origin="https://app.example") == 200 and status(Origin=f"http://127.0.0.1:{port}") == 200
            assert status(Host=b"evil\x9b[2J.example") == 421  # a header may carry C1 controls (obs-text)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("evil" in line and "2J" in line for line in log):
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(10)
    refused = [line for line in log if "evil" in line and "2J" in line]
    assert refused and all("\x9b" not in line and "\\x9b[2J" in line for line in refused), log


def test_round_trip_gives_the_same_schema_and_result(tools_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLCALL_TODAY", "2023-01-30")
    local = default_registry(SERVED.split(","))
    cases: list[tuple[str, Any]] = [("Calculator", ["400 / 1400"]), ("Calendar", []), ("Solve", ["x^2 - 4 = 0, x"]),
                                    ("Calculator", ["1 +"]), ("Calculator", {"expression": "12 * 12"})]
    with MCPClient(shlex.join(serve_argv(tools_file))) as client:
        imported = ToolRegistry(client.registry_tools(timeout=30))
        for name in SERVED.split(","):
            assert imported.get(name).schema == local.get(name).schema
        for name, args in cases:
            here, there = local.call(name, args), imported.call(name, args)
            assert (there.text, there.ok) == (here.text, here.ok), (name, args)
        # A tool from --tools-from comes back the same way, errors included.
        scale = imported.get("scale")
        assert scale.schema["function"]["parameters"]["properties"]["negate"] == {
            "type": "boolean", "description": "Whether to flip the sign too."}
        assert imported.call("scale", ["2", "3", "yes"]).text == "-6.0"
        assert imported.call("explode", ["no"]).text == "Error: explode: RuntimeError: no"


def test_an_optional_parameter_is_listed_as_json_schema_writes_it_and_null_comes_back_as_none(
        tmp_path: Path) -> None:
    # transformers' "nullable": true is OpenAPI's word, not JSON Schema's: a client that checks its arguments against
    # inputSchema (as MCP says it is) refused null for an Optional parameter.
    import jsonschema

    from toolcall.mcp.server import json_schema, list_entry
    from toolcall.tool_type import make_tool

    source = tmp_path / "optional_tools.py"
    source.write_text('''
import dataclasses
from typing import Literal, Optional

import toolcall


@dataclasses.dataclass
class Window:
    start: str
    end: Optional[str] = None


@toolcall.tool
def find(name: Optional[str] = None, kind: Optional[Literal["a", "b"]] = None,
         tags: Optional[list[str]] = None, window: Optional[Window] = None) -> str:
    """Find things.

    Args:
        name: Whose.
        kind: Which kind.
        tags: Labels.
        window: When.
    """
    return f"{name!r} {kind!r} {tags!r} {window!r}"
''', encoding="utf-8")
    from toolcall.tool_files import load_tools

    (found,) = load_tools(str(source))
    listed = list_entry(found).input_schema
    assert "nullable" not in json.dumps(listed)
    properties = listed["properties"]
    assert properties["name"]["type"] == ["string", "null"]
    assert properties["kind"]["enum"] == ["a", "b", None]
    assert properties["tags"]["type"] == ["array", "null"]
    assert properties["window"]["properties"]["end"]["type"] == ["string", "null"]
    jsonschema.Draft202012Validator.check_schema(listed)
    jsonschema.validate({"name": None, "kind": None, "tags": None, "window": {"start": "9", "end": None}}, listed)
    assert found.parameters["properties"]["name"]["nullable"] is True   # the registry's own stays transformers'
    assert json_schema(found.parameters) == listed
    assert json_schema(make_tool(found).parameters) == listed
    argv = [sys.executable, "-m", "toolcall", "mcp-serve", "--tools", "", "--tools-from", str(source)]
    with MCPClient(shlex.join(argv)) as client:
        imported = ToolRegistry(client.registry_tools(timeout=30))
        assert imported.call("find", {"name": None, "kind": None, "tags": ["x"]}).text == "None None ['x'] None"
        assert imported.call("find", {"kind": "b"}).text == "None 'b' None None"


def test_null_is_an_option_beside_a_ref_an_allof_or_a_const() -> None:
    import jsonschema

    from toolcall.mcp.server import json_schema

    # A schema from elsewhere (an MCP server's, served again) may say nullable beside these: null was refused.
    parameters = {"type": "object", "$defs": {"C": {"type": "string", "enum": ["r", "b"]}}, "properties": {
        "c": {"$ref": "#/$defs/C", "nullable": True, "description": "A colour."},
        "d": {"allOf": [{"$ref": "#/$defs/C"}], "nullable": True},
        "e": {"const": "x", "nullable": True}, "f": {"nullable": True, "description": "Anything."}}}
    listed = json_schema(parameters)
    assert listed["properties"]["c"] == {"description": "A colour.", "anyOf": [{"$ref": "#/$defs/C"}, {"type": "null"}]}
    assert listed["properties"]["f"] == {"description": "Anything."}
    jsonschema.Draft202012Validator.check_schema(listed)
    jsonschema.validate({"c": None, "d": None, "e": None, "f": None}, listed)
    jsonschema.validate({"c": "r", "d": "b", "e": "x"}, listed)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"c": "green"}, listed)
    # Definitions beside the nullable $ref stay at the root, where the $ref finds them.
    alone = json_schema({"$ref": "#/$defs/X", "$defs": {"X": {"type": "integer"}}, "nullable": True})
    assert alone == {"$defs": {"X": {"type": "integer"}}, "anyOf": [{"$ref": "#/$defs/X"}, {"type": "null"}]}
    jsonschema.validate(None, alone)
    jsonschema.validate(3, alone)


@pytest.mark.parametrize(("host", "warned"), [("127.0.0.1", False), ("localhost", False), ("::1", False),
                                              ("0.0.0.0", True), ("192.168.1.5", True)])
def test_serving_beyond_loopback_says_that_nothing_checks_host_or_origin(host: str, warned: bool) -> None:
    from toolcall.mcp.server import exposure_warning

    warning = exposure_warning(host)
    assert (warning is not None) is warned
    if warning is not None:
        assert host in warning and "any machine that reaches this port" in warning


def test_allowed_hosts_and_origins_become_the_sdks_checks() -> None:
    from toolcall.errors import ConfigError
    from toolcall.mcp.server import transport_security

    assert transport_security("0.0.0.0") is None  # nothing to check against: exposure_warning says so
    loopback = transport_security("127.0.0.1")
    assert loopback is not None and loopback.enable_dns_rebinding_protection
    assert "localhost:*" in loopback.allowed_hosts and "tools.lan" not in loopback.allowed_hosts
    named = transport_security("0.0.0.0", ["Tools.LAN", "10.0.0.2:8766", "fe80::1", " "], ["https://app.example/"])
    assert named is not None
    assert {"tools.lan", "tools.lan:*", "10.0.0.2:8766", "[fe80::1]", "[fe80::1]:*"} <= set(named.allowed_hosts)
    assert "10.0.0.2:8766:*" not in named.allowed_hosts and "https://app.example" in named.allowed_origins
    for bad_host in ("http://tools.lan", "*", "tools.lan/x"):
        with pytest.raises(ConfigError, match="--allowed-host"):
            transport_security("0.0.0.0", [bad_host])
    for bad_origin in ("app.example", "https://app.example/page", "https://*.example"):
        with pytest.raises(ConfigError, match="--allowed-origin"):
            transport_security("127.0.0.1", (), [bad_origin])


def test_tool_calls_running_at_once_are_bounded_in_all_and_per_session() -> None:
    """One client's calls could take every worker thread (anyio lends 40), so another client's calls waited behind
    them: past the limits a call is refused at once, with why, and a finished call frees its place."""
    from toolcall.mcp.server import CallRunner
    from toolcall.registry import make_tool

    release = threading.Event()

    def hold(tag: str) -> str:
        """Wait until released.

        Args:
            tag: Anything.
        """
        release.wait(20)
        return tag

    runner = CallRunner(ToolRegistry([make_tool(hold)]), most=3, per_session=2)
    class Session:  # a client session, as the SDK's ServerSession: hashable, weakly referenced
        pass

    first, second, third = Session(), Session(), Session()
    results: dict[str, tuple[str, bool]] = {}

    async def main() -> None:
        async def call(key: str, session: object) -> None:
            results[key] = await runner.call(session, "hold", {"tag": key})

        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for key, session in (("a1", first), ("a2", first), ("b1", second)):
                    group.start_soon(call, key, session)
                await anyio.sleep(0.5)
                await call("a3", first)   # the session's third: refused
                await call("c1", third)   # the server's fourth: refused
                release.set()
            await call("a4", first)       # places freed
    anyio.run(main)
    assert {k: ok for k, (_, ok) in results.items()} == {"a1": True, "a2": True, "b1": True, "a3": False, "c1": False,
                                                         "a4": True}
    assert "at most 3 tool calls at once, 2 per session" in results["a3"][0]


NAP_FILE = """
import time

import toolcall


@toolcall.tool(timeout=30)
def nap(seconds: float) -> float:
    \"\"\"Sleep a while.

    Args:
        seconds: How long.
    \"\"\"
    time.sleep(seconds)
    return seconds
"""


def test_one_clients_calls_are_bounded_per_session_over_a_real_connection(tmp_path: Path) -> None:
    """The SDK makes a ServerSession per request: counted by it, 40 calls of one stdio client ran 32 at once (the
    server's bound), not 8."""
    from toolcall.mcp.server import MAX_SESSION_CALLS

    path = tmp_path / "nap_tools.py"
    path.write_text(NAP_FILE, encoding="utf-8")
    argv = [sys.executable, "-m", "toolcall", "mcp-serve", "--tools", "", "--tools-from", str(path)]

    async def main() -> list[types.CallToolResult]:
        params = StdioServerParameters(command=argv[0], args=argv[1:], env=ENV)
        results: list[types.CallToolResult] = []
        with anyio.fail_after(90):
            async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                await session.initialize()

                async def one(i: int) -> None:
                    results.append(await session.call_tool("nap", {"seconds": 2 + i / 1000}))

                async with anyio.create_task_group() as group:
                    for i in range(MAX_SESSION_CALLS + 4):
                        group.start_soon(one, i)
        return results

    results = anyio.run(main)
    refused = [r for r in results if r.is_error]
    assert len(results) - len(refused) == MAX_SESSION_CALLS and len(refused) == 4
    assert all(f"{MAX_SESSION_CALLS} per session" in r.content[0].text for r in refused)  # type: ignore[union-attr]


@pytest.mark.parametrize("host", ["127.0.0.2", "127.1.2.3", "::1", "localhost"])
def test_every_loopback_address_gets_the_host_and_origin_checks(host: str) -> None:
    """On 127.0.0.2 nothing was checked (and the warning called it "not a loopback address")."""
    from toolcall.mcp.server import exposure_warning, transport_security

    security = transport_security(host)
    assert exposure_warning(host) is None and security is not None and security.enable_dns_rebinding_protection
    assert "evil.example:*" not in security.allowed_hosts
    if host.startswith("127."):
        assert f"{host}:*" in security.allowed_hosts


def test_a_cancelled_call_is_told_so_and_counts_until_its_thread_is_done() -> None:
    """A client's notifications/cancelled stops the wait at once and sets the call's CANCELLED event (an isolated
    call then frees its worker); the call still counts against the limits until its thread ends, so cancelling and
    calling again cannot pile threads up."""
    from toolcall import executor
    from toolcall.mcp.server import CallRunner
    from toolcall.registry import make_tool

    release, seen = threading.Event(), threading.Event()

    def hold(tag: str) -> str:
        """Wait until released.

        Args:
            tag: Anything.
        """
        event = executor.CANCELLED.get()
        release.wait(20)
        if event is not None and event.is_set():
            seen.set()
        return tag

    runner = CallRunner(ToolRegistry([make_tool(hold, timeout=30)]), most=4, per_session=1)

    class Session:
        pass

    session = Session()

    async def main() -> tuple[str, bool]:
        with anyio.fail_after(30):
            with anyio.move_on_after(0.5):
                await runner.call(session, "hold", {"tag": "first"})
            refused = await runner.call(session, "hold", {"tag": "again"})  # the first still runs: refused
            release.set()
            while runner.running.get(session):
                await anyio.sleep(0.05)
            return refused

    text, ok = anyio.run(main)
    assert not ok and "1 per session" in text
    assert seen.is_set() and runner.running.get(session) == 0


@pytest.mark.parametrize(("text", "expected"), [
    ('{"a": 1, "b": [true, null]}', {"a": 1, "b": [True, None]}),
    ('[1, 2]', None),                                  # a list: structuredContent is an object
    ('391', None),
    ('{"a": NaN}', None),                              # Python's json writes it; JSON has no such word
    ('{"a": 1} [... cut: 90,000 characters, the first 80,000 shown]', None),
    ('{not json}', None),
    ('{"a":' * 100_000 + '1' + '}' * 100_000, None),   # nested past what json reads: no structure, no error
    ('{"a":' * 64 + '1' + '}' * 64, json.loads('{"a":' * 64 + '1' + '}' * 64)),
    ('{"a":' * 65 + '1' + '}' * 65, None),             # past what is sent: the text alone goes (the SDK's
    ('{"a":' * 64 + '[1]' + '}' * 64, None),           # serialiser failed the whole answer at 255 levels)
    ('{"a": 1e400, "b": 1}', None),                    # infinity to Python, null to the SDK
    ('{"a": 1, "a": 2}', None),                        # two values in the text, one in a dict
], ids=["object", "list", "number", "nan", "cut", "not-json", "deep", "64-deep", "65-deep", "64-deep-list", "huge",
        "twice"])
def test_structured_content_is_a_result_that_is_a_json_object(text: str, expected: Any) -> None:
    from toolcall.mcp.server import structured

    assert structured(text) == expected
