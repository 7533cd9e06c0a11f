"""Grammar-constrained decoding with llguidance: one matcher per sampled row, and the mask of tokens it allows next.

llguidance reads the grammars' Lark text as it is, and matches at the byte level, so a token that spans several
grammar pieces (`)]`, `")]`, ` ->`) is allowed whenever its bytes are. Masks are returned as numpy booleans and
applied by each engine in its own arrays (llguidance.torch's `apply_token_bitmask_inplace` is torch.compile'd:
~24 s on its first CPU call, and no faster than plain torch afterwards).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import BackendError, ConfigError, MissingDependencyError

# Grammars whose ready-built matcher is kept per tokenizer: building one takes ~1 ms, copying it ~2 us.
PROTOTYPES = 16
#: The longest token llguidance's token trie holds: one byte more and it panics (an exception no `except Exception`
#: catches) instead of reporting an error.
MAX_TOKEN_BYTES = 1024


def llguidance_module() -> Any:
    """The llguidance package, or an install hint."""
    try:
        import llguidance
        import llguidance.numpy  # noqa: F401  # the mask helpers used below
    except ImportError as err:
        raise MissingDependencyError("llguidance", "constrain", "grammar-constrained sampling") from err
    return llguidance


class TokenMasks:
    """llguidance over one tokenizer: matchers that follow a grammar token by token, and their next-token masks.

    Build it once per engine (wrapping a tokenizer takes ~0.3 s for a 49k vocabulary); `width` is the number of
    logits the engine produces per step, which may exceed the tokenizer's vocabulary (padded embeddings).
    """

    def __init__(self, tokenizer: Any, width: int) -> None:
        self.tokenizer = tokenizer          # an llguidance.LLTokenizer
        self.width = int(width)
        self._prototypes: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def for_hf(cls, tokenizer: Any, width: int, eos_ids: Sequence[int] = ()) -> "TokenMasks":
        """Over a fast Hugging Face tokenizer; `eos_ids` are the tokens that end a sequence (default: its own)."""
        llguidance_module()
        import llguidance.hf

        eos = sorted({int(e) for e in eos_ids}) or None
        try:
            wrapped = llguidance.hf.from_tokenizer(tokenizer, n_vocab=max(width, len(tokenizer)), eos_token=eos)
        except ValueError as err:  # a slow (Python) tokenizer: llguidance reads only the Rust ones
            raise BackendError(f"grammar-constrained sampling needs a fast tokenizer: {err}") from err
        return cls(wrapped, width)

    @classmethod
    def for_tokens(cls, tokens: Sequence[str], eos_id: int, encode: Callable[[str], list[int]],
                   special_ids: Sequence[int] = ()) -> "TokenMasks":
        """Over a plain vocabulary: `tokens[i]` is the text of id i, `encode` tokenizes a text into those ids."""
        llguidance = llguidance_module()
        special = set(special_ids) | {eos_id}
        # llguidance marks a special token by a leading 0xFF byte, which no UTF-8 text contains.
        table = [b"\xff" + t.encode("utf-8") if i in special else t.encode("utf-8") for i, t in enumerate(tokens)]
        longest = max(range(len(table)), key=lambda i: len(table[i]), default=None)
        if longest is not None and len(table[longest]) > MAX_TOKEN_BYTES:
            raise BackendError(f"token {longest} is {len(table[longest]):,} bytes long; grammar-constrained sampling "
                               f"takes tokens of at most {MAX_TOKEN_BYTES:,} bytes")
        vocabulary = _Vocabulary(table, eos_id, sorted(special), encode)
        return cls(llguidance.LLTokenizer(llguidance.TokenizerWrapper(vocabulary)), len(tokens))

    # --- matchers ----------------------------------------------------------------------------------
    def matchers(self, grammar: str, n: int) -> list[Any]:
        """`n` fresh matchers at the start of `grammar` (copies of one prototype built per grammar)."""
        # The table is shared with a server's request threads, which build a request's grammar before it decodes
        # (Backend.check_constraint): looking up and evicting hold the lock; building does not.
        with self._lock:
            proto = self._prototypes.get(grammar)
            if proto is not None:
                self._prototypes.move_to_end(grammar)
        if proto is None:
            # A grammar it cannot use gives a matcher in error, with llguidance's message (line, column, what is
            # unsupported): compiled once, not once to validate and again to match.
            proto = llguidance_module().LLMatcher(self.tokenizer, grammar)
            if not proto.is_error():
                # Some faults show only when the first mask is computed (a schema that refers to itself, `{"$ref":
                # "#"}`): its mask then allows only the end, and a held reply came back empty as if complete.
                probe = proto.deep_copy()
                self.allowed([probe])
                if probe.is_error():
                    proto = probe
            if proto.is_error():
                raise ConfigError(f"the constraint grammar cannot be used: {proto.get_error()}")
            with self._lock:
                self._prototypes[grammar] = proto
                while len(self._prototypes) > PROTOTYPES:
                    self._prototypes.popitem(last=False)
        return [proto.deep_copy() for _ in range(n)]

    def allowed(self, matchers: Sequence[Any]) -> Any:
        """A numpy bool array [len(matchers), width]: True where the matcher allows that token next."""
        import numpy as np
        from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask

        vocab = self.tokenizer.vocab_size
        bits = allocate_token_bitmask(len(matchers), vocab)
        # One row at a time: the parallel fill was slower for tens of rows on a few busy cores (thread overhead).
        for row, matcher in enumerate(matchers):
            fill_next_token_bitmask(matcher, bits, row)
        flags = np.unpackbits(bits.view(np.uint8), axis=1, bitorder="little").astype(bool)[:, :vocab]
        if vocab >= self.width:
            return flags[:, :self.width]
        return np.pad(flags, ((0, 0), (0, self.width - vocab)))  # ids the tokenizer lacks are never allowed

    @staticmethod
    def consume(matcher: Any, token: int) -> None:
        """Advance `matcher` by one sampled token (one its mask allowed)."""
        if not matcher.consume_token(int(token)):
            raise BackendError(f"the grammar matcher refused token {token}: {matcher.get_error()}")


class _Vocabulary:
    """The tokenizer interface llguidance.TokenizerWrapper reads: token bytes, EOS/BOS ids, and tokenization."""

    def __init__(self, tokens: list[bytes], eos_id: int, special_ids: list[int],
                 encode: Callable[[str], list[int]]) -> None:
        self.tokens = tokens
        self.eos_token_id = eos_id
        self.bos_token_id = None
        self.special_token_ids = special_ids
        self._encode = encode

    def __call__(self, text: bytes | str) -> list[int]:
        return self._encode(text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text)
