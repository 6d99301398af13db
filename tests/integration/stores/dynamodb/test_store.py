"""DynamoStore against DynamoDB Local: versions, composite keys, queries, coalescing, errors.

Most tests run on both data-plane transports: the raw wire path (the default) and the aioboto3 client.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

import tierstore
import tierstore.backends
from tierstore import (
    ConditionFailed,
    Entity,
    Index,
    PartitionKey,
    StoreError,
    TierstoreError,
    Unsupported,
    ValidationError,
    Version,
    begins_with,
    between,
    eq,
    ge,
    gt,
    le,
    lt,
)
from tierstore.query import Query, SortCondition, encode_cursor, sort_matches
from tierstore.retry import Backoff
from tierstore.stores.dynamodb import DynamoStore, DynamoStoreConfig

from _models import Blob, Customer, Order
from _servers import DYNAMODB_URL, require

pytestmark = pytest.mark.dynamodb


def config(**kw: Any) -> DynamoStoreConfig:
    require(DYNAMODB_URL, "dynamodb")
    base = DynamoStoreConfig.from_url(DYNAMODB_URL)
    return dataclasses.replace(base, table_prefix=f"t{uuid.uuid4().hex[:10]}_", **kw)


async def drop_tables(store: DynamoStore) -> None:
    for t in list(store._tables.values()):
        with contextlib.suppress(TierstoreError):
            await store._call("DeleteTable", {"TableName": t.name}, idempotent=False, control=True)


@pytest.fixture(params=[True, False], ids=["wire", "botocore"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[DynamoStore]:
    s = DynamoStore(config(fast_path=request.param))
    await s.open()
    try:
        yield s
    finally:
        await drop_tables(s)
        await s.aclose()


async def make(s: DynamoStore, *entities: type[Entity]) -> None:
    for e in entities:
        await s.ensure_schema(tierstore.backends.schema_of(e))


# -- reads, writes, versions -------------------------------------------------------------------------------


async def test_versions_and_conditions(store: DynamoStore) -> None:
    await make(store, Customer)
    c = tierstore.backends.schema_of(Customer)
    v1 = await store.put(c, Customer("c1", "a"))
    assert v1.version == 1
    v2 = await store.put(c, Customer("c1", "b", version=99))  # the version passed in is ignored
    assert v2.version == 2
    v3 = await store.put(c, Customer("c1", "c"), expect_version=2)
    assert v3.version == 3
    with pytest.raises(ConditionFailed) as info:
        await store.put(c, Customer("c1", "stale"), expect_version=2)
    assert info.value.backend == "dynamodb" and info.value.entity == "Customer"
    with pytest.raises(ConditionFailed):
        await store.put(c, Customer("c1", "again"), if_not_exists=True)
    fresh = await store.put(c, Customer("c2", "new"), if_not_exists=True)
    assert fresh.version == 1
    assert await store.get(c, ("c1",), consistent=True) == v3
    with pytest.raises(ConditionFailed):
        await store.delete(c, ("c1",), expect_version=2)
    assert await store.delete(c, ("c1",), expect_version=3) is True
    assert await store.delete(c, ("c1",)) is False
    with pytest.raises(ConditionFailed):
        await store.delete(c, ("c1",), expect_version=3)


async def test_unversioned_puts_replace_whole_items(store: DynamoStore) -> None:
    await make(store, Blob)
    b = tierstore.backends.schema_of(Blob)
    await store.put(b, Blob(1, b"x", (1, 2)))
    stored = await store.put(b, Blob(1, b"y"))
    assert stored == Blob(1, b"y")
    assert await store.get(b, (1,)) == Blob(1, b"y")
    with pytest.raises(ConditionFailed):
        await store.put(b, Blob(1, b"z"), if_not_exists=True)


class Sparse(Entity, table="ts_sparse", omit_defaults=True):
    id: PartitionKey[str]
    note: str | None = None
    n: int = 0
    version: Version = 0


async def test_versioned_put_removes_attributes_the_item_no_longer_has(store: DynamoStore) -> None:
    await make(store, Sparse)
    s = tierstore.backends.schema_of(Sparse)
    await store.put(s, Sparse("a", note="x", n=5))
    stored = await store.put(s, Sparse("a"))  # note and n omitted (defaults): must not survive
    assert stored.version == 2
    t = store._table(s)
    raw = await store._call("GetItem", {"TableName": t.name, "Key": {"id": {"S": "a"}}, "ConsistentRead": True},
                            idempotent=True)
    assert set(raw["Item"]) == {"id", "version"}
    assert await store.get(s, ("a",), consistent=True) == Sparse("a", version=2)


async def test_put_many_versions_and_get_many(store: DynamoStore) -> None:
    await make(store, Customer)
    c = tierstore.backends.schema_of(Customer)
    await store.put(c, Customer("c3", "old"))
    stored = await store.put_many(c, [Customer(f"c{i}", f"n{i}") for i in range(40)])
    assert [s.version for s in stored] == [1, 1, 1, 2] + [1] * 36
    got = await store.get_many(c, [(f"c{i}",) for i in range(45)])
    assert [g.name if g else None for g in got] == [f"n{i}" for i in range(40)] + [None] * 5


async def test_truncate_scan_and_restore(store: DynamoStore) -> None:
    await make(store, Customer)
    c = tierstore.backends.schema_of(Customer)
    stored = await store.put_many(c, [Customer(f"c{i:02d}", "x") for i in range(60)])
    await store.put(c, stored[0])  # version 2
    seen: list[Customer] = []
    after = None
    while page := await store.scan(c, after=after, limit=25):
        seen += page
        after = c.key_of(page[-1])
    assert sorted(x.id for x in seen) == [f"c{i:02d}" for i in range(60)]
    await store.truncate(c)
    assert await store.scan(c) == []
    await store.restore_many(c, seen)  # versions kept exactly
    back = {x.id: x.version for x in await store.scan(c, limit=100)}
    assert back == {x.id: x.version for x in seen} and back["c00"] == 2


# -- composite keys and queries ----------------------------------------------------------------------------


class Log(Entity, table="ts_log", partition_key=("tenant", "app"), sort_key=("day", "seq"),
          indexes=[Index("by_app", ("app", "level"), ("seq", "day"))]):
    tenant: str
    app: int
    day: str
    seq: int
    level: str = "info"


DAYS = ["", "\x00", "\x00a", "a", "a\x00", "a\x01", "ab", "b", "é", "🙂"][1:]  # keys are never empty


@pytest.mark.parametrize(
    "cond",
    [eq("a"), eq("a\x00"), lt("a"), le("a"), gt("a"), ge("a"), between("\x00a", "ab"),
     SortCondition("between", ("ab", "a")),  # an inverted range built by hand: between() refuses it
     begins_with("a"), begins_with("\x00"), begins_with(""), lt(""), ge("")],
    ids=repr,
)
async def test_composite_sort_conditions_on_dynamodb(store: DynamoStore, cond: SortCondition) -> None:
    await make(store, Log)
    schema = tierstore.backends.schema_of(Log)
    items = [Log("t", 1, d, s) for d in DAYS for s in (-1, 0, 7)] + [Log("t", 2, "a", 0), Log("u", 1, "a", 0)]
    await store.put_many(schema, items)
    page = await store.query(schema, Query(("t", 1), sort=cond))
    expected = sorted((x.day, x.seq) for x in items[:-2] if sort_matches(cond, x.day))
    assert [(x.day, x.seq) for x in page] == expected
    assert page.cursor is None


async def test_composite_index_queries(store: DynamoStore) -> None:
    await make(store, Log)
    schema = tierstore.backends.schema_of(Log)
    await store.put_many(schema, [Log("t", 1, d, s, level="warn" if s % 2 else "info")
                                  for d in ("d1", "d2") for s in range(-3, 4)])
    page = await store.query(schema, Query((1, "warn"), index="by_app", sort=ge(0)))
    assert [(x.seq, x.day) for x in page] == [(1, "d1"), (1, "d2"), (3, "d1"), (3, "d2")]
    rev = await store.query(schema, Query((1, "warn"), index="by_app", reverse=True, limit=3))
    assert [(x.seq, x.day) for x in rev] == [(3, "d2"), (3, "d1"), (1, "d2")]
    nxt = await store.query(schema, Query((1, "warn"), index="by_app", reverse=True, limit=3, cursor=rev.cursor))
    assert [(x.seq, x.day) for x in nxt] == [(1, "d1"), (-1, "d2"), (-1, "d1")]
    with pytest.raises(Unsupported):
        await store.query(schema, Query((1, "warn"), index="by_app", consistent=True))


class Page60k(Entity, table="ts_pages"):
    owner: PartitionKey[str]
    n: tierstore.SortKey[int]
    body: str


async def test_pagination_over_pages_larger_than_one_megabyte(store: DynamoStore) -> None:
    await make(store, Page60k)
    schema = tierstore.backends.schema_of(Page60k)
    await store.put_many(schema, [Page60k("o", i, chr(65 + i % 26) * 60_000) for i in range(40)])  # 2.4 MB
    first = await store.query(schema, Query(("o",)))  # no limit: one DynamoDB page, cut at 1 MB
    assert 10 < len(first) < 40 and first.cursor is not None
    seen = [x.n for x in first]
    q = Query(("o",), cursor=first.cursor)
    while True:
        page = await store.query(schema, q)
        seen += [x.n for x in page]
        if page.cursor is None:
            break
        q = Query(("o",), cursor=page.cursor)
    assert seen == list(range(40))
    trips = store.stats.round_trips
    big = await store.query(schema, Query(("o",), limit=30))  # a full page though DynamoDB stops at 1 MB
    assert [x.n for x in big] == list(range(30)) and big.cursor is not None
    assert store.stats.round_trips - trips >= 2
    rest = await store.query(schema, Query(("o",), limit=30, cursor=big.cursor))
    assert [x.n for x in rest] == list(range(30, 40)) and rest.cursor is None
    exact = await store.query(schema, Query(("o",), limit=40))
    assert len(exact) == 40 and exact.cursor is None  # no empty trailing page


async def test_foreign_or_forged_cursors_are_refused_before_io(store: DynamoStore) -> None:
    await make(store, Order)
    schema = tierstore.backends.schema_of(Order)
    q = Query(("c1",), limit=2)
    before = store.stats.round_trips
    for position in (["customer_id", "S"], ["order_id", "S", "x", "customer_id", "S", "c1"],
                     ["customer_id", "N", "1", "order_id", "S", "x"], ["customer_id", "S", b"x", "order_id", "S", "x"]):
        with pytest.raises(ValidationError):
            await store.query(schema, Query(("c1",), limit=2, cursor=encode_cursor(q, position)))
    assert store.stats.round_trips == before


# -- coalescing --------------------------------------------------------------------------------------------


async def test_concurrent_gets_become_one_batch(store: DynamoStore) -> None:
    await make(store, Customer)
    c = tierstore.backends.schema_of(Customer)
    await store.put_many(c, [Customer(f"c{i}", f"n{i}") for i in range(150)])
    before = store.stats.round_trips
    keys = [(f"c{i}",) for i in range(60)] + [("c3",), ("missing",)]
    got = await asyncio.gather(*(store.get(c, k) for k in keys))
    assert [g.name if g else None for g in got] == [f"n{i}" for i in range(60)] + ["n3", None]
    assert store.stats.round_trips - before == 1
    before = store.stats.round_trips
    got = await asyncio.gather(*(store.get(c, (f"c{i}",)) for i in range(150)))
    assert [g.name for g in got] == [f"n{i}" for i in range(150)]  # type: ignore[union-attr]
    assert store.stats.round_trips - before == 2  # BatchGetItem takes 100 keys
    before = store.stats.round_trips
    mixed = await asyncio.gather(store.get(c, ("c1",)), store.get(c, ("c2",), consistent=True),
                                 store.get(c, ("c3",)), store.get(c, ("c4",), consistent=True))
    assert [m.id for m in mixed] == ["c1", "c2", "c3", "c4"]  # type: ignore[union-attr]
    assert store.stats.round_trips - before == 2  # one batch per consistency


async def test_uncoalesced_gets_are_one_call_each() -> None:
    s = DynamoStore(config(coalesce=False))
    await s.open()
    try:
        await make(s, Customer)
        c = tierstore.backends.schema_of(Customer)
        await s.put_many(c, [Customer(f"c{i}", "x") for i in range(10)])
        before = s.stats.round_trips
        await asyncio.gather(*(s.get(c, (f"c{i}",)) for i in range(10)))
        assert s.stats.round_trips - before == 10
    finally:
        await drop_tables(s)
        await s.aclose()


async def test_a_bad_key_fails_only_its_own_caller(store: DynamoStore) -> None:
    await make(store, Customer)
    c = tierstore.backends.schema_of(Customer)
    await store.put(c, Customer("c1", "a"))
    results = await asyncio.gather(store.get(c, ("c1",)), store.get(c, ("k" * 2049,)), store.get(c, ("c1",)),
                                   return_exceptions=True)
    assert isinstance(results[1], ValidationError)
    assert [r.name for r in (results[0], results[2])] == ["a", "a"]  # type: ignore[union-attr]


async def test_a_cancelled_caller_does_not_fail_the_batch(store: DynamoStore) -> None:
    await make(store, Customer)
    c = tierstore.backends.schema_of(Customer)
    await store.put_many(c, [Customer(f"c{i}", f"n{i}") for i in range(5)])
    tasks = [asyncio.create_task(store.get(c, (f"c{i}",))) for i in range(5)]
    await asyncio.sleep(0)  # every task has joined the batch; task 0 leads it
    tasks[0].cancel()  # the leader
    tasks[3].cancel()  # a follower
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError) and isinstance(results[3], asyncio.CancelledError)
    assert [r.name for r in (results[1], results[2], results[4])] == ["n1", "n2", "n4"]  # type: ignore[union-attr]


# -- errors ------------------------------------------------------------------------------------------------


async def test_missing_table_is_a_store_error(store: DynamoStore) -> None:
    with pytest.raises(StoreError, match="table not found"):
        await store.get(tierstore.backends.schema_of(Customer), ("x",))


@pytest.mark.parametrize("fast_path", [True, False], ids=["wire", "botocore"])
async def test_unreachable_endpoint_raises_store_error_only(fast_path: bool) -> None:
    s = DynamoStore(DynamoStoreConfig(endpoint_url="http://127.0.0.1:9", fast_path=fast_path,
                                      backoff=Backoff(attempts=3, base=0.001, cap=0.002), connect_timeout=0.5))
    await s.open()
    try:
        with pytest.raises(StoreError) as info:
            await s.get(tierstore.backends.schema_of(Customer), ("x",))
        assert s.stats.round_trips == 3  # connection refused: nothing was sent, so it is retried
        assert info.value.__cause__ is not None
        with pytest.raises(StoreError):
            await s.put(tierstore.backends.schema_of(Customer), Customer("x", "y"))
        with pytest.raises(StoreError):
            await s.ensure_schema(tierstore.backends.schema_of(Customer))
    finally:
        await s.aclose()


async def test_closed_store_refuses_to_reopen(store: DynamoStore) -> None:
    await store.aclose()
    await store.aclose()  # idempotent
    with pytest.raises(StoreError):
        await store.open()


# -- by URL ------------------------------------------------------------------------------------------------


async def test_connect_by_url_and_round_trip() -> None:
    require(DYNAMODB_URL, "dynamodb")
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    async with tierstore.connect(f"{DYNAMODB_URL}&table_prefix={prefix}") as db:
        assert isinstance(db.store, DynamoStore)
        orders = db.repository(Order)
        await orders.put(Order("c", "o", 1))
        assert (await orders.get("c", "o")) == Order("c", "o", 1, version=1)
        await drop_tables(db.store)
