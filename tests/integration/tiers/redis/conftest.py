"""Fixtures of the Redis tier tests: a client of the shared server, a redis-server of the test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as redis

from _servers import REDIS_URL, require
from _tiers import OwnRedis


@pytest.fixture
async def raw() -> AsyncIterator[redis.Redis]:
    require(REDIS_URL, "redis")
    client = redis.Redis.from_url(REDIS_URL)  # the tiers' own database number, not always 0
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    try:
        yield server
    finally:
        server.stop()
