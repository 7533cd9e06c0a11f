"""The server's memory of replies that ended with the client's calls: found by their ids and what was shown, bounded."""
from __future__ import annotations

from toolcall.server.handoffs import HandedReply, HandoffMemory, PendingCall


def reply(ids: tuple[str, ...], text: str = "text", shown: str = "") -> HandedReply:
    return HandedReply(text, shown, tuple(PendingCall(i, call_id) for i, call_id in enumerate(ids)))


def test_a_reply_is_found_by_exactly_its_ids_and_what_the_client_was_shown() -> None:
    memory = HandoffMemory()
    memory.remember(reply(("call_a", "call_b"), shown="Let me check."))
    assert memory.recall(["call_a", "call_b"], "Let me check.") is not None
    assert memory.recall(["call_b", "call_a"], "Let me check.") is None
    assert memory.recall(["call_a"], "Let me check.") is None
    assert memory.recall(["call_a", "call_b"], "Edited.") is None


def test_results_come_in_the_calls_order_with_the_servers_own_error_texts() -> None:
    handed = HandedReply("t", "", (PendingCall(0, None, "Error: not run"), PendingCall(5, "call_x")))
    assert handed.ids == ("call_x",) and handed.results({"call_x": "sunny"}) == ["Error: not run", "sunny"]


def test_the_memory_is_bounded_in_replies_and_characters_and_forgets_the_least_recently_used() -> None:
    memory = HandoffMemory(max_replies=3, max_chars=100)
    for k in range(3):
        memory.remember(reply((f"c{k}",)))
    assert memory.recall(["c0"], "") is not None  # used: now the most recent
    memory.remember(reply(("c3",)))
    assert memory.recall(["c1"], "") is None and memory.recall(["c0"], "") is not None
    memory.remember(reply(("big",), text="x" * 95))
    assert memory.recall(["big"], "") is not None
    assert sum(memory.recall([f"c{k}"], "") is not None for k in range(4)) <= 1  # 100 characters in all
    memory.remember(reply(("huge",), text="x" * 101))  # larger than the whole memory: not kept
    assert memory.recall(["huge"], "") is None and memory.recall(["big"], "") is not None
    memory.remember(reply(()))  # no client call: nothing to find it by
    assert len(memory._replies) <= 3
