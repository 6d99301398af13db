"""Native SQL types: ``datetime`` ↔ ``timestamptz`` / ``DATETIME(6)``, ``date`` ↔ ``date``, ``UUID`` ↔ ``uuid`` /
``CHAR(36)``, ``Decimal`` ↔ ``numeric`` / ``DECIMAL``, against columns created by hand with plain DDL and rows
inserted by hand; JSON only for nested values. Writes keep a column the entity does not declare. On SQLite
the values are ISO/exact text, and rows written by older versions (JSON text) still read."""

# ruff: noqa: S608  # the statements interpolate this module's own table name, never input

from __future__ import annotations

import datetime as dt
import decimal
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import tierstore
from tierstore import Entity, PartitionKey, Version
from tierstore.stores.sql import metadata_for

from _sql import BACKENDS, url_of

S = uuid.uuid4().hex[:8]
TABLE = f"native_{S}"
UID = uuid.UUID("12345678-1234-5678-1234-567812345678")
AT = dt.datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=dt.UTC)


class Invoice(Entity, table=TABLE):
    id: PartitionKey[str]
    issued_at: dt.datetime
    due: dt.date
    ref: uuid.UUID
    amount: decimal.Decimal
    paid_at: dt.datetime | None = None
    items: list[str] = []
    version: Version = 0


DDL = {
    "postgres": f"CREATE TABLE {TABLE} (id varchar(255) COLLATE \"C\" PRIMARY KEY, issued_at timestamptz NOT NULL, "
                "due date NOT NULL, ref uuid NOT NULL, amount numeric(12, 2) NOT NULL, paid_at timestamptz, "
                "items jsonb NOT NULL, version bigint NOT NULL, owner_team text DEFAULT 'billing')",
    "mysql": f"CREATE TABLE {TABLE} (id varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin PRIMARY KEY, "
             "issued_at datetime(6) NOT NULL, due date NOT NULL, ref char(36) NOT NULL, "
             "amount decimal(12, 2) NOT NULL, paid_at datetime(6), items longtext NOT NULL, version bigint NOT NULL, "
             "owner_team varchar(40) DEFAULT 'billing')",
    "sqlite": f"CREATE TABLE {TABLE} (id varchar(255) PRIMARY KEY, issued_at text NOT NULL, due text NOT NULL, "
              "ref text NOT NULL, amount text NOT NULL, paid_at text, items text NOT NULL, version bigint NOT NULL, "
              "owner_team text DEFAULT 'billing')",
}
ROW = {
    "postgres": "('i1', '2026-03-04 05:06:07.891011+00', '2026-04-01', '12345678-1234-5678-1234-567812345678', "
                "12.50, NULL, '[\"a\"]', 1, 'ops')",
    "mysql": "('i1', '2026-03-04 05:06:07.891011', '2026-04-01', '12345678-1234-5678-1234-567812345678', 12.50, NULL, "
             "'[\"a\"]', 1, 'ops')",
    # as an older version wrote them: JSON text
    "sqlite": "('i1', '\"2026-03-04T05:06:07.891011Z\"', '\"2026-04-01\"', '\"12345678-1234-5678-1234-567812345678\"', "
              "'\"12.50\"', NULL, '[\"a\"]', 1, 'ops')",
}


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
    insert = (f"INSERT INTO {TABLE} (id, issued_at, due, ref, amount, paid_at, items, version, owner_team) "
              f"VALUES {ROW[backend]}")
    await sql(url, f"DROP TABLE IF EXISTS {TABLE}", DDL[backend], insert)
    yield url, backend
    await sql(url, f"DROP TABLE IF EXISTS {TABLE}")


async def test_hand_made_native_columns_round_trip(adopted: tuple[str, str]) -> None:
    url, backend = adopted
    async with tierstore.connect(url, schema="verify") as db:
        await db.verify(Invoice)
        repo = db.repository(Invoice)
        got = await repo.get("i1")
        assert got == Invoice("i1", AT, dt.date(2026, 4, 1), UID, decimal.Decimal("12.50"), None, ["a"], 1)
        assert got is not None and type(got.ref) is uuid.UUID and got.issued_at.tzinfo is not None
        paid = dt.datetime(2026, 3, 5, 1, 2, 3, 4, tzinfo=dt.timezone(dt.timedelta(hours=2)))
        naive = dt.datetime(2026, 3, 6, 0, 0, 0, 1)
        if backend != "sqlite":  # a naive datetime names no instant: refused before any I/O
            with pytest.raises(tierstore.ValidationError, match="has no timezone"):
                await repo.put(Invoice("i9", naive, dt.date(2027, 1, 31), UID, decimal.Decimal(1)))
            naive = naive.replace(tzinfo=dt.UTC)
        stored = await repo.put(Invoice("i1", naive, dt.date(2027, 1, 31), uuid.UUID(int=7),
                                        decimal.Decimal("0.10"), paid, ["b", "c"], 1))
        await repo.put(Invoice("i2", AT, dt.date(2026, 1, 1), UID, decimal.Decimal("-3.25")))
        again = await repo.get("i1", consistent=True)
        assert again == stored
        assert again is not None and again.issued_at == naive
        assert again.paid_at == paid  # the same instant
        assert again.amount == decimal.Decimal("0.10")
        assert [i.id for i in await repo.get_many(["i1", "i2"]) if i] == ["i1", "i2"]
    rows = await sql(url, f"SELECT id, owner_team FROM {TABLE} ORDER BY id")
    assert rows == [("i1", "ops"), ("i2", "billing")]  # the foreign column kept its value
    if backend != "sqlite":
        natives = await sql(url, f"SELECT due, ref FROM {TABLE} WHERE id = 'i1'")
        assert natives[0][0] == dt.date(2027, 1, 31)
        assert str(natives[0][1]) == str(uuid.UUID(int=7))


def test_generated_columns_are_native() -> None:
    from sqlalchemy.dialects import mysql, postgresql
    from sqlalchemy.schema import CreateTable

    table = metadata_for(Invoice).tables[TABLE]
    pg = " ".join(str(CreateTable(table).compile(dialect=postgresql.dialect())).split())
    my = " ".join(str(CreateTable(table).compile(dialect=mysql.dialect())).split())
    for needle in ("issued_at TIMESTAMP WITH TIME ZONE NOT NULL", "due DATE NOT NULL", "ref UUID NOT NULL",
                   "amount NUMERIC NOT NULL", "items JSONB"):
        assert needle in pg, pg
    for needle in ("issued_at DATETIME(6) NOT NULL", "ref CHAR(36) NOT NULL", "amount DECIMAL(65, 30) NOT NULL"):
        assert needle in my, my
