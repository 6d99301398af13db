"""Adopting an existing DynamoDB single-table design: tables and items made with aioboto3 directly, as another
service would, then read and written through tierstore.

The table has ``pk``/``sk`` keys and a ``GSI1`` (``gsi1pk``/``gsi1sk``) that tierstore's entities do not
declare; items carry attributes of another team (``owner``) and no version attribute (legacy items).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

import tierstore
from tierstore import ConditionFailed, Entity, Index, KeyTemplate, PartitionKey, SortKey, StoreError, Version, ge, lt
from tierstore.errors import SchemaMismatch
from tierstore.stores.dynamodb import DynamoStore, DynamoStoreConfig

from _servers import DYNAMODB_URL, require

pytestmark = pytest.mark.dynamodb


class Profile(Entity, table="app"):
    pk: PartitionKey[str]
    sk: SortKey[str]
    name: str
    tags: set[str] = set()
    visits: int = 0
    version: Version = 0


class TolerantProfile(Entity, table="app", undecodable="skip"):
    pk: PartitionKey[str]
    sk: SortKey[str]
    name: str
    visits: int = 0


class WithIndex(Entity, table="app", indexes=[Index("by_name", "name")]):
    """Declares an index the team's table does not have."""

    pk: PartitionKey[str]
    sk: SortKey[str]
    name: str = ""


class WrongKeys(Entity, table="app", indexes=[Index("GSI1", "gsi1pk", "name")]):
    """A numeric partition key where the table's is a string; GSI1 with another sort key."""

    pk: PartitionKey[int]
    sk: SortKey[str]
    gsi1pk: str = "x"
    name: str = ""


CUSTOMER = KeyTemplate("pk", "CUSTOMER#{customer_id}")


class CustomerProfile(Entity, table="app", partition_key=CUSTOMER, sort_key=KeyTemplate("sk", "PROFILE"),
                      type_attribute="_et", type_name="profile"):
    """The team's profile item: pk = CUSTOMER#<id>, sk = PROFILE."""

    customer_id: str
    name: str = ""
    version: Version = 0


GSI1 = Index("GSI1", KeyTemplate("gsi1pk", "STATUS#{status}"), KeyTemplate("gsi1sk", "ORDER#{order_id}"))


class Order(Entity, table="app", partition_key=CUSTOMER, sort_key=KeyTemplate("sk", "ORDER#{order_id}"),
            type_attribute="_et", type_name="order", indexes=[GSI1]):
    """The team's order item: sk = ORDER#<id>, in GSI1 by status."""

    customer_id: str
    order_id: str
    status: str = "open"
    total: int = 0


class Visit(Entity, table="app", partition_key=KeyTemplate("pk", "SITE#{site}"), sort_key=KeyTemplate("sk", "{ts}"),
            type_attribute="_et", type_name="visit"):
    """A sort template with no constant prefix: the type attribute tells the types apart."""

    site: str
    ts: str
    path: str = "/"


@dataclasses.dataclass
class Env:
    db: tierstore.Database
    store: DynamoStore
    client: Any
    table: str


async def _create_table(client: Any, name: str) -> None:
    await client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "gsi1pk", "gsi1sk")],
        GlobalSecondaryIndexes=[{
            "IndexName": "GSI1",
            "KeySchema": [{"AttributeName": "gsi1pk", "KeyType": "HASH"},
                          {"AttributeName": "gsi1sk", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }],
        BillingMode="PAY_PER_REQUEST",
    )
    await client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    require(DYNAMODB_URL, "dynamodb")
    import aioboto3

    cfg = dataclasses.replace(DynamoStoreConfig.from_url(DYNAMODB_URL), table_prefix=f"a{uuid.uuid4().hex[:10]}_")
    session = aioboto3.Session(region_name=cfg.region or "us-east-1", aws_access_key_id="local",
                               aws_secret_access_key="local")
    async with session.client("dynamodb", endpoint_url=cfg.endpoint_url) as client:
        name = cfg.table_prefix + "app"
        await _create_table(client, name)
        store = DynamoStore(cfg)
        try:
            async with tierstore.connect(store) as db:
                yield Env(db, store, client, name)
        finally:
            await client.delete_table(TableName=name)


async def _raw(env: Env, pk: str, sk: str) -> dict[str, Any]:
    reply = await env.client.get_item(TableName=env.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True)
    item: dict[str, Any] = reply["Item"]
    return item


async def _legacy(env: Env, pk: str, sk: str, name: str) -> None:
    """An item as another service writes it: a GSI1 key, a foreign attribute, no version attribute."""
    await env.client.put_item(TableName=env.table, Item={
        "pk": {"S": pk}, "sk": {"S": sk}, "name": {"S": name}, "owner": {"S": "billing-team"},
        "gsi1pk": {"S": "NAME#" + name}, "gsi1sk": {"S": pk},
    })


def _foreign_kept(raw: dict[str, Any], name: str) -> None:
    assert raw["owner"] == {"S": "billing-team"}
    assert raw["gsi1pk"] == {"S": "NAME#" + name} and raw["gsi1sk"] == {"S": raw["pk"]["S"]}


async def test_a_legacy_item_reads_as_version_0_and_its_put_is_checked(env: Env) -> None:
    await _legacy(env, "c1", "PROFILE", "Ann")
    profiles = env.db.repository(Profile)
    got = await profiles.get("c1", "PROFILE")
    assert got == Profile("c1", "PROFILE", "Ann")  # no version attribute: version 0
    stored = await profiles.put(msgspec.structs.replace(got, name="Ann B"))  # version 0 matches "no attribute"
    assert stored.version == 1
    raw = await _raw(env, "c1", "PROFILE")
    assert raw["version"] == {"N": "1"} and raw["name"] == {"S": "Ann B"}
    with pytest.raises(ConditionFailed):
        await profiles.put(msgspec.structs.replace(got, name="stale"))  # carries version 0, stored is 1
    assert (await _raw(env, "c1", "PROFILE"))["name"] == {"S": "Ann B"}
    # An explicit expect_version=0 on another legacy item works too (attribute_not_exists OR = 0).
    await _legacy(env, "c2", "PROFILE", "Bob")
    assert (await profiles.put(Profile("c2", "PROFILE", "Bob B"), expect_version=0)).version == 1


async def test_every_put_keeps_attributes_the_entity_does_not_declare(env: Env) -> None:
    profiles = env.db.repository(Profile)
    for i in range(5):
        await _legacy(env, f"c{i}", "PROFILE", f"n{i}")
    # A checked put, an explicit expect_version, a blind put, put_many (checked and blind), a transaction.
    await profiles.put(Profile("c0", "PROFILE", "x"))
    await profiles.put(Profile("c0", "PROFILE", "y", version=1), expect_version=1)
    await profiles.put(Profile("c1", "PROFILE", "x"), check_version=False)
    await profiles.put_many([Profile("c2", "PROFILE", "x")])
    await profiles.put_many([Profile("c3", "PROFILE", "x")], check_version=False)
    async with env.db.transaction() as tx:
        tx.put(Profile("c4", "PROFILE", "x"))
    for i in range(5):
        raw = await _raw(env, f"c{i}", "PROFILE")
        _foreign_kept(raw, f"n{i}")
        assert raw["name"]["S"] in ("x", "y") and int(raw["version"]["N"]) >= 1
    # The items are still in the other team's index.
    reply = await env.client.query(
        TableName=env.table, IndexName="GSI1", KeyConditionExpression="gsi1pk = :p",
        ExpressionAttributeValues={":p": {"S": "NAME#n0"}},
    )
    assert [it["pk"]["S"] for it in reply["Items"]] == ["c0"]
    # Control: a whole-item replace (what a PutItem-based put did) loses them.
    await env.client.put_item(TableName=env.table, Item={"pk": {"S": "c0"}, "sk": {"S": "PROFILE"}, "name": {"S": "z"}})
    assert "owner" not in await _raw(env, "c0", "PROFILE")


async def test_empty_sets_are_no_attribute_so_other_writers_can_add_to_them(env: Env) -> None:
    profiles = env.db.repository(Profile)
    stored = await profiles.put(Profile("c1", "PROFILE", "Ann", tags={"a"}))
    stored = await profiles.put(msgspec.structs.replace(stored, tags=set()))
    raw = await _raw(env, "c1", "PROFILE")
    assert "tags" not in raw  # REMOVEd, not an empty list
    await env.client.update_item(
        TableName=env.table, Key={"pk": {"S": "c1"}, "sk": {"S": "PROFILE"}},
        UpdateExpression="ADD tags :t", ExpressionAttributeValues={":t": {"SS": ["vip"]}},
    )
    got = await profiles.get("c1", "PROFILE", consistent=True)
    assert got is not None and got.tags == {"vip"} and got.version == stored.version
    await profiles.put(msgspec.structs.replace(got, tags={"vip", "new"}))
    assert set((await _raw(env, "c1", "PROFILE"))["tags"]["SS"]) == {"vip", "new"}


async def test_undecodable_items_fail_the_page_or_are_skipped_and_reported(env: Env) -> None:
    for i, visits in enumerate(["3", "12.50", "4"]):  # boto3 writes Decimal("12.50") into an int field
        await env.client.put_item(TableName=env.table, Item={
            "pk": {"S": "c9"}, "sk": {"S": f"P#{i}"}, "name": {"S": f"n{i}"}, "visits": {"N": visits},
        })
    profiles = env.db.repository(Profile)
    with pytest.raises(StoreError, match="does not match Profile"):
        await profiles.query("c9")  # the default: one bad item fails the page
    page = await profiles.query("c9", undecodable="skip")
    assert [p.sk for p in page.items] == ["P#0", "P#2"]
    assert [s.key for s in page.skipped] == [{"pk": "c9", "sk": "P#1"}] and "visits" in page.skipped[0].reason
    assert env.store.stats.skipped == 1
    # Per entity: undecodable="skip" on the class is the default of its queries; a query may still insist.
    tolerant = env.db.repository(TolerantProfile)
    assert [p.sk async for p in tolerant.query("c9", limit=1)] == ["P#0", "P#2"]
    with pytest.raises(StoreError):
        await tolerant.query("c9", undecodable="raise")


async def test_verify_mode_lists_every_mismatch_and_never_changes_the_table(env: Env) -> None:
    await _legacy(env, "c1", "PROFILE", "Ann")
    calls: list[str] = []
    real_call = env.store._call

    async def spy(op: str, params: dict[str, Any], **kw: Any) -> dict[str, Any]:
        calls.append(op)
        return await real_call(op, params, **kw)

    env.store._call = spy  # type: ignore[method-assign]  # records, then makes the real request
    async with tierstore.connect(env.store, schema="verify") as db:
        assert (await db.repository(Profile).get("c1", "PROFILE")) is not None  # fits: reads work
        with pytest.raises(SchemaMismatch) as info:
            await db.repository(WithIndex).get("c1", "PROFILE")  # a plain get must not add the index
        (m,) = info.value.mismatches
        assert "by_name" in m.problem and "update-table" in m.fix and "GlobalSecondaryIndexUpdates" in m.fix
        with pytest.raises(SchemaMismatch) as info:
            await db.verify(WrongKeys, WithIndex)  # one error, every mismatch of every entity
        problems = [m.problem for m in info.value.mismatches]
        assert len(problems) == 3, problems
        assert any("'pk' is of type S" in p for p in problems)
        assert any("index 'GSI1' has key" in p for p in problems)
        assert any("'by_name' is missing" in p for p in problems)
    assert not {"CreateTable", "UpdateTable", "UpdateTimeToLive"} & set(calls), calls
    desc = (await env.client.describe_table(TableName=env.table))["Table"]
    assert [g["IndexName"] for g in desc["GlobalSecondaryIndexes"]] == ["GSI1"]
    # Control: the create mode adds the missing index (what used to happen on a plain get).
    async with tierstore.connect(env.store, schema="create") as db:
        await db.repository(WithIndex).get("c1", "PROFILE")
    assert "UpdateTable" in calls


async def _team_items(env: Env) -> None:
    """A partition as the team's boto3 code writes it: no customer_id/order_id attributes (they live in the
    keys), a type attribute, GSI1 keys, a foreign attribute, and an item of a type tierstore does not declare."""
    c = "CUSTOMER#c1"
    items = [
        {"pk": c, "sk": "PROFILE", "_et": "profile", "name": "Ann", "owner": "crm"},
        {"pk": c, "sk": "INVOICE#i1", "_et": "invoice", "amount": "12.50"},
        *({"pk": c, "sk": f"ORDER#o{i}", "_et": "order", "status": "open", "total": str(10 * i), "owner": "shop",
           "gsi1pk": "STATUS#open", "gsi1sk": f"ORDER#o{i}"} for i in (1, 2, 3)),
        {"pk": c, "sk": "ZZZ", "_et": "note"},
    ]
    for it in items:
        await env.client.put_item(TableName=env.table, Item={
            k: ({"N": v} if k in ("total",) else {"S": v}) for k, v in it.items()
        })


async def test_key_templates_read_and_query_the_teams_items(env: Env) -> None:
    await _team_items(env)
    orders = env.db.repository(Order)
    assert await orders.get("c1", "o2") == Order("c1", "o2", "open", 20)
    assert await env.db.repository(CustomerProfile).get("c1") == CustomerProfile("c1", "Ann")
    # One type of the shared partition: the sort prefix is the key condition, so limit counts orders only.
    page = await orders.query("c1", limit=2)
    assert [o.order_id for o in page.items] == ["o1", "o2"] and page.cursor is not None
    assert [o.order_id for o in (await orders.query("c1", limit=2, cursor=page.cursor)).items] == ["o3"]
    assert [o.order_id for o in (await orders.query("c1", sort=ge("o2"))).items] == ["o2", "o3"]
    assert [o.order_id for o in (await orders.query("c1", sort=lt("o2"))).items] == ["o1"]
    assert [p.name for p in (await env.db.repository(CustomerProfile).query("c1")).items] == ["Ann"]
    # The team's GSI1, declared with templates.
    assert [o.order_id for o in (await orders.query("open", index="GSI1")).items] == ["o1", "o2", "o3"]


async def test_key_templates_writes_are_the_teams_format_and_keep_foreign_attributes(env: Env) -> None:
    await _team_items(env)
    orders = env.db.repository(Order)
    got = await orders.get("c1", "o1")
    assert got is not None
    await orders.put(msgspec.structs.replace(got, status="paid", total=99))
    raw = await _raw(env, "CUSTOMER#c1", "ORDER#o1")
    assert raw["owner"] == {"S": "shop"} and raw["_et"] == {"S": "order"} and raw["total"] == {"N": "99"}
    assert raw["gsi1pk"] == {"S": "STATUS#paid"} and raw["gsi1sk"] == {"S": "ORDER#o1"}
    await orders.put(Order("c2", "o9", total=5))
    raw = await _raw(env, "CUSTOMER#c2", "ORDER#o9")
    assert raw["_et"] == {"S": "order"} and raw["customer_id"] == {"S": "c2"}
    # The team's boto3 code reads it by its own keys and index.
    reply = await env.client.query(
        TableName=env.table, IndexName="GSI1", KeyConditionExpression="gsi1pk = :p",
        ExpressionAttributeValues={":p": {"S": "STATUS#paid"}},
    )
    assert [it["pk"]["S"] for it in reply["Items"]] == ["CUSTOMER#c1"]
    await env.db.repository(CustomerProfile).put(CustomerProfile("c2", "Bob"))
    assert (await _raw(env, "CUSTOMER#c2", "PROFILE"))["_et"] == {"S": "profile"}


async def test_a_collection_reads_several_types_of_one_partition_in_one_query(env: Env) -> None:
    await _team_items(env)
    calls: list[str] = []
    real_call = env.store._call

    async def spy(op: str, params: dict[str, Any], **kw: Any) -> dict[str, Any]:
        calls.append(op)
        return await real_call(op, params, **kw)

    env.store._call = spy  # type: ignore[method-assign]  # records, then makes the real request
    both = env.db.collection(CustomerProfile, Order)
    page = await both.query(customer_id="c1")
    assert [c for c in calls if c != "DescribeTable"] == ["Query"]  # DescribeTable: the schema check
    assert [type(it).__name__ for it in page.items] == ["Order", "Order", "Order", "CustomerProfile"]
    assert page.items[-1] == CustomerProfile("c1", "Ann") and page.cursor is None  # invoice and note left out
    first = await both.query("c1", limit=3)
    assert len(first.items) == 3 and first.cursor is not None
    rest = await both.query("c1", limit=3, cursor=first.cursor)
    assert rest.items == [CustomerProfile("c1", "Ann")] and rest.cursor is None


async def test_without_a_sort_prefix_the_type_attribute_filters_and_limit_counts_only_the_type(env: Env) -> None:
    for i in range(6):  # visits and another team's pings interleaved in one partition
        et = "visit" if i % 2 == 0 else "ping"
        await env.client.put_item(TableName=env.table, Item={
            "pk": {"S": "SITE#s1"}, "sk": {"S": f"2024-01-0{i + 1}"}, "_et": {"S": et}, "path": {"S": f"/{i}"},
        })
    visits = env.db.repository(Visit)
    page = await visits.query("s1", limit=2)
    assert [v.ts for v in page.items] == ["2024-01-01", "2024-01-03"] and page.cursor is not None
    rest = await visits.query("s1", limit=2, cursor=page.cursor)
    assert [v.path for v in rest.items] == ["/4"] and rest.cursor is None
    assert await visits.get("s1", "2024-01-02") is None  # a ping at that key is not a visit
    await visits.put(Visit("s1", "2024-02-01"))
    assert (await _raw(env, "SITE#s1", "2024-02-01"))["_et"] == {"S": "visit"}


async def test_key_templates_through_a_transaction_and_a_cache_tier(env: Env) -> None:
    await _team_items(env)
    async with tierstore.connect(env.store, "memory://") as db:
        async with db.transaction() as tx:
            tx.put(Order("c1", "o7", total=7))
            tx.delete(Order, "c1", "o3")
        raw = await _raw(env, "CUSTOMER#c1", "ORDER#o7")
        assert raw["_et"] == {"S": "order"} and raw["order_id"] == {"S": "o7"}
        orders, profiles = db.repository(Order), db.repository(CustomerProfile)
        for _ in range(2):  # the second round reads the memory tier
            assert await profiles.get("c1") == CustomerProfile("c1", "Ann")
            assert await orders.get("c1", "o7") == Order("c1", "o7", total=7)
            assert await orders.get("c1", "o3") is None
