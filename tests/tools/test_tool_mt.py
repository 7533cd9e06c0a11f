"""tools.mt: plumbing with a fake translator; one test of the embedded LM translator."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from toolcall.errors import ToolError
from toolcall.tools import mt


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    mt.set_translator(None)


def test_fake_translator_plumbing() -> None:
    seen: list[str] = []

    def fake(text: str) -> str:
        seen.append(text)
        return {"sûreté nucléaire": "nuclear safety"}.get(text, "")

    mt.set_translator(fake)
    assert mt.mt('  "sûreté nucléaire" ') == "nuclear safety"
    with pytest.raises(ToolError, match="returned nothing"):
        mt.mt("xyz")
    with pytest.raises(ToolError, match="nothing to translate"):
        mt.mt("  ")
    assert seen == ["sûreté nucléaire", "xyz"]


def test_through_the_registry_joins_split_text_and_caches() -> None:
    from toolcall.registry import default_registry

    seen: list[str] = []
    mt.set_translator(lambda text: seen.append(text) or text.upper())
    reg = default_registry(["MT"], entry_points=False)
    assert reg.call("MT", ("bonjour", "le monde")).text == "BONJOUR, LE MONDE"
    assert reg.call("mt", ("bonjour, le monde",)).cached
    assert seen == ["bonjour, le monde"]


@pytest.mark.model
@pytest.mark.slow
def test_embedded_lm_translates() -> None:
    out = mt.lm_translate("la casa roja")
    assert "house" in out.lower() and "red" in out.lower(), out
