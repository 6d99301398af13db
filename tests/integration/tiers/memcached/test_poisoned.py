"""Memcached entries a reader must not trip on, and expiries memcached cannot hold as given."""

from __future__ import annotations

import aiomcache

import tierstore
from tierstore import MemoryStore
from tierstore.backends import schema_of
from tierstore.tiers.memcached.tier import MemcachedTier

from _models import Customer
from _servers import MEMCACHED_URL, endpoints, require
from _tiers import memcached_tier, random_prefix, with_params

HOST, PORT = endpoints(MEMCACHED_URL)[0]
ONE_NODE = f"memcached://{HOST}:{PORT}"


def _ck(pk: str) -> str:
    return schema_of(Customer).cache_key((pk,))


async def test_one_malformed_stale_entry_is_a_miss_for_its_key_only() -> None:
    require(ONE_NODE, "memcached")
    raw = aiomcache.Client(HOST, PORT)
    try:
        async with tierstore.connect(MemoryStore(), [with_params(ONE_NODE, random_prefix(), stale="30s")]) as db:
            repo = db.repository(Customer)
            names = [f"s{i}" for i in range(4)]
            await repo.put_many([Customer(n, n.upper()) for n in names])
            await repo.get_many(names)  # filled as stale-mode entries
            tier = db.cache.tiers[0]
            assert isinstance(tier, MemcachedTier)
            node = tier._nodes[0]
            mk = tier._key(node, _ck("s1"))
            for bad in (b"S" + b"z" * 40 + b"payload", b"S12"):
                for _ in range(6):  # more than breaker_failures reads
                    await raw.set(mk, bad)
                    got = await repo.get_many(names)
                    assert [g.name if g else None for g in got] == [n.upper() for n in names]
                assert tier.stats.errors == 0
                assert db.cache.breaker_state(tier) == "closed"
    finally:
        await raw.close()


async def test_expiries_beyond_30_days_and_past_2038_still_hit_and_count_as_fills() -> None:
    tier = await memcached_tier(ONE_NODE)
    try:
        for i, ttl in enumerate((40 * 86400.0, 20 * 365 * 86400.0, 1e12)):
            key = f"{{t:ttl}}:{i}"
            (lease,) = await tier.get_many([key])
            assert isinstance(lease, tierstore.backends.Lease) and lease.token is not None
            fills = tier.stats.fills
            await tier.fill_many([(key, b"value", lease)], ttl)
            assert tier.stats.fills == fills + 1
            assert await tier.get_many([key]) == [b"value"]
    finally:
        await tier.aclose()
