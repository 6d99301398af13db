"""Rendezvous hashing (routing/rendezvous.py): stable across instances, one node per partition, an even
spread, and adding a node moves only the keys it wins (about 1/n)."""

from __future__ import annotations

from tierstore.model.cachekey import partition_tag
from tierstore.routing import Rendezvous


def test_rendezvous_is_stable_and_moves_about_one_nth() -> None:
    assert partition_tag("{orders:c1}:o1") == "orders:c1" and partition_tag("plain") == "plain"
    three = Rendezvous(["a:1", "b:1", "c:1"])
    four = Rendezvous(["a:1", "b:1", "c:1", "d:1"])
    keys = [f"{{t:p{i}}}:x" for i in range(3000)]
    placed = [three.index(k) for k in keys]
    assert placed == [Rendezvous(["a:1", "b:1", "c:1"]).index(k) for k in keys]  # stable across instances
    assert all(three.index(f"{{t:p{i}}}:other") == placed[i] for i in range(3000))  # per partition
    counts = [placed.count(j) for j in range(3)]
    assert min(counts) > 800  # spread
    moved = sum(1 for k, p in zip(keys, placed, strict=True) if four.index(k) != p)
    assert 0.15 < moved / len(keys) < 0.35  # about 1/4 moves to the new node, nothing else moves
    assert all(four.index(k) in (p, 3) for k, p in zip(keys, placed, strict=True))
