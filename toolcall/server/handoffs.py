"""The replies that ended with calls for the client, as the model wrote them, so that their continuation keeps it all.

A reply that ran a server tool (or wrote MOSS thoughts) before it called a client's function shows the client less
than the model wrote: the tool's call and result are cut from `content`. When the client sends its results back, the
conversation would be rebuilt from what it was shown, and the model would lose what its tools told it. The server
remembers each such reply by its calls' ids (random, given only to the client that made the request) and continues
from the text the model wrote when the client sends back the same message, after the same conversation.
"""
from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: How many replies, and how many characters of them in all, are remembered; the oldest are forgotten first (a
#: forgotten reply is rebuilt from its message, as every reply was before).
MAX_REPLIES = 1024
MAX_CHARS = 16 * 1024 * 1024


@dataclass(frozen=True)
class PendingCall:
    """One call at the end of a remembered reply: the client's (its tool_call id) or one the server answered itself
    without running it (its error text)."""

    start: int            # where the call starts in the reply's text
    call_id: str | None   # the id handed to the client, or None
    result: str = ""      # the error text of a call not handed back


@dataclass(frozen=True)
class HandedReply:
    """The assistant text as the model wrote it, up to its last call, and what the client was shown of it: the
    content, the tool_calls (id, name, arguments) and the reasoning; `context` is the digest of the messages the
    reply answered (`MessageDigest`)."""

    text: str
    shown: str
    calls: tuple[PendingCall, ...]
    context: str = ""
    tool_calls: tuple[tuple[str, str, str], ...] = ()
    reasoning: str = ""

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(c.call_id for c in self.calls if c.call_id is not None)

    def results(self, answers: dict[str, str]) -> list[str]:
        """The results of the pending calls in order: the client's answers, and the server's own error texts."""
        return [answers[c.call_id] if c.call_id is not None else c.result for c in self.calls]


class MessageDigest:
    """A running digest of a conversation's messages, message by message, so that the digest of every prefix of a
    long conversation costs one pass."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def add(self, message: Mapping[str, Any]) -> None:
        data = json.dumps(message, sort_keys=True, ensure_ascii=False).encode("utf-8", "surrogatepass")
        self._hash.update(len(data).to_bytes(8, "big") + data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class HandoffMemory:
    """Remembered replies by the ids of their client calls, bounded; safe to use from several threads."""

    def __init__(self, max_replies: int = MAX_REPLIES, max_chars: int = MAX_CHARS) -> None:
        self.max_replies, self.max_chars = max_replies, max_chars
        self._replies: OrderedDict[tuple[str, ...], HandedReply] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def remember(self, reply: HandedReply) -> None:
        size = len(reply.text) + len(reply.shown)
        if not reply.ids or size > self.max_chars:
            return
        with self._lock:
            old = self._replies.pop(reply.ids, None)
            if old is not None:
                self._chars -= len(old.text) + len(old.shown)
            self._replies[reply.ids] = reply
            self._chars += size
            while len(self._replies) > self.max_replies or self._chars > self.max_chars:
                _, dropped = self._replies.popitem(last=False)
                self._chars -= len(dropped.text) + len(dropped.shown)

    def recall(self, ids: Sequence[str], shown: str) -> HandedReply | None:
        """The reply whose client calls had exactly these ids, if the client was shown `shown` of it (a message the
        client edited is its own, and is rebuilt from what it says)."""
        with self._lock:
            reply = self._replies.get(tuple(ids))
            if reply is not None:
                self._replies.move_to_end(reply.ids)
        return reply if reply is not None and reply.shown == shown else None
