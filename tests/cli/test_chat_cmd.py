"""`toolcall chat` driven through piped stdin on the fake backend."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from toolcall.cli import main
from toolcall.cli.chat_cmd import Chat


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


def test_control_characters_from_the_model_or_a_tool_are_shown_not_obeyed(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    tools = tmp_path / "page.py"
    tools.write_text('import toolcall\n\n\n@toolcall.tool\ndef page(url: str) -> str:\n    """Fetch a page.\n\n'
                     '    Args:\n        url: Where.\n    """\n    return "hi \\x1b]52;c;ZXZpbA==\\x07 \\x9b2J"\n')
    out = chat(monkeypatch, capsys, tmp_path, ["Clear \x1b[2J [page(x) ->", " done."], "Go\n", "--tools-from", str(tools))
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out
    assert "Clear \u241b[2J [page(x) ->" in out and "hi \u241b]52;c;ZXZpbA==\u2407 \\x9b2J" in out


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


def test_enabling_a_tool_in_a_chat_without_tools_says_there_are_none(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """It answered `usage: /enable NAME` to `/enable Calculator`."""
    out = chat(monkeypatch, capsys, tmp_path, ["x"], "/enable Calculator\n", "--tools", "")
    assert "this chat has no tools; start it with --tools" in out and "usage:" not in out


def test_end_of_input_exits_cleanly(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                    tmp_path: Path) -> None:
    assert chat(monkeypatch, capsys, tmp_path, ["x"], "") == ""


# --- the decode session (and its KV cache) lives across turns ------------------------------------------------------

def chatml(messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
    """A template shaped like SmolLM2's: it renders earlier replies exactly as written, so a prompt extends the last."""
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def make_chat(tmp_path: Path, replies: list[str], *extra: str) -> Chat:
    from toolcall.cli import build_parser

    script = tmp_path / "script.json"
    script.write_text(json.dumps(replies))
    args = build_parser().parse_args(["chat", "--backend", "fake", "--model", str(script), *extra])
    return Chat(args, io.StringIO())


def test_next_turn_prefills_only_the_new_text(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from toolcall.backends.fake import FakeBackend

    monkeypatch.setattr(FakeBackend, "chat_prompt", lambda self, messages, add_generation_prompt=True:
                        chatml(list(messages), add_generation_prompt))
    chat = make_chat(tmp_path, ["It is [Calculator(17 * 23) ->", " 391.", "Twice that is 782."])
    first = chat.reply("What is 17*23?")
    assert first is not None and first.text == "It is [Calculator(17 * 23) -> 391] 391."
    session = chat.session
    held = session.text
    second = chat.reply("And twice that?")
    assert chat.session is session and chat.backend.prompts == [chat.backend.prompts[0]]  # no new session
    assert second is not None and second.text == "Twice that is 782."
    new_text = "<|im_end|>\n<|im_start|>user\nAnd twice that?<|im_end|>\n<|im_start|>assistant\n"
    assert session.text == held + new_text + second.text
    # This turn's counters: only the new turn went through the "model", not the conversation before it.
    assert second.counters.prefilled_tokens == -(-len(new_text) // chat.backend.chars_per_token)
    assert second.counters.prefilled_tokens < first.counters.prefilled_tokens / 10
    # The held reply keeps the call and its result: the history the next prompt renders is what the session holds.
    assert chat.turns[0].held == first.text and "[Calculator(17 * 23) -> 391]" in chat._prompt("x", None, "held")


def test_changed_instructions_start_a_fresh_session(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from toolcall.backends.fake import FakeBackend

    monkeypatch.setattr(FakeBackend, "chat_prompt", lambda self, messages, add_generation_prompt=True:
                        chatml(list(messages), add_generation_prompt))
    chat = make_chat(tmp_path, ["One.", "Two.", "Three.", "Four."])
    chat.reply("a")
    chat.command("/disable calculator")   # the tool instructions leave the prompt: it no longer extends the session
    chat.reply("b")
    assert len(chat.backend.prompts) == 2 and "One." in chat.backend.prompts[1]
    chat.reply("c")
    assert len(chat.backend.prompts) == 2  # same instructions again: the session goes on
    chat.command("/reset")
    chat.reply("d")
    assert len(chat.backend.prompts) == 3 and "One." not in chat.backend.prompts[2]


def test_a_template_that_rewrites_replies_falls_back_to_a_fresh_prompt(tmp_path: Path) -> None:
    # The fake backend's plain template writes "assistant:" before a reply and "assistant: reply" for a past one,
    # so the prompt never extends the session: each turn starts fresh, past replies as a person reads them.
    chat = make_chat(tmp_path, ["  First answer. ", "Second."])
    chat.reply("one")
    chat.reply("two")
    assert len(chat.backend.prompts) == 2
    assert "user: one\nassistant: First answer.\nuser: two" in chat.backend.prompts[1]


@pytest.mark.model
def test_embedded_model_keeps_its_kv_cache_across_turns(tmp_path: Path) -> None:
    from toolcall.cli import build_parser
    from toolcall.runner import run_loop

    args = build_parser().parse_args(["chat", "--max-new-tokens", "24"])
    chat = Chat(args, io.StringIO())
    first = chat.reply("What is 17 * 23?")
    session = chat.session
    question = "And what is that plus 1?"
    prompt = chat._prompt(question, chat.registry, "held")
    assert prompt.startswith(session.text)  # SmolLM2's template renders the held reply as the model wrote it
    second = chat.reply(question)
    assert chat.session is session
    assert first is not None and second is not None
    full = len(chat.backend.encode(prompt))
    assert second.counters.prefilled_tokens < full / 4, (second.counters.prefilled_tokens, full)
    # Greedy decoding from scratch on the same prompt gives the same reply.
    scratch = run_loop(chat.backend, prompt, chat.dialect, chat.registry, chat.config)
    assert second.text == scratch.text


def test_a_line_that_is_not_utf8_is_skipped_and_the_chat_goes_on(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(["Four.", "Third answer."]))
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"What is 2+2?\ncaf\xe9?\nthird\n"), encoding="utf-8"))
    assert main(["chat", "--backend", "fake", "--model", str(script)]) == 0   # it died on line 2
    assert capsys.readouterr().out == "Four.\n(line 2 is not UTF-8 text; skipped)\nThird answer.\n"


def test_a_conversation_past_the_context_is_said_and_the_chat_goes_on(monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str],
                                                                     tmp_path: Path) -> None:
    from toolcall.backends.fake import FakeBackend

    monkeypatch.setattr(FakeBackend, "context_size", lambda self: 400)   # 1,600 characters at 4 a token
    out = chat(monkeypatch, capsys, tmp_path, ["Short."] * 3, f"hi\n{'word ' * 400}\n/reset\nhi\n", "--no-few-shot")
    assert "(the conversation is " in out and "this model reads at most 400; /reset clears the conversation)" in out
    assert out.count("Short.") == 2


def test_ctrl_c_stops_the_reply_and_the_next_question_reads_the_conversation_afresh(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Stopped inside a model step, the session's cache may be torn: the next turn starts a session of its own. A
    question stopped before any reply is dropped, not read again before every later one."""
    from toolcall.backends.fake import FakeSession
    from toolcall.cli import build_parser

    script = tmp_path / "script.json"
    script.write_text(json.dumps(["A long story about a dog.", "Forty-two.", "Seven."]))
    chat = Chat(build_parser().parse_args(["chat", "--backend", "fake", "--model", str(script)]), io.StringIO())
    original = FakeSession.stream
    stop_after: list[int] = [2]

    def interrupted(self: FakeSession, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if stop_after == [0]:  # while the question is read, before any reply
            stop_after.clear()
            raise KeyboardInterrupt
        for n, piece in enumerate(original(self, *args, **kwargs)):  # type: ignore[arg-type]
            if stop_after and n == stop_after[0]:
                stop_after.clear()
                raise KeyboardInterrupt
            yield piece

    monkeypatch.setattr(FakeSession, "stream", interrupted)
    chat.reply("Tell me a story.")
    assert chat.session is None and "(reply stopped)" in chat.out.getvalue()  # type: ignore[attr-defined]
    held = chat.turns[0].held
    assert chat.turns[0].question == "Tell me a story." and held.startswith("A long") and held != "A long story about a dog."
    assert chat.reply("What is 6 times 7?") is not None and chat.session is not None
    stop_after.append(0)
    assert chat.reply("A question stopped at once.") is None
    assert [t.question for t in chat.turns] == ["Tell me a story.", "What is 6 times 7?"]
    assert "(stopped; the question was dropped)" in chat.out.getvalue()  # type: ignore[attr-defined]


def test_a_reply_cut_by_the_token_limit_says_so(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    out = chat(monkeypatch, capsys, tmp_path, ["word " * 50], "Go on.\n", "--max-new-tokens", "5")
    assert "(reply cut: it reached the token limit, --max-new-tokens 5)" in out


def test_a_line_starting_with_two_slashes_is_a_message(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from toolcall.backends import fake

    seen: list[str] = []
    original = fake.FakeBackend.start
    monkeypatch.setattr(fake.FakeBackend, "start", lambda self, prompt: (seen.append(prompt), original(self, prompt))[1])
    out = chat(monkeypatch, capsys, tmp_path, ["Three dollars."], "//3 apples cost how much?\n")
    assert "unknown command" not in out and "user: /3 apples cost how much?" in seen[-1]


@pytest.mark.model
def test_ctrl_c_inside_a_forward_of_the_embedded_model_leaves_the_chat_going(tmp_path: Path) -> None:
    """Ctrl-C during a forward extended some layers' KV caches and not others; the next question died on "The size
    of tensor a (443) must match the size of tensor b (444)" and ended the chat."""
    from toolcall.cli import build_parser
    from toolcall.errors import BackendError

    chat = Chat(build_parser().parse_args(["chat", "--max-new-tokens", "12"]), io.StringIO())
    layer = chat.backend.model.model.layers[15]  # type: ignore[attr-defined]
    original, countdown = layer.forward, [6]

    def forward(*args: object, **kwargs: object) -> object:
        countdown[0] -= 1
        if countdown[0] == 0:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    layer.forward = forward
    chat.reply("Tell me a story about a dog.")
    torn = chat.turns and chat.session is None
    assert torn or countdown[0] > 0
    assert chat.reply("What is 6 times 7?") is not None
    # A torn session refuses to go on, in words, rather than failing on a tensor size.
    session = chat.backend.start("Hello")
    countdown[0] = 2
    with pytest.raises(KeyboardInterrupt):
        list(session.stream((), 4))
    with pytest.raises(BackendError, match="stopped inside a model step"):
        list(session.stream((), 4))
