"""The cache-aside race, forced step by step on real servers.

reader misses → reader reads the OLD value from the store → writer commits and invalidates → reader fills.

A naive cache-aside (kept here as the control: GET, on miss read the store and SET; write, then DEL) leaves
the old value in the cache after the write has returned; that is the bug. tierstore's lease guard must drop
the reader's fill, so every read that starts after the write sees the new value — from this process and
from another one sharing the cache.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

import pytest

import tierstore
from tierstore import CachePolicy, MemoryStore
from tierstore.backends import schema_of
from tierstore.codecs import codec_for
from tierstore.model.schema import Key, Schema

from _models import Customer
from _servers import MEMCACHED_URL, REDIS_CLUSTER_URL, REDIS_URL, endpoints, require, tier_url


class Gate:
    """Pauses the first store read that happens while it is armed, after the read took its value."""

    def __init__(self) -> None:
        self.read_done = asyncio.Event()
        self.release = asyncio.Event()


class GatedStore(MemoryStore):
    """A MemoryStore whose next read can be frozen between "value read" and "value returned"."""

    def __init__(self) -> None:
        super().__init__()
        self.gate: Gate | None = None

    async def _pause(self) -> None:
        gate, self.gate = self.gate, None
        if gate is not None:
            gate.read_done.set()
            await gate.release.wait()

    async def get(self, schema: Schema[Any], key: Key, *, consistent: bool = False) -> Any:
        item = await super().get(schema, key, consistent=consistent)
        await self._pause()
        return item

    async def get_many(self, schema: Schema[Any], keys: Sequence[Key], *, consistent: bool = False) -> list[Any]:
        items = await super().get_many(schema, keys, consistent=consistent)
        await self._pause()
        return items


async def force_race(
    read: Callable[[], Awaitable[Any]], write: Callable[[], Awaitable[Any]], store: GatedStore
) -> Any:
    """Run one reader and one writer in the losing order; return what the reader got."""
    gate = store.gate = Gate()
    reader = asyncio.create_task(read())
    await asyncio.wait_for(gate.read_done.wait(), 5)  # reader missed and holds the old value
    await write()  # commit + invalidate, acknowledged
    gate.release.set()  # reader now fills with the old value
    return await asyncio.wait_for(reader, 5)


# -- the control: naive cache-aside on the same servers ---------------------------------------------------


class KV(Protocol):
    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes) -> None: ...
    async def delete(self, key: str) -> None: ...
    async def aclose(self) -> None: ...


class RedisKV:
    def __init__(self, url: str, cluster: bool) -> None:
        import redis.asyncio as redis
        from redis.asyncio.cluster import RedisCluster

        host, port = endpoints(url)[0]
        self.client: Any = RedisCluster(host=host, port=port) if cluster else redis.Redis(host=host, port=port)

    async def get(self, key: str) -> bytes | None:
        return await self.client.get(key)  # type: ignore[no-any-return]

    async def set(self, key: str, value: bytes) -> None:
        await self.client.set(key, value, ex=60)

    async def delete(self, key: str) -> None:
        await self.client.delete(key)

    async def aclose(self) -> None:
        await self.client.aclose()


class MemcachedKV:
    def __init__(self, url: str) -> None:
        import aiomcache

        host, port = endpoints(url)[0]
        self.client = aiomcache.Client(host, port)

    async def get(self, key: str) -> bytes | None:
        return await self.client.get(key.encode())  # type: ignore[no-any-return]

    async def set(self, key: str, value: bytes) -> None:
        await self.client.set(key.encode(), value, exptime=60)

    async def delete(self, key: str) -> None:
        await self.client.delete(key.encode())

    async def aclose(self) -> None:
        await self.client.close()


class NaiveCacheAside:
    """What aiocache/cashews/dogpile do: no lease, no version, no tombstone."""

    def __init__(self, kv: KV, store: MemoryStore, prefix: str) -> None:
        self.kv = kv
        self.store = store
        self.schema = schema_of(Customer)
        self.codec = codec_for(self.schema)
        self.prefix = prefix

    def _key(self, key: Key) -> str:
        return f"{self.prefix}:{self.schema.cache_key(key)}"

    async def get(self, pk: str) -> Customer | None:
        key = self.schema.key(pk)
        raw = await self.kv.get(self._key(key))
        if raw is not None:
            value = self.codec.decode(raw, self.schema.cache_key(key))
            return value if isinstance(value, Customer) else None
        item = await self.store.get(self.schema, key)
        if item is not None:
            await self.kv.set(self._key(key), self.codec.encode(item, self.schema.cache_key(key)))
        return item

    async def put(self, item: Customer) -> None:
        stored = await self.store.put(self.schema, item)
        await self.kv.delete(self._key(self.schema.key_of(stored)))


# -- parametrization ------------------------------------------------------------------------------------

BACKENDS = [
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("redis_cluster", marks=pytest.mark.redis_cluster),
    pytest.param("memcached", marks=pytest.mark.memcached),
]
TIERS = [
    pytest.param(("redis",), id="redis", marks=pytest.mark.redis),
    pytest.param(("redis_cluster",), id="redis_cluster", marks=pytest.mark.redis_cluster),
    pytest.param(("memcached",), id="memcached", marks=pytest.mark.memcached),
    pytest.param(("memory", "redis"), id="memory+redis", marks=pytest.mark.redis),
    pytest.param(("memory", "memcached"), id="memory+memcached", marks=pytest.mark.memcached),
]
URLS = {"redis": REDIS_URL, "redis_cluster": REDIS_CLUSTER_URL, "memcached": MEMCACHED_URL}


async def open_pair(
    tiers: tuple[str, ...], *, policy: CachePolicy | None = None
) -> tuple[GatedStore, tierstore.Database, tierstore.Database]:
    """Two databases ("processes") on one store and one shared cache namespace."""
    store = GatedStore()
    prefix = f"race{uuid.uuid4().hex[:10]}"
    urls = [tier_url(t, prefix) for t in tiers]
    shared = [tier_url(t, prefix) for t in tiers if t != "memory"]
    a = await tierstore.connect(store, urls, policy=policy).open()
    b = await tierstore.connect(store, shared, policy=policy).open()
    return store, a, b


@pytest.fixture
async def naive_kv(request: pytest.FixtureRequest) -> AsyncIterator[KV]:
    backend: str = request.param
    require(URLS[backend], backend)
    kv: KV = MemcachedKV(URLS[backend]) if backend == "memcached" else RedisKV(
        URLS[backend], backend == "redis_cluster"
    )
    try:
        yield kv
    finally:
        await kv.aclose()


# -- the tests -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("naive_kv", BACKENDS, indirect=True)
async def test_naive_cache_aside_serves_the_old_value_after_the_write(naive_kv: KV) -> None:
    """The control: without a guard, the race leaves the old value cached after the write returned."""
    store = GatedStore()
    cache = NaiveCacheAside(naive_kv, store, f"naive{uuid.uuid4().hex[:10]}")
    await store.put(schema_of(Customer), Customer("k", "old"))
    got = await force_race(lambda: cache.get("k"), lambda: cache.put(Customer("k", "new", version=1)), store)
    assert got is not None and got.name == "old"  # began before the write: allowed
    after = await cache.get("k")  # began after the write was acknowledged
    assert after is not None and after.name == "old", "the control should exhibit the stale fill"


@pytest.mark.parametrize("tiers", TIERS)
async def test_reader_fill_after_a_write_is_dropped(tiers: tuple[str, ...]) -> None:
    store, a, b = await open_pair(tiers)
    try:
        ra, rb = a.repository(Customer), b.repository(Customer)
        await ra.put(Customer("k", "old"), check_version=False)
        got = await force_race(lambda: ra.get("k"), lambda: rb.put(Customer("k", "new"), check_version=False), store)
        assert got is not None and got.name == "old"  # began before the write: allowed
        for repo in (ra, rb, ra, rb):  # reads that begin after the write, in both processes
            after = await repo.get("k")
            assert after is not None and after.name == "new"
        shared = a.cache.tiers[-1]
        assert shared.stats.fills_dropped >= 1
    finally:
        await a.aclose()
        await b.aclose()


@pytest.mark.parametrize("tiers", TIERS)
async def test_reader_fill_after_a_delete_does_not_resurrect(tiers: tuple[str, ...]) -> None:
    store, a, b = await open_pair(tiers)
    try:
        ra, rb = a.repository(Customer), b.repository(Customer)
        await ra.put(Customer("k", "old"), check_version=False)
        await force_race(lambda: ra.get("k"), lambda: rb.delete("k"), store)
        assert await ra.get("k") is None
        assert await rb.get("k") is None
    finally:
        await a.aclose()
        await b.aclose()


@pytest.mark.parametrize("tiers", TIERS)
async def test_batch_reader_fill_after_a_write_is_dropped(tiers: tuple[str, ...]) -> None:
    store, a, b = await open_pair(tiers)
    try:
        ra, rb = a.repository(Customer), b.repository(Customer)
        await ra.put_many([Customer("k1", "old"), Customer("k2", "old")])
        await force_race(
            lambda: ra.get_many(["k1", "k2"]), lambda: rb.put(Customer("k2", "new"), check_version=False), store
        )
        for repo in (ra, rb):
            k1, k2 = await repo.get_many(["k1", "k2"])
            assert k1 is not None and k1.name == "old"
            assert k2 is not None and k2.name == "new"
    finally:
        await a.aclose()
        await b.aclose()


@pytest.mark.parametrize("tiers", TIERS)
async def test_write_through_race_keeps_the_newer_version(tiers: tuple[str, ...]) -> None:
    """Write-through: the reader's old fill is dropped, and a slow writer's older set cannot land."""
    store, a, b = await open_pair(tiers, policy=CachePolicy(write_mode="write_through"))
    try:
        ra, rb = a.repository(Customer), b.repository(Customer)
        await ra.put(Customer("k", "v1"), check_version=False)
        await a.cache.after_write([schema_of(Customer).cache_key(("k",))])  # start from an empty cache
        await force_race(lambda: ra.get("k"), lambda: rb.put(Customer("k", "v2"), check_version=False), store)
        for repo in (ra, rb):
            got = await repo.get("k")
            assert got is not None and got.name == "v2"
        # A late set of the older version (a slow writer) is refused by the version check.
        schema = schema_of(Customer)
        codec = codec_for(schema)
        old = Customer("k", "v1", version=1)
        ck = schema.cache_key(("k",))
        await b.cache.after_write([ck], [codec.encode(old, ck)], [1])
        for repo in (ra, rb):
            got = await repo.get("k")
            assert got is not None and got.name == "v2"
    finally:
        await a.aclose()
        await b.aclose()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_stale_refresh_that_read_before_a_write_is_dropped(backend: str) -> None:
    """``stale=``: the reader refreshing an expired entry reads the old value, a write commits and
    invalidates, then the refresh lands — it must be dropped, and nothing stale served after the write."""
    store = GatedStore()
    prefix = f"race{uuid.uuid4().hex[:10]}"
    policy = CachePolicy(ttl=1.0, ttl_jitter=0)
    url = tier_url(backend, prefix) + "&stale=30s"
    a = await tierstore.connect(store, [url], policy=policy).open()
    b = await tierstore.connect(store, [url], policy=policy).open()
    try:
        ra, rb = a.repository(Customer), b.repository(Customer)
        await ra.put(Customer("k", "old"), check_version=False)
        await ra.get("k")  # cached, soft expiry in 1 s
        await asyncio.sleep(1.2)
        got = await force_race(lambda: ra.get("k"), lambda: rb.put(Customer("k", "new"), check_version=False), store)
        assert got is not None and got.name == "old"  # the refresher read before the write: allowed
        assert a.cache.tiers[0].stats.refreshes == 1
        for repo in (ra, rb, ra, rb):
            after = await repo.get("k")
            assert after is not None and after.name == "new"
    finally:
        await a.aclose()
        await b.aclose()
