"""``ShardedTier`` over MemoryTiers: placement by rendezvous hashing on the partition, caching through a
database, per-node fail-open with invalidation replay, and its config."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

import tierstore
from tierstore import ConfigError, MemoryStore, MemoryTier, ShardedTier, ShardedTierConfig, TierError
from tierstore.backends import CacheTier, Lease, schema_of
from tierstore.tiers.sharded import node_tag

from _models import Customer, Order

CUSTOMER = schema_of(Customer)
ORDER = schema_of(Order)


def test_node_tag() -> None:
    assert node_tag("{orders:c1}:o1") == "orders:c1"
    assert node_tag("{orders:c1}") == "orders:c1"
    assert node_tag("plain") == "plain"
    assert node_tag("{}x") == "{}x"


def test_rendezvous_placement_is_stable_and_by_partition() -> None:
    nodes = {f"n{i}": MemoryTier() for i in range(3)}
    t1 = ShardedTier(nodes)
    t2 = ShardedTier(dict(reversed(list(nodes.items()))))  # order does not matter, names do
    keys = [ORDER.cache_key((f"c{i}", f"o{j}")) for i in range(200) for j in range(3)]
    assert [t1.node_of(k) for k in keys] == [t2.node_of(k) for k in keys]
    for i in range(200):
        assert len({t1.node_of(ORDER.cache_key((f"c{i}", f"o{j}"))) for j in range(3)}) == 1
    counts = {n: 0 for n in nodes}
    for k in keys:
        counts[t1.node_of(k)] += 1
    assert min(counts.values()) > len(keys) / 3 * 0.7
    # Adding a node moves only keys to the new node.
    t3 = ShardedTier({**nodes, "n3": MemoryTier()})
    moved = [k for k in keys if t3.node_of(k) != t1.node_of(k)]
    assert moved and all(t3.node_of(k) == "n3" for k in moved)
    assert len(moved) < len(keys) / 4 * 1.4


async def test_sharded_tier_caches_through_a_database() -> None:
    nodes = {"n0": MemoryTier(), "n1": MemoryTier()}
    tier = ShardedTier(nodes)
    assert isinstance(tier, CacheTier)
    store = MemoryStore()
    async with tierstore.connect(store, [tier]) as db:
        repo = db.repository(Customer)
        ids = [f"c{i}" for i in range(30)]
        await repo.put_many([Customer(i, "x") for i in ids])
        await repo.get_many(ids)
        assert len(nodes["n0"]) > 0 and len(nodes["n1"]) > 0
        assert len(nodes["n0"]) + len(nodes["n1"]) == 30
        store.stats.reset()
        assert all(await repo.get_many(ids))
        assert store.stats.round_trips == 0
        assert tier.stats.hits == 30
        await repo.put(Customer("c1", "new", version=1))
        assert (await repo.get("c1")).name == "new"  # type: ignore[union-attr]


class FlakyTier(MemoryTier):
    """A node that can be switched off (a stand-in for a node outage, to check per-node fail-open)."""

    down = False

    def _check(self) -> None:
        if self.down:
            raise TierError("node down", backend="memory")

    async def get_many(self, keys: Sequence[str]) -> list[bytes | Lease | None]:
        self._check()
        return await super().get_many(keys)

    async def fill_many(self, entries: Sequence[tuple[str, bytes, Lease]], ttl: float) -> None:
        self._check()
        await super().fill_many(entries, ttl)

    async def invalidate_many(self, keys: Sequence[str]) -> None:
        self._check()
        await super().invalidate_many(keys)


async def test_one_node_down_fails_open_and_replays_invalidations() -> None:
    good, flaky = MemoryTier(), FlakyTier()
    tier = ShardedTier({"good": good, "flaky": flaky})
    store = MemoryStore()
    async with tierstore.connect(store, [tier]) as db:
        repo = db.repository(Customer)
        ids = [f"c{i}" for i in range(30)]
        on_flaky = [i for i in ids if tier.node_of(CUSTOMER.cache_key((i,))) == "flaky"]
        await repo.put_many([Customer(i, "v1") for i in ids])
        await repo.get_many(ids)  # fill both nodes
        flaky.down = True
        store.stats.reset()
        got = await repo.get_many(ids)
        assert all(g is not None for g in got)
        assert store.stats.reads == len(on_flaky)  # the good node still served its keys
        # A write while the node is down: its invalidation is kept, not lost.
        await repo.put(Customer(on_flaky[0], "v2", version=1))
        assert tier.stats.errors > 0
        flaky.down = False
        # The node still holds v1, but the pending invalidation is replayed before it is read.
        assert (await repo.get(on_flaky[0])).name == "v2"  # type: ignore[union-attr]
        assert tier.stats.invalidations_replayed >= 1


async def test_sharded_tier_config_builds_nodes() -> None:
    cfg = ShardedTierConfig(nodes={"a": "memory://", "b": "memory://?max_items=10"})
    tier = cfg.build()
    assert set(tier.nodes) == {"a", "b"} and tier.local
    async with tierstore.connect("memory://", [cfg]) as db:
        repo = db.repository(Customer)
        await repo.put(Customer("c1", "x"))
        assert await repo.get("c1") is not None
    with pytest.raises(ConfigError):
        ShardedTier({})
