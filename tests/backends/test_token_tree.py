"""Packing scored sequences into token trees: shared heads become shared nodes, every item's path spells its tokens."""
from __future__ import annotations

import random

from toolcall.backends.token_tree import Pack, pack_items


def spelled(pack: Pack, path: list[int]) -> list[int]:
    return [pack.tokens[n] for n in path]


def check(packs: list[Pack], items: list[tuple[int, list[int]]]) -> None:
    """Each item with tokens is in exactly one pack, as a chain of nodes from the cut down, at cut + depth."""
    placed = [item for p in packs for item in p.paths]
    assert sorted(placed) == [k for k, (_, new) in enumerate(items) if new]       # each once, empty ones left out
    for pack in packs:
        assert all(parent < node for node, parent in enumerate(pack.parents))
        for item, path in pack.paths.items():
            cut, new = items[item]
            assert spelled(pack, path) == new
            assert [pack.parents[n] for n in path] == [-1] + path[:-1]
            assert [pack.positions[n] for n in path] == list(range(cut, cut + len(new)))
            assert all(pack.cuts[n] == cut for n in path)


def test_items_that_share_a_cut_and_a_head_share_its_nodes() -> None:
    items = [(3, [7, 8, 9]), (3, [7, 8, 5]), (5, [7, 8]), (3, [7]), (0, [])]
    (pack,) = pack_items(items, 512)
    check([pack], items)
    # [7, 8] at cut 3 is run once for the three items that start with it; cut 5 is another sequence entirely.
    assert len(pack) == 3 + 1 + 2
    assert pack.paths[0][:2] == pack.paths[1][:2] and pack.paths[3] == pack.paths[0][:1]
    assert 4 not in pack.paths            # nothing to score, nothing to run


def test_packs_stay_within_the_node_budget_and_still_spell_every_item() -> None:
    rng = random.Random(5)
    heads = [[rng.randrange(50) for _ in range(rng.randrange(1, 6))] for _ in range(4)]
    items = [(rng.randrange(4), rng.choice(heads) + [rng.randrange(50) for _ in range(rng.randrange(0, 8))])
             for _ in range(60)]
    for budget in (1, 5, 16, 64, 10_000):
        packs = pack_items(items, budget)
        check(packs, items)
        longest = max(len(new) for _, new in items)
        assert all(len(p) <= max(budget, longest) for p in packs)
    whole = pack_items(items, 10_000)
    assert len(whole) == 1 and len(whole[0]) < sum(len(new) for _, new in items)   # shared heads counted once
