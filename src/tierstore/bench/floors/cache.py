"""Cache floors and peers: a dict + msgspec decode, raw Redis and Memcached reads, aiocache and cashews.

The raw floors keep the msgspec msgpack payload of each item (no envelope) and decode it on read: the least
work a hand-written cache read can do. They hold only the keys cached scenarios read (hot, get_many and warm
sets). Peers are used as their users would: aiocache's RedisCache with its default JSON serializer (items
stored as builtins, converted back with ``msgspec.convert``), cashews with its defaults (pickle).
``DictJoinDriver`` is the ``join_100`` floor of the memory store: encoded orders per partition and encoded
customers by key, decoded on read.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit
from zlib import crc32

import msgspec

from tierstore.bench.api import (
    CONCURRENT,
    GET,
    GET_MANY,
    PUT,
    QUERY,
    Driver,
    GetFn,
    GetManyFn,
    PageFn,
    PutFn,
)
from tierstore.bench.data import BenchItem, BenchOrder, Dataset
from tierstore.bench.floors.join import CustomerGet, CustomersGet, JoinFloor, Key, OrdersPage

__all__ = [
    "AiocacheDriver",
    "AiomcacheDriver",
    "CashewsDriver",
    "CoalescedAiomcacheDriver",
    "CoalescedRedisDriver",
    "DictDecodeDriver",
    "DictJoinDriver",
    "RedisDriver",
]

MAX_CONNECTIONS = 512
"""Connections the raw Redis floors may open (one per concurrent reader, as a pooled client does)."""

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(BenchItem)
_order_decoder = msgspec.msgpack.Decoder(BenchOrder)


class DictDecodeDriver(Driver):
    """A dict of encoded items, decoded on every read: the floor of an in-process cache hit."""

    caps = frozenset({GET, GET_MANY, PUT, QUERY, CONCURRENT})

    def __init__(self) -> None:
        self._flat: dict[tuple[str, str], bytes] = {}
        self._parts: dict[str, list[bytes]] = {}

    async def open(self, data: Dataset) -> None:
        encode = _encoder.encode
        for item in data.items:
            raw = encode(item)
            self._flat[(item.pk, item.sk)] = raw
            self._parts.setdefault(item.pk, []).append(raw)  # items are generated in sort-key order

    def getter(self) -> GetFn:
        flat, decode = self._flat, _decoder.decode

        async def get(pk: str, sk: str) -> BenchItem | None:
            raw = flat.get((pk, sk))
            return None if raw is None else decode(raw)

        return get

    def batch_getter(self) -> GetManyFn:
        flat, decode = self._flat, _decoder.decode

        async def get_many(keys: Sequence[tuple[str, str]]) -> list[BenchItem | None]:
            out: list[BenchItem | None] = []
            for k in keys:
                raw = flat.get(k)
                out.append(None if raw is None else decode(raw))
            return out

        return get_many

    def putter(self) -> PutFn:
        flat, encode = self._flat, _encoder.encode

        async def put(item: BenchItem) -> None:
            flat[(item.pk, item.sk)] = encode(item)

        return put

    def pager(self) -> PageFn:
        parts, decode = self._parts, _decoder.decode

        async def page(pk: str, limit: int) -> list[BenchItem]:
            return [decode(raw) for raw in parts.get(pk, ())[:limit]]

        return page


class DictJoinDriver(JoinFloor):
    """``raw:dict-join-*``: the floor of ``join_100`` on the memory store — dicts of msgpack payloads."""

    def __init__(self, mode: str) -> None:
        super().__init__(mode)
        self._customers: dict[Key, bytes] = {}
        self._orders: dict[str, list[bytes]] = {}

    async def open(self, data: Dataset) -> None:
        encode = _encoder.encode
        self._customers = {(i.pk, i.sk): encode(i) for i in data.items}
        for order in data.orders:  # generated in sort-key order
            self._orders.setdefault(order.pk, []).append(encode(order))

    def orders_page(self) -> OrdersPage:
        parts, decode = self._orders, _order_decoder.decode

        async def page(pk: str, limit: int) -> list[BenchOrder]:
            self.trips += 1
            return [decode(raw) for raw in parts.get(pk, ())[:limit]]

        return page

    def customer_getter(self) -> CustomerGet:
        customers, decode = self._customers, _decoder.decode

        async def get(pk: str, sk: str) -> BenchItem | None:
            self.trips += 1
            raw = customers.get((pk, sk))
            return None if raw is None else decode(raw)

        return get

    def customers_getter(self) -> CustomersGet:
        customers, decode = self._customers, _decoder.decode

        async def get_many(keys: Sequence[Key]) -> dict[Key, BenchItem]:
            self.trips += 1
            get = customers.get
            out: dict[Key, BenchItem] = {}
            for k in keys:
                raw = get(k)
                if raw is not None:
                    out[k] = decode(raw)
            return out

        return get_many


class RedisDriver(Driver):
    """redis.asyncio (hiredis) GET or MGET plus msgspec decode; its connection pool serves concurrent readers."""

    def __init__(self, url: str, run_id: str, *, batch: bool) -> None:
        self.url = url
        self.prefix = f"tsbench{run_id}{'mget' if batch else 'get'}:"
        self.batch = batch
        self.caps = frozenset({GET_MANY}) if batch else frozenset({GET, CONCURRENT})
        self.trips = 0
        self._redis: Any = None
        self._keys: list[str] = []

    async def open(self, data: Dataset) -> None:
        import redis.asyncio

        # A pool as large as the most concurrent readers (256 tasks in ``--curves concurrency``): redis-py's
        # default of 100 connections raises MaxConnectionsError beyond that instead of waiting.
        self._redis = redis.asyncio.Redis.from_url(self.url, max_connections=MAX_CONNECTIONS)
        mapping = {f"{self.prefix}{pk}:{sk}": _encoder.encode(data.item((pk, sk))) for pk, sk in data.cached_keys}
        self._keys = list(mapping)
        await self._redis.mset(mapping)

    async def aclose(self) -> None:
        if self._redis is not None:
            with contextlib.suppress(Exception):
                if self._keys:
                    await self._redis.delete(*self._keys)
            await self._redis.aclose()

    def counters(self) -> dict[str, int]:
        return {"tier": self.trips}

    def getter(self) -> GetFn:
        get_raw, decode, prefix = self._redis.get, _decoder.decode, self.prefix

        async def get(pk: str, sk: str) -> BenchItem | None:
            self.trips += 1
            raw = await get_raw(f"{prefix}{pk}:{sk}")
            return None if raw is None else decode(raw)

        return get

    def batch_getter(self) -> GetManyFn:
        mget, decode, prefix = self._redis.mget, _decoder.decode, self.prefix

        async def get_many(keys: Sequence[tuple[str, str]]) -> list[BenchItem | None]:
            self.trips += 1
            raws = await mget([f"{prefix}{pk}:{sk}" for pk, sk in keys])
            return [None if raw is None else decode(raw) for raw in raws]

        return get_many


class AiomcacheDriver(Driver):
    """aiomcache get / multi_get plus msgspec decode, over every node of the Memcached URL (a pool of 8 each).

    A key lives on the node its partition key hashes to (CRC-32, stable across processes), and a multi-key read
    sends one multi_get per node concurrently, as tierstore's Memcached tier does over the same URL: reading
    every key from the first node would spare the floor the second node's request (a send, a reply to parse,
    a task) that the system it is compared with cannot skip."""

    caps = frozenset({GET, GET_MANY, CONCURRENT})

    def __init__(self, url: str, run_id: str) -> None:
        netloc = urlsplit(url).netloc.rsplit("@", 1)[-1]
        self.hosts: list[tuple[str, int]] = []
        for part in netloc.split(","):
            host, _, port = part.rpartition(":")
            self.hosts.append((host or "127.0.0.1", int(port or 11211)))
        self.prefix = f"tsbench{run_id}mc:"
        self.trips = 0
        self._clients: list[Any] = []
        self._keys: list[tuple[int, bytes]] = []

    async def open(self, data: Dataset) -> None:
        import aiomcache

        self._clients = [aiomcache.Client(host, port, pool_size=8) for host, port in self.hosts]
        key_of = self.key_of()
        for pk, sk in data.cached_keys:
            node, key = key_of(pk, sk)
            self._keys.append((node, key))
            await self._clients[node].set(key, _encoder.encode(data.item((pk, sk))), exptime=3600)

    async def aclose(self) -> None:
        for node, key in self._keys:
            with contextlib.suppress(Exception):
                await self._clients[node].delete(key)
        for client in self._clients:
            await client.close()

    def counters(self) -> dict[str, int]:
        return {"tier": self.trips}

    def key_of(self) -> Callable[[str, str], tuple[int, bytes]]:
        """``(pk, sk)`` -> (index of its node, its key)."""
        prefix, n = self.prefix, len(self.hosts)
        return lambda pk, sk: (crc32(pk.encode()) % n, f"{prefix}{pk}:{sk}".encode())

    def fetcher(self) -> Callable[[Sequence[tuple[int, bytes]]], Awaitable[list[bytes | None]]]:
        """The raw values of ``(node, key)`` pairs, in order: one multi_get per node, the nodes concurrently."""
        clients = self._clients

        async def one(node: int, keys: list[bytes]) -> Sequence[bytes | None]:
            self.trips += 1
            return await clients[node].multi_get(*keys)  # type: ignore[no-any-return]

        async def fetch(keys: Sequence[tuple[int, bytes]]) -> list[bytes | None]:
            if len(clients) == 1:
                return list(await one(0, [key for _, key in keys]))
            where: list[list[int]] = [[] for _ in clients]
            sent: list[list[bytes]] = [[] for _ in clients]
            for i, (node, key) in enumerate(keys):
                where[node].append(i)
                sent[node].append(key)
            first, *rest = [j for j, g in enumerate(sent) if g]
            if not rest:
                return list(await one(first, sent[first]))
            # The first node inline, the others as tasks, as tierstore's tier does (cheaper than gather).
            tasks = [asyncio.create_task(one(j, sent[j])) for j in rest]
            try:
                got = [await one(first, sent[first])]
            except BaseException:
                for task in tasks:
                    task.cancel()
                raise
            got += [await task for task in tasks]
            out: list[bytes | None] = [None] * len(keys)
            for j, raws in zip([first, *rest], got, strict=True):
                for i, raw in zip(where[j], raws, strict=True):
                    out[i] = raw
            return out

        return fetch

    def getter(self) -> GetFn:
        key_of, clients, decode = self.key_of(), self._clients, _decoder.decode

        async def get(pk: str, sk: str) -> BenchItem | None:
            self.trips += 1
            node, key = key_of(pk, sk)
            raw = await clients[node].get(key)
            return None if raw is None else decode(raw)

        return get

    def batch_getter(self) -> GetManyFn:
        key_of, fetch, decode = self.key_of(), self.fetcher(), _decoder.decode

        async def get_many(keys: Sequence[tuple[str, str]]) -> list[BenchItem | None]:
            raws = await fetch([key_of(pk, sk) for pk, sk in keys])
            return [None if raw is None else decode(raw) for raw in raws]

        return get_many


def coalescing_getter(
    fetch: Callable[[list[Any]], Awaitable[Sequence[bytes | None]]],
    key_of: Callable[[str, str], Any],
    on_batch: Callable[[], None],
) -> GetFn:
    """A ``get`` that many tasks await at once, coalesced by hand: every get of one event-loop tick joins one
    batch; one flusher per tick sends it as one multi-key read (``fetch``), decodes with msgspec and resolves the
    waiting futures. The least a read coalescer can cost, written by hand: no leases, no single flight, no
    envelope, no stats beyond the batch count."""
    decode = _decoder.decode
    pending: list[tuple[Any, asyncio.Future[BenchItem | None]]] = []
    tasks: set[asyncio.Task[None]] = set()

    async def flush(batch: list[tuple[Any, asyncio.Future[BenchItem | None]]]) -> None:
        on_batch()
        try:
            raws = await fetch([k for k, _ in batch])
        except BaseException as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), raw in zip(batch, raws, strict=True):
            if not fut.done():
                fut.set_result(None if raw is None else decode(raw))

    def start() -> None:
        batch = pending[:]
        pending.clear()
        task = asyncio.get_running_loop().create_task(flush(batch))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def get(pk: str, sk: str) -> BenchItem | None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[BenchItem | None] = loop.create_future()
        if not pending:
            loop.call_soon(start)
        pending.append((key_of(pk, sk), fut))
        return await fut

    return get


class CoalescedRedisDriver(RedisDriver):
    """``raw:redis-mget-coalesced``: concurrent gets coalesced by hand into one MGET per loop tick."""

    def __init__(self, url: str, run_id: str) -> None:
        super().__init__(url, run_id, batch=False)
        self.prefix = f"tsbench{run_id}coal:"

    def getter(self) -> GetFn:
        prefix = self.prefix

        def batch() -> None:
            self.trips += 1

        return coalescing_getter(self._redis.mget, lambda pk, sk: f"{prefix}{pk}:{sk}", batch)


class CoalescedAiomcacheDriver(AiomcacheDriver):
    """``raw:aiomcache-multiget-coalesced``: concurrent gets coalesced by hand into one batch per loop tick, sent as
    one multi_get per node (see :class:`AiomcacheDriver`)."""

    caps = frozenset({GET, CONCURRENT})

    def __init__(self, url: str, run_id: str) -> None:
        super().__init__(url, run_id)
        self.prefix = f"tsbench{run_id}mccoal:"

    def getter(self) -> GetFn:
        return coalescing_getter(self.fetcher(), self.key_of(), lambda: None)  # trips: one per node request


class AiocacheDriver(Driver):
    """aiocache ``RedisCache`` with its default JSON serializer."""

    caps = frozenset({GET, GET_MANY, CONCURRENT})

    def __init__(self, url: str, run_id: str) -> None:
        self.url = url
        self.namespace = f"tsbench{run_id}aiocache"
        self.trips = 0
        self._cache: Any = None
        self._keys: list[str] = []

    async def open(self, data: Dataset) -> None:
        from aiocache import RedisCache

        parts = urlsplit(self.url)
        self._cache = RedisCache(
            endpoint=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            db=int(parts.path.lstrip("/") or 0),
            password=parts.password,
            namespace=self.namespace,
            pool_max_size=MAX_CONNECTIONS,  # its default pool (redis-py's 100) raises at 256 concurrent gets
        )
        pairs = [(f"{pk}:{sk}", msgspec.to_builtins(data.item((pk, sk)))) for pk, sk in data.cached_keys]
        self._keys = [k for k, _ in pairs]
        await self._cache.multi_set(pairs)

    async def aclose(self) -> None:
        if self._cache is not None:
            with contextlib.suppress(Exception):
                for key in self._keys:
                    await self._cache.delete(key)
            await self._cache.close()

    def counters(self) -> dict[str, int]:
        return {"tier": self.trips}

    def getter(self) -> GetFn:
        get_raw = self._cache.get
        convert = msgspec.convert

        async def get(pk: str, sk: str) -> BenchItem | None:
            self.trips += 1
            value = await get_raw(f"{pk}:{sk}")
            return None if value is None else convert(value, BenchItem)

        return get

    def batch_getter(self) -> GetManyFn:
        multi_get = self._cache.multi_get
        convert = msgspec.convert

        async def get_many(keys: Sequence[tuple[str, str]]) -> list[BenchItem | None]:
            self.trips += 1
            values = await multi_get([f"{pk}:{sk}" for pk, sk in keys])
            return [None if v is None else convert(v, BenchItem) for v in values]

        return get_many


class CashewsDriver(Driver):
    """cashews on Redis with its defaults (values pickled); ``client_side=True`` adds its local cache kept
    coherent by Redis client tracking, the peer of tierstore's L1 with an invalidation channel."""

    caps = frozenset({GET, GET_MANY, CONCURRENT})

    def __init__(self, url: str, run_id: str, *, client_side: bool = False) -> None:
        self.url = url
        self.client_side = client_side
        self.prefix = f"tsbench{run_id}cashews{'cs' if client_side else ''}:"
        self.trips = 0
        self._cache: Any = None
        self._keys: list[str] = []

    async def open(self, data: Dataset) -> None:
        from cashews import Cache

        self._cache = Cache()
        self._cache.setup(self.url, client_side=self.client_side)
        await self._cache.init()
        for pk, sk in data.cached_keys:
            key = f"{self.prefix}{pk}:{sk}"
            self._keys.append(key)
            await self._cache.set(key, data.item((pk, sk)), expire=3600)

    async def aclose(self) -> None:
        if self._cache is not None:
            with contextlib.suppress(Exception):
                if self._keys:
                    await self._cache.delete_many(*self._keys)
            with contextlib.suppress(Exception), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # cashews calls redis-py's deprecated close()
                await self._cache.close()

    def counters(self) -> dict[str, int]:
        # With client_side=True most calls never reach Redis, and cashews does not say which did.
        return {} if self.client_side else {"tier": self.trips}

    def getter(self) -> GetFn:
        get_raw, prefix = self._cache.get, self.prefix

        async def get(pk: str, sk: str) -> BenchItem | None:
            self.trips += 1
            value: BenchItem | None = await get_raw(f"{prefix}{pk}:{sk}")
            return value

        return get

    def batch_getter(self) -> GetManyFn:
        get_many_raw, prefix = self._cache.get_many, self.prefix

        async def get_many(keys: Sequence[tuple[str, str]]) -> list[BenchItem | None]:
            self.trips += 1
            return list(await get_many_raw(*(f"{prefix}{pk}:{sk}" for pk, sk in keys)))

        return get_many
