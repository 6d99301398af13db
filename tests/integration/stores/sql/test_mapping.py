"""Adopting a table made by hand: msgspec renames are the column names, a hyphenated table name is quoted,
columns the entity does not declare keep their values through every kind of write, and PostgreSQL's
``pg_schema=`` puts the tables in a schema of their own. On SQLite, PostgreSQL and MariaDB."""

# ruff: noqa: S608  # the statements interpolate this module's own table names, never input

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import tierstore
from tierstore import Entity, Index, PartitionKey, SortKey, Version

from _servers import PG_URL, require
from _sql import BACKENDS, url_of

S = uuid.uuid4().hex[:8]
TABLE = f"crm-orders-{S}"


class Order(Entity, table=TABLE, rename="camel", indexes=[Index("by_status", "order_status", "placed_at")]):
    customer_id: PartitionKey[str]
    order_id: SortKey[str]
    order_status: str
    placed_at: int = 0
    label: str = msgspec.field(default="", name="title")
    version: Version = 0


def _q(backend: str, name: str) -> str:
    return f"`{name}`" if backend == "mysql" else f'"{name}"'


def _ddl(backend: str) -> list[str]:
    t = _q(backend, TABLE)
    key = "varchar(255)"
    if backend == "mysql":
        key = "varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin"
    elif backend == "postgres":
        key = 'varchar(255) COLLATE "C"'
    q = lambda n: _q(backend, n)  # noqa: E731
    return [
        f"CREATE TABLE {t} ({q('customerId')} {key} NOT NULL, {q('orderId')} {key} NOT NULL, "
        f"{q('orderStatus')} {key} NOT NULL, {q('placedAt')} bigint NOT NULL, title text NOT NULL, "
        f"version bigint NOT NULL, legacy varchar(40) DEFAULT 'none', "
        f"PRIMARY KEY ({q('customerId')}, {q('orderId')}))",
        f"CREATE INDEX {q('ix_' + TABLE + '_status')} ON {t} ({q('orderStatus')}, {q('placedAt')})",
        f"INSERT INTO {t} ({q('customerId')}, {q('orderId')}, {q('orderStatus')}, {q('placedAt')}, title, "
        "version, legacy) VALUES ('c1', 'o1', 'open', 10, 'first', 3, 'keep-me')",
    ]


async def sql(url: str, *stmts: str) -> list[tuple[object, ...]]:
    engine = create_async_engine(url.split("?")[0], poolclass=NullPool)
    rows: list[tuple[object, ...]] = []
    try:
        async with engine.begin() as conn:
            for s in stmts:
                result = await conn.exec_driver_sql(s)
                rows = [tuple(r) for r in result.all()] if result.returns_rows else []
    finally:
        await engine.dispose()
    return rows


@pytest.fixture(params=BACKENDS)
async def adopted(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> AsyncIterator[tuple[str, str]]:
    backend = request.param
    url = url_of(backend, tmp_path)
    drop = f"DROP TABLE IF EXISTS {_q(backend, TABLE)}"
    await sql(url, drop, *_ddl(backend))
    yield url, backend
    await sql(url, drop)


async def test_renamed_columns_are_read_and_written_and_foreign_columns_kept(adopted: tuple[str, str]) -> None:
    url, backend = adopted
    t, q = _q(backend, TABLE), lambda n: _q(backend, n)
    async with tierstore.connect(url, schema="verify") as db:
        await db.verify(Order)  # the hand-made table fits: renames are its column names
        repo = db.repository(Order)
        got = await repo.get("c1", "o1")
        assert got == Order("c1", "o1", "open", 10, "first", 3)
        page = await repo.query("c1")
        assert page.items == [got]
        by_status = await repo.query("open", index="by_status")
        assert by_status.items == [got]
        # Every kind of write leaves the column the entity does not declare alone.
        await repo.put(msgspec.structs.replace(got, label="second"), expect_version=3)
        # (each item carries the stored version: the writes pass with or without version checks by default)
        await repo.put(Order("c1", "o1", "closed", 11, "third", 4))
        await repo.put_many([Order("c1", "o1", "closed", 12, "fourth", 5), Order("c1", "o2", "open", 13)])
        async with db.transaction() as tx:
            tx.put(Order("c2", "o9", "open", 1))
    rows = await sql(url, f"SELECT {q('orderId')}, {q('orderStatus')}, {q('placedAt')}, title, legacy FROM {t} "
                          f"ORDER BY {q('customerId')}, {q('orderId')}")
    assert rows == [
        ("o1", "closed", 12, "fourth", "keep-me"),
        ("o2", "open", 13, "", "none"),
        ("o9", "open", 1, "", "none"),
    ]


@pytest.mark.postgres
async def test_pg_schema_keeps_the_tables_in_their_own_schema() -> None:
    require(PG_URL, "postgres")
    ns = f"adopt_{S}"
    url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}pg_schema={ns}"

    class Plain(Entity, table=f"plain-{S}"):
        id: PartitionKey[str]
        n: int = 0

    try:
        async with tierstore.connect(url, schema="verify") as db:
            with pytest.raises(tierstore.SchemaMismatch, match=f"table {ns}.plain-{S}"):
                await db.verify(Plain)
        async with tierstore.connect(url, schema="create") as db:
            await db.repository(Plain).put(Plain("a", 1))
        async with tierstore.connect(url) as db:
            await db.verify(Plain)
            assert await db.repository(Plain).get("a") == Plain("a", 1)
        rows = await sql(PG_URL, f"SELECT table_schema FROM information_schema.tables WHERE table_name = 'plain-{S}'")
        assert rows == [(ns,)]
    finally:
        await sql(PG_URL, f'DROP SCHEMA IF EXISTS "{ns}" CASCADE')


async def test_a_second_entity_on_the_same_table_is_a_config_error(adopted: tuple[str, str]) -> None:
    url, _ = adopted

    class Other(Entity, table=TABLE):
        customer_id: PartitionKey[str]
        something_else: int = 0

    async with tierstore.connect(url, schema="off") as db:
        assert (await db.repository(Order).get("c1", "o1")) is not None
        with pytest.raises(tierstore.ConfigError, match="an SQL table holds one entity"):
            await db.repository(Other).get("c1")
