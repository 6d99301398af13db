"""Micro-benchmarks of the Redis and Memcached tiers against the raw clients, in one process and one run.

    PYTHONPATH=src python benchmarks/tiers_micro.py [--n 3000] [--rounds 3]

Prints µs per operation (median of rounds) for each layer of a cache hit — raw client, the tier, the tiered
path, the repository — so a regression can be pinned to a layer. Ratios within one run are what count: the
machines are noisy (see reference/baseline-costs.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

import tierstore
from tierstore import Entity, MemoryStore, PartitionKey, SortKey, Version
from tierstore.codecs import codec_for
from tierstore.config import tier_config

REDIS_URL = os.environ.get("TIERSTORE_REDIS_URL", "redis://127.0.0.1:6379/0")
MEMCACHED_URL = os.environ.get("TIERSTORE_MEMCACHED_URL", "memcached://127.0.0.1:11211,127.0.0.1:11212")


class Item(Entity, table="micro_items"):
    pk: PartitionKey[str]
    sk: SortKey[str]
    a: int = 0
    b: str = ""
    c: float = 0.0
    d: list[int] = []
    e: str = ""
    f: int = 0
    g: bool = False
    version: Version = 0


def make_item(i: int) -> Item:
    return Item(f"p{i % 10}", f"s{i}", i, "x" * 40, 1.5, [1, 2, 3], "y" * 60, i * 7, True)


async def timed(name: str, fn: Callable[[], Awaitable[Any]], n: int, rounds: int, results: dict[str, float]) -> None:
    for _ in range(200):
        await fn()
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            await fn()
        samples.append((time.perf_counter() - t) / n * 1e6)
    results[name] = statistics.median(samples)


async def timed_concurrent(name: str, fn: Callable[[], Awaitable[Any]], n: int, rounds: int, results: dict[str, float],
                           workers: int = 64) -> None:
    async def worker(k: int) -> None:
        for _ in range(k):
            await fn()

    await asyncio.gather(*(worker(10) for _ in range(workers)))
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        await asyncio.gather(*(worker(n // workers) for _ in range(workers)))
        samples.append((time.perf_counter() - t) / (n // workers * workers) * 1e6)
    results[name] = statistics.median(samples)


async def redis_layers(n: int, rounds: int) -> dict[str, float]:
    import redis.asyncio as redis

    from tierstore.tiers.redis import RedisTier

    results: dict[str, float] = {}
    prefix = f"micro{uuid.uuid4().hex[:8]}"
    items = [make_item(i) for i in range(100)]
    payload_dec = msgspec.msgpack.Decoder(Item)
    enc = msgspec.msgpack.Encoder()
    raw = redis.Redis.from_url(REDIS_URL)
    await raw.mset({f"{prefix}:raw:{i}": enc.encode(it) for i, it in enumerate(items)})

    async def raw_get() -> Any:
        return payload_dec.decode(await raw.get(f"{prefix}:raw:7"))

    raw_keys = [f"{prefix}:raw:{i}" for i in range(100)]

    async def raw_mget() -> Any:
        return [payload_dec.decode(v) for v in await raw.mget(raw_keys)]

    store = MemoryStore()
    db = await tierstore.connect(store, [f"{REDIS_URL}?prefix={prefix}"]).open()
    repo = db.repository(Item)
    await repo.put_many(items)
    await repo.get_many([(it.pk, it.sk) for it in items])
    tier = db.cache.tiers[0]
    assert isinstance(tier, RedisTier)
    codec = codec_for(tierstore.schema_of(Item))
    ck = tierstore.schema_of(Item).cache_key(("p7", "s7"))
    cks = [tierstore.schema_of(Item).cache_key((it.pk, it.sk)) for it in items]

    async def tier_get() -> Any:
        (v,) = await tier.get_many([ck])
        return codec.decode(v)  # type: ignore[arg-type]

    async def tiered_get() -> Any:
        return await db.cache.read_many(codec, [ck], _never)

    async def repo_get() -> Any:
        return await repo.get("p7", "s7")

    keys = [(it.pk, it.sk) for it in items]

    async def repo_get_many() -> Any:
        return await repo.get_many(keys)

    async def tier_get_many() -> Any:
        return [codec.decode(v) for v in await tier.get_many(cks)]  # type: ignore[arg-type]

    for _ in range(2):
        await timed("raw:redis-get-decode", raw_get, n, rounds, results)
        await timed("tier.get_many([1])+decode", tier_get, n, rounds, results)
        await timed("tiered.read_many([1])", tiered_get, n, rounds, results)
        await timed("repo.get (redis, no L1)", repo_get, n, rounds, results)
        await timed("raw:redis-mget-decode 100", raw_mget, n // 10, rounds, results)
        await timed("tier.get_many(100)+decode", tier_get_many, n // 10, rounds, results)
        await timed("repo.get_many 100", repo_get_many, n // 10, rounds, results)
        await timed_concurrent("raw get x64 concurrent (per op)", raw_get, n * 4, rounds, results)
        await timed_concurrent("repo.get x64 concurrent (per op)", repo_get, n * 4, rounds, results)
    await db.aclose()
    await raw.aclose()

    l1db = await tierstore.connect(store, ["memory://", f"{REDIS_URL}?prefix={prefix}"]).open()
    l1repo = l1db.repository(Item)
    await l1repo.get("p7", "s7")
    await l1repo.get("p7", "s7")
    assert l1db.cache.coherence is not None and l1db.cache.coherence.connected

    async def l1_get() -> Any:
        return await l1repo.get("p7", "s7")

    await timed("repo.get L1 hit (coherence on)", l1_get, n * 10, rounds, results)
    await l1db.aclose()
    return results


async def _never(idx: list[int]) -> list[Any]:
    raise AssertionError("the benchmark reads only hits")


async def memcached_layers(n: int, rounds: int) -> dict[str, float]:
    import aiomcache

    results: dict[str, float] = {}
    prefix = f"micro{uuid.uuid4().hex[:8]}"
    items = [make_item(i) for i in range(100)]
    payload_dec = msgspec.msgpack.Decoder(Item)
    enc = msgspec.msgpack.Encoder()
    host, port = MEMCACHED_URL.split("://")[1].split(",")[0].split(":")
    raw = aiomcache.Client(host, int(port))
    for i, it in enumerate(items):
        await raw.set(f"{prefix}:raw:{i}".encode(), enc.encode(it))

    async def raw_get() -> Any:
        return payload_dec.decode(await raw.get(f"{prefix}:raw:7".encode()))

    store = MemoryStore()
    db = await tierstore.connect(store, [f"{MEMCACHED_URL}?prefix={prefix}"]).open()
    repo = db.repository(Item)
    await repo.put_many(items)
    await repo.get_many([(it.pk, it.sk) for it in items])

    async def repo_get() -> Any:
        return await repo.get("p7", "s7")

    raw_keys = [f"{prefix}:raw:{i}".encode() for i in range(100)]

    async def raw_multi() -> Any:
        return [payload_dec.decode(v) for v in await raw.multi_get(*raw_keys)]

    keys = [(it.pk, it.sk) for it in items]

    async def repo_get_many() -> Any:
        return await repo.get_many(keys)

    for _ in range(2):
        await timed("raw:aiomcache-get-decode", raw_get, n, rounds, results)
        await timed("repo.get (memcached, no L1)", repo_get, n, rounds, results)
        await timed("raw:aiomcache multi_get 100", raw_multi, n // 10, rounds, results)
        await timed("repo.get_many 100 (memcached)", repo_get_many, n // 10, rounds, results)
    await db.aclose()
    await raw.close()
    return results


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", choices=["redis", "memcached"], default=None)
    args = ap.parse_args()
    out: dict[str, float] = {}
    if args.only in (None, "redis"):
        out.update(await redis_layers(args.n, args.rounds))
    if args.only in (None, "memcached"):
        out.update(await memcached_layers(args.n, args.rounds))
    width = max(map(len, out))
    for name, us in out.items():
        print(f"{name:<{width}}  {us:9.2f} µs/op", file=sys.stdout)


if __name__ == "__main__":
    del tier_config  # imported for users who adapt this script to other URLs
    asyncio.run(main())
