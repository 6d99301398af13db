"""Compilation of a checked condition to a SQLAlchemy Core clause over an entity's table.

The clause agrees with :func:`tierstore.expressions.memory.evaluate` on every dialect:

- two-valued logic: a comparison on a nullable column is ``col IS NOT NULL AND …``, so ``NOT`` of it holds for
  ``NULL`` (SQL's three-valued ``NOT (NULL = 'x')`` would drop the row);
- ``str`` compares by code point: ``COLLATE "C"`` for ordering on PostgreSQL, the binary no-pad collation on
  MariaDB/MySQL (whose default collations ignore case and trailing spaces); SQLite compares bytes already;
- ``begins_with`` is a range up to the prefix's successor (no ``LIKE`` escaping), ``contains`` on ``str`` a
  position function, on a list/set field (a JSON column) ``@>`` / ``json_each`` / ``JSON_CONTAINS``;
- fields stored as JSON (Literal, Enum, unions…) compare by their JSON text on equality.

Nested paths (``Order.address.city``, a key of a ``dict[str, ...]`` field) read inside the field's JSON column:
``#>>`` on PostgreSQL (``jsonb``), ``JSON_UNQUOTE(JSON_EXTRACT(…))`` on MariaDB/MySQL, ``json_extract`` on SQLite,
cast to the leaf's type (``bigint``/``double precision``/``boolean`` on PostgreSQL, ``SIGNED`` or ``+ 0e0`` on
MariaDB/MySQL; SQLite's ``json_extract`` returns typed values). A JSON ``null`` or a missing key is absent, as in
Python. The leaf must be a ``str``, ``int``, ``float`` or ``bool`` (optional or not) named by plain identifiers;
anything else (``bytes``, stored as base64 text, lists, enums, literals…) is ``Unsupported``, raised while the
statement is built, before any I/O.

Bind parameters are named ``w0``, ``w1``… in the order :meth:`Condition.values` lists the operands, so two
conditions of one :meth:`~Condition.shape` compile to the same statement text.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect

from tierstore.errors import Unsupported, ValidationError
from tierstore.expressions.ast import (
    And,
    BeginsWith,
    Between,
    Compare,
    Condition,
    Contains,
    Exists,
    In,
    Not,
    Or,
    Path,
)
from tierstore.expressions.check import FieldType, field_type, normalize
from tierstore.expressions.dynamodb import _nested_name
from tierstore.model.schema import Schema

__all__ = ["SqlWhere", "compile_where", "statement_key", "successor"]

_MYSQL = ("mysql", "mariadb")
_json = msgspec.json.Encoder()
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")  # nested names written into the statement text as they are
_NESTED_KINDS = frozenset({"str", "int", "float", "bool"})


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


class SqlWhere:
    """Builds the clause of one condition: bind names in visit order, their values in :attr:`values`."""

    def __init__(self, schema: Schema[Any], table: sa.Table, dialect: Dialect) -> None:
        self.schema = schema
        self.table = table
        self.dialect = dialect
        self.values: dict[str, Any] = {}
        self._pg = dialect.name == "postgresql"
        self._my = dialect.name in _MYSQL

    def _bind(self, value: Any, type_: Any = None) -> sa.BindParameter[Any]:
        name = f"w{len(self.values)}"
        self.values[name] = value
        return sa.bindparam(name, type_=type_)

    def _column(self, path: Path) -> tuple[sa.ColumnElement[Any], FieldType]:
        ft = field_type(self.schema, path)
        name = path.parts[0]
        cols = self.table.c
        col = cols[name] if name in cols else cols[self.schema.stored_names[name]]
        return col, ft

    def _nested(
        self, path: Path, ft: FieldType, col: sa.ColumnElement[Any]
    ) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[bool]]:
        """The value at a nested ``path`` inside the JSON column ``col``, typed as the leaf, and the clause that
        holds when it is there (not missing, not JSON ``null``)."""
        if ft.kind not in _NESTED_KINDS:
            raise Unsupported(
                f"{path!r} is {getattr(ft.type, '__name__', ft.type)}: a condition on a nested field compiles to SQL "
                "for str, int, float and bool values only", entity=self.schema.name, backend=self.dialect.name,
            )
        keys = [_nested_name(path, i) for i in range(1, len(path.parts))]
        if not all(_KEY.match(k) for k in keys):
            raise Unsupported(
                f"{path!r}: a nested name that is not an identifier ({keys}) is not compiled to SQL",
                entity=self.schema.name, backend=self.dialect.name,
            )
        if self._pg:
            text = sa.type_coerce(col.op("#>>")(sa.literal_column("'{" + ",".join(keys) + "}'")), sa.Text())
            present: sa.ColumnElement[bool] = text.is_not(None)
            if ft.kind == "int":
                return sa.cast(text, sa.BigInteger()), present
            if ft.kind == "float":
                return sa.cast(text, postgresql.DOUBLE_PRECISION()), present
            if ft.kind == "bool":
                return sa.cast(text, sa.Boolean()), present
            return text, present
        where: sa.ColumnElement[Any] = sa.literal_column("'$." + ".".join(keys) + "'")
        if self._my:
            value = sa.func.json_extract(col, where)
            present = sa.func.coalesce(sa.func.json_type(value), sa.literal_column("'NULL'")) != sa.literal_column(
                "'NULL'"
            )
            text = sa.type_coerce(sa.func.json_unquote(value), sa.Text())
            if ft.kind == "int":
                return sa.cast(text, sa.BigInteger()), present
            if ft.kind == "float":
                return sa.type_coerce(text + sa.literal_column("0e0"), sa.Float()), present
            if ft.kind == "bool":
                return sa.type_coerce(text == sa.literal_column("'true'"), sa.Boolean()), present
            return text, present
        types: dict[str, Any] = {"int": sa.BigInteger(), "float": sa.Float(), "bool": sa.Boolean(), "str": sa.Text()}
        extracted: sa.ColumnElement[Any] = sa.type_coerce(sa.func.json_extract(col, where), types[ft.kind])
        return extracted, extracted.is_not(None)

    def _text(self, col: sa.ColumnElement[Any], ordering: bool) -> sa.ColumnElement[Any]:
        if self._my:
            nopad = "utf8mb4_nopad_bin" if getattr(self.dialect, "is_mariadb", False) else "utf8mb4_0900_bin"
            return col.collate(nopad)
        if self._pg and ordering:
            return col.collate("C")
        return col

    def clause(self, c: Condition) -> sa.ColumnElement[bool]:
        if isinstance(c, And):
            return sa.and_(*(self.clause(x) for x in c.items))
        if isinstance(c, Or):
            return sa.or_(*(self.clause(x) for x in c.items))
        if isinstance(c, Not):
            return sa.not_(self.clause(c.item))
        if isinstance(c, Compare) and c.op == "ne":
            return sa.not_(self.clause(Compare(c.path, "eq", c.value)))  # absent: != holds, as in Python
        col, ft = self._column(c.path)  # type: ignore[attr-defined]
        if len(c.path.parts) > 1:  # type: ignore[attr-defined]
            value, present = self._nested(c.path, ft, col)  # type: ignore[attr-defined]
            if isinstance(c, Exists):
                return present if c.present else sa.not_(present)
            return sa.and_(present, self._atom(c, value, ft))
        if isinstance(c, Exists):
            return col.is_not(None) if c.present else col.is_(None)
        atom = self._atom(c, col, ft)
        nullable = ft.optional or ft.kind in ("seq", "other")
        return sa.and_(col.is_not(None), atom) if nullable else atom

    def _scalar(self, col: sa.ColumnElement[Any], ft: FieldType, ordering: bool) -> sa.ColumnElement[Any]:
        return self._text(col, ordering) if ft.kind == "str" else col

    def _eq(self, col: sa.ColumnElement[Any], ft: FieldType, value: Any) -> sa.ColumnElement[bool]:
        # Imported here: the SQL store's package imports this module.
        from tierstore.stores.sql.rows import native_encoder
        from tierstore.stores.sql.tables import NATIVE_KINDS, column_kind

        native = column_kind(ft.type)[0] if ft.kind == "other" else None
        if native in NATIVE_KINDS:  # a native column (timestamptz, uuid, …): the value as the row codec binds it
            try:
                bound = native_encoder(native, self.dialect.name)(msgspec.convert(value, ft.type))
            except (ValueError, TypeError, msgspec.ValidationError) as exc:
                raise ValidationError(f"{value!r}: {exc}", entity=self.schema.name) from None
            return col == self._bind(bound, col.type)
        v = normalize(value)
        if ft.kind in ("seq", "other"):
            text = _json.encode(v).decode()
            if self._pg:
                return col == sa.cast(self._bind(text, sa.Text()), postgresql.JSONB)
            if self._my:
                w = self._bind(text, sa.Text())
                return sa.and_(sa.func.json_contains(col, w) == 1, sa.func.json_contains(w, col) == 1)
            return col == self._bind(text, sa.Text())
        return self._scalar(col, ft, False) == self._bind(v, col.type)

    def _atom(self, c: Condition, col: sa.ColumnElement[Any], ft: FieldType) -> sa.ColumnElement[bool]:
        if isinstance(c, Compare):
            if c.op == "eq":
                return self._eq(col, ft, c.value)
            left = self._scalar(col, ft, True)
            w = self._bind(normalize(c.value), col.type)
            if c.op == "lt":
                return left < w
            if c.op == "le":
                return left <= w
            if c.op == "gt":
                return left > w
            return left >= w
        if isinstance(c, Between):
            left = self._scalar(col, ft, True)
            return sa.and_(left >= self._bind(normalize(c.low), col.type),
                           left <= self._bind(normalize(c.high), col.type))
        if isinstance(c, BeginsWith):
            left = self._scalar(col, ft, True)
            prefix = normalize(c.prefix)
            high = successor(prefix)
            low_clause = left >= self._bind(prefix, col.type)
            return low_clause if high is None else sa.and_(low_clause, left < self._bind(high, col.type))
        if isinstance(c, In):
            if ft.kind in ("seq", "other"):
                return sa.or_(*(self._eq(col, ft, o) for o in c.options))
            left = self._scalar(col, ft, False)
            return left.in_([self._bind(normalize(o), col.type) for o in c.options])
        if isinstance(c, Contains):
            v = normalize(c.value)
            if ft.kind == "str":
                w = self._bind(v, sa.Text())
                if self._pg:
                    return sa.func.strpos(col, w) > 0
                if self._my:
                    return sa.func.locate(sa.cast(w, mysql.BINARY()), sa.cast(col, mysql.BINARY())) > 0
                return sa.func.instr(col, w) > 0
            if self._pg:
                return col.op("@>")(sa.cast(self._bind(_json.encode([v]).decode(), sa.Text()), postgresql.JSONB))
            if self._my:
                return sa.func.json_contains(col, self._bind(_json.encode(v).decode(), sa.Text())) == 1
            each = sa.func.json_each(col).table_valued("value")
            if isinstance(v, bytes):
                v = _json.encode(v).decode()[1:-1]  # stored as base64 text inside the JSON array
            return sa.exists(sa.select(sa.literal(1)).select_from(each).where(each.c.value == self._bind(v)))
        raise TypeError(f"unknown condition {c!r}")  # pragma: no cover


def statement_key(condition: Condition) -> tuple[Any, ...]:
    """What decides the compiled text of ``condition``: its shape, and for each ``begins_with`` whether the prefix
    has a successor (a prefix of only U+10FFFF or 0xFF has none: the range has no upper bound)."""
    unbounded: list[bool] = []

    def walk(c: Condition) -> None:
        if isinstance(c, And | Or):
            for x in c.items:
                walk(x)
        elif isinstance(c, Not):
            walk(c.item)
        elif isinstance(c, BeginsWith):
            unbounded.append(successor(normalize(c.prefix)) is None)

    walk(condition)
    return (condition.shape(), tuple(unbounded))


def compile_where(
    schema: Schema[Any], table: sa.Table, dialect: Dialect, condition: Condition
) -> tuple[sa.ColumnElement[bool], dict[str, Any]]:
    """The clause of a checked ``condition`` and the values of its bind parameters."""
    w = SqlWhere(schema, table, dialect)
    return w.clause(condition), w.values
