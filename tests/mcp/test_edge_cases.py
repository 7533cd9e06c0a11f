"""MCP servers that misbehave or surprise: a tool named like a built-in, one that requires MCP tasks, a server that
never answers `initialize`, one that prints garbage, errors a model reads, and the environment a server gets."""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("mcp")

from toolcall.cli import main
from toolcall.errors import ConfigError
from toolcall.mcp.client import MCPClient, close_all, connect
from toolcall.registry import ToolRegistry
from toolcall.toolset import Toolset

FAKE = Path(__file__).with_name("fake_server.py")
TINY = Path(__file__).with_name("tiny_server.py")


def fake(mode: str = "ok") -> str:
    return f"{sys.executable} {FAKE} {mode}"


@pytest.fixture(autouse=True)
def close_servers() -> Iterator[None]:
    yield
    close_all()


def listed(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[list[str], str]:
    assert main(["tools", "--json", *argv]) == 0
    out, err = capsys.readouterr()
    return [t["name"] for t in json.loads(out)], err


def test_a_tool_named_like_a_built_in_replaces_it_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.warns(RuntimeWarning) as warned:
        names, _ = listed(capsys, ["--mcp", fake()])
    assert "calculate" in names and "Calculator" not in names and "Calendar" in names
    messages = [str(w.message) for w in warned]
    assert any("its tool 'calculate' replaces the tool 'Calculator'; name the built-in tools to keep with --tools"
               in m for m in messages), messages   # no --tools was typed: none to leave it out of
    # the tool that requires MCP tasks is left out, and a warning says so
    assert "long_job" not in names
    assert any("not offering 'long_job'" in m and "taskSupport" in m for m in messages), messages


def test_tools_leaves_the_built_ins_out(capsys: pytest.CaptureFixture[str], recwarn: pytest.WarningsRecorder) -> None:
    names, _ = listed(capsys, ["--tools", "", "--mcp", fake()])
    assert names == ["calculate", "echo_env"]
    assert not [w for w in recwarn if "replaces" in str(w.message)]
    names, _ = listed(capsys, ["--tools", "calendar", "--mcp", fake()])
    assert names == ["Calendar", "calculate", "echo_env"]
    with pytest.warns(RuntimeWarning, match="replaces the tool 'Calculator'; leave that one out of --tools"):
        names, _ = listed(capsys, ["--tools", "calculator,calendar", "--mcp", fake()])
    assert names == ["Calendar", "calculate", "echo_env"]


def test_tool_runs_the_servers_tool_of_that_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.warns(RuntimeWarning, match="replaces the tool 'Calculator'"):
        assert main(["tool", "--mcp", fake(), "calculate", "2+3+4"]) == 0
    assert capsys.readouterr().out == "9\n"
    assert main(["tool", "--tools", "", "--mcp", fake(), "calculate", "1+1"]) == 0
    assert capsys.readouterr().out == "2\n"


def test_a_clash_between_two_requested_sources_is_still_an_error() -> None:
    with pytest.raises(ConfigError, match="its tool 'calculate' has the name of a tool already offered"):
        Toolset(names=(), mcp=(fake(), f"{sys.executable}  {FAKE} ok")).build()


def test_a_server_that_never_answers_fails_after_the_stated_time(capsys: pytest.CaptureFixture[str]) -> None:
    start = time.perf_counter()
    assert main(["tools", "--mcp", fake("silent"), "--mcp-timeout", "0.5"]) == 1
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err
    assert "not ready within 0.5 s" in err and "--mcp-timeout" in err
    # the stated time, plus the MCP shutdown's bounded wait for the process to exit before it is killed
    assert elapsed < 0.5 + 3.5, elapsed


def test_a_server_that_prints_garbage_gives_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    start = time.perf_counter()
    assert main(["tools", "--mcp", fake("garbage")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "printed a line that is not JSON-RPC: 'Welcome to the fake server, version 1!'" in err
    # At once, not after the 30 s connect timeout (5 s alone here; 20 s once with the two cores shared).
    assert time.perf_counter() - start < 25


def test_malformed_notifications_during_a_call_are_logged_in_a_few_lines_naming_the_server(
        caplog: pytest.LogCaptureFixture) -> None:
    """Twenty malformed progress notifications in a call gave 20 tracebacks (342 lines): the SDK's session logs as
    `client`, and a call's messages were handled outside the client's context, where the log was left whole."""
    import logging

    registry = Toolset(names=(), mcp=(fake("badnotif"),)).build()
    with caplog.at_level(logging.WARNING):
        assert registry.call("calculate", ("1+1",)).text == "2"
    records = [r for r in caplog.records if "notification" in r.getMessage()]
    assert 1 <= len(records) <= 5, [r.getMessage() for r in caplog.records]
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in records)
    assert all(r.getMessage().startswith("MCP server fake-server: Failed to validate notification") for r in records)


def test_entries_that_are_no_mcp_tools_are_left_out_and_the_others_offered() -> None:
    """The SDK refused the whole listing for one tool whose inputSchema is not an object's, so the server could not be
    used at all, and the error kept only the first line of pydantic's message (not what was wrong)."""
    with pytest.warns(RuntimeWarning) as said:
        registry = Toolset(names=(), mcp=(fake("badlisting"),)).build()
    assert registry.call("calculate", ("2+2",)).text == "4"
    messages = [str(w.message) for w in said]
    assert "toolcall: --mcp fake-server: not offering 'tools[4]': it is not an MCP tool (name: Field required)" \
        in messages, messages
    assert "toolcall: --mcp fake-server: not offering 'listy': its inputSchema is not an object's (type \"array\")" \
        in messages, messages


def test_a_result_outside_the_protocol_says_what_and_where() -> None:
    """The model read `ValidationError: 1 validation error for CallToolResult`, which says neither."""
    registry = Toolset(names=(), mcp=(fake("badresult"),)).build()
    text = registry.call("calculate", ("1+1",)).text
    assert text.startswith("Error: calculate: MCP server fake-server failed: the server's CallToolResult breaks the "
                           "MCP protocol at content: "), text


def test_a_listing_that_never_ends_is_cut_with_a_warning() -> None:
    from toolcall.mcp.client import MAX_PAGES

    with pytest.warns(RuntimeWarning, match=f"its listing goes on past {MAX_PAGES} pages"):
        registry = Toolset(names=(), mcp=(fake("endless"),)).build()
    assert len(registry) == MAX_PAGES


def test_garbage_after_the_session_started_is_reported_once_and_ignored(capfd: pytest.CaptureFixture[str]) -> None:
    registry = Toolset(names=(), mcp=(fake("chatty"),)).build()
    assert [registry.call("calculate", (f"{i}+1",)).text for i in range(3)] == ["1", "2", "3"]
    err = capfd.readouterr().err
    assert err.count("ignoring a stdout line that is not JSON-RPC: 'calling calculate'") == 1, err
    assert "Traceback" not in err


def test_a_flooding_server_offers_what_fits_and_its_results_reach_the_model_cut(capsys: pytest.CaptureFixture[str]) -> None:
    """1,000 tools, a schema 40 levels deep, a 1 MB description, a 10,000-character name, 5 MB results: the first
    128 fitting tools are offered (the rest named in warnings), and a result is cut to the registry's limit."""
    with pytest.warns(RuntimeWarning) as warned:
        names, _ = listed(capsys, ["--tools", "", "--mcp", fake("flood")])
    assert sorted(names) == sorted(["calculate", "echo_env", *(f"t{i}" for i in range(126))])
    messages = [str(w.message) for w in warned]
    for expected in ("not offering 't126', 't127', 't128', 't129', 't130' and 869 more: the server lists more than 128",
                     "not offering 'deep': its inputSchema nests deeper than 32 levels",
                     "not offering 'wordy': its description is longer than 8,192 characters",
                     "not offering '" + "n" * 64 + "...': its name is longer than 64 characters"):
        assert any(expected in m for m in messages), (expected, messages)
    registry = Toolset(names=(), mcp=(fake("flood"),)).build()  # the same connection: warned once, above
    result = registry.call("t3", ("hi",))
    assert result.ok and len(result.text) < 33_000 and result.text.endswith("[... cut: 5,000,000 characters, the first "
                                                                            "32,768 shown]")


def test_errors_a_model_reads_name_the_server_not_its_command_line() -> None:
    client = connect(f"{sys.executable} {TINY}")
    registry = ToolRegistry(client.registry_tools(timeout=20))
    result = registry.call("crash", [])
    assert not result.ok and "MCP server tiny failed" in result.text
    after = registry.call("add", ["1", "2"])
    for text in (result.text, after.text):
        assert str(TINY) not in text and sys.executable not in text, text


def test_stdio_servers_inherit_the_environment_unless_variables_are_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLCALL_TEST_SECRET", "s3cret")
    monkeypatch.setenv("TOOLCALL_TEST_SHARED", "shared")
    whole = Toolset(names=(), mcp=(fake(),)).build()
    assert whole.call("echo_env", ("TOOLCALL_TEST_SECRET",)).text == "s3cret"
    chosen = Toolset(names=(), mcp=(fake(),), mcp_env=("TOOLCALL_TEST_SHARED", "EXTRA=1")).build()
    assert chosen.call("echo_env", ("TOOLCALL_TEST_SECRET",)).text == "<unset>"
    assert chosen.call("echo_env", ("TOOLCALL_TEST_SHARED",)).text == "shared"
    assert chosen.call("echo_env", ("EXTRA",)).text == "1"
    assert chosen.call("echo_env", ("PATH",)).text != "<unset>"   # the SDK's few always pass


def test_mcp_env_and_timeout_flags(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLCALL_TEST_SECRET", "s3cret")
    argv = ["tool", "--tools", "", "--mcp", fake(), "--mcp-timeout", "20"]
    assert main([*argv, "echo_env", "TOOLCALL_TEST_SECRET"]) == 0
    assert capsys.readouterr().out == "s3cret\n"
    assert main([*argv, "--mcp-env", "TOOLCALL_TEST_OTHER=1", "echo_env", "TOOLCALL_TEST_SECRET"]) == 0
    assert capsys.readouterr().out == "<unset>\n"
    assert main(["tools", "--mcp", fake(), "--mcp-timeout", "0"]) == 1
    assert "--mcp-timeout must be more than 0 seconds" in capsys.readouterr().err


def test_the_short_name_is_the_servers_own(tmp_path: Path) -> None:
    with MCPClient(fake()) as client:
        assert client.name == "fake-server"
    assert MCPClient(f"{sys.executable} {FAKE}").name == Path(sys.executable).name
    assert MCPClient("https://tools.example.com:8443/mcp").name == "tools.example.com"


def test_the_same_server_named_twice_is_one_server() -> None:
    """`--mcp S --mcp S` was refused: each of S's tools 'has the name of a tool already offered' (by S)."""
    with pytest.warns(RuntimeWarning):  # the fake server's task-only tool
        registry = Toolset(names=(), mcp=(fake(), " " + fake())).build()
    assert sorted(t.name for t in registry) == ["calculate", "echo_env"]
    assert registry.call("calculate", ("2+3",)).text == "5"
