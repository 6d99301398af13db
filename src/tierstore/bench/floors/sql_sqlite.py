"""``raw:sqlite3``, ``raw:aiosqlite`` and their ``-join-*`` floors: the stdlib's blocking sqlite3 (the driver
tierstore's SQLite store runs its statements on; the query without a thread hop) and aiosqlite (one thread hop
per statement). get_many and the join's batch join a ``VALUES`` list on the primary key: SQLite plans
``(pk, sk) IN (VALUES …)`` as a table scan.
"""

# SQL text here is assembled from the benchmark entity's constant field and table names only; every value is
# a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from typing import Any

from tierstore.bench.api import (
    CONCURRENT,
    GET,
    GET_MANY,
    PUT,
    QUERY,
    UPDATE,
    Driver,
    GetFn,
    GetManyFn,
    PageFn,
    PutFn,
    UpdateFn,
)
from tierstore.bench.data import FIELDS, ORDER_FIELDS, BenchItem, BenchOrder, Dataset
from tierstore.bench.floors.join import CustomerGet, CustomersGet, JoinFloor, Key, OrdersPage
from tierstore.bench.floors.sql import (
    COLS,
    ORDER_COLS,
    VALUE_FIELDS,
    astuple,
    create_table_sql,
    in_order,
    many_join_sql,
)

__all__ = ["AiosqliteDriver", "AiosqliteJoinDriver", "Sqlite3Driver", "Sqlite3JoinDriver"]


class _SqliteSql:
    table = "tsbench_raw"
    sql_get = f"SELECT {COLS} FROM {table} WHERE pk = ? AND sk = ?"
    sql_insert = f"INSERT INTO {table} ({COLS}) VALUES ({', '.join(['?'] * len(FIELDS))})"
    sql_put = sql_insert + " ON CONFLICT (pk, sk) DO UPDATE SET " + ", ".join(
        f"{f} = excluded.{f}" for f in VALUE_FIELDS
    )
    sql_page = f"SELECT {COLS} FROM {table} WHERE pk = ? ORDER BY sk LIMIT ?"
    sql_update = f"UPDATE {table} SET amount_cents = amount_cents + ? WHERE pk = ? AND sk = ? RETURNING {COLS}"
    _many: dict[int, str] = {}

    @classmethod
    def sql_many(cls, n: int) -> str:
        # SQLite plans "(pk, sk) IN (VALUES …)" as a table scan; a join on the VALUES list uses the key.
        sql = cls._many.get(n)
        if sql is None:
            sql = cls._many[n] = many_join_sql(cls.table, ", ".join(["(?, ?)"] * n))
        return sql


def _load_sqlite(conn: sqlite3.Connection, data: Dataset) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"DROP TABLE IF EXISTS {_SqliteSql.table}")
    conn.execute(create_table_sql("sqlite", _SqliteSql.table))
    conn.execute("BEGIN")
    conn.executemany(_SqliteSql.sql_insert, [astuple(i) for i in data.items])
    conn.execute("COMMIT")


class Sqlite3Driver(Driver):
    """The standard library's blocking sqlite3, for reference: what the query costs without a thread hop."""

    caps = frozenset({GET, GET_MANY, PUT, QUERY, UPDATE})

    def __init__(self, path: str) -> None:
        self.path = path
        self.trips = 0
        self._conn: sqlite3.Connection | None = None

    async def open(self, data: Dataset) -> None:
        self._conn = sqlite3.connect(self.path, isolation_level=None)
        _load_sqlite(self._conn, data)

    async def aclose(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def counters(self) -> dict[str, int]:
        return {"store": self.trips}

    def getter(self) -> GetFn:
        assert self._conn is not None
        execute, sql = self._conn.execute, _SqliteSql.sql_get

        async def get(pk: str, sk: str) -> BenchItem | None:
            self.trips += 1
            row = execute(sql, (pk, sk)).fetchone()
            return None if row is None else BenchItem(*row)

        return get

    def batch_getter(self) -> GetManyFn:
        assert self._conn is not None
        execute = self._conn.execute

        async def get_many(keys: Sequence[tuple[str, str]]) -> list[BenchItem | None]:
            self.trips += 1
            return in_order(keys, execute(_SqliteSql.sql_many(len(keys)), [v for k in keys for v in k]))

        return get_many

    def putter(self) -> PutFn:
        assert self._conn is not None
        execute, sql = self._conn.execute, _SqliteSql.sql_put

        async def put(item: BenchItem) -> None:
            self.trips += 1
            execute(sql, astuple(item))

        return put

    def updater(self) -> UpdateFn:
        assert self._conn is not None
        execute, sql = self._conn.execute, _SqliteSql.sql_update

        async def update(pk: str, sk: str, delta: int) -> BenchItem | None:
            self.trips += 1
            row = execute(sql, (delta, pk, sk)).fetchone()
            return None if row is None else BenchItem(*row)

        return update

    def pager(self) -> PageFn:
        assert self._conn is not None
        execute, sql = self._conn.execute, _SqliteSql.sql_page

        async def page(pk: str, limit: int) -> list[BenchItem]:
            self.trips += 1
            return [BenchItem(*r) for r in execute(sql, (pk, limit))]

        return page


class AiosqliteDriver(Driver):
    """aiosqlite on one autocommit connection, one thread hop per operation (``execute_fetchall``)."""

    caps = frozenset({GET, GET_MANY, PUT, QUERY, CONCURRENT, UPDATE})

    def __init__(self, path: str) -> None:
        self.path = path
        self.trips = 0
        self._db: Any = None

    async def open(self, data: Dataset) -> None:
        import aiosqlite

        with sqlite3.connect(self.path, isolation_level=None) as setup:
            _load_sqlite(setup, data)
        setup.close()
        self._db = await aiosqlite.connect(self.path, isolation_level=None)

    async def aclose(self) -> None:
        if self._db is not None:
            with contextlib.suppress(Exception):
                await self._db.close()

    def counters(self) -> dict[str, int]:
        return {"store": self.trips}

    def getter(self) -> GetFn:
        fetchall, sql = self._db.execute_fetchall, _SqliteSql.sql_get

        async def get(pk: str, sk: str) -> BenchItem | None:
            self.trips += 1
            rows = await fetchall(sql, (pk, sk))
            return BenchItem(*rows[0]) if rows else None

        return get

    def batch_getter(self) -> GetManyFn:
        fetchall = self._db.execute_fetchall

        async def get_many(keys: Sequence[tuple[str, str]]) -> list[BenchItem | None]:
            self.trips += 1
            return in_order(keys, await fetchall(_SqliteSql.sql_many(len(keys)), [v for k in keys for v in k]))

        return get_many

    def putter(self) -> PutFn:
        fetchall, sql = self._db.execute_fetchall, _SqliteSql.sql_put

        async def put(item: BenchItem) -> None:
            self.trips += 1
            await fetchall(sql, astuple(item))

        return put

    def updater(self) -> UpdateFn:
        fetchall, sql = self._db.execute_fetchall, _SqliteSql.sql_update

        async def update(pk: str, sk: str, delta: int) -> BenchItem | None:
            self.trips += 1
            rows = await fetchall(sql, (delta, pk, sk))
            return BenchItem(*rows[0]) if rows else None

        return update

    def pager(self) -> PageFn:
        fetchall, sql = self._db.execute_fetchall, _SqliteSql.sql_page

        async def page(pk: str, limit: int) -> list[BenchItem]:
            self.trips += 1
            return [BenchItem(*r) for r in await fetchall(sql, (pk, limit))]

        return page


class _SqliteJoinSql:
    customers = _SqliteSql.table
    orders = "tsbench_raw_orders"
    sql_get = _SqliteSql.sql_get
    sql_page = f"SELECT {ORDER_COLS} FROM {orders} WHERE pk = ? ORDER BY sk LIMIT ?"
    sql_insert = f"INSERT INTO {orders} ({ORDER_COLS}) VALUES ({', '.join(['?'] * len(ORDER_FIELDS))})"


def _load_sqlite_join(path: str, data: Dataset) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        _load_sqlite(conn, data)
        conn.execute(f"DROP TABLE IF EXISTS {_SqliteJoinSql.orders}")
        conn.execute(create_table_sql("sqlite", _SqliteJoinSql.orders, orders=True))
        conn.execute("BEGIN")
        conn.executemany(_SqliteJoinSql.sql_insert, [astuple(o) for o in data.orders])
        conn.execute("COMMIT")
    finally:
        conn.close()


class Sqlite3JoinDriver(JoinFloor):
    """``raw:sqlite3-join-*``: blocking stdlib sqlite3 (the driver tierstore's SQLite store runs on);
    the batch joins a VALUES list on the primary key."""

    def __init__(self, path: str, mode: str) -> None:
        super().__init__(mode)
        self.path = path
        self._conn: sqlite3.Connection | None = None

    async def open(self, data: Dataset) -> None:
        _load_sqlite_join(self.path, data)
        self._conn = sqlite3.connect(self.path, isolation_level=None)

    async def aclose(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def orders_page(self) -> OrdersPage:
        assert self._conn is not None
        execute, sql = self._conn.execute, _SqliteJoinSql.sql_page

        async def page(pk: str, limit: int) -> list[BenchOrder]:
            self.trips += 1
            return [BenchOrder(*r) for r in execute(sql, (pk, limit))]

        return page

    def customer_getter(self) -> CustomerGet:
        assert self._conn is not None
        execute, sql = self._conn.execute, _SqliteJoinSql.sql_get

        async def get(pk: str, sk: str) -> BenchItem | None:
            self.trips += 1
            row = execute(sql, (pk, sk)).fetchone()
            return None if row is None else BenchItem(*row)

        return get

    def customers_getter(self) -> CustomersGet:
        assert self._conn is not None
        execute, sql_many = self._conn.execute, _SqliteSql.sql_many

        async def get_many(keys: Sequence[Key]) -> dict[Key, BenchItem]:
            self.trips += 1
            rows = execute(sql_many(len(keys)), [v for k in keys for v in k])
            return {(r[0], r[1]): BenchItem(*r) for r in rows}

        return get_many


class AiosqliteJoinDriver(JoinFloor):
    """``raw:aiosqlite-join-*``: aiosqlite ``execute_fetchall`` on one connection (a thread hop per statement)."""

    def __init__(self, path: str, mode: str) -> None:
        super().__init__(mode)
        self.path = path
        self._db: Any = None

    async def open(self, data: Dataset) -> None:
        import aiosqlite

        _load_sqlite_join(self.path, data)
        self._db = await aiosqlite.connect(self.path, isolation_level=None)

    async def aclose(self) -> None:
        if self._db is not None:
            with contextlib.suppress(Exception):
                await self._db.close()

    def orders_page(self) -> OrdersPage:
        fetchall, sql = self._db.execute_fetchall, _SqliteJoinSql.sql_page

        async def page(pk: str, limit: int) -> list[BenchOrder]:
            self.trips += 1
            return [BenchOrder(*r) for r in await fetchall(sql, (pk, limit))]

        return page

    def customer_getter(self) -> CustomerGet:
        fetchall, sql = self._db.execute_fetchall, _SqliteJoinSql.sql_get

        async def get(pk: str, sk: str) -> BenchItem | None:
            self.trips += 1
            rows = await fetchall(sql, (pk, sk))
            return BenchItem(*rows[0]) if rows else None

        return get

    def customers_getter(self) -> CustomersGet:
        fetchall, sql_many = self._db.execute_fetchall, _SqliteSql.sql_many

        async def get_many(keys: Sequence[Key]) -> dict[Key, BenchItem]:
            self.trips += 1
            rows = await fetchall(sql_many(len(keys)), [v for k in keys for v in k])
            return {(r[0], r[1]): BenchItem(*r) for r in rows}

        return get_many
