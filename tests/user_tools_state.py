"""Tests that import `--tools-from` files: the @toolcall.tool tools those files register are forgotten afterwards."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from toolcall.registry import user_tools
from toolcall.tool_files import restore_user_tools


@contextmanager
def user_tools_restored(module_prefix: str) -> Iterator[None]:
    """The user tools as they were before, and the modules named `module_prefix`... imported meanwhile unloaded, so
    the same file can be imported again by a later test."""
    users = user_tools()
    before = {item.name: item for item in users}
    modules = set(sys.modules)
    try:
        yield
    finally:
        restore_user_tools(users, before)
        for name in set(sys.modules) - modules:
            if name.startswith(module_prefix):
                del sys.modules[name]
