"""Where the transformers backend runs a model: $TOOLCALL_DEVICE, else CUDA when there is one, else the CPU."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("transformers")

from tiny_model import make_tiny_model  # noqa: E402

from toolcall.backends.base import Sampling  # noqa: E402
from toolcall.errors import BackendError, ConfigError  # noqa: E402

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


def test_auto_dtype_is_bfloat16_only_where_the_hardware_computes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from toolcall.backends import hf_loading

    monkeypatch.setattr(hf_loading, "cpu_computes_bf16", lambda: True)
    assert hf_loading.resolve_dtype("auto", "cpu") == "bfloat16"
    monkeypatch.setattr(hf_loading, "cpu_computes_bf16", lambda: False)
    assert hf_loading.resolve_dtype("auto", "cpu") == "float32"
    assert hf_loading.resolve_dtype("float32", "cpu") == "float32"
    assert hf_loading.resolve_dtype("bfloat16", "cpu") == "bfloat16"  # asked for by name: given, fast or not


def test_an_unknown_dtype_is_a_config_error_listing_the_allowed_ones(tiny: Path) -> None:
    from toolcall.backends.hf_loading import resolve_dtype
    from toolcall.backends.transformers import TransformersBackend

    with pytest.raises(ConfigError, match="'float8' is not allowed; use one of: auto, float32, bfloat16, float16"):
        resolve_dtype("float8", "cpu")
    with pytest.raises(ConfigError, match="'int4' is not allowed"):
        TransformersBackend(str(tiny), dtype="int4")


def test_a_model_loads_in_the_dtype_auto_resolves_to(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from toolcall.backends import hf_loading
    from toolcall.backends.transformers import TransformersBackend

    monkeypatch.setenv("TOOLCALL_DEVICE", "cpu")
    monkeypatch.setattr(hf_loading, "cpu_computes_bf16", lambda: True)
    assert next(TransformersBackend(str(tiny), dtype="auto").model.parameters()).dtype == torch.bfloat16
    monkeypatch.setattr(hf_loading, "cpu_computes_bf16", lambda: False)
    assert next(TransformersBackend(str(tiny), dtype="auto").model.parameters()).dtype == torch.float32


def test_the_cpu_flags_decide_bf16(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from toolcall.backends import hf_loading

    real = hf_loading.Path
    for flags, expected in (("fpu avx2 avx512f avx512_bf16 sse", True), ("fpu amx_bf16", True), ("fpu avx2 avx512f", False)):
        info = tmp_path / "cpuinfo"
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr(hf_loading, "Path", lambda p, info=info: info if p == "/proc/cpuinfo" else real(p))
        hf_loading.cpu_computes_bf16.cache_clear()
        assert hf_loading.cpu_computes_bf16() is expected
    monkeypatch.setattr(hf_loading, "Path", lambda p: real(tmp_path / "absent"))
    hf_loading.cpu_computes_bf16.cache_clear()
    assert hf_loading.cpu_computes_bf16() is False   # no /proc/cpuinfo: float32, never slow
    monkeypatch.setattr(hf_loading, "Path", real)
    hf_loading.cpu_computes_bf16.cache_clear()


def test_a_model_directory_that_holds_nothing_or_no_tokenizer_is_one_line_that_says_so(tmp_path: Path) -> None:
    from toolcall.backends.hf_loading import load_model_and_tokenizer

    (tmp_path / "empty").mkdir()
    with pytest.raises(BackendError, match=r"model directory .*empty is empty: give a checkpoint directory"):
        load_model_and_tokenizer(tmp_path / "empty")
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "config.json").write_text("{}")
    with pytest.raises(BackendError) as info:
        load_model_and_tokenizer(tmp_path / "bare")
    assert str(info.value).startswith(f"could not load model from {tmp_path / 'bare'}: ") and "\n" not in str(info.value)


def test_loading_a_model_leaves_the_processs_progress_bars_as_they_were() -> None:
    """The load switched transformers' progress bars off for the whole process and replaced the GGUF reader's tqdm
    for good: a program embedding toolcall lost its own bars."""
    pytest.importorskip("transformers")
    import transformers
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    from toolcall.backends.hf_loading import _quiet_progress

    before = gguf_utils.tqdm
    transformers.utils.logging.enable_progress_bar()
    with _quiet_progress(transformers):
        assert not transformers.utils.logging.is_progress_bar_enabled() and gguf_utils.tqdm is not before
    assert transformers.utils.logging.is_progress_bar_enabled() and gguf_utils.tqdm is before
    transformers.utils.logging.disable_progress_bar()
    with _quiet_progress(transformers):
        pass
    assert not transformers.utils.logging.is_progress_bar_enabled()  # off before, off after
    transformers.utils.logging.enable_progress_bar()


def test_overlapping_loads_restore_the_progress_bars_once_both_are_done() -> None:
    pytest.importorskip("transformers")
    import transformers
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    from toolcall.backends.hf_loading import _quiet_progress

    before = gguf_utils.tqdm
    transformers.utils.logging.enable_progress_bar()
    first, second = _quiet_progress(transformers), _quiet_progress(transformers)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)      # the first load ends while the second goes on: still quiet
    assert not transformers.utils.logging.is_progress_bar_enabled() and gguf_utils.tqdm is not before
    second.__exit__(None, None, None)
    assert transformers.utils.logging.is_progress_bar_enabled() and gguf_utils.tqdm is before
