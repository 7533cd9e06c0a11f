"""Token trees: many sequences that continue one cached prefix, packed into few forwards with shared heads run once."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Pack:
    """Nodes for one forward: each node is one token, seen after `cut` cached tokens and its ancestors in the pack.

    A node's ancestors come before it, so `parents[n] < n`; `paths[item]` lists the node of each of that item's new
    tokens, in order. Items that share a cut and a head of tokens share those nodes.
    """

    tokens: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)     # index of the parent node, -1: the node follows the cut
    positions: list[int] = field(default_factory=list)   # cut + depth: where the token sits in its own sequence
    cuts: list[int] = field(default_factory=list)        # cached tokens the node sees
    paths: dict[int, list[int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.tokens)


def pack_items(items: Sequence[tuple[int, Sequence[int]]], max_nodes: int) -> list[Pack]:
    """Pack each (cut, new_ids) item, as the sequence `cached[:cut] + new_ids`, into packs of at most `max_nodes`
    nodes (an item longer than that gets a pack of its own). Items are visited in (cut, tokens) order, so items that
    share a head sit next to each other and share its nodes; items without new tokens are left out."""
    packs: list[Pack] = []
    current = Pack()
    children: dict[tuple[int, int, int], int] = {}     # (cut, parent, token) -> node, within `current`
    for item in sorted(range(len(items)), key=lambda k: (items[k][0], tuple(items[k][1]))):
        cut, new = items[item][0], list(items[item][1])
        if not new:
            continue
        path: list[int] = []
        for tok in new:
            found = children.get((cut, path[-1] if path else -1, tok))
            if found is None:
                break
            path.append(found)
        if len(current) and len(current) + len(new) - len(path) > max_nodes:
            packs.append(current)
            current, children, path = Pack(), {}, []
        for tok in new[len(path):]:
            parent = path[-1] if path else -1
            node = len(current)
            current.tokens.append(tok)
            current.parents.append(parent)
            current.positions.append(cut + len(path))
            current.cuts.append(cut)
            children[(cut, parent, tok)] = node
            path.append(node)
        current.paths[item] = path
    if len(current):
        packs.append(current)
    return packs
