"""Writes cancelled at random points leave no cache disagreeing with the store, on every store × tier.

Each round starts a write — put, put_many, delete or a transaction of a put and a delete — with a few readers
of the same keys, lets the event loop run a random number of steps (so the cancellation lands anywhere: before
the store call, during it, after the commit while the caches are maintained, or after the write returned),
then cancels the write and some readers. Two databases ("processes") share the store and the cache namespace.

Afterwards — once the cache maintenance the cancelled writes left running is done — every key reads, through
every tier of both processes, exactly what the store holds. Rounds are seeded (reproducible per
configuration); the property must hold at any cancellation point, so it is not a matter of timing luck.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest

import tierstore
from tierstore import ConditionFailed, MemoryStore, Repository

from _models import Customer
from _servers import MATRIX, TIERS, store_url, tier_url

pytestmark = pytest.mark.property

KEYS = ("a", "b", "c", "d")
ROUNDS = int(os.environ.get("TIERSTORE_CANCEL_ROUNDS", "8"))
MAX_STEPS = 40  # loop steps before the cancellation


async def settle(*dbs: tierstore.Database) -> None:
    """Wait for the cache maintenance that cancelled writes left running."""
    for db in dbs:
        pending = list(db.cache._maintaining)
        if pending:
            done, _ = await asyncio.wait(pending, timeout=10)
            assert len(done) == len(pending), "cache maintenance did not end"


async def one_write(repo: Repository[Customer], db: tierstore.Database, rnd: random.Random, n: int) -> None:
    kind = rnd.choice(("put", "put", "put_many", "delete", "transaction"))
    k1, k2 = rnd.sample(KEYS, 2)
    if kind == "put":
        await repo.put(Customer(k1, f"w{n}"))
    elif kind == "put_many":
        await repo.put_many([Customer(k1, f"w{n}"), Customer(k2, f"w{n}")])
    elif kind == "delete":
        await repo.delete(k1)
    else:
        async with db.transaction() as tx:
            tx.put(Customer(k1, f"w{n}"))
            tx.delete(Customer, k2)


async def swallow(task: asyncio.Task[Any]) -> None:
    with contextlib.suppress(asyncio.CancelledError, ConditionFailed):
        await task


@pytest.mark.parametrize("config", MATRIX)
async def test_cancelled_writes_leave_every_cache_equal_to_the_store(config: tuple[str, str], tmp_path: Path) -> None:
    store_name, tier_name = config
    tiers = TIERS[tier_name]
    prefix = f"cx{uuid.uuid4().hex[:10]}"
    # Both processes share the store of record (for memory://, one object: each URL would build its own).
    store: Any = MemoryStore() if store_name == "memory" else store_url(store_name, tmp_path)
    a = await tierstore.connect(store, [tier_url(t, prefix) for t in tiers]).open()
    shared = [tier_url(t, prefix) for t in tiers if t != "memory"]
    b = await tierstore.connect(store, shared).open() if shared else None
    try:
        await a.create_tables(Customer)
        await a.store.truncate(a.repository(Customer).schema)
        ra = a.repository(Customer)
        rb = b.repository(Customer) if b is not None else None
        rnd = random.Random(zlib.crc32(f"{store_name}-{tier_name}".encode()))
        for k in KEYS:
            await ra.put(Customer(k, "start"))
            await ra.get(k)
        cancelled = 0
        for n in range(ROUNDS):
            writer = asyncio.create_task(one_write(ra, a, rnd, n))
            readers = [asyncio.create_task(ra.get(rnd.choice(KEYS))) for _ in range(rnd.randint(0, 2))]
            if rb is not None:
                readers += [asyncio.create_task(rb.get(rnd.choice(KEYS))) for _ in range(rnd.randint(0, 2))]
            for _ in range(min(MAX_STEPS, int(rnd.expovariate(0.2)))):  # mostly early, sometimes late
                await asyncio.sleep(0)
            if not writer.done():
                cancelled += 1
            writer.cancel()
            for r in readers:
                if rnd.random() < 0.3:
                    r.cancel()
            for t in (writer, *readers):
                await swallow(t)
        await settle(a, *([b] if b is not None else []))
        for k in KEYS:
            truth = await ra.get(k, consistent=True)
            want = None if truth is None else (truth.name, truth.version)
            for repo in (ra, rb, ra):
                if repo is None:
                    continue
                got = await repo.get(k)
                assert (None if got is None else (got.name, got.version)) == want, (k, repo)
        assert cancelled > 0, "no write was cancelled before it returned: the property was not exercised"
    finally:
        await a.aclose()
        if b is not None:
            await b.aclose()
