"""Raw SQL floors: the same work as a tierstore SQL store, written directly against each client library.

Each floor owns its own table (``tsbench_raw_<driver>``) with one typed column per field, and does the least a
careful hand-written data layer would: held connection, autocommit, prepared or cached statements, one
statement per operation, rows turned into ``BenchItem`` positionally. ``concurrent_getter`` uses a pool.
SQLite floors run in WAL mode with ``synchronous=FULL``, as tierstore's SQLite store does by default.

The ``*JoinDriver`` classes are the ``join_100`` floors (see :mod:`tierstore.bench.raw_join`): a customers table
(the items) and an orders table of their own, the page query, and the customers read by primary key — one
statement for the distinct keys (``-join-batch``) or one per order (``-join-n+1``).
"""

# SQL text here is assembled from the benchmark entity's constant field and table names only; every value is
# a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import sqlite3
import warnings
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import msgspec

from tierstore.bench.data import FIELDS, ORDER_FIELDS, BenchItem, BenchOrder, Dataset
from tierstore.bench.harness import CONCURRENT, GET, GET_MANY, PUT, QUERY, Driver, GetFn, GetManyFn, PageFn, PutFn
from tierstore.bench.raw_join import CustomerGet, CustomersGet, JoinFloor, Key, OrdersPage

__all__ = [
    "AiomysqlDriver",
    "AiomysqlJoinDriver",
    "AiosqliteDriver",
    "AiosqliteJoinDriver",
    "AsyncpgDriver",
    "AsyncpgJoinDriver",
    "CoreDriver",
    "Sqlite3Driver",
    "Sqlite3JoinDriver",
]

POOL_SIZE = 8
LOAD_CHUNK = 500
_COLS = ", ".join(FIELDS)
_ORDER_COLS = ", ".join(ORDER_FIELDS)
_VALUE_FIELDS = [f for f in FIELDS if f not in ("pk", "sk")]
_astuple = msgspec.structs.astuple
_asdict = msgspec.structs.asdict

_SQL_TYPES = {
    "pk": ("VARCHAR(32) NOT NULL", "VARCHAR(32) NOT NULL", "TEXT NOT NULL"),
    "sk": ("VARCHAR(32) NOT NULL", "VARCHAR(32) NOT NULL", "TEXT NOT NULL"),
    "name": ("VARCHAR(64)", "VARCHAR(64)", "TEXT"),
    "email": ("VARCHAR(64)", "VARCHAR(64)", "TEXT"),
    "status": ("VARCHAR(16)", "VARCHAR(16)", "TEXT"),
    "amount_cents": ("BIGINT", "BIGINT", "INTEGER"),
    "quantity": ("INTEGER", "INTEGER", "INTEGER"),
    "score": ("DOUBLE PRECISION", "DOUBLE", "REAL"),
    "created_at": ("BIGINT", "BIGINT", "INTEGER"),
    "note": ("VARCHAR(128)", "VARCHAR(128)", "TEXT"),
}
_ORDER_SQL_TYPES = {
    "pk": _SQL_TYPES["pk"],
    "sk": _SQL_TYPES["sk"],
    "customer_pk": ("VARCHAR(32) NOT NULL", "VARCHAR(32) NOT NULL", "TEXT NOT NULL"),
    "customer_sk": ("VARCHAR(32) NOT NULL", "VARCHAR(32) NOT NULL", "TEXT NOT NULL"),
    "total_cents": ("BIGINT", "BIGINT", "INTEGER"),
    "status": ("VARCHAR(16)", "VARCHAR(16)", "TEXT"),
    "created_at": ("BIGINT", "BIGINT", "INTEGER"),
}
_DIALECT_COLUMN = {"postgres": 0, "mariadb": 1, "sqlite": 2}


def create_table_sql(dialect: str, table: str, *, orders: bool = False) -> str:
    """The items table (or, with ``orders``, the orders table) with one typed column per field."""
    col = _DIALECT_COLUMN[dialect]
    fields, types = (ORDER_FIELDS, _ORDER_SQL_TYPES) if orders else (FIELDS, _SQL_TYPES)
    cols = ", ".join(f"{f} {types[f][col]}" for f in fields)
    return f"CREATE TABLE {table} ({cols}, PRIMARY KEY (pk, sk))"


def many_join_sql(table: str, rows: str) -> str:
    """SQLite get_many: the keys as a VALUES list joined on the primary key (an index search per key)."""
    cols = ", ".join(f"t.{f}" for f in FIELDS)
    return f"SELECT {cols} FROM (VALUES {rows}) AS v JOIN {table} AS t ON t.pk = v.column1 AND t.sk = v.column2"


def _chunks(items: Sequence[Any], n: int = LOAD_CHUNK) -> list[Sequence[Any]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


def _in_order(keys: Sequence[tuple[str, str]], rows: Any) -> list[BenchItem | None]:
    found = {(r[0], r[1]): BenchItem(*r) for r in rows}
    return [found.get(k) for k in keys]


def _mysql_params(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "db": parts.path.lstrip("/") or "test",
    }


# -- SQLAlchemy Core -------------------------------------------------------------------------------------


class CoreDriver(Driver):
    """SQLAlchemy 2 async Core on a held AUTOCOMMIT connection (``raw:sqlalchemy-core-<db>``)."""

    caps = frozenset({GET, GET_MANY, PUT, QUERY, CONCURRENT})

    def __init__(self, url: str, dialect: str, table: str = "tsbench_raw_core") -> None:
        self.url = url
        self.dialect = dialect
        self.table_name = table
        self.trips = 0
        self._engine: Any = None
        self._conn: Any = None

    async def open(self, data: Dataset) -> None:
        import sqlalchemy as sa
        from sqlalchemy.ext.asyncio import create_async_engine

        kw: dict[str, Any] = {"pool_size": POOL_SIZE, "max_overflow": 0}
        engine = create_async_engine(self.url, **kw)
        if self.dialect == "sqlite":

            @sa.event.listens_for(engine.sync_engine, "connect")
            def _pragmas(dbapi_conn: Any, _: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=FULL")
                cur.close()

        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        md = sa.MetaData()
        types: dict[str, Any] = {
            "pk": sa.String(32), "sk": sa.String(32), "name": sa.String(64), "email": sa.String(64),
            "status": sa.String(16), "amount_cents": sa.BigInteger(), "quantity": sa.Integer(),
            "score": sa.Double(), "created_at": sa.BigInteger(), "note": sa.String(128),
        }
        t = sa.Table(
            self.table_name, md, *(sa.Column(f, types[f], primary_key=f in ("pk", "sk")) for f in FIELDS)
        )
        async with self._engine.connect() as c:
            await c.run_sync(md.drop_all)
            await c.run_sync(md.create_all)
            for chunk in _chunks(data.items):
                await c.execute(sa.insert(t), [_asdict(i) for i in chunk])
        self._get = sa.select(t).where(t.c.pk == sa.bindparam("pk"), t.c.sk == sa.bindparam("sk"))
        if self.dialect == "postgres":
            # A row-value IN list of 100 pairs is planned as a scan on PostgreSQL; unnest() is what a careful
            # hand-written query uses (as raw:asyncpg does).
            from sqlalchemy.dialects.postgresql import ARRAY

            pairs = sa.select(
                sa.func.unnest(sa.bindparam("pks", type_=ARRAY(sa.String()))),
                sa.func.unnest(sa.bindparam("sks", type_=ARRAY(sa.String()))),
            )
            self._get_many: Any = sa.select(t).where(sa.tuple_(t.c.pk, t.c.sk).in_(pairs))
        elif self.dialect == "sqlite":
            # SQLite scans for a row-value IN list; the join on a VALUES list uses the key (see many_join_sql).
            self._sqlite_many: dict[int, Any] = {}
            self._get_many = None
        else:
            self._get_many = sa.select(t).where(
                sa.tuple_(t.c.pk, t.c.sk).in_(sa.bindparam("keys", expanding=True))
            )
        self._page = sa.select(t).where(t.c.pk == sa.bindparam("pk")).order_by(t.c.sk).limit(sa.bindparam("n"))
        if self.dialect == "mariadb":
            from sqlalchemy.dialects.mysql import insert as mysql_insert

            mins = mysql_insert(t)
            self._upsert: Any = mins.on_duplicate_key_update({f: mins.inserted[f] for f in _VALUE_FIELDS})
        else:
            if self.dialect == "postgres":
                from sqlalchemy.dialects.postgresql import insert as pg_insert

                ins: Any = pg_insert(t)
            else:
                from sqlalchemy.dialects.sqlite import insert as sqlite_insert

                ins = sqlite_insert(t)
            self._upsert = ins.on_conflict_do_update(
                index_elements=["pk", "sk"], set_={f: ins.excluded[f] for f in _VALUE_FIELDS}
            )
        self._conn = await self._engine.connect()

    async def aclose(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
        if self._engine is not None:
            await self._engine.dispose()

    def counters(self) -> dict[str, int]:
        return {"store": self.trips}

    def getter(self) -> GetFn:
        conn, stmt = self._conn, self._get

        async def get(pk: str, sk: str) -> BenchItem | None:
            self.trips += 1
            row = (await conn.execute(stmt, {"pk": pk, "sk": sk})).first()
            return None if row is None else BenchItem(*row)

        return get

    def concurrent_getter(self) -> GetFn:
        engine, stmt = self._engine, self._get

        async def get(pk: str, sk: str) -> BenchItem | None:
            self.trips += 1
            async with engine.connect() as conn:
                row = (await conn.execute(stmt, {"pk": pk, "sk": sk})).first()
            return None if row is None else BenchItem(*row)

        return get

    def batch_getter(self) -> GetManyFn:
        conn, stmt = self._conn, self._get_many
        if self.dialect == "postgres":

            async def get_many_pg(keys: Sequence[tuple[str, str]]) -> list[BenchItem | None]:
                self.trips += 1
                params = {"pks": [k[0] for k in keys], "sks": [k[1] for k in keys]}
                return _in_order(keys, await conn.execute(stmt, params))

            return get_many_pg
        if self.dialect == "sqlite":
            import sqlalchemy as sa

            def statement(n: int) -> Any:
                stmt = self._sqlite_many.get(n)
                if stmt is None:
                    rows = ", ".join(f"(:p{i}, :s{i})" for i in range(n))
                    stmt = self._sqlite_many[n] = sa.text(many_join_sql(self.table_name, rows))
                return stmt

            async def get_many_sqlite(keys: Sequence[tuple[str, str]]) -> list[BenchItem | None]:
                self.trips += 1
                params = {}
                for i, (pk, sk) in enumerate(keys):
                    params[f"p{i}"] = pk
                    params[f"s{i}"] = sk
                return _in_order(keys, await conn.execute(statement(len(keys)), params))

            return get_many_sqlite

        async def get_many(keys: Sequence[tuple[str, str]]) -> list[BenchItem | None]:
            self.trips += 1
            return _in_order(keys, await conn.execute(stmt, {"keys": list(keys)}))

        return get_many

    def putter(self) -> PutFn:
        conn, stmt = self._conn, self._upsert

        async def put(item: BenchItem) -> None:
            self.trips += 1
            await conn.execute(stmt, _asdict(item))

        return put

    def pager(self) -> PageFn:
        conn, stmt = self._conn, self._page

        async def page(pk: str, limit: int) -> list[BenchItem]:
            self.trips += 1
            return [BenchItem(*r) for r in await conn.execute(stmt, {"pk": pk, "n": limit})]

        return page


# -- asyncpg ---------------------------------------------------------------------------------------------


class AsyncpgDriver(Driver):
    """asyncpg on a held connection (statement cache on); a pool of 8 for concurrent readers."""

    caps = frozenset({GET, GET_MANY, PUT, QUERY, CONCURRENT})
    table = "tsbench_raw_asyncpg"

    def __init__(self, url: str) -> None:
        _, rest = url.split("://", 1)
        self.dsn = "postgresql://" + rest
        self.trips = 0
        self._conn: Any = None
        self._pool: Any = None
        t = self.table
        self.sql_get = f"SELECT {_COLS} FROM {t} WHERE pk = $1 AND sk = $2"
        self.sql_many = (
            f"SELECT {_COLS} FROM {t} WHERE (pk, sk) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
        )
        marks = ", ".join(f"${i + 1}" for i in range(len(FIELDS)))
        sets = ", ".join(f"{f} = EXCLUDED.{f}" for f in _VALUE_FIELDS)
        self.sql_put = f"INSERT INTO {t} ({_COLS}) VALUES ({marks}) ON CONFLICT (pk, sk) DO UPDATE SET {sets}"
        self.sql_page = f"SELECT {_COLS} FROM {t} WHERE pk = $1 ORDER BY sk LIMIT $2"

    async def open(self, data: Dataset) -> None:
        import asyncpg

        self._conn = await asyncpg.connect(self.dsn)
        await self._conn.execute(f"DROP TABLE IF EXISTS {self.table}")
        await self._conn.execute(create_table_sql("postgres", self.table))
        marks = ", ".join(f"${i + 1}" for i in range(len(FIELDS)))
        await self._conn.executemany(
            f"INSERT INTO {self.table} ({_COLS}) VALUES ({marks})", [_astuple(i) for i in data.items]
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
            return _in_order(keys, await fetch(sql, [k[0] for k in keys], [k[1] for k in keys]))

        return get_many

    def putter(self) -> PutFn:
        execute, sql = self._conn.execute, self.sql_put

        async def put(item: BenchItem) -> None:
            self.trips += 1
            await execute(sql, *_astuple(item))

        return put

    def pager(self) -> PageFn:
        fetch, sql = self._conn.fetch, self.sql_page

        async def page(pk: str, limit: int) -> list[BenchItem]:
            self.trips += 1
            return [BenchItem(*r) for r in await fetch(sql, pk, limit)]

        return page


# -- aiomysql --------------------------------------------------------------------------------------------


class AiomysqlDriver(Driver):
    """aiomysql on a held autocommit connection and cursor; a pool of 8 for concurrent readers."""

    caps = frozenset({GET, GET_MANY, PUT, QUERY, CONCURRENT})
    table = "tsbench_raw_aiomysql"

    def __init__(self, url: str) -> None:
        self.params = _mysql_params(url)
        self.trips = 0
        self._conn: Any = None
        self._cur: Any = None
        self._pool: Any = None
        t = self.table
        self.sql_get = f"SELECT {_COLS} FROM {t} WHERE pk = %s AND sk = %s"
        marks = ", ".join(["%s"] * len(FIELDS))
        sets = ", ".join(f"{f} = VALUES({f})" for f in _VALUE_FIELDS)
        self.sql_insert = f"INSERT INTO {t} ({_COLS}) VALUES ({marks})"
        self.sql_put = f"{self.sql_insert} ON DUPLICATE KEY UPDATE {sets}"
        self.sql_page = f"SELECT {_COLS} FROM {t} WHERE pk = %s ORDER BY sk LIMIT %s"
        self._many_sql: dict[int, str] = {}

    def _sql_many(self, n: int) -> str:
        sql = self._many_sql.get(n)
        if sql is None:
            rows = ", ".join(["(%s, %s)"] * n)
            sql = self._many_sql[n] = f"SELECT {_COLS} FROM {self.table} WHERE (pk, sk) IN ({rows})"
        return sql

    async def open(self, data: Dataset) -> None:
        import aiomysql

        self._conn = await aiomysql.connect(**self.params, autocommit=True)
        self._cur = await self._conn.cursor()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Unknown table" from DROP TABLE IF EXISTS on a first run
            await self._cur.execute(f"DROP TABLE IF EXISTS {self.table}")
        await self._cur.execute(create_table_sql("mariadb", self.table))
        for chunk in _chunks(data.items):
            await self._cur.executemany(self.sql_insert, [_astuple(i) for i in chunk])
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
            return _in_order(keys, await cur.fetchall())

        return get_many

    def putter(self) -> PutFn:
        cur, sql = self._cur, self.sql_put

        async def put(item: BenchItem) -> None:
            self.trips += 1
            await cur.execute(sql, _astuple(item))

        return put

    def pager(self) -> PageFn:
        cur, sql = self._cur, self.sql_page

        async def page(pk: str, limit: int) -> list[BenchItem]:
            self.trips += 1
            await cur.execute(sql, (pk, limit))
            return [BenchItem(*r) for r in await cur.fetchall()]

        return page


# -- SQLite ----------------------------------------------------------------------------------------------


class _SqliteSql:
    table = "tsbench_raw"
    sql_get = f"SELECT {_COLS} FROM {table} WHERE pk = ? AND sk = ?"
    sql_insert = f"INSERT INTO {table} ({_COLS}) VALUES ({', '.join(['?'] * len(FIELDS))})"
    sql_put = sql_insert + " ON CONFLICT (pk, sk) DO UPDATE SET " + ", ".join(
        f"{f} = excluded.{f}" for f in _VALUE_FIELDS
    )
    sql_page = f"SELECT {_COLS} FROM {table} WHERE pk = ? ORDER BY sk LIMIT ?"
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
    conn.executemany(_SqliteSql.sql_insert, [_astuple(i) for i in data.items])
    conn.execute("COMMIT")


class Sqlite3Driver(Driver):
    """The standard library's blocking sqlite3, for reference: what the query costs without a thread hop."""

    caps = frozenset({GET, GET_MANY, PUT, QUERY})

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
            return _in_order(keys, execute(_SqliteSql.sql_many(len(keys)), [v for k in keys for v in k]))

        return get_many

    def putter(self) -> PutFn:
        assert self._conn is not None
        execute, sql = self._conn.execute, _SqliteSql.sql_put

        async def put(item: BenchItem) -> None:
            self.trips += 1
            execute(sql, _astuple(item))

        return put

    def pager(self) -> PageFn:
        assert self._conn is not None
        execute, sql = self._conn.execute, _SqliteSql.sql_page

        async def page(pk: str, limit: int) -> list[BenchItem]:
            self.trips += 1
            return [BenchItem(*r) for r in execute(sql, (pk, limit))]

        return page


class AiosqliteDriver(Driver):
    """aiosqlite on one autocommit connection, one thread hop per operation (``execute_fetchall``)."""

    caps = frozenset({GET, GET_MANY, PUT, QUERY, CONCURRENT})

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
            return _in_order(keys, await fetchall(_SqliteSql.sql_many(len(keys)), [v for k in keys for v in k]))

        return get_many

    def putter(self) -> PutFn:
        fetchall, sql = self._db.execute_fetchall, _SqliteSql.sql_put

        async def put(item: BenchItem) -> None:
            self.trips += 1
            await fetchall(sql, _astuple(item))

        return put

    def pager(self) -> PageFn:
        fetchall, sql = self._db.execute_fetchall, _SqliteSql.sql_page

        async def page(pk: str, limit: int) -> list[BenchItem]:
            self.trips += 1
            return [BenchItem(*r) for r in await fetchall(sql, (pk, limit))]

        return page


# -- join_100 floors -------------------------------------------------------------------------------------


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
                f"INSERT INTO {table} ({', '.join(fields)}) VALUES ({marks})", [_astuple(r) for r in rows]
            )

    async def aclose(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()

    def orders_page(self) -> OrdersPage:
        fetch = self._conn.fetch
        sql = f"SELECT {_ORDER_COLS} FROM {self.orders} WHERE pk = $1 ORDER BY sk LIMIT $2"

        async def page(pk: str, limit: int) -> list[BenchOrder]:
            self.trips += 1
            return [BenchOrder(*r) for r in await fetch(sql, pk, limit)]

        return page

    def customer_getter(self) -> CustomerGet:
        fetchrow = self._conn.fetchrow
        sql = f"SELECT {_COLS} FROM {self.customers} WHERE pk = $1 AND sk = $2"

        async def get(pk: str, sk: str) -> BenchItem | None:
            self.trips += 1
            row = await fetchrow(sql, pk, sk)
            return None if row is None else BenchItem(*row)

        return get

    def customers_getter(self) -> CustomersGet:
        fetch = self._conn.fetch
        sql = (
            f"SELECT {_COLS} FROM {self.customers} "
            "WHERE (pk, sk) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
        )

        async def get_many(keys: Sequence[Key]) -> dict[Key, BenchItem]:
            self.trips += 1
            rows = await fetch(sql, [k[0] for k in keys], [k[1] for k in keys])
            return {(r[0], r[1]): BenchItem(*r) for r in rows}

        return get_many


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
            for chunk in _chunks(rows):
                await cur.executemany(sql, [_astuple(r) for r in chunk])

    async def aclose(self) -> None:
        if self._cur is not None:
            with contextlib.suppress(Exception):
                await self._cur.close()
        if self._conn is not None:
            self._conn.close()

    def orders_page(self) -> OrdersPage:
        cur = self._cur
        sql = f"SELECT {_ORDER_COLS} FROM {self.orders} WHERE pk = %s ORDER BY sk LIMIT %s"

        async def page(pk: str, limit: int) -> list[BenchOrder]:
            self.trips += 1
            await cur.execute(sql, (pk, limit))
            return [BenchOrder(*r) for r in await cur.fetchall()]

        return page

    def customer_getter(self) -> CustomerGet:
        cur = self._cur
        sql = f"SELECT {_COLS} FROM {self.customers} WHERE pk = %s AND sk = %s"

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
                sql = cache[len(keys)] = f"SELECT {_COLS} FROM {table} WHERE (pk, sk) IN ({rows})"
            await cur.execute(sql, [v for k in keys for v in k])
            return {(r[0], r[1]): BenchItem(*r) for r in await cur.fetchall()}

        return get_many


class _SqliteJoinSql:
    customers = _SqliteSql.table
    orders = "tsbench_raw_orders"
    sql_get = _SqliteSql.sql_get
    sql_page = f"SELECT {_ORDER_COLS} FROM {orders} WHERE pk = ? ORDER BY sk LIMIT ?"
    sql_insert = f"INSERT INTO {orders} ({_ORDER_COLS}) VALUES ({', '.join(['?'] * len(ORDER_FIELDS))})"


def _load_sqlite_join(path: str, data: Dataset) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        _load_sqlite(conn, data)
        conn.execute(f"DROP TABLE IF EXISTS {_SqliteJoinSql.orders}")
        conn.execute(create_table_sql("sqlite", _SqliteJoinSql.orders, orders=True))
        conn.execute("BEGIN")
        conn.executemany(_SqliteJoinSql.sql_insert, [_astuple(o) for o in data.orders])
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
