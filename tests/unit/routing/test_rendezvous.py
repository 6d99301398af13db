"""Rendezvous hashing of cache nodes: stable per partition, spread, and a new node takes only its share."""

from __future__ import annotations

import pytest

from tierstore import ConfigError
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


def test_the_choice_depends_on_node_names_not_their_order() -> None:
    forward = Rendezvous(["a", "b", "c"])
    backward = Rendezvous(["c", "b", "a"])
    for i in range(500):
        key = f"{{t:p{i}}}"
        assert forward.names[forward.index(key)] == backward.names[backward.index(key)]


def test_one_node_and_no_node() -> None:
    assert Rendezvous(["only"]).index("{t:x}") == 0
    with pytest.raises(ConfigError):
        Rendezvous([])
    assert repr(Rendezvous(["a", "b"])) == "Rendezvous(['a', 'b'])"


def test_the_memo_stays_bounded() -> None:
    r = Rendezvous(["a", "b"])
    first = [r.index(f"{{t:p{i}}}") for i in range(70_000)]  # more partitions than the memo holds
    assert len(r._cache) <= 65_536
    assert [r.index(f"{{t:p{i}}}") for i in range(70_000)] == first
