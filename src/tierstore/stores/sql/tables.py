"""SQL tables generated from entity schemas: the column of each field, the primary key, the indexes, and
:func:`metadata_for` (usable as Alembic's ``target_metadata``, so autogenerate sees tierstore's tables).

Column mapping (one column per field, in field order):

=========================  =====================================================================
field type                 column
=========================  =====================================================================
``str`` in a key/index     ``VARCHAR(255)`` compared by code point (``COLLATE "C"`` on PostgreSQL,
                           ``utf8mb4_nopad_bin`` on MariaDB, ``utf8mb4_0900_bin`` on MySQL)
``str``                    ``TEXT`` (``LONGTEXT`` on MySQL)
``bytes`` in a key/index   ``BYTEA`` / ``BLOB`` / ``VARBINARY(255)`` on MySQL
``bytes``                  ``BYTEA`` / ``BLOB`` / ``LONGBLOB``
``int`` / ``float``        ``BIGINT`` / ``DOUBLE``
``bool``                   ``BOOLEAN`` (``TINYINT(1)`` on MySQL, ``INTEGER`` on SQLite)
``datetime``               ``TIMESTAMPTZ`` / ``DATETIME(6)`` in UTC on MySQL / ISO 8601 text on SQLite;
                           a naive datetime is taken as UTC, and read back aware (UTC)
``date``                   ``DATE`` (ISO text on SQLite)
``uuid.UUID``              ``UUID`` / ``CHAR(36)`` on MySQL / text on SQLite
``decimal.Decimal``        ``NUMERIC`` / ``DECIMAL(65, 30)`` on MySQL / exact text on SQLite
``X | None``, X scalar     the column of X, nullable
anything else              JSON holding msgspec's JSON encoding (``JSONB`` on PostgreSQL, ``TEXT`` on
                           SQLite), decoded with a typed msgspec decoder
=========================  =====================================================================

Key and index values of type ``str``/``bytes`` are limited to :data:`KEY_LENGTH` characters/bytes on every
dialect (MySQL needs a bounded type to index them), checked before any I/O.
"""

from __future__ import annotations

import datetime
import decimal
import math
import re
import types
import typing
import uuid
import zlib
from collections.abc import Sequence
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from tierstore.errors import ConfigError
from tierstore.model.entity import Entity
from tierstore.model.schema import Schema, schema_of

__all__ = [
    "KEY_LENGTH", "MYSQL_DIALECTS", "NATIVE_KINDS", "KeyBytes", "KeyString", "Kind", "check_mysql_key_size",
    "column_kind", "index_columns", "key_like_fields", "metadata_for", "table_for",
]

KEY_LENGTH = 255
"""Longest ``str`` (characters) or ``bytes`` value allowed in a key or index field."""

Kind = Literal["str", "int", "float", "bool", "bytes", "json", "datetime", "date", "uuid", "decimal"]
_SCALARS: dict[Any, Kind] = {
    str: "str", int: "int", float: "float", bool: "bool", bytes: "bytes",
    datetime.datetime: "datetime", datetime.date: "date", uuid.UUID: "uuid", decimal.Decimal: "decimal",
}
NATIVE_KINDS: frozenset[str] = frozenset({"datetime", "date", "uuid", "decimal"})
"""Kinds with a native SQL column (converted at the driver boundary by the row codec)."""
MYSQL_DIALECTS = ("mysql", "mariadb")
"""SQLAlchemy's names of the MySQL-family dialects."""

class KeyString(TypeDecorator[str]):
    """``VARCHAR(255)`` whose comparison and order are by code point on every dialect.

    Code-point order makes SQL ``ORDER BY`` agree with Python's ``str`` order and keeps ``"a"``, ``"A"`` and
    ``"a "`` distinct keys (MySQL's default collations are case-insensitive and pad spaces).
    """

    impl = sa.String(KEY_LENGTH)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(sa.String(KEY_LENGTH, collation="C"))
        if dialect.name in MYSQL_DIALECTS:
            nopad = "utf8mb4_nopad_bin" if getattr(dialect, "is_mariadb", False) else "utf8mb4_0900_bin"
            return dialect.type_descriptor(mysql.VARCHAR(KEY_LENGTH, charset="utf8mb4", collation=nopad))
        return dialect.type_descriptor(sa.String(KEY_LENGTH))


def KeyBytes() -> TypeEngine[bytes]:
    return sa.LargeBinary().with_variant(mysql.VARBINARY(KEY_LENGTH), *MYSQL_DIALECTS)


def _text() -> TypeEngine[str]:
    return sa.Text().with_variant(mysql.LONGTEXT(charset="utf8mb4"), *MYSQL_DIALECTS)


def _blob() -> TypeEngine[bytes]:
    return sa.LargeBinary().with_variant(mysql.LONGBLOB(), *MYSQL_DIALECTS)


def _datetime() -> TypeEngine[Any]:
    # SQLite has no date types: ISO 8601 text (UTC, microseconds), which also sorts by time.
    return (
        sa.DateTime(timezone=True)
        .with_variant(mysql.DATETIME(fsp=6), *MYSQL_DIALECTS)
        .with_variant(sa.Text(), "sqlite")
    )


def _date() -> TypeEngine[Any]:
    return sa.Date().with_variant(sa.Text(), "sqlite")


def _uuid() -> TypeEngine[Any]:
    return sa.Uuid(as_uuid=True).with_variant(mysql.CHAR(36), *MYSQL_DIALECTS).with_variant(sa.Text(), "sqlite")


def _decimal() -> TypeEngine[Any]:
    # MySQL needs a precision: the widest it has; SQLite keeps the exact text.
    return (
        sa.Numeric(asdecimal=True)
        .with_variant(mysql.DECIMAL(65, 30), *MYSQL_DIALECTS)
        .with_variant(sa.Text(), "sqlite")
    )


_NATIVE_TYPES = {"datetime": _datetime, "date": _date, "uuid": _uuid, "decimal": _decimal}


def _json() -> TypeEngine[Any]:
    # SQLite gets TEXT: a declared type "JSON" has NUMERIC affinity there and would turn '123' into 123.
    return (
        sa.JSON(none_as_null=True)
        .with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
        .with_variant(sa.Text(), "sqlite")
    )


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def column_kind(tp: Any) -> tuple[Kind, bool]:
    """The column kind of a field type, and whether the column is nullable."""
    tp = _strip(tp)
    kind = _SCALARS.get(tp)
    if kind is not None:
        return kind, False
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(tp)
        others = [a for a in args if a is not type(None)]
        if len(others) == 1 and len(others) < len(args):
            inner = _SCALARS.get(_strip(others[0]))
            if inner is not None:
                return inner, True
        return "json", len(others) < len(args)
    return "json", tp is Any or tp is object or tp is None


def _index_name(table: str, index: str) -> str:
    name = f"ix_{table}_{index}"
    if len(name) > 60:  # PostgreSQL keeps 63 bytes, MySQL 64: keep it unique when cut
        name = f"{name[:51]}_{zlib.crc32(name.encode()):08x}"
    return name


def index_columns(schema: Schema[Any], name: str) -> tuple[str, ...]:
    """Columns of the SQL index behind ``schema.indexes[name]``: its partition and sort fields, then the
    remaining primary-key fields, so index queries are ordered and paged by the index alone."""
    ix = schema.indexes[name]
    head = ix.partition_fields + ix.sort_fields
    return head + tuple(f for f in schema.key_fields if f not in head)


def key_like_fields(schema: Schema[Any]) -> set[str]:
    """Fields of the primary key and of any index: their ``str``/``bytes`` columns are bounded and compared
    by code point."""
    keyish = set(schema.key_fields)
    for ix in schema.indexes.values():
        keyish.update(ix.partition_fields + ix.sort_fields)
    return keyish


_SQL_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$-]{0,62}\Z")


def _columns_of(table: sa.Table) -> list[tuple[str, str, str]]:
    return [(c.key, c.name, repr(c.type)) for c in table.columns]


def table_for(schema: Schema[Any], metadata: sa.MetaData) -> sa.Table:
    """The table of ``schema`` in ``metadata`` (added if missing).

    Columns are named as the entity stores its fields (msgspec's ``rename=``/``field(name=...)``), and keyed
    by the field name (``table.c.<field>``). One SQL table holds one entity: a second entity with other
    columns on the same table is a ``ConfigError``.
    """
    if not _SQL_TABLE_NAME.match(schema.table):
        raise ConfigError(
            f"{schema.name}: table name {schema.table!r} cannot be an SQL table: at most 63 characters of "
            "letters, digits, _, $ and -, not starting with a digit (a PostgreSQL schema is the store's "
            "pg_schema= parameter, not part of the name)",
            entity=schema.name,
        )
    key = f"{metadata.schema}.{schema.table}" if metadata.schema else schema.table
    existing = metadata.tables.get(key)
    if existing is not None:
        if existing.info.get("tierstore_entity") != schema.name:
            probe = _build(schema, sa.MetaData(schema=metadata.schema))
            if _columns_of(probe) != _columns_of(existing):
                raise ConfigError(
                    f"{schema.name} and {existing.info.get('tierstore_entity')} both declare table "
                    f"{schema.table!r} with different fields; an SQL table holds one entity (several entities "
                    "on one table is DynamoDB's single-table design): give each its own table",
                    entity=schema.name,
                )
        return existing
    return _build(schema, metadata)


def _server_default(kind: str, f: Any) -> Any:
    """The field's default as a column default, for numbers and booleans: a migration that adds the column
    fills existing rows with it, and rows written by a service that does not know the field yet get it too.
    (Text columns get none: MySQL refuses a literal DEFAULT on TEXT.)"""
    if f.required or f.default is None or (isinstance(f.default, float) and not math.isfinite(f.default)):
        return None
    if kind == "bool" and isinstance(f.default, bool):
        return sa.true() if f.default else sa.false()
    if kind in ("int", "float") and type(f.default) in (int, float):
        return sa.text(repr(f.default))
    return None


def _build(schema: Schema[Any], metadata: sa.MetaData) -> sa.Table:
    keyish = key_like_fields(schema)
    stored = schema.stored_names
    columns: list[sa.Column[Any]] = []
    for f in schema.fields:
        kind, nullable = column_kind(f.type)
        typ: TypeEngine[Any]
        if kind == "str":
            typ = KeyString() if f.name in keyish else _text()
        elif kind == "bytes":
            typ = KeyBytes() if f.name in keyish else _blob()
        elif kind == "int":
            typ = sa.BigInteger()
        elif kind == "float":
            typ = sa.Double()
        elif kind == "bool":
            typ = sa.Boolean()
        elif kind in _NATIVE_TYPES:
            typ = _NATIVE_TYPES[kind]()
        else:
            typ = _json()
        columns.append(sa.Column(
            stored[f.name], typ, key=f.name, nullable=nullable, autoincrement=False,
            server_default=_server_default(kind, f),
        ))
    if len({c.name for c in columns}) != len(columns):
        raise ConfigError(f"{schema.name}: two fields are stored under the same column name", entity=schema.name)
    table = sa.Table(
        schema.table,
        metadata,
        *columns,
        sa.PrimaryKeyConstraint(*schema.key_fields),  # by column key: the field name
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
        info={"tierstore_entity": schema.name},
    )
    for name in schema.indexes:
        sa.Index(
            _index_name(schema.table, name), *(table.c[c] for c in index_columns(schema, name)),
            info={"tierstore_index": name},
        )
    return table


def metadata_for(*entities: type[Entity], metadata: sa.MetaData | None = None) -> sa.MetaData:
    """A ``sqlalchemy.MetaData`` with the tables and indexes of ``entities`` (e.g. for Alembic's
    ``target_metadata``, so autogenerate sees tierstore's tables)."""
    md = metadata if metadata is not None else sa.MetaData()
    for entity in entities:
        table_for(schema_of(entity), md)
    return md


def check_mysql_key_size(schema: Schema[Any]) -> None:
    """InnoDB indexes hold at most 3072 bytes; a utf8mb4 VARCHAR(255) takes 1020. Fail before the DDL does."""
    def size(cols: Sequence[str]) -> int:
        total = 0
        for c in cols:
            typ = schema.field_types[c]
            total += 1020 if typ is str or "str" in repr(typ) else 255 if typ is bytes else 8
        return total

    groups = [("primary key", schema.key_fields)]
    groups += [(f"index {n}", index_columns(schema, n)) for n in schema.indexes]
    for what, cols in groups:
        if size(cols) > 3072:
            raise ConfigError(
                f"{schema.name}: the {what} {cols} needs more than 3072 bytes on MySQL "
                f"(each str key/index field takes {KEY_LENGTH} utf8mb4 characters = 1020 bytes)",
                entity=schema.name,
            )
