"""The Lua scripts (tiers/redis/scripts.py) are loaded again when the server lost them."""

from __future__ import annotations

import pytest
import redis.asyncio as redis

from tierstore.backends import Lease

from _tiers import OwnRedis, redis_tier

pytestmark = pytest.mark.redis


async def test_scripts_are_reloaded_after_script_flush(own_redis: OwnRedis) -> None:
    base = f"redis://127.0.0.1:{own_redis.port}/0"
    tier = await redis_tier(base)
    client = redis.Redis(port=own_redis.port)
    try:
        assert isinstance((await tier.get_many(["{t:1}:a"]))[0], Lease)
        await client.script_flush()
        (lease,) = await tier.get_many(["{t:1}:b"])  # NOSCRIPT -> SCRIPT LOAD -> EVALSHA again
        assert isinstance(lease, Lease)
        await client.script_flush()
        await tier.fill_many([("{t:1}:b", b"v", lease)], 60)
        assert await tier.get_many(["{t:1}:b"]) == [b"v"]
        assert tier.stats.errors == 0
    finally:
        await client.aclose()
        await tier.aclose()
