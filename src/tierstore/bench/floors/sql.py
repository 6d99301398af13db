"""What the raw SQL floors share: their tables (one typed column per field), the column lists, and row helpers.

Each SQL floor (SQLAlchemy Core in :mod:`~tierstore.bench.floors.sql_core`, asyncpg in
:mod:`~tierstore.bench.floors.sql_postgres`, aiomysql in :mod:`~tierstore.bench.floors.sql_mysql`, sqlite3 and
aiosqlite in :mod:`~tierstore.bench.floors.sql_sqlite`) owns its own table (``tsbench_raw_<driver>``) and does
the least a careful hand-written data layer would: held connection, autocommit, prepared or cached statements,
one statement per operation, rows turned into ``BenchItem`` positionally; ``concurrent_getter`` uses a pool.
SQLite floors run in WAL mode with ``synchronous=FULL``, as tierstore's SQLite store does by default.

The ``*JoinDriver`` classes beside them are the ``join_100`` floors (see :mod:`tierstore.bench.floors.join`):
a customers table (the items) and an orders table of their own, the page query, and the customers read by
primary key — one statement for the distinct keys (``-join-batch``) or one per order (``-join-n+1``).
"""

# SQL text here is assembled from the benchmark entity's constant field and table names only; every value is
# a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from tierstore.bench.data import FIELDS, ORDER_FIELDS, BenchItem

__all__ = [
    "COLS",
    "LOAD_CHUNK",
    "ORDER_COLS",
    "POOL_SIZE",
    "VALUE_FIELDS",
    "asdict",
    "astuple",
    "chunks",
    "create_table_sql",
    "in_order",
    "many_join_sql",
]

POOL_SIZE = 8
LOAD_CHUNK = 500
COLS = ", ".join(FIELDS)
ORDER_COLS = ", ".join(ORDER_FIELDS)
VALUE_FIELDS = [f for f in FIELDS if f not in ("pk", "sk")]
astuple = msgspec.structs.astuple
asdict = msgspec.structs.asdict

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


def chunks(items: Sequence[Any], n: int = LOAD_CHUNK) -> list[Sequence[Any]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


def in_order(keys: Sequence[tuple[str, str]], rows: Any) -> list[BenchItem | None]:
    found = {(r[0], r[1]): BenchItem(*r) for r in rows}
    return [found.get(k) for k in keys]
