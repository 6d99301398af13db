"""Stampede protection: 100 concurrent readers of a just-invalidated hot key cause exactly 1 store read.

In one process the repository's single flight and the tier's coalescing merge the readers; across processes
(several databases on one shared cache) the lease lets one reader fill while the others wait and re-read.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

import tierstore
from tierstore import CachePolicy, MemoryStore, TierError

from _models import Customer
from _servers import tier_url

TIERS = [
    pytest.param(("redis",), id="redis", marks=pytest.mark.redis),
    pytest.param(("redis_cluster",), id="redis_cluster", marks=pytest.mark.redis_cluster),
    pytest.param(("memcached",), id="memcached", marks=pytest.mark.memcached),
    pytest.param(("memory", "redis"), id="memory+redis", marks=pytest.mark.redis),
    pytest.param(("memory", "memcached"), id="memory+memcached", marks=pytest.mark.memcached),
]
# Waiters re-read for up to 25 x 20 ms: far longer than the filler needs, even on a loaded machine.
PATIENT = CachePolicy(lease_wait=0.02, lease_retries=25)


async def _open(store: MemoryStore, tiers: tuple[str, ...], prefix: str) -> tierstore.Database:
    return await tierstore.connect(store, [tier_url(t, prefix) for t in tiers], policy=PATIENT).open()


@pytest.mark.parametrize("tiers", TIERS)
async def test_herd_in_one_process_reads_the_store_once(tiers: tuple[str, ...]) -> None:
    store = MemoryStore(latency=0.005)
    db = await _open(store, tiers, f"herd{uuid.uuid4().hex[:10]}")
    try:
        repo = db.repository(Customer)
        await repo.put(Customer("hot", "v1"), check_version=False)
        await repo.get("hot")
        await repo.put(Customer("hot", "v2"), check_version=False)  # just invalidated
        before = store.stats.reads
        got = await asyncio.gather(*(repo.get("hot") for _ in range(100)))
        assert all(g is not None and g.name == "v2" for g in got)
        assert store.stats.reads - before == 1
    finally:
        await db.aclose()


@pytest.mark.parametrize("tiers", TIERS)
async def test_herd_of_batch_readers_reads_the_store_once(tiers: tuple[str, ...]) -> None:
    """get_many has no repository single flight: the coalescer and the lease carry the herd."""
    store = MemoryStore(latency=0.005)
    db = await _open(store, tiers, f"herd{uuid.uuid4().hex[:10]}")
    try:
        repo = db.repository(Customer)
        await repo.put(Customer("hot", "v1"), check_version=False)
        before = store.stats.reads
        got = await asyncio.gather(*(repo.get_many(["hot"]) for _ in range(100)))
        assert all(g[0] is not None and g[0].name == "v1" for g in got)
        assert store.stats.reads - before == 1
        shared = db.cache.tiers[-1]
        # The other readers were merged into the filler's request (same loop tick), waited on its lease, or
        # read its fill: which one depends on scheduling; in every case the tier was filled once.
        assert shared.stats.fills == 1
        assert shared.stats.lease_waits + shared.stats.coalesced_calls + shared.stats.hits >= 1
    finally:
        await db.aclose()


@pytest.mark.parametrize("tiers", TIERS)
async def test_herd_across_processes_reads_the_store_once(tiers: tuple[str, ...]) -> None:
    """Four databases (four processes' worth of tiers, one shared cache namespace), 25 readers each."""
    store = MemoryStore(latency=0.01)
    prefix = f"herd{uuid.uuid4().hex[:10]}"
    dbs = [await _open(store, tiers, prefix) for _ in range(4)]
    try:
        repos = [db.repository(Customer) for db in dbs]
        await repos[0].put(Customer("hot", "v1"), check_version=False)
        await repos[2].get("hot")  # (warmed by the writer: L1 coherence is tested on its own)
        await repos[2].put(Customer("hot", "v2"), check_version=False)  # just invalidated
        before = store.stats.reads
        got = await asyncio.gather(*(repos[i % 4].get("hot") for i in range(100)))
        assert all(g is not None and g.name == "v2" for g in got)
        assert store.stats.reads - before == 1
        waits = sum(db.cache.tiers[-1].stats.lease_waits for db in dbs)
        assert waits >= 3  # every process but the filler's waited for the fill
    finally:
        for db in dbs:
            await db.aclose()


class _Stalling:
    """Wraps a tier; while ``stall`` is set, get_many waits for ``go`` (or fails when ``fail`` is set)."""

    local = False

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.stats = inner.stats
        self.stall = False
        self.fail = False
        self.go = asyncio.Event()

    async def open(self) -> None:
        await self.inner.open()

    async def get_many(self, keys: Any) -> Any:
        if self.stall:
            await self.go.wait()
            if self.fail:
                raise TierError("injected", backend="test")
        return await self.inner.get_many(keys)

    async def fill_many(self, entries: Any, ttl: float) -> None:
        await self.inner.fill_many(entries, ttl)

    async def set_many(self, entries: Any, ttl: float) -> None:
        await self.inner.set_many(entries, ttl)

    async def invalidate_many(self, keys: Any) -> None:
        await self.inner.invalidate_many(keys)

    async def clear(self) -> None:
        await self.inner.clear()

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.redis
@pytest.mark.parametrize("how", ["leader-fails", "leader-cancelled"])
async def test_a_failed_or_cancelled_coalesced_read_strands_no_one(how: str) -> None:
    from tierstore.config import tier_config

    inner = tier_config(tier_url("redis", f"herd{uuid.uuid4().hex[:10]}")).build()
    tier = _Stalling(inner)
    store = MemoryStore()
    async with tierstore.connect(store, [tier]) as db:
        repo = db.repository(Customer)
        await repo.put_many([Customer(f"c{i}", f"n{i}") for i in range(10)])
        await repo.get_many([f"c{i}" for i in range(10)])
        tier.stall = True
        first = asyncio.create_task(repo.get("c0"))  # in flight: the next tick's readers coalesce
        await asyncio.sleep(0.01)
        readers = [asyncio.create_task(repo.get(f"c{i}")) for i in range(1, 10)]
        await asyncio.sleep(0.01)  # the leader has sent the merged read, which stalls
        if how == "leader-cancelled":
            readers[0].cancel()  # the first of them led the batch
        tier.fail = how == "leader-fails"
        tier.go.set()
        results = await asyncio.wait_for(asyncio.gather(first, *readers, return_exceptions=True), 5)
        if how == "leader-cancelled":
            assert isinstance(results[1], asyncio.CancelledError)
            results = [results[0], *results[2:]]
        assert all(isinstance(r, Customer) for r in results), results  # fell through to the store
        if how == "leader-fails":
            # The two failed requests (the first read and the merged one) count once each, not per caller.
            assert inner.stats.errors == 2 and inner.stats.tier_breaker == "closed"
    await inner.aclose()


STALE_TIERS = [
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("redis_cluster", marks=pytest.mark.redis_cluster),
    pytest.param("memcached", marks=pytest.mark.memcached),
]


class _HeldReads:
    """Holds every store read of the wrapped store until released (and counts the reads that arrived)."""

    def __init__(self, store: MemoryStore) -> None:
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()
        for name in ("get", "get_many"):
            real = getattr(store, name)

            async def held(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
                self.arrived.set()
                await self.release.wait()
                return await _real(*args, **kwargs)

            setattr(store, name, held)  # instance attribute: only this store is held

    def hold(self) -> None:
        self.arrived.clear()
        self.release.clear()


@pytest.mark.parametrize("backend", STALE_TIERS)
async def test_stale_entries_are_served_while_one_reader_refreshes(backend: str) -> None:
    """``stale=``: past its TTL an entry is still served (no waiting) while exactly one reader refreshes it;
    an invalidation is never served stale."""
    from tierstore.backends import schema_of

    store = MemoryStore()
    gate = _HeldReads(store)
    prefix = f"herd{uuid.uuid4().hex[:10]}"
    policy = CachePolicy(ttl=1.0, ttl_jitter=0, lease_wait=0.02, lease_retries=25)
    url = tier_url(backend, prefix) + "&stale=30s"
    dbs = [await tierstore.connect(store, [url], policy=policy).open() for _ in range(4)]
    try:
        repos = [db.repository(Customer) for db in dbs]
        await repos[0].put(Customer("hot", "v1"), check_version=False)
        assert (await repos[0].get("hot")).name == "v1"  # type: ignore[union-attr]
        # The item changes in the store behind the cache's back: only the TTL bounds how long v1 is served.
        await store.put(schema_of(Customer), Customer("hot", "v2", version=1))
        await asyncio.sleep(1.2)
        before = store.stats.reads
        gate.hold()  # the refresh's store read waits until the other processes' readers have been answered
        tasks = [asyncio.create_task(repos[i % 4].get("hot")) for i in range(100)]
        await asyncio.wait_for(gate.arrived.wait(), 10)
        pending: set[asyncio.Task[Any]] = set(tasks)
        while len(pending) > 25:  # the three processes that did not win the refresh answer from the stale entry
            done, pending = await asyncio.wait(pending, timeout=10, return_when=asyncio.FIRST_COMPLETED)
            assert done, f"{len(pending)} readers are still waiting: more than the refresher's process"
        gate.release.set()
        got = await asyncio.wait_for(asyncio.gather(*tasks), 10)
        names = [g.name if g else None for g in got]
        assert store.stats.reads - before == 1  # the one refresh
        # The refresher's own process joins its read (single flight) and gets v2; the three others get v1.
        assert names.count("v1") == 75 and names.count("v2") == 25
        tiers = [db.cache.tiers[0] for db in dbs]
        assert sum(t.stats.lease_waits for t in tiers) == 0  # nobody waited
        assert sum(t.stats.refreshes for t in tiers) == 1
        assert sum(t.stats.stale_hits for t in tiers) >= 1
        for repo in repos:
            assert (await repo.get("hot")).name == "v2"  # type: ignore[union-attr]

        # A write through tierstore invalidates: never stale.
        await repos[1].put(Customer("hot", "v3"), check_version=False)
        for repo in repos:
            assert (await repo.get("hot")).name == "v3"  # type: ignore[union-attr]
    finally:
        for db in dbs:
            await db.aclose()
