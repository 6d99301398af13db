"""``Repository`` over a narrow context: scatter_gather across shards, and a repository built on any object
that provides the context (not only a ``Database``)."""

from __future__ import annotations

from typing import Any

import pytest

import tierstore
from tierstore import MemoryStore, Repository, ShardedStore, ValidationError
from tierstore.backends import Schema, Store, TieredCache
from tierstore.repository import RepositoryContext
from tierstore.routing import Router

from _models import Customer, Order


def two_shards() -> tuple[ShardedStore, MemoryStore, MemoryStore]:
    a, b = MemoryStore(), MemoryStore()
    return ShardedStore(Router.uniform(["a", "b"]), {"a": a, "b": b}), a, b


def cids_on(router: Router, shard: str, n: int) -> list[str]:
    out = [f"c{i}" for i in range(1000) if router.shard_of((f"c{i}",)) == shard]
    return out[:n]


async def test_scatter_gather_merges_every_shard_in_sort_order() -> None:
    store, _, _ = two_shards()
    async with tierstore.connect(store) as db:
        orders = db.repository(Order)
        ids = cids_on(store.router, "a", 2) + cids_on(store.router, "b", 2)
        await orders.put_many(
            [Order(c, f"o{j}", j, status="paid" if j % 2 else "new") for c in ids for j in range(5)]
        )
        paid = await orders.scatter_gather("paid", index="by_status")
        assert len(paid) == 8
        assert [o.order_id for o in paid] == sorted(o.order_id for o in paid)
        top = await orders.scatter_gather("paid", index="by_status", limit=3, reverse=True)
        assert [(o.order_id) for o in top] == ["o3", "o3", "o3"]
        assert all(o.status == "paid" for o in top)
        # Every shard answered, each with at most `limit` items.
        with pytest.raises(ValidationError):
            await orders.scatter_gather(5, index="by_status")
        with pytest.raises(ValidationError):
            await orders.scatter_gather("paid", index="by_status", concurrency=0)


async def test_scatter_gather_pages_through_each_shard() -> None:
    store, _, _ = two_shards()
    async with tierstore.connect(store) as db:
        orders = db.repository(Order)
        await orders.put_many([Order(f"c{i}", f"o{i:03}", i, status="s") for i in range(30)])
        every = await orders.scatter_gather("s", index="by_status", concurrency=1)
        assert [o.total_cents for o in every] == list(range(30))
        assert [o.total_cents for o in await orders.scatter_gather("s", index="by_status", limit=7)] == list(
            range(7)
        )


async def test_scatter_gather_on_an_unsharded_store() -> None:
    async with tierstore.connect("memory://") as db:
        orders = db.repository(Order)
        await orders.put_many([Order(f"c{i}", f"o{i}", i, status="s") for i in range(5)])
        assert len(await orders.scatter_gather("s", index="by_status", limit=3)) == 3


class Context:
    """The smallest RepositoryContext: a store, no tiers, no query cache, tables made on first use."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.cache = TieredCache([])
        self.query_cache = None
        self.ensured: list[str] = []
        self._repos: dict[type[Any], Repository[Any]] = {}

    async def ensure_schema(self, schema: Schema[Any]) -> None:
        if schema.table not in self.ensured:
            await self.store.ensure_schema(schema)
            self.ensured.append(schema.table)

    def repository(self, entity: type[Any]) -> Repository[Any]:
        repo = self._repos.get(entity)
        if repo is None:
            repo = self._repos[entity] = Repository(self, entity)
        return repo


async def test_a_repository_needs_only_its_context() -> None:
    context = Context(MemoryStore())
    checked: RepositoryContext = context  # the protocol is structural
    customers = checked.repository(Customer)
    orders = context.repository(Order)
    await customers.put(Customer("c1", "Ann"))
    await orders.put_many([Order("c1", "o1", 5), Order("c1", "o2", 7)])
    assert context.ensured == ["ts_customers", "ts_orders"]
    page = await orders.query("c1").join(Order.customer)
    assert [o.customer.name for o in page.items] == ["Ann", "Ann"]  # joins reach the other repository
    assert await customers.delete("c1") and await customers.get("c1") is None
    assert repr(customers) == "Repository[Customer]"


async def test_a_database_is_the_context_of_its_repositories() -> None:
    async with tierstore.connect("memory://", ["memory://"]) as db:
        context: RepositoryContext = db
        repo = db.repository(Customer)
        assert repo.store is context.store and repo.cache is context.cache
        assert db.repository(Customer) is repo
