"""``SqlStore.query_many``: the items of many partitions (one-to-many joins) in one statement per chunk.

Without a per-partition limit: ``SELECT … WHERE p IN (…) ORDER BY p, <query order>``. With one,
``ROW_NUMBER() OVER (PARTITION BY p ORDER BY <query order>)`` numbers each partition's rows in a subquery
and the outer query keeps those ``<= limit``, so the database cuts every partition (window functions:
PostgreSQL, SQLite ≥ 3.25, MariaDB ≥ 10.2, MySQL ≥ 8.0; on an older one the rows are cut per partition here).

PostgreSQL takes a one-column partition list as one array (``p = ANY(:array)``: one statement shape for any
count); elsewhere the ``IN`` list is padded to one of a few sizes by repeating its last value (same answer,
few statement shapes). Composite partitions are a row-value ``IN`` (on SQLite an ``OR`` of equalities, which
uses the index).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

from tierstore.stores.sql.operations import MAX_PARAMS, _bucket
from tierstore.stores.sql.statements import Plan, Sql

__all__ = ["CHUNK", "many_batches", "window_functions"]

CHUNK = 500
"""Partitions per statement at most (PostgreSQL's array included): bounds the statement and its answer."""


def window_functions(backend: str, dialect: Dialect) -> bool:
    """Whether the database numbers rows with ``ROW_NUMBER() OVER (…)``."""
    if backend == "sqlite":
        return sqlite3.sqlite_version_info >= (3, 25, 0)
    if backend == "mysql":
        version = tuple(v for v in getattr(dialect, "server_version_info", None) or () if isinstance(v, int))
        return version >= ((10, 2) if getattr(dialect, "is_mariadb", False) else (8, 0))
    return True


def _statement(plan: Plan[Any], index: str | None, n: int, windowed: bool, reverse: bool) -> Sql:
    """The statement for ``n`` partitions (``0``: PostgreSQL's array form)."""
    sig = ("many", index, n, windowed, reverse)
    cached = plan._many.get(sig)
    if cached is not None:
        return cached
    t = plan.table
    order = plan.order_for(index)
    pcols = [t.c[f] for f in order.pfields]
    if n == 0:
        cond: sa.ColumnElement[bool] = pcols[0] == sa.any_(
            sa.bindparam("ma", type_=postgresql.ARRAY(pcols[0].type))
        )
    elif len(pcols) == 1:
        cond = pcols[0].in_([sa.bindparam(f"m{i}", type_=pcols[0].type) for i in range(n)])
    elif plan.dialect.name == "sqlite":
        cond = sa.or_(*(
            sa.and_(*(c == sa.bindparam(f"m{i}_{j}", type_=c.type) for j, c in enumerate(pcols))) for i in range(n)
        ))
    else:
        cond = sa.tuple_(*pcols).in_(
            [sa.tuple_(*(sa.bindparam(f"m{i}_{j}", type_=c.type) for j, c in enumerate(pcols))) for i in range(n)]
        )
    if index is not None:  # a sparse index: rows whose index value is NULL are not in it
        nulls = [t.c[f].is_not(None) for f in plan.schema.indexes[index].sort_fields if f in plan.schema.sparse]
        cond = sa.and_(cond, *nulls)
    ocols = [t.c[c] for c in order.cols]
    by = [c.desc() if reverse else c.asc() for c in ocols]
    labelled = [t.c[c].label(f"c{i}") for i, c in enumerate(plan.cols)]
    if windowed:
        rn = sa.func.row_number().over(partition_by=pcols, order_by=by).label("rn")
        inner = sa.select(*labelled, rn).where(cond).subquery("m")
        ppos = [plan.cols.index(f) for f in order.pfields]
        stmt = (
            sa.select(*(inner.c[f"c{i}"] for i in range(len(plan.cols))))
            .where(inner.c.rn <= sa.bindparam("lim", type_=sa.Integer()))
            .order_by(*(inner.c[f"c{i}"] for i in ppos), inner.c.rn)
        )
    else:
        stmt = sa.select(*labelled).where(cond).order_by(*pcols, *by)
    sql = plan._many[sig] = Sql(stmt, plan.dialect)
    return sql


def many_batches(
    plan: Plan[Any], index: str | None, partitions: Sequence[tuple[Any, ...]], limit: int | None,
    windowed: bool, reverse: bool,
) -> list[tuple[str, tuple[Any, ...]]]:
    """The statements (text, positional arguments) that read ``partitions``: one per :data:`CHUNK`."""
    width = len(partitions[0]) if partitions else 1
    per = max(1, min(CHUNK, MAX_PARAMS // 8 // width))
    out: list[tuple[str, tuple[Any, ...]]] = []
    array = plan.array_keys and width == 1
    for start in range(0, len(partitions), per):
        chunk = list(partitions[start : start + per])
        named: dict[str, Any] = {"lim": limit}
        if array:
            sql = _statement(plan, index, 0, windowed, reverse)
            named["ma"] = [p[0] for p in chunk]
        else:
            n = _bucket(len(chunk))
            chunk += [chunk[-1]] * (n - len(chunk))
            sql = _statement(plan, index, n, windowed, reverse)
            if width == 1:
                named.update({f"m{i}": p[0] for i, p in enumerate(chunk)})
            else:
                named.update({f"m{i}_{j}": v for i, p in enumerate(chunk) for j, v in enumerate(p)})
        out.append((sql.text, sql.args(named)))
    return out
