"""`toolcall train`: fine-tune a causal LM on a data-gen corpus, tool results masked out of the loss."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ConfigError
from ..training import TrainConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="fine-tune a model on a Toolformer corpus (HF Trainer; full or LoRA)",
        description="Causal-LM fine-tuning on the `text` field of a data-gen corpus. The loss skips tool results "
                    "(the text between '->' and ']'), which the program writes at inference. The checkpoint in "
                    "--output loads with `--model DIR` in generate, chat and eval.")
    p.add_argument("--corpus", required=True, type=Path, help="data-gen output DIR (reads DIR/corpus.jsonl) or a .jsonl file")
    p.add_argument("--output", required=True, type=Path, help="directory for the checkpoint or LoRA adapter")
    p.add_argument("--model", default=None, help="base checkpoint or .gguf (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--epochs", type=float, default=1.0, help="passes over the corpus (default 1)")
    p.add_argument("--max-steps", type=int, default=-1, help="stop after N optimiser steps; overrides --epochs")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 1e-5 full, as in the paper; 1e-4 with --lora)")
    p.add_argument("--batch-size", type=int, default=8, help="examples per device per step (default 8)")
    p.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps (default 1)")
    p.add_argument("--max-length", type=int, default=512, help="truncate examples to N tokens (default 512)")
    p.add_argument("--warmup", type=float, default=0.1, help="linear warm-up as a fraction of the steps (default 0.1)")
    p.add_argument("--no-mask-results", dest="mask_results", action="store_false",
                   help="also train on tool-result tokens (masked by default)")
    p.add_argument("--lora", action="store_true", help="train a LoRA adapter (PEFT) instead of all weights")
    p.add_argument("--lora-r", type=int, default=8, help="LoRA rank (default 8)")
    p.add_argument("--lora-alpha", type=int, default=16, help="LoRA alpha (default 16)")
    p.add_argument("--lora-targets", default="q_proj,v_proj", help="comma-separated module names (default q_proj,v_proj)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 mixed precision (GPUs that support it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--logging-steps", type=int, default=10, help="log the loss every N steps (stderr)")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip reloading the checkpoint to check it gives the trained model's logits")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    targets = tuple(t.strip() for t in args.lora_targets.split(",") if t.strip())
    if args.lora and not targets:
        raise ConfigError("--lora-targets must name at least one module, e.g. q_proj,v_proj")
    return TrainConfig(
        corpus=args.corpus, output=args.output, model=args.model, epochs=args.epochs, max_steps=args.max_steps,
        lr=args.lr, batch_size=args.batch_size, grad_accum=args.grad_accum, max_length=args.max_length,
        warmup=args.warmup, mask_results=args.mask_results, lora=args.lora, lora_r=args.lora_r,
        lora_alpha=args.lora_alpha, lora_targets=targets, bf16=args.bf16, seed=args.seed,
        verify=args.verify, logging_steps=args.logging_steps,
    )


def run(args: argparse.Namespace) -> int:
    from ..training import train

    result = train(config_from_args(args))
    if args.json:
        summary = result.to_json()
        summary.pop("log")
        print(json.dumps(summary, sort_keys=True))
    else:
        kind = "LoRA adapter" if result.lora else "checkpoint"
        share = result.masked_tokens / result.tokens if result.tokens else 0.0
        print(f"trained {result.steps} steps on {result.examples} examples in {result.seconds:.1f} s, "
              f"final train loss {result.train_loss:.4f}")
        print(f"{result.masked_tokens} of {result.tokens} tokens ({share:.1%}) were tool results, left out of the loss")
        if result.verified_max_logit_diff is not None:
            print(f"reload check passed (max logit difference {result.verified_max_logit_diff:.2g})")
        print(f"{kind} saved to {result.output}; use it with: --model {result.output}")
    return 0
