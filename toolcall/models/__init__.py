"""Models shipped inside the package, by name: LoRA adapters over the embedded SmolLM2, each with how it was made."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ..errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

#: A model folder's recommended settings: {"loop": {LoopConfig field: value}}, applied under the flags a user types.
SETTINGS_FILE = "toolcall.json"
MAX_SETTINGS_BYTES = 64 * 1024
C = TypeVar("C", bound="DataclassInstance")
#: The name that says "the embedded SmolLM2-135M-Instruct itself" where a model is named (also an adapter's base).
EMBEDDED = "embedded"

#: name -> folder beside this file holding adapter_config.json, adapter_model.safetensors and README.md (the recipe).
NAMED_MODELS: dict[str, str] = {"toolformer-smollm2": "toolformer-smollm2",
                                "schema-tools-smollm2": "schema-tools-smollm2",
                                "word-problems-smollm2": "word-problems-smollm2"}


def named_model_path(name: str) -> Path | None:
    """The folder of the shipped model called `name` (case-insensitive), or None when no shipped model has that name."""
    folder = NAMED_MODELS.get(name.strip().lower())
    return Path(__file__).parent / folder if folder is not None else None


def resolve_model(model: str | None) -> str | None:
    """A shipped model's name becomes its folder, "embedded" None (the embedded model); anything else (a path, None)
    is kept. A file or folder of that name here wins over both names."""
    if model is None or (model.strip().lower() == EMBEDDED and not Path(model).exists()):
        return None
    path = named_model_path(str(model))
    return str(path) if path is not None and not Path(model).exists() else str(model)


def recommended(config: C, model: str | None, section: str = "loop") -> C:
    """`config` (a dataclass) with the values the model's folder recommends for it (its toolcall.json's `section`);
    `config` itself when the model has no such file. A value the user typed is applied after this, so it wins."""
    folder = resolve_model(model)
    if folder is None or not (Path(folder) / SETTINGS_FILE).is_file():
        return config
    path = Path(folder) / SETTINGS_FILE
    raw = path.read_bytes()[:MAX_SETTINGS_BYTES + 1]
    if len(raw) > MAX_SETTINGS_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_SETTINGS_BYTES} bytes; it holds a few settings")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 at byte {err.start}") from err
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not JSON at line {err.lineno}, column {err.colno}: {err.msg}") from err
    values = data.get(section, {}) if isinstance(data, dict) else None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected an object whose {section!r} member is an object of settings")
    allowed = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ConfigError(f"{path}: {', '.join(map(repr, unknown))} not a {section} setting; allowed: "
                          f"{', '.join(sorted(allowed))}")
    try:
        return dataclasses.replace(config, **values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{path}: {err}") from err
