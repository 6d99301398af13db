"""Entities, routers and store helpers shared by the resharding tests (tests/integration/reshard/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

import tierstore
from tierstore import ConfigError, Entity, MemoryStore, PartitionKey, ShardedStore, SortKey, Version
from tierstore.backends import Store, schema_of
from tierstore.config import store_config
from tierstore.reshard.scan import scan_all
from tierstore.routing import Router

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


def shard_databases(url: str) -> dict[str, str]:
    """The databases of shards a, b and c on the server of ``url``: the URL's own database, then two named
    after it, so runs pointed at different databases of one server never share a shard."""
    own = urlsplit(url).path.lstrip("/") or "test"
    return {"a": own, "b": f"{own}_shard_b", "c": f"{own}_shard_c"}


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


async def _ensure_mysql_database(name: str) -> None:
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
    url = MYSQL_URL if kind == "mysql" else PG_URL
    return {s: with_database(url, db) for s, db in shard_databases(url).items()}


async def open_stores(kind: str, tmp_path: Path) -> dict[str, Store]:
    if kind == "memory":
        return {s: MemoryStore() for s in "abc"}
    if kind == "postgres":
        require(PG_URL, "postgres")
        for db in shard_databases(PG_URL).values():
            await _ensure_pg_database(db)
    if kind == "dynamodb":
        require(DYNAMODB_URL, "dynamodb")
    if kind == "mysql":
        require(MYSQL_URL, "mysql")
        for db in shard_databases(MYSQL_URL).values():
            await _ensure_mysql_database(db)
    stores: dict[str, Store] = {}
    try:
        for shard, url in shard_urls(kind, tmp_path).items():
            stores[shard] = store_config(url).build()
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


async def load(stores: dict[str, Store], router: Router, tenants: int = 30, per: int = 8) -> list[Item]:
    """Write items onto the shards ``router`` names; bump some versions so copies must keep them."""
    sharded = ShardedStore(router, {s: stores[s] for s in router.shards}, owns_shards=False)
    async with tierstore.connect(sharded) as db:
        repo = db.repository(Item)
        items = [Item(f"t{t}", n, f"p{t}-{n}") for t in range(tenants) for n in range(per)]
        await repo.put_many(items)
        for t in range(0, tenants, 3):
            await repo.put(Item(f"t{t}", 0, "edited", version=1))
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


async def open_stores_no_truncate(tmp_path: Path) -> dict[str, Store]:
    stores: dict[str, Store] = {}
    for shard, url in shard_urls("sqlite", tmp_path).items():
        stores[shard] = store_config(url).build()
        await stores[shard].open()
    return stores
