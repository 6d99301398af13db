"""Micro-benchmark of ``SqlStore.get`` against the raw floors, on SQLite, PostgreSQL and MariaDB.

    PYTHONPATH=src python benchmarks/sql_micro.py [--n 2000] [--rounds 7] [--only sqlite,postgres,mysql]

For each database one table (a 10-field entity with a composite key, 1000 rows) is read by primary key,
round-robin over the rows, by:

- ``tierstore:repo``   ``Repository.get`` with no cache tier (key validation + store)
- ``tierstore:store``  ``SqlStore.get``
- ``raw:core``         SQLAlchemy Core ``select`` on a held ``AsyncConnection`` (the issue's reference)
- ``raw:<driver>``     the driver alone: asyncpg ``fetchrow``, aiomysql cursor, aiosqlite cursor
- ``raw:sqlite3``      (SQLite) synchronous sqlite3 in the loop thread, for scale

and, for orientation, ``SqlStore`` alone doing ``get_many`` of 100 keys, ``put`` (an upsert returning the new
version) and ``query`` of one partition (20 rows).

Each system runs ``n`` gets per round; rounds are interleaved (A B C A B C …) so machine noise hits all of
them alike; the table shows the median over rounds of µs per get and the ratio to ``raw:core`` and to the
raw driver. The event loop stays responsive: nothing here blocks it for longer than one SQLite B-tree probe.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

import tierstore
from tierstore import Entity, PartitionKey, SortKey, Version
from tierstore.backends import schema_of
from tierstore.stores.sql import SqlStoreConfig, metadata_for

PG_URL = os.environ.get("TIERSTORE_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("TIERSTORE_MYSQL_URL", "mysql+aiomysql://root@127.0.0.1:3306/test")
ROWS = 1000

GetFn = Callable[[int], Awaitable[Any]]


def make_entity() -> type[Entity]:
    table = f"sqlmicro_{uuid.uuid4().hex[:8]}"

    class Item(Entity, table=table):
        pk: PartitionKey[str]
        sk: SortKey[str]
        name: str
        email: str
        status: str
        amount_cents: int
        quantity: int
        score: float
        created_at: int
        version: Version = 0

    return Item


def item(cls: type[Any], i: int) -> Any:
    return cls(f"p{i % 50:03d}", f"s{i:05d}", f"name {i}", f"u{i}@example.com", "paid", i * 100, i % 7,
               i / 3.0, 1_700_000_000 + i)


async def bench(systems: dict[str, GetFn], n: int, rounds: int) -> dict[str, float]:
    for fn in systems.values():  # warm up: statement caches, pools, page cache
        for i in range(300):
            await fn(i)
    samples: dict[str, list[float]] = {name: [] for name in systems}
    for r in range(rounds):
        for name, fn in systems.items():
            base = r * n
            t0 = time.perf_counter()
            for i in range(base, base + n):
                await fn(i)
            samples[name].append((time.perf_counter() - t0) / n * 1e6)
    return {name: statistics.median(s) for name, s in samples.items()}


async def run_db(backend: str, url: str, n: int, rounds: int) -> list[tuple[str, str, float]]:
    Item = make_entity()
    schema = schema_of(Item)
    store = SqlStoreConfig.from_url(url).build()
    db = tierstore.connect(store)  # a ready store: the database does not own (close) it
    await db.open()
    repo = db.repository(Item)
    await store.ensure_schema(schema)
    await repo.put_many([item(Item, i) for i in range(ROWS)])
    keys = [(f"p{i % 50:03d}", f"s{i:05d}") for i in range(ROWS)]

    async def store_get(i: int) -> Any:
        return await store.get(schema, keys[i % ROWS])

    async def repo_get(i: int) -> Any:
        k = keys[i % ROWS]
        return await repo.get(k[0], k[1])

    table = metadata_for(Item).tables[schema.table]
    systems: dict[str, GetFn] = {"tierstore:repo": repo_get, "tierstore:store": store_get}
    cleanup: list[Callable[[], Awaitable[Any]]] = []
    raw_name = {"sqlite": "raw:aiosqlite", "postgres": "raw:asyncpg", "mysql": "raw:aiomysql"}[backend]

    engine = create_async_engine(url)
    conn = await engine.connect()
    stmt = sa.select(table).where(table.c.pk == sa.bindparam("pk"), table.c.sk == sa.bindparam("sk"))

    async def core_get(i: int) -> Any:
        k = keys[i % ROWS]
        row = (await conn.execute(stmt, {"pk": k[0], "sk": k[1]})).first()
        return Item(*row) if row is not None else None

    systems["raw:core"] = core_get
    cleanup += [conn.close, engine.dispose]
    cols = ", ".join(c.name for c in table.columns)

    if backend == "postgres":
        import asyncpg

        pg = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql", 1))
        sql = f"SELECT {cols} FROM {schema.table} WHERE pk = $1 AND sk = $2"  # noqa: S608 - fixed names

        async def raw_get(i: int) -> Any:
            k = keys[i % ROWS]
            row = await pg.fetchrow(sql, k[0], k[1])
            return Item(*row) if row is not None else None

        cleanup.append(pg.close)
    elif backend == "mysql":
        import aiomysql

        u = sa.make_url(url)
        my = await aiomysql.connect(host=u.host, port=u.port or 3306, user=u.username, password=u.password or "",
                                    db=u.database, charset="utf8mb4", autocommit=True)
        cur = await my.cursor()
        sql = f"SELECT {cols} FROM {schema.table} WHERE pk = %s AND sk = %s"  # noqa: S608 - fixed names

        async def raw_get(i: int) -> Any:
            await cur.execute(sql, keys[i % ROWS])
            row = await cur.fetchone()
            return Item(*row) if row is not None else None

        async def close_my() -> None:
            my.close()

        cleanup.append(close_my)
    else:
        import sqlite3

        import aiosqlite

        path = sa.make_url(url).database
        assert path is not None
        lite = await aiosqlite.connect(path)
        sql = f"SELECT {cols} FROM {schema.table} WHERE pk = ? AND sk = ?"  # noqa: S608 - fixed names

        async def raw_get(i: int) -> Any:
            async with lite.execute(sql, keys[i % ROWS]) as c:
                row = await c.fetchone()
            return Item(*row) if row is not None else None

        sync = sqlite3.connect(path)

        async def sync_get(i: int) -> Any:
            row = sync.execute(sql, keys[i % ROWS]).fetchone()
            return Item(*row) if row is not None else None

        systems["raw:sqlite3"] = sync_get

        async def close_sync() -> None:
            sync.close()

        cleanup += [lite.close, close_sync]
    systems[raw_name] = raw_get
    for fn in systems.values():  # every system reads the same thing
        assert await fn(7) == await store_get(7), fn

    async def store_get_many_100(i: int) -> Any:
        start = (i * 100) % (ROWS - 100)
        return await store.get_many(schema, keys[start : start + 100])

    async def store_put(i: int) -> Any:
        return await store.put(schema, item(Item, i % ROWS))

    async def store_query_50(i: int) -> Any:
        return await store.query(schema, tierstore.query.Query((f"p{i % 50:03d}",), limit=50))

    others = {"store:get_many_100": store_get_many_100, "store:put": store_put, "store:query_20": store_query_50}
    try:
        result = await bench(systems, n, rounds)
        result.update(await bench(others, max(50, n // 10), rounds))
    finally:
        for c in cleanup:
            await c()
        await store.drop_tables(Item)
        await db.aclose()
        await store.aclose()
    return [(backend, name, us) for name, us in result.items()]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="gets per system per round")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--only", default="sqlite,postgres,mysql")
    args = ap.parse_args()
    rows: list[tuple[str, str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"sqlite": f"sqlite+aiosqlite:///{tmp}/micro.db", "postgres": PG_URL, "mysql": MYSQL_URL}
        for backend in args.only.split(","):
            try:
                rows += await run_db(backend, urls[backend], args.n, args.rounds)
            except tierstore.StoreError as exc:
                print(f"skipping {backend}: {exc}", file=sys.stderr)
    print(f"{'db':9} {'system':17} {'µs/get':>8} {'× core':>7} {'× driver':>9}")
    for backend in dict.fromkeys(r[0] for r in rows):
        mine = {name: us for b, name, us in rows if b == backend}
        core = mine["raw:core"]
        driver = next(us for name, us in mine.items() if name.startswith("raw:") and name not in
                      ("raw:core", "raw:sqlite3"))
        for name, us in mine.items():
            if name.startswith("store:"):
                print(f"{backend:9} {name:17} {us:8.1f}")  # no raw floor here: see `tierstore bench`
            else:
                print(f"{backend:9} {name:17} {us:8.1f} {us / core:7.2f} {us / driver:9.2f}")


if __name__ == "__main__":
    asyncio.run(main())
