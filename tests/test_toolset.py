"""toolcall.toolset: the picklable description of a run's tools, the one place a registry is assembled, and the
model handed to tools that declare `setup`."""
from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from user_tools_state import user_tools_restored

import toolcall
from toolcall.api import make_registry
from toolcall.backends.fake import FakeBackend
from toolcall.errors import ConfigError, UnknownNameError
from toolcall.toolset import Toolset, mcp_environment, set_up_tools

TOOLS_FILE = '''
import toolcall


@toolcall.tool
def shout(text: str) -> str:
    """Upper-case a text.

    Args:
        text: What to shout.
    """
    return text.upper()
'''


@pytest.fixture(autouse=True)
def clean_user_tools() -> Iterator[None]:
    with user_tools_restored("shouting"):
        yield


def test_a_toolset_is_plain_data_that_pickles() -> None:
    toolset = Toolset(names=["calculator", "calendar"], tools_from=["x.py"], mcp=["srv"], mcp_env=["A", "B=1"])
    assert toolset.names == ("calculator", "calendar") and toolset.mcp_env == ("A", "B=1")
    assert pickle.loads(pickle.dumps(toolset)) == toolset and hash(toolset) == hash(pickle.loads(pickle.dumps(toolset)))
    assert Toolset(names="calculator").names == ("calculator",)   # one name, not its letters


def test_build_names_all_and_none() -> None:
    assert Toolset().build().names() == ["Calculator"]
    assert {"Calculator", "Calendar", "MT"} <= set(Toolset(names=None).build().names())
    assert len(Toolset(names=()).build()) == 0
    with pytest.raises(UnknownNameError, match="Calculater"):
        Toolset(names=("Calculater",)).build()


def test_tool_files_replace_a_default_and_add_to_typed_names(tmp_path: Path) -> None:
    path = tmp_path / "shouting.py"
    path.write_text(TOOLS_FILE)
    assert Toolset(names=("calculator",), tools_from=(str(path),), names_given=False).build().names() == ["shout"]
    assert Toolset(names=("calculator",), tools_from=(str(path),)).build().names() == ["Calculator", "shout"]


def test_tools_that_declare_setup_get_the_loaded_model() -> None:
    handed: list[Any] = []

    @toolcall.tool(setup=handed.append)
    def describe_image(path: str) -> str:
        """Describe an image with the model.

        Args:
            path: The image.
        """
        return path

    backend = FakeBackend(script=["x"])
    assert describe_image.uses_model and not Toolset().build().get("Calculator").uses_model
    Toolset(names=("describe_image", "calculator")).build()
    assert handed == []   # no model loaded: nothing to hand over
    registry = Toolset(names=("describe_image", "calculator")).build(backend)
    assert handed == [backend]
    set_up_tools(registry, backend)
    make_registry(registry, backend)
    assert handed == [backend] * 3


def test_mt_declares_that_it_uses_the_model_and_each_registry_translates_with_its_own() -> None:
    from toolcall.tools import mt

    first, second = FakeBackend(script=["good morning"]), FakeBackend(script=["FROM THE SECOND"])
    registry = Toolset(names=("MT",)).build(first)
    other = Toolset(names=("MT",)).build(second)
    assert registry.get("MT").uses_model and mt._backend is None   # nothing module-wide
    # The second build's model translated for the first registry too, and kept the first model alive.
    assert registry.call("MT", ("bonjour",)).text == "good morning"
    assert other.call("MT", ("bonjour",)).text == "FROM THE SECOND"


def test_mcp_settings_are_checked_before_any_server_starts() -> None:
    with pytest.raises(ConfigError, match="--mcp-timeout must be more than 0 seconds"):
        Toolset(mcp=("srv",), mcp_timeout=0)
    with pytest.raises(ConfigError, match="--mcp-env '1X=2': expected NAME"):
        Toolset(mcp_env=("1X=2",))
    assert mcp_environment(None) is None
    assert mcp_environment(("HOME_DIR", "TOKEN=abc", "EMPTY="), {"HOME_DIR": "/h", "OTHER": "o"}) == {
        "HOME_DIR": "/h", "TOKEN": "abc", "EMPTY": ""}
    with pytest.warns(RuntimeWarning, match="--mcp-env MISSING: not set"):
        assert mcp_environment(("MISSING",), {}) == {}


def test_a_wiki_corpus_travels_with_the_toolset_and_is_searched_once_built(tmp_path: Path) -> None:
    from toolcall.tools import wikisearch

    own = tmp_path / "wiki.txt"
    own.write_text("Zorblax is a moon of Quux.\n\nQuux is a planet.\n", encoding="utf-8")
    toolset = pickle.loads(pickle.dumps(Toolset(names=("wikisearch",), wiki_corpus=str(own))))
    try:
        registry = toolset.build()
        assert registry.call("WikiSearch", {"query": "Zorblax"}).text.startswith("Zorblax is a moon of Quux.")
    finally:
        wikisearch.configure(None)


def test_a_tools_file_named_twice_is_imported_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--tools-from t.py --tools-from ./t.py` imported it twice: its import-time side effects ran twice."""
    counter = tmp_path / "imports"
    tools_file = tmp_path / "twice_tools.py"
    tools_file.write_text(f'import pathlib\nimport toolcall\n\npathlib.Path({str(counter)!r}).open("a").write("x")\n\n\n'
                          '@toolcall.tool\ndef twice_echo(text: str) -> str:\n    """Echo.\n\n    Args:\n'
                          '        text: What to echo.\n    """\n    return text\n')
    monkeypatch.chdir(tmp_path)
    with user_tools_restored("twice_tools"):
        registry = Toolset(names=(), tools_from=("twice_tools.py", "./twice_tools.py", str(tools_file))).build()
    assert registry.names() == ["twice_echo"] and counter.read_text() == "x"
