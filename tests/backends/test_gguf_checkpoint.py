"""A GGUF's de-quantized checkpoint, kept for the next load: the same model and tokenizer as reading the GGUF, and
every way keeping it can go wrong leaves a working load."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from toolcall.backends import hf_loading


class _Config:
    tie_word_embeddings = True

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": "llama", "quantization_config": {"quant_method": "gguf"}}


class _Model:
    config = _Config()

    def state_dict(self) -> dict[str, Any]:
        import torch

        return {"model.embed_tokens.weight": torch.ones(2, 2), "lm_head.weight": torch.ones(2, 2)}


class _Tokenizer:
    def save_pretrained(self, folder: str) -> None:
        (Path(folder) / "tokenizer.json").write_text("{}", encoding="utf-8")


def test_a_kept_checkpoint_is_written_whole_without_its_tied_head_or_quantization(tmp_path: Path) -> None:
    import json

    from safetensors.torch import load_file

    target = tmp_path / "gguf" / "m.Q4-10-20-transformers-5.0"
    assert hf_loading._keep_checkpoint(_Model(), _Tokenizer(), target)
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert list(load_file(str(target / "model.safetensors"))) == ["model.embed_tokens.weight"]
    assert json.loads((target / "config.json").read_text()) == {"model_type": "llama"}
    assert [p.name for p in target.parent.iterdir()] == [target.name]   # nothing left aside


def test_keeping_replaces_the_files_older_copies_and_loses_a_race_gracefully(tmp_path: Path) -> None:
    folder = tmp_path / "gguf"
    older = folder / "m.Q4-10-19-transformers-4.9"        # the file before it was replaced
    other = folder / "other-10-20-transformers-5.0"        # another GGUF file's
    stale = folder / ".m.Q4-10-20-transformers-5.0.abc"    # a write a killed load left, two hours ago
    fresh = folder / ".m.Q4-10-20-transformers-5.0.def"    # a write under way in another process
    for made in (older, other, stale, fresh):
        made.mkdir(parents=True)
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    target = folder / "m.Q4-10-20-transformers-5.0"
    target.mkdir()
    (target / "config.json").write_text("{}", encoding="utf-8")   # another load moved its copy in first
    assert hf_loading._keep_checkpoint(_Model(), _Tokenizer(), target)
    assert sorted(p.name for p in folder.iterdir()) == sorted([target.name, other.name, fresh.name])
    assert (target / "config.json").read_text() == "{}"    # theirs, kept


def test_a_folder_that_cannot_be_written_keeps_nothing_and_says_so(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder", encoding="utf-8")
    assert not hf_loading._keep_checkpoint(_Model(), _Tokenizer(), blocked / "gguf" / "m-1-2-transformers-5")


def test_a_damaged_copy_is_removed_and_the_gguf_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "config.json").write_text("{}", encoding="utf-8")

    class SafetensorError(Exception):   # safetensors' own error type is not an OSError
        pass

    def damaged(*_: Any) -> Any:
        raise SafetensorError("Error while deserializing header: incomplete metadata")

    monkeypatch.setattr(hf_loading, "gguf_checkpoint", lambda path, transformers: kept)
    monkeypatch.setattr(hf_loading, "_load_kept", damaged)
    monkeypatch.setattr(hf_loading, "_load_gguf", lambda torch, transformers, path, dtype: ("read", path, dtype))
    torch = pytest.importorskip("torch")
    assert hf_loading._load(torch, None, str(gguf), "float32") == ("read", gguf, "float32")
    assert not kept.exists()


def test_the_cache_folder_follows_its_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(hf_loading.CACHE_DIR_ENV, str(tmp_path / "mine"))
    assert hf_loading.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(hf_loading.CACHE_DIR_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hf_loading.cache_dir() == tmp_path / "xdg" / "toolcall"


@pytest.mark.model
@pytest.mark.slow
def test_the_kept_checkpoint_is_the_model_and_tokenizer_the_gguf_gives(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setenv(hf_loading.CACHE_DIR_ENV, str(tmp_path))

    def load(dtype: str) -> tuple[Any, Any]:
        hf_loading._load_cached.cache_clear()
        return hf_loading.load_model_and_tokenizer(None, dtype)

    texts = ["A shop sells 17 boxes. [Calculator(17 * 23) -> 391] 391", "naïve café — 東京 😀 <tool_call>{}</tool_call>",
             "<|im_start|>user\nhi<|im_end|>\n<|endoftext|>"]
    try:
        (tmp_path / "blocked").write_text("", encoding="utf-8")   # nothing can be kept here: the GGUF, read as before
        monkeypatch.setenv(hf_loading.CACHE_DIR_ENV, str(tmp_path / "blocked"))
        read, read_tok = load("bfloat16")
        monkeypatch.setenv(hf_loading.CACHE_DIR_ENV, str(tmp_path / "cache"))
        first, _ = load("bfloat16")          # reads the GGUF, keeps it, loads what it kept
        assert len(list((tmp_path / "cache" / "gguf").iterdir())) == 1
        kept, kept_tok = load("bfloat16")    # the kept checkpoint alone
        ids = torch.tensor([read_tok.encode(texts[0])])
        with torch.no_grad():
            logits = read(ids).logits
            assert torch.equal(first(ids).logits, logits) and torch.equal(kept(ids).logits, logits)
        assert [kept_tok.encode(t) for t in texts] == [read_tok.encode(t) for t in texts]
        assert kept_tok.chat_template == read_tok.chat_template
        assert (kept_tok.eos_token, kept_tok.pad_token) == (read_tok.eos_token, read_tok.pad_token)
        float32, _ = load("float32")
        assert next(float32.parameters()).dtype == torch.float32
    finally:
        hf_loading._load_cached.cache_clear()


def test_a_write_that_fails_its_own_way_keeps_nothing_and_leaves_nothing(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import safetensors.torch

    def full(*_: Any) -> None:
        raise RuntimeError("Error while serializing: I/O error: File too large (os error 27)")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    assert not hf_loading._keep_checkpoint(_Model(), _Tokenizer(), tmp_path / "gguf" / "m-1-2-transformers-5")
    assert list((tmp_path / "gguf").iterdir()) == []


def test_a_kept_copy_can_be_read_by_whoever_may_read_this_users_files(tmp_path: Path) -> None:
    target = tmp_path / "gguf" / "m-1-2-transformers-5"
    assert hf_loading._keep_checkpoint(_Model(), _Tokenizer(), target)
    umask = hf_loading._umask()
    assert target.stat().st_mode & 0o777 == (0o777 & ~umask)
    assert {p.stat().st_mode & 0o777 for p in target.iterdir()} == {0o666 & ~umask}


def test_two_gguf_files_of_one_name_are_two_kept_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    monkeypatch.setenv(hf_loading.CACHE_DIR_ENV, str(tmp_path / "cache"))
    transformers = types.SimpleNamespace(__version__="5.0")
    first, second = tmp_path / "a" / "model.gguf", tmp_path / "b" / "model.gguf"
    for path in (first, second):
        path.parent.mkdir()
        path.write_bytes(b"GGUF")
    one, two = (hf_loading.gguf_checkpoint_path(p, transformers) for p in (first, second))
    assert one != two and one.parent == two.parent
    assert hf_loading._keep_checkpoint(_Model(), _Tokenizer(), one)
    assert hf_loading._keep_checkpoint(_Model(), _Tokenizer(), two)
    assert sorted(p.name for p in one.parent.iterdir()) == sorted([one.name, two.name])   # neither evicts the other
    assert hf_loading.gguf_checkpoint(first, transformers) == one


def test_a_copy_this_user_may_not_read_is_passed_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    monkeypatch.setenv(hf_loading.CACHE_DIR_ENV, str(tmp_path / "cache"))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    transformers = types.SimpleNamespace(__version__="5.0")
    target = hf_loading.gguf_checkpoint_path(gguf, transformers)
    assert hf_loading._keep_checkpoint(_Model(), _Tokenizer(), target)
    real = Path.is_file

    def denied(self: Path) -> bool:
        if self == target / "config.json":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "is_file", denied)
    assert hf_loading.gguf_checkpoint(gguf, transformers) is None
