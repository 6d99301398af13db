"""The hand-written coalescing floors (``raw:redis-mget-coalesced``, ``raw:aiomcache-multiget-coalesced``) on real
servers: 64 concurrent gets return the data set's items and cost a few batched round trips, not 64."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tierstore.bench.data import Dataset
from tierstore.bench.floors.cache import CoalescedAiomcacheDriver, CoalescedRedisDriver

from _servers import MEMCACHED_URL, REDIS_URL, require


async def _check(driver: CoalescedRedisDriver | CoalescedAiomcacheDriver, data: Dataset) -> None:
    await driver.open(data)
    try:
        get = driver.concurrent_getter()
        keys = data.warm[:64]
        got = await asyncio.gather(*(get(pk, sk) for pk, sk in keys))
        assert got == [data.item(k) for k in keys]
        assert 1 <= driver.counters()["tier"] <= 4  # one batch per loop tick, not one read per get
        assert await get("p9999", "s9999") is None  # a missing key is None
    finally:
        await driver.aclose()


@pytest.mark.redis
async def test_redis_coalescer_answers_64_gets_in_one_mget() -> None:
    require(REDIS_URL, "redis")
    await _check(CoalescedRedisDriver(REDIS_URL, uuid.uuid4().hex[:8]), Dataset(partitions=2))


@pytest.mark.memcached
async def test_memcached_coalescer_answers_64_gets_in_one_multi_get_per_node() -> None:
    require(MEMCACHED_URL, "memcached")
    driver = CoalescedAiomcacheDriver(MEMCACHED_URL, uuid.uuid4().hex[:8])
    await _check(driver, Dataset(partitions=20))
    # Keys are spread over every node of the URL, as tierstore's tier spreads them.
    assert {node for node, _ in driver._keys} == set(range(len(driver.hosts)))
