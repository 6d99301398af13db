"""The invalidation channel (tiers/redis/pubsub.py) keeps other processes' in-process tiers coherent: writes
evict L1 entries, a clear flushes them, and while the channel is down L1 is flushed and not filled.
"""

from __future__ import annotations

import pytest

import tierstore
from tierstore import MemoryStore, MemoryTier
from tierstore.testing.proxy import FaultProxy

from _models import Customer
from _servers import REDIS_CLUSTER_URL, REDIS_URL, endpoints, require
from _tiers import eventually, random_prefix, with_params

pytestmark = pytest.mark.redis


@pytest.mark.parametrize(
    "base", [REDIS_URL, pytest.param(REDIS_CLUSTER_URL, marks=pytest.mark.redis_cluster)], ids=["redis", "cluster"]
)
async def test_l1_entries_are_evicted_by_other_processes_writes(base: str) -> None:
    require(base, "redis")
    store = MemoryStore()
    prefix = random_prefix()
    urls = ["memory://", with_params(base, prefix)]
    async with tierstore.connect(store, urls) as a, tierstore.connect(store, urls) as b:
        ra, rb = a.repository(Customer), b.repository(Customer)
        await ra.put(Customer("k", "v1"), check_version=False)
        assert (await ra.get("k")).name == "v1"  # type: ignore[union-attr]
        assert (await rb.get("k")).name == "v1"  # type: ignore[union-attr]
        l1 = a.cache.l1
        assert l1 is not None and len(l1) == 1 and a.cache.coherence is not None
        assert a.cache.coherence.connected
        before = store.stats.reads
        assert (await ra.get("k")).name == "v1"  # type: ignore[union-attr]
        assert store.stats.reads == before and l1.stats.hits >= 1  # an L1 hit
        await rb.put(Customer("k", "v2"), check_version=False)

        async def fresh() -> bool:
            got = await ra.get("k")
            return got is not None and got.name == "v2"

        await eventually(fresh)
        assert l1.stats.coherence_evictions >= 1

        await ra.get("k")
        assert len(l1) == 1
        await b.cache.tiers[-1].clear()  # another process clears the namespace: every L1 is flushed

        async def flushed() -> bool:
            return len(l1) == 0

        await eventually(flushed)
        assert l1.stats.coherence_flushes == 1


@pytest.mark.parametrize("fault", ["blackhole", "cut"])
async def test_l1_is_flushed_and_not_filled_while_the_channel_is_down(fault: str) -> None:
    require(REDIS_URL, "redis")
    host, port = endpoints(REDIS_URL)[0]
    store = MemoryStore()
    prefix = random_prefix()
    async with FaultProxy(host, port) as proxy:
        urls = ["memory://", f"redis://127.0.0.1:{proxy.port}/0?prefix={prefix}&ping=100ms&timeout=100ms"]
        async with tierstore.connect(store, urls) as a:
            repo = a.repository(Customer)
            await repo.put(Customer("k", "v1"), check_version=False)
            await repo.get("k")
            coherence = a.cache.coherence
            l1 = a.cache.l1
            assert coherence is not None and l1 is not None and coherence.connected and len(l1) == 1

            if fault == "blackhole":
                proxy.blackhole()  # the channel hangs: only the PING can tell
            else:
                proxy.drop()  # connections are reset, and reconnecting fails for now
                await proxy.cut()

            async def dropped() -> bool:
                return not coherence.connected

            await eventually(dropped)
            assert len(l1) == 0  # flushed at the drop
            await repo.get("k")
            assert len(l1) == 0  # and not filled while messages could be missed
            proxy.reset()
            await proxy.cut()  # drop the hung connections; everything reconnects

            async def back() -> bool:
                return coherence.connected

            await eventually(back)
            await repo.get("k")
            assert len(l1) == 1
            assert l1.stats.coherence_drops >= 1 and l1.stats.coherence_subscribes >= 2


async def test_no_coherence_channel_when_disabled() -> None:
    urls = ["memory://", with_params(REDIS_URL, random_prefix(), coherence="false")]
    async with tierstore.connect(MemoryStore(), urls) as db:
        assert db.cache.coherence is None
        repo = db.repository(Customer)
        await repo.put(Customer("k", "v"), check_version=False)
        await repo.get("k")
        assert isinstance(db.cache.tiers[0], MemoryTier) and len(db.cache.tiers[0]) == 1


async def test_a_channel_reset_is_a_drop_even_when_reconnecting_would_succeed() -> None:
    """No silent resubscribe: messages sent while the connection was down are lost, so L1 must be flushed."""
    require(REDIS_URL, "redis")
    host, port = endpoints(REDIS_URL)[0]
    async with FaultProxy(host, port) as proxy:
        urls = ["memory://", f"redis://127.0.0.1:{proxy.port}/0?prefix={random_prefix()}&ping=100ms"]
        async with tierstore.connect(MemoryStore(), urls) as a:
            repo = a.repository(Customer)
            await repo.put(Customer("k", "v1"), check_version=False)
            await repo.get("k")
            l1 = a.cache.l1
            assert l1 is not None and len(l1) == 1
            await proxy.cut()  # every connection reset; new ones are accepted at once

            async def dropped_and_back() -> bool:
                return l1.stats.coherence_drops >= 1 and l1.stats.coherence_subscribes >= 2

            await eventually(dropped_and_back)
            assert len(l1) == 0
