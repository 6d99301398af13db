"""The DAX-style policy on tierstore's own tiers, over DynamoDB Local: query-cache freshness after writes.

DAX's query cache serves results older than an acknowledged write until its TTL runs out; this policy's must
not: every test writes, then queries, and expects the write.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

import tierstore
import tierstore.backends
from tierstore import Database, MemoryTier, TierstoreError, ge
from tierstore.policies.base import QueryCache
from tierstore.policies.dax import DaxStylePolicy
from tierstore.query import Page, Query
from tierstore.stores.dynamodb import DynamoStore, DynamoStoreConfig
from tierstore.tiers.base import CacheTier

from _models import ALL, Customer, Order
from _servers import DYNAMODB_URL, REDIS_URL, require

pytestmark = [pytest.mark.dynamodb, pytest.mark.redis]


def redis_tier(prefix: str) -> CacheTier:
    require(REDIS_URL, "redis")
    tier: CacheTier = tierstore.config.tier_config(f"{REDIS_URL}?prefix={prefix}").build()
    return tier


@pytest.fixture
async def store() -> AsyncIterator[DynamoStore]:
    require(DYNAMODB_URL, "dynamodb")
    s = DynamoStore(dataclasses.replace(DynamoStoreConfig.from_url(DYNAMODB_URL),
                                        table_prefix=f"q{uuid.uuid4().hex[:10]}_"))
    await s.open()
    for e in ALL:
        await s.ensure_schema(tierstore.backends.schema_of(e))
    try:
        yield s
    finally:
        for t in list(s._tables.values()):
            with contextlib.suppress(TierstoreError):
                await s._call("DeleteTable", {"TableName": t.name}, idempotent=False, control=True)
        await s.aclose()


async def open_db(store: DynamoStore, tiers: Sequence[CacheTier], policy: DaxStylePolicy) -> Database:
    db = tierstore.connect(store, list(tiers), policy=policy.item_policy, query_cache=policy)
    await db.open()
    return db


@pytest.fixture(params=["memory", "redis", "memory+redis"])
async def setup(
    request: pytest.FixtureRequest, store: DynamoStore
) -> AsyncIterator[tuple[Database, DaxStylePolicy]]:
    prefix = f"q{uuid.uuid4().hex[:8]}"
    tiers: list[CacheTier] = []
    if "memory" in request.param:
        tiers.append(MemoryTier(max_items=10_000))
    if "redis" in request.param:
        tiers.append(redis_tier(prefix))
    policy = DaxStylePolicy(tiers)  # the same tier objects serve items and queries
    db = await open_db(store, tiers, policy)
    try:
        yield db, policy
    finally:
        await db.aclose()
        await policy.aclose()


def trips(db: Database) -> int:
    return db.store.stats.round_trips


async def test_repeated_queries_are_served_from_the_cache(setup: tuple[Database, DaxStylePolicy]) -> None:
    db, policy = setup
    orders = db.repository(Order)
    await orders.put_many([Order("c1", f"o{i}", i) for i in range(5)])
    first = await orders.query("c1")
    before = trips(db)
    again = await orders.query("c1")
    assert [o.order_id for o in again] == [o.order_id for o in first] and len(again) == 5
    assert trips(db) == before and policy.stats.hits == 1


@pytest.mark.parametrize("write", ["put", "put_many", "delete", "delete_many", "transaction", "conditional"])
async def test_queries_see_every_kind_of_write_at_once(setup: tuple[Database, DaxStylePolicy], write: str) -> None:
    db, _ = setup
    orders = db.repository(Order)
    await orders.put_many([Order("c1", f"o{i}", i) for i in range(3)])
    assert [o.total_cents for o in await orders.query("c1")] == [0, 1, 2]  # cached now
    if write == "put":
        await orders.put(Order("c1", "o1", 100), check_version=False)
        expected = [0, 100, 2]
    elif write == "put_many":
        await orders.put_many([Order("c1", "o3", 3), Order("c1", "o0", 50)], check_version=False)
        expected = [50, 1, 2, 3]
    elif write == "delete":
        await orders.delete("c1", "o0")
        expected = [1, 2]
    elif write == "delete_many":
        await orders.delete_many([("c1", "o0"), ("c1", "o2")])
        expected = [1]
    elif write == "transaction":
        async with db.transaction() as tx:
            tx.put(Order("c1", "o9", 9), check_version=False)
            tx.delete(Order, "c1", "o1")
        expected = [0, 2, 9]
    else:
        current = await orders.get("c1", "o2")
        assert current is not None
        await orders.put(Order("c1", "o2", 22), expect_version=current.version)
        expected = [0, 1, 22]
    assert [o.total_cents for o in await orders.query("c1")] == expected


async def test_other_partitions_stay_cached(setup: tuple[Database, DaxStylePolicy]) -> None:
    db, _ = setup
    orders = db.repository(Order)
    await orders.put_many([Order("c1", "o1", 1), Order("c2", "o1", 2)])
    await orders.query("c1")
    await orders.put(Order("c2", "o2", 3), check_version=False)
    before = trips(db)
    assert len(await orders.query("c1")) == 1
    assert trips(db) == before  # c1's generation was not bumped by a write to c2


async def test_index_queries_see_a_moved_item(setup: tuple[Database, DaxStylePolicy]) -> None:
    db, _ = setup
    orders = db.repository(Order)
    await orders.put_many([Order("c1", f"o{i}", i, status="new") for i in range(4)])
    assert [o.order_id for o in await orders.query("new", index="by_status")] == ["o0", "o1", "o2", "o3"]
    assert [o.order_id for o in await orders.query("paid", index="by_status")] == []
    # Leaves the "new" partition of the index.
    await orders.put(Order("c1", "o2", 2, status="paid"), check_version=False)
    assert [o.order_id for o in await orders.query("new", index="by_status")] == ["o0", "o1", "o3"]
    assert [o.order_id for o in await orders.query("paid", index="by_status")] == ["o2"]


async def test_pages_are_cached_per_full_request(setup: tuple[Database, DaxStylePolicy]) -> None:
    db, _ = setup
    orders = db.repository(Order)
    await orders.put_many([Order("c1", f"o{i}", i) for i in range(6)])
    p1 = await orders.query("c1", limit=2)
    p2 = await orders.query("c1", limit=2, cursor=p1.cursor)
    rev = await orders.query("c1", limit=2, reverse=True)
    filtered = await orders.query("c1", sort=ge("o4"))
    before = trips(db)
    assert [o.order_id for o in await orders.query("c1", limit=2)] == ["o0", "o1"]
    assert [o.order_id for o in await orders.query("c1", limit=2, cursor=p1.cursor)] == [o.order_id for o in p2]
    assert [o.order_id for o in await orders.query("c1", limit=2, reverse=True)] == [o.order_id for o in rev]
    assert [o.order_id for o in await orders.query("c1", sort=ge("o4"))] == [o.order_id for o in filtered]
    assert trips(db) == before
    await orders.put(Order("c1", "o5", 55), check_version=False)
    assert [o.total_cents for o in await orders.query("c1", sort=ge("o4"))] == [4, 55]


async def test_consistent_reads_bypass_both_caches(setup: tuple[Database, DaxStylePolicy]) -> None:
    db, policy = setup
    orders = db.repository(Order)
    await orders.put(Order("c1", "o1", 1), check_version=False)
    await orders.query("c1")
    await orders.get("c1", "o1")
    hits, misses = policy.stats.hits, policy.stats.misses
    for _ in range(2):
        before = trips(db)
        assert len(await orders.query("c1", consistent=True)) == 1
        assert (await orders.get("c1", "o1", consistent=True)) is not None
        assert trips(db) == before + 2
    assert (policy.stats.hits, policy.stats.misses) == (hits, misses)


async def test_negative_results_are_cached_until_a_write(setup: tuple[Database, DaxStylePolicy]) -> None:
    db, _ = setup
    orders = db.repository(Order)
    customers = db.repository(Customer)
    assert len(await orders.query("nobody")) == 0
    assert await customers.get("ghost") is None
    before = trips(db)
    assert len(await orders.query("nobody")) == 0
    assert await customers.get("ghost") is None
    assert trips(db) == before  # both "nothing" answers came from the caches
    await orders.put(Order("nobody", "o1", 1), check_version=False)
    await customers.put(Customer("ghost", "boo"), check_version=False)
    assert len(await orders.query("nobody")) == 1
    assert (await customers.get("ghost")) is not None


async def test_item_cache_is_written_through(setup: tuple[Database, DaxStylePolicy]) -> None:
    db, policy = setup
    assert policy.item_policy.write_mode == "write_through" and db.cache.policy is policy.item_policy
    customers = db.repository(Customer)
    stored = await customers.put(Customer("c1", "Ann"), check_version=False)
    before = trips(db)
    assert await customers.get("c1") == stored  # the write filled the cache: no read reached the store
    assert trips(db) == before


async def test_a_query_that_read_before_a_write_cannot_serve_after_it(store: DynamoStore) -> None:
    """The race DAX loses: a query reads the store, a write commits, the query fills the cache late."""
    tier = MemoryTier()
    policy = DaxStylePolicy([tier])
    db = await open_db(store, [tier], policy)
    try:
        orders = db.repository(Order)
        schema = orders.schema
        await orders.put(Order("c1", "o1", 1), check_version=False)
        loaded = asyncio.Event()
        release = asyncio.Event()

        async def slow_load() -> Page[Order]:
            page = await store.query(schema, Query(("c1",)))  # reads the old value ...
            loaded.set()
            await release.wait()  # ... and fills only after the write below has returned
            return page

        slow = asyncio.create_task(policy.query(schema, Query(("c1",)), slow_load))
        await loaded.wait()
        await orders.put(Order("c1", "o1", 2), check_version=False)
        release.set()
        assert [o.total_cents for o in await slow] == [1]  # that reader's own answer predates the write
        assert [o.total_cents for o in await orders.query("c1")] == [2]  # nobody after the write sees it
    finally:
        await db.aclose()


async def test_two_processes_share_generations_through_redis(store: DynamoStore) -> None:
    prefix = f"q{uuid.uuid4().hex[:8]}"
    local = MemoryTier()
    shared_a, shared_b = redis_tier(prefix), redis_tier(prefix)
    policy_a = DaxStylePolicy([shared_a])
    policy_b = DaxStylePolicy([local, shared_b], local_generation_ttl=0.2)
    db_a = await open_db(store, [shared_a], policy_a)
    db_b = await open_db(store, [local, shared_b], policy_b)
    try:
        a, b = db_a.repository(Order), db_b.repository(Order)
        await a.put(Order("c1", "o1", 1), check_version=False)
        assert [o.total_cents for o in await b.query("c1")] == [1]
        assert [o.total_cents for o in await a.query("c1")] == [1]  # filled by b, read by a
        assert policy_a.stats.hits == 1
        await a.put(Order("c1", "o1", 2), check_version=False)
        assert [o.total_cents for o in await a.query("c1")] == [2]  # the writer's process: at once
        await asyncio.sleep(0.25)  # b's in-process tier keeps a generation for local_generation_ttl at most
        assert [o.total_cents for o in await b.query("c1")] == [2]
    finally:
        await db_a.aclose()
        await db_b.aclose()
        await policy_a.aclose()
        await policy_b.aclose()


async def test_a_generation_found_in_redis_is_copied_into_the_local_tier(store: DynamoStore) -> None:
    """After the in-process copy of a generation expires, one remote read refreshes it; the queries that
    follow are answered in-process without a Redis round trip."""
    local, shared = MemoryTier(), redis_tier(f"q{uuid.uuid4().hex[:8]}")
    policy = DaxStylePolicy([local, shared], local_generation_ttl=0.1)
    db = await open_db(store, [local, shared], policy)
    try:
        orders = db.repository(Order)
        await orders.put(Order("c1", "o1", 1), check_version=False)
        await orders.query("c1")
        await asyncio.sleep(0.15)  # the local generation expired; Redis still has it
        await orders.query("c1")  # one remote read of the generation, copied into the local tier
        before = shared.stats.round_trips
        for _ in range(5):
            assert [o.total_cents for o in await orders.query("c1")] == [1]
        assert shared.stats.round_trips == before
    finally:
        await db.aclose()
        await policy.aclose()


class FlakyTier(MemoryTier):
    """A tier whose deletes fail while ``down`` is set."""

    down = False

    async def invalidate_many(self, keys: Sequence[str]) -> None:
        if self.down:
            raise ConnectionError("tier down")
        await super().invalidate_many(keys)


async def test_a_tier_that_missed_a_generation_delete_is_not_trusted(store: DynamoStore) -> None:
    flaky = FlakyTier()
    policy = DaxStylePolicy([flaky])
    db = tierstore.connect(store, [], query_cache=policy)  # query cache only
    await db.open()
    try:
        orders = db.repository(Order)
        await orders.put(Order("c1", "o1", 1), check_version=False)
        await orders.query("c1")
        flaky.down = True
        # The generation delete fails: the old page is still there.
        await orders.put(Order("c1", "o1", 2), check_version=False)
        assert [o.total_cents for o in await orders.query("c1")] == [2]  # ... but is not read
        assert policy.stats.errors >= 1
        flaky.down = False
        await orders.query("c1")  # the delete is replayed; the tier is trusted again
        before = trips(db)
        assert [o.total_cents for o in await orders.query("c1")] == [2]
        assert trips(db) == before
    finally:
        await db.aclose()


def test_policy_is_a_query_cache() -> None:
    policy: Any = DaxStylePolicy([MemoryTier()])
    assert isinstance(policy, QueryCache)
    with pytest.raises(TierstoreError):
        DaxStylePolicy([])
