"""``raw:aiomysql`` and ``raw:aiomysql-join-*``: aiomysql on a held autocommit connection and cursor, a pool of 8
for concurrent readers; get_many and the join's batch are one row-value ``IN`` list (cached per length).
"""

# SQL text here is assembled from the benchmark entity's constant field and table names only; every value is
# a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

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
    POOL_SIZE,
    VALUE_FIELDS,
    astuple,
    chunks,
    create_table_sql,
    in_order,
)

__all__ = ["AiomysqlDriver", "AiomysqlJoinDriver"]


def _mysql_params(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "db": parts.path.lstrip("/") or "test",
    }


class AiomysqlDriver(Driver):
    """aiomysql on a held autocommit connection and cursor; a pool of 8 for concurrent readers."""

    caps = frozenset({GET, GET_MANY, PUT, QUERY, CONCURRENT, UPDATE})
    table = "tsbench_raw_aiomysql"

    def __init__(self, url: str) -> None:
        self.params = _mysql_params(url)
        self.trips = 0
        self._conn: Any = None
        self._cur: Any = None
        self._pool: Any = None
        t = self.table
        self.sql_get = f"SELECT {COLS} FROM {t} WHERE pk = %s AND sk = %s"
        marks = ", ".join(["%s"] * len(FIELDS))
        sets = ", ".join(f"{f} = VALUES({f})" for f in VALUE_FIELDS)
        self.sql_insert = f"INSERT INTO {t} ({COLS}) VALUES ({marks})"
        self.sql_put = f"{self.sql_insert} ON DUPLICATE KEY UPDATE {sets}"
        self.sql_page = f"SELECT {COLS} FROM {t} WHERE pk = %s ORDER BY sk LIMIT %s"
        self._many_sql: dict[int, str] = {}

    def _sql_many(self, n: int) -> str:
        sql = self._many_sql.get(n)
        if sql is None:
            rows = ", ".join(["(%s, %s)"] * n)
            sql = self._many_sql[n] = f"SELECT {COLS} FROM {self.table} WHERE (pk, sk) IN ({rows})"
        return sql

    async def open(self, data: Dataset) -> None:
        import aiomysql

        self._conn = await aiomysql.connect(**self.params, autocommit=True)
        self._cur = await self._conn.cursor()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Unknown table" from DROP TABLE IF EXISTS on a first run
            await self._cur.execute(f"DROP TABLE IF EXISTS {self.table}")
        await self._cur.execute(create_table_sql("mariadb", self.table))
        for chunk in chunks(data.items):
            await self._cur.executemany(self.sql_insert, [astuple(i) for i in chunk])
        self._pool = await aiomysql.create_pool(
            **self.params, autocommit=True, minsize=POOL_SIZE, maxsize=POOL_SIZE
        )

    async def aclose(self) -> None:
        if self._pool is not None:
            self._pool.close()
            with contextlib.suppress(Exception):
                await self._pool.wait_closed()
        if self._cur is not None:
            with contextlib.suppress(Exception):
                await self._cur.close()
        if self._conn is not None:
            self._conn.close()

    def counters(self) -> dict[str, int]:
        return {"store": self.trips}

    def getter(self) -> GetFn:
        cur, sql = self._cur, self.sql_get

        async def get(pk: str, sk: str) -> BenchItem | None:
            self.trips += 1
            await cur.execute(sql, (pk, sk))
            row = await cur.fetchone()
            return None if row is None else BenchItem(*row)

        return get

    def concurrent_getter(self) -> GetFn:
        pool, sql = self._pool, self.sql_get

        async def get(pk: str, sk: str) -> BenchItem | None:
            self.trips += 1
            async with pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute(sql, (pk, sk))
                row = await cur.fetchone()
            return None if row is None else BenchItem(*row)

        return get

    def batch_getter(self) -> GetManyFn:
        cur = self._cur

        async def get_many(keys: Sequence[tuple[str, str]]) -> list[BenchItem | None]:
            self.trips += 1
            await cur.execute(self._sql_many(len(keys)), [v for k in keys for v in k])
            return in_order(keys, await cur.fetchall())

        return get_many

    def putter(self) -> PutFn:
        cur, sql = self._cur, self.sql_put

        async def put(item: BenchItem) -> None:
            self.trips += 1
            await cur.execute(sql, astuple(item))

        return put

    def updater(self) -> UpdateFn:
        cur = self._cur
        sql = f"UPDATE {self.table} SET amount_cents = amount_cents + %s WHERE pk = %s AND sk = %s"

        async def update(pk: str, sk: str, delta: int) -> None:
            self.trips += 1  # MariaDB has no UPDATE … RETURNING: the floor is the UPDATE alone
            await cur.execute(sql, (delta, pk, sk))

        return update

    def pager(self) -> PageFn:
        cur, sql = self._cur, self.sql_page

        async def page(pk: str, limit: int) -> list[BenchItem]:
            self.trips += 1
            await cur.execute(sql, (pk, limit))
            return [BenchItem(*r) for r in await cur.fetchall()]

        return page


class AiomysqlJoinDriver(JoinFloor):
    """``raw:aiomysql-join-*``: aiomysql on a held autocommit connection; the batch is a row-value IN list."""

    def __init__(self, url: str, mode: str) -> None:
        super().__init__(mode)
        self.params = _mysql_params(url)
        self.customers = f"tsbench_raw_aiomysql_{self.tag}_customers"
        self.orders = f"tsbench_raw_aiomysql_{self.tag}_orders"
        self._conn: Any = None
        self._cur: Any = None
        self._many_sql: dict[int, str] = {}

    async def open(self, data: Dataset) -> None:
        import aiomysql

        self._conn = await aiomysql.connect(**self.params, autocommit=True)
        self._cur = cur = await self._conn.cursor()
        for table, rows, orders in ((self.customers, data.items, False), (self.orders, data.orders, True)):
            fields = ORDER_FIELDS if orders else FIELDS
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "Unknown table" from DROP TABLE IF EXISTS on a first run
                await cur.execute(f"DROP TABLE IF EXISTS {table}")
            await cur.execute(create_table_sql("mariadb", table, orders=orders))
            sql = f"INSERT INTO {table} ({', '.join(fields)}) VALUES ({', '.join(['%s'] * len(fields))})"
            for chunk in chunks(rows):
                await cur.executemany(sql, [astuple(r) for r in chunk])

    async def aclose(self) -> None:
        if self._cur is not None:
            with contextlib.suppress(Exception):
                await self._cur.close()
        if self._conn is not None:
            self._conn.close()

    def orders_page(self) -> OrdersPage:
        cur = self._cur
        sql = f"SELECT {ORDER_COLS} FROM {self.orders} WHERE pk = %s ORDER BY sk LIMIT %s"

        async def page(pk: str, limit: int) -> list[BenchOrder]:
            self.trips += 1
            await cur.execute(sql, (pk, limit))
            return [BenchOrder(*r) for r in await cur.fetchall()]

        return page

    def customer_getter(self) -> CustomerGet:
        cur = self._cur
        sql = f"SELECT {COLS} FROM {self.customers} WHERE pk = %s AND sk = %s"

        async def get(pk: str, sk: str) -> BenchItem | None:
            self.trips += 1
            await cur.execute(sql, (pk, sk))
            row = await cur.fetchone()
            return None if row is None else BenchItem(*row)

        return get

    def customers_getter(self) -> CustomersGet:
        cur, cache, table = self._cur, self._many_sql, self.customers

        async def get_many(keys: Sequence[Key]) -> dict[Key, BenchItem]:
            self.trips += 1
            sql = cache.get(len(keys))
            if sql is None:
                rows = ", ".join(["(%s, %s)"] * len(keys))
                sql = cache[len(keys)] = f"SELECT {COLS} FROM {table} WHERE (pk, sk) IN ({rows})"
            await cur.execute(sql, [v for k in keys for v in k])
            return {(r[0], r[1]): BenchItem(*r) for r in await cur.fetchall()}

        return get_many
