"""Methods bound to an object, plain and decorated, for the isolated-tool refusal tests (a worker imports by name)."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


def logged(f: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return f(*args, **kwargs)
    return wrapper


class Service:
    @logged
    def scale(self, x: int) -> int:
        """Scale a value.

        Args:
            x: The value.
        """
        return x * 10

    @functools.lru_cache  # noqa: B019 - a test of what users write
    def cached(self, x: int) -> int:
        """Scale a value, remembered.

        Args:
            x: The value.
        """
        return x * 10


service = Service()
