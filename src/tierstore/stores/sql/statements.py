"""The compiled statements of one table on one dialect (:class:`Plan`), built once per store and table.

SQLAlchemy Core compiles each statement once; :class:`Sql` keeps its text and the order of its positional
parameters, so a call binds a tuple and runs the text on the driver connection with no SQLAlchemy work per
call. Statements that come in many shapes (batches of n keys or rows, query variants) are compiled on first
use and cached by shape.

Where the dialects differ:

- upsert: ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` on PostgreSQL and SQLite; ``ON DUPLICATE KEY
  UPDATE`` on MySQL, with the new version left in ``LAST_INSERT_ID()`` (a batch reads the versions back,
  or, on MariaDB ≥ 10.5, gets them from ``RETURNING``);
- batches of keys: one array per key column through ``unnest`` on PostgreSQL (a single statement shape for
  any batch size); elsewhere an ``IN`` list (an ``OR`` of key equalities for composite keys on SQLite);
- keyset comparison: a row-value comparison, but an expanded ``OR`` on MySQL, which only range-scans that;
- ``begins_with``: a range up to :func:`successor` of the prefix, not ``LIKE`` (index-friendly, and no
  wildcard escaping).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Dialect

from tierstore.errors import ConfigError, ValidationError
from tierstore.expressions.ast import Condition
from tierstore.expressions.sql import compile_where, statement_key, successor
from tierstore.expressions.update import Changes
from tierstore.model.schema import Schema
from tierstore.stores.sql.config import not_run
from tierstore.stores.sql.rows import RowCodec
from tierstore.stores.sql.tables import MYSQL_DIALECTS

__all__ = ["Plan", "Sql", "successor"]

T = TypeVar("T")


class Sql:
    """One statement compiled for one dialect: the SQL text and the order of its positional parameters."""

    __slots__ = ("consts", "names", "text")

    def __init__(self, stmt: sa.ClauseElement, dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.text: str = str(compiled)
        self.names: tuple[str, ...] = tuple(getattr(compiled, "positiontup", None) or ())
        self.consts: dict[str, Any] = {
            n: v for n, v in compiled.params.items() if v is not None or n.startswith("param_")
        }

    def args(self, values: dict[str, Any]) -> tuple[Any, ...]:
        consts = self.consts
        return tuple(values[n] if n in values else consts[n] for n in self.names)

    def __repr__(self) -> str:
        return f"Sql({self.text!r})"


def _bp(name: str, col: sa.Column[Any] | None = None) -> sa.BindParameter[Any]:
    return sa.bindparam(name, type_=col.type if col is not None else None)


@dataclass(frozen=True, slots=True)
class _Order:
    cols: tuple[str, ...]  # order of results, and the cursor position
    pfields: tuple[str, ...]
    sort_field: str | None


class Plan(RowCodec[T]):
    """Everything one store needs to read and write one table on one dialect, built once: the row codec it
    extends, and the statements."""

    def __init__(self, schema: Schema[T], table: sa.Table, dialect: Dialect, backend: str) -> None:
        if dialect.name not in ("postgresql", "sqlite", *MYSQL_DIALECTS):
            reason = not_run(dialect.name) if dialect.name in ("mssql", "oracle") else "no statements for it"
            raise ConfigError(f"SqlStore does not run on {dialect.name}: {reason}", entity=schema.name)
        super().__init__(schema, dialect, backend)
        self.table = table
        self.flavor: Literal["returning", "odku"] = "odku" if dialect.name in MYSQL_DIALECTS else "returning"
        # MariaDB >= 10.5 returns rows from INSERT … ON DUPLICATE KEY UPDATE (SQLAlchemy knows once connected).
        self.mysql_returning = self.flavor == "odku" and bool(getattr(dialect, "insert_returning", False))
        self.array_keys = dialect.name == "postgresql"  # batches of keys travel as one array per key column
        self._build_statements()

    # -- statements ----------------------------------------------------------------------------------

    def _sql(self, stmt: sa.ClauseElement) -> Sql:
        return Sql(stmt, self.dialect)

    def _key_where(self, prefix: str = "k") -> sa.ColumnElement[bool]:
        t = self.table
        return sa.and_(*(t.c[f] == _bp(f"{prefix}{i}", t.c[f]) for i, f in enumerate(self.schema.key_fields)))

    def _build_statements(self) -> None:
        t, schema = self.table, self.schema
        nkey = len(schema.key_fields)
        select_cols = [t.c[c] for c in self.cols]
        self.get = self._sql(sa.select(*select_cols).where(self._key_where()))
        self._check_order(self.get, [f"k{i}" for i in range(nkey)])
        # The row, locked until the transaction ends (SQLite: the transaction holds the write lock already).
        self.get_locked = self._sql(sa.select(*select_cols).where(self._key_where()).with_for_update())
        self._check_order(self.get_locked, [f"k{i}" for i in range(nkey)])
        self.select_version = (
            self._sql(sa.select(t.c[schema.version]).where(self._key_where())) if schema.version else None
        )
        if self.select_version is not None:
            self._check_order(self.select_version, [f"k{i}" for i in range(nkey)])
        self.delete = self._sql(sa.delete(t).where(self._key_where()))
        self._check_order(self.delete, [f"k{i}" for i in range(nkey)])
        if schema.version:
            self.delete_expect: Sql | None = self._sql(
                sa.delete(t).where(self._key_where(), t.c[schema.version] == _bp("expect"))
            )
            self._check_order(self.delete_expect, [*(f"k{i}" for i in range(nkey)), "expect"])
            non_key = [c for c in self.cols if c not in schema.key_fields]
            upd = (
                sa.update(t)
                .where(self._key_where(), t.c[schema.version] == _bp("expect"))
                .values({c: _bp(f"v_{c}", t.c[c]) for c in non_key})
            )
            self.update_expect: Sql | None = self._sql(upd)
        else:
            self.delete_expect = self.update_expect = None
        self.upsert = self._upsert(1)
        self.insert_new = self._insert_new()
        self._many: dict[tuple[Any, ...], Sql] = {}
        self._queries: dict[tuple[Any, ...], tuple[Sql, _Order]] = {}
        self.truncate = self._sql(sa.delete(t))

    def _check_order(self, sql: Sql, expected: list[str]) -> None:
        if list(sql.names) != expected:
            raise ConfigError(
                f"unexpected parameter order {sql.names} for {self.name} on {self.dialect.name}",
                entity=self.name,
            )

    def _values(self, rows: int) -> list[dict[str, Any]]:
        t = self.table
        return [{c: _bp(f"r{r}_{j}", t.c[c]) for j, c in enumerate(self.cols)} for r in range(rows)]

    def _upsert(self, rows: int, many: bool = False) -> Sql:
        """Insert-or-replace ``rows`` rows; the version column becomes stored + 1 (the row's value on insert).

        ``returning``: returns key columns + version. ``odku`` (MySQL): ``put`` leaves the new version in
        ``LAST_INSERT_ID()``; ``put_many`` returns key columns + version on MariaDB ≥ 10.5 and otherwise
        needs a follow-up read in the same transaction (see :meth:`select_versions`).
        """
        t, schema = self.table, self.schema
        key = list(schema.key_fields)
        non_key = [c for c in self.cols if c not in key]
        version = schema.version
        values = self._values(rows)
        if self.flavor == "odku":
            ins = mysql.insert(t).values(values)
            upd: dict[str, Any] = {c: ins.inserted[c] for c in non_key if c != version}
            if version:
                bumped = t.c[version] + sa.literal_column("1")
                upd[version] = bumped if many else sa.func.last_insert_id(bumped)
            if not upd:
                upd = {key[0]: t.c[key[0]]}
            odku = ins.on_duplicate_key_update(upd)
            stmt: sa.ClauseElement = odku
            if many and version and self.mysql_returning:
                stmt = odku.returning(*(t.c[c] for c in key), t.c[version])
        else:
            mod = postgresql if self.dialect.name == "postgresql" else sqlite_dialect
            ins = mod.insert(t).values(values)
            upd = {c: ins.excluded[c] for c in non_key if c != version}
            if version:
                upd[version] = t.c[version] + sa.literal_column("1")
            if upd:
                ins = ins.on_conflict_do_update(index_elements=[t.c[c] for c in key], set_=upd)
            else:
                ins = ins.on_conflict_do_nothing(index_elements=[t.c[c] for c in key])
            stmt = ins.returning(*(t.c[c] for c in key), t.c[version]) if version else ins
        sql = self._sql(stmt)
        self._check_order(sql, [f"r{r}_{j}" for r in range(rows) for j in range(len(self.cols))])
        return sql

    def replace_many(self, rows: int) -> Sql:
        """Insert-or-overwrite ``rows`` rows exactly as given, version included (restores, resharding)."""
        sql = self._many.get(("replace", rows))
        if sql is not None:
            return sql
        t, key = self.table, list(self.schema.key_fields)
        non_key = [c for c in self.cols if c not in key]
        values = self._values(rows)
        stmt: sa.ClauseElement
        if self.flavor == "odku":
            ins = mysql.insert(t).values(values)
            stmt = ins.on_duplicate_key_update({c: ins.inserted[c] for c in non_key} or {key[0]: t.c[key[0]]})
        else:
            mod = postgresql if self.dialect.name == "postgresql" else sqlite_dialect
            up = mod.insert(t).values(values)
            index = [t.c[c] for c in key]
            stmt = (
                up.on_conflict_do_update(index_elements=index, set_={c: up.excluded[c] for c in non_key})
                if non_key
                else up.on_conflict_do_nothing(index_elements=index)
            )
        sql = self._many[("replace", rows)] = self._sql(stmt)
        self._check_order(sql, [f"r{r}_{j}" for r in range(rows) for j in range(len(self.cols))])
        return sql

    def scan(self, has_after: bool) -> Sql:
        """Rows in key order after the key ``a0, a1…`` (when ``has_after``), at most ``lim``."""
        sql = self._many.get(("scan", int(has_after)))
        if sql is not None:
            return sql
        t = self.table
        keys = [t.c[f] for f in self.schema.key_fields]
        stmt = sa.select(*(t.c[c] for c in self.cols))
        if has_after:
            marks = [_bp(f"a{i}", col) for i, col in enumerate(keys)]
            stmt = stmt.where(self._after(keys, marks, reverse=False))
        stmt = stmt.order_by(*keys).limit(sa.bindparam("lim", type_=sa.Integer()))
        sql = self._many[("scan", int(has_after))] = self._sql(stmt)
        return sql

    def _after(
        self, cols: Sequence[sa.ColumnElement[Any]], marks: Sequence[sa.BindParameter[Any]], reverse: bool
    ) -> sa.ColumnElement[bool]:
        """``(cols) > (marks)`` (``<`` when ``reverse``), in the form each dialect range-scans."""
        if len(cols) == 1:
            return cols[0] < marks[0] if reverse else cols[0] > marks[0]
        if self.dialect.name in MYSQL_DIALECTS:
            # MySQL only range-scans an expanded OR, not a row-value comparison.
            terms = []
            for i in range(len(cols)):
                eqs = [cols[j] == marks[j] for j in range(i)]
                terms.append(sa.and_(*eqs, cols[i] < marks[i] if reverse else cols[i] > marks[i]))
            return sa.or_(*terms)
        lhs, rhs = sa.tuple_(*cols), sa.tuple_(*marks)
        return lhs < rhs if reverse else lhs > rhs

    def _insert_new(self) -> Sql:
        """Insert one row unless the key exists: ``returning`` does nothing on conflict (rowcount 0), MySQL
        raises a duplicate-key error that the driver reports as a conflict."""
        t = self.table
        values = self._values(1)
        if self.flavor == "odku":
            stmt: sa.ClauseElement = sa.insert(t).values(values)
        else:
            mod = postgresql if self.dialect.name == "postgresql" else sqlite_dialect
            stmt = mod.insert(t).values(values).on_conflict_do_nothing(
                index_elements=[t.c[c] for c in self.schema.key_fields]
            )
        sql = self._sql(stmt)
        self._check_order(sql, [f"r0_{j}" for j in range(len(self.cols))])
        return sql

    def update_args(self, vals: list[Any], expect: int) -> tuple[Any, ...]:
        named = {f"v_{c}": v for c, v in zip(self.cols, vals, strict=True)}
        for i, idx in enumerate(self.key_idx):
            named[f"k{i}"] = vals[idx]
        named["expect"] = expect
        assert self.update_expect is not None
        return self.update_expect.args(named)

    def upsert_many(self, rows: int) -> Sql:
        sql = self._many.get(("upsert", rows))
        if sql is None:
            sql = self._many[("upsert", rows)] = self._upsert(rows, many=True)
        return sql

    def _keys_where(self, n: int) -> sa.ColumnElement[bool]:
        t, fields = self.table, self.schema.key_fields
        if len(fields) == 1:
            col = t.c[fields[0]]
            return col.in_([_bp(f"k{i}", col) for i in range(n)])
        if self.dialect.name == "sqlite":
            # SQLite scans the table for a row-value IN list; an OR of key equalities uses the key index.
            return sa.or_(
                *(sa.and_(*(t.c[f] == _bp(f"k{i}_{j}", t.c[f]) for j, f in enumerate(fields))) for i in range(n))
            )
        return sa.tuple_(*(t.c[f] for f in fields)).in_(
            [sa.tuple_(*(_bp(f"k{i}_{j}", t.c[f]) for j, f in enumerate(fields))) for i in range(n)]
        )

    def _keys_names(self, n: int) -> list[str]:
        if len(self.schema.key_fields) == 1:
            return [f"k{i}" for i in range(n)]
        return [f"k{i}_{j}" for i in range(n) for j in range(len(self.schema.key_fields))]

    def _unnest(self) -> tuple[Any, sa.ColumnElement[bool]]:
        """PostgreSQL: ``unnest($1::type[], $2::type[]) AS _k(k0, k1)`` and the join condition on the key.

        One array parameter per key column: a single statement shape for any batch size, and a nested loop
        of primary-key index probes (an ``IN`` list of row values plans and runs about 2× slower)."""
        t, fields = self.table, self.schema.key_fields
        arrays = [sa.bindparam(f"a{i}", type_=postgresql.ARRAY(t.c[f].type)) for i, f in enumerate(fields)]
        keys = sa.func.unnest(*arrays).table_valued(*(f"k{i}" for i in range(len(fields)))).render_derived("_k")
        return keys, sa.and_(*(t.c[f] == keys.c[f"k{i}"] for i, f in enumerate(fields)))

    def get_many(self, n: int) -> Sql:
        """Rows of ``n`` keys (on PostgreSQL ``n`` is ignored: the keys travel as arrays)."""
        if self.array_keys:
            n = 0
        sql = self._many.get(("get", n))
        if sql is None:
            t = self.table
            cols = [t.c[c] for c in self.cols]
            if self.array_keys:
                keys, on = self._unnest()
                sql = self._sql(sa.select(*cols).select_from(t.join(keys, on)))
                self._check_order(sql, [f"a{i}" for i in range(len(self.key_idx))])
            else:
                sql = self._sql(sa.select(*cols).where(self._keys_where(n)))
                self._check_order(sql, self._keys_names(n))
            self._many[("get", n)] = sql
        return sql

    def delete_many(self, n: int) -> Sql:
        if self.array_keys:
            n = 0
        sql = self._many.get(("delete", n))
        if sql is None:
            if self.array_keys:
                _, on = self._unnest()
                sql = self._sql(sa.delete(self.table).where(on))  # renders DELETE … USING unnest(…)
                self._check_order(sql, [f"a{i}" for i in range(len(self.key_idx))])
            else:
                sql = self._sql(sa.delete(self.table).where(self._keys_where(n)))
                self._check_order(sql, self._keys_names(n))
            self._many[("delete", n)] = sql
        return sql

    def select_versions(self, n: int) -> Sql:
        sql = self._many.get(("versions", n))
        if sql is None:
            t, schema = self.table, self.schema
            assert schema.version is not None
            cols = [t.c[f] for f in schema.key_fields] + [t.c[schema.version]]
            sql = self._sql(sa.select(*cols).where(self._keys_where(n)))
            self._check_order(sql, self._keys_names(n))
            self._many[("versions", n)] = sql
        return sql

    # -- partial updates -----------------------------------------------------------------------------

    def update(self, changes: Changes, when: Condition | None) -> tuple[Sql, dict[str, Any]]:
        """``UPDATE … SET <changes>, version = version + 1 WHERE key [AND when] [RETURNING every column]``
        (``RETURNING`` except on MySQL), cached by the shape of the changes and of the condition; returns the
        statement and the values of its parameters other than the key (``k{i}``)."""
        sig = ("update", changes.shape(), None if when is None else statement_key(when))
        hit = self._many.get(sig)
        values: dict[str, Any] = {}
        t = self.table
        pg, my = self.dialect.name == "postgresql", self.dialect.name in MYSQL_DIALECTS
        sets: dict[str, Any] = {}
        for name, value in changes.set:
            values[f"u_{name}"] = self._encode(name, value)
            sets[name] = _bp(f"u_{name}", t.c[name])
        for name, delta in changes.add:
            values[f"d_{name}"] = delta
            sets[name] = t.c[name] + _bp(f"d_{name}", t.c[name])
        for name in changes.remove:
            sets[name] = sa.null()
        for name, items in changes.append:
            col = t.c[name]
            if pg:
                values[f"a_{name}"] = self._json_text(items)
                empty = sa.cast(sa.literal_column("'[]'"), postgresql.JSONB)
                sets[name] = sa.func.coalesce(col, empty).op("||")(
                    sa.cast(sa.bindparam(f"a_{name}", type_=sa.Text()), postgresql.JSONB)
                )
            elif my:
                values[f"a_{name}"] = self._json_text(items)
                sets[name] = sa.func.json_merge_preserve(
                    sa.func.coalesce(col, sa.literal_column("'[]'")), sa.bindparam(f"a_{name}", type_=sa.Text())
                )
            else:  # SQLite: json_insert appends one element per '$[#]' path, left to right
                args: list[Any] = [sa.func.coalesce(col, sa.literal_column("'[]'"))]
                for j, item in enumerate(items):
                    values[f"a_{name}_{j}"] = self._json_text(item)
                    args += [sa.literal_column("'$[#]'"),
                             sa.func.json(sa.bindparam(f"a_{name}_{j}", type_=sa.Text()))]
                sets[name] = sa.func.json_insert(*args)
        version = self.schema.version
        if version:
            sets[version] = t.c[version] + sa.literal_column("1")
        conds: list[sa.ColumnElement[bool]] = [self._key_where()]
        if when is not None:
            clause, wvalues = compile_where(self.schema, t, self.dialect, when)
            values.update(wvalues)
            conds.append(clause)
        if hit is not None:
            return hit, values
        stmt: Any = sa.update(t).where(*conds).values(sets)
        if not my:
            stmt = stmt.returning(*(t.c[c] for c in self.cols))
        sql = self._sql(stmt)
        if len(self._many) < 1024:
            self._many[sig] = sql
        return sql, values

    def _encode(self, name: str, value: Any) -> Any:
        """One column value as :meth:`row_values` binds it (JSON columns as text)."""
        if value is None or self.position[name] not in self._json:
            return value
        return self._json_text(value)

    def _json_text(self, value: Any) -> str:
        return self._json_encode(value).decode()

    # -- queries -------------------------------------------------------------------------------------

    def order_for(self, index: str | None) -> _Order:
        schema = self.schema
        if index is None:
            pfields, sfields = schema.partition, schema.sort
        else:
            ix = schema.indexes[index]
            pfields, sfields = ix.partition_fields, ix.sort_fields
        cols = sfields + tuple(f for f in schema.key_fields if f not in sfields and f not in pfields)
        return _Order(cols, pfields, sfields[0] if sfields else None)

    def query(
        self, index: str | None, op: str | None, has_high: bool, reverse: bool, has_cursor: bool,
        where: Condition | None = None, cols: tuple[str, ...] | None = None,
    ) -> tuple[Sql, _Order, dict[str, Any]]:
        """``SELECT … WHERE partition = … [AND sort condition] [AND filter] [AND (order cols) > cursor]
        ORDER BY … LIMIT``.

        Parameters: ``p{i}`` partition values, ``s0``/``s1`` sort values, ``w{i}`` the filter's operands (their
        values are returned), ``c{i}`` cursor position, ``lim``. Statements are cached by the filter's shape.
        ``cols``: the columns to select, in this order (a projection); every column of the entity without it.
        """
        sig = (index, op, has_high, reverse, has_cursor, None if where is None else statement_key(where), cols)
        hit = self._queries.get(sig)
        if hit is not None:
            return hit[0], hit[1], ({} if where is None else compile_where(
                self.schema, self.table, self.dialect, where)[1])
        t = self.table
        order = self.order_for(index)
        conds: list[sa.ColumnElement[bool]] = [
            t.c[f] == _bp(f"p{i}", t.c[f]) for i, f in enumerate(order.pfields)
        ]
        if index is not None:  # a sparse index: rows whose index value is NULL are not in it
            ix = self.schema.indexes[index]
            conds += [t.c[f].is_not(None) for f in ix.sort_fields if f in self.schema.sparse]
        if op is not None:
            assert order.sort_field is not None
            col = t.c[order.sort_field]
            s0, s1 = _bp("s0", col), _bp("s1", col)
            if op == "eq":
                conds.append(col == s0)
            elif op == "lt":
                conds.append(col < s0)
            elif op == "le":
                conds.append(col <= s0)
            elif op == "gt":
                conds.append(col > s0)
            elif op == "ge":
                conds.append(col >= s0)
            elif op == "between":
                conds.extend((col >= s0, col <= s1))
            elif op == "begins_with":
                # A range, not LIKE: index-friendly and free of wildcard escaping on every dialect.
                conds.append(col >= s0)
                if has_high:
                    conds.append(col < s1)
            else:  # pragma: no cover - the repository validates ops
                raise ValidationError(f"unknown sort condition {op!r}", entity=self.name)
        values: dict[str, Any] = {}
        if where is not None:
            clause, values = compile_where(self.schema, t, self.dialect, where)
            conds.append(clause)
        ocols = [t.c[c] for c in order.cols]
        if has_cursor and ocols:
            conds.append(self._after(ocols, [_bp(f"c{i}", col) for i, col in enumerate(ocols)], reverse))
        stmt = sa.select(*(t.c[c] for c in (self.cols if cols is None else cols))).where(*conds)
        stmt = stmt.order_by(*(c.desc() if reverse else c.asc() for c in ocols))
        stmt = stmt.limit(sa.bindparam("lim", type_=sa.Integer()))
        sql = self._sql(stmt)
        if len(self._queries) < 512:
            self._queries[sig] = (sql, order)
        return sql, order, values
