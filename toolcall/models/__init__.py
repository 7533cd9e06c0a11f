"""Models shipped inside the package, by name: LoRA adapters over the embedded SmolLM2, each with how it was made."""
from __future__ import annotations

from pathlib import Path

#: name -> folder beside this file holding adapter_config.json, adapter_model.safetensors and README.md (the recipe).
NAMED_MODELS: dict[str, str] = {"toolformer-smollm2": "toolformer-smollm2",
                                "schema-tools-smollm2": "schema-tools-smollm2"}


def named_model_path(name: str) -> Path | None:
    """The folder of the shipped model called `name` (case-insensitive), or None when no shipped model has that name."""
    folder = NAMED_MODELS.get(name.strip().lower())
    return Path(__file__).parent / folder if folder is not None else None


def resolve_model(model: str | None) -> str | None:
    """A shipped model's name becomes its folder; anything else (a path, None for the embedded model) is kept."""
    if model is None:
        return None
    path = named_model_path(str(model))
    return str(path) if path is not None and not Path(model).exists() else str(model)
