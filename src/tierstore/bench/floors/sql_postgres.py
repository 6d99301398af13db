"""``raw:asyncpg`` and ``raw:asyncpg-join-*``: asyncpg on a held connection (statement cache on), a pool of 8 for
concurrent readers; get_many and the join's batch are one ``(pk, sk) IN (SELECT * FROM unnest($1, $2))``.
"""

# SQL text here is assembled from the benchmark entity's constant field and table names only; every value is
# a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
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
from tierstore.bench.floors.sql import COLS, ORDER_COLS, POOL_SIZE, VALUE_FIELDS, astuple, create_table_sql, in_order

__all__ = ["AsyncpgDriver", "AsyncpgJoinDriver"]


class AsyncpgDriver(Driver):
    """asyncpg on a held connection (statement cache on); a pool of 8 for concurrent readers."""

    caps = frozenset({GET, GET_MANY, PUT, QUERY, CONCURRENT, UPDATE})
    table = "tsbench_raw_asyncpg"

    def __init__(self, url: str) -> None:
        _, rest = url.split("://", 1)
        self.dsn = "postgresql://" + rest
        self.trips = 0
        self._conn: Any = None
        self._pool: Any = None
        t = self.table
        self.sql_get = f"SELECT {COLS} FROM {t} WHERE pk = $1 AND sk = $2"
        self.sql_many = (
            f"SELECT {COLS} FROM {t} WHERE (pk, sk) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
        )
        marks = ", ".join(f"${i + 1}" for i in range(len(FIELDS)))
        sets = ", ".join(f"{f} = EXCLUDED.{f}" for f in VALUE_FIELDS)
        self.sql_put = f"INSERT INTO {t} ({COLS}) VALUES ({marks}) ON CONFLICT (pk, sk) DO UPDATE SET {sets}"
        self.sql_page = f"SELECT {COLS} FROM {t} WHERE pk = $1 ORDER BY sk LIMIT $2"
        self.sql_update = (
            f"UPDATE {t} SET amount_cents = amount_cents + $3 WHERE pk = $1 AND sk = $2 RETURNING {COLS}"
        )

    async def open(self, data: Dataset) -> None:
        import asyncpg

        self._conn = await asyncpg.connect(self.dsn)
        await self._conn.execute(f"DROP TABLE IF EXISTS {self.table}")
        await self._conn.execute(create_table_sql("postgres", self.table))
        marks = ", ".join(f"${i + 1}" for i in range(len(FIELDS)))
        await self._conn.executemany(
            f"INSERT INTO {self.table} ({COLS}) VALUES ({marks})", [astuple(i) for i in data.items]
        )
        self._pool = await asyncpg.create_pool(self.dsn, min_size=POOL_SIZE, max_size=POOL_SIZE)

    async def aclose(self) -> None:
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await self._pool.close()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()

    def counters(self) -> dict[str, int]:
        return {"store": self.trips}

    def getter(self) -> GetFn:
        fetchrow, sql = self._conn.fetchrow, self.sql_get

        async def get(pk: str, sk: str) -> BenchItem | None:
            self.trips += 1
            row = await fetchrow(sql, pk, sk)
            return None if row is None else BenchItem(*row)

        return get

    def concurrent_getter(self) -> GetFn:
        fetchrow, sql = self._pool.fetchrow, self.sql_get

        async def get(pk: str, sk: str) -> BenchItem | None:
            self.trips += 1
            row = await fetchrow(sql, pk, sk)
            return None if row is None else BenchItem(*row)

        return get

    def batch_getter(self) -> GetManyFn:
        fetch, sql = self._conn.fetch, self.sql_many

        async def get_many(keys: Sequence[tuple[str, str]]) -> list[BenchItem | None]:
            self.trips += 1
            return in_order(keys, await fetch(sql, [k[0] for k in keys], [k[1] for k in keys]))

        return get_many

    def putter(self) -> PutFn:
        execute, sql = self._conn.execute, self.sql_put

        async def put(item: BenchItem) -> None:
            self.trips += 1
            await execute(sql, *astuple(item))

        return put

    def updater(self) -> UpdateFn:
        fetchrow, sql = self._conn.fetchrow, self.sql_update

        async def update(pk: str, sk: str, delta: int) -> BenchItem | None:
            self.trips += 1
            row = await fetchrow(sql, pk, sk, delta)
            return None if row is None else BenchItem(*row)

        return update

    def pager(self) -> PageFn:
        fetch, sql = self._conn.fetch, self.sql_page

        async def page(pk: str, limit: int) -> list[BenchItem]:
            self.trips += 1
            return [BenchItem(*r) for r in await fetch(sql, pk, limit)]

        return page


class AsyncpgJoinDriver(JoinFloor):
    """``raw:asyncpg-join-*``: asyncpg on a held connection; the batch is one ``unnest()`` statement."""

    def __init__(self, url: str, mode: str) -> None:
        super().__init__(mode)
        _, rest = url.split("://", 1)
        self.dsn = "postgresql://" + rest
        self.customers = f"tsbench_raw_asyncpg_{self.tag}_customers"
        self.orders = f"tsbench_raw_asyncpg_{self.tag}_orders"
        self._conn: Any = None

    async def open(self, data: Dataset) -> None:
        import asyncpg

        self._conn = conn = await asyncpg.connect(self.dsn)
        for table, rows, orders in ((self.customers, data.items, False), (self.orders, data.orders, True)):
            fields = ORDER_FIELDS if orders else FIELDS
            await conn.execute(f"DROP TABLE IF EXISTS {table}")
            await conn.execute(create_table_sql("postgres", table, orders=orders))
            marks = ", ".join(f"${i + 1}" for i in range(len(fields)))
            await conn.executemany(
                f"INSERT INTO {table} ({', '.join(fields)}) VALUES ({marks})", [astuple(r) for r in rows]
            )

    async def aclose(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()

    def orders_page(self) -> OrdersPage:
        fetch = self._conn.fetch
        sql = f"SELECT {ORDER_COLS} FROM {self.orders} WHERE pk = $1 ORDER BY sk LIMIT $2"

        async def page(pk: str, limit: int) -> list[BenchOrder]:
            self.trips += 1
            return [BenchOrder(*r) for r in await fetch(sql, pk, limit)]

        return page

    def customer_getter(self) -> CustomerGet:
        fetchrow = self._conn.fetchrow
        sql = f"SELECT {COLS} FROM {self.customers} WHERE pk = $1 AND sk = $2"

        async def get(pk: str, sk: str) -> BenchItem | None:
            self.trips += 1
            row = await fetchrow(sql, pk, sk)
            return None if row is None else BenchItem(*row)

        return get

    def customers_getter(self) -> CustomersGet:
        fetch = self._conn.fetch
        sql = (
            f"SELECT {COLS} FROM {self.customers} "
            "WHERE (pk, sk) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
        )

        async def get_many(keys: Sequence[Key]) -> dict[Key, BenchItem]:
            self.trips += 1
            rows = await fetch(sql, [k[0] for k in keys], [k[1] for k in keys])
            return {(r[0], r[1]): BenchItem(*r) for r in rows}

        return get_many
