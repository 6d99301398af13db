"""RedisTier against a real server: the lease protocol, versioned sets, one MGET per read, coalesced reads,
undecodable and oversized entries, clearing one namespace.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as redis

import tierstore
import tierstore.backends
from tierstore import MemoryStore
from tierstore.backends import Lease
from tierstore.tiers.entry import TOMBSTONE_VALUE

from _models import Blob, Customer
from _servers import REDIS_URL
from _tiers import random_prefix, redis_tier, with_params
from _tiers import redis_tier as _tier

pytestmark = pytest.mark.redis


async def test_lease_fill_and_invalidate(raw: redis.Redis) -> None:
    tier = await _tier()
    try:
        (first,) = await tier.get_many(["{t:1}:a"])
        assert isinstance(first, Lease) and first.token is not None
        assert await tier.get_many(["{t:1}:a"]) == [None]  # another reader holds the lease
        await tier.fill_many([("{t:1}:a", b"v1", first)], 60)
        assert await tier.get_many(["{t:1}:a"]) == [b"v1"]
        assert tier.stats.fills == 1

        await tier.invalidate_many(["{t:1}:a"])
        assert await raw.get(f"{tier.config.prefix}:{{t:1}}:a") == b"T"  # a tombstone, not a hole
        (second,) = await tier.get_many(["{t:1}:a"])
        assert isinstance(second, Lease)
        await tier.fill_many([("{t:1}:a", b"stale", first)], 60)  # an old lease: dropped
        assert tier.stats.fills_dropped == 1
        await tier.invalidate_many(["{t:1}:a"])
        await tier.fill_many([("{t:1}:a", b"stale", second)], 60)  # voided by the invalidation
        assert tier.stats.fills_dropped == 2
        (third,) = await tier.get_many(["{t:1}:a"])
        assert isinstance(third, Lease)
        await tier.fill_many([("{t:1}:a", b"v2", third)], 60)
        assert await tier.get_many(["{t:1}:a"]) == [b"v2"]
    finally:
        await tier.aclose()


async def test_empty_fill_releases_the_lease(raw: redis.Redis) -> None:
    tier = await redis_tier()
    try:
        (lease,) = await tier.get_many(["{t:1}:gone"])
        assert isinstance(lease, Lease)
        await tier.fill_many([("{t:1}:gone", b"", lease)], 60)
        assert await raw.exists(f"{tier.config.prefix}:{{t:1}}:gone") == 0
        (again,) = await tier.get_many(["{t:1}:gone"])
        assert isinstance(again, Lease)  # the next reader does not wait for a fill that will never come
    finally:
        await tier.aclose()


async def test_versioned_set_never_goes_back_and_respects_tombstones() -> None:
    tier = await redis_tier()
    try:
        k = "{t:1}:v"
        await tier.set_many([(k, b"two", 2)], 60)
        await tier.set_many([(k, b"one", 1)], 60)  # a slow writer's older version
        assert await tier.get_many([k]) == [b"two"]
        await tier.set_many([(k, b"three", 3)], 60)
        assert await tier.get_many([k]) == [b"three"]
        assert tier.stats.fills_dropped == 1

        await tier.invalidate_many([k])  # deleted: a late set must not resurrect it
        await tier.set_many([(k, b"four", 4)], 60)
        (after,) = await tier.get_many([k])
        assert isinstance(after, Lease)  # still deleted; this reader fills from the store (a marked lease)
        # A write meets the marked lease: its order against the delete is unknown (versions restart after a
        # delete), so the key is tombstoned instead — the reader's fill is dropped, the next reader fills.
        await tier.set_many([(k, b"five", 5)], 60)
        await tier.fill_many([(k, b"read-before", after)], 60)
        (again,) = await tier.get_many([k])
        assert isinstance(again, Lease)
        await tier.fill_many([(k, b"filled", again)], 60)  # a pinned entry: served, and no set lands on it
        assert await tier.get_many([k]) == [b"filled"]
        await tier.set_many([(k, b"late", 3)], 60)
        (gone,) = await tier.get_many([k])
        assert isinstance(gone, Lease)

        (lease,) = await tier.get_many(["{t:1}:w"])
        assert isinstance(lease, Lease)
        await tier.set_many([("{t:1}:w", b"written", 1)], 60)  # a write voids the reader's lease
        await tier.fill_many([("{t:1}:w", b"read-before", lease)], 60)
        assert await tier.get_many(["{t:1}:w"]) == [b"written"]
    finally:
        await tier.aclose()


async def test_get_many_is_one_round_trip_and_one_mget() -> None:
    tier = await redis_tier()
    try:
        keys = [f"{{t:{i % 7}}}:{i}" for i in range(100)]
        leases = await tier.get_many(keys)
        await tier.fill_many([(k, b"v" + k.encode(), lz) for k, lz in zip(keys, leases, strict=True)
                              if isinstance(lz, Lease)], 60)
        before = tier.stats.round_trips
        got = await tier.get_many(keys)
        assert got == [b"v" + k.encode() for k in keys]
        assert tier.stats.round_trips - before == 1
    finally:
        await tier.aclose()


async def test_concurrent_gets_are_coalesced() -> None:
    store = MemoryStore()
    prefix = random_prefix()
    async with tierstore.connect(store, [with_params(REDIS_URL, prefix)]) as db:
        repo = db.repository(Customer)
        await repo.put_many([Customer(f"c{i}", f"n{i}") for i in range(64)], check_version=False)  # one batch
        await repo.get_many([f"c{i}" for i in range(64)])  # warm
        tier = db.cache.tiers[0]
        await repo.get("c0")  # something in flight makes the next tick's readers merge
        before = tier.stats.round_trips
        got = await asyncio.gather(*(repo.get(f"c{i}") for i in range(64)))
        assert [g.name if g else None for g in got] == [f"n{i}" for i in range(64)]
        spent = tier.stats.round_trips - before
        assert spent <= 3, spent  # the first reader's GET, then one MGET for the other 63
        assert tier.stats.coalesced_batches >= 1
        assert tier.stats.coalesced_max_keys >= 32
        assert store.stats.round_trips == 2  # put_many and the warming get_many


async def test_undecodable_entries_are_counted_and_replaced(raw: redis.Redis) -> None:
    store = MemoryStore()
    prefix = random_prefix()
    async with tierstore.connect(store, [with_params(REDIS_URL, prefix)]) as db:
        repo = db.repository(Customer)
        await repo.put(Customer("c1", "real"))
        await repo.put(Customer("c2", "real"))
        ck1 = tierstore.backends.schema_of(Customer).cache_key(("c1",))
        ck2 = tierstore.backends.schema_of(Customer).cache_key(("c2",))
        await raw.set(f"{prefix}:{ck1}", b"D" + b"0" * 16 + b"\xa7garbage")
        await raw.set(f"{prefix}:{ck2}", b"not ours at all")
        got = await repo.get_many(["c1", "c2"])
        assert [g.name if g else None for g in got] == ["real", "real"]
        tier = db.cache.tiers[0]
        assert tier.stats.undecodable == 2
        assert await raw.get(f"{prefix}:{ck1}") == b"T"  # deleted (tombstoned), not left to fail again
        assert [g.name if g else None for g in await repo.get_many(["c1", "c2"])] == ["real", "real"]
        assert tier.stats.undecodable == 2


async def test_oversized_values_are_not_cached(raw: redis.Redis) -> None:
    store = MemoryStore()
    prefix = random_prefix()
    async with tierstore.connect(store, [with_params(REDIS_URL, prefix, max_value="1KiB")]) as db:
        blobs = db.repository(Blob)
        await blobs.put(Blob(1, b"x" * 4096))
        await blobs.put(Blob(2, b"y" * 10))
        for _ in range(3):
            got = await blobs.get_many([1, 2])
            assert [len(b.data) if b else None for b in got] == [4096, 10]
        tier = db.cache.tiers[0]
        assert tier.stats.oversized >= 1
        big = tierstore.backends.schema_of(Blob).cache_key((1,))
        # No value and no lease left behind: at most the tombstone of the put's invalidation, which outlives
        # the write briefly so that a set from before it cannot land.
        assert await raw.get(f"{prefix}:{big}") in (None, TOMBSTONE_VALUE)
        assert tier.stats.lease_waits == 0


