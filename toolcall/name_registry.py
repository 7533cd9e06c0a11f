"""A small name → object registry shared by tools, dialects and backends."""
from __future__ import annotations

import difflib
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

from .errors import ConfigError, DuplicateNameError, UnknownNameError

T = TypeVar("T")


class NameRegistry(Generic[T]):
    """Objects looked up by case-insensitive name; duplicates raise unless replaced on purpose."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._names: dict[str, str] = {}  # lower-case key or alias -> canonical name
        # Lookups and changes are atomic: a tool replaced while another thread called it raised KeyError from get().
        self._lock = threading.RLock()

    def register(self, name: str, item: T, *, aliases: tuple[str, ...] = (), replace: bool = False) -> T:
        with self._lock:
            return self._register(name, item, aliases, replace)

    def _register(self, name: str, item: T, aliases: tuple[str, ...], replace: bool) -> T:
        for key in (name, *aliases):
            owner = self._names.get(key.lower())
            if owner is not None and owner != name and not replace:
                raise DuplicateNameError(f"{self.kind} name {key!r} is already registered (for {owner!r}); pass "
                                         "replace=True to replace it", owner=owner)
        if name in self._items and not replace:
            raise DuplicateNameError(f"{self.kind} {name!r} is already registered; pass replace=True to replace it",
                                     owner=name)
        # Whatever held these names goes whole, its other aliases too: replacing "Foo" by "foo" left "Foo" listed
        # and offered, run as the new item, and not callable after unregister("Foo").
        held = {self._names[k.lower()] for k in (name, *aliases) if k.lower() in self._names}
        for owner in held | ({name} & set(self._items)):
            self.unregister(owner)
        self._items[name] = item
        for key in (name, *aliases):
            self._names[key.lower()] = name
        return item

    def unregister(self, name: str) -> None:
        with self._lock:
            canonical = self.canonical(name)
            del self._items[canonical]
            for key in [k for k, v in self._names.items() if v == canonical]:
                del self._names[key]

    def canonical(self, name: str) -> str:
        if not isinstance(name, str):  # None or a number gave "'int' object has no attribute 'lower'"
            raise ConfigError(f"a {self.kind} is named by text, got {type(name).__name__} {name!r:.60}; the "
                              f"{self.kind}s here: {', '.join(self.names())}")
        with self._lock:
            found = self._names.get(name.lower())
            if found is None:
                close = difflib.get_close_matches(name.lower(), list(self._names), n=1)
                raise UnknownNameError(self.kind, name, self.names(), self._names[close[0]] if close else None)
            return found

    def get(self, name: str) -> T:
        with self._lock:
            return self._items[self.canonical(name)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._names

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._items)

    def __iter__(self) -> Iterator[T]:
        with self._lock:
            return iter([self._items[n] for n in self.names()])

    def __len__(self) -> int:
        return len(self._items)
