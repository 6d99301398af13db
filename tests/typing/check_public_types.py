"""Checked by mypy --strict in test_typing.py (and executed, so it also has to run)."""

from __future__ import annotations

import asyncio
from typing import Any, assert_type

import msgspec

import tierstore
from tierstore import Entity, KeyTemplate, Many, Page, PartitionKey, Ref, Repository, SortKey, Version
from tierstore.backends import Schema, schema_of
from tierstore.cdc import ChangeSource, Invalidator, MemoryCheckpoint, PostgresLogicalSource, invalidate


class Customer(Entity, table="typing_customers"):
    id: PartitionKey[str]
    name: str
    version: Version = 0
    orders = Many["Order"]("Order", "customer_id")


class Order(Entity, table="typing_orders"):
    customer_id: PartitionKey[str]
    order_id: SortKey[str]
    total_cents: int
    customer = Ref(Customer, "customer_id")


class OrderSummary(msgspec.Struct):
    order_id: str
    total_cents: int


SHOPPER = KeyTemplate("pk", "SHOPPER#{shopper_id}")


class Basket(Entity, table="typing_single", partition_key=SHOPPER, sort_key=KeyTemplate("sk", "BASKET"),
             type_attribute="_et"):
    shopper_id: str
    items: int = 0


class Purchase(Entity, table="typing_single", partition_key=SHOPPER,
               sort_key=KeyTemplate("sk", "PURCHASE#{purchase_id}"), type_attribute="_et"):
    shopper_id: str
    purchase_id: str


async def main() -> None:
    async with tierstore.connect("memory://", ["memory://"]) as db:
        assert_type(db, tierstore.Database)
        customers = db.repository(Customer)
        orders = db.repository(Order)
        assert_type(customers, Repository[Customer])
        stored = await customers.put(Customer("c1", "Ann"))
        assert_type(stored, Customer)
        assert_type(await customers.get("c1"), Customer | None)
        assert_type(await customers.get_many(["c1", "c2"]), list[Customer | None])
        await orders.put(Order("c1", "o1", 5))
        page = await orders.query("c1", limit=10)
        assert_type(page, Page[Order])
        assert_type(page.items, list[Order])
        assert_type(page.cursor, str | None)
        for in_page in page:
            assert_type(in_page, Order)
        assert_type(list(page), list[Order])
        async with db.transaction() as tx:
            pending = tx.put(Order("c1", "o2", 7))
            assert_type(pending, tierstore.Pending[Order])
        assert_type(pending.result(), Order)
        async for order in orders.query("c1"):
            assert_type(order, Order)
        assert_type(await orders.query("c1").all(), list[Order])
        summaries = await orders.query("c1", fields=OrderSummary)
        assert_type(summaries, Page[OrderSummary])
        assert summaries.items == [OrderSummary("o1", 5), OrderSummary("o2", 7)]
        assert_type(await orders.query("c1", fields=OrderSummary).all(), list[OrderSummary])
        async for summary in orders.query("c1", fields=OrderSummary):
            assert_type(summary, OrderSummary)
        assert_type(await orders.get("c1", "o1", fields=OrderSummary), OrderSummary | None)
        assert_type(await orders.get_many([("c1", "o1")], fields=OrderSummary), list[OrderSummary | None])
        loaded = await orders.query("c1").join(Order.customer).all()
        assert_type(loaded[0].customer, Customer | None)
        assert_type(Order.customer, Ref[Customer])
        assert_type(Customer.orders, Many[Order])
        with_orders = await customers.load([stored], Customer.orders)
        assert_type(with_orders[0].orders, list[Order])
        assert_type(schema_of(Order), Schema[Order])
        assert_type(await customers.delete("c1"), bool)
        assert_type(await invalidate(db, Customer, ["c1"]), bool)
        source = PostgresLogicalSource("postgresql://app@db:5432/app", slot="typing_slot")
        assert isinstance(source, ChangeSource)
        inv = Invalidator(db, source, [Customer], checkpoint=MemoryCheckpoint(), on_gap="ttl")
        assert_type(inv.health(), dict[str, Any])
        assert_type(inv.stats.changes, int)
        await db.repository(Basket).put(Basket("s1", 2))
        both = await db.collection(Basket, Purchase).query(shopper_id="s1")
        assert_type(both, Page[Basket | Purchase])
        for thing in both:
            if isinstance(thing, Purchase):
                assert_type(thing.purchase_id, str)
        assert both.items == [Basket("s1", 2)]


if __name__ == "__main__":
    asyncio.run(main())
