"""Joins equal naive per-item reads, on plain and sharded stores, with and without a cache tier; and they
cost exactly one batch per shard touched."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tierstore
from tierstore import Entity, Many, MemoryStore, PartitionKey, Ref, SortKey
from tierstore.backends import schema_of
from tierstore.routing import Router
from tierstore.stores.sharded import ShardedStore

pytestmark = pytest.mark.property


class Region(Entity, table="jp_regions"):
    code: PartitionKey[str]
    label: str = ""


class Buyer(Entity, table="jp_buyers"):
    id: PartitionKey[str]
    region_code: str | None = None
    region = Ref(Region, "region_code")
    purchases = Many["Purchase"]("Purchase", "buyer_id")


class Purchase(Entity, table="jp_purchases"):
    buyer_id: PartitionKey[str]
    seq: SortKey[int]
    seller_id: str
    buyer = Ref(Buyer, "buyer_id")
    seller = Ref(Buyer, "seller_id")


ids = st.sampled_from([f"b{i}" for i in range(12)])
regions = st.one_of(st.none(), st.sampled_from(["eu", "us", "ap", "xx"]))  # "xx" never exists


@st.composite
def datasets(draw: st.DrawFn) -> dict[str, Any]:
    buyers = draw(st.dictionaries(ids, regions, max_size=10))
    purchases = draw(st.lists(st.tuples(ids, ids), max_size=40))
    return {"buyers": buyers, "purchases": purchases}


setups = st.sampled_from([(1, False), (1, True), (2, False), (3, True)])  # (shards, L1 tier)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def build(shards: int, l1: bool, data: dict[str, Any]) -> tierstore.Database:
    if shards == 1:
        store: Any = MemoryStore()
    else:
        names = [f"s{i}" for i in range(shards)]
        store = ShardedStore(Router.uniform(names, slots=64), {n: MemoryStore() for n in names})
    db = tierstore.connect(store, ["memory://"] if l1 else [])
    await db.open()
    await db.repository(Region).put_many([Region(c, c.upper()) for c in ("eu", "us", "ap")])
    await db.repository(Buyer).put_many([Buyer(b, r) for b, r in data["buyers"].items()])
    await db.repository(Purchase).put_many(
        [Purchase(b, i, s) for i, (b, s) in enumerate(data["purchases"])]
    )
    return db


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets(), setup=setups)
def test_join_equals_naive_per_item_reads(data: dict[str, Any], setup: tuple[int, bool]) -> None:
    async def main() -> None:
        db = await build(*setup, data)
        purchases, buyers = db.repository(Purchase), db.repository(Buyer)
        items = [p for b in sorted({b for b, _ in data["purchases"]}) for p in await purchases.query(b).all()]
        await purchases.load(items, Purchase.seller, Purchase.buyer, Buyer.region)
        for p in items:
            assert p.seller == await buyers.get(p.seller_id)
            assert p.buyer == await buyers.get(p.buyer_id)
            for b in (p.seller, p.buyer):
                if b is not None:
                    naive = await db.repository(Region).get(b.region_code) if b.region_code else None
                    assert b.region == naive
        parents = [b for b in await buyers.get_many(sorted(data["buyers"])) if b is not None]
        await buyers.load(parents, Buyer.purchases)
        for b in parents:
            assert b.purchases == await purchases.query(b.id).all()
        await db.aclose()

    run(main())


@settings(max_examples=40, deadline=None)
@given(data=datasets(), shards=st.sampled_from([1, 2, 3]))
def test_a_ref_join_costs_one_batch_per_shard_touched(data: dict[str, Any], shards: int) -> None:
    async def main() -> None:
        db = await build(shards, False, data)
        purchases = db.repository(Purchase)
        items = [p for p in await purchases.get_many([(b, i) for i, (b, _) in enumerate(data["purchases"])]) if p]
        db.reset_stats()
        await purchases.load(items, Purchase.seller)
        schema = schema_of(Buyer)
        fks = {(p.seller_id,) for p in items}
        if isinstance(db.store, ShardedStore):
            expected = len({db.store.router.shard_for(schema, k) for k in fks})
        else:
            expected = 1 if fks else 0
        assert db.stats()["store"]["round_trips"] == expected
        assert db.stats()["store"]["reads"] == len(fks)
        await db.aclose()

    run(main())
