"""Entities sharing one table by key templates on memory://: each reads only its own items; collections."""

from __future__ import annotations

import pytest

import tierstore
from tierstore import Entity, KeyTemplate, ge
from tierstore.errors import ConfigError

CUSTOMER = KeyTemplate("pk", "CUSTOMER#{customer_id}")


class Profile(Entity, table="shared", partition_key=CUSTOMER, sort_key=KeyTemplate("sk", "PROFILE"),
              type_attribute="_et"):
    customer_id: str
    name: str = ""


class Address(Entity, table="shared", partition_key=CUSTOMER, sort_key=KeyTemplate("sk", "ADDRESS"),
              type_attribute="_et"):
    customer_id: str
    city: str = ""


class Order(Entity, table="shared", partition_key=CUSTOMER, sort_key=KeyTemplate("sk", "ORDER#{order_id}"),
            type_attribute="_et"):
    customer_id: str
    order_id: str
    total: int = 0


class Elsewhere(Entity, table="other", partition_key=CUSTOMER, sort_key=KeyTemplate("sk", "X")):
    customer_id: str


async def test_two_entities_on_one_table_keep_their_own_items_through_the_cache() -> None:
    async with tierstore.connect("memory://", "memory://") as db:
        profiles, addresses = db.repository(Profile), db.repository(Address)
        await profiles.put(Profile("c1", "Ann"))
        await addresses.put(Address("c1", "Oslo"))  # same table and partition: no collision, cached or not
        assert await profiles.get("c1") == Profile("c1", "Ann")
        assert await addresses.get("c1") == Address("c1", "Oslo")
        assert await profiles.get("c1") == Profile("c1", "Ann")  # from the cache tier
        orders = db.repository(Order)
        await orders.put_many([Order("c1", f"o{i}", i) for i in range(3)])
        page = await orders.query("c1", limit=2)
        assert [o.order_id for o in page.items] == ["o0", "o1"]
        assert [o.order_id for o in (await orders.query("c1", sort=ge("o1"))).items] == ["o1", "o2"]


async def test_a_collection_merges_the_types_in_sort_key_order() -> None:
    async with tierstore.connect("memory://") as db:
        await db.repository(Profile).put(Profile("c1", "Ann"))
        await db.repository(Address).put(Address("c1", "Oslo"))
        await db.repository(Order).put_many([Order("c1", "o1"), Order("c1", "o2")])
        await db.repository(Order).put(Order("c2", "o3"))
        coll = db.collection(Profile, Address, Order)
        page = await coll.query(customer_id="c1")
        # ADDRESS < ORDER#o1 < ORDER#o2 < PROFILE, as DynamoDB orders the sort attribute.
        assert page.items == [Address("c1", "Oslo"), Order("c1", "o1"), Order("c1", "o2"), Profile("c1", "Ann")]
        first = await coll.query("c1", limit=2)
        rest = await coll.query("c1", limit=2, cursor=first.cursor)
        assert first.items + rest.items == page.items and rest.cursor is None


async def test_collection_and_sql_refusals() -> None:
    async with tierstore.connect("memory://") as db:
        with pytest.raises(ConfigError, match="one table"):
            db.collection(Profile, Elsewhere)
        with pytest.raises(ConfigError, match="two or more"):
            db.collection(Profile, Profile)
    async with tierstore.connect("sqlite+aiosqlite:///:memory:") as db:
        with pytest.raises(ConfigError, match="Order: key templates"):
            await db.repository(Order).get("c1", "o1")


class Nickname(Entity, table="shared", partition_key=CUSTOMER, sort_key=KeyTemplate("sk", "NICK"),
               type_attribute="_et"):
    customer_id: str
    text: str = ""


class Alias(Entity, table="shared", partition_key=CUSTOMER, sort_key=KeyTemplate("sk", "ALIAS"),
            type_attribute="_et"):
    customer_id: str
    text: str = ""


async def test_the_query_cache_keeps_types_of_the_same_shape_apart() -> None:
    async with tierstore.connect("memory://", "memory://", query_cache=True) as db:
        await db.repository(Nickname).put(Nickname("c1", "annie"))
        await db.repository(Alias).put(Alias("c1", "a.k.a."))
        for _ in range(2):  # the second round is served by the query cache
            assert (await db.repository(Nickname).query("c1")).items == [Nickname("c1", "annie")]
            assert (await db.repository(Alias).query("c1")).items == [Alias("c1", "a.k.a.")]
