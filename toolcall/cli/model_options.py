"""The `--backend` and `--model` flags, declared once for every command that loads a model."""
from __future__ import annotations

import argparse

BACKEND_HELP = "the engine: transformers (default), vllm or fake (data-gen needs one that scores log-probabilities)"
MODEL_HELP = ("checkpoint directory, .gguf file, LoRA adapter directory or a shipped model (toolformer-smollm2: SmolLM2 "
              "fine-tuned to call the calculator and calendar; word-problems-smollm2: to answer word problems with the "
              "calculator; schema-tools-smollm2: to call tools given by schema, hermes) (default, or embedded: the "
              "embedded SmolLM2-135M-Instruct); for "
              "--backend fake, a JSON list of scripted replies")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Add `--backend NAME` and `--model PATH`."""
    parser.add_argument("--backend", default="transformers", help=BACKEND_HELP)
    parser.add_argument("--model", default=None, metavar="PATH", help=MODEL_HELP)
