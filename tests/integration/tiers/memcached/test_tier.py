"""MemcachedTier against real servers: the add/gets/cas lease protocol, versioned sets, generations for
``clear``, rendezvous placement with one request per node, oversized values refused before sending.
"""

from __future__ import annotations

import asyncio

import aiomcache
import pytest

import tierstore
from tierstore import MemoryStore
from tierstore.backends import Lease
from tierstore.testing.proxy import FaultProxy
from tierstore.tiers.memcached import memcached_key
from tierstore.tiers.memcached import tier as memcached_tier_module

from _models import Blob
from _servers import MEMCACHED_URL, endpoints, require
from _tiers import OwnMemcached, memcached_tier, random_prefix

pytestmark = pytest.mark.memcached


async def test_versioned_set() -> None:
    tier = await memcached_tier()
    try:
        k = "{t:1}:v"
        await tier.set_many([(k, b"two", 2)], 60)
        await tier.set_many([(k, b"one", 1)], 60)
        assert await tier.get_many([k]) == [b"two"]
        await tier.set_many([(k, b"three", 3)], 60)
        assert await tier.get_many([k]) == [b"three"]
        await tier.invalidate_many([k])
        await tier.set_many([(k, b"late", 4)], 60)  # a tombstone refuses sets for its lifetime
        (after,) = await tier.get_many([k])
        assert isinstance(after, Lease)  # a lease over the tombstone: marked
        # A write meets the marked lease: its order against the delete is unknown, so the key is tombstoned
        # (voiding the reader's lease) instead of set; the next reader fills from the store.
        await tier.set_many([(k, b"written", 5)], 60)
        await tier.fill_many([(k, b"read-before", after)], 60)
        (again,) = await tier.get_many([k])
        assert isinstance(again, Lease)
        await tier.fill_many([(k, b"filled", again)], 60)  # a pinned entry: served, and no set lands on it
        assert await tier.get_many([k]) == [b"filled"]
        await tier.set_many([(k, b"late", 3)], 60)
        (gone,) = await tier.get_many([k])
        assert isinstance(gone, Lease)
        # On a key with no tombstone behind it, a write replaces a reader's lease.
        k2 = "{t:1}:w"
        (lease,) = await tier.get_many([k2])
        assert isinstance(lease, Lease)
        await tier.set_many([(k2, b"written", 5)], 60)
        await tier.fill_many([(k2, b"read-before", lease)], 60)
        assert await tier.get_many([k2]) == [b"written"]
    finally:
        await tier.aclose()


async def test_clear_moves_every_process_to_a_new_generation() -> None:
    prefix = random_prefix()
    a, b, other = await memcached_tier(prefix=prefix), await memcached_tier(prefix=prefix), await memcached_tier()
    try:
        for tier in (a, other):
            (lz,) = await tier.get_many(["{t:1}:k"])
            assert isinstance(lz, Lease)
            await tier.fill_many([("{t:1}:k", b"v", lz)], 60)
        assert await b.get_many(["{t:1}:k"]) == [b"v"]
        await a.clear()
        (miss,) = await b.get_many(["{t:1}:k"])  # b learns the new generation in the same request
        assert isinstance(miss, Lease) and miss.token is not None
        assert b.stats.generation_changes >= 1
        assert await other.get_many(["{t:1}:k"]) == [b"v"]  # another namespace on the same servers
    finally:
        for tier in (a, b, other):
            await tier.aclose()


async def test_partitions_live_on_one_node_and_batches_are_one_request_per_node() -> None:
    tier = await memcached_tier()
    nodes = tier._nodes
    if len(nodes) < 2:
        pytest.skip("needs two memcached nodes")
    clients = [aiomcache.Client(n.addr.split(":")[0], int(n.addr.split(":")[1])) for n in nodes]
    try:
        keys = [f"{{orders:c{p}}}:{i}" for p in range(20) for i in range(3)]
        leases = await tier.get_many(keys)
        await tier.fill_many([(k, b"v", lz) for k, lz in zip(keys, leases, strict=True)
                              if isinstance(lz, Lease)], 60)
        where: dict[str, set[int]] = {}
        for k in keys:
            for j, (node, client) in enumerate(zip(nodes, clients, strict=True)):
                if await client.get(memcached_key(node.namespace(), k)) is not None:
                    where.setdefault(k.split("}")[0], set()).add(j)
        assert all(len(v) == 1 for v in where.values()) and len(where) == 20
        assert {j for v in where.values() for j in v} == {0, 1}
        before = tier.stats.round_trips
        assert await tier.get_many(keys) == [b"v"] * len(keys)
        assert tier.stats.round_trips - before == 2
    finally:
        for c in clients:
            await c.close()
        await tier.aclose()


async def test_oversized_values_are_refused_before_sending(own: OwnMemcached, own_raw: aiomcache.Client) -> None:
    tier = await memcached_tier(own.url)
    try:
        big, fits = b"x" * (1024 * 1024 + 1), b"y" * (1024 * 1024 - 600)
        leases = await tier.get_many(["{t:1}:big", "{t:1}:fits"])
        before = int((await own_raw.stats())[b"bytes_read"] or 0)
        await tier.fill_many([("{t:1}:big", big, leases[0]), ("{t:1}:fits", fits, leases[1])], 60)  # type: ignore[list-item]
        sent = int((await own_raw.stats())[b"bytes_read"] or 0) - before
        assert len(fits) < sent < len(fits) + 64 * 1024  # the big one never went on the wire
        assert tier.stats.oversized == 1 and tier.stats.errors == 0
        got = await tier.get_many(["{t:1}:big", "{t:1}:fits"])
        assert isinstance(got[0], Lease) and got[0].token is not None  # lease given up: next reader may try
        assert got[1] == fits
        await tier.set_many([("{t:1}:wt", big, 1)], 60)
        assert tier.stats.oversized == 2 and tier.stats.errors == 0
    finally:
        await tier.aclose()


async def test_oversized_entities_are_served_from_the_store() -> None:
    require(MEMCACHED_URL, "memcached")
    store = MemoryStore()
    async with tierstore.connect(store, [f"{MEMCACHED_URL}?prefix={random_prefix()}"]) as db:
        blobs = db.repository(Blob)
        await blobs.put(Blob(1, b"z" * (2 * 1024 * 1024)))
        for _ in range(3):
            got = await blobs.get(1)
            assert got is not None and len(got.data) == 2 * 1024 * 1024
        tier = db.cache.tiers[0]
        assert tier.stats.oversized >= 1 and tier.stats.errors == 0 and tier.stats.lease_waits == 0


async def test_spellings_are_remembered_per_generation_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memcached_tier_module, "SPELT_MAX", 8)
    tier = await memcached_tier()
    try:
        long_key = "{t:1}:" + "x" * 300  # sent as a hash: never remembered, counted on every read
        keys = [f"{{t:{p}}}:k" for p in range(20)] + [long_key]
        leases = await tier.get_many(keys)
        await tier.fill_many([(k, k.encode(), lz) for k, lz in zip(keys, leases, strict=True)
                              if isinstance(lz, Lease)], 60)
        assert await tier.get_many(keys) == [k.encode() for k in keys]
        assert 0 < len(tier._spelt) <= 8 and long_key not in tier._spelt
        hashed = tier.stats.hashed_keys
        assert await tier.get_many([long_key]) == [long_key.encode()]
        assert tier.stats.hashed_keys == hashed + 1
        for node in tier._nodes:
            node.gen = None  # as after a failure: re-read before the keys are spelt again
        assert await tier.get_many(keys) == [k.encode() for k in keys]
        await tier.clear()  # a new generation: remembered spellings of the old one are not used
        got = await tier.get_many(keys[:4])
        assert all(isinstance(g, Lease) and g.token is not None for g in got)
    finally:
        await tier.aclose()


async def test_a_read_cancelled_with_every_node_in_flight_leaves_nothing_behind() -> None:
    require(MEMCACHED_URL, "memcached")
    nodes = endpoints(MEMCACHED_URL)
    if len(nodes) < 2:
        pytest.skip("needs two memcached nodes")
    async with FaultProxy(*nodes[0]) as p0, FaultProxy(*nodes[1]) as p1:
        tier = await memcached_tier(f"memcached://127.0.0.1:{p0.port},127.0.0.1:{p1.port}", pool_size=1,
                                    timeout="2s", breaker_failures=100)
        try:
            keys = [f"{{orders:c{p}}}:1" for p in range(20)]
            assert len(tier._read_groups(keys)) == 2
            leases = await tier.get_many(keys)
            await tier.fill_many([(k, k.encode(), lz) for k, lz in zip(keys, leases, strict=True)
                                  if isinstance(lz, Lease)], 60)
            p0.set_delay(0.3)
            p1.set_delay(0.3)
            read = asyncio.ensure_future(tier.get_many(keys))
            await asyncio.sleep(0.05)  # both requests sent, no reply yet
            read.cancel()
            with pytest.raises(asyncio.CancelledError):
                await read
            await asyncio.sleep(0)
            left = [t for t in asyncio.all_tasks() if "MemcachedTier" in getattr(t.get_coro(), "__qualname__", "")]
            assert left == []  # the other node's read was cancelled with it
            p0.reset()
            p1.reset()
            await asyncio.sleep(0.35)  # the late replies arrive on connections that were discarded
            # One connection per node: a kept one would answer with the cancelled read's reply.
            assert await tier.get_many(keys[::-1]) == [k.encode() for k in keys[::-1]]
            assert tier.stats.errors == 0
        finally:
            await tier.aclose()
