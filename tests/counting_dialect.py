"""A dialect that counts the looks (`pending_from` calls) a ReplyReader takes at it, for tests of when the loop looks."""
from __future__ import annotations

from typing import Any

from toolcall.calls import PendingCalls
from toolcall.dialects.base import Dialect


class CountingDialect:
    """`dialect`, counting its `pending_from` calls in `looks`."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self.looks = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dialect, name)

    def pending_from(self, text: str, start: int) -> tuple[PendingCalls | None, int]:
        self.looks += 1
        return self._dialect.pending_from(text, start)
