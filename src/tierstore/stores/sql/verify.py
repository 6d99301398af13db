"""Schema verification: does an existing SQL table fit an entity? (``schema="verify"``).

It reads the catalog only (SQLAlchemy's inspector, plus each database's own view of column collations) and
compares it with the table tierstore would create (:func:`~tierstore.stores.sql.tables.table_for`):
the table, every column the entity declares, column types (by family: any integer column holds an ``int``
field, any string column a ``str``), nullability, the primary key, the indexes, and the collation of every
key and index column. Each difference becomes one :class:`~tierstore.errors.Mismatch` carrying the DDL that
fixes it on that dialect. Columns the entity does not declare are the table owner's: they are reported only
when they would make tierstore's inserts fail (``NOT NULL`` without a default).

Why collations matter: tierstore compares keys by code point. A case-insensitive collation on a key column
makes ``get("A1")`` return the ``a1`` row and an upsert of ``A1`` overwrite ``a1``; a linguistic collation
(``en_US``, ICU) orders ``begins_with`` ranges and cursors differently from Python. Accepted are the
binary/code-point collations: PostgreSQL ``C``/``POSIX``/``ucs_basic``/``pg_c_utf8``, MySQL and MariaDB
``*_bin`` collations without space padding (``utf8mb4_nopad_bin``, ``utf8mb4_0900_bin``, ``binary``) and
SQLite's ``BINARY``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from tierstore.errors import Mismatch
from tierstore.model.schema import Schema
from tierstore.stores.sql.tables import MYSQL_DIALECTS, NATIVE_KINDS, column_kind, key_like_fields

__all__ = ["CODE_POINT_COLLATIONS", "check_table"]

CODE_POINT_COLLATIONS = frozenset({"c", "posix", "ucs_basic", "pg_c_utf8", "binary", "utf8mb4_nopad_bin",
                                   "utf8mb4_0900_bin", "utf8mb3_nopad_bin", "utf8_nopad_bin"})
"""Collations that compare by code point (lower case): what key and index columns need."""

_FAMILIES: dict[str, tuple[type[Any], ...]] = {
    "str": (sa.String, sa.Enum),
    "int": (sa.Integer,),
    "float": (sa.Float,),
    "bool": (sa.Boolean, sa.Integer),  # MySQL's BOOLEAN is TINYINT(1); SQLite stores 0/1
    "bytes": (sa.LargeBinary, sa.types._Binary),
    "json": (sa.JSON, sa.String),  # JSON text in a text column reads back the same
    "datetime": (sa.DateTime,),
    "date": (sa.Date,),
    "uuid": (sa.Uuid,),
    "decimal": (sa.Numeric,),
}


def _family(kind: str, reflected: Any, dialect: str) -> bool:
    fam = _FAMILIES.get(kind, (sa.types.TypeEngine,))
    if kind in NATIVE_KINDS and dialect == "sqlite":
        return isinstance(reflected, sa.String | sa.Date | sa.DateTime | sa.Numeric)  # SQLite keeps them as text
    if kind == "uuid" and dialect in MYSQL_DIALECTS:
        return isinstance(reflected, sa.String | sa.Uuid)  # CHAR(36), or MariaDB's UUID
    if kind == "float" and isinstance(reflected, sa.Numeric) and not isinstance(reflected, sa.Float):
        return False  # NUMERIC reads back as Decimal, not float
    if kind == "decimal" and isinstance(reflected, sa.Float):
        return False
    if kind == "json" and dialect == "postgresql" and isinstance(reflected, sa.String):
        return True
    return isinstance(reflected, fam)


def _shown(typ: Any, dialect: Dialect) -> str:
    try:
        return str(typ.compile(dialect=dialect))
    except Exception:  # a reflected type this dialect cannot render: its repr still names it
        return repr(typ)


def _q(dialect: Dialect, name: str) -> str:
    return dialect.identifier_preparer.quote(name)


def _qt(dialect: Dialect, table: sa.Table) -> str:
    return dialect.identifier_preparer.format_table(table)


def _type(dialect: Dialect, col: sa.Column[Any]) -> str:
    return col.type.compile(dialect=dialect)


def _alter_column(dialect: Dialect, table: sa.Table, col: sa.Column[Any], have: Any = None) -> str:
    """The statement that gives an existing column the type, collation and nullability tierstore needs."""
    t, c, typ = _qt(dialect, table), _q(dialect, col.name), _type(dialect, col)
    if dialect.name == "postgresql":
        null = "DROP NOT NULL" if col.nullable else "SET NOT NULL"
        # A JSON string (how older versions kept datetimes, UUIDs, decimals) is unwrapped before the cast.
        source = f"({c} #>> '{{}}')" if isinstance(have, sa.JSON) else c
        return f"ALTER TABLE {t} ALTER COLUMN {c} TYPE {typ} USING {source}::{typ.split(' COLLATE')[0]}, " \
               f"ALTER COLUMN {c} {null};"
    if dialect.name in MYSQL_DIALECTS:
        return f"ALTER TABLE {t} MODIFY {c} {typ}{'' if col.nullable else ' NOT NULL'};"
    return f"SQLite cannot alter a column: rebuild {table.name} with {c} {typ}{'' if col.nullable else ' NOT NULL'}"


def _create_table(dialect: Dialect, table: sa.Table) -> str:
    ddl = [str(CreateTable(table).compile(dialect=dialect)).strip() + ";"]
    ddl += [str(CreateIndex(ix).compile(dialect=dialect)).strip() + ";"
            for ix in sorted(table.indexes, key=lambda i: str(i.name))]
    return " ".join(" ".join(s.split()) for s in ddl) + (
        " (or with Alembic: alembic revision --autogenerate over metadata_for(..., dialect=connection.dialect), "
        "then alembic upgrade head; see docs/migrations.md)"
    )


def _collations(conn: sa.Connection, table: sa.Table, dialect: str) -> dict[str, str | None]:
    """Column -> collation name (lower case; ``None`` where the column has none, e.g. not a string)."""
    if dialect == "postgresql":
        rows = conn.execute(
            sa.text(
                "SELECT a.attname, CASE WHEN co.collname = 'default' THEN "
                "(SELECT datcollate FROM pg_database WHERE datname = current_database()) ELSE co.collname END "
                "FROM pg_attribute a LEFT JOIN pg_collation co ON co.oid = a.attcollation "
                "WHERE a.attrelid = to_regclass(:t) AND a.attnum > 0 AND NOT a.attisdropped"
            ),
            {"t": _qualified(table)},
        ).all()
        return {r[0]: (str(r[1]).lower() if r[1] is not None else None) for r in rows}
    if dialect in MYSQL_DIALECTS:
        rows = conn.execute(
            sa.text(
                "SELECT COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = COALESCE(:s, DATABASE()) AND TABLE_NAME = :t"
            ),
            {"s": table.schema, "t": table.name},
        ).all()
        return {r[0]: (str(r[1]).lower() if r[1] is not None else None) for r in rows}
    # SQLite: the collation each index applies to its columns (the primary key's own index included).
    out: dict[str, str | None] = {}
    quoted = table.name.replace('"', '""')
    for ix in conn.exec_driver_sql(f'PRAGMA index_list("{quoted}")').all():
        ixq = str(ix[1]).replace('"', '""')
        for col in conn.exec_driver_sql(f'PRAGMA index_xinfo("{ixq}")').all():
            if col[2] is not None and col[5]:  # name, and a key column of the index
                prev = out.get(col[2])
                coll = str(col[4]).lower()
                out[col[2]] = coll if prev in (None, "binary") else prev
    return out


def _qualified(table: sa.Table) -> str:
    def q(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'
    return f"{q(table.schema)}.{q(table.name)}" if table.schema else q(table.name)


def check_table(conn: sa.Connection, schema: Schema[Any], table: sa.Table, dialect: Dialect) -> list[Mismatch]:
    """Every mismatch between the existing table and what ``schema`` needs (run inside ``Driver.catalog``)."""
    insp = sa.inspect(conn)
    name, entity = table.name, schema.name
    shown = f"{table.schema}.{name}" if table.schema else name

    def mismatch(problem: str, fix: str) -> Mismatch:
        return Mismatch(entity=entity, table=shown, problem=problem, fix=fix)

    if not insp.has_table(name, schema=table.schema):
        return [mismatch("the table does not exist", _create_table(dialect, table))]
    out: list[Mismatch] = []
    reflected = {c["name"]: c for c in insp.get_columns(name, schema=table.schema)}
    kinds = {f.stored or f.name: column_kind(f.type) for f in schema.fields}
    t = _qt(dialect, table)
    for col in table.columns:
        have = reflected.get(col.name)
        kind = kinds.get(col.name, ("json", True))[0]
        if have is None:
            null = "" if col.nullable else " NOT NULL"
            out.append(mismatch(
                f"column {col.name} is missing",
                f"ALTER TABLE {t} ADD COLUMN {_q(dialect, col.name)} {_type(dialect, col)}{null};",
            ))
            continue
        if not _family(kind, have["type"], dialect.name):
            out.append(mismatch(
                f"column {col.name} is {_shown(have['type'], dialect)}, which cannot hold the field's {kind} values",
                _alter_column(dialect, table, col, have["type"]),
            ))
        elif have["nullable"] and not col.nullable and not col.primary_key:
            out.append(mismatch(
                f"column {col.name} allows NULL, but the field is not optional (a NULL there cannot be read)",
                _alter_column(dialect, table, col),
            ))
        elif not have["nullable"] and col.nullable:
            out.append(mismatch(
                f"column {col.name} is NOT NULL, but the field is optional (writing None fails)",
                _alter_column(dialect, table, col),
            ))
    declared = {c.name for c in table.columns}
    for cname, have in reflected.items():
        if cname not in declared and not have["nullable"] and have.get("default") is None \
                and not have.get("autoincrement") and not have.get("computed") and not have.get("identity"):
            out.append(mismatch(
                f"column {cname} is not declared by the entity and is NOT NULL without a default: "
                "inserting a new item fails",
                f"give it a default (ALTER TABLE {t} ALTER COLUMN {_q(dialect, cname)} SET DEFAULT …) "
                "or declare it on the entity",
            ))
    pk_info = insp.get_pk_constraint(name, schema=table.schema)
    pk = list(pk_info.get("constrained_columns") or [])
    want_pk = [c.name for c in table.primary_key.columns]
    if pk != want_pk:
        cols = ", ".join(_q(dialect, c) for c in want_pk)
        if dialect.name in MYSQL_DIALECTS:
            fix = f"ALTER TABLE {t} DROP PRIMARY KEY, ADD PRIMARY KEY ({cols});"
        elif dialect.name == "postgresql":
            drop = f"DROP CONSTRAINT {_q(dialect, str(pk_info['name']))}, " if pk_info.get("name") else ""
            fix = f"ALTER TABLE {t} {drop}ADD PRIMARY KEY ({cols});"
        else:
            fix = f"rebuild {name} with PRIMARY KEY ({cols})"
        out.append(mismatch(
            f"the primary key is ({', '.join(pk) or 'none'}), the entity's key is ({', '.join(want_pk)})", fix
        ))
    existing: list[Sequence[str]] = [pk]
    existing += [[str(c) for c in ix.get("column_names") or ()] for ix in insp.get_indexes(name, schema=table.schema)]
    existing += [list(u.get("column_names") or ()) for u in insp.get_unique_constraints(name, schema=table.schema)]
    for ix_name, ix in schema.indexes.items():
        head = [schema.stored_names.get(f, f) for f in ix.partition_fields + ix.sort_fields]
        if not any(list(cols[: len(head)]) == head for cols in existing):
            sa_ix = next(i for i in table.indexes if i.info.get("tierstore_index") == ix_name)
            out.append(mismatch(
                f"no index on ({', '.join(head)}) for the entity's index {ix_name}",
                " ".join(str(CreateIndex(sa_ix).compile(dialect=dialect)).split()) + ";",
            ))
    out.extend(_check_collations(conn, schema, table, dialect, reflected, mismatch))
    return out


def _check_collations(
    conn: sa.Connection, schema: Schema[Any], table: sa.Table, dialect: Dialect, reflected: dict[str, Any],
    mismatch: Any,
) -> list[Mismatch]:
    keyish = {schema.stored_names.get(f, f) for f in key_like_fields(schema)}
    strings = [c for c in table.columns if c.name in keyish and c.name in reflected
               and isinstance(reflected[c.name]["type"], sa.String)]
    if not strings:
        return []
    collations = _collations(conn, table, dialect.name)
    out = []
    for col in strings:
        coll = collations.get(col.name)
        if coll is None and dialect.name == "sqlite":
            coll = "binary"
        if coll is None or coll in CODE_POINT_COLLATIONS or coll in ("c.utf8", "c.utf-8"):
            continue
        out.append(mismatch(
            f"key column {col.name} has collation {coll}, which does not compare by code point "
            "(a case-insensitive or linguistic collation returns and overwrites the wrong rows)",
            _alter_column(dialect, table, col),
        ))
    return out
