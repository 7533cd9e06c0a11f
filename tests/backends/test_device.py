"""Where the transformers backend runs a model: $TOOLCALL_DEVICE, else CUDA when there is one, else the CPU."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("transformers")

from tiny_model import make_tiny_model  # noqa: E402

from toolcall.backends.base import Sampling  # noqa: E402
from toolcall.errors import ConfigError  # noqa: E402

TEXTS = ["the cat sat on the mat and the dog ran to the park"] * 4


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny_device"), TEXTS)


def test_the_environment_names_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from toolcall.backends.hf_loading import default_device

    monkeypatch.setenv("TOOLCALL_DEVICE", "cpu")
    assert default_device() == "cpu"
    monkeypatch.delenv("TOOLCALL_DEVICE")
    assert default_device() == ("cuda" if torch.cuda.is_available() else "cpu")


def test_a_device_that_is_not_there_is_a_config_error_naming_it(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from toolcall.backends.transformers import TransformersBackend

    monkeypatch.setenv("TOOLCALL_DEVICE", "nowhere")
    with pytest.raises(ConfigError, match="'nowhere'.*TOOLCALL_DEVICE"):
        TransformersBackend(str(tiny))


def test_sampling_with_a_seed_gives_the_same_text_on_every_device(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from toolcall.backends.transformers import TransformersBackend

    def sample(device: str) -> str:
        monkeypatch.setenv("TOOLCALL_DEVICE", device)
        session = TransformersBackend(str(tiny), prefill_chunk=0).start("the cat sat")
        session.sampling = Sampling(temperature=1.0, seed=3)
        return session.generate([], 10)

    on_cpu = sample("cpu")
    assert on_cpu == sample("cpu") and on_cpu
    if torch.cuda.is_available():  # the draw runs on the CPU generator wherever the logits were computed
        assert sample("cuda") == on_cpu
