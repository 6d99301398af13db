"""Rows another writer made that do not decode as the entity: a JSON value of the wrong shape, a NULL in a
required field, and (SQLite, which keeps what it is given) a text in a column the entity reads as int. A query
fails with ``StoreError`` by default; with ``undecodable="skip"`` it leaves them out, lists them in
``page.skipped`` and counts them in ``stats.skipped``. ``get``/``get_many`` raise ``StoreError`` naming the key.
On SQLite, PostgreSQL and MariaDB, the rows inserted by plain SQL."""

# ruff: noqa: S608  # the statements interpolate this module's own table name, never input

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import tierstore
from tierstore import Entity, PartitionKey, SortKey, StoreError

from _sql import BACKENDS, url_of

TABLE = f"tolerant_{uuid.uuid4().hex[:8]}"


class Profile(Entity, table=TABLE):
    tenant: PartitionKey[str]
    id: SortKey[str]
    age: int
    nick: str | None = None
    tags: list[str] = []


class TolerantProfile(Entity, table=TABLE, undecodable="skip"):  # the same columns: the same table
    tenant: PartitionKey[str]
    id: SortKey[str]
    age: int
    nick: str | None = None
    tags: list[str] = []


async def sql(url: str, *stmts: str) -> None:
    """Run ``stmts`` as another writer would: plain SQL through a connection of its own."""
    engine = create_async_engine(url.split("?")[0], poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            for s in stmts:
                await conn.exec_driver_sql(s)
    finally:
        await engine.dispose()


def _ddl(backend: str) -> list[str]:
    key, json = "varchar(255)", "text"
    if backend == "mysql":
        key, json = "varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin", "longtext"
    elif backend == "postgres":
        key, json = 'varchar(255) COLLATE "C"', "jsonb"
    rows = ["('t', 'a', 30, NULL, '[\"x\"]')", "('t', 'b', NULL, 'nobody', '[]')",
            "('t', 'c', 5, NULL, '{\"k\": 1}')", "('t', 'e', 40, 'n', '[]')", "('u', 'z', 1, NULL, '[]')"]
    if backend == "sqlite":
        rows.append("('t', 'd', 'old', NULL, '[]')")
    return [
        f"CREATE TABLE {TABLE} (tenant {key} NOT NULL, id {key} NOT NULL, age bigint, nick text, "
        f"tags {json} NOT NULL, PRIMARY KEY (tenant, id))",
        f"INSERT INTO {TABLE} (tenant, id, age, nick, tags) VALUES {', '.join(rows)}",
    ]


@pytest.fixture(params=BACKENDS)
async def shared(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> AsyncIterator[tuple[str, str]]:
    backend = request.param
    url = url_of(backend, tmp_path)
    drop = f"DROP TABLE IF EXISTS {TABLE}"
    await sql(url, drop, *_ddl(backend))
    yield url, backend
    await sql(url, drop)


async def test_a_query_fails_on_a_row_that_does_not_decode_unless_told_to_skip(shared: tuple[str, str]) -> None:
    url, backend = shared
    bad = {"b": "column age is NULL", "c": "tags"} | ({"d": "column age holds 'old' (str)"} if backend == "sqlite"
                                                      else {})
    async with tierstore.connect(url, schema="off") as db:
        repo = db.repository(Profile)
        with pytest.raises(StoreError, match="does not decode") as failed:
            await repo.query("t")
        assert failed.value.key == ("t", "b")  # the first row that does not decode
        page = await repo.query("t", undecodable="skip")
        assert [p.id for p in page.items] == ["a", "e"]
        assert page.items[0] == Profile("t", "a", 30, None, ["x"])
        assert [s.key for s in page.skipped] == [{"tenant": "t", "id": i} for i in sorted(bad)]
        for s in page.skipped:
            assert bad[s.key["id"]] in s.reason, s.reason
        assert db.store.stats.skipped == len(bad)
        # Pages count rows read: a page may hold fewer items than the limit; the cursor goes on past them.
        items, skipped = [], []
        async for p in repo.query("t", limit=2, undecodable="skip").pages():
            items += p.items
            skipped += p.skipped
        assert [p.id for p in items] == ["a", "e"] and len(skipped) == len(bad)
        # The entity's own default, and a query's override of it.
        tolerant = db.repository(TolerantProfile)
        assert [p.id for p in await tolerant.query("t").all()] == ["a", "e"]
        with pytest.raises(StoreError):
            await tolerant.query("t", undecodable="raise")
        assert [p.id for p in await repo.query("u").all()] == ["z"]  # a partition of good rows


async def test_get_of_a_row_that_does_not_decode_names_its_key(shared: tuple[str, str]) -> None:
    url, _ = shared
    async with tierstore.connect(url, schema="off") as db:
        repo = db.repository(Profile)
        assert await repo.get("t", "a") == Profile("t", "a", 30, None, ["x"])
        with pytest.raises(StoreError, match="column age is NULL") as failed:
            await repo.get("t", "b")
        assert failed.value.key == ("t", "b")
        with pytest.raises(StoreError, match="tags") as many:
            await repo.get_many([("t", "a"), ("t", "c")])
        assert many.value.key == ("t", "c")
