"""Model and tool text made safe to print: control characters shown, never obeyed by the terminal."""
from __future__ import annotations

import re

# C0 controls but tab and newline, DEL and the C1 controls: a terminal obeys them (ESC starts sequences that clear the
# screen, retitle the window or, with OSC 52, write the clipboard), and a web page or an MCP server may send them.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # the Unicode control picture: ESC shows as ␛
    return "\u2421" if code == 0x7F else f"\\x{code:02x}"


def printable(text: str) -> str:
    """`text` with every control character a terminal would act on written visibly instead (`␛`, `␍`, `\\x9b`)."""
    return _CONTROL.sub(_picture, text)
