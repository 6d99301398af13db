"""``ShardedStore`` over MemoryStores: routing of single keys and batches, per-shard round trips, partial
failures, transactions on one shard, and its config."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

import tierstore
from tierstore import (
    ConfigError,
    MemoryStore,
    PartialBatchError,
    ShardedStore,
    ShardedStoreConfig,
    StoreError,
    Unsupported,
)
from tierstore.backends import Query, Store, schema_of
from tierstore.routing import Router

from _models import Customer, Event, Order

CUSTOMER = schema_of(Customer)
ORDER = schema_of(Order)
EVENT = schema_of(Event)


def two_shards(**kw: Any) -> tuple[ShardedStore, MemoryStore, MemoryStore]:
    a, b = MemoryStore(), MemoryStore()
    return ShardedStore(Router.uniform(["a", "b"]), {"a": a, "b": b}, **kw), a, b


def cids_on(router: Router, shard: str, n: int) -> list[str]:
    out = [f"c{i}" for i in range(1000) if router.shard_of((f"c{i}",)) == shard]
    return out[:n]


def test_sharded_store_config_errors() -> None:
    r = Router.uniform(["a", "b"])
    with pytest.raises(ConfigError, match="no store for"):
        ShardedStore(r, {"a": MemoryStore()})
    with pytest.raises(ConfigError, match="no slots for"):
        ShardedStore(r, {"a": MemoryStore(), "b": MemoryStore(), "c": MemoryStore()})
    with pytest.raises(ConfigError):
        ShardedStore(r, {"a": MemoryStore(), "b": object()})  # type: ignore[dict-item]
    with pytest.raises(ConfigError):
        ShardedStore("a=0-1", {"a": MemoryStore()})  # type: ignore[arg-type]


async def test_single_key_ops_go_to_one_shard() -> None:
    store, a, b = two_shards()
    assert isinstance(store, Store)
    assert store.name == "sharded-memory"
    async with tierstore.connect(store) as db:
        repo = db.repository(Customer)
        ca, cb = cids_on(store.router, "a", 1)[0], cids_on(store.router, "b", 1)[0]
        await repo.put(Customer(ca, "A"))
        await repo.put(Customer(cb, "B"))
        assert await a.get(CUSTOMER, (ca,)) is not None and await b.get(CUSTOMER, (ca,)) is None
        assert await b.get(CUSTOMER, (cb,)) is not None and await a.get(CUSTOMER, (cb,)) is None
        assert (await repo.get(cb)) == Customer(cb, "B", version=1)
        assert await repo.delete(ca) is True
        assert await a.get(CUSTOMER, (ca,)) is None
        stored = await repo.put(Customer(cb, "B2"), expect_version=1)
        assert stored.version == 2


async def test_get_many_groups_by_shard_and_keeps_request_order() -> None:
    store, a, b = two_shards()
    async with tierstore.connect(store) as db:
        repo = db.repository(Customer)
        ids = [f"c{i}" for i in range(40)]
        await repo.put_many([Customer(i, i.upper()) for i in ids])
        assert a.stats.writes > 0 and b.stats.writes > 0
        assert a.stats.writes + b.stats.writes == 40
        for s in (store, a, b):
            s.stats.reset()
        wanted = [*reversed(ids), "missing", ids[3]]
        got = await repo.get_many(wanted)
        assert [g.name if g else None for g in got] == [*(i.upper() for i in reversed(ids)), None, "C3"]
        assert store.stats.round_trips == 2  # one batch per shard
        assert a.stats.round_trips == 1 and b.stats.round_trips == 1
        await repo.delete_many(ids[:10])
        assert [g is None for g in await repo.get_many(ids[:11])] == [True] * 10 + [False]


async def test_batches_on_one_shard_make_one_call() -> None:
    store, a, b = two_shards()
    async with tierstore.connect(store) as db:
        repo = db.repository(Customer)
        ids = cids_on(store.router, "b", 5)
        await repo.put_many([Customer(i, "x") for i in ids])
        for s in (store, a, b):
            s.stats.reset()
        assert all(await repo.get_many(ids))
        assert (store.stats.round_trips, a.stats.round_trips, b.stats.round_trips) == (1, 0, 1)


async def test_query_routes_by_partition_and_other_indexes_are_refused() -> None:
    store, _, _ = two_shards()
    async with tierstore.connect(store) as db:
        orders = db.repository(Order)
        ids = cids_on(store.router, "a", 2) + cids_on(store.router, "b", 2)
        await orders.put_many(
            [Order(c, f"o{j}", j, status="paid" if j % 2 else "new") for c in ids for j in range(5)]
        )
        store.stats.reset()
        page = await orders.query(ids[3])
        assert [o.order_id for o in page.items] == [f"o{j}" for j in range(5)]
        assert store.stats.round_trips == 1
        with pytest.raises(Unsupported, match="scatter_gather"):
            await orders.query("paid", index="by_status")


async def test_transaction_on_one_shard_and_refused_across_shards() -> None:
    store, a, b = two_shards()
    async with tierstore.connect(store) as db:
        ca, cb = cids_on(store.router, "a", 1)[0], cids_on(store.router, "b", 1)[0]
        async with db.transaction() as tx:
            tx.put(Customer(ca, "A"))
            tx.put(Order(ca, "o1", 100))
        assert await a.get(ORDER, (ca, "o1")) is not None
        with pytest.raises(Unsupported, match="one shard"):
            async with db.transaction() as tx:
                tx.put(Customer(cb, "B"))
                tx.delete(Order, ca, "o1")
        assert await b.get(CUSTOMER, (cb,)) is None
        assert await a.get(ORDER, (ca, "o1")) is not None


class FailingPutMany(MemoryStore):
    """A shard whose batch writes fail: no local server fails one shard of a batch on demand."""

    async def put_many(self, schema: Any, items: Sequence[Any]) -> list[Any]:
        raise StoreError("shard down", backend="memory")

    async def delete_many(self, schema: Any, keys: Sequence[Any]) -> None:
        raise StoreError("shard down", backend="memory")


async def test_a_failed_shard_in_a_batch_names_what_remains() -> None:
    a, bad = MemoryStore(), FailingPutMany()
    store = ShardedStore(Router.uniform(["a", "b"]), {"a": a, "b": bad})
    async with tierstore.connect(store) as db:
        repo = db.repository(Customer)
        ids = [f"c{i}" for i in range(20)]
        with pytest.raises(PartialBatchError) as info:
            await repo.put_many([Customer(i, "x") for i in ids], check_version=False)  # the batch path
        remaining = {c.id for c in info.value.remaining}
        assert remaining == {i for i in ids if store.router.shard_of((i,)) == "b"}
        done = {i for i in ids if store.router.shard_of((i,)) == "a"}
        assert {c.id for c in await a.get_many(CUSTOMER, [(i,) for i in done]) if c} == done
        with pytest.raises(PartialBatchError) as info2:
            await repo.delete_many(ids)
        assert {k[0] for k in info2.value.remaining} == remaining
        # Only the failing shard: its own error, unchanged.
        with pytest.raises(StoreError) as info3:
            await repo.put_many([Customer(i, "x") for i in remaining], check_version=False)
        assert not isinstance(info3.value, PartialBatchError)
        assert store.stats.errors >= 3


async def test_aclose_closes_owned_shards_only() -> None:
    store, a, b = two_shards()
    await store.aclose()
    await store.aclose()
    assert a._closed and b._closed
    store2, c, d = two_shards(owns_shards=False)
    await store2.aclose()
    assert not c._closed and not d._closed


async def test_sharded_store_config_builds_from_urls() -> None:
    cfg = ShardedStoreConfig(router="a=0-511,b=512-1023", stores={"a": "memory://", "b": "memory://?latency=0"})
    assert "a=0-511" in repr(cfg)
    async with tierstore.connect(cfg) as db:
        assert isinstance(db.store, ShardedStore)
        repo = db.repository(Customer)
        await repo.put(Customer("c1", "x"))
        assert (await repo.get("c1")) is not None
        shards = db.store.shards
    assert all(s._closed for s in shards.values())  # type: ignore[attr-defined]
    with pytest.raises(ConfigError):
        ShardedStoreConfig(router="a=0-1", stores={"a": MemoryStore()}).build()


def test_sharded_store_config_redacts_passwords() -> None:
    cfg = ShardedStoreConfig(router="a=0-1", stores={"a": "postgresql+asyncpg://u:s3cret@h/db"})
    assert "s3cret" not in repr(cfg)


async def test_composite_and_int_partitions_route() -> None:
    store, _, _ = two_shards()
    async with tierstore.connect(store) as db:
        events = db.repository(Event)
        await events.put_many([Event("acme", f"s{i}", j) for i in range(10) for j in range(3)])
        for i in range(10):
            shard = store.shards[store.router.shard_of(("acme", f"s{i}"))]
            page = await shard.query(EVENT, Query(("acme", f"s{i}")))
            assert len(page.items) == 3
            assert [e.seq for e in await events.query(("acme", f"s{i}")).all()] == [0, 1, 2]


def test_store_for_names_the_shard_of_a_key() -> None:
    store, a, b = two_shards()
    for i in range(20):
        key = (f"c{i}",)
        assert store.store_for(CUSTOMER, key) is (a if store.router.shard_of(key) == "a" else b)
