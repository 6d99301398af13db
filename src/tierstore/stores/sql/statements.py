"""SQL tables generated from entity schemas, and the per-dialect plan of one table (compiled statements,
row encoders and decoders). Part of the SQL backend: only :mod:`tierstore.stores.sql` imports it.

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
``X | None``, X scalar     the column of X, nullable
anything else              JSON holding msgspec's JSON encoding (``JSONB`` on PostgreSQL, ``TEXT`` on
                           SQLite), decoded with a typed msgspec decoder
=========================  =====================================================================

Key and index values of type ``str``/``bytes`` are limited to :data:`KEY_LENGTH` characters/bytes on every
dialect (MySQL needs a bounded type to index them), checked before any I/O.
"""

from __future__ import annotations

import inspect
import math
import operator
import types
import typing
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from tierstore.errors import ConfigError, StoreError, ValidationError
from tierstore.model.entity import Entity
from tierstore.model.schema import Key, Schema, schema_of

__all__ = [
    "KEY_LENGTH", "KeyBytes", "KeyString", "Plan", "Sql", "index_columns", "metadata_for", "successor", "table_for",
]

T = TypeVar("T")

KEY_LENGTH = 255
"""Longest ``str`` (characters) or ``bytes`` value allowed in a key or index field."""

BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1

Kind = Literal["str", "int", "float", "bool", "bytes", "json"]
_SCALARS: dict[Any, Kind] = {str: "str", int: "int", float: "float", bool: "bool", bytes: "bytes"}
_MYSQL = ("mysql", "mariadb")


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
        if dialect.name in _MYSQL:
            nopad = "utf8mb4_nopad_bin" if getattr(dialect, "is_mariadb", False) else "utf8mb4_0900_bin"
            return dialect.type_descriptor(mysql.VARCHAR(KEY_LENGTH, charset="utf8mb4", collation=nopad))
        return dialect.type_descriptor(sa.String(KEY_LENGTH))


def KeyBytes() -> TypeEngine[bytes]:
    return sa.LargeBinary().with_variant(mysql.VARBINARY(KEY_LENGTH), *_MYSQL)


def _text() -> TypeEngine[str]:
    return sa.Text().with_variant(mysql.LONGTEXT(charset="utf8mb4"), *_MYSQL)


def _blob() -> TypeEngine[bytes]:
    return sa.LargeBinary().with_variant(mysql.LONGBLOB(), *_MYSQL)


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


def table_for(schema: Schema[Any], metadata: sa.MetaData) -> sa.Table:
    """The table of ``schema`` in ``metadata`` (added if missing)."""
    existing = metadata.tables.get(schema.table)
    if existing is not None:
        return existing
    keyish = set(schema.key_fields)
    for ix in schema.indexes.values():
        keyish.update(ix.partition_fields + ix.sort_fields)
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
        else:
            typ = _json()
        columns.append(sa.Column(f.name, typ, nullable=nullable, autoincrement=False))
    table = sa.Table(
        schema.table,
        metadata,
        *columns,
        sa.PrimaryKeyConstraint(*schema.key_fields),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
        info={"tierstore_entity": schema.name},
    )
    for name in schema.indexes:
        sa.Index(_index_name(schema.table, name), *(table.c[c] for c in index_columns(schema, name)))
    return table


def metadata_for(*entities: type[Entity], metadata: sa.MetaData | None = None) -> sa.MetaData:
    """A ``sqlalchemy.MetaData`` with the tables and indexes of ``entities`` (e.g. for Alembic's
    ``target_metadata``, so autogenerate sees tierstore's tables)."""
    md = metadata if metadata is not None else sa.MetaData()
    for entity in entities:
        table_for(schema_of(entity), md)
    return md


# -- compiled statements ---------------------------------------------------------------------------


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


def successor(prefix: str | bytes) -> str | bytes | None:
    """The smallest value greater than every value starting with ``prefix`` (``None``: no such value)."""
    if isinstance(prefix, bytes):
        b = bytearray(prefix)
        while b and b[-1] == 0xFF:
            b.pop()
        if not b:
            return None
        b[-1] += 1
        return bytes(b)
    s = prefix
    while s:
        cp = ord(s[-1]) + 1
        if 0xD800 <= cp <= 0xDFFF:  # surrogates cannot be stored; the next code point is U+E000
            cp = 0xE000
        if cp <= 0x10FFFF:
            return s[:-1] + chr(cp)
        s = s[:-1]
    return None


@dataclass(frozen=True, slots=True)
class _Order:
    cols: tuple[str, ...]  # order of results, and the cursor position
    pfields: tuple[str, ...]
    sort_field: str | None


class Plan(Generic[T]):
    """Everything one store needs to read and write one table on one dialect, built once."""

    def __init__(self, schema: Schema[T], table: sa.Table, dialect: Dialect, backend: str) -> None:
        self.schema = schema
        self.table = table
        self.dialect = dialect
        self.backend = backend
        self.name = schema.name
        self.flavor: Literal["returning", "odku"] = "odku" if dialect.name in _MYSQL else "returning"
        # MariaDB >= 10.5 returns rows from INSERT … ON DUPLICATE KEY UPDATE (SQLAlchemy knows once connected).
        self.mysql_returning = self.flavor == "odku" and bool(getattr(dialect, "insert_returning", False))
        self.array_keys = dialect.name == "postgresql"  # batches of keys travel as one array per key column
        self.cols = tuple(f.name for f in schema.fields)
        pos = self.position = {c: i for i, c in enumerate(self.cols)}
        self.key_idx = tuple(pos[f] for f in schema.key_fields)
        self.version_idx = pos[schema.version] if schema.version else None
        kinds = [column_kind(f.type) for f in schema.fields]
        keyish = set(schema.key_fields)
        for ix in schema.indexes.values():
            keyish.update(ix.partition_fields + ix.sort_fields)
        self._len_checked = tuple(
            (i, c) for i, c in enumerate(self.cols) if c in keyish and kinds[i][0] in ("str", "bytes")
        )
        self._key_len_checked = tuple(
            i for i, f in enumerate(schema.key_fields) if schema.key_types[i] in (str, bytes)
        )
        self._key_ints = tuple(i for i, tp in enumerate(schema.key_types) if tp is int)
        self._ints = tuple(i for i, (k, _) in enumerate(kinds) if k == "int")
        # PostgreSQL stores NaN and infinities; SQLite reads NaN back as NULL; MySQL rejects both.
        nan_ok = dialect.name == "postgresql"
        self._floats = () if nan_ok else tuple(i for i, (k, _) in enumerate(kinds) if k == "float")
        self._inf_ok = dialect.name not in _MYSQL
        self._pg = dialect.name == "postgresql"
        self._pg_strs = tuple(i for i, (k, _) in enumerate(kinds) if k == "str") if self._pg else ()
        json_encode = msgspec.json.Encoder().encode
        self._json = tuple(i for i, (k, _) in enumerate(kinds) if k == "json")
        self._json_encode = json_encode
        self.decode: Callable[[Sequence[Any]], T] = self._make_decoder(kinds)
        self._key_of_row = operator.itemgetter(*self.key_idx)
        self._build_statements()

    # -- rows ----------------------------------------------------------------------------------------

    def _make_decoder(self, kinds: list[tuple[Kind, bool]]) -> Callable[[Sequence[Any]], T]:
        cls = self.schema.cls
        native_bool = self.dialect.name == "postgresql"
        convs: list[tuple[int, Callable[[Any], Any]]] = []
        for i, (f, (kind, _)) in enumerate(zip(self.schema.fields, kinds, strict=True)):
            if kind == "json":
                convs.append((i, msgspec.json.Decoder(f.type).decode))
            elif kind == "bool" and not native_bool:
                convs.append((i, bool))
        params = inspect.signature(cls).parameters.values()
        positional = all(p.kind is not inspect.Parameter.KEYWORD_ONLY for p in params)
        names = self.cols
        if not convs and positional:
            return lambda row: cls(*row)
        if positional:
            def decode(row: Sequence[Any]) -> T:
                vals = list(row)
                for i, conv in convs:
                    v = vals[i]
                    if v is not None:
                        vals[i] = conv(v)
                return cls(*vals)
            return decode

        def decode_kw(row: Sequence[Any]) -> T:
            vals = list(row)
            for i, conv in convs:
                v = vals[i]
                if v is not None:
                    vals[i] = conv(v)
            return cls(**dict(zip(names, vals, strict=True)))
        return decode_kw

    def decode_row(self, row: Sequence[Any], key: Any = None) -> T:
        try:
            return self.decode(row)
        except (msgspec.ValidationError, msgspec.DecodeError, TypeError, ValueError) as exc:
            raise StoreError(
                f"a stored row of {self.name} does not decode: {exc}", entity=self.name, key=key,
                backend=self.backend,
            ) from None

    def key_of_row(self, row: Sequence[Any]) -> Key:
        k = self._key_of_row(row)
        return k if len(self.key_idx) > 1 else (k,)

    def check_key(self, key: Key) -> None:
        for i in self._key_len_checked:
            if len(key[i]) > KEY_LENGTH:  # type: ignore[arg-type]
                raise ValidationError(
                    f"{self.name}.{self.schema.key_fields[i]} is longer than {KEY_LENGTH} "
                    f"{'characters' if isinstance(key[i], str) else 'bytes'} (the SQL key limit)",
                    entity=self.name, key=key,
                )
        for i in self._key_ints:
            v = key[i]
            if not BIGINT_MIN <= v <= BIGINT_MAX:  # type: ignore[operator]
                raise ValidationError(
                    f"{self.name}.{self.schema.key_fields[i]} does not fit a 64-bit integer",
                    entity=self.name, key=key,
                )

    def row_values(self, item: T) -> list[Any]:
        """Column values of ``item`` in column order, checked against the SQL limits (before any I/O)."""
        vals = list(msgspec.structs.astuple(item))  # type: ignore[arg-type]
        for i, c in self._len_checked:
            v = vals[i]
            if v is not None and len(v) > KEY_LENGTH:
                raise self._invalid(item, f"{c} is longer than {KEY_LENGTH} (the SQL key/index limit)")
        for i in self._ints:
            v = vals[i]
            if v is not None and not BIGINT_MIN <= v <= BIGINT_MAX:
                raise self._invalid(item, f"{self.cols[i]} does not fit a 64-bit integer")
        for i in self._floats:
            v = vals[i]
            if v is not None and (v != v or (not self._inf_ok and math.isinf(v))):
                raise self._invalid(item, f"{self.cols[i]}={v} cannot be stored by {self.backend}")
        for i in self._pg_strs:
            v = vals[i]
            if v is not None and "\x00" in v:
                raise self._invalid(item, f"{self.cols[i]} holds a NUL character, which PostgreSQL rejects")
        enc = self._json_encode
        for i in self._json:
            v = vals[i]
            if v is not None:
                try:
                    raw = enc(v)
                except (TypeError, ValueError, OverflowError) as exc:
                    raise self._invalid(item, f"{self.cols[i]}: {exc}") from None
                if self._pg and b"\\u0000" in raw:
                    raise self._invalid(item, f"{self.cols[i]} holds a NUL character, which JSONB rejects")
                vals[i] = raw.decode()
        return vals

    def _invalid(self, item: T, why: str) -> ValidationError:
        return ValidationError(f"invalid {self.name}: {why}", entity=self.name, key=self.schema.key_of(item))

    def with_version(self, item: T, version: int) -> T:
        return msgspec.structs.replace(item, **{self.schema.version: version})  # type: ignore[arg-type,type-var]

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
        self._many: dict[tuple[str, int], Sql] = {}
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
        if self.dialect.name in _MYSQL:
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
        self, index: str | None, op: str | None, has_high: bool, reverse: bool, has_cursor: bool
    ) -> tuple[Sql, _Order]:
        """``SELECT … WHERE partition = … [AND sort condition] [AND (order cols) > cursor] ORDER BY … LIMIT``.

        Parameters: ``p{i}`` partition values, ``s0``/``s1`` sort values, ``c{i}`` cursor position, ``lim``.
        """
        sig = (index, op, has_high, reverse, has_cursor)
        hit = self._queries.get(sig)
        if hit is not None:
            return hit
        t = self.table
        order = self.order_for(index)
        conds: list[sa.ColumnElement[bool]] = [
            t.c[f] == _bp(f"p{i}", t.c[f]) for i, f in enumerate(order.pfields)
        ]
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
        ocols = [t.c[c] for c in order.cols]
        if has_cursor and ocols:
            conds.append(self._after(ocols, [_bp(f"c{i}", col) for i, col in enumerate(ocols)], reverse))
        stmt = sa.select(*(t.c[c] for c in self.cols)).where(*conds)
        stmt = stmt.order_by(*(c.desc() if reverse else c.asc() for c in ocols))
        stmt = stmt.limit(sa.bindparam("lim", type_=sa.Integer()))
        hit = (self._sql(stmt), order)
        self._queries[sig] = hit
        return hit
