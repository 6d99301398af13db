"""The store's statements on SQL Server and Oracle (:class:`MergeStatements`), compiled but never run here.

Neither database has ``INSERT … ON CONFLICT``; the upsert and the insert-if-absent are ``MERGE``, which
SQLAlchemy has no construct for, so :class:`Merge` is a small ``ClauseElement`` compiled per dialect whose
values are bound parameters (rendered by SQLAlchemy's compiler, never interpolated). Everything else is
SQLAlchemy Core.

- SQL Server: ``MERGE INTO t WITH (HOLDLOCK) AS tgt USING (VALUES (?, …), …) AS src (…) ON …
  WHEN MATCHED THEN UPDATE … WHEN NOT MATCHED THEN INSERT … OUTPUT inserted.<key>, inserted.<version>;`` —
  ``HOLDLOCK`` (serializable range lock on the key) keeps two concurrent MERGEs of one new key from both
  inserting; ``OUTPUT`` returns the new versions, as ``RETURNING`` does on PostgreSQL. Parameters are
  ``?`` (pyodbc/aioodbc); a page is ``ORDER BY … OFFSET 0 ROWS FETCH FIRST ? ROWS ONLY`` (SQL Server
  2012+); a locked read is the table hint ``WITH (UPDLOCK, ROWLOCK)``.
- Oracle: ``MERGE INTO t tgt USING (SELECT :1 AS … FROM dual [UNION ALL …]) src ON (…) WHEN MATCHED …
  WHEN NOT MATCHED …``. Oracle's ``MERGE`` has no ``RETURNING``: the upsert is followed, in the same
  transaction, by a read of the versions (:attr:`MergeStatements.select_version`,
  :meth:`MergeStatements.select_versions`), which sees the row the ``MERGE`` wrote and still locks, as the
  store already does on MySQL without ``RETURNING``. Parameters are numeric (``:1``, python-oracledb
  accepts them), so every statement binds a positional tuple like the other drivers.
- Both: no row-value comparison (keyset cursors are an expanded ``OR``) and no row-value ``IN`` (batches
  of composite keys are an ``OR`` of key equalities).

The insert-if-absent is a ``MERGE`` with only ``WHEN NOT MATCHED``: rowcount 0 when the key exists. On
Oracle a concurrent insert of the same key can still fail with a unique violation (ORA-00001), which a
driver reports as the key existing.
"""

# Identifiers are quoted by the dialect's preparer and every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable

from tierstore.errors import ConfigError, ValidationError
from tierstore.model.schema import Schema
from tierstore.stores.sql.statements import Sql

__all__ = ["MERGE_DIALECTS", "Merge", "MergeStatements", "positional"]

MERGE_DIALECTS = ("mssql", "oracle")


def positional(dialect: Dialect) -> Dialect:
    """A dialect like ``dialect`` that renders positional parameters (SQL Server ``?``, Oracle ``:1``) and,
    for SQL Server, ``OFFSET … FETCH`` pages (2012 and later) without having met a server."""
    if dialect.name not in MERGE_DIALECTS:
        raise ConfigError(f"MERGE statements are built for SQL Server and Oracle, not {dialect.name}")
    cls: Any = type(dialect)
    made: Dialect = cls(paramstyle="qmark" if dialect.name == "mssql" else "numeric")
    if dialect.name == "mssql":
        made._supports_offset_fetch = True  # type: ignore[attr-defined]
    return made


class Merge(Executable, ClauseElement):
    """``MERGE`` of ``rows`` rows into ``table`` on its key: matched rows get the non-key columns
    (``update``) and ``version = version + 1``; new rows are inserted as given. ``update=None``: insert only
    (no ``WHEN MATCHED``). ``output``: SQL Server returns the key columns and the version."""

    inherit_cache = False

    def __init__(
        self,
        table: sa.Table,
        key: Sequence[str],
        cols: Sequence[str],
        rows: int,
        update: Sequence[str] | None,
        version: str | None,
        output: bool,
    ) -> None:
        self.table, self.key, self.cols, self.rows = table, tuple(key), tuple(cols), rows
        self.update, self.version, self.output = update, version, output

    def binds(self) -> list[list[sa.BindParameter[Any]]]:
        t = self.table
        return [
            [sa.bindparam(f"r{r}_{j}", type_=t.c[c].type) for j, c in enumerate(self.cols)]
            for r in range(self.rows)
        ]

    def copied(self) -> list[str]:
        """Columns ``WHEN MATCHED`` takes from the source row (the version is bumped, not copied)."""
        return [c for c in self.update or () if c != self.version]


def _merge_text(element: Merge, compiler: SQLCompiler, using: str, table_alias: str, on: str) -> list[str]:
    q = compiler.preparer.quote
    names = {c: q(c) for c in element.cols}
    parts = [f"MERGE INTO {compiler.preparer.format_table(element.table)}{table_alias}", using, on]
    if element.update is not None:
        sets = [f"tgt.{names[c]} = src.{names[c]}" for c in element.copied()]
        if element.version:
            v = names[element.version]
            sets.append(f"tgt.{v} = tgt.{v} + 1")
        if sets:
            parts.append(f"WHEN MATCHED THEN UPDATE SET {', '.join(sets)}")
    cols = ", ".join(names[c] for c in element.cols)
    vals = ", ".join(f"src.{names[c]}" for c in element.cols)
    parts.append(f"WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({vals})")
    return parts


def _on(element: Merge, compiler: SQLCompiler) -> str:
    q = compiler.preparer.quote
    return " AND ".join(f"tgt.{q(c)} = src.{q(c)}" for c in element.key)


@compiles(Merge, "mssql")
def _merge_mssql(element: Merge, compiler: SQLCompiler, **kw: Any) -> str:
    q = compiler.preparer.quote
    rows = ", ".join(
        "(" + ", ".join(compiler.process(b, **kw) for b in row) + ")" for row in element.binds()
    )
    using = f"USING (VALUES {rows}) AS src ({', '.join(q(c) for c in element.cols)})"
    parts = _merge_text(element, compiler, using, " WITH (HOLDLOCK) AS tgt", f"ON {_on(element, compiler)}")
    if element.output and element.version:
        out = [*element.key, element.version]
        parts.append("OUTPUT " + ", ".join(f"inserted.{q(c)}" for c in out))
    return "\n".join(parts) + ";"  # SQL Server requires MERGE to end with a semicolon


@compiles(Merge, "oracle")
def _merge_oracle(element: Merge, compiler: SQLCompiler, **kw: Any) -> str:
    q = compiler.preparer.quote
    selects = [
        "SELECT " + ", ".join(f"{compiler.process(b, **kw)} AS {q(c)}" for b, c in zip(row, element.cols, strict=True))
        + " FROM dual"
        for row in element.binds()
    ]
    using = f"USING ({' UNION ALL '.join(selects)}) src"
    return "\n".join(_merge_text(element, compiler, using, " tgt", f"ON ({_on(element, compiler)})"))


class MergeStatements:
    """The statements of one table on SQL Server or Oracle, with the parameter names the store binds:
    ``k{i}`` key values, ``r{row}_{col}`` row values, ``expect`` the stored version a write requires,
    ``v_{col}`` new values of an update, ``p{i}``/``s0``/``s1``/``c{i}``/``lim`` of a query."""

    def __init__(self, schema: Schema[Any], table: sa.Table, dialect: Dialect) -> None:
        self.schema, self.table = schema, table
        self.dialect = positional(dialect)
        self.cols = tuple(f.name for f in schema.fields)
        self.key = tuple(schema.key_fields)
        self.returning = self.dialect.name == "mssql"  # Oracle reads the versions back after the MERGE
        t, nkey = table, len(self.key)
        keys = [f"k{i}" for i in range(nkey)]
        select = sa.select(*(t.c[c] for c in self.cols))
        self.get = self._sql(select.where(self._key_where()), keys)
        locked = select.where(self._key_where())
        locked = (
            locked.with_hint(t, "WITH (UPDLOCK, ROWLOCK)", "mssql")
            if self.dialect.name == "mssql"
            else locked.with_for_update()
        )
        self.get_locked = self._sql(locked, keys)
        self.delete = self._sql(sa.delete(t).where(self._key_where()), keys)
        version = schema.version
        self.select_version = self.delete_expect = self.update_expect = None
        if version:
            expect = t.c[version] == sa.bindparam("expect")
            self.select_version = self._sql(sa.select(t.c[version]).where(self._key_where()), keys)
            self.delete_expect = self._sql(sa.delete(t).where(self._key_where(), expect), [*keys, "expect"])
            non_key = [c for c in self.cols if c not in self.key]
            upd = sa.update(t).where(self._key_where(), expect).values(
                {c: sa.bindparam(f"v_{c}", type_=t.c[c].type) for c in non_key}
            )
            self.update_expect = self._sql(upd, None)
        self.upsert = self.upsert_many(1)
        self.insert_new = self._sql(
            Merge(t, self.key, self.cols, 1, None, version, output=False), self._row_names(1)
        )

    def _sql(self, stmt: ClauseElement, expected: Sequence[str] | None) -> Sql:
        sql = Sql(stmt, self.dialect)
        if expected is not None and list(sql.names) != list(expected):
            raise ConfigError(
                f"unexpected parameter order {sql.names} for {self.schema.name} on {self.dialect.name}",
                entity=self.schema.name,
            )
        return sql

    def _row_names(self, rows: int) -> list[str]:
        return [f"r{r}_{j}" for r in range(rows) for j in range(len(self.cols))]

    def _key_where(self, prefix: str = "k") -> sa.ColumnElement[bool]:
        t = self.table
        return sa.and_(*(t.c[f] == sa.bindparam(f"{prefix}{i}", type_=t.c[f].type) for i, f in enumerate(self.key)))

    def upsert_many(self, rows: int) -> Sql:
        """Insert-or-replace ``rows`` rows in one ``MERGE``; the version becomes stored + 1 (the row's value
        on insert). SQL Server returns key columns + version (``OUTPUT``); Oracle returns nothing."""
        non_key = [c for c in self.cols if c not in self.key]
        stmt = Merge(self.table, self.key, self.cols, rows, non_key, self.schema.version, output=self.returning)
        return self._sql(stmt, self._row_names(rows))

    def replace_many(self, rows: int) -> Sql:
        """Insert-or-overwrite ``rows`` rows exactly as given, version included (restores, resharding)."""
        non_key = [c for c in self.cols if c not in self.key]
        stmt = Merge(self.table, self.key, self.cols, rows, non_key, None, output=False)
        return self._sql(stmt, self._row_names(rows))

    def scan(self, has_after: bool) -> Sql:
        """Rows in key order after the key ``a0, a1…`` (when ``has_after``), at most ``lim``."""
        t = self.table
        keys = [t.c[f] for f in self.key]
        stmt = sa.select(*(t.c[c] for c in self.cols))
        if has_after:
            stmt = stmt.where(self._after(keys, [sa.bindparam(f"a{i}", type_=c.type) for i, c in enumerate(keys)]))
        return self._sql(stmt.order_by(*keys).fetch(sa.bindparam("lim", type_=sa.Integer())), None)

    def _after(
        self, cols: Sequence[sa.ColumnElement[Any]], marks: Sequence[sa.BindParameter[Any]], reverse: bool = False
    ) -> sa.ColumnElement[bool]:
        """``(cols) > (marks)`` (``<`` when ``reverse``) as an expanded ``OR``: no row-value comparison."""
        terms = []
        for i in range(len(cols)):
            past = cols[i] < marks[i] if reverse else cols[i] > marks[i]
            terms.append(sa.and_(*(cols[j] == marks[j] for j in range(i)), past))
        return sa.or_(*terms)

    def _keys_where(self, n: int) -> sa.ColumnElement[bool]:
        t = self.table
        if len(self.key) == 1:
            col = t.c[self.key[0]]
            return col.in_([sa.bindparam(f"k{i}", type_=col.type) for i in range(n)])
        return sa.or_(*(
            sa.and_(*(t.c[f] == sa.bindparam(f"k{i}_{j}", type_=t.c[f].type) for j, f in enumerate(self.key)))
            for i in range(n)
        ))

    def _keys_names(self, n: int) -> list[str]:
        if len(self.key) == 1:
            return [f"k{i}" for i in range(n)]
        return [f"k{i}_{j}" for i in range(n) for j in range(len(self.key))]

    def get_many(self, n: int) -> Sql:
        return self._sql(sa.select(*(self.table.c[c] for c in self.cols)).where(self._keys_where(n)),
                         self._keys_names(n))

    def delete_many(self, n: int) -> Sql:
        return self._sql(sa.delete(self.table).where(self._keys_where(n)), self._keys_names(n))

    def select_versions(self, n: int) -> Sql:
        """Key columns + version of ``n`` keys: on Oracle, what an upsert wrote (read in its transaction)."""
        t, version = self.table, self.schema.version
        if version is None:
            raise ConfigError(f"{self.schema.name} has no version field", entity=self.schema.name)
        cols = [t.c[f] for f in self.key] + [t.c[version]]
        return self._sql(sa.select(*cols).where(self._keys_where(n)), self._keys_names(n))

    def query(self, index: str | None, op: str | None, has_high: bool, reverse: bool, has_cursor: bool) -> Sql:
        """``SELECT … WHERE partition = … [AND sort condition] [AND cursor] ORDER BY … OFFSET 0 ROWS FETCH
        FIRST :lim ROWS ONLY`` (the same parameters as on the other dialects; filters are not built here)."""
        t, schema = self.table, self.schema
        if index is None:
            pfields, sfields = schema.partition, schema.sort
        else:
            ix = schema.indexes[index]
            pfields, sfields = ix.partition_fields, ix.sort_fields
        order = sfields + tuple(f for f in schema.key_fields if f not in sfields and f not in pfields)
        conds: list[sa.ColumnElement[bool]] = [
            t.c[f] == sa.bindparam(f"p{i}", type_=t.c[f].type) for i, f in enumerate(pfields)
        ]
        if index is not None:
            conds += [t.c[f].is_not(None) for f in sfields if f in schema.sparse]
        if op is not None:
            col = t.c[sfields[0]]
            s0, s1 = sa.bindparam("s0", type_=col.type), sa.bindparam("s1", type_=col.type)
            table = {
                "eq": [col == s0], "lt": [col < s0], "le": [col <= s0], "gt": [col > s0], "ge": [col >= s0],
                "between": [col >= s0, col <= s1], "begins_with": [col >= s0, *([col < s1] if has_high else [])],
            }
            if op not in table:
                raise ValidationError(f"unknown sort condition {op!r}", entity=schema.name)
            conds += table[op]
        ocols = [t.c[c] for c in order]
        if has_cursor and ocols:
            marks = [sa.bindparam(f"c{i}", type_=col.type) for i, col in enumerate(ocols)]
            conds.append(self._after(ocols, marks, reverse))
        stmt = (
            sa.select(*(t.c[c] for c in self.cols))
            .where(*conds)
            .order_by(*(c.desc() if reverse else c.asc() for c in ocols))
            .fetch(sa.bindparam("lim", type_=sa.Integer()))
        )
        return self._sql(stmt, None)
