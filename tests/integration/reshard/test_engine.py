"""The resharding engine on real stores: two (then three) MemoryStores, SQLite files, PostgreSQL and MariaDB
databases, and DynamoDB Local table sets.

After every run — also one interrupted and resumed — each item is present exactly once, on the shard the new
router names, with its version unchanged.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import tierstore
from tierstore import ConfigError, MemoryStore, MemoryTier, ShardedStore
from tierstore.backends import Store
from tierstore.reshard import ReshardError, ReshardEvent, reshard
from tierstore.routing import Router

from _reshard import ITEM, NEW, OLD, TAG, Item, Tag, assert_exactly_once, contents, load, open_stores


@pytest.fixture(
    params=[
        pytest.param("memory"),
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
        pytest.param("dynamodb", marks=pytest.mark.dynamodb),
    ]
)
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[dict[str, Store]]:
    opened = await open_stores(request.param, tmp_path)
    try:
        yield opened
    finally:
        for s in opened.values():
            await s.aclose()


async def test_dry_run_counts_and_writes_nothing(stores: dict[str, Store], tmp_path: Path) -> None:
    expected = await load(stores, OLD)
    checkpoint = tmp_path / "cp.json"
    report = await reshard(OLD, NEW, stores, [Item, Tag], checkpoint=checkpoint, batch_size=37)
    assert report.dry_run and report.ok
    moving = [i for i in expected if OLD.plan(NEW).move_of(OLD.slot_for(ITEM, (i.tenant, i.n))) is not None]
    item_report = report.tables[0]
    assert sum(m.items for m in item_report.moves) == len(moving) > 0
    assert "would move" in str(report) and "slots" in str(report)
    assert not checkpoint.exists()
    assert (await contents(stores, ITEM))["c"] == []


async def test_execute_moves_every_item_exactly_once(stores: dict[str, Store], tmp_path: Path) -> None:
    expected = await load(stores, OLD)
    tags = (await contents(stores, TAG))
    report = await reshard(
        OLD, NEW, stores, [Item, Tag], execute=True, checkpoint=tmp_path / "cp.json", batch_size=40
    )
    assert report.ok, str(report)
    rep = report.tables[0]
    assert rep.before == rep.after == len(expected)
    assert rep.copied == rep.deleted == sum(m.items for m in rep.moves) > 0
    await assert_exactly_once(stores, NEW, expected)
    after_tags = await contents(stores, TAG)
    assert sorted(t.id for v in after_tags.values() for t in v) == sorted(t.id for v in tags.values() for t in v)
    assert all(NEW.shard_for(TAG, (t.id,)) == s for s, v in after_tags.items() for t in v)
    # A sharded store over the new layout reads everything.
    async with tierstore.connect(ShardedStore(NEW, stores, owns_shards=False)) as db:
        got = await db.repository(Item).get_many([(i.tenant, i.n) for i in expected])
        assert got == expected


@pytest.mark.parametrize("crash_in", ["copy", "cleanup"])
async def test_interrupted_run_resumes(stores: dict[str, Store], tmp_path: Path, crash_in: str) -> None:
    expected = await load(stores, OLD)
    checkpoint = tmp_path / "cp.json"
    batches = 0

    class Crash(Exception):
        pass

    def crash(event: ReshardEvent) -> None:
        nonlocal batches
        if event.phase == crash_in and event.table == "rs_items":
            batches += 1
            if batches == 2:
                raise Crash

    with pytest.raises(Crash):
        await reshard(OLD, NEW, stores, [Item], execute=True, checkpoint=checkpoint, batch_size=30,
                      progress=crash)
    state = json.loads(checkpoint.read_text())
    assert state["tables"]["rs_items"]["phase"] == crash_in
    report = await reshard(OLD, NEW, stores, [Item], execute=True, checkpoint=checkpoint, batch_size=30)
    assert report.ok, str(report)
    await assert_exactly_once(stores, NEW, expected)
    # Running once more changes nothing and still verifies.
    again = await reshard(OLD, NEW, stores, [Item], execute=True, checkpoint=checkpoint, batch_size=30)
    assert again.ok and again.tables[0].after == len(expected)


async def test_checkpoint_of_another_plan_is_refused(stores: dict[str, Store], tmp_path: Path) -> None:
    checkpoint = tmp_path / "cp.json"
    await load(stores, OLD, tenants=3, per=2)
    await reshard(OLD, NEW, stores, [Item], execute=True, checkpoint=checkpoint)
    with pytest.raises(ReshardError, match="another plan"):
        await reshard(NEW, OLD, stores, [Item], execute=True, checkpoint=checkpoint)


async def test_stop_after_copy_then_finish(stores: dict[str, Store], tmp_path: Path) -> None:
    expected = await load(stores, OLD, tenants=12, per=4)
    checkpoint = tmp_path / "cp.json"
    paused = await reshard(OLD, NEW, stores, [Item], execute=True, checkpoint=checkpoint, stop_after_copy=True)
    assert paused.paused and "paused" in str(paused)
    # Both layouts can serve reads now: every item is on its old shard and on its new one.
    for router in (OLD, NEW):
        async with tierstore.connect(ShardedStore(router, {s: stores[s] for s in router.shards},
                                                  owns_shards=False)) as db:
            assert await db.repository(Item).get_many([(i.tenant, i.n) for i in expected]) == expected
    done = await reshard(OLD, NEW, stores, [Item], execute=True, checkpoint=checkpoint)
    assert done.ok and not done.paused
    await assert_exactly_once(stores, NEW, expected)


async def test_removing_a_shard(stores: dict[str, Store], tmp_path: Path) -> None:
    three = Router.uniform(["a", "b", "c"], slots=256)
    two = three.with_shards(["a", "c"])
    expected = await load(stores, three)
    report = await reshard(three, two, stores, [Item], execute=True, checkpoint=tmp_path / "cp.json")
    assert report.ok
    await assert_exactly_once(stores, two, expected)
    assert (await contents(stores, ITEM))["b"] == []


async def test_moved_keys_are_invalidated_in_the_cache(stores: dict[str, Store], tmp_path: Path) -> None:
    expected = await load(stores, OLD, tenants=10, per=2)
    tier = MemoryTier()
    plan = OLD.plan(NEW)
    moving = [i for i in expected if plan.move_of(OLD.slot_for(ITEM, (i.tenant, i.n)))]
    staying = [i for i in expected if i not in moving]
    for i in expected:  # what readers left in the cache, e.g. "not found" read through the new router
        ck = ITEM.cache_key((i.tenant, i.n))
        tier.fill(ck, b"stale", tier.lease(ck))
    report = await reshard(OLD, NEW, stores, [Item], execute=True, checkpoint=tmp_path / "cp.json",
                           tiers=[tier])
    assert report.ok
    assert all(tier.entry(ITEM.cache_key((i.tenant, i.n))) is None for i in moving)
    assert all(tier.entry(ITEM.cache_key((i.tenant, i.n))) is not None for i in staying)


async def test_bad_arguments(tmp_path: Path) -> None:
    stores: dict[str, Store] = {"a": MemoryStore(), "b": MemoryStore()}
    with pytest.raises(ConfigError, match="no store"):
        await reshard(OLD, NEW, stores, [Item])
    with pytest.raises(ConfigError):
        await reshard(OLD, Router.uniform(["a", "b"]), stores, [Item])  # 1024 slots, not 256
    with pytest.raises(ConfigError):
        await reshard(OLD, OLD, stores, [Item], batch_size=0)


async def test_a_stray_on_the_target_stops_the_run_before_anything_is_deleted(tmp_path: Path) -> None:
    stores: dict[str, Store] = {s: MemoryStore() for s in "abc"}
    expected = await load(stores, OLD, tenants=10, per=2)
    plan = OLD.plan(NEW)
    stray = next(f"x{i}" for i in range(1000) if plan.move_of(OLD.slot_of((f"x{i}",))) is not None)
    await stores["c"].put(ITEM, Item(stray, 1, "left over"))
    with pytest.raises(ReshardError, match="not the same keys"):
        await reshard(OLD, NEW, stores, [Item], execute=True, checkpoint=tmp_path / "cp.json")
    # Nothing was deleted: every item is still on its old shard.
    for router_shard in ("a", "b"):
        items = (await contents(stores, ITEM))[router_shard]
        assert all(OLD.shard_for(ITEM, (i.tenant, i.n)) == router_shard for i in items)
    assert sum(len(v) for k, v in (await contents(stores, ITEM)).items() if k != "c") == len(expected)


async def test_verification_reports_a_misplaced_item(tmp_path: Path) -> None:
    stores: dict[str, Store] = {s: MemoryStore() for s in "abc"}
    await load(stores, OLD, tenants=10, per=2)
    checkpoint = tmp_path / "cp.json"
    assert (await reshard(OLD, NEW, stores, [Item], execute=True, checkpoint=checkpoint)).ok
    wrong = next(f"y{i}" for i in range(1000) if NEW.shard_of((f"y{i}",)) != "a")
    await stores["a"].put(ITEM, Item(wrong, 1, "misplaced"))
    with pytest.raises(ReshardError, match="misplaced 1"):
        await reshard(OLD, NEW, stores, [Item], execute=True, checkpoint=checkpoint)
