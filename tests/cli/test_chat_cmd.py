"""`toolcall chat` driven through piped stdin on the fake backend."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from toolcall.cli import main


def chat(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
         replies: list[str], lines: str, *extra: str) -> str:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(replies))
    monkeypatch.setattr("sys.stdin", io.StringIO(lines))
    assert main(["chat", "--backend", "fake", "--model", str(script), *extra]) == 0
    return capsys.readouterr().out


def test_streams_reply_and_shows_the_call(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    out = chat(monkeypatch, capsys, tmp_path, ["It is [Calculator(17 * 23) ->", " 391."], "What is 17*23?\n")
    assert "It is [Calculator(17 * 23) ->\n→ Calculator(17 * 23) = 391\n 391] 391.\n" in out
    assert "\033[" not in out  # no colour codes when not on a terminal


def test_history_is_kept_and_reset(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                   tmp_path: Path) -> None:
    from toolcall.backends import fake

    seen: list[str] = []
    original = fake.FakeBackend.start

    def spy(self: fake.FakeBackend, prompt: str) -> fake.FakeSession:
        seen.append(prompt)
        return original(self, prompt)

    monkeypatch.setattr(fake.FakeBackend, "start", spy)
    chat(monkeypatch, capsys, tmp_path, ["First answer.", "Second.", "Third."], "one\ntwo\n/reset\nthree\n")
    assert "user: one\nassistant: First answer." in seen[1]
    assert "First answer." not in seen[2] and "user: three" in seen[2]


def test_tool_commands(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    lines = "/tools\n/disable calc\n/disable calculator\n/tools\nuse it [now\n/enable Calculator\n/help\n/bogus\n/quit\nnever\n"
    out = chat(monkeypatch, capsys, tmp_path, ["[Calculator(1 + 1) -> 2]", "unused"], lines)
    assert "  on   Calculator:" in out and "  off  Calculator:" in out
    assert "Did you mean 'Calculator'" in out
    assert "Calculator(1 + 1) -> 2]" in out and "→" not in out  # disabled: the opener is banned, no call runs
    assert "Calculator: on" in out and "/enable NAME" in out and "unknown command /bogus" in out
    assert "unused" not in out  # /quit ended the session before "never"


def test_end_of_input_exits_cleanly(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                    tmp_path: Path) -> None:
    assert chat(monkeypatch, capsys, tmp_path, ["x"], "") == ""
