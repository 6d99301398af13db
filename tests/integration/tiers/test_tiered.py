"""The generic tiered path on the in-process backends: single flight, negative caching, write-through,
TTL jitter, undecodable entries, L1 bounds through the repository."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import tierstore
from tierstore import CachePolicy, MemoryStore, MemoryTier

from _models import Blob, Customer, Order


async def test_single_flight_one_store_read_for_a_herd() -> None:
    store = MemoryStore(latency=0.01)
    async with tierstore.connect(store, [MemoryTier()]) as db:
        customers = db.repository(Customer)
        await customers.put(Customer("hot", "x"), check_version=False)
        before = store.stats.round_trips
        results = await asyncio.gather(*(customers.get("hot") for _ in range(100)))
        assert all(r is not None and r.name == "x" for r in results)
        assert store.stats.round_trips - before == 1


async def test_a_get_after_a_write_does_not_join_an_older_flight() -> None:
    store = MemoryStore(latency=0.02)
    async with tierstore.connect(store, [MemoryTier()]) as db:
        customers = db.repository(Customer)
        await customers.put(Customer("k", "old"), check_version=False)
        early = asyncio.create_task(customers.get("k"))
        await asyncio.sleep(0.005)  # the early read is in flight
        store.latency = 0
        await customers.put(Customer("k", "new"), check_version=False)
        late = await customers.get("k")  # must not join the early flight
        assert late is not None and late.name == "new"
        await early
        again = await customers.get("k")  # the early read's fill was dropped by the void lease
        assert again is not None and again.name == "new"
        assert db.cache.tiers[0].stats.fills_dropped >= 1


async def test_negative_caching() -> None:
    store = MemoryStore()
    async with tierstore.connect(store, ["memory://"], policy=CachePolicy(negative_ttl=60)) as db:
        customers = db.repository(Customer)
        assert await customers.get("ghost") is None
        before = store.stats.round_trips
        for _ in range(5):
            assert await customers.get("ghost") is None
        assert store.stats.round_trips == before
        await customers.put(Customer("ghost", "now real"), check_version=False)
        got = await customers.get("ghost")
        assert got is not None and got.name == "now real"
        assert (await customers.get_many(["nobody", "ghost"]))[1] is not None


async def test_without_negative_caching_misses_reach_the_store() -> None:
    store = MemoryStore()
    async with tierstore.connect(store, ["memory://"]) as db:
        customers = db.repository(Customer)
        await customers.get("ghost")
        before = store.stats.round_trips
        await customers.get("ghost")
        assert store.stats.round_trips == before + 1


async def test_write_through_fills_on_write() -> None:
    store = MemoryStore()
    async with tierstore.connect(store, ["memory://"], policy=CachePolicy(write_mode="write_through")) as db:
        orders = db.repository(Order)
        await orders.put(Order("c1", "o1", 5), check_version=False)
        before = store.stats.round_trips
        got = await orders.get("c1", "o1")
        assert got is not None and got.total_cents == 5 and got.version == 1
        assert store.stats.round_trips == before  # served by the tier the write filled
        await orders.put(Order("c1", "o1", 6), check_version=False)
        assert (await orders.get("c1", "o1")).total_cents == 6  # type: ignore[union-attr]
        await orders.delete("c1", "o1")
        assert await orders.get("c1", "o1") is None


def test_ttl_jitter_bounds() -> None:
    policy = CachePolicy(ttl=100, ttl_jitter=0.2)
    values = [policy.jittered(100) for _ in range(2000)]
    assert min(values) >= 80 and max(values) <= 100 and max(values) - min(values) > 10
    with pytest.raises(tierstore.ConfigError):
        CachePolicy(ttl_jitter=1.5)
    with pytest.raises(tierstore.ConfigError):
        CachePolicy(write_mode="sometimes")  # type: ignore[arg-type]


async def test_immutable_entities_keep_the_decoded_object() -> None:
    async with tierstore.connect("memory://", ["memory://"]) as db:
        blobs = db.repository(Blob)
        await blobs.put(Blob(1, b"x", (1,)))
        first = await blobs.get(1)
        for _ in range(3):  # hot after two hits
            await blobs.get(1)
        assert first is not None and await blobs.get(1) is await blobs.get(1)


async def test_l1_bounds_hold_through_the_repository() -> None:
    tier = MemoryTier(max_items=20)
    async with tierstore.connect("memory://", [tier]) as db:
        customers = db.repository(Customer)
        await customers.put_many([Customer(f"c{i}", "n") for i in range(100)])
        for i in range(100):
            assert await customers.get(f"c{i}") is not None
        assert len(tier) <= 20


async def test_closed_database_refuses_use() -> None:
    db = tierstore.connect("memory://")
    async with db:
        pass
    await db.aclose()  # idempotent
    with pytest.raises(tierstore.TierstoreError):
        db.repository(Customer)
    with pytest.raises(tierstore.TierstoreError):
        await db.open()


async def test_copies_of_cached_flat_entities_are_independent() -> None:
    async with tierstore.connect("memory://", ["memory://"]) as db:
        orders = db.repository(Order)
        await orders.put(Order("c1", "o1", 5), check_version=False)
        assert orders.schema.flat and not orders.schema.immutable
        for _ in range(4):  # hot: the tier now keeps the decoded object
            await orders.get("c1", "o1")
        entry = db.cache.l1.entry(orders.schema.cache_key(("c1", "o1")))  # type: ignore[union-attr]
        assert entry is not None and entry.obj is not None
        first = await orders.get("c1", "o1")
        second = await orders.get("c1", "o1")
        assert first is not None and second is not None and first is not second
        first.total_cents = 999
        Order.customer.set(first, Customer("c1", "Ann"))
        third = (await orders.get_many([("c1", "o1")]))[0]
        assert third is not None and third.total_cents == 5
        assert not Order.customer.is_loaded(third)


class _SuspendingStore(MemoryStore):
    """A subclass may override a call with one that awaits: it counts as suspending."""


@pytest.mark.parametrize(
    ("store", "tasks"), [(MemoryStore(), 0), (MemoryStore(latency=0.001), 1), (_SuspendingStore(), 1)]
)
async def test_a_write_runs_in_a_task_of_its_own_only_when_a_layer_can_suspend(store: MemoryStore, tasks: int) -> None:
    """Every layer in-process: a write (or a transaction) and its maintenance run inline (no task per write,
    which costs a loop turn on 3.11); a store that can suspend keeps the task that makes it cancellation-safe."""
    async with tierstore.connect(store, [MemoryTier()]) as db:
        customers = db.repository(Customer)
        await customers.put(Customer("k", "v0"), check_version=False)
        spawned: list[Any] = []
        spawn = db.cache.spawn

        def counting(work: Any) -> Any:
            spawned.append(work)
            return spawn(work)

        db.cache.spawn = counting  # type: ignore[method-assign]
        try:
            await customers.put(Customer("k", "v1"), check_version=False)
            async with db.transaction() as tx:
                tx.put(Customer("t", "v1"))
        finally:
            del db.cache.spawn
        assert len(spawned) == 2 * tasks
        got = await customers.get("k")
        assert got is not None and got.name == "v1"


class _Alternating:
    """A network-like tier (coalesced, with a breaker) over an in-process one, whose reads fail every other
    time (``fail_every=2``) or always (``fail_every=1``)."""

    local = False

    def __init__(self, fail_every: int) -> None:
        self._inner = MemoryTier()
        self.fail_every = fail_every
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        if name == "read":  # not an in-process tier: the repository must not read it synchronously
            raise AttributeError(name)
        return getattr(self._inner, name)

    async def get_many(self, keys: Any) -> Any:
        self.reads += 1
        if self.reads % self.fail_every == 0:
            raise ConnectionError("down")
        return await self._inner.get_many(keys)


@pytest.mark.parametrize(("fail_every", "opens"), [(2, False), (1, True)])
async def test_the_breaker_opens_on_consecutive_failures_of_single_gets_only(fail_every: int, opens: bool) -> None:
    tier = _Alternating(fail_every)
    policy = CachePolicy(breaker_failures=2, breaker_cooldown=60)
    async with tierstore.connect(MemoryStore(), [tier], policy=policy) as db:  # type: ignore[list-item]
        customers = db.repository(Customer)
        await customers.put(Customer("k", "x"), check_version=False)
        for _ in range(6):
            got = await customers.get("k")  # fails open: a failed tier read is a miss, the store answers
            assert got is not None and got.name == "x"
        assert db.cache.l1 is None and tier.reads == (2 if opens else 6)  # an open breaker is not read
        assert (db.cache.breaker_state(tier) == "open") is opens  # type: ignore[arg-type]


@pytest.mark.parametrize("tier", ["in-process", "network-like"])
async def test_get_many_answers_repeats_and_odd_keys_in_request_order(tier: str) -> None:
    tiers: list[Any] = [MemoryTier()] if tier == "in-process" else [_Alternating(fail_every=10**9)]
    async with tierstore.connect(MemoryStore(), tiers) as db:
        orders = db.repository(Order)
        await orders.put_many([Order("c1", "o1", 1), Order("c 2", "o/2", 2)], check_version=False)
        keys = [("c1", "o1"), ("c 2", "o/2"), ("c1", "nope"), ("c1", "o1"), ("c 2", "o/2")]
        for _ in range(2):  # cold, then from the tier
            got = await orders.get_many(iter(keys))
            assert [o.total_cents if o else None for o in got] == [1, 2, None, 1, 2]
            assert got[0] is not None and got[3] is not None and got[0] == got[3]
        assert await orders.get_many([]) == []
        with pytest.raises(tierstore.ValidationError):
            await orders.get_many([("c1", "o1"), ("c1",)])


async def test_a_batch_of_hits_with_a_negative_entry_and_foreign_bytes_is_served_right() -> None:
    tier = _Alternating(fail_every=10**9)
    async with tierstore.connect(MemoryStore(), [tier], policy=CachePolicy(negative_ttl=60)) as db:  # type: ignore[list-item]
        customers = db.repository(Customer)
        await customers.put_many([Customer(f"c{i}", f"n{i}") for i in range(4)], check_version=False)
        keys = ["c0", "c1", "ghost", "c2", "c3"]
        await customers.get_many(keys)  # cold: fills every key, "ghost" as a cached "not found"
        assert [c.name if c else None for c in await customers.get_many(keys)] == ["n0", "n1", None, "n2", "n3"]
        tier._inner.store(customers.schema.cache_key(("c1",)), b"foreign bytes")
        undecodable = tier.stats.undecodable
        assert [c.name if c else None for c in await customers.get_many(keys)] == ["n0", "n1", None, "n2", "n3"]
        assert tier.stats.undecodable == undecodable + 1
