"""`toolcall serve` builds the app from its flags: model id, tools, API key from the environment, limits."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from toolcall.cli import build_parser, main  # noqa: E402
from toolcall.cli.serve_cmd import build_app, model_id  # noqa: E402


def test_flags_build_the_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "s.json"
    script.write_text(json.dumps(["Hello."]))
    monkeypatch.setenv("TOOLCALL_API_KEY", "k1")
    args = build_parser().parse_args(["serve", "--backend", "fake", "--model", str(script), "--tools",
                                      "calculator,calendar", "--max-calls", "2", "--trigger-top-k", "5"])
    assert (args.host, args.port) == ("127.0.0.1", 8000)  # this machine only, unless told otherwise
    server = build_app(args).state.server
    assert server.settings.model_id == "fake" and server.api_key == "k1"
    assert sorted(server.settings.registry.names()) == ["Calculator", "Calendar"]
    assert server.settings.config.max_calls == 2 and server.settings.config.trigger_top_k == 5


def test_a_reply_without_max_tokens_may_use_the_context_up_to_the_limit(tmp_path: Path) -> None:
    """OpenAI and vLLM run a reply without max_tokens to the end of the context: it stopped at --max-new-tokens'
    default (200) with finish_reason "length". A typed --max-new-tokens still sets the default."""
    script = tmp_path / "s.json"
    script.write_text(json.dumps(["Hello."]))
    serve = ["serve", "--backend", "fake", "--model", str(script)]
    assert build_app(build_parser().parse_args(serve)).state.server.settings.config.max_new_tokens == 4096
    args = build_parser().parse_args([*serve, "--max-tokens-limit", "1000"])
    assert build_app(args).state.server.settings.config.max_new_tokens == 1000
    args = build_parser().parse_args([*serve, "--max-new-tokens", "64"])
    assert build_app(args).state.server.settings.config.max_new_tokens == 64


def test_model_id_comes_from_the_model_path() -> None:
    parse = build_parser().parse_args
    assert model_id(parse(["serve"])) == "SmolLM2-135M-Instruct"
    assert model_id(parse(["serve", "--model", "/m/my-model.gguf"])) == "my-model"
    assert model_id(parse(["serve", "--model", "out/model"])) == "model"
    assert model_id(parse(["serve", "--model", "out/model", "--served-model-name", "x"])) == "x"


def test_bad_settings_fail_before_any_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--max-tokens-limit", "0"]) == 1
    assert "--max-tokens-limit" in capsys.readouterr().err
    assert main(["serve", "--backend", "fake", "--tools", "calculater"]) == 1
    assert "Did you mean 'Calculator'" in capsys.readouterr().err


def test_the_log_shows_what_clients_send_visibly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`toolcall serve` wraps the handlers uvicorn configured (so after its Config) with the printable formatter:
    paths, headers and tool errors in log lines cannot write escape sequences to the user's terminal."""
    import uvicorn

    import toolcall.terminal
    from toolcall.server.guard import UVICORN_LOGGERS

    events: list[object] = []
    real_config = uvicorn.Config

    class Server:
        def __init__(self, config: object) -> None:
            events.append(config)

        def run(self) -> None:
            events.append("run")

    monkeypatch.setattr(uvicorn, "Config", lambda *a, **k: events.append("config") or real_config(*a, **k))
    monkeypatch.setattr(uvicorn, "Server", Server)
    monkeypatch.setattr(toolcall.terminal, "printable_logs", lambda *names: events.append(names))
    script = tmp_path / "s.json"
    script.write_text(json.dumps(["Hello."]))
    assert main(["serve", "--backend", "fake", "--model", str(script), "--port", "0"]) == 0
    assert events[0] == "config" and events[1] == UVICORN_LOGGERS and events[-1] == "run"
    assert {"uvicorn", "uvicorn.access", "uvicorn.error"} <= set(UVICORN_LOGGERS)


def test_ctrl_c_stops_the_server_soon_though_a_reply_waits_on_a_slow_tool(tmp_path: Path) -> None:
    """uvicorn waited without end for the replies in flight: one inside a tool held the stopping server for the tool's
    whole time limit (27 s of 30), and then the exit waited on the tool's thread. The reply is cancelled after the
    grace period, logged in one line (not a CancelledError traceback)."""
    import signal
    import socket
    import subprocess
    import sys
    import threading
    import time
    import urllib.error
    import urllib.request

    started = tmp_path / "started"
    (tmp_path / "slow_tools.py").write_text(
        "import pathlib, time\nimport toolcall\n\n\n@toolcall.tool(timeout=30)\n"
        "def Slow(s: str) -> str:\n    \"\"\"Sleeps.\n\n    Args:\n        s: The text.\n    \"\"\"\n"
        f"    pathlib.Path({str(started)!r}).touch()\n    time.sleep(60)\n    return s\n")
    (tmp_path / "script.json").write_text(json.dumps(["Let me see [Slow(x) -> ", " done."]))
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolcall", "serve", "--backend", "fake", "--model", "script.json", "--tools-from",
         "slow_tools.py", "--port", str(port)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def ask() -> None:
        body = json.dumps({"model": "fake", "messages": [{"role": "user", "content": "hi"}]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", body,
                                         {"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(request, timeout=60).read()
        except (urllib.error.URLError, OSError):
            pass   # the reply is cancelled: its connection ends without one

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
                break
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        threading.Thread(target=ask, daemon=True).start()
        while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists()
        proc.send_signal(signal.SIGINT)
        began = time.monotonic()
        out, _ = proc.communicate(timeout=40)
        assert time.monotonic() - began < 10 and proc.returncode == 130
        assert "CancelledError" not in out and "was cancelled" in out
    finally:
        proc.kill()
