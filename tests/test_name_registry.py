"""The shared name registry: case-insensitive lookup, aliases, duplicates, suggestions."""
from __future__ import annotations

import pytest

from toolcall.errors import DuplicateNameError, UnknownNameError
from toolcall.name_registry import NameRegistry


def test_lookup_is_case_insensitive_and_follows_aliases() -> None:
    reg: NameRegistry[int] = NameRegistry("tool")
    reg.register("Calculator", 1, aliases=("Calculate",))
    assert reg.get("CALCULATOR") == 1
    assert reg.get("calculate") == 1
    assert reg.canonical("calculate") == "Calculator"
    assert "calculator" in reg and "Search" not in reg


def test_unknown_name_lists_valid_names_and_suggests() -> None:
    reg: NameRegistry[int] = NameRegistry("dialect")
    reg.register("toolformer", 1)
    reg.register("moss", 2)
    with pytest.raises(UnknownNameError) as info:
        reg.get("toolfromer")
    assert info.value.suggestion == "toolformer"
    assert "moss, toolformer" in str(info.value)
    assert isinstance(info.value, KeyError)


def test_duplicates_raise_unless_replaced() -> None:
    reg: NameRegistry[int] = NameRegistry("backend")
    reg.register("fake", 1)
    with pytest.raises(DuplicateNameError):
        reg.register("FAKE", 2)
    reg.register("fake", 3, replace=True)
    assert reg.get("fake") == 3
    reg.unregister("fake")
    assert len(reg) == 0


def test_replacing_under_another_case_or_alias_leaves_no_ghost() -> None:
    reg: NameRegistry[int] = NameRegistry("tool")
    reg.register("Foo", 1, aliases=("F",))
    reg.register("foo", 2, replace=True)   # "Foo" stayed listed, ran as 2, and could not be unregistered
    assert reg.names() == ["foo"] and reg.get("Foo") == 2 and "F" not in reg
    reg.register("Bar", 3, aliases=("B",))
    reg.register("Baz", 4, aliases=("b",), replace=True)   # takes the alias, and the tool that held it goes whole
    assert reg.names() == ["Baz", "foo"] and reg.get("b") == 4
    reg.unregister("FOO")
    assert reg.names() == ["Baz"]


def test_a_lookup_while_another_thread_replaces_the_item_finds_it() -> None:
    import sys
    import threading

    reg: NameRegistry[int] = NameRegistry("tool")
    reg.register("add", 0)
    failures: list[BaseException] = []
    done = threading.Event()

    def replace() -> None:
        for i in range(3_000):
            reg.register("add", i, replace=True)
        done.set()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)   # switch threads often, so the race shows within a short test
    try:
        worker = threading.Thread(target=replace)
        worker.start()
        while not done.is_set():
            try:
                reg.get("add")
            except KeyError as err:   # it raised KeyError thousands of times in 20,000 lookups
                failures.append(err)
        worker.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == []
