"""Text a client, a model or a tool wrote reaches the terminal with its control characters shown (printable), in the
CLI's output and in a server's log lines, whose own formatting (uvicorn's colours) is kept."""
from __future__ import annotations

import json
import logging
import sys

import pytest

from toolcall.terminal import PrintableFormatter, printable, printable_logs


def record(msg: object, args: tuple[object, ...] = (), exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError("tool said \x1b]52;c;cGF3bmVk\x07")
        except ValueError:
            info = sys.exc_info()
    return logging.LogRecord("toolcall.server", logging.WARNING, __file__, 1, msg, args, info)


def test_printable_shows_controls_and_keeps_tab_and_newline() -> None:
    assert printable("a\x1b[2Jb\rc\x7f\x9b\td\n\u2400") == "a\u241b[2Jb\u240dc\u2421\\x9b\td\n\u2400"
    # Bidi overrides and isolates reorder what is shown (a name that reads as another); marks and RTL text stay.
    assert printable("add\u202e)x(\u2066\u2028") == "add\\u202e)x(\\u2066\\u2028"
    assert printable("\u05e9\u05dc\u05d5\u05dd\u200f") == "\u05e9\u05dc\u05d5\u05dd\u200f"


def test_a_log_records_message_arguments_and_traceback_print_visibly() -> None:
    fmt = PrintableFormatter(logging.Formatter("%(levelname)s %(message)s"))
    assert fmt.format(record("path %s failed: %r (%d)", ("/\x1b[2J", "\x07", 3))) == "WARNING path /\u241b[2J failed: '\u2407' (3)"
    assert fmt.format(record("%(host)s", ({"host": "a\x9bb"},))) == "WARNING a\\x9bb"
    assert fmt.format(record(ValueError("x\x1by"))) == "WARNING x\u241by"
    assert fmt.format(record("%s", (ValueError("plain"),))) == "WARNING plain"  # objects without controls unchanged
    lines = fmt.format(record("tool failed", exc=True))
    assert "\x1b" not in lines and "\x07" not in lines and "\u241b]52;c;cGF3bmVk\u2407" in lines
    assert lines.count("\n") >= 2  # the traceback keeps its lines


def test_uvicorns_colours_are_kept_and_what_the_client_sent_is_shown() -> None:
    uvicorn_logging = pytest.importorskip("uvicorn.logging")
    colour = PrintableFormatter(uvicorn_logging.DefaultFormatter("%(levelprefix)s %(message)s", use_colors=True))
    line = colour.format(record("Invalid Host header: %s", ("evil\x1b[2J",)))
    assert line.startswith("\x1b[33mWARNING\x1b[0m:") and line.endswith("evil\u241b[2J")
    access = PrintableFormatter(uvicorn_logging.AccessFormatter('%(client_addr)s "%(request_line)s" %(status_code)s',
                                                                use_colors=False))
    line = access.format(record('%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5", "GET", "/\x1b]0;x\x07", "1.1", 404)))
    assert line == '127.0.0.1:5 "GET /\u241b]0;x\u2407 HTTP/1.1" 404 Not Found'


def test_printable_logs_wraps_each_handler_once(monkeypatch: pytest.MonkeyPatch) -> None:
    root, named = logging.getLogger(), logging.getLogger("toolcall.test_terminal")
    monkeypatch.setattr(root, "handlers", [])
    handler = logging.StreamHandler()
    monkeypatch.setattr(named, "handlers", [handler])
    printable_logs("toolcall.test_terminal")
    printable_logs("toolcall.test_terminal")
    assert len(root.handlers) == 1 and root.handlers[0].level == logging.WARNING  # what the last resort prints
    for h in (root.handlers[0], handler):
        assert isinstance(h.formatter, PrintableFormatter) and not isinstance(h.formatter.inner, PrintableFormatter)


def test_a_lone_surrogate_is_shown_not_printed() -> None:
    # A model's text holding one ended `generate` and `chat` with a UnicodeEncodeError when printed.
    from toolcall.terminal import escaped_controls, printable

    assert printable("a\ud800b") == "a\\ud800b"
    assert json.loads(escaped_controls(json.dumps({"t": "a\udfffb"}, ensure_ascii=False))) == {"t": "a\udfffb"}
