"""Router values, ShardedStore over MemoryStores, ShardedTier over MemoryTiers, scatter_gather."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any

import pytest

import tierstore
from tierstore import (
    ConfigError,
    MemoryStore,
    MemoryTier,
    PartialBatchError,
    StoreError,
    TierError,
    Unsupported,
    ValidationError,
    schema_of,
)
from tierstore.routing import Router, hash_token, partition_token
from tierstore.stores.sharded import ShardedStore, ShardedStoreConfig
from tierstore.tiers.base import Lease
from tierstore.tiers.sharded import ShardedTier, ShardedTierConfig, node_tag

from _models import Customer, Event, Order

CUSTOMER = schema_of(Customer)
ORDER = schema_of(Order)
EVENT = schema_of(Event)


# -- Router --------------------------------------------------------------------------------------


def test_hash_is_pinned() -> None:
    # The routing hash decides where data lives: it must never change. These values are the contract.
    assert hash_token("c1") == 4895413496900842574
    assert hash_token("acme,s1") == 12281863870094613773
    r = Router.uniform(["a", "b"])
    assert r.slot_of_token("c1") == 78
    assert r.slot_of(("acme", "s1")) == 269
    assert r.slot_of((7,)) == 898
    assert r.slot_of((b"\x00\xff",)) == 44


def test_partition_token_matches_schema() -> None:
    for partition in [("c1",), ("a b/é",), ("acme", "s1"), (7,), (b"\x01",)]:
        assert partition_token(partition) == CUSTOMER.partition_token(partition)


def test_uniform_is_printable_and_round_trips() -> None:
    r = Router.uniform(["pg-a", "pg-b"], slots=1024)
    assert str(r) == "pg-a=0-511,pg-b=512-1023"
    assert repr(r) == "Router('pg-a=0-511,pg-b=512-1023')"
    assert r.shards == ("pg-a", "pg-b")
    assert r.slot_counts() == {"pg-a": 512, "pg-b": 512}
    assert Router.parse(str(r)) == r
    assert Router.from_config(r.to_config()) == r
    assert Router.from_config({"shards": ["pg-a", "pg-b"]}) == r
    assert pickle.loads(pickle.dumps(r)) == r  # noqa: S301  # our own bytes: routers must pickle for workers
    assert hash(Router.parse(str(r))) == hash(r)
    assert r != Router.uniform(["pg-b", "pg-a"])
    three = Router.uniform(["a", "b", "c"], slots=10)
    assert str(three) == "a=0-3,b=4-6,c=7-9"


def test_parse_accepts_split_ranges_and_single_slots() -> None:
    r = Router.parse("a=0-1, b=2, a=3")
    assert r.slots == 4
    assert [r.shard_of_slot(i) for i in range(4)] == ["a", "a", "b", "a"]
    assert str(r) == "a=0-1,b=2,a=3"


@pytest.mark.parametrize(
    "spec",
    ["", "a", "a=0-3,b=3-5", "a=0-3,b=5-7", "a=1-3", "a=3-1", "a b=0-3", "a=0-70000", "a:0-3"],
)
def test_parse_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ConfigError):
        Router.parse(spec)


def test_uniform_rejects_bad_input() -> None:
    with pytest.raises(ConfigError):
        Router.uniform([])
    with pytest.raises(ConfigError):
        Router.uniform(["a", "a"])
    with pytest.raises(ConfigError):
        Router.uniform(["a", "b", "c"], slots=2)
    with pytest.raises(ConfigError):
        Router.from_config({"shards": ["a"], "hash": "crc32"})
    with pytest.raises(ConfigError):
        Router.from_config({"ranges": [[0, 3, "a"]], "slots": 8})


def test_colocation_customer_and_orders_share_a_shard() -> None:
    r = Router.uniform(["a", "b", "c"])
    for i in range(50):
        cid = f"cust-{i}"
        assert r.shard_for(CUSTOMER, (cid,)) == r.shard_for(ORDER, (cid, "o1")) == r.shard_for(ORDER, (cid, "o9"))


def test_plan_lists_moving_ranges_and_fraction() -> None:
    old = Router.uniform(["a", "b"])
    assert not old.plan(old)
    assert old.plan(old).fraction == 0
    new = old.with_shards(["a", "b", "c"])
    plan = old.plan(new)
    assert [str(m) for m in plan.moves] == ["slots 342-511: a -> c", "slots 853-1023: b -> c"]
    assert plan.slots_moving == 341
    assert plan.fraction == pytest.approx(341 / 1024)
    assert plan.sources == ("a", "b") and plan.targets == ("c",)
    assert plan.move_of(400) == plan.moves[0]
    assert plan.move_of(0) is None
    assert "33.3% of keys" in str(plan)
    assert new.slot_counts() == {"a": 342, "b": 341, "c": 341}
    with pytest.raises(ConfigError):
        old.plan(Router.uniform(["a", "b"], slots=512))
    # The naive alternative moves half the keys: with_shards exists for this.
    assert old.plan(Router.uniform(["a", "b", "c"])).slots_moving == 511


def test_with_shards_removing_a_shard_moves_only_its_slots() -> None:
    old = Router.uniform(["a", "b", "c"])
    new = old.with_shards(["a", "c"])
    plan = old.plan(new)
    assert all(m.source == "b" for m in plan.moves)
    assert plan.slots_moving == old.slot_counts()["b"]
    assert set(new.slot_counts().values()) == {512}


# -- ShardedStore --------------------------------------------------------------------------------


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
    assert isinstance(store, tierstore.Store)
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


async def test_query_routes_by_partition_and_index_queries_need_scatter_gather() -> None:
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
            await repo.put_many([Customer(i, "x") for i in ids])
        remaining = {c.id for c in info.value.remaining}
        assert remaining == {i for i in ids if store.router.shard_of((i,)) == "b"}
        done = {i for i in ids if store.router.shard_of((i,)) == "a"}
        assert {c.id for c in await a.get_many(CUSTOMER, [(i,) for i in done]) if c} == done
        with pytest.raises(PartialBatchError) as info2:
            await repo.delete_many(ids)
        assert {k[0] for k in info2.value.remaining} == remaining
        # Only the failing shard: its own error, unchanged.
        with pytest.raises(StoreError) as info3:
            await repo.put_many([Customer(i, "x") for i in remaining])
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
            page = await shard.query(EVENT, tierstore.query.Query(("acme", f"s{i}")))
            assert len(page.items) == 3
            assert [e.seq for e in await events.query(("acme", f"s{i}")).all()] == [0, 1, 2]


# -- ShardedTier ---------------------------------------------------------------------------------


def test_node_tag() -> None:
    assert node_tag("{orders:c1}:o1") == "orders:c1"
    assert node_tag("{orders:c1}") == "orders:c1"
    assert node_tag("plain") == "plain"
    assert node_tag("{}x") == "{}x"


def test_rendezvous_placement_is_stable_and_by_partition() -> None:
    nodes = {f"n{i}": MemoryTier() for i in range(3)}
    t1 = ShardedTier(nodes)
    t2 = ShardedTier(dict(reversed(list(nodes.items()))))  # order does not matter, names do
    keys = [ORDER.cache_key((f"c{i}", f"o{j}")) for i in range(200) for j in range(3)]
    assert [t1.node_of(k) for k in keys] == [t2.node_of(k) for k in keys]
    for i in range(200):
        assert len({t1.node_of(ORDER.cache_key((f"c{i}", f"o{j}"))) for j in range(3)}) == 1
    counts = {n: 0 for n in nodes}
    for k in keys:
        counts[t1.node_of(k)] += 1
    assert min(counts.values()) > len(keys) / 3 * 0.7
    # Adding a node moves only keys to the new node.
    t3 = ShardedTier({**nodes, "n3": MemoryTier()})
    moved = [k for k in keys if t3.node_of(k) != t1.node_of(k)]
    assert moved and all(t3.node_of(k) == "n3" for k in moved)
    assert len(moved) < len(keys) / 4 * 1.4


async def test_sharded_tier_caches_through_a_database() -> None:
    nodes = {"n0": MemoryTier(), "n1": MemoryTier()}
    tier = ShardedTier(nodes)
    assert isinstance(tier, tierstore.CacheTier)
    store = MemoryStore()
    async with tierstore.connect(store, [tier]) as db:
        repo = db.repository(Customer)
        ids = [f"c{i}" for i in range(30)]
        await repo.put_many([Customer(i, "x") for i in ids])
        await repo.get_many(ids)
        assert len(nodes["n0"]) > 0 and len(nodes["n1"]) > 0
        assert len(nodes["n0"]) + len(nodes["n1"]) == 30
        store.stats.reset()
        assert all(await repo.get_many(ids))
        assert store.stats.round_trips == 0
        assert tier.stats.hits == 30
        await repo.put(Customer("c1", "new"))
        assert (await repo.get("c1")).name == "new"  # type: ignore[union-attr]


class FlakyTier(MemoryTier):
    """A node that can be switched off (a stand-in for a node outage, to check per-node fail-open)."""

    down = False

    def _check(self) -> None:
        if self.down:
            raise TierError("node down", backend="memory")

    async def get_many(self, keys: Sequence[str]) -> list[bytes | Lease | None]:
        self._check()
        return await super().get_many(keys)

    async def fill_many(self, entries: Sequence[tuple[str, bytes, Lease]], ttl: float) -> None:
        self._check()
        await super().fill_many(entries, ttl)

    async def invalidate_many(self, keys: Sequence[str]) -> None:
        self._check()
        await super().invalidate_many(keys)


async def test_one_node_down_fails_open_and_replays_invalidations() -> None:
    good, flaky = MemoryTier(), FlakyTier()
    tier = ShardedTier({"good": good, "flaky": flaky})
    store = MemoryStore()
    async with tierstore.connect(store, [tier]) as db:
        repo = db.repository(Customer)
        ids = [f"c{i}" for i in range(30)]
        on_flaky = [i for i in ids if tier.node_of(CUSTOMER.cache_key((i,))) == "flaky"]
        await repo.put_many([Customer(i, "v1") for i in ids])
        await repo.get_many(ids)  # fill both nodes
        flaky.down = True
        store.stats.reset()
        got = await repo.get_many(ids)
        assert all(g is not None for g in got)
        assert store.stats.reads == len(on_flaky)  # the good node still served its keys
        # A write while the node is down: its invalidation is kept, not lost.
        await repo.put(Customer(on_flaky[0], "v2"))
        assert tier.stats.errors > 0
        flaky.down = False
        # The node still holds v1, but the pending invalidation is replayed before it is read.
        assert (await repo.get(on_flaky[0])).name == "v2"  # type: ignore[union-attr]
        assert tier.stats.invalidations_replayed >= 1


async def test_sharded_tier_config_builds_nodes() -> None:
    cfg = ShardedTierConfig(nodes={"a": "memory://", "b": "memory://?max_items=10"})
    tier = cfg.build()
    assert set(tier.nodes) == {"a", "b"} and tier.local
    async with tierstore.connect("memory://", [cfg]) as db:
        repo = db.repository(Customer)
        await repo.put(Customer("c1", "x"))
        assert await repo.get("c1") is not None
    with pytest.raises(ConfigError):
        ShardedTier({})
