"""Fine-tuning a causal LM on a Toolformer corpus with HF Trainer, the loss masked on tool results."""
from __future__ import annotations

import json
import math
import sys
import time
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import BackendError, ConfigError, MissingDependencyError
from .jsonl import read_jsonl, string_field
from .models import EMBEDDED, resolve_model
from .options import flag_of, option

#: Labels of this value are ignored by the loss (the convention of PyTorch's cross-entropy and transformers).
IGNORE_INDEX = -100


@dataclass
class TrainConfig:
    """One fine-tuning run; every field is also a `toolcall train` flag."""

    corpus: Path = option(help="data-gen output DIR (reads DIR/corpus.jsonl) or a .jsonl file of {\"text\": ...} records")
    output: Path = option(help="directory for the checkpoint or LoRA adapter")
    model: str | None = option(None, metavar="PATH", help="base checkpoint or .gguf (default: the embedded "
                                                          "SmolLM2-135M-Instruct)")
    epochs: float = option(1.0, help="passes over the corpus")
    max_steps: int = option(-1, metavar="N", help="stop after N optimiser steps; > 0 overrides --epochs")
    lr: float | None = option(None, help="peak learning rate (default: 1e-5 for full fine-tuning, as in the paper's "
                                         "App. B; 1e-4 with --lora)")
    batch_size: int = option(8, metavar="N", help="examples per device per step")
    grad_accum: int = option(1, metavar="N", help="gradient accumulation steps")
    max_length: int = option(512, metavar="N", help="truncate examples to N tokens (the paper: 1,024)")
    warmup: float = option(0.1, metavar="FRACTION", help="linear warm-up as a fraction of the steps (the paper: 10%)")
    mask_results: bool = option(True, help="leave tool-result tokens out of the loss: the program writes them at "
                                           "inference, the model need not learn them")
    dialect: str = option("toolformer", help="the dialect the corpus is written in (which characters are results)")
    mask_prompt: bool = option(True, help="leave a record's prompt (its first prompt_chars characters: the system "
                                          "message offering tools, the user's request) out of the loss; records "
                                          "without prompt_chars are learned whole, their special texts read as "
                                          "written)")
    lora: bool = option(False, help="train a LoRA adapter (PEFT) instead of all weights")
    lora_r: int = option(8, metavar="R", help="LoRA rank")
    lora_alpha: int = option(16, metavar="ALPHA", help="LoRA alpha")
    lora_dropout: float = option(0.05, metavar="P", help="LoRA dropout")
    lora_targets: tuple[str, ...] = option(("q_proj", "v_proj"), metavar="NAMES",
                                           help="comma-separated module names LoRA adapts")
    bf16: bool = option(False, help="bfloat16 mixed precision where the device supports it (Trainer picks the device)")
    seed: int = option(0, help="random seed of the run (data order, adapter initialisation)")
    verify: bool = option(True, help="reload the saved checkpoint and check it gives the trained model's logits")
    logging_steps: int = option(10, metavar="N", help="log the loss every N steps (stderr)")
    from_adapter: str | None = option(None, metavar="PATH", help="train this LoRA adapter further (a directory or a "
                                      "shipped model's name): its rank, alpha and modules, over its own base, "
                                      "saved as one adapter; implies --lora, and --model must be left out")

    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (1e-4 if self.lora or self.from_adapter is not None else 1e-5)

    def validate(self) -> None:
        """Every option checked before a model loads (a bad one used to fail inside Trainer or torch after it)."""
        if not math.isfinite(self.epochs) or (self.epochs <= 0 and self.max_steps <= 0):
            raise ConfigError(f"epochs (--epochs) must be a finite number > 0 (got {self.epochs}) unless max_steps "
                              "(--max-steps) > 0")
        for name in ("batch_size", "grad_accum", "max_length", "lora_r", "logging_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} ({flag_of(TrainConfig, name)}) must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.warmup < 1:
            raise ConfigError(f"warmup (--warmup) is a fraction of the steps in [0, 1), got {self.warmup}")
        if self.from_adapter is not None and self.model is not None:
            raise ConfigError("--from-adapter trains the adapter over its own base model; leave --model out "
                              f"(got --model {self.model})")
        if self.lora and not self.lora_targets:
            raise ConfigError("lora_targets (--lora-targets) must name at least one module, e.g. q_proj,v_proj")
        if not 0 < self.learning_rate() < math.inf:
            raise ConfigError(f"lr (--lr) must be a finite number > 0, got {self.lr}")
        if not self.lora_alpha > 0:
            raise ConfigError(f"lora_alpha (--lora-alpha) must be > 0, got {self.lora_alpha}")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"lora_dropout (--lora-dropout) is a probability in [0, 1), got {self.lora_dropout}")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed (--seed) must be in [0, 2^32), got {self.seed}")
        from .dialects import get_dialect

        get_dialect(self.dialect)
        check_output_reads(self.output, self.reads())
        check_output_dir(self.output)

    def reads(self) -> dict[str, Path]:
        """The model directories the run reads, each by its flag: --output must not be one, nor lie inside one."""
        folders: dict[str, Path] = {}
        if self.from_adapter is not None:
            adapter = Path(resolve_model(self.from_adapter) or self.from_adapter)
            folders[f"--from-adapter {self.from_adapter}"] = adapter
            try:   # its base, when a directory: loaded, and an adapter saved there removes its weights (a broken
                # adapter_config.json is said where the adapter is read)
                from .backends.hf_loading import adapter_base

                base = adapter_base(adapter)
            except (OSError, ValueError):
                base = None
            if base is not None:
                folders[f"the base model of --from-adapter {self.from_adapter}"] = Path(resolve_model(base) or base)
        if self.model is not None:
            model = resolve_model(self.model)
            if model is not None:
                folders[f"--model {self.model}"] = Path(model)
        return folders


@dataclass
class TrainResult:
    """What a run did: where it saved, how long, and how much of the text the loss saw."""

    output: str
    examples: int                      # records trained on (unlearned_examples are not among them)
    steps: int
    train_loss: float
    seconds: float
    tokens: int
    masked_tokens: int                 # tokens excluded from the loss: tool results, and prompts when masked
    lora: bool
    cut_examples: int = 0              # texts longer than --max-length, learned only up to it
    unlearned_examples: int = 0        # records left out: no token in the loss (prompt or results fill --max-length)
    verified_max_logit_diff: float | None = None
    log: list[dict[str, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def adapter_folder(adapter: str) -> tuple[Path, str | None]:
    """A LoRA adapter's folder (a shipped model's name resolved) and its base as the loader names it (None: the
    embedded model)."""
    from .backends.hf_loading import adapter_base

    folder = Path(resolve_model(adapter) or adapter)
    if not (folder / "adapter_config.json").is_file():
        raise ConfigError(f"--from-adapter {adapter}: {folder} holds no adapter_config.json; pass a LoRA adapter "
                          "directory or a shipped model's name")
    try:
        return folder, adapter_base(folder)
    except ValueError as err:  # not JSON, not UTF-8, or not an object
        raise ConfigError(f"--from-adapter {adapter}: {err}") from err


# --- the corpus -----------------------------------------------------------------------------------

def corpus_file(path: str | Path) -> Path:
    """DIR -> DIR/corpus.jsonl (what data_gen writes); a file is used as is."""
    path = Path(path)
    if path.is_dir():
        path = path / "corpus.jsonl"
    if not path.is_file():
        raise ConfigError(f"corpus {path} does not exist; pass a data-gen output directory or a .jsonl file")
    return path


def read_training_texts(path: str | Path) -> list[str]:
    """The "text" field of every corpus record (augmented text with its calls); blank lines are skipped."""
    return [text for text, _ in read_training_records(path)]


def read_training_records(path: str | Path) -> list[tuple[str, int | None]]:
    """(text, prompt_chars) of every corpus record: a chat record's prompt_chars says where the assistant's reply
    starts; None for a plain text, which is learned whole and read as written (see tokenize_example's `literal`)."""
    file = corpus_file(path)
    out: list[tuple[str, int | None]] = []
    for where, record in read_jsonl(file, "corpus"):
        text = string_field(record, "text", where)
        if "prompt_chars" not in record:
            out.append((text, None))
            continue
        prompt = record["prompt_chars"]
        if isinstance(prompt, bool) or not isinstance(prompt, int) or not 0 <= prompt <= len(text):
            raise ConfigError(f"{where}: prompt_chars must be a character offset into the text (0..{len(text)}), "
                              f"got {prompt!r}")
        out.append((text, prompt))
    if not out:
        raise ConfigError(f"corpus {file} holds no records")
    return out


# --- which characters are tool results --------------------------------------------------------------

#: How many records check_result_dialect reads: enough to see a corpus's format, bounded for a large corpus.
DIALECT_SAMPLE = 200


def check_result_dialect(texts: Sequence[str], dialect: str) -> None:
    """A ConfigError when `dialect` finds no tool result in the corpus but another dialect does: its results would
    be learned as text (a hermes corpus trained with the default toolformer dialect learns every tool response)."""
    from .dialects import dialects, get_dialect

    sample = texts[:DIALECT_SAMPLE]
    chosen = get_dialect(dialect)
    if any(chosen.result_spans(t) for t in sample):
        return
    for name in dialects.names():
        if name == chosen.name:
            continue
        found = sum(1 for t in sample if get_dialect(name).result_spans(t))
        if found:
            raise ConfigError(f"{found} of the first {len(sample)} records hold tool results written in the {name} "
                              f"dialect, and --dialect {chosen.name} finds none, so they would be learned as text: "
                              f"pass --dialect {name} (or --no-mask-results to learn them)")


def warn_without_results(texts: Sequence[str], dialect: str, corpus: Path) -> None:
    """Say on stderr when no text holds a tool call with its result in `dialect`: the run learns plain text, no call
    ("masked_tokens": 0 was the only sign), which may be meant, but a corpus of the wrong file or run rarely is."""
    from .dialects import get_dialect

    chosen = get_dialect(dialect)
    if not any(chosen.result_spans(t) for t in texts):   # stops at the first text with a result
        print(f"toolcall train: warning: no record of {corpus} holds a tool call with its result (in the "
              f"{chosen.name} dialect), so the model learns no call, only the text; give a data-gen corpus to teach "
              "calls", file=sys.stderr)


def result_token_mask(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[tuple[int, int], tuple[int, int]]]) -> list[bool]:
    """True for tokens to leave out of the loss: tokens overlapping a result, unless they also hold part of its
    marker (`spans` as `Dialect.result_spans` gives them; the marker is Toolformer's arrow, MOSS's Results opener).

    Tokens cross the boundaries (SmolLM2 writes "2023.]" as "." + "]"-merged pieces, ` ->` as one token):
    a token that carries arrow characters stays in the loss because the model must learn to emit the
    arrow that triggers the call; a token fused with the closing bracket is masked, the program writes
    the bracket too.
    """
    mask = []
    for a, b in offsets:
        hit = False
        if b > a:
            for (ma, mb), (ra, rb) in spans:
                if a < rb and ra < b and not (a < mb and ma < b):
                    hit = True
                    break
        mask.append(hit)
    return mask


def tokenize_example(text: str, tokenizer: Any, max_length: int, mask_results: bool = True,
                     dialect: str = "toolformer", add_eos: bool = True, prompt_chars: int = 0,
                     literal: bool = False) -> dict[str, list[int]]:
    """input_ids, attention_mask and labels for one text; labels are -100 on result tokens when masking, and on the
    tokens that end within the first `prompt_chars` characters (a chat record's prompt). `literal`: the tokenizer's
    special texts in it are read as the characters they are, not as control tokens (a document quoting
    `<|im_start|>` or `<|endoftext|>` would otherwise teach a turn or an end in the middle of a text)."""
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=True, truncation=True, max_length=max_length,
                    split_special_tokens=literal)
    ids = list(enc["input_ids"])
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    labels = list(ids)
    if mask_results:
        from .dialects import get_dialect

        spans = get_dialect(dialect).result_spans(text)  # the dialect knows which characters the program writes
        for i, masked in enumerate(result_token_mask(offsets, spans)):
            if masked:
                labels[i] = IGNORE_INDEX
    if prompt_chars > 0:
        for i, (_, end) in enumerate(offsets):
            if end <= prompt_chars:
                labels[i] = IGNORE_INDEX
    # A chat record whose template ended the reply with the end-of-text token (SmolLM2's `<|im_end|>`, then "\n")
    # has its end: the blank text after it is the template's, which the model never writes (decoding stops at the
    # token), and a second end-of-text token after it taught `<|im_end|>\n<|im_end|>`.
    last = len(ids)
    while last > 0 and offsets[last - 1][1] > offsets[last - 1][0] and not text[slice(*offsets[last - 1])].strip():
        last -= 1
    ended = tokenizer.eos_token_id is not None and last > 0 and ids[last - 1] == tokenizer.eos_token_id
    if ended:
        labels[last:] = [IGNORE_INDEX] * (len(ids) - last)
    # An end-of-text token teaches the model to stop after a passage, when there is room for it.
    elif add_eos and tokenizer.eos_token_id is not None and len(ids) < max_length:
        ids.append(tokenizer.eos_token_id)
        labels.append(tokenizer.eos_token_id)
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


class PadCollator:
    """Right-pads a batch: input_ids with the pad id, labels with -100, attention_mask with 0."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(x["input_ids"]) for x in batch)

        def pad(key: str, value: int) -> Any:
            return torch.tensor([x[key] + [value] * (width - len(x[key])) for x in batch], dtype=torch.long)

        return {"input_ids": pad("input_ids", self.pad_id), "attention_mask": pad("attention_mask", 0), "labels": pad("labels", IGNORE_INDEX)}


# --- models -----------------------------------------------------------------------------------------

def _require_training() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as err:
        raise MissingDependencyError(err.name or "transformers", "hf", "toolcall train") from err
    return torch, transformers


def plain_model(model: Any) -> Any:
    """A trainable, serialisable copy of `model`: GGUF-loaded models carry a quantizer that Trainer and
    save_pretrained refuse, although their weights are already de-quantized to float tensors."""
    torch, transformers = _require_training()
    config = model.config.__class__.from_dict(_plain_config_dict(model.config))
    with torch.device("meta"):
        fresh = transformers.AutoModelForCausalLM.from_config(config, dtype=next(model.parameters()).dtype)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    fresh.load_state_dict(state, strict=False, assign=True)
    # Non-persistent buffers (rotary inv_freq) are not in a state_dict: copy them over one by one.
    buffers = dict(model.named_buffers())
    for name, buf in list(fresh.named_buffers()):
        if buf.is_meta and name in buffers:
            owner, _, attr = name.rpartition(".")
            setattr(fresh.get_submodule(owner), attr, buffers[name].detach().clone())
    fresh.tie_weights()
    leftover = [n for n, p in list(fresh.named_parameters()) + list(fresh.named_buffers()) if p.is_meta]
    if leftover:
        raise ConfigError(f"could not copy the model's weights; missing: {', '.join(leftover[:5])}")
    return fresh


def _plain_config_dict(config: Any) -> dict[str, Any]:
    data = config.to_dict()
    data.pop("quantization_config", None)
    return data


#: What a checkpoint folder holds of each kind: a run of the other kind into the same --output removes them, since
#: the loader takes a folder with adapter_config.json for an adapter (a full fine-tune written over an adapter's
#: folder reloaded as the old adapter).
_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
_FULL_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "config.json",
               "generation_config.json")


def _remove_files(output: Path, names: tuple[str, ...]) -> None:
    for name in names:
        (output / name).unlink(missing_ok=True)
    for shard in output.glob("model-*-of-*.safetensors"):
        shard.unlink()


def save_checkpoint(model: Any, tokenizer: Any, output: Path) -> None:
    """A checkpoint directory load_model_and_tokenizer (and vLLM) opens: weights, config.json, tokenizer.

    Weights go through safetensors directly (a model loaded from a GGUF file refuses save_pretrained);
    lm_head.weight is dropped when it is tied to the embeddings, the loader re-ties it.
    """
    from safetensors.torch import save_file

    output.mkdir(parents=True, exist_ok=True)
    _remove_files(output, _ADAPTER_FILES)
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items() if not (tied and k == "lm_head.weight")}
    save_file(state, str(output / "model.safetensors"), metadata={"format": "pt"})
    (output / "config.json").write_text(json.dumps(_plain_config_dict(model.config), indent=2, sort_keys=True), encoding="utf-8")
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(output)
    tokenizer.save_pretrained(output)


def save_lora(model: Any, tokenizer: Any, output: Path, base: str | None) -> None:
    """The adapter plus tokenizer; base_model_name_or_path names the base for hf_loading ("embedded" = SmolLM2)."""
    output.mkdir(parents=True, exist_ok=True)
    _remove_files(output, _FULL_FILES)
    # Embeddings are never LoRA targets here; "auto" would go looking for the base's config to decide.
    model.save_pretrained(output, save_embedding_layers=False)
    config_path = output / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    folder = resolve_model(base)  # a shipped model's name is its folder; "embedded" the embedded model
    config["base_model_name_or_path"] = str(Path(folder).resolve()) if folder else EMBEDDED
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
    tokenizer.save_pretrained(output)


def _require_peft() -> Any:
    try:
        import peft
    except ImportError as err:
        raise MissingDependencyError("peft", "hf", "LoRA fine-tuning") from err
    return peft


def _lora_model(model: Any, config: TrainConfig) -> Any:
    peft = _require_peft()
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in config.lora_targets if t not in names]
    if missing:
        raise ConfigError(f"LoRA target modules {missing} are not in this model; it has e.g. {sorted(names)[:12]}")
    lora = peft.LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                           target_modules=list(config.lora_targets), task_type="CAUSAL_LM")
    return peft.get_peft_model(model, lora)


def _trainable_adapter(model: Any, folder: Path) -> Any:
    return _require_peft().PeftModel.from_pretrained(model, str(folder), is_trainable=True)


class _StderrLog:
    """A Trainer callback that prints each log entry (loss, learning rate) as one line on stderr."""

    def __getattr__(self, name: str) -> Any:
        # TrainerCallback's other hooks are no-ops; answering them here avoids importing transformers at module level.
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        import sys

        if logs:
            shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in logs.items())
            print(f"step {state.global_step}/{state.max_steps}: {shown}", file=sys.stderr)


class _Examples:
    """A map-style dataset over pre-tokenized examples (Trainer needs only __len__ and __getitem__), held as two flat
    int32 arrays of every example's ids and labels and where each ends: lists of Python ints took 57 bytes a token
    (a corpus of 100M tokens: 5.7 GB before training began), these take 8.2."""

    def __init__(self) -> None:
        self.ids, self.labels, self.ends = array("i"), array("i"), array("q")

    def add(self, example: dict[str, list[int]]) -> None:
        self.ids.extend(example["input_ids"])
        self.labels.extend(example["labels"])
        self.ends.append(len(self.ids))

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        if not -len(self.ends) <= i < len(self.ends):
            raise IndexError(i)
        i %= len(self.ends)
        start, end = (self.ends[i - 1] if i else 0), self.ends[i]
        ids = self.ids[start:end].tolist()
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": self.labels[start:end].tolist()}


def _accelerator(torch: Any) -> bool:
    """Whether Trainer would train on something other than the CPU (CUDA, or Apple's MPS)."""
    mps = getattr(torch.backends, "mps", None)
    return bool(torch.cuda.is_available() or (mps is not None and mps.is_available()))


#: What every `toolcall train` run writes into its output: a directory holding it is a previous run's, which a new
#: run may replace.
RESULT_FILE = "train_result.json"


def check_output_reads(output: Path, reads: dict[str, Path]) -> None:
    """A ConfigError when `output` is, or lies inside, a directory the run reads (`reads`: each by its flag):
    `--from-adapter DIR --output DIR` replaced the adapter it was training further, `--model DIR --output DIR` the
    checkpoint."""
    target = output.resolve()
    for flag, folder in reads.items():
        if not folder.is_dir():
            continue
        if target == folder.resolve():
            raise ConfigError(f"--output {output} is {flag}, which this run reads: saving there would replace it; "
                              "give another directory")
        if target.is_relative_to(folder.resolve()):
            raise ConfigError(f"--output {output} lies inside {flag}, which this run reads; give a directory "
                              "outside it")


def check_output_dir(output: Path) -> None:
    """A ConfigError unless `output` is a new or empty directory, or one a previous run wrote (it holds RESULT_FILE):
    training into a directory of other files replaced a user's config.json without a word."""
    if output.exists() and not output.is_dir():
        raise ConfigError(f"--output {output} is a file; the checkpoint or adapter is saved into a directory")
    above = next((p for p in output.parents if p.exists() and not p.is_dir()), None)
    if above is not None:  # Trainer failed on it with a NotADirectoryError traceback, after the model had loaded
        raise ConfigError(f"--output {output} lies under {above}, which is a file; give a directory's path")
    if output.is_dir() and any(output.iterdir()) and not (output / RESULT_FILE).is_file():
        raise ConfigError(f"--output {output} is a directory of other files (no {RESULT_FILE} from an earlier "
                          "`toolcall train`); give a new or empty directory")
    if output.exists():
        return
    # Made and removed again now, so a path that cannot be made (read-only, /proc) is said before the model loads,
    # not by Trainer after it; a run refused later leaves nothing behind.
    missing = [p for p in (output, *output.parents) if not p.exists()]
    try:
        output.mkdir(parents=True)
    except OSError as err:
        raise ConfigError(f"--output {output} cannot be created: {err.strerror or err}") from None
    for made in missing:  # deepest first
        made.rmdir()


def train(config: TrainConfig) -> TrainResult:
    """Fine-tune, save to config.output, optionally verify the reload; the device is whatever Trainer picks."""
    config.validate()
    torch, transformers = _require_training()
    from .backends.hf_loading import load_model_and_tokenizer

    records = read_training_records(config.corpus)
    if config.mask_results:   # said before the model loads
        check_result_dialect([t for t, _ in records], config.dialect)
        warn_without_results([t for t, _ in records], config.dialect, corpus_file(config.corpus))
    base_name, adapter = config.model, None
    if config.from_adapter is not None:
        adapter, base_name = adapter_folder(config.from_adapter)
    lora = config.lora or adapter is not None
    base, tokenizer = load_model_and_tokenizer(base_name)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    examples = _Examples()
    tokens = masked = cut = unlearned = 0
    for text, p in records:
        example = tokenize_example(text, tokenizer, config.max_length, config.mask_results, config.dialect,
                                   prompt_chars=(p or 0) if config.mask_prompt else 0, literal=p is None)
        left_out = sum(1 for x in example["labels"] if x == IGNORE_INDEX)
        tokens, masked = tokens + len(example["labels"]), masked + left_out
        if left_out == len(example["labels"]):
            # Nothing to learn: kept, it cost a forward and backward pass, and a batch of such records was a step
            # of loss 0 that counted toward --max-steps and pulled the reported train loss down.
            unlearned += 1
        else:
            examples.add(example)
        cut += (len(example["input_ids"]) >= config.max_length
                and len(tokenizer(text, add_special_tokens=True, split_special_tokens=p is None)["input_ids"])
                > config.max_length)
    first_text = records[0][0]   # what the reload check reads
    read = len(records)
    del records   # the texts are in the examples now
    if cut:  # the rest of each was dropped without a word: data-gen's 4,000-character texts run past 512 tokens
        print(f"toolcall train: {cut:,} of {read:,} texts are longer than --max-length {config.max_length} "
              "tokens and are learned only up to it; raise --max-length (or split the texts) to learn all of them",
              file=sys.stderr)
    if unlearned and masked < tokens:  # a chat record whose prompt (or results) fill --max-length adds nothing
        print(f"toolcall train: {unlearned:,} of {read:,} records have no token in the loss (their prompt "
              f"or tool results fill --max-length {config.max_length}) and are left out: raise --max-length to learn "
              "their replies", file=sys.stderr)
    if masked >= tokens:
        raise ConfigError(f"no token of {config.corpus} counts toward the loss: all {tokens:,} are tool results or "
                          f"prompts (--max-length {config.max_length} may cut each text before its reply)")

    # The loader caches one shared model per path: train a copy so other users of the cache keep the base.
    model = plain_model(base)
    model.train()
    if adapter is not None:
        model = _trainable_adapter(model, adapter)
    elif lora:
        model = _lora_model(model, config)
    work = config.output / "trainer"
    args = transformers.TrainingArguments(
        output_dir=str(work),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate(),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        warmup_steps=config.warmup,
        lr_scheduler_type="linear",
        logging_steps=config.logging_steps,
        save_strategy="no",
        report_to="none",
        bf16=config.bf16,
        # Trainer refuses bf16 on a machine without an accelerator unless told the CPU is meant; CPUs with bfloat16
        # instructions (AVX512-BF16, AMX) train faster in it.
        use_cpu=config.bf16 and not _accelerator(torch),
        seed=config.seed,
        remove_unused_columns=False,
        disable_tqdm=True,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=examples,
                                   data_collator=PadCollator(tokenizer.pad_token_id))
    # Progress goes to stderr, so stdout stays free for the command's own summary (and --json).
    trainer.remove_callback(transformers.trainer_callback.PrinterCallback)
    trainer.add_callback(_StderrLog())
    began = time.perf_counter()
    try:
        out = trainer.train()
    finally:
        _remove_empty(work)   # a failed run left an empty trainer/ folder behind
    seconds = time.perf_counter() - began
    if not math.isfinite(float(out.training_loss)):
        raise BackendError(f"training diverged (train loss {out.training_loss}); nothing was saved to {config.output}: "
                           f"try a smaller --lr (this run: {config.learning_rate():g})")
    # Without the mixed-precision wrapper Trainer put around forward: the saved weights are float32, and so is the
    # verification's forward.
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    model.eval()
    if lora:
        save_lora(model, tokenizer, config.output, base_name)
    else:
        save_checkpoint(model, tokenizer, config.output)
    _remove_empty(work)
    result = TrainResult(
        output=str(config.output), examples=len(examples), steps=int(out.global_step), train_loss=float(out.training_loss),
        seconds=round(seconds, 3), tokens=tokens, masked_tokens=masked, lora=lora, cut_examples=cut,
        unlearned_examples=unlearned,
        log=[{k: float(v) for k, v in entry.items() if isinstance(v, (int, float))} for entry in trainer.state.log_history],
    )
    if config.verify:
        result.verified_max_logit_diff = verify_checkpoint(model, config.output, first_text)
    (config.output / RESULT_FILE).write_text(json.dumps(result.to_json(), indent=2), encoding="utf-8")
    return result


def verify_checkpoint(trained: Any, output: Path, text: str, tolerance: float = 1e-3) -> float:
    """Reload `output` through load_model_and_tokenizer and check its logits match the trained model's."""
    torch, _ = _require_training()
    from .backends.hf_loading import load_model_and_tokenizer

    loaded, tokenizer = load_model_and_tokenizer(output)
    ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=64)["input_ids"]
    with torch.no_grad():
        want = trained(input_ids=ids.to(_device(trained))).logits.float().cpu()
        got = loaded(input_ids=ids.to(_device(loaded))).logits.float().cpu()
    diff = float((want - got).abs().max())
    # bf16 training keeps float32 master weights, so the comparison stays tight; NaN fails too.
    if not math.isfinite(diff) or diff > tolerance * max(1.0, float(want.abs().max())):
        raise BackendError(f"the checkpoint saved in {output} reloads with different outputs (max logit diff {diff:.3g})")
    return diff


def _device(model: Any) -> Any:
    return next(model.parameters()).device


def _remove_empty(path: Path) -> None:
    """Trainer creates its output_dir even with saving off; leave no empty clutter behind."""
    try:
        path.rmdir()
    except OSError:
        pass
