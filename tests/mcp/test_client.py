"""Importing an MCP server's tools into a ToolRegistry: a small SDK-written server (tiny_server.py) over stdio and
streamable HTTP, errors and timeouts as results, a server killed mid-call, and the Tool built from a listing."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

from mcp import types

from toolcall.errors import ConfigError, ToolError, ToolTimeoutError
from toolcall.mcp.client import WAIT_CEILING, MCPClient, callable_name, remote_tool, result_text
from toolcall.registry import ToolRegistry

TINY = Path(__file__).with_name("tiny_server.py")
STDIO = f"{sys.executable} {TINY}"


class Recorder:
    """Stands in for an MCPClient: records what a Tool sends to the server and answers with it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], float | None]] = []

    def call(self, name: str, arguments: dict[str, Any], timeout: float | None = None, label: str | None = None) -> str:
        self.sent.append((name, dict(arguments), timeout))
        return f"{name} got {sorted(arguments.items())}"


def listing(name: str, schema: dict[str, Any], description: str = "A tool.") -> types.Tool:
    return types.Tool(name=name, description=description, input_schema=schema)


# ---------------------------------------------------------------------------------------------- the Tool, no server


def test_schema_is_the_listing_in_hf_form() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string", "description": "Where."}},
              "required": ["city"]}
    item = remote_tool(Recorder(), listing("weather", schema, "Today's weather."), timeout=3.0)  # type: ignore[arg-type]
    assert item.schema == {"type": "function", "function": {"name": "weather", "description": "Today's weather.",
                                                            "parameters": schema}}
    assert item.timeout == 3.0 and item.cacheable is False


def test_positional_arguments_follow_the_property_order_and_are_coerced() -> None:
    client = Recorder()
    schema = {"type": "object", "required": ["b", "a"],
              "properties": {"b": {"type": "integer"}, "a": {"type": "number"}, "flag": {"type": "boolean"},
                             "tags": {"type": "array", "items": {"type": "integer"}}}}
    registry = ToolRegistry([remote_tool(client, listing("mix", schema), timeout=2.0)])  # type: ignore[arg-type]
    assert registry.call("mix", ["7", "2.5", "yes", "[1, 2]"]).ok
    assert client.sent[-1] == ("mix", {"b": 7, "a": 2.5, "flag": True, "tags": [1, 2]}, WAIT_CEILING)
    assert registry.call("mix", {"a": 1, "b": "3"}).ok  # keywords; omitted optional ones are not sent
    assert client.sent[-1][1] == {"a": 1.0, "b": 3}
    missing = registry.call("mix", ["7"])
    assert not missing.ok and "missing required argument 'a'" in missing.text
    wrong = registry.call("mix", ["seven", "1"])
    assert not wrong.ok and "argument 'b' = 'seven' is not valid: expected an integer" in wrong.text
    assert len(client.sent) == 2  # bad arguments never reach the server


def test_optional_before_required_and_names_python_cannot_spell() -> None:
    client = Recorder()
    schema = {"type": "object", "required": ["user-id"],
              "properties": {"from": {"type": "string"}, "user-id": {"type": "string"}, "count": {}}}
    registry = ToolRegistry([remote_tool(client, listing("lookup", schema))])  # type: ignore[arg-type]
    # Positional arguments take the order the call grammar writes: required first, then optional, in schema order.
    assert registry.call("lookup", ["u7", "here", "3"]).ok
    assert client.sent[-1][1] == {"from": "here", "user-id": "u7", "count": "3"}  # no type: passed as written
    assert registry.call("lookup", {"user-id": "u8", "from": "there"}).ok
    assert client.sent[-1][1] == {"user-id": "u8", "from": "there"}
    result = registry.call("lookup", [])
    assert not result.ok and "missing required argument" in result.text


def test_a_name_the_grammars_accept_is_kept_and_only_the_others_are_renamed_around_it() -> None:
    """A server listing `a-b` before `a_b`: `a-b` took `a_b` and the real `a_b` became `a_b_`, so a call of `a_b`
    ran the server's `a-b`."""
    client = MCPClient("unused-server")
    recorder = Recorder()
    empty = {"type": "object", "properties": {}}
    client.tools = [listing("a-b", empty), listing("a_b", empty), listing("a.b", empty), listing("A_B_", empty),
                    listing("Add", empty), listing("add", empty)]
    client.call = recorder.call  # type: ignore[method-assign]
    tools = client.registry_tools()
    assert [t.name for t in tools] == ["a_b__", "a_b", "a_b___", "A_B_", "Add", "add_"]
    ToolRegistry(tools).call("a_b", [])
    assert recorder.sent[-1][0] == "a_b"
    client.close()


def test_a_name_the_call_grammar_cannot_spell_is_adapted_and_the_server_still_gets_its_own() -> None:
    assert [callable_name(n) for n in ("add", "get-forecast", "weather.today", "3d", "")] == [
        "add", "get_forecast", "weather_today", "_3d", "tool"]
    assert callable_name("a-b", {"a_b"}) == "a_b_"
    client = Recorder()
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    item = remote_tool(client, listing("get-forecast", schema))  # type: ignore[arg-type]
    assert item.name == "get_forecast" and item.schema["function"]["name"] == "get_forecast"
    assert ToolRegistry([item]).call("get_forecast", ["Paris"]).ok
    assert client.sent[-1][:2] == ("get-forecast", {"city": "Paris"})


def test_enum_choices_are_checked_before_the_call() -> None:
    client = Recorder()
    schema = {"type": "object", "properties": {"unit": {"type": "string", "enum": ["C", "F"]}}, "required": ["unit"]}
    registry = ToolRegistry([remote_tool(client, listing("temp", schema))])  # type: ignore[arg-type]
    bad = registry.call("temp", ["K"])
    assert not bad.ok and 'expected one of "C", "F"' in bad.text and client.sent == []


def test_result_text_joins_text_and_names_other_blocks() -> None:
    result = types.CallToolResult(content=[types.TextContent(type="text", text="a"),
                                           types.ImageContent(type="image", data="AA==", mime_type="image/png"),
                                           types.TextContent(type="text", text="b")])
    assert result_text(result) == "a\n[image image/png]\nb"
    assert result_text(types.CallToolResult(content=[], structured_content={"x": 1})) == '{"x": 1}'


def test_bad_server_specs_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="--mcp needs a server"):
        MCPClient("  ")
    with pytest.raises(ConfigError, match=r"cannot connect to MCP server .*no_such_command_xyz"):
        MCPClient("no_such_command_xyz --flag").open(timeout=20)


# ---------------------------------------------------------------------------------------------- a real server


@pytest.fixture(scope="module")
def tiny() -> Iterator[MCPClient]:
    with MCPClient(STDIO) as client:
        yield client


def test_lists_the_servers_tools(tiny: MCPClient) -> None:
    names = [entry.name for entry in tiny.tools]
    assert names == ["add", "greet", "slow", "crash", "fail"]
    greet = next(t for t in tiny.registry_tools() if t.name == "greet")
    assert greet.description == "Greet someone by name."
    assert greet.parameters["required"] == ["name"] and list(greet.parameters["properties"]) == ["name", "greeting"]


def test_calls_through_the_registry(tiny: MCPClient) -> None:
    registry = ToolRegistry(tiny.registry_tools(timeout=10))
    assert registry.call("add", ["2", "40"]).text == "42"
    assert registry.call("add", {"a": 1, "b": 2}).text == "3"
    assert registry.call("greet", ["Ada"]).text == "Hello, Ada!"
    assert registry.call("greet", ["Ada", "Hi"]).text == "Hi, Ada!"


def test_a_tool_error_is_an_error_result(tiny: MCPClient) -> None:
    result = ToolRegistry(tiny.registry_tools()).call("fail", ["the disk is full"])
    assert not result.ok and result.text.startswith("Error: fail: ") and "the disk is full" in result.text


def test_a_slow_tool_times_out_and_the_session_stays_usable(tiny: MCPClient) -> None:
    registry = ToolRegistry(tiny.registry_tools(timeout=0.5))
    start = time.perf_counter()
    result = registry.call("slow", ["30"])
    assert not result.ok and result.text == "Error: slow: timed out after 0.5 s"
    assert time.perf_counter() - start < 5
    assert registry.call("add", ["1", "1"]).text == "2"
    # A per-call limit above the tool's own is the registry's to apply (the loop's --call-timeout).
    assert registry.call("slow", ["0.8"], timeout=5).text == "slept 0.8 s"
    # The client's own wait ends a call too, and cancels the request.
    with pytest.raises(ToolTimeoutError, match=r"slow: timed out after 0.3 s"):
        tiny.call("slow", {"seconds": 30}, timeout=0.3)


def test_a_server_killed_mid_call_gives_an_error_result_and_the_next_call_starts_it_again() -> None:
    """The dead connection was kept: every later call said "Connection closed", and import_tools gave the same dead
    client, so a long-running serve or chat could not go on without a restart."""
    with MCPClient(STDIO) as client:
        registry = ToolRegistry(client.registry_tools(timeout=20))
        start = time.perf_counter()
        result = registry.call("crash", [])
        assert not result.ok and "crash: MCP server" in result.text and "failed" in result.text
        assert time.perf_counter() - start < 10  # noticed when the pipe closed, not at the time limit
        assert [registry.call("add", ["1", str(i)]).text for i in (2, 3)] == ["3", "4"]
        assert not registry.call("crash", []).ok and registry.call("add", ["2", "2"]).text == "4"  # and again
    assert client.closed
    with pytest.raises(ToolError, match="not connected"):
        client.call("add", {"a": 1, "b": 1})  # closed by its owner: never started again


FAKE = Path(__file__).with_name("fake_server.py")


def test_a_server_that_fails_to_start_again_is_tried_again_by_a_later_call(tmp_path: Path) -> None:
    """The first try to start a dead server again cleared the loss before the new session was up: a server still
    restarting (it exited during initialize) left every later call "not connected", for good."""
    from toolcall.mcp.client import REVIVE_INTERVAL

    env = {**os.environ, "FAKE_SERVER_LOG": str(tmp_path / "starts")}
    with MCPClient(f"{sys.executable} {FAKE} flaky", env=env) as client:
        with pytest.raises(ToolError, match="failed"):
            client.call("calculate", {"expression": "1+1"}, timeout=10)  # the first start dies mid-call
        with pytest.raises(ToolError, match="not connected"):
            client.call("calculate", {"expression": "1+2"}, timeout=10)  # the second exits in initialize
        time.sleep(REVIVE_INTERVAL)
        assert client.call("calculate", {"expression": "1+3"}, timeout=10) == "4"
    assert (tmp_path / "starts").read_text().split() == ["1", "2", "3"]


def test_a_tools_own_session_error_over_stdio_is_not_taken_for_a_lost_session(tmp_path: Path) -> None:
    """Any error mentioning a lost session restarted the server and ran the call again, over stdio too."""
    env = {**os.environ, "FAKE_SERVER_LOG": str(tmp_path / "starts")}
    with MCPClient(f"{sys.executable} {FAKE} sessionerror", env=env) as client:
        for _ in range(2):
            with pytest.raises(ToolError, match="Session not found"):
                client.call("calculate", {"expression": "1+1"}, timeout=10)
    assert (tmp_path / "starts").read_text().split() == ["1"]


def test_a_server_slower_to_start_than_a_call_is_waited_for_not_started_again(tmp_path: Path) -> None:
    """Each call after a loss gave up on the start under way after its own time limit and started another, so a
    server slower to start than a call's limit never came back."""
    env = {**os.environ, "FAKE_SERVER_LOG": str(tmp_path / "starts")}
    with MCPClient(f"{sys.executable} {FAKE} slowstart", env=env) as client:
        with pytest.raises(ToolError, match="failed"):
            client.call("calculate", {"expression": "1+1"}, timeout=10)  # the first start dies mid-call
        with pytest.raises(ToolError, match="not connected"):
            client.call("calculate", {"expression": "1+2"}, timeout=1)  # its restart takes 2 s
        time.sleep(1.5)
        assert client.call("calculate", {"expression": "1+3"}, timeout=5) == "4"
    assert (tmp_path / "starts").read_text().split() == ["1", "2"]


def test_a_call_past_the_registrys_limit_is_cancelled_on_the_server_and_holds_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry call of an MCP tool past its time limit went on waiting for the server (WAIT_CEILING, 600 s)
    without telling it: the server was never sent notifications/cancelled, and once 8 such calls waited, the tool
    refused every call ("not run: 8 earlier calls ... still running") for ten minutes."""
    from toolcall.executor import MAX_OVERDUE_CALLS
    from toolcall.mcp import import_tools

    log = tmp_path / "cancelled"
    monkeypatch.setenv("FAKE_SERVER_LOG", str(log))
    registry = ToolRegistry(import_tools(f"{sys.executable} {FAKE} never", timeout=0.3))
    try:
        texts = [registry.call("calculate", ["1+1"]).text for _ in range(MAX_OVERDUE_CALLS + 2)]
        assert texts == ["Error: calculate: timed out after 0.3 s"] * (MAX_OVERDUE_CALLS + 2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(log.read_text().split() if log.exists() else ()) < len(texts):
            time.sleep(0.1)
        assert len(log.read_text().split()) == len(texts)  # the server heard of each call given up
    finally:
        from toolcall.mcp.client import close_all

        close_all()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listened on 127.0.0.1:{port} within {limit} s")


def test_imports_from_a_streamable_http_server() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(TINY), "http", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        with MCPClient(f"http://127.0.0.1:{port}/mcp") as client:
            registry = ToolRegistry(client.registry_tools(timeout=10))
            assert "add" in registry and registry.call("add", ["20", "22"]).text == "42"
            assert not registry.call("fail", ["nope"]).ok
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_restarted_http_server_gets_the_next_call_in_a_new_session() -> None:
    """A restarted HTTP server does not know the session: the client kept sending it, and every call after the
    restart failed with "Session not found". The MCP spec asks the client to start a new session then; the call,
    which never ran, is made again in it."""
    port = free_port()

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, str(TINY), "http", str(port)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        wait_for_port(port, proc)
        return proc

    proc = start()
    try:
        with MCPClient(f"http://127.0.0.1:{port}/mcp") as client:
            assert client.call("add", {"a": 1, "b": 2}, timeout=10) == "3"
            proc.terminate()
            proc.wait(10)
            proc = start()
            assert [client.call("add", {"a": 2, "b": i}, timeout=10) for i in (1, 2)] == ["3", "4"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_servers_huge_answer_is_refused_past_the_limit_not_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK reads a JSON answer whole: a remote server answering with gigabytes held them all in memory (600 MB
    took the client to 3.9 GB). Past MAX_RESPONSE_BYTES the call is an error instead; under it, the result reaches
    the model cut as any long result is."""
    from toolcall.mcp import bounded_http

    monkeypatch.setattr(bounded_http, "MAX_RESPONSE_BYTES", 1 << 20)
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("huge_http_server.py")), str(port),
                             str(3 << 20)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        with MCPClient(f"http://127.0.0.1:{port}/mcp") as client:
            registry = ToolRegistry(client.registry_tools(timeout=20))
            for name, words in (("big", "went past 1,048,576 bytes"), ("declared", "declares 3,145,")):
                result = registry.call(name)
                assert not result.ok and words in (result.error or ""), result.error
        monkeypatch.setattr(bounded_http, "MAX_RESPONSE_BYTES", 4 << 20)
        with MCPClient(f"http://127.0.0.1:{port}/mcp") as client:
            # An answer as one server-sent event past the SDK's own 1 MiB per event failed; it is bounded as any.
            for name in ("big", "event"):
                result = ToolRegistry(client.registry_tools(timeout=20)).call(name)
                assert result.ok and result.text.endswith("[... cut: 3,145,728 characters, the first 32,768 shown]")
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_closed_client_refuses_calls() -> None:
    client = MCPClient(STDIO)
    client.close()
    with pytest.raises(ToolError, match="not connected"):
        client.call("add", {"a": 1, "b": 2})
    with pytest.raises(ConfigError, match="was closed"):
        client.open()


def test_a_listed_schema_that_is_no_json_schema_is_not_offered() -> None:
    from toolcall.mcp.client import not_offered

    assert not_offered(listing("ok", {"type": "object", "properties": {"x": {"type": "string"}}})) is None
    for schema in ({"type": "object", "properties": {"x": {"type": [{"a": 1}]}}},  # crashed `toolcall tools`
                   {"type": "object", "properties": {"x": {"type": 7}}}):
        why = not_offered(listing("odd", schema))
        assert why is not None and why.startswith("its inputSchema is not a valid JSON Schema at properties/x"), why


def test_listing_stops_asking_for_pages_past_what_could_be_offered() -> None:
    """A server paging 350,000 tools at a time took 2.2 GB in 3 pages; only MAX_TOOLS are offered."""
    import asyncio

    from toolcall.mcp.client import MAX_LISTED, _list_all

    class Pager:
        asked = 0

        async def list_tools(self, params: Any = None) -> types.ListToolsResult:
            self.asked += 1
            tools = [listing(f"t{self.asked}_{i}", {"type": "object"}) for i in range(300)]
            return types.ListToolsResult(tools=tools, next_cursor=f"page{self.asked}")

    pager = Pager()
    listed, _ = asyncio.run(_list_all(pager))  # type: ignore[arg-type]
    assert pager.asked == 4 and MAX_LISTED <= len(listed) < MAX_LISTED + 300


def test_the_readme_example_server_offers_its_forecast_without_pydantics_titles() -> None:
    example = Path(__file__).parents[2] / "examples" / "weather_server.py"
    with MCPClient(f"{sys.executable} {example}") as client:
        (forecast,) = client.registry_tools(timeout=10)
        assert "title" in forecast.parameters["properties"]["city"]  # as the SDK's server lists it
        offered = forecast.schema["function"]["parameters"]
        assert offered == {"type": "object", "required": ["city"], "properties": {
            "city": {"description": 'The city, e.g. "Paris".', "type": "string"},
            "day": {"default": "today", "description": '"today", "tomorrow" or a weekday.', "type": "string"}}}
        registry = ToolRegistry([forecast])
        first = registry.call("get_forecast", {"city": "Paris"}).text
        assert first.startswith("Paris, today: ") and registry.call("get_forecast", ["Paris"]).text == first
