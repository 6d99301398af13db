"""Entries tierstore did not write, or that another key owns: each is a miss for its own key (replaced by the
next fill), never served, never a failure of the tier, never a permanent miss."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

import tierstore
from tierstore import MemoryStore
from tierstore.backends import codec_for, schema_of

from _models import Customer
from _servers import REDIS_URL, require
from _tiers import random_prefix, with_params


@pytest.fixture
async def rdb() -> AsyncIterator[redis.Redis]:
    """A plain client of the database the tier uses (the URL's ``/<db>``)."""
    require(REDIS_URL, "redis")
    client = redis.Redis.from_url(REDIS_URL.split("?", 1)[0])
    try:
        yield client
    finally:
        await client.aclose()


def _ck(pk: str) -> str:
    return schema_of(Customer).cache_key((pk,))


async def test_another_keys_envelope_is_a_miss_not_served(rdb: redis.Redis) -> None:
    prefix = random_prefix()
    async with tierstore.connect(MemoryStore(), [with_params(REDIS_URL, prefix)]) as db:
        repo = db.repository(Customer)
        await repo.put(Customer("c1", "one"))
        await repo.put(Customer("c2", "two"))
        assert [c.name for c in await repo.get_many(["c1", "c2"]) if c] == ["one", "two"]  # both cached
        await rdb.set(f"{prefix}:{_ck('c2')}", await rdb.get(f"{prefix}:{_ck('c1')}"))  # c1's entry under c2
        for got in (await repo.get("c2"), (await repo.get_many(["c2"]))[0]):
            assert got is not None and got.name == "two"


async def test_a_value_starting_with_the_not_found_marker_is_not_read_as_not_found(rdb: redis.Redis) -> None:
    prefix = random_prefix()
    async with tierstore.connect(MemoryStore(), [with_params(REDIS_URL, prefix)]) as db:
        repo = db.repository(Customer)
        await repo.put(Customer("c3", "three"))
        marker = codec_for(schema_of(Customer)).absent(_ck("c3"))
        for poison in (b"\xa8", marker[:1] + b"someone else's bytes", marker[:5]):
            await rdb.set(f"{prefix}:{_ck('c3')}", b"D" + b"0" * 16 + poison)
            got = await repo.get("c3")
            assert got is not None and got.name == "three"


async def test_one_malformed_stale_entry_is_a_miss_for_its_key_only(rdb: redis.Redis) -> None:
    prefix = random_prefix()
    async with tierstore.connect(MemoryStore(), [with_params(REDIS_URL, prefix, stale="30s")]) as db:
        repo = db.repository(Customer)
        names = [f"s{i}" for i in range(4)]
        await repo.put_many([Customer(n, n.upper()) for n in names])
        await repo.get_many(names)  # filled as stale-mode entries
        assert (await rdb.get(f"{prefix}:{_ck('s0')}"))[:1] == b"S"
        for bad in (b"S" + b"z" * 40 + b"payload", b"S12", b"S" + b"0" * 16 + b"-1" + b"0" * 18):
            await rdb.set(f"{prefix}:{_ck('s1')}", bad)
            tier = db.cache.tiers[0]
            for _ in range(6):  # more than breaker_failures reads
                got = await repo.get_many(names)
                assert [g.name if g else None for g in got] == [n.upper() for n in names]
                await rdb.set(f"{prefix}:{_ck('s1')}", bad)
            assert tier.stats.errors == 0
            assert db.cache.breaker_state(tier) == "closed"


async def test_a_lease_without_expiry_is_replaced_by_readers(rdb: redis.Redis) -> None:
    prefix = random_prefix()
    store = MemoryStore()
    async with tierstore.connect(store, [with_params(REDIS_URL, prefix)]) as db:
        repo = db.repository(Customer)
        await repo.put_many([Customer("l1", "L1"), Customer("l2", "L2")])
        for pk in ("l1", "l2"):
            await rdb.set(f"{prefix}:{_ck(pk)}", b"Lstuck-forever")  # no PX: it would never expire
        assert (await repo.get("l1")) == Customer("l1", "L1", version=1)
        assert [c.name for c in await repo.get_many(["l2"]) if c] == ["L2"]
        reads = store.stats.round_trips
        assert (await repo.get("l1")) is not None and (await repo.get_many(["l2"]))[0] is not None
        assert store.stats.round_trips == reads  # filled: served by the tier now
        assert (await rdb.get(f"{prefix}:{_ck('l1')}"))[:1] == b"D"


async def test_a_key_of_another_type_is_replaced_by_readers(rdb: redis.Redis) -> None:
    prefix = random_prefix()
    store = MemoryStore()
    async with tierstore.connect(store, [with_params(REDIS_URL, prefix)]) as db:
        repo = db.repository(Customer)
        await repo.put_many([Customer("w1", "W1"), Customer("w2", "W2"), Customer("w3", "W3")])
        await rdb.delete(f"{prefix}:{_ck('w1')}", f"{prefix}:{_ck('w2')}")  # the writes' tombstones
        await rdb.rpush(f"{prefix}:{_ck('w1')}", b"a list")  # GET: WRONGTYPE
        await rdb.hset(f"{prefix}:{_ck('w2')}", "f", "a hash")  # in an MGET: nil
        assert (await repo.get("w1")) is not None
        assert [c.name if c else None for c in await repo.get_many(["w2", "w3"])] == ["W2", "W3"]
        reads = store.stats.round_trips
        assert (await repo.get("w1")) is not None
        assert [c.name if c else None for c in await repo.get_many(["w2", "w3"])] == ["W2", "W3"]
        assert store.stats.round_trips == reads
        assert await rdb.type(f"{prefix}:{_ck('w1')}") == b"string"
