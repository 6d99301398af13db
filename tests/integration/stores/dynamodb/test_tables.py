"""The DynamoDB control plane against DynamoDB Local: tables, global and local indexes, TTL, billing modes,
schema evolution, table names.

Most tests run on both data-plane transports: the raw wire path (the default) and the aioboto3 client.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

import tierstore
import tierstore.backends
from tierstore import ConfigError, Entity, Index, PartitionKey, TierstoreError, Unsupported, le
from tierstore.query import Query
from tierstore.stores.dynamodb import DynamoStore, DynamoStoreConfig

from _models import Event, Order
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


# -- schema ------------------------------------------------------------------------------------------------


async def test_ensure_schema_creates_table_gsi_and_ttl(store: DynamoStore) -> None:
    await make(store, Order, Event)
    orders = store._table(tierstore.backends.schema_of(Order))
    desc = (await store._call("DescribeTable", {"TableName": orders.name}, idempotent=True, control=True))["Table"]
    assert desc["TableStatus"] == "ACTIVE"
    assert desc["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert [g["IndexName"] for g in desc["GlobalSecondaryIndexes"]] == ["by_status"]
    assert {k["AttributeName"]: k["KeyType"] for k in desc["KeySchema"]} == {"customer_id": "HASH", "order_id": "RANGE"}
    events = store._table(tierstore.backends.schema_of(Event))
    ttl = await store._call("DescribeTimeToLive", {"TableName": events.name}, idempotent=True, control=True)
    assert ttl["TimeToLiveDescription"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    before = store.stats.round_trips
    await make(store, Order, Event)  # idempotent, and free once done
    assert store.stats.round_trips == before
    again = DynamoStore(dataclasses.replace(store.config))
    await again.open()
    try:
        await make(again, Order, Event)  # a second process: describes, creates nothing
    finally:
        await again.aclose()


async def test_provisioned_billing() -> None:
    s = DynamoStore(config(billing="provisioned", read_capacity=3, write_capacity=4))
    await s.open()
    try:
        await make(s, Order)
        t = s._table(tierstore.backends.schema_of(Order))
        desc = (await s._call("DescribeTable", {"TableName": t.name}, idempotent=True, control=True))["Table"]
        assert desc["ProvisionedThroughput"]["ReadCapacityUnits"] == 3
        assert desc["ProvisionedThroughput"]["WriteCapacityUnits"] == 4
        assert desc["GlobalSecondaryIndexes"][0]["ProvisionedThroughput"]["WriteCapacityUnits"] == 4
    finally:
        await drop_tables(s)
        await s.aclose()


class EvolveV1(Entity, table="ts_evolve"):
    id: PartitionKey[str]
    colour: str = "red"


class EvolveV2(Entity, table="ts_evolve", indexes=[Index("by_colour", "colour")]):
    id: PartitionKey[str]
    colour: str = "red"


class WrongKey(Entity, table="ts_evolve"):
    other: PartitionKey[str]


async def test_ensure_schema_adds_new_indexes_and_refuses_a_different_key(store: DynamoStore) -> None:
    await make(store, EvolveV1)
    await store.put_many(tierstore.backends.schema_of(EvolveV1), [EvolveV1("a", "blue"), EvolveV1("b")])
    await make(store, EvolveV2)
    page = await store.query(tierstore.backends.schema_of(EvolveV2), Query(("blue",), index="by_colour"))
    assert [e.id for e in page] == ["a"]
    with pytest.raises(ConfigError):
        await make(store, WrongKey)


@dataclasses.dataclass(frozen=True, slots=True)
class LocalIndex(Index):
    """An Index flagged ``local`` (the flag DynamoStore reads to create an LSI instead of a GSI)."""

    local: bool = True


class Timeline(Entity, table="ts_timeline", indexes=[LocalIndex("by_score", "user", "score"), Index("by_tag", "tag")]):
    user: PartitionKey[str]
    post: tierstore.SortKey[str]
    score: int
    tag: str = "t"


class TimelineBare(Entity, table="ts_timeline"):
    user: PartitionKey[str]
    post: tierstore.SortKey[str]


async def test_local_secondary_indexes(store: DynamoStore) -> None:
    await make(store, Timeline)
    t = store._table(tierstore.backends.schema_of(Timeline))
    desc = (await store._call("DescribeTable", {"TableName": t.name}, idempotent=True, control=True))["Table"]
    assert [i["IndexName"] for i in desc["LocalSecondaryIndexes"]] == ["by_score"]
    assert [i["IndexName"] for i in desc["GlobalSecondaryIndexes"]] == ["by_tag"]
    schema = tierstore.backends.schema_of(Timeline)
    await store.put_many(schema, [Timeline("u1", f"p{i}", score=10 - i) for i in range(5)] + [Timeline("u2", "p", 1)])
    page = await store.query(schema, Query(("u1",), index="by_score", sort=le(8), consistent=True))  # LSIs can
    assert [x.post for x in page] == ["p4", "p3", "p2"]
    with pytest.raises(Unsupported):
        await store.query(schema, Query(("t",), index="by_tag", consistent=True))


async def test_local_indexes_only_come_with_the_table(store: DynamoStore) -> None:
    await make(store, TimelineBare)
    with pytest.raises(ConfigError, match="only"):
        await make(store, Timeline)


async def test_short_table_names_need_a_prefix() -> None:
    class Tiny(Entity, table="ab"):
        id: PartitionKey[str]

    s = DynamoStore(DynamoStoreConfig())
    with pytest.raises(ConfigError):
        s._table(tierstore.backends.schema_of(Tiny))
    assert DynamoStore(DynamoStoreConfig(table_prefix="x"))._table(tierstore.backends.schema_of(Tiny)).name == "xab"
