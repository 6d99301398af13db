"""Rows of one table on one dialect: an entity becomes a list of column values, checked against the SQL limits
before any I/O, and a fetched row becomes an entity through a decoder built once per table.

Encoding keeps msgspec's work to the fields that need it: scalars pass as they are, other types become
msgspec JSON text. The checks are the limits each database would otherwise reject mid-statement (or, for
SQLite, silently bend): ``str``/``bytes`` keys and index fields up to :data:`KEY_LENGTH`, integers within
64 bits, NaN only where it survives a round trip, no NUL characters on PostgreSQL.

Decoding calls the entity's constructor positionally with the row when no column needs converting (a
primary-key read decodes without a Python loop); only JSON columns, and booleans on dialects without a
native boolean, are converted. Every row is first checked by one generated expression, since a Struct's
constructor does not check types: on SQLite, which keeps whatever it is given, each column's Python type; on a
server, whose typed columns hand back one type, that no required field is NULL. A row another writer made — a
text in a column the entity reads as int, a NULL in a required field, a JSON value of another shape — does not
decode (``StoreError``, or a ``Skipped`` entry when a query tolerates it, :meth:`RowCodec.decode_page`).
"""

from __future__ import annotations

import abc
import datetime
import decimal
import inspect
import math
import operator
import uuid
from collections.abc import Callable, Sequence
from itertools import chain, starmap
from typing import Any, Generic, TypeVar

import msgspec
from sqlalchemy.engine import Dialect

from tierstore.errors import StoreError, ValidationError
from tierstore.model.schema import Key, Schema, deeper_than
from tierstore.query import Skipped
from tierstore.stores.sql.tables import KEY_LENGTH, MYSQL_DIALECTS, NATIVE_KINDS, Kind, column_kind, key_like_fields

__all__ = ["BIGINT_MAX", "BIGINT_MIN", "RowCodec", "check_no_nul", "check_sql_key", "native_decoder", "native_encoder"]

_UTC = datetime.UTC


def _utc(v: datetime.datetime) -> datetime.datetime:
    return v.replace(tzinfo=_UTC) if v.tzinfo is None else v.astimezone(_UTC)


def _text(v: Any) -> str:
    # Tolerates the JSON text (a quoted string) older versions stored these values as.
    s = str(v)
    return s[1:-1] if len(s) >= 2 and s[0] == '"' and s[-1] == '"' else s


def _uuid(v: Any) -> uuid.UUID:
    return v if type(v) is uuid.UUID else uuid.UUID(_text(v))


def _aware(v: datetime.datetime) -> datetime.datetime:
    if v.tzinfo is None:
        raise ValueError(
            f"{v!r} has no timezone: this database keeps instants (TIMESTAMPTZ / UTC DATETIME); "
            "give an aware datetime, e.g. datetime.now(UTC)"
        )
    return v.astimezone(_UTC)


def native_encoder(kind: str, dialect: str) -> Callable[[Any], Any]:
    """The value the driver gets for a ``datetime``/``date``/``UUID``/``Decimal`` field on ``dialect``.

    A ``ValueError`` means the value cannot be stored faithfully (a naive datetime on a server database)."""
    if dialect == "sqlite":  # text: exact, offset (or its absence) included
        if kind == "datetime":
            return lambda v: v.isoformat(timespec="microseconds")
        return lambda v: v.isoformat() if kind == "date" else str(v)
    if kind == "datetime":
        if dialect in MYSQL_DIALECTS:  # DATETIME has no zone: UTC wall time
            return lambda v: _aware(v).replace(tzinfo=None)
        return _aware
    if kind == "uuid" and dialect in MYSQL_DIALECTS:
        return str
    return lambda v: v


def native_decoder(kind: str, dialect: str) -> Callable[[Any], Any]:
    """The field value of a fetched ``datetime``/``date``/``UUID``/``Decimal`` column."""
    if kind == "datetime":
        if dialect == "sqlite":
            return lambda v: datetime.datetime.fromisoformat(_text(v)) if isinstance(v, str) else v
        return _utc  # a server's TIMESTAMPTZ arrives in UTC; a zone-less DATETIME holds UTC wall time
    if kind == "date":
        return lambda v: datetime.date.fromisoformat(_text(v)) if isinstance(v, str) else v
    if kind == "uuid":
        return _uuid
    return lambda v: decimal.Decimal(_text(v)) if not isinstance(v, decimal.Decimal) else v


class _Present(abc.ABC):  # noqa: B024  # a type test, not a base class: isinstance(v, _Present) is "v is not None"
    """Every value but None (``isinstance`` caches the answer per type, in C)."""

    @classmethod
    def __subclasshook__(cls, sub: type) -> bool:
        return sub is not type(None)


_NONE = type(None)
_HELD: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "float": (float, int), "bool": (bool, int),
    "bytes": (bytes, bytearray, memoryview),
}
"""The Python types a driver hands back for a column kind (JSON and native kinds: anything, checked by their
conversion)."""
_DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, TypeError, ValueError, AttributeError,
                  ArithmeticError)


def _held(kind: Kind, nullable: bool) -> tuple[type, ...]:
    types = _HELD.get(kind, (_Present,))
    return (*types, _NONE) if nullable else types


_CHECKED_AS: dict[tuple[type, ...], type] = {(str,): str, (int,): int, (float, int): float}
"""Column types msgspec can check as the generated per-row check does (``float`` takes an int too)."""


def _rows_type(held: Sequence[tuple[type, ...]]) -> Any:
    """``list[tuple[...]]`` of the columns' types for ``msgspec.convert`` to check rows with, or ``None`` when a
    column holds another kind."""
    types: list[Any] = []
    for h in held:
        base = _CHECKED_AS.get(tuple(t for t in h if t is not _NONE))
        if base is None:
            return None
        types.append(base | None if _NONE in h else base)
    return list[tuple[tuple(types)]]  # type: ignore[misc]


def _fits(held: Sequence[tuple[type, ...]]) -> Callable[[Sequence[Any]], bool]:
    """A function telling whether every column of a row holds exactly one of its ``held`` types (``type(v) is``
    tests, generated once per table: a row is checked in one expression). False may be a subclass: the caller
    then asks ``isinstance``."""
    terms: list[str] = []
    namespace: dict[str, Any] = {}
    for i, types in enumerate(held):
        nullable = _NONE in types
        exact = [t for t in types if t is not _NONE]
        if exact == [_Present]:
            if not nullable:
                terms.append(f"r[{i}] is not None")
            continue
        namespace[f"t{i}"] = exact[0] if len(exact) == 1 else tuple(exact)
        test = f"type(r[{i}]) is t{i}" if len(exact) == 1 else f"type(r[{i}]) in t{i}"
        terms.append(f"(r[{i}] is None or {test})" if nullable else test)
    source = f"def fits(r):\n    return {' and '.join(terms) or 'True'}\n"
    exec(source, namespace)  # noqa: S102 -- fixed text and column positions only
    fits: Callable[[Sequence[Any]], bool] = namespace["fits"]
    return fits


T = TypeVar("T")
P = TypeVar("P")

BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
_MARIADB_JSON_DEPTH = 31
"""Containers a MariaDB JSON value may nest (its JSON_VALID check refuses 32 nested arrays)."""


def check_no_nul(schema: Schema[Any], key: Key) -> None:
    """PostgreSQL text cannot hold NUL: a key holding one is refused before any I/O."""
    for value, name in zip(key, schema.key_fields, strict=True):
        if type(value) is str and "\x00" in value:
            raise ValidationError(
                f"{schema.name}.{name} holds a NUL character, which PostgreSQL rejects", entity=schema.name
            )


def check_sql_key(schema: Schema[Any], key: Key, *, postgres: bool) -> None:
    """The SQL limits on a validated key, without a table plan: what :meth:`RowCodec.check_key` checks."""
    for value, name in zip(key, schema.key_fields, strict=True):
        if type(value) is int:
            if not BIGINT_MIN <= value <= BIGINT_MAX:
                raise ValidationError(
                    f"{schema.name}.{name} does not fit a 64-bit integer", entity=schema.name, key=key
                )
        elif len(value) > KEY_LENGTH:  # type: ignore[arg-type]
            raise ValidationError(
                f"{schema.name}.{name} is longer than {KEY_LENGTH} (the SQL key limit)", entity=schema.name
            )
    if postgres:
        check_no_nul(schema, key)


def _non_finite(value: Any) -> bool:
    """Whether a float NaN or infinity is anywhere inside ``value`` (a JSON column's value)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_non_finite(v) for v in value)
    if isinstance(value, msgspec.Struct):
        return any(_non_finite(v) for v in msgspec.structs.astuple(value))
    return False


class RowCodec(Generic[T]):
    """Entity ↔ column values for one table on one dialect, built once (the base of the statement plan)."""

    def __init__(self, schema: Schema[T], dialect: Dialect, backend: str) -> None:
        self.schema = schema
        self.dialect = dialect
        self.backend = backend
        self.name = schema.name
        self.cols = tuple(f.name for f in schema.fields)
        pos = self.position = {c: i for i, c in enumerate(self.cols)}
        self.key_idx = tuple(pos[f] for f in schema.key_fields)
        self.version_idx = pos[schema.version] if schema.version else None
        kinds = [column_kind(f.type) for f in schema.fields]
        keyish = key_like_fields(schema)
        self._len_checked = tuple(
            (i, c) for i, c in enumerate(self.cols) if c in keyish and kinds[i][0] in ("str", "bytes")
        )
        self._key_len_checked = tuple(
            i for i, f in enumerate(schema.key_fields) if schema.key_types[i] in (str, bytes)
        )
        self._key_ints = tuple(i for i, tp in enumerate(schema.key_types) if tp is int)
        self._key_strs = tuple(i for i, tp in enumerate(schema.key_types) if tp is str)
        self._key_all_text = len(self._key_strs) == len(schema.key_types)
        self._ints = tuple(i for i, (k, _) in enumerate(kinds) if k == "int")
        # PostgreSQL stores NaN and infinities; SQLite reads NaN back as NULL; MySQL rejects both.
        nan_ok = dialect.name == "postgresql"
        self._floats = () if nan_ok else tuple(i for i, (k, _) in enumerate(kinds) if k == "float")
        self._inf_ok = dialect.name not in MYSQL_DIALECTS
        self._pg = dialect.name == "postgresql"
        self._json_depth = dialect.name in MYSQL_DIALECTS
        self._pg_strs = tuple(i for i, (k, _) in enumerate(kinds) if k == "str") if self._pg else ()
        json_encode = msgspec.json.Encoder().encode
        self._json = tuple(i for i, (k, _) in enumerate(kinds) if k == "json")
        self._natives = tuple(
            (i, native_encoder(k, dialect.name)) for i, (k, _) in enumerate(kinds) if k in NATIVE_KINDS
        )
        self._json_encode = json_encode
        self.decode: Callable[[Sequence[Any]], T] = self._make_decoder(kinds)
        self._key_of_row = operator.itemgetter(*self.key_idx)
        self._projections: dict[tuple[Any, ...], tuple[tuple[str, ...], Callable[[Sequence[Any]], Any]]] = {}

    def _make_decoder(self, kinds: list[tuple[Kind, bool]]) -> Callable[[Sequence[Any]], T]:
        cls = self.schema.cls
        native_bool = self.dialect.name == "postgresql"
        convs: list[tuple[int, Callable[[Any], Any]]] = []
        for i, (f, (kind, _)) in enumerate(zip(self.schema.fields, kinds, strict=True)):
            if kind == "json":
                convs.append((i, msgspec.json.Decoder(f.type).decode))
            elif kind == "bool" and not native_bool:
                convs.append((i, bool))
            elif kind in NATIVE_KINDS:
                convs.append((i, native_decoder(kind, self.dialect.name)))
        self._convs = dict(convs)
        params = inspect.signature(cls).parameters.values()
        positional = all(p.kind is not inspect.Parameter.KEYWORD_ONLY for p in params)
        names = self.cols
        # A server's typed column hands back one Python type (verify checks the column's type family): only a
        # NULL in a required field is checked there. SQLite keeps whatever it is given: every type is checked.
        typed = self.dialect.name != "sqlite"
        held = self._held = tuple(
            _held("json" if typed else kind, nullable) for kind, nullable in kinds
        )
        fits, mismatch = _fits(held), self._mismatch
        stored = self.schema.stored_names
        self._rows_type = _rows_type(held) if not convs and positional else None
        if not convs and positional:
            def decode_plain(row: Sequence[Any]) -> T:
                if not fits(row) and (why := mismatch(row)):
                    raise ValueError(why)
                return cls(*row)
            return decode_plain
        if positional:
            def decode(row: Sequence[Any]) -> T:
                if not fits(row) and (why := mismatch(row)):
                    raise ValueError(why)
                vals = list(row)
                for i, conv in convs:
                    v = vals[i]
                    if v is not None:
                        try:
                            vals[i] = conv(v)
                        except _DECODE_ERRORS as exc:
                            raise ValueError(f"column {stored[names[i]]}: {exc}") from None
                return cls(*vals)
            return decode

        def decode_kw(row: Sequence[Any]) -> T:
            if not fits(row) and (why := mismatch(row)):
                raise ValueError(why)
            vals = list(row)
            for i, conv in convs:
                v = vals[i]
                if v is not None:
                    try:
                        vals[i] = conv(v)
                    except _DECODE_ERRORS as exc:
                        raise ValueError(f"column {stored[names[i]]}: {exc}") from None
            return cls(**dict(zip(names, vals, strict=True)))
        return decode_kw

    def projected(
        self, names: tuple[str, ...], cls: type[P], order: Sequence[str]
    ) -> tuple[tuple[str, ...], Callable[[Sequence[Any]], P]]:
        """The columns a projection onto ``cls`` (fields ``names``) selects — its fields, then the key and
        ``order`` columns it lacks (for the cursor and for naming a row that does not decode) — and the decoder
        of such a row into ``cls``. Only the selected columns are checked and converted."""
        hit = self._projections.get((cls, names, tuple(order)))
        if hit is not None:
            return hit
        extra = [c for c in (*order, *self.schema.key_fields) if c not in names]
        cols = (*names, *dict.fromkeys(extra))
        pos = self.position
        stored = self.schema.stored_names
        plan = tuple((i, n, self._held[pos[n]], self._convs.get(pos[n])) for i, n in enumerate(names))
        entity = self.name
        make: Callable[..., P] = cls

        def decode(row: Sequence[Any]) -> P:
            kw: dict[str, Any] = {}
            for i, n, held, conv in plan:
                v = row[i]
                if not isinstance(v, held):
                    if v is None:
                        raise ValueError(f"column {stored[n]} is NULL, and {entity}.{n} cannot be None")
                    raise ValueError(f"column {stored[n]} holds a {type(v).__name__}, which {entity}.{n} cannot hold")
                if conv is not None and v is not None:
                    try:
                        v = conv(v)
                    except _DECODE_ERRORS as exc:
                        raise ValueError(f"column {stored[n]}: {exc}") from None
                kw[n] = v
            return make(**kw)

        done = (cols, decode)
        if len(self._projections) < 64:
            self._projections[(cls, names, tuple(order))] = done
        return done

    def _mismatch(self, row: Sequence[Any]) -> str:
        """Why ``row`` does not fit the entity: its first column whose value the field cannot hold; empty if
        every column fits (a subclass of the expected type, which the fast exact check missed)."""
        stored = self.schema.stored_names
        for name, value, types in zip(self.cols, row, self._held, strict=True):
            if not isinstance(value, types):
                if value is None:
                    return f"column {stored[name]} is NULL, and {self.name}.{name} cannot be None"
                text = repr(value)
                text = text if len(text) <= 40 else text[:37] + "..."
                return (f"column {stored[name]} holds {text} ({type(value).__name__}), which {self.name}.{name} "
                        f"({' or '.join(t.__name__ for t in types if t is not _NONE)}) cannot hold")
        return ""

    def decode_row(self, row: Sequence[Any], key: Any = None) -> T:
        """The entity of a fetched row; ``StoreError`` naming the row's key when it does not decode."""
        try:
            return self.decode(row)
        except _DECODE_ERRORS as exc:
            raise StoreError(
                f"a stored row of {self.name} does not decode: {exc}", entity=self.name,
                key=key if key is not None else self._row_key(row), backend=self.backend,
            ) from None

    def _row_key(self, row: Sequence[Any]) -> Key | None:
        try:
            return self.key_of_row(row)
        except (IndexError, TypeError):
            return None

    def decode_page(self, rows: Sequence[Sequence[Any]]) -> tuple[list[T], list[Skipped]]:
        """The entities of ``rows``, leaving out the rows that do not decode, each listed as a ``Skipped``
        (its primary-key columns, by column name, and the reason): a tolerant query's page."""
        decode = self.decode
        items: list[T] = []
        skipped: list[Skipped] = []
        stored = self.schema.stored_names
        for row in rows:
            try:
                items.append(decode(row))
            except _DECODE_ERRORS as exc:
                key = {stored[self.cols[i]]: row[i] for i in self.key_idx}
                skipped.append(Skipped(key, f"a stored row of {self.name} does not decode: {exc}"))
        return items, skipped

    def key_of_row(self, row: Sequence[Any]) -> Key:
        k = self._key_of_row(row)
        return k if len(self.key_idx) > 1 else (k,)

    def decode_by_key(self, rows: Sequence[Sequence[Any]]) -> dict[Key, T]:
        """The entities of ``rows`` by primary key (:meth:`decode_all`); ``StoreError`` as :meth:`decode_row`."""
        items = self.decode_all(rows)
        keys = map(self._key_of_row, rows)
        return dict(zip(keys if len(self.key_idx) > 1 else zip(keys), items, strict=True))

    def decode_all(self, rows: Sequence[Sequence[Any]]) -> list[T]:
        """The entities of ``rows`` in order; ``StoreError`` as :meth:`decode_row`.

        Where every column holds str, int or float (and NULL where the field may be None) and the row needs no
        conversion, msgspec checks the types of all rows in one call (what the generated per-row check tests,
        in C) and the constructor takes each row as it is; otherwise, or when msgspec declines a row (a subclass
        the per-row check may still accept), the per-row decoder runs over a C-level map."""
        rows_type = self._rows_type
        if rows_type is not None and type(rows) is list:
            try:
                msgspec.convert(rows, rows_type)
            except msgspec.ValidationError:
                pass
            else:
                return list(starmap(self.schema.cls, rows))
        try:
            return list(map(self.decode, rows))
        except _DECODE_ERRORS:
            return [self.decode_row(row) for row in rows]  # the same decoder fails again, naming the row

    def check_keys(self, keys: Sequence[Key]) -> None:
        """:meth:`check_key` on each of ``keys``. A batch is first checked a column at a time (the longest text,
        the extreme integers, NUL in any text): when that passes, every key does; else one key at a time decides
        (and names the first that fails)."""
        if len(keys) >= 8 and self._key_all_text:  # text keys only: every part in one pass
            try:
                parts: list[Any] = list(chain.from_iterable(keys))
                if max(map(len, parts)) <= KEY_LENGTH and not (self._pg and "\x00" in "".join(parts)):
                    return
            except TypeError:
                pass
        elif len(keys) >= 8:
            try:
                columns = list(zip(*keys, strict=True))
                if (
                    all(max(map(len, columns[i])) <= KEY_LENGTH for i in self._key_len_checked)
                    and all(min(columns[i]) >= BIGINT_MIN and max(columns[i]) <= BIGINT_MAX for i in self._key_ints)
                    and not (self._pg and any("\x00" in "".join(columns[i]) for i in self._key_strs))
                ):
                    return
            except (TypeError, ValueError):
                pass
        for k in keys:
            self.check_key(k)

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
        if self._pg:
            check_no_nul(self.schema, key)

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
        for i, native in self._natives:
            v = vals[i]
            if v is not None:
                try:
                    vals[i] = native(v)
                except (ValueError, TypeError, AttributeError) as exc:
                    raise self._invalid(item, f"{self.cols[i]}: {exc}") from None
        enc = self._json_encode
        for i in self._json:
            v = vals[i]
            if v is not None:
                try:
                    raw = enc(v)
                except (TypeError, ValueError, OverflowError) as exc:
                    raise self._invalid(item, f"{self.cols[i]}: {exc}") from None
                if b"null" in raw and _non_finite(v):
                    # JSON has no NaN or infinity: msgspec writes null, which would not read back.
                    raise self._invalid(
                        item, f"{self.cols[i]} holds NaN or an infinity, which a JSON column cannot hold"
                    )
                if self._json_depth and raw.count(b"[") + raw.count(b"{") > _MARIADB_JSON_DEPTH and deeper_than(
                    v, _MARIADB_JSON_DEPTH
                ):
                    raise self._invalid(
                        item, f"{self.cols[i]} nests more than {_MARIADB_JSON_DEPTH} levels, which a MariaDB JSON "
                        f"column cannot hold",
                    )
                if self._pg and b"\\u0000" in raw:
                    raise self._invalid(item, f"{self.cols[i]} holds a NUL character, which JSONB rejects")
                vals[i] = raw.decode()
        return vals

    def _invalid(self, item: T, why: str) -> ValidationError:
        return ValidationError(f"invalid {self.name}: {why}", entity=self.name, key=self.schema.key_of(item))

    def with_version(self, item: T, version: int) -> T:
        return msgspec.structs.replace(item, **{self.schema.version: version})  # type: ignore[arg-type,type-var]
