"""The backend interface: decode sessions that pause at stop strings, and log-probability scoring."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ..errors import BackendError


@dataclass
class Counters:
    """What a session or backend did, so KV reuse and throughput are measurable."""

    prefilled_tokens: int = 0   # tokens pushed through the model as input (prompt, spliced results)
    decoded_tokens: int = 0     # tokens the model generated
    forward_passes: int = 0
    decode_seconds: float = 0.0  # wall time spent in the model (prefill + decode), tool time excluded

    def add(self, other: "Counters") -> None:
        self.prefilled_tokens += other.prefilled_tokens
        self.decoded_tokens += other.decoded_tokens
        self.forward_passes += other.forward_passes
        self.decode_seconds += other.decode_seconds


@dataclass(frozen=True)
class Steering:
    """How the call-open marker is treated while decoding (Toolformer §4.2)."""

    open_text: str | None = None  # the text that opens a call, e.g. "[" or "<API>"
    trigger_top_k: int = 0        # > 0: force the call open when its first token is among the top-k next tokens
    disable: bool = False         # True: the call-open token gets probability 0
    max_triggers: int = 1         # how many times the trigger may fire in one session


@dataclass
class DecodeSession(ABC):
    """One growing text being decoded; keeps whatever model state lets it resume cheaply."""

    text: str                                 # the full text so far, prompt included
    prompt_chars: int = 0                      # where the prompt ends in `text`
    counters: Counters = field(default_factory=Counters)
    stop_reason: str | None = None            # "stop", "length", "eos" after a stream ends
    matched_stop: str | None = None

    @property
    def generated(self) -> str:
        return self.text[self.prompt_chars:]

    @abstractmethod
    def stream(self, stop: Sequence[str], max_new_tokens: int, steering: Steering | None = None) -> Iterator[str]:
        """Decode, yielding text deltas, until a stop string appears (kept in the text), eos, or max_new_tokens."""

    def generate(self, stop: Sequence[str], max_new_tokens: int, steering: Steering | None = None) -> str:
        return "".join(self.stream(stop, max_new_tokens, steering))

    @abstractmethod
    def append(self, text: str) -> None:
        """Add program-written text (a tool result); it is prefilled on the next stream, nothing before it."""


class Backend(ABC):
    """A model engine behind one narrow seam; the loop and data_gen see only this."""

    name: str = "backend"

    @abstractmethod
    def start(self, prompt: str) -> DecodeSession:
        """A new session whose text starts as `prompt`."""

    def start_batch(self, prompts: Sequence[str]) -> list[DecodeSession]:
        return [self.start(p) for p in prompts]

    def chat_prompt(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """Messages rendered with the model's chat template (plain role: text lines when it has none)."""
        tokenizer = getattr(self, "tokenizer", None)  # HF-tokenizer backends (transformers, vLLM) carry one
        if getattr(tokenizer, "chat_template", None):
            return str(tokenizer.apply_chat_template(list(messages), tokenize=False,
                                                     add_generation_prompt=add_generation_prompt))
        lines = [f"{m['role']}: {m['content']}" for m in messages]
        return "\n".join(lines) + ("\nassistant:" if add_generation_prompt else "")

    # --- scoring (data_gen) -------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        raise BackendError(f"backend {self.name!r} cannot tokenize")

    def decode_ids(self, ids: Sequence[int]) -> str:
        raise BackendError(f"backend {self.name!r} cannot detokenize")

    def token_logprobs(self, sequences: Sequence[tuple[Sequence[int], int]]) -> list[list[float]]:
        """For each (ids, start): [log p(ids[j] | ids[:j]) for j in range(start, len(ids))]."""
        raise BackendError(f"backend {self.name!r} cannot score log-probabilities")

    def next_token_logprobs(self, ids: Sequence[int], candidates: Sequence[int]) -> list[list[float]]:
        """For every position j: [log p(c | ids[:j]) for c in candidates], j in range(len(ids) + 1)."""
        raise BackendError(f"backend {self.name!r} cannot score next-token log-probabilities")

