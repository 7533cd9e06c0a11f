"""`toolcall train`: fine-tune a causal LM on a data-gen corpus, tool results masked out of the loss."""
from __future__ import annotations

import argparse
import json

from ..options import add_options, from_args
from ..training import TrainConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="fine-tune a model on a Toolformer corpus (HF Trainer; full or LoRA)",
        description="Causal-LM fine-tuning on the `text` field of a data-gen corpus. The loss skips tool results "
                    "(the text between '->' and ']'), which the program writes at inference. The checkpoint in "
                    "--output loads with `--model DIR` in generate, chat and eval.")
    add_options(p, TrainConfig)
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training import train

    result = train(from_args(TrainConfig, args))
    if args.json:
        summary = result.to_json()
        summary.pop("log")
        print(json.dumps(summary, sort_keys=True))
    else:
        kind = "LoRA adapter" if result.lora else "checkpoint"
        share = result.masked_tokens / result.tokens if result.tokens else 0.0
        print(f"trained {result.steps} steps on {result.examples} examples in {result.seconds:.1f} s, "
              f"final train loss {result.train_loss:.4f}")
        print(f"{result.masked_tokens} of {result.tokens} tokens ({share:.1%}) were left out of the loss (tool results, "
              "and prompts with --mask-prompt)")
        if result.verified_max_logit_diff is not None:
            print(f"reload check passed (max logit difference {result.verified_max_logit_diff:.2g})")
        print(f"{kind} saved to {result.output}; use it with: --model {result.output}")
    return 0
