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
from collections.abc import Callable, Sequence
from typing import Any, Literal

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, mysql, oracle, postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from tierstore.errors import ConfigError
from tierstore.model.entity import Entity
from tierstore.model.schema import Schema, schema_of

__all__ = [
    "KEY_LENGTH", "MYSQL_DIALECTS", "NATIVE_KINDS", "TARGETS", "KeyBytes", "KeyString", "Kind", "Target",
    "check_mysql_key_size", "column_kind", "field_default", "index_columns", "key_like_fields", "metadata_for",
    "table_for", "target_of",
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
    """``VARCHAR(255)`` whose comparison and order are by code point on every dialect (resolved when compiled).

    Code-point order makes SQL ``ORDER BY`` agree with Python's ``str`` order and keeps ``"a"``, ``"A"`` and
    ``"a "`` distinct keys (MySQL's default collations are case-insensitive and pad spaces). Tables built for
    a known database (:func:`metadata_for` with ``dialect=``, and the store's own) use the plain SQLAlchemy
    type this resolves to instead, which Alembic renders without importing tierstore; this one serves tables
    built for any database.
    """

    impl = sa.String(KEY_LENGTH)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(_key_string(target_of(dialect)))


Target = Literal["postgresql", "mysql", "mariadb", "sqlite", "mssql", "oracle"]
TARGETS: tuple[Target, ...] = ("postgresql", "mysql", "mariadb", "sqlite", "mssql", "oracle")
"""The databases tables can be built for (``mariadb``: MariaDB, whichever URL scheme reaches it). SQL Server
and Oracle tables are DDL only (for migrations; compiled in the tests, never run here): ``SqlStore`` does not
run on them (see docs/sql-engines.md)."""


def target_of(dialect: Dialect | str | None) -> Target | None:
    """The database a table is built for: a connected SQLAlchemy dialect (MariaDB told apart from MySQL, as
    a ``mysql+aiomysql://`` URL reaches both), a dialect name, or ``None`` (any of them)."""
    if dialect is None:
        return None
    name = dialect if isinstance(dialect, str) else dialect.name
    if name == "mysql" and getattr(dialect, "is_mariadb", False):
        name = "mariadb"
    for t in TARGETS:
        if t == name:
            return t
    raise ConfigError(f"tables are built for {', '.join(TARGETS)} (or None: any of them); got {name!r}")


def _variants(make: Callable[[Target | None], TypeEngine[Any]]) -> TypeEngine[Any]:
    """The type for every database: the ``None`` form with one variant per database that differs."""
    base: TypeEngine[Any] = make(None)
    for t in TARGETS:
        typ = make(t)
        if repr(typ) != repr(base):
            base = base.with_variant(typ, t)
    return base


def _key_string(target: Target | None) -> TypeEngine[Any]:
    if target == "mssql":  # binary: UTF-16 code-unit order (code-point order up to U+FFFF)
        return mssql.NVARCHAR(KEY_LENGTH, collation="Latin1_General_100_BIN2")
    if target == "oracle":  # Oracle compares VARCHAR2 bytewise (NLS_COMP=BINARY): code-point order in AL32UTF8
        return sa.String(KEY_LENGTH)
    if target == "postgresql":
        return sa.String(KEY_LENGTH, collation="C")
    if target in ("mysql", "mariadb"):
        nopad = "utf8mb4_nopad_bin" if target == "mariadb" else "utf8mb4_0900_bin"
        return mysql.VARCHAR(KEY_LENGTH, charset="utf8mb4", collation=nopad)
    return sa.String(KEY_LENGTH)


def KeyBytes() -> TypeEngine[bytes]:
    return _variants(_key_bytes)


def _key_bytes(target: Target | None) -> TypeEngine[Any]:
    if target == "oracle":
        return oracle.RAW(KEY_LENGTH)
    return mysql.VARBINARY(KEY_LENGTH) if target in ("mysql", "mariadb", "mssql") else sa.LargeBinary()


def _text(target: Target | None) -> TypeEngine[Any]:
    if target == "mssql":
        return mssql.NVARCHAR(None)  # NVARCHAR(max): every character, whatever the database collation
    if target == "oracle":
        return oracle.NCLOB()
    return mysql.LONGTEXT(charset="utf8mb4") if target in ("mysql", "mariadb") else sa.Text()


def _blob(target: Target | None) -> TypeEngine[Any]:
    if target == "mssql":
        return mssql.VARBINARY(None)  # type: ignore[no-untyped-call]  # VARBINARY(max), not the deprecated IMAGE
    return mysql.LONGBLOB() if target in ("mysql", "mariadb") else sa.LargeBinary()


def _datetime(target: Target | None) -> TypeEngine[Any]:
    # SQLite has no date types: ISO 8601 text (UTC, microseconds), which also sorts by time.
    if target in ("mysql", "mariadb"):
        return mysql.DATETIME(fsp=6)
    if target == "oracle":
        return oracle.TIMESTAMP(timezone=True)
    return sa.Text() if target == "sqlite" else sa.DateTime(timezone=True)


def _date(target: Target | None) -> TypeEngine[Any]:
    return sa.Text() if target == "sqlite" else sa.Date()


def _uuid(target: Target | None) -> TypeEngine[Any]:
    if target in ("mysql", "mariadb"):
        return mysql.CHAR(36)
    return sa.Text() if target == "sqlite" else sa.Uuid(as_uuid=True)


def _decimal(target: Target | None) -> TypeEngine[Any]:
    # MySQL needs a precision: the widest it has; SQLite keeps the exact text.
    if target in ("mysql", "mariadb"):
        return mysql.DECIMAL(65, 30)
    if target == "mssql":  # NUMERIC alone is NUMERIC(18, 0) there: the widest, half of it fraction
        return sa.Numeric(38, 19, asdecimal=True)
    return sa.Text() if target == "sqlite" else sa.Numeric(asdecimal=True)


def _json(target: Target | None) -> TypeEngine[Any]:
    # SQLite gets TEXT: a declared type "JSON" has NUMERIC affinity there and would turn '123' into 123.
    if target == "postgresql":
        return postgresql.JSONB(none_as_null=True)
    if target == "mssql":
        return mssql.NVARCHAR(None)
    if target == "oracle":
        return oracle.NCLOB()
    return sa.Text() if target == "sqlite" else sa.JSON(none_as_null=True)


_TYPES: dict[str, Callable[[Target | None], TypeEngine[Any]]] = {
    "bytes": _blob, "datetime": _datetime, "date": _date, "uuid": _uuid, "decimal": _decimal, "json": _json,
}


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


def table_for(schema: Schema[Any], metadata: sa.MetaData, dialect: Dialect | str | None = None) -> sa.Table:
    """The table of ``schema`` in ``metadata`` (added if missing), built for ``dialect`` (see :func:`target_of`).

    Columns are named as the entity stores its fields (msgspec's ``rename=``/``field(name=...)``), and keyed
    by the field name (``table.c.<field>``). One SQL table holds one entity: a second entity with other
    columns on the same table is a ``ConfigError``.
    """
    target = target_of(dialect)
    if not _SQL_TABLE_NAME.match(schema.table):
        raise ConfigError(
            f"{schema.name}: table name {schema.table!r} cannot be an SQL table: at most 63 characters of "
            "letters, digits, _, $ and -, not starting with a digit (a PostgreSQL schema is the store's "
            "pg_schema= parameter, not part of the name)",
            entity=schema.name,
        )
    if schema.typed:
        raise ConfigError(
            f"{schema.name}: key templates and a type attribute are DynamoDB's single-table design; an SQL table "
            "holds one entity whose key columns are its key fields: declare the key with field names",
            entity=schema.name,
        )
    key = f"{metadata.schema}.{schema.table}" if metadata.schema else schema.table
    existing = metadata.tables.get(key)
    if existing is not None:
        if existing.info.get("tierstore_entity") != schema.name:
            probe = _build(schema, sa.MetaData(schema=metadata.schema), target)
            if _columns_of(probe) != _columns_of(existing):
                raise ConfigError(
                    f"{schema.name} and {existing.info.get('tierstore_entity')} both declare table "
                    f"{schema.table!r} with different fields; an SQL table holds one entity (several entities "
                    "on one table is DynamoDB's single-table design): give each its own table",
                    entity=schema.name,
                )
        return existing
    return _build(schema, metadata, target)


_EMPTY_FACTORIES: tuple[Any, ...] = (list, dict, set, frozenset, tuple)


def field_default(schema: Schema[Any], name: str) -> tuple[bool, Any]:
    """``(True, value)`` when the field has a constant default (an empty collection from ``list``/``dict``/
    ``set``… counts), else ``(False, None)`` (required, or made by another factory on each call)."""
    try:
        info = {f.name: f for f in msgspec.structs.fields(schema.cls)}[name]
    except (TypeError, KeyError):
        return False, None
    if info.default is not msgspec.NODEFAULT:
        return True, info.default
    if info.default_factory in _EMPTY_FACTORIES:
        return True, info.default_factory()
    return False, None


def _sql_string(value: str, target: Target | None, expression: bool) -> Any:
    """A string constant as a column default. MySQL 8 takes a default on TEXT/BLOB/JSON columns only as an
    expression, ``DEFAULT ('…')``, where backslashes escape too; elsewhere it is the plain literal."""
    if target == "mysql" and expression:
        quoted = value.replace("\\", "\\\\").replace("'", "''").replace(":", "\\:")  # \: is text()'s colon
        return sa.text(f"('{quoted}')")
    return value


def _server_default(kind: str, schema: Schema[Any], f: Any, target: Target | None, key_like: bool) -> Any:
    """The field's default as a column default: a migration that adds the column fills existing rows with
    it, and rows inserted by a service that does not know the field yet get it too.

    Carried: numbers, booleans, ``str``, ``date``, ``UUID``, ``Decimal``, JSON values (collections, enums,
    literals, structs: their JSON encoding), and ``datetime`` on a known database. Not carried (the column
    has no default; see docs/migrations.md for the expand/contract recipe): ``bytes``, non-finite floats,
    defaults made by a factory other than an empty collection's."""
    has, value = field_default(schema, f.name)
    if f.required or not has or value is None:
        return None
    if kind == "bool" and isinstance(value, bool):
        return sa.true() if value else sa.false()
    if kind in ("int", "float") and type(value) in (int, float):
        return sa.text(repr(value)) if math.isfinite(value) else None
    if kind == "str" and isinstance(value, str):
        return _sql_string(value, target, expression=not key_like)
    if kind == "date" and type(value) is datetime.date:
        return value.isoformat()
    if kind == "uuid" and isinstance(value, uuid.UUID):
        return str(value)
    if kind == "decimal" and isinstance(value, decimal.Decimal) and value.is_finite():
        return str(value)
    if kind == "datetime" and isinstance(value, datetime.datetime) and target not in (None, "mssql", "oracle"):
        if target == "sqlite":  # the row codec's text: the value as given, offset (or its absence) included
            return value.isoformat(timespec="microseconds")
        utc = value.replace(tzinfo=datetime.UTC) if value.tzinfo is None else value.astimezone(datetime.UTC)
        if target == "postgresql":
            return utc.isoformat(timespec="microseconds")
        return utc.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    if kind == "json":
        try:
            text = msgspec.json.encode(value).decode()
        except (TypeError, ValueError, msgspec.EncodeError):
            return None
        return _sql_string(text, target, expression=True)
    return None


def _build(schema: Schema[Any], metadata: sa.MetaData, target: Target | None) -> sa.Table:
    keyish = key_like_fields(schema)
    stored = schema.stored_names
    columns: list[sa.Column[Any]] = []
    for f in schema.fields:
        kind, nullable = column_kind(f.type)
        typ: TypeEngine[Any]
        if kind == "str":
            typ = _pick(_key_string if f.name in keyish else _text, target)
        elif kind == "bytes":
            typ = _pick(_key_bytes if f.name in keyish else _blob, target)
        elif kind == "int":
            typ = sa.BigInteger()
        elif kind == "float":
            typ = sa.Double()
        elif kind == "bool":
            typ = sa.Boolean()
        else:
            typ = _pick(_TYPES[kind], target)
        columns.append(sa.Column(
            stored[f.name], typ, key=f.name, nullable=nullable, autoincrement=False,
            server_default=_server_default(kind, schema, f, target, f.name in keyish),
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


def _pick(make: Callable[[Target | None], TypeEngine[Any]], target: Target | None) -> TypeEngine[Any]:
    if target is None:  # for any database: resolved when compiled
        return KeyString() if make is _key_string else _variants(make)
    return make(target)


def metadata_for(
    *entities: type[Entity], metadata: sa.MetaData | None = None, dialect: Dialect | str | None = None
) -> sa.MetaData:
    """A ``sqlalchemy.MetaData`` with the tables and indexes of ``entities`` (e.g. for Alembic's
    ``target_metadata``, so autogenerate sees tierstore's tables).

    ``dialect``: the database the tables are for — a connected dialect (``connection.dialect`` in Alembic's
    env.py, which tells MariaDB from MySQL) or ``"postgresql"``/``"mysql"``/``"mariadb"``/``"sqlite"``. The
    columns then have plain SQLAlchemy types of that database, which Alembic renders without importing
    tierstore. Without it the tables suit every database (types resolved when compiled, a ``datetime``
    field's default not carried), but Alembic's autogenerate cannot render them without tierstore's
    ``KeyString``: give the dialect for migrations."""
    target = target_of(dialect)  # checked even with no entities
    md = metadata if metadata is not None else sa.MetaData()
    for entity in entities:
        table_for(schema_of(entity), md, target)
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
