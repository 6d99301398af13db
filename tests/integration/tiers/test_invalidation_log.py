"""The invalidation log: an invalidation the writer could not deliver reaches the shared tier through
another process, even after the writer has gone (it closed; its own backlog went with it).

Forced order: the writer cannot reach Redis (the proxy resets it), writes, closes; the reader, which reaches
Redis directly, still reads the old entry — then applies the log (its poller's step, called here) and reads
the new value. Without the log the old entry stays until its TTL.
"""

from __future__ import annotations

import pytest

import tierstore
from tierstore import CachePolicy, MemoryStore
from tierstore.invalidation_log import InvalidationLog
from tierstore.testing.proxy import FaultProxy

from _models import Customer
from _servers import REDIS_URL, endpoints, require
from _tiers import random_prefix

pytestmark = pytest.mark.redis

FAST = "timeout=100ms&connect_timeout=100ms&breaker_failures=1&breaker_cooldown=50ms"
POLL = 3600.0  # the poller's own timer never fires in the test: it calls apply() itself


@pytest.mark.parametrize("l1", [False, True], ids=["redis", "memory+redis"])
async def test_an_undelivered_invalidation_survives_its_writer(l1: bool) -> None:
    require(REDIS_URL, "redis")
    host, port = endpoints(REDIS_URL)[0]
    store = MemoryStore()
    prefix = random_prefix()
    near = ["memory://"] if l1 else []
    policy = CachePolicy(invalidation_log=POLL)
    async with FaultProxy(host, port) as proxy:
        reader = tierstore.connect(store, [*near, f"redis://{host}:{port}/0?prefix={prefix}&{FAST}"], policy=policy)
        async with reader:
            rb = reader.repository(Customer)
            await rb.get("warm-up")
            async with tierstore.connect(
                store, [*near, f"redis://127.0.0.1:{proxy.port}/0?prefix={prefix}&{FAST}"], policy=policy
            ) as writer:
                ra = writer.repository(Customer)
                await ra.put(Customer("k", "v1"), check_version=False)
                assert (await rb.get("k")).name == "v1"  # type: ignore[union-attr]  # cached in Redis (and L1)
                proxy.drop()
                await proxy.cut()
                await ra.put(Customer("k", "v2"), check_version=False)
                assert writer.cache.undelivered() >= 1
                assert writer.cache.invalidation_log is not None and writer.cache.invalidation_log.recorded == 1
            # the writer is gone, and its backlog with it
            assert (await rb.get("k")).name == "v1"  # type: ignore[union-attr]  # the reader cannot know yet
            log = reader.cache.invalidation_log
            assert isinstance(log, InvalidationLog)
            assert await log.apply() == 1
            got = await rb.get("k")
            assert got is not None and got.name == "v2"
            assert await log.apply() == 0  # a record is applied once


async def test_off_by_default_and_validated() -> None:
    async with tierstore.connect(MemoryStore(), ["memory://"]) as db:
        assert db.cache.invalidation_log is None
    with pytest.raises(tierstore.ConfigError):
        CachePolicy(invalidation_log=0)
