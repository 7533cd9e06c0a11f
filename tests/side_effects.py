"""Tools with a side effect, for tests that check how often, and with what, a call really runs."""
from __future__ import annotations

from collections.abc import Callable


def charging() -> tuple[list[int], Callable[[int], str]]:
    """A fresh `charge` tool and the list of amounts it was really run with."""
    ran: list[int] = []

    def charge(amount: int) -> str:
        """Charge a card.

        Args:
            amount: How much.
        """
        ran.append(amount)
        return f"charged {amount}"

    return ran, charge


def echoing() -> tuple[list[str], Callable[[str], str]]:
    """A fresh `echo` tool and the list of texts it was really run with (it answers "ok")."""
    got: list[str] = []

    def echo(text: str) -> str:
        """Echo.

        Args:
            text: Text.
        """
        got.append(text)
        return "ok"

    return got, echo
