"""The chat page in a real headless browser: Playwright driving the system Chromium against the live server."""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from live_server import Live

CHROMIUM = os.environ.get("TOOLCALL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Chromium's background services try the network, which is closed here; these flags keep it quiet and offline.
# (Playwright adds --headless itself and gives each launch a fresh temporary profile.)
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def page(live: Live) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the page test needs playwright (the [dev] extra)")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}: install it (apt-get install -y chromium; .ci/run does)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            tab = browser.new_page(viewport={"width": 900, "height": 600})
            tab.set_default_timeout(20_000)
            tab.goto(live.url + "/")
            yield tab
        finally:
            browser.close()


def test_page_streams_a_reply_with_a_finished_tool_card(page: Any) -> None:
    page.wait_for_selector("#tools input[data-tool=Calculator]")  # the server's tools, as toggles
    page.fill("#input", "What is 17 * 23?")
    page.press("#input", "Enter")
    card = page.wait_for_selector("details.tool-card.done")
    assert "Calculator" in card.inner_text()
    assert card.get_attribute("open") is None  # collapsed when done
    card.click()  # opening it shows the arguments and the result
    assert "17 * 23" in card.inner_text() and "result: 391" in card.inner_text()
    reply = page.locator(".msg.assistant").last
    page.wait_for_function("() => !document.querySelector('#send').disabled")
    assert "so the answer is 391." in reply.inner_text()


def test_page_tool_toggle_and_reset(page: Any) -> None:
    page.click("#reset")
    assert page.locator(".msg").count() == 0
    page.uncheck("#tools input[data-tool=Calculator]")
    page.fill("#input", "What is 17 * 23?")
    page.press("#input", "Enter")
    page.wait_for_function("() => !document.querySelector('#send').disabled")
    assert page.locator("details.tool-card").count() == 0  # the tool was off: nothing ran
    page.check("#tools input[data-tool=Calculator]")
    page.click("#reset")


def test_page_shows_a_moss_reply_with_its_thoughts_folded(page: Any) -> None:
    """MOSS's Inner Thoughts field comes as reasoning_content: the page shows it folded, the answer as the reply."""
    from live_server import SlowFake, serve, settings

    def moss(text: str) -> str:
        reply = text[text.rfind("<|Inner Thoughts|>:") + len("<|Inner Thoughts|>:"):]
        if "<|Results|>" in reply:
            return " It is 391.<eom>"
        return ' I need to compute.<eot>\n<|Commands|>: Calculator("17 * 23")<eoc>'

    back = page.url
    for live in serve(SlowFake(script=moss), settings(), dialect="moss"):
        try:
            page.goto(live.url + "/")
            page.wait_for_selector("#tools input[data-tool=Calculator]")  # the page is set up: its form answers
            page.fill("#input", "What is 17 * 23?")
            page.press("#input", "Enter")
            page.wait_for_function("() => !document.querySelector('#send').disabled")
            thoughts = page.wait_for_selector("details.thoughts")
            assert thoughts.get_attribute("open") is None and "I need to compute." in thoughts.text_content()
            reply = page.locator(".msg.assistant").last.inner_text()
            assert "It is 391." in reply and "<eot>" not in reply and "Commands" not in reply
        finally:
            page.goto(back)


def test_a_long_line_without_spaces_streams_without_freezing_and_reset_starts_clean(page: Any) -> None:
    """A reply of one 16 KB line (base64, a long URL) was laid out again at every piece: the tab froze for minutes.
    And Reset during a reply put the old partial reply into the new conversation's first request."""
    import time

    from live_server import SlowFake, serve, settings

    line = "A" * 16_000
    sent: list[str] = []

    def script(text: str) -> str:
        sent.append(text)
        return line if "long" in text[text.rfind("user:"):] else "Fresh."

    back = page.url
    for live in serve(SlowFake(script=script), settings(max_new_tokens=4_000), dialect="hermes"):
        try:
            page.goto(live.url + "/")
            page.wait_for_selector("#tools input")
            began = time.perf_counter()
            page.fill("#input", "a long line please")
            page.press("#input", "Enter")
            page.wait_for_function("() => !document.querySelector('#send').disabled", timeout=30_000)
            assert time.perf_counter() - began < 20
            assert line in page.locator(".msg.assistant").last.inner_text()
            page.fill("#input", "a long line again")
            page.press("#input", "Enter")
            page.click("#reset")
            page.fill("#input", "fresh start")
            page.press("#input", "Enter")
            page.wait_for_function("() => document.querySelectorAll('.msg.assistant').length === 1 && "
                                   "!document.querySelector('#send').disabled")
            last = sent[-1][sent[-1].rfind("\nuser:"):]
            assert "user: fresh start" in last and "AAAA" not in sent[-1] and "a long line" not in sent[-1]
            assert sent[-1].count("assistant:") == 1  # only the new reply's: no turn of the old conversation
        finally:
            page.goto(back)


def test_the_api_key_is_asked_for_said_when_refused_and_the_tool_toggles_survive_it(page: Any) -> None:
    """A wrong key left the key field showing with no word, and entering a key again ticked every tool back on."""
    from live_server import SlowFake, serve, settings

    back = page.url
    for live in serve(SlowFake(script=["Hi."]), settings(), api_key="k1"):
        try:
            page.goto(live.url + "/")
            page.wait_for_selector(".msg.error")
            assert "needs an API key" in page.locator(".msg.error").last.inner_text()
            page.fill("#key", "wrong")
            page.dispatch_event("#key", "change")
            page.wait_for_function("() => document.querySelectorAll('.msg.error').length === 2")
            assert "was not accepted" in page.locator(".msg.error").last.inner_text()
            page.fill("#key", "k1")
            page.dispatch_event("#key", "change")
            page.wait_for_selector("#tools input[data-tool=Calculator]")
            page.uncheck("#tools input[data-tool=Calculator]")
            page.dispatch_event("#key", "change")  # the key entered again: the list is built anew
            page.wait_for_selector("#tools input[data-tool=Calculator]")
            assert not page.is_checked("#tools input[data-tool=Calculator]")
        finally:
            page.goto(back)


def test_markup_slipped_into_the_page_does_not_run(page: Any) -> None:
    """Model text and tool results are shown in the page: were one ever written as markup, its script must not run.
    The page's own script runs (every test above), and nothing of it trips the policy."""
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.reload()
    page.wait_for_selector("#tools input[data-tool=Calculator]")
    assert violations == []
    page.evaluate("""() => {
        const s = document.createElement("script"); s.textContent = "window.ranScript = 1"; document.body.append(s);
        const d = document.createElement("div"); d.innerHTML = '<img src="x" onerror="window.ranHandler = 1">';
        document.body.append(d);
    }""")
    page.wait_for_function("() => document.querySelector('img[src=x]') !== null")
    page.wait_for_timeout(300)
    assert page.evaluate("() => [window.ranScript, window.ranHandler]") == [None, None]
    assert len(violations) >= 2  # the browser said why it refused both


def test_later_turns_send_the_earlier_calls_and_results_back(page: Any, live: Live) -> None:
    """The page sent back each reply's text alone: the next turn's model saw its answer without the call it ran."""
    page.click("#reset")
    page.wait_for_selector("#tools input[data-tool=Calculator]")
    page.check("#tools input[data-tool=Calculator]")
    page.fill("#input", "What is 17 * 23?")
    page.press("#input", "Enter")
    page.wait_for_selector("details.tool-card.done")
    page.wait_for_function("() => !document.querySelector('#send').disabled")
    page.fill("#input", "thanks")
    page.press("#input", "Enter")
    page.wait_for_function("() => document.querySelectorAll('.msg.assistant').length === 2 && "
                           "!document.querySelector('#send').disabled")
    second = live.backend.prompts[-1]
    assert "user: thanks" in second
    assert "Let me compute: [Calculator(17 * 23) -> 391] so the answer is 391." in second
    assert "You said: thanks" in page.locator(".msg.assistant").last.inner_text()
    page.click("#reset")
