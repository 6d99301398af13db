"""The hand-written coalescing floors (``raw:redis-mget-coalesced``, ``raw:aiomcache-multiget-coalesced``) on real
servers: 64 concurrent gets return the data set's items and cost a few batched round trips, not 64."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tierstore.bench.data import Dataset
from tierstore.bench.floors.cache import AiomcacheDriver, CoalescedAiomcacheDriver, CoalescedRedisDriver

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


@pytest.mark.memcached
async def test_memcached_floor_get_and_get_many_read_every_node() -> None:
    require(MEMCACHED_URL, "memcached")
    data = Dataset(partitions=20)
    driver = AiomcacheDriver(MEMCACHED_URL, uuid.uuid4().hex[:8])
    await driver.open(data)
    try:
        assert await driver.batch_getter()(data.many) == [data.item(k) for k in data.many]
        get = driver.getter()
        assert [await get(pk, sk) for pk, sk in data.hot] == [data.item(k) for k in data.hot]
        nodes = {node for node, _ in driver._keys}
        assert nodes == set(range(len(driver.hosts)))
        before = driver.counters()["tier"]
        await driver.batch_getter()(data.many)
        assert driver.counters()["tier"] - before == len(nodes)  # one multi_get per node
    finally:
        await driver.aclose()
