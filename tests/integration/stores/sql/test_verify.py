"""``schema="verify"`` on PostgreSQL, MariaDB and SQLite against tables made by hand with plain DDL: every
mismatch (missing column, wrong type, nullability both ways, primary key, missing index, a case-insensitive
collation on a key column, a foreign NOT NULL column without a default) is reported in one ``SchemaMismatch``
with the statement that fixes it, nothing is altered, and a table tierstore created verifies clean."""

# ruff: noqa: S608  # the statements interpolate this module's own table name, never input

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import tierstore
from tierstore import Entity, Index, PartitionKey, SchemaMismatch, SortKey, Version

from _sql import BACKENDS, url_of

S = uuid.uuid4().hex[:8]
TABLE = f"vfy_orders_{S}"


class Order(Entity, table=TABLE, indexes=[Index("by_status", "status", "placed")]):
    customer: PartitionKey[str]
    order_id: SortKey[str]
    status: str
    placed: int = 0
    total: int = 0
    note: str | None = None
    version: Version = 0


# The same shape as a team would write it by hand, with one fault per column.
BAD_DDL = {
    "postgres": [
        "CREATE COLLATION IF NOT EXISTS tierstore_test_ci "
        "(provider = icu, locale = 'und-u-ks-level2', deterministic = false)",
        f"CREATE TABLE {TABLE} (customer varchar(255) COLLATE tierstore_test_ci NOT NULL, "
        "order_id varchar(255) NOT NULL, status varchar(255) COLLATE \"C\", placed bigint NOT NULL, "
        "total text NOT NULL, version bigint NOT NULL, legacy_flag integer NOT NULL, PRIMARY KEY (customer))",
    ],
    "mysql": [
        f"CREATE TABLE {TABLE} (customer varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL, "
        "order_id varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL, "
        "status varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin, placed bigint NOT NULL, "
        "total text NOT NULL, version bigint NOT NULL, legacy_flag int NOT NULL, PRIMARY KEY (customer)) "
        "ENGINE=InnoDB",
    ],
    "sqlite": [
        f"CREATE TABLE {TABLE} (customer varchar(255) COLLATE NOCASE NOT NULL, order_id varchar(255) NOT NULL, "
        "status varchar(255), placed bigint NOT NULL, total text NOT NULL, version bigint NOT NULL, "
        "legacy_flag integer NOT NULL, PRIMARY KEY (customer))",
    ],
}


async def ddl(url: str, *stmts: str) -> list[tuple[object, ...]]:
    """Run ``stmts`` with SQLAlchemy on a connection of their own; the rows of the last one, if any."""
    engine = create_async_engine(url, poolclass=NullPool)
    rows: list[tuple[object, ...]] = []
    try:
        async with engine.begin() as conn:
            for s in stmts:
                result = await conn.exec_driver_sql(s)
                rows = [tuple(r) for r in result.all()] if result.returns_rows else []
    finally:
        await engine.dispose()
    return rows


def _columns_query(backend: str) -> str:
    if backend == "sqlite":
        return f"SELECT name, type, \"notnull\" FROM pragma_table_info('{TABLE}') ORDER BY cid"
    if backend == "postgres":
        return ("SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                f"WHERE table_name = '{TABLE}' ORDER BY ordinal_position")
    return ("SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE FROM information_schema.COLUMNS "
            f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{TABLE}' ORDER BY ORDINAL_POSITION")


@pytest.fixture(params=BACKENDS)
async def url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> AsyncIterator[str]:
    backend = request.param
    u = url_of(backend, tmp_path)
    await ddl(u, f"DROP TABLE IF EXISTS {TABLE}")
    yield u
    await ddl(u, f"DROP TABLE IF EXISTS {TABLE}")


def _backend(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgres" if url.startswith("postgres") else "mysql"


async def test_every_mismatch_is_reported_once_and_nothing_is_altered(url: str) -> None:
    backend = _backend(url)
    await ddl(url, *BAD_DDL[backend])
    before = await ddl(url, _columns_query(backend))
    async with tierstore.connect(url, schema="verify") as db:
        with pytest.raises(SchemaMismatch) as info:
            await db.repository(Order).get("c1", "o1")
        with pytest.raises(SchemaMismatch) as again:
            await db.verify(Order)
    problems = {m.problem.split(" ")[1] if m.problem.startswith(("column", "key column")) else m.problem: m
                for m in info.value.mismatches}
    text = "\n".join(str(m) for m in info.value.mismatches)
    assert [str(m) for m in again.value.mismatches] == [str(m) for m in info.value.mismatches]
    assert "column note is missing" in text
    assert "column total is" in text and "cannot hold the field's int values" in text
    assert "column status allows NULL" in text
    assert "the primary key is (customer), the entity's key is (customer, order_id)" in text
    assert "no index on (status, placed)" in text
    assert "key column customer has collation" in text
    assert "column legacy_flag is not declared by the entity and is NOT NULL without a default" in text
    assert "order_id" not in {m.problem.split(" ")[2] for m in info.value.mismatches if m.problem.startswith("key")}
    assert len(info.value.mismatches) == 7, text
    assert all(m.entity == "Order" and m.table == TABLE and m.fix for m in info.value.mismatches)
    assert "ADD COLUMN note" in problems["note"].fix
    assert await ddl(url, _columns_query(backend)) == before  # verify altered nothing
    assert str(info.value).count("\n- ") == 7


async def test_a_table_tierstore_created_verifies_clean(url: str) -> None:
    async with tierstore.connect(url, schema="create") as db:
        await db.create_tables(Order)
    async with tierstore.connect(url, schema="verify") as db:
        await db.verify(Order)
        repo = db.repository(Order)
        stored = await repo.put(Order("c1", "o1", "new"))
        assert await repo.get("c1", "o1") == stored


async def test_a_missing_table_is_reported_with_its_ddl_and_not_created(url: str) -> None:
    async with tierstore.connect(url) as db:
        assert db.schema_mode == ("create" if url.startswith("sqlite") else "verify")
        if db.schema_mode == "create":
            return
        with pytest.raises(SchemaMismatch) as info:
            await db.repository(Order).get("c1", "o1")
    [m] = info.value.mismatches
    assert m.problem == "the table does not exist" and f"CREATE TABLE {TABLE}" in m.fix
    assert "CREATE INDEX" in m.fix
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            assert not await conn.run_sync(lambda c: sa.inspect(c).has_table(TABLE))
    finally:
        await engine.dispose()
