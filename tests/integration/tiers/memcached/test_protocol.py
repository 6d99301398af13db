"""The text protocol against real servers (tiers/memcached/protocol.py): keys checked in bytes (no injection ever
reaches a server), long and multi-byte keys, TTLs over 30 days, and a request past its deadline never
desynchronises a connection. Tests that could damage a shared server if tierstore were wrong run against a
memcached of their own.
"""

from __future__ import annotations

import asyncio

import aiomcache
import pytest

from tierstore.backends import Lease
from tierstore.testing.proxy import FaultProxy

from _servers import MEMCACHED_URL, endpoints, require
from _tiers import OwnMemcached, memcached_tier

pytestmark = pytest.mark.memcached


async def test_key_injection_never_reaches_the_server(own: OwnMemcached, own_raw: aiomcache.Client) -> None:
    await own_raw.set(b"sentinel", b"still-here")
    tier = await memcached_tier(own.url)
    try:
        evil = ["a\r\nflush_all", "b\r\nflush_all\r\n", "c flush_all", "d\nflush_all"]
        leases = await tier.get_many(evil)
        assert all(isinstance(lz, Lease) and lz.token is not None for lz in leases)
        await tier.fill_many([(k, k.encode(), lz) for k, lz in zip(evil, leases, strict=True)
                              if isinstance(lz, Lease)], 60)
        assert await tier.get_many(evil) == [k.encode() for k in evil]
        await tier.invalidate_many(evil)
        await tier.set_many([(k, b"w", 1) for k in evil], 60)
        assert await own_raw.get(b"sentinel") == b"still-here"  # no flush_all ever ran
        assert tier.stats.hashed_keys > 0 and tier.stats.errors == 0
    finally:
        await tier.aclose()


async def test_ttl_over_thirty_days_is_readable(own: OwnMemcached, own_raw: aiomcache.Client) -> None:
    # The rule is real: sent raw, 30 days + 1 s is an absolute time in 1970, so the item is expired at once.
    await own_raw.set(b"raw", b"v", exptime=30 * 86400 + 1)
    assert await own_raw.get(b"raw") is None
    tier = await memcached_tier(own.url)
    try:
        (lease,) = await tier.get_many(["{t:1}:long"])
        assert isinstance(lease, Lease)
        await tier.fill_many([("{t:1}:long", b"v", lease)], 31 * 86400)
        assert await tier.get_many(["{t:1}:long"]) == [b"v"]
        await tier.set_many([("{t:1}:wt", b"w", 1)], 45 * 86400)
        assert await tier.get_many(["{t:1}:wt"]) == [b"w"]
    finally:
        await tier.aclose()


async def test_a_timed_out_request_never_desynchronises_the_connection() -> None:
    require(MEMCACHED_URL, "memcached")
    host, port = endpoints(MEMCACHED_URL)[0]
    async with FaultProxy(host, port) as proxy:
        tier = await memcached_tier(f"memcached://127.0.0.1:{proxy.port}", pool_size=1, timeout="100ms",
                           breaker_failures=100)
        try:
            keys = ["{t:1}:a", "{t:1}:b"]
            leases = await tier.get_many(keys)
            await tier.fill_many([(k, k.encode(), lz) for k, lz in zip(keys, leases, strict=True)
                                  if isinstance(lz, Lease)], 60)
            proxy.set_delay(0.3)
            (slow,) = await tier.get_many(["{t:1}:a"])  # the deadline passes; the reply is still coming
            assert isinstance(slow, Lease) and slow.token is None and tier.stats.errors == 1
            proxy.reset()
            # With a single pooled connection, reusing it would read the late reply for "a" as "b"'s.
            assert await tier.get_many(["{t:1}:b"]) == [b"{t:1}:b"]
            await asyncio.sleep(0.35)
            assert await tier.get_many(["{t:1}:b", "{t:1}:a"]) == [b"{t:1}:b", b"{t:1}:a"]
        finally:
            await tier.aclose()
