"""Model, tool and client text made safe to print: control characters shown, never obeyed by the terminal."""
from __future__ import annotations

import contextlib
import copy
import logging
import os
import re
import sys
from collections.abc import Iterator, Mapping
from typing import Any

# C0 controls but tab and newline, DEL and the C1 controls: a terminal obeys them (ESC starts sequences that clear the
# screen, retitle the window or, with OSC 52, write the clipboard), and a web page or an MCP server may send them.
# Also the bidirectional overrides and isolates, which reorder what is shown ("Trojan Source": a tool's name that
# reads as another), and the line and paragraph separators, which some terminals break lines at. And a lone UTF-16
# surrogate, which is no character and which printing cannot encode (a model's text holding one ended the command).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]")


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # the Unicode control picture: ESC shows as ␛
    if code > 0xFF:
        return f"\\u{code:04x}"
    return "\u2421" if code == 0x7F else f"\\x{code:02x}"


def printable(text: str) -> str:
    """`text` with every control character a terminal would act on written visibly instead (`␛`, `␍`, `\\x9b`,
    `\\u202e`)."""
    return _CONTROL.sub(_picture, text)


def escaped_controls(json_text: str) -> str:
    """JSON text with every character a terminal acts on written as a \\u escape: the same JSON (json.dumps writes
    DEL, C1 controls such as CSI and bidirectional overrides as they are, and only the C0 ones escaped)."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", json_text)


def _printable_arg(value: Any) -> Any:
    """A log record's argument with control characters shown; numbers stay numbers (for `%d`), and any other object
    whose text holds a control character becomes that text shown (a `%r` of it then quotes it)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = value if isinstance(value, str) else str(value)
    if isinstance(value, str) or _CONTROL.search(text):
        return printable(text)
    return value


class PrintableFormatter(logging.Formatter):
    """Wraps a handler's formatter so that what a record carries (its message, arguments, traceback) prints its
    control characters visibly, while the formatter's own decoration (uvicorn's coloured level names) is kept: a
    server logs Host headers, paths and tool errors that a client or a model wrote."""

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        clean = copy.copy(record)
        clean.msg = printable(record.msg) if isinstance(record.msg, str) else _printable_arg(record.msg)
        if isinstance(record.args, Mapping):
            clean.args = {key: _printable_arg(value) for key, value in record.args.items()}
        elif isinstance(record.args, tuple):
            clean.args = tuple(_printable_arg(value) for value in record.args)
        if record.exc_info and not record.exc_text:
            clean.exc_text = self.inner.formatException(record.exc_info)
        clean.exc_text = printable(clean.exc_text) if clean.exc_text else clean.exc_text
        clean.stack_info = printable(record.stack_info) if record.stack_info else record.stack_info
        return self.inner.format(clean)


def plain_warnings() -> None:
    """toolcall's own warnings ("toolcall: ...", meant for the user of a command) print as their message alone, its
    control characters visible: Python's form named a file inside the package and quoted its source line. Others
    keep Python's form. For a command that owns the process, not for a library."""
    import warnings

    python_form = warnings.formatwarning

    def shown(message: Warning | str, category: type[Warning], filename: str, lineno: int,
              line: str | None = None) -> str:
        if str(message).startswith("toolcall"):
            return printable(str(message)) + "\n"
        return python_form(message, category, filename, lineno, line)

    warnings.formatwarning = shown


def printable_logs(*names: str) -> None:
    """Every handler of the root logger and of the loggers `names` prints control characters visibly (see
    PrintableFormatter); a root logger without handlers gets one on stderr at WARNING, which is what Python's
    last-resort handler would have printed. For a command that owns the process (a server), not for a library."""
    root = logging.getLogger()
    if not root.handlers:
        stderr = logging.StreamHandler()
        stderr.setLevel(logging.WARNING)
        root.addHandler(stderr)
    for logger in (root, *(logging.getLogger(name) for name in names)):
        for handler in logger.handlers:
            if not isinstance(handler.formatter, PrintableFormatter):
                handler.setFormatter(PrintableFormatter(handler.formatter))


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """What is written to standard output meanwhile goes to standard error: Python's `print` and, with file
    descriptor 1 itself pointed at 2, a subprocess's or C code's output too, so that a command's stdout holds only what
    it prints itself (a tools file that ran `echo` at import broke `generate --json`). For a command that owns the
    process; where a descriptor cannot be moved (closed, or no file), Python's own output is still moved."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved: int | None = None
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:
        if saved is not None:   # fd 1 copied but not moved (fd 2 closed): nothing to restore, and no copy to leak
            os.close(saved)
        saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if saved is not None:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 1)
            os.close(saved)
