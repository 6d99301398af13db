"""``raw:sqlalchemy-core-<db>``: SQLAlchemy 2 async Core on a held AUTOCOMMIT connection, on any of the three
databases (a pool of 8 for concurrent readers).

The statements are what a careful Core user writes: ``select`` by key with bound parameters; get_many as
``unnest()`` pairs on PostgreSQL (a row-value IN list of 100 pairs is planned as a scan there), a join on a
``VALUES`` list on SQLite (SQLite scans for a row-value IN list), an expanding IN list on MariaDB; the upsert
in each dialect's own spelling.
"""

# SQL text here is assembled from the benchmark entity's constant field and table names only; every value is
# a bound parameter.

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from tierstore.bench.api import CONCURRENT, GET, GET_MANY, PUT, QUERY, Driver, GetFn, GetManyFn, PageFn, PutFn
from tierstore.bench.data import FIELDS, BenchItem, Dataset
from tierstore.bench.floors.sql import POOL_SIZE, VALUE_FIELDS, asdict, chunks, in_order, many_join_sql

__all__ = ["CoreDriver"]


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
            for chunk in chunks(data.items):
                await c.execute(sa.insert(t), [asdict(i) for i in chunk])
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
            self._upsert: Any = mins.on_duplicate_key_update({f: mins.inserted[f] for f in VALUE_FIELDS})
        else:
            if self.dialect == "postgres":
                from sqlalchemy.dialects.postgresql import insert as pg_insert

                ins: Any = pg_insert(t)
            else:
                from sqlalchemy.dialects.sqlite import insert as sqlite_insert

                ins = sqlite_insert(t)
            self._upsert = ins.on_conflict_do_update(
                index_elements=["pk", "sk"], set_={f: ins.excluded[f] for f in VALUE_FIELDS}
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
                return in_order(keys, await conn.execute(stmt, params))

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
                return in_order(keys, await conn.execute(statement(len(keys)), params))

            return get_many_sqlite

        async def get_many(keys: Sequence[tuple[str, str]]) -> list[BenchItem | None]:
            self.trips += 1
            return in_order(keys, await conn.execute(stmt, {"keys": list(keys)}))

        return get_many

    def putter(self) -> PutFn:
        conn, stmt = self._conn, self._upsert

        async def put(item: BenchItem) -> None:
            self.trips += 1
            await conn.execute(stmt, asdict(item))

        return put

    def pager(self) -> PageFn:
        conn, stmt = self._conn, self._page

        async def page(pk: str, limit: int) -> list[BenchItem]:
            self.trips += 1
            return [BenchItem(*r) for r in await conn.execute(stmt, {"pk": pk, "n": limit})]

        return page
