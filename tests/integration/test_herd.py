"""Stampede protection: 100 concurrent readers of a just-invalidated hot key cause exactly 1 store read.

In one process the repository's single flight and the tier's coalescing merge the readers; across processes
(several databases on one shared cache) the lease lets one reader fill while the others wait and re-read.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

import tierstore
from tierstore import CachePolicy, MemoryStore

from _models import Customer
from conftest import tier_url

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
        await repo.put(Customer("hot", "v1"))
        await repo.get("hot")
        await repo.put(Customer("hot", "v2"))  # just invalidated
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
        await repo.put(Customer("hot", "v1"))
        before = store.stats.reads
        got = await asyncio.gather(*(repo.get_many(["hot"]) for _ in range(100)))
        assert all(g[0] is not None and g[0].name == "v1" for g in got)
        assert store.stats.reads - before == 1
        shared = db.cache.tiers[-1]
        assert shared.stats.lease_waits >= 1  # the others waited for the one fill
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
        await repos[0].put(Customer("hot", "v1"))
        await repos[2].get("hot")  # (warmed by the writer: L1 coherence is tested on its own)
        await repos[2].put(Customer("hot", "v2"))  # just invalidated
        before = store.stats.reads
        got = await asyncio.gather(*(repos[i % 4].get("hot") for i in range(100)))
        assert all(g is not None and g.name == "v2" for g in got)
        assert store.stats.reads - before == 1
        waits = sum(db.cache.tiers[-1].stats.lease_waits for db in dbs)
        assert waits >= 3  # every process but the filler's waited for the fill
    finally:
        for db in dbs:
            await db.aclose()
