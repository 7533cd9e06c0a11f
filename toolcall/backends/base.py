"""The backend interfaces: decode sessions that pause at stop strings, and the Scorer protocol data_gen scores with."""
from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..errors import BackendError, ChatTemplateError, ConfigError


def scoring_start_id(tokenizer: Any) -> int:
    """The token every scored text starts from (the tokenizer's BOS, else EOS): the context of the text's first token."""
    found = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if found is None:
        raise BackendError("the tokenizer has neither a BOS nor an EOS token to start a scored sequence")
    return int(found)

@dataclass
class Counters:
    """What a session or backend did, so KV reuse and throughput are measurable."""

    prefilled_tokens: int = 0   # tokens pushed through the model as input (prompt, spliced results)
    decoded_tokens: int = 0     # tokens the model generated
    forward_passes: int = 0
    decode_seconds: float = 0.0  # wall time spent in the model (prefill + decode), tool time excluded
    # Tokens given to the model that it did not write (the prompt, spliced results), each counted once however
    # often an engine re-reads it; and how many of those a prefix cache served instead of a prefill.
    input_tokens: int = 0
    cached_tokens: int = 0

    def add(self, other: "Counters") -> None:
        self.prefilled_tokens += other.prefilled_tokens
        self.decoded_tokens += other.decoded_tokens
        self.forward_passes += other.forward_passes
        self.decode_seconds += other.decode_seconds
        self.input_tokens += other.input_tokens
        self.cached_tokens += other.cached_tokens


@dataclass(frozen=True)
class Steering:
    """How the call-open marker is treated while decoding (Toolformer §4.2)."""

    open_text: str | None = None  # the text that opens a call, e.g. "[" or "<API>"
    trigger_top_k: int = 0        # > 0: force the call open when its first token is among the top-k next tokens
    disable: bool = False         # True: the call-open token gets probability 0
    max_triggers: int = 1         # how many times the trigger may fire in one session
    # > 0: a call may open only at a step where the model gives the opener's first token(s) at least this probability
    # (raw logits, temperature 1); below it they are banned at that step. Toolformer's tau_s, applied while decoding.
    min_open_prob: float = 0.0
    # A grammar (llguidance Lark) for the text after open_text: once the call is open, tokens are masked to it until
    # it completes, so a started call always parses; tokens holding open_text glued to more text are banned.
    constrain: str | None = None
    # True: the call is already open when decoding starts (the loop wrote open_text, as for a forced call), so the
    # first token is decoded under `constrain`. With no open_text, the whole reply is decoded under `constrain` and
    # ends where the grammar is complete (a JSON answer: LoopConfig.json_schema).
    call_open: bool = False
    # With no open_text, a whole reply held to `constrain` that may open calls before its answer (a JSON answer with
    # tools offered): their opener, whose first tokens min_open_prob holds while the reply is still blank, as it holds
    # a free reply's.
    held_opener: str = ""
    # With constrain: text that ends a call held to it and that no such call holds before its end (the dialect's
    # held_call_end; "" where there is none). An engine may read past it in the call's own request.
    constrain_end: str = ""
    # The texts that end an open call (`Dialect.call_closers`). Where a decode writes open_text, a call is open
    # and neither min_open_prob nor the trigger applies (they are for where a call may open, not for its arguments)
    # until one of these ends it; without them, until the decode ends (the loop's decodes end at a call marker).
    close_texts: tuple[str, ...] = ()
    # With held_opener: the grammar of the answer alone. An engine that reads the opener's probability before a held
    # decode instead of during it (vLLM: its grammar masks the logits its processors see) holds the decode to this
    # one where the opener is below min_open_prob, as banning the opener at the first token does.
    held_answer: str | None = None

    def call_mark(self, text: str, start: int = 0, after: int = 0) -> bool | None:
        """What the last opener or close text in `text[start:]` that ends past `after` says: True a call opens (the
        opener also where both end at once: mistral's `[TOOL_CALLS]` ends in its `]`), False it ends, None no such
        marker is there."""
        def end(marker: str) -> int:
            at = text.rfind(marker, start) if marker else -1
            return at + len(marker) if at >= 0 and at + len(marker) > after else -1

        opened = end(self.open_text or "")
        closed = max((end(c) for c in self.close_texts), default=-1)
        if opened < 0 and closed < 0:
            return None
        return opened >= closed

    def call_open_after(self, text: str, new: int | None = None, was: bool = False, floor: int = 0) -> bool:
        """Whether a call is open at the end of `text`, given that it was (`was`) before `text[new:]` was written:
        the opener or close text that ends last in the new text says (`call_mark`), else it stays as it was. With
        `new` None, `text[floor:]` is read whole (a reply), and only where close texts are known (else nothing says
        a call in it has ended). Nothing before `floor` (the prompt) is read."""
        opener = self.open_text or ""
        if not opener or (new is None and not self.close_texts):
            return False if new is None else was
        reach = max([len(opener), *map(len, self.close_texts)]) - 1
        mark = self.call_mark(text, floor, floor) if new is None else self.call_mark(text, max(floor, new - reach), new)
        return was if mark is None else mark


#: A seed is an unsigned 64-bit number (what torch's generators take).
MAX_SEED = 2**64 - 1
#: The highest sampling temperature taken (OpenAI's bound): past it every token is about as likely as any other.
MAX_TEMPERATURE = 2.0
#: A positive temperature below this decodes greedily, as 0 does, in every engine (see `sampling_temperature`).
GREEDY_BELOW = 0.01


def sampling_temperature(temperature: float) -> float:
    """The temperature an engine samples at for a requested one: 0 (greedy) below GREEDY_BELOW, else the same.

    Dividing logits by a tiny temperature overflows (softmax(scores / 1e-300) was NaN in the transformers backend, a
    raw RuntimeError mid-reply; 1e-45 is 0 in float32), and vLLM raises any temperature below 0.01 to 0.01 itself. At
    0.01 a token 0.05 below the best logit is already e^-5 as likely, so every engine reads a lower one as greedy, the
    limit it tends to, and they agree on it.
    """
    return 0.0 if temperature < GREEDY_BELOW else float(temperature)


@dataclass(frozen=True)
class Sampling:
    """One session's own sampling settings; None keeps the backend's (engines that do not sample ignore them)."""

    temperature: float | None = None  # 0 (or below GREEDY_BELOW): greedy
    top_p: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        # Checked where they are given, not where they are used: NaN made torch raise on the first sampled step, a
        # seed past 64 bits "Overflow when unpacking long long", and a seed of 1.5 manual_seed's TypeError, all after
        # the model had loaded. A bool is no number here (True passed as a temperature of 1).
        for name, allowed in (("temperature", f"in [0, {MAX_TEMPERATURE:g}] (0: greedy)"), ("top_p", "in (0, 1]")):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
                raise ConfigError(f"{name} must be a number {allowed}, not {type(value).__name__} ({value!r:.40})")
        if self.temperature is not None and not 0 <= self.temperature <= MAX_TEMPERATURE:
            raise ConfigError(f"temperature must be in [0, {MAX_TEMPERATURE:g}] (0: greedy), got {self.temperature}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if isinstance(self.seed, float) and self.seed.is_integer():   # 1.0, as JSON or YAML may give one
            object.__setattr__(self, "seed", int(self.seed))
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral)
                                      or not 0 <= self.seed <= MAX_SEED):
            raise ConfigError(f"seed must be a whole number in [0, 2^64), got {self.seed!r:.40}")


@dataclass(frozen=True)
class Checkpoint:
    """Where a session stood (its text's length, and what the engine needs to stand there again), for `rewind`."""

    chars: int
    stop_reason: str | None
    matched_stop: str | None
    state: Any = None


@dataclass
class DecodeSession(ABC):
    """One growing text being decoded; keeps whatever model state lets it resume cheaply."""

    text: str                                 # the full text so far, prompt included
    prompt_chars: int = 0                      # where the prompt ends in `text`
    counters: Counters = field(default_factory=Counters)
    stop_reason: str | None = None            # "stop", "length", "eos" after a stream ends
    matched_stop: str | None = None
    sampling: Sampling = field(default_factory=Sampling)  # this session's sampling, over the backend's defaults
    # The caller's plan, a hint: a decode that stops at one of these markers is followed by a decode of up to
    # `read_on_tokens` tokens from there (the loop's look for another call written right after). An engine whose decode
    # is one streamed request may read those tokens in that same request and hand them to that next decode, saving a
    # request of its own (vLLM's async engine); the others ignore it.
    read_on_markers: tuple[str, ...] = ()
    read_on_tokens: int = 0

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

    def next_turn(self, text: str) -> None:
        """Start a new reply after `text` (the next user turn): the model state is kept, so only `text` is prefilled.

        The reply's own bookkeeping starts afresh: `generated`, the counters and per-reply limits such as the
        trigger count.
        """
        before = self.counters.input_tokens
        self.append(text)
        self.prompt_chars = len(self.text)
        self.counters = Counters(input_tokens=self.counters.input_tokens - before)  # the new turn is its input
        self.stop_reason, self.matched_stop = None, None
        self._reset_reply()

    def special_texts(self) -> tuple[str, ...]:
        """What this session's tokenizer reads as one special or added token wherever it is written (see
        Backend.special_texts); the loop breaks them in tool results."""
        backend = getattr(self, "_backend", None)
        return backend.special_texts() if isinstance(backend, Backend) else ()

    def _reset_reply(self) -> None:  # noqa: B027  # a hook engines may leave as it is
        """Hook: forget per-reply engine state (nothing by default)."""

    def checkpoint(self) -> Checkpoint | None:
        """Where the session stands now, to come back to with `rewind` after decoding on to look at what the model
        writes next; None where this engine cannot go back (the default: the loop then does without looking ahead)."""
        return None

    def rewind(self, point: Checkpoint) -> None:
        """Drop everything decoded or appended since `point` (one of this session's checkpoints, taken since the last
        `next_turn`): the text and the model's state stand where they stood then."""
        raise BackendError(f"{type(self).__name__} cannot rewind (its checkpoint() is None)")

    def _cut_text(self, point: Checkpoint) -> None:
        """The engine-independent part of a rewind: the text and the last stop."""
        if not self.prompt_chars <= point.chars <= len(self.text):
            raise BackendError(f"cannot rewind to character {point.chars}: the reply spans characters "
                               f"{self.prompt_chars}-{len(self.text)} (a checkpoint from another turn or session)")
        self.text = self.text[:point.chars]
        self.stop_reason, self.matched_stop = point.stop_reason, point.matched_stop

    def released(self) -> AbstractContextManager[object]:
        """Hook: what the caller holds while this session decodes (a server's model lock), given up while a step
        waits for other sessions' steps to batch with; nothing by default."""
        return nullcontext()


class Backend(ABC):
    """A model engine behind one narrow seam; the loop and data_gen see only this."""

    name: str = "backend"

    @abstractmethod
    def start(self, prompt: str) -> DecodeSession:
        """A new session whose text starts as `prompt`."""

    def start_batch(self, prompts: Sequence[str]) -> list[DecodeSession]:
        return [self.start(p) for p in prompts]

    def generate_batch(self, sessions: Sequence[DecodeSession], stops: Sequence[Sequence[str]],
                       budgets: Sequence[int], steerings: Sequence[Steering | None]) -> None:
        """Decode each session up to its stop (as `DecodeSession.generate`); an engine that batches overrides this."""
        for session, stop, budget, steering in zip(sessions, stops, budgets, steerings):
            session.generate(stop, budget, steering)

    def chat_prompt(self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True,
                    tools: Sequence[dict[str, Any]] | None = None) -> str:
        """Messages rendered with the model's chat template (plain role: text lines when it has none).

        `tools` (JSON schemas, e.g. `registry.schemas()`) go to the template, which shows them the way the model was
        trained to see them; `role: tool` messages carry results. Without a template there is no trained way to show
        tools, so they are left out and the dialect writes its own instruction (see toolcall.dialects.chat).
        """
        tokenizer: Any = getattr(self, "tokenizer", None)  # HF-tokenizer backends (transformers, vLLM) carry one
        if tokenizer is not None and getattr(tokenizer, "chat_template", None):
            from jinja2 import TemplateError, TemplateSyntaxError

            extra = {"tools": list(tools)} if tools else {}
            try:
                return str(tokenizer.apply_chat_template(list(messages), tokenize=False,
                                                         add_generation_prompt=add_generation_prompt, **extra))
            except TemplateSyntaxError:
                raise  # the template itself is broken: the model's fault, not the messages'
            except TemplateError as err:  # the template's own raise_exception: these messages are not its form
                raise ChatTemplateError(f"the model's chat template refused the messages: {err}") from None
        lines = [f"{m['role']}: {m['content']}" for m in messages]
        return "\n".join(lines) + ("\nassistant:" if add_generation_prompt else "")

    def check_constraint(self, grammar: str) -> None:
        """Raise ConfigError (or BackendError) if this engine cannot sample under `grammar` (a call grammar of the
        offered tools), so that a request is refused before it decodes rather than failing mid-reply. An engine that
        samples with llguidance (`_token_masks`) builds the matcher here and keeps it for the sampling that follows;
        one whose constraints its own library checks as it samples checks nothing here."""
        masks = self._token_masks()
        if masks is not None:
            masks.matchers(grammar, 1)

    def _token_masks(self) -> Any:
        """Hook: the engine's TokenMasks (llguidance over its tokenizer), or None when it constrains otherwise."""
        return None

    def special_texts(self) -> tuple[str, ...]:
        """The texts the tokenizer reads as one special or added token wherever they are written (`<|endoftext|>`,
        `<|im_end|>`; a Qwen tokenizer's `<tool_call>`): a tool result holding one would put that token in the
        model's context, ending its turn or writing markup. Empty for an engine without an HF tokenizer."""
        tokenizer: Any = getattr(self, "tokenizer", None)
        if tokenizer is None:
            return ()
        cached: tuple[str, ...] | None = getattr(self, "_special_texts", None)
        if cached is None:
            added = getattr(tokenizer, "added_tokens_decoder", None) or {}
            texts = {str(getattr(t, "content", t)) for t in added.values()}
            texts |= {str(t) for t in getattr(tokenizer, "all_special_tokens", None) or ()}
            cached = tuple(sorted(t for t in texts if len(t) > 1))
            self._special_texts = cached
        return cached

    # --- tokens (scoring engines implement the Scorer protocol below) ------------------------
    def encode(self, text: str) -> list[int]:
        raise BackendError(f"backend {self.name!r} cannot tokenize")

    def decode_ids(self, ids: Sequence[int]) -> str:
        raise BackendError(f"backend {self.name!r} cannot detokenize")

    # --- limits (a server refuses a prompt that cannot fit before any work is done) -----------
    def context_size(self) -> int | None:
        """The most tokens one session may hold, prompt and reply together; None when the engine states no bound."""
        return None

    def prompt_tokens(self, prompt: str) -> int:
        """How many tokens `start(prompt)` would prefill."""
        return len(self.encode(prompt))



# --- scoring: the interface data_gen needs ----------------------------------------------------------------------


@dataclass(frozen=True)
class Branch:
    """The sequence `prefix.ids[:cut] + new_ids`, scored at new_ids[j] for j >= score_from (0: the first new token too)."""

    cut: int
    new_ids: tuple[int, ...]
    score_from: int = 0


@dataclass(frozen=True, eq=False)
class Prefix:
    """A token sequence an engine has run once, and what that one run gave.

    Branches and samples continue from any `ids[:cut]` without recomputing it. `state` belongs to the engine that
    made it (a KV cache, a prefix-cache key): callers pass the Prefix back to that engine and never look inside.
    """

    ids: tuple[int, ...]
    token_logprobs: tuple[float, ...]                  # [j - 1] = log p(ids[j] | ids[:j]) for j = 1 .. len(ids) - 1
    candidate_logprobs: tuple[tuple[float, ...], ...]  # [j][c] = log p(candidates[c] | ids[:j + 1]); () if none asked
    state: Any = field(default=None, repr=False)


@runtime_checkable
class Scorer(Protocol):
    """Log-probability scoring and branch sampling in token ids and floats, never tensors.

    This is everything data_gen asks of an engine: run a prefix once and reuse its work for many branches (KV cache
    reuse here, prefix caching in a served engine), score many sequences that share a head, and sample short
    continuations that end at a stop string. Sequences a caller scores start with `start_token_id()`.
    """

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, no special tokens added."""
        ...

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids and the (start, end) character span of each token in `text`."""
        ...

    def decode_ids(self, ids: Sequence[int]) -> str:
        """The text of `ids`, special tokens kept, no clean-up of spaces."""
        ...

    def start_token_id(self) -> int:
        """The token a scored text starts from (BOS, else EOS): the context of the text's first token."""
        ...

    def prefix_state(self, ids: Sequence[int], candidates: Sequence[int] = ()) -> Prefix:
        """Run `ids` once: their own log-probs, the log-probs of each candidate token after every position, and
        the state that branches and samples continue from."""
        ...

    def branch_logprobs(self, prefix: Prefix, branches: Sequence[Branch]) -> list[list[float]]:
        """For each branch: [log p(new_ids[j] | ids[:cut] + new_ids[:j]) for j >= score_from]; the cut prefix is
        not recomputed. score_from 0 needs cut >= 1 (the first new token is predicted by ids[cut - 1])."""
        ...

    def sequence_logprobs(self, sequences: Sequence[tuple[Sequence[int], int]]) -> list[list[float]]:
        """For each (ids, start): [log p(ids[j] | ids[:j]) for j in range(max(start, 1), len(ids))]; a head that the
        sequences share is run once."""
        ...

    def sample_branches(self, prefix: Prefix, branches: Sequence[tuple[int, Sequence[int]]], n: int, *,
                        stop: Sequence[str] = ("]",), max_new_tokens: int = 32, temperature: float = 1.0,
                        top_k: int = 0, seed: int = 0,
                        keep_going: Callable[[str], bool] | None = None,
                        grammar: str | Sequence[str] | None = None) -> list[list[tuple[str, bool]]]:
        """For each (cut, first_ids): n continuations of `ids[:cut] + first_ids`, as (text, stopped).

        `text` ends just before the first stop string when `stopped` is True (stop strings are matched on decoded
        text, since a token may hold a stop string glued to other characters); otherwise it is what max_new_tokens
        or end of sequence produced. temperature 0 is greedy; top_k > 0 samples among the k likeliest tokens.
        `keep_going(text)` returning False ends a row at once, as (text, False), so a sample that has already
        turned into something the caller would discard costs no more steps. The same seed gives the same samples.
        With `grammar` (llguidance Lark text, e.g. a dialect's call grammar) every token is masked to those the
        grammar allows; a row ends when the grammar is complete, as (the whole text it matched, True), and stop
        strings are not looked for. A sequence of grammars, one per branch, gives each branch its own (data_gen:
        the calls the text before each position admits).
        """
        ...


def branch_grammars(grammar: str | Sequence[str] | None, branches: int) -> list[str | None]:
    """`sample_branches`' grammar argument as one grammar (or None) per branch: a string serves every branch."""
    if grammar is None or isinstance(grammar, str):
        return [grammar] * branches
    grammars: list[str | None] = list(grammar)
    if len(grammars) != branches or not all(isinstance(g, str) for g in grammars):
        raise ConfigError(f"sample_branches takes one grammar for all branches or a list of one grammar (a string) "
                          f"per branch; got {len(grammars)} for {branches} branches")
    return grammars


@runtime_checkable
class ReferenceScorer(Scorer, Protocol):
    """A Scorer that also offers the un-optimised reference that its batched, cache-reusing scores are checked against."""

    def naive_logprobs(self, ids: Sequence[int]) -> list[float]:
        """[log p(ids[j] | ids[:j]) for j >= 1] from one plain full forward: no cache, no batching, no padding."""
        ...


#: The methods an engine needs to serve as a Scorer (what `missing_scorer_methods` checks).
SCORER_METHODS: tuple[str, ...] = tuple(name for name, value in vars(Scorer).items()
                                        if callable(value) and not name.startswith("_"))


def missing_scorer_methods(engine: object) -> list[str]:
    """The Scorer methods `engine` (an instance or a class) lacks; [] when it can score."""
    return [name for name in SCORER_METHODS if not callable(getattr(engine, name, None))]


def check_batch_tokens(max_batch_tokens: int) -> int:
    """A scoring engine's `max_batch_tokens` option (rows x tokens of one batched forward), once it is a usable size."""
    if isinstance(max_batch_tokens, bool) or not isinstance(max_batch_tokens, int) or max_batch_tokens < 1:
        raise ConfigError(f"max_batch_tokens must be a whole number >= 1 (rows x tokens per batched forward), "
                          f"got {max_batch_tokens!r}")
    return max_batch_tokens
