"""Resharding on real stores: two (then three) MemoryStores, SQLite files, PostgreSQL and MariaDB databases,
and DynamoDB Local table sets.

After every run — also one interrupted and resumed — each item is present exactly once, on the shard the new
router names, with its version unchanged.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import tierstore
from tierstore import ConfigError, Entity, MemoryStore, MemoryTier, PartitionKey, SortKey, Version, schema_of
from tierstore.reshard import ReshardError, ReshardEvent, main, reshard
from tierstore.reshard.scan import scan_all
from tierstore.routing import Router
from tierstore.stores.base import Store
from tierstore.stores.sharded import ShardedStore

from _servers import DYNAMODB_URL, MYSQL_URL, PG_URL, require


class Item(Entity, table="rs_items"):
    tenant: PartitionKey[str]
    n: SortKey[int]
    payload: str
    version: Version = 0


class Tag(Entity, table="rs_tags"):
    id: PartitionKey[int]
    label: str


ITEM = schema_of(Item)
TAG = schema_of(Tag)
OLD = Router.uniform(["a", "b"], slots=256)
NEW = OLD.with_shards(["a", "b", "c"])
PG_DBS = {"a": "test", "b": "test_shard_b", "c": "test_shard_c"}


def _pg_url(database: str, base: str = PG_URL) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(base)._replace(path=f"/{database}"))


async def _ensure_mysql_database(name: str) -> None:
    from urllib.parse import urlsplit

    import aiomysql

    p = urlsplit(MYSQL_URL)
    conn = await aiomysql.connect(host=p.hostname, port=p.port or 3306, user=p.username or "root",
                                  password=p.password or "")
    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (name,))
            if not await cur.fetchone():
                await cur.execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
    finally:
        conn.close()


async def _ensure_pg_database(name: str) -> None:
    import contextlib

    import asyncpg

    conn = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg", "postgresql"))
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):  # a parallel run created it
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def shard_urls(kind: str, tmp_path: Path) -> dict[str, str]:
    if kind == "memory":
        return {}
    if kind == "sqlite":
        return {s: f"sqlite+aiosqlite:///{tmp_path}/{s}.db" for s in "abc"}
    if kind == "dynamodb":  # three table sets on one endpoint, told apart by a table prefix
        sep = "&" if "?" in DYNAMODB_URL else "?"
        return {s: f"{DYNAMODB_URL}{sep}table_prefix=rs{s}_" for s in "abc"}
    if kind == "mysql":
        return {s: _pg_url(db, MYSQL_URL) for s, db in PG_DBS.items()}
    return {s: _pg_url(db) for s, db in PG_DBS.items()}


async def open_stores(kind: str, tmp_path: Path) -> dict[str, Store]:
    if kind == "memory":
        return {s: MemoryStore() for s in "abc"}
    if kind == "postgres":
        require(PG_URL, "postgres")
        for db in PG_DBS.values():
            await _ensure_pg_database(db)
    if kind == "dynamodb":
        require(DYNAMODB_URL, "dynamodb")
    if kind == "mysql":
        require(MYSQL_URL, "mysql")
        for db in PG_DBS.values():
            await _ensure_mysql_database(db)
    stores: dict[str, Store] = {}
    try:
        for shard, url in shard_urls(kind, tmp_path).items():
            stores[shard] = tierstore.config.store_config(url).build()
    except ConfigError as exc:
        if "missing" in str(exc):
            pytest.skip(f"backend not available: {exc}")
        raise
    for s in stores.values():
        await s.open()
        for schema in (ITEM, TAG):
            await s.ensure_schema(schema)
            await s.truncate(schema)
    return stores


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


async def load(stores: dict[str, Store], router: Router, tenants: int = 30, per: int = 8) -> list[Item]:
    """Write items onto the shards ``router`` names; bump some versions so copies must keep them."""
    sharded = ShardedStore(router, {s: stores[s] for s in router.shards}, owns_shards=False)
    async with tierstore.connect(sharded) as db:
        repo = db.repository(Item)
        items = [Item(f"t{t}", n, f"p{t}-{n}") for t in range(tenants) for n in range(per)]
        await repo.put_many(items)
        for t in range(0, tenants, 3):
            await repo.put(Item(f"t{t}", 0, "edited"))
        await db.repository(Tag).put_many([Tag(i, f"l{i}") for i in range(40)])
        return [i for i in await repo.get_many([(i.tenant, i.n) for i in items]) if i is not None]


async def contents(stores: dict[str, Store], schema: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for name, store in stores.items():
        out[name] = [i async for page in scan_all(store, schema, 1000) for i in page]
    return out


async def assert_exactly_once(stores: dict[str, Store], router: Router, expected: list[Item]) -> None:
    where = await contents(stores, ITEM)
    seen: dict[tuple[str, int], Item] = {}
    for shard, items in where.items():
        for item in items:
            key = (item.tenant, item.n)
            assert key not in seen, f"{key} is on two shards"
            assert router.shard_for(ITEM, key) == shard, f"{key} is on {shard}"
            seen[key] = item
    assert seen == {(i.tenant, i.n): i for i in expected}  # versions and payloads unchanged


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


# -- command line ------------------------------------------------------------------------------------


@pytest.mark.sqlite
async def test_cli_dry_run_then_execute(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stores = await open_stores("sqlite", tmp_path)
    expected = await load(stores, OLD, tenants=10, per=3)
    for s in stores.values():
        await s.aclose()
    args = [
        "--from", str(OLD), "--to-shards", "a,b,c",
        *(f"--store={s}={u}" for s, u in shard_urls("sqlite", tmp_path).items()),
        "--entity", f"{__name__}:Item", "--checkpoint", str(tmp_path / "cp.json"), "--batch-size", "7",
    ]
    assert await _run_main(args) == 0
    out = capsys.readouterr().out
    assert "would move" in out and "dry run" in out
    assert await _run_main([*args, "--execute", "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert report["ok"] and report["tables"][0]["after"] == len(expected)
    stores = await open_stores_no_truncate(tmp_path)
    try:
        await assert_exactly_once(stores, NEW, expected)
    finally:
        for s in stores.values():
            await s.aclose()
    assert await _run_main(["--from", "a=0-3", "--to", "a=0-1", "--entity", f"{__name__}:Item"]) == 2
    assert "cannot plan" in capsys.readouterr().err


async def _run_main(argv: list[str]) -> int:
    # main() runs its own event loop (it is the CLI's entry point): give it a thread of its own.
    import asyncio

    return await asyncio.to_thread(main, argv)


async def open_stores_no_truncate(tmp_path: Path) -> dict[str, Store]:
    stores: dict[str, Store] = {}
    for shard, url in shard_urls("sqlite", tmp_path).items():
        stores[shard] = tierstore.config.store_config(url).build()
        await stores[shard].open()
    return stores


def test_cli_rejects_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--from", "a=0-1", "--to", "a=0-1", "--entity", "nope"]) == 2
    assert "MODULE:CLASS" in capsys.readouterr().err
    assert main(["--from", "a=0-1", "--to", "a=0-1", "--entity", f"{__name__}:Item", "--store", "x"]) == 2
    with pytest.raises(SystemExit):
        main(["--bogus"])
    assert os.environ.get("TIERSTORE_NEVER_SET") is None


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
