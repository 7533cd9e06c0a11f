"""A tool with a side effect, for tests that check how often a call really runs."""
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
