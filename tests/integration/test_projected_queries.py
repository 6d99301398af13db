"""Store-side projection of ``query(..., fields=Cls)``: SQL stores select only the projection's columns plus the
key columns, DynamoDB sends a ``ProjectionExpression`` — the pages equal the whole items cut down, and what the
projection leaves out is neither read nor decoded. With a query cache in the read the query is the entity's,
cut down (the cache never holds a partial item); the memory store always cuts down."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import tierstore
from tierstore import Entity, Index, MemoryTier, PartitionKey, SortKey, StoreError, Version
from tierstore.policies.dax import DaxStylePolicy
from tierstore.query import ge
from tierstore.stores.base import Projects

from _servers import STORES, _marks, open_db


class Crate(Entity, table="projq_crates", rename={"weight": "kg"}):
    owner: PartitionKey[str]
    id: SortKey[str]
    weight: int = 0
    label: str | None = None
    notes: str = ""
    tags: list[str] = []
    version: Version = 0


class Light(msgspec.Struct):
    id: str
    weight: int


class Tagged(msgspec.Struct):
    label: str | None
    tags: list[str] = []


@pytest.fixture(params=[pytest.param(s, marks=_marks(s, ())) for s in STORES])
async def db(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Any:
    database = await open_db(request.param, (), tmp_path, entities=(Crate,))
    try:
        yield database
    finally:
        await database.aclose()


def capture(db: tierstore.Database) -> list[str]:
    """Record what the store sends: each SQL statement's text, each DynamoDB request's ``ProjectionExpression``
    with its names resolved (an instance attribute wrapping the real call; the request still goes out)."""
    store: Any = db.store
    seen: list[str] = []
    if hasattr(store, "_driver"):
        driver = store._driver
        real_fetchall = driver.fetchall

        async def fetchall(sql: str, args: Sequence[Any], bounded: bool = False) -> Any:
            seen.append(sql)
            return await real_fetchall(sql, args, bounded=bounded)

        driver.fetchall = fetchall
    elif hasattr(store, "_call"):
        real_call = store._call

        async def call(op: str, params: dict[str, Any], **kw: Any) -> Any:
            if op == "Query":
                names = params.get("ExpressionAttributeNames", {})
                expr = params.get("ProjectionExpression", "*")
                seen.append(", ".join(names.get(p, p) for p in expr.split(", ")))
            return await real_call(op, params, **kw)

        store._call = call
    return seen


async def test_projected_pages_equal_the_cut_down_pages(db: tierstore.Database) -> None:
    crates = db.repository(Crate)
    await crates.put_many([
        Crate("ann", f"c{i}", i, "fragile" if i % 2 else None, "n" * 50, ["even"] if i % 2 == 0 else [])
        for i in range(7)
    ])
    whole = await crates.query("ann").all()
    for cls in (Light, Tagged):
        fields = cls.__struct_fields__
        cut = [cls(**{f: getattr(c, f) for f in fields}) for c in whole]
        assert await crates.query("ann", fields=cls).all() == cut
        paged = [p.items async for p in crates.query("ann", limit=3, fields=cls).pages()]
        assert [len(p) for p in paged] == [3, 3, 1] and [x for p in paged for x in p] == cut
    heavy = await crates.query("ann", sort=ge("c2"), where=Crate.weight >= 4, reverse=True, fields=Light).all()
    assert heavy == [Light("c6", 6), Light("c5", 5), Light("c4", 4)]
    page = await crates.query("ann", limit=2, fields=Tagged)
    rest = await crates.query("ann", limit=2, cursor=page.cursor, fields=Tagged)  # its cursor pages on
    assert rest.items == [Tagged(c.label, c.tags) for c in whole[2:4]]


async def test_the_store_reads_only_the_projection(db: tierstore.Database) -> None:
    crates = db.repository(Crate)
    await crates.put_many([Crate("bo", "c1", 1, "x", "long notes", ["t"]), Crate("bo", "c2", 2)])
    seen = capture(db)
    assert await crates.query("bo", fields=Light).all() == [Light("c1", 1), Light("c2", 2)]
    if not isinstance(db.store, Projects):  # the memory store cuts the whole items down
        assert seen == []
        return
    assert len(seen) == 1
    read = seen[0]
    if " FROM " in read:
        read = read.split(" FROM ")[0]  # the selected columns
    assert "kg" in read and "id" in read  # the stored name of the renamed field, and the key
    for omitted in ("notes", "tags", "label"):
        assert omitted not in read, read
    seen.clear()
    await crates.query("bo").all()
    assert seen and ("notes" in seen[0] or seen[0] == "*")  # the whole item, for contrast


async def test_an_omitted_column_that_does_not_decode_is_not_touched(tmp_path: os.PathLike[str]) -> None:
    db = await open_db("sqlite", (), tmp_path, entities=(Crate,))
    try:
        crates = db.repository(Crate)
        await crates.put(Crate("cy", "c1", 1, "lbl", tags=["a"]))
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/store.db", poolclass=NullPool)
        try:
            async with engine.begin() as conn:  # another writer: SQLite keeps a text in an integer column
                await conn.exec_driver_sql("UPDATE projq_crates SET kg = 'heavy'")
        finally:
            await engine.dispose()
        with pytest.raises(StoreError, match="kg"):
            await crates.query("cy").all()
        assert await crates.query("cy", fields=Tagged).all() == [Tagged("lbl", ["a"])]
        with pytest.raises(StoreError, match="kg"):
            await crates.query("cy", fields=Light).all()
        skipped = await crates.query("cy", fields=Light, undecodable="skip")
        assert skipped.items == [] and [s.key for s in skipped.skipped] == [{"owner": "cy", "id": "c1"}]
    finally:
        await db.aclose()


@pytest.mark.dynamodb
async def test_dynamodb_an_omitted_attribute_that_does_not_decode_is_not_touched(
    tmp_path: os.PathLike[str],
) -> None:
    db = await open_db("dynamodb", (), tmp_path, entities=(Crate,))
    try:
        store: Any = db.store
        crates = db.repository(Crate)
        await crates.put(Crate("dy", "c1", 1, "lbl", tags=["a"]))
        table = store._table(crates.schema).name
        item = {"owner": {"S": "dy"}, "id": {"S": "c1"}, "kg": {"S": "heavy"}, "label": {"S": "lbl"},
                "tags": {"L": [{"S": "a"}]}, "version": {"N": "1"}, "notes": {"S": ""}}
        await store._call("PutItem", {"TableName": table, "Item": item}, idempotent=False)
        with pytest.raises(StoreError):
            await crates.query("dy").all()
        assert await crates.query("dy", fields=Tagged).all() == [Tagged("lbl", ["a"])]
        with pytest.raises(StoreError):
            await crates.query("dy", fields=Light).all()
    finally:
        await db.aclose()


async def test_a_query_cache_gets_whole_items_only(tmp_path: os.PathLike[str]) -> None:
    tier = MemoryTier(max_items=1000)
    policy = DaxStylePolicy([tier])
    db = tierstore.connect(
        f"sqlite+aiosqlite:///{tmp_path}/store.db", [tier], policy=policy.item_policy, query_cache=policy,
        schema="create",
    )
    await db.open()
    try:
        crates = db.repository(Crate)
        await db.create_tables(Crate)
        stored = await crates.put_many([Crate("di", "c1", 1, "x", "notes", ["t"])])
        seen = capture(db)
        assert await crates.query("di", fields=Light).all() == [Light("c1", 1)]
        assert len(seen) == 1 and "notes" in seen[0]  # the entity's query, cut down, through the cache
        assert await crates.query("di").all() == stored  # served from the cache: the whole item
        assert len(seen) == 1
        assert await crates.query("di", consistent=True, fields=Light).all() == [Light("c1", 1)]
        assert len(seen) == 2 and "notes" not in seen[1].split(" FROM ")[0]  # past the cache: projected
    finally:
        await db.aclose()
        await policy.aclose()


class Shipment(Entity, table="projq_shipments", indexes=[Index("by_state", partition="state", sort="weight")]):
    owner: PartitionKey[str]
    id: SortKey[str]
    state: str = "new"
    weight: int = 0
    notes: str = ""


class ShipmentWeight(msgspec.Struct):
    weight: int


async def test_index_queries_project_and_page(db: tierstore.Database) -> None:
    await db.create_tables(Shipment)
    shipments = db.repository(Shipment)
    await shipments.put_many([Shipment(f"o{i % 3}", f"s{i}", "sent", 10 - i, "n" * 20) for i in range(7)])
    whole = await shipments.query("sent", index="by_state").all()
    seen = capture(db)
    page = await shipments.query("sent", index="by_state", limit=4, fields=ShipmentWeight)
    rest = await shipments.query("sent", index="by_state", cursor=page.cursor, fields=ShipmentWeight).all()
    assert page.items + rest == [ShipmentWeight(s.weight) for s in whole] and len(rest) == 3
    if isinstance(db.store, Projects):
        assert all("notes" not in s.split(" FROM ")[0] for s in seen) and len(seen) == 2
