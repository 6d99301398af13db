"""A store of record over one SQLite key-value table (stdlib ``sqlite3``): the smallest complete ``Store``.

Every entity's items live in one table ``items (tbl, k, pk, v)``: the entity's table name, its key and its
partition as msgpack, the item as msgpack. Reads and writes go by primary key ``(tbl, k)``; a query reads one
partition (through the index on ``(tbl, pk)``) and filters, sorts and pages it in Python with tierstore's own
helpers, which is fine for partitions of modest size; a query on an index partitioned unlike the table reads
the entity's whole table. The SQL is constant: table names never become part of a statement.

``sqlite3`` calls block, but they are short local file operations, so they run in the event loop; nothing
awaits in between, so each method is atomic with respect to the others. A store over a network database
awaits its async client instead and keeps each write's condition and version bump in one statement.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from tierstore.backends import (
    Key,
    Page,
    Put,
    Query,
    Schema,
    StoreStats,
    WriteOp,
    decode_cursor,
    encode_cursor,
    schema_of,
    sort_matches,
)
from tierstore.errors import ConditionFailed, ConfigError, StoreError, TransactionCanceled

__all__ = ["KvStore", "KvStoreConfig"]

T = TypeVar("T")
_pack = msgspec.msgpack.encode
CREATE = (
    "CREATE TABLE IF NOT EXISTS items (tbl TEXT, k BLOB, pk BLOB, v BLOB, PRIMARY KEY (tbl, k))",
    "CREATE INDEX IF NOT EXISTS items_partition ON items (tbl, pk)",
)
GET = "SELECT v FROM items WHERE tbl = ? AND k = ?"
PUT = "INSERT OR REPLACE INTO items (tbl, k, pk, v) VALUES (?, ?, ?, ?)"
DELETE = "DELETE FROM items WHERE tbl = ? AND k = ?"
PARTITION = "SELECT v FROM items WHERE tbl = ? AND pk = ?"
TABLE = "SELECT v FROM items WHERE tbl = ?"
TRUNCATE = "DELETE FROM items WHERE tbl = ?"


class KvStore:
    """Implements ``Store`` and ``Scannable``; build it from :class:`KvStoreConfig` (``kv:///path.db``)."""

    name = "kv"

    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        self.stats = StoreStats()
        self._db: sqlite3.Connection | None = None
        self._closed = False

    # -- plumbing: every sqlite3 error becomes a StoreError; callers never see another exception ----------

    @contextmanager
    def _sql(self, schema: Schema[Any] | None = None, key: Any = None) -> Iterator[sqlite3.Connection]:
        if self._db is None:
            raise StoreError("the kv store is not open" if not self._closed else "the kv store is closed",
                             backend=self.name)
        self.stats.round_trips += 1
        try:
            with self._db:  # one transaction: committed on success, rolled back on an exception
                yield self._db
        except sqlite3.Error as exc:
            self.stats.errors += 1
            raise StoreError(f"sqlite failed: {exc}", entity=None if schema is None else schema.name, key=key,
                             backend=self.name) from exc

    def _read(self, db: sqlite3.Connection, schema: Schema[T], key: Key) -> T | None:
        row = db.execute(GET, (schema.table, _pack(key))).fetchone()
        return None if row is None else schema.decoder.decode(row[0])

    def _write(self, db: sqlite3.Connection, schema: Schema[T], item: T) -> None:
        key = schema.key_of(item)
        db.execute(PUT, (schema.table, _pack(key), _pack(schema.partition_of(key)), schema.encoder.encode(item)))
        self.stats.writes += 1

    def _check(self, schema: Schema[Any], key: Key, found: Any, if_not_exists: bool, expect: int | None) -> None:
        """Raise ``ConditionFailed`` unless the write's condition holds against ``found`` (the stored item)."""
        if if_not_exists and found is not None:
            raise ConditionFailed("item exists", entity=schema.name, key=key, backend=self.name)
        if expect is not None and (0 if found is None else schema.version_of(found)) != expect:
            now = "no item" if found is None else schema.version_of(found)
            raise ConditionFailed(f"expected version {expect}, found {now}", entity=schema.name, key=key,
                                  backend=self.name)

    def _next_version(self, schema: Schema[T], item: T, found: T | None) -> T:
        """``item`` with its version field set to the stored version + 1 (1 for a new item)."""
        if not schema.version:
            return item
        version = 0 if found is None else schema.version_of(found)
        return msgspec.structs.replace(item, **{schema.version: version + 1})  # type: ignore[type-var]

    # -- lifecycle -------------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._closed:
            raise StoreError("the kv store is closed", backend=self.name)
        if self._db is None:
            try:
                self._db = sqlite3.connect(self.path)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open {self.path}: {exc}", backend=self.name) from exc
            with self._sql() as db:
                for statement in CREATE:
                    db.execute(statement)

    async def aclose(self) -> None:
        self._closed = True
        if self._db is not None:
            self._db.close()
            self._db = None

    async def ensure_schema(self, schema: Schema[Any]) -> None:
        """Nothing to create per entity (``open`` made the table they share); fails if the store is not open."""
        with self._sql(schema):
            pass

    async def truncate(self, schema: Schema[Any]) -> None:
        with self._sql(schema) as db:
            db.execute(TRUNCATE, (schema.table,))

    # -- reads ---------------------------------------------------------------------------------------

    async def get(self, schema: Schema[T], key: Key, *, consistent: bool = False) -> T | None:
        self.stats.reads += 1
        with self._sql(schema, key) as db:
            return self._read(db, schema, key)

    async def get_many(self, schema: Schema[T], keys: Sequence[Key], *, consistent: bool = False) -> list[T | None]:
        self.stats.reads += len(keys)
        with self._sql(schema) as db:  # one lookup per key, in one transaction: microseconds each in SQLite
            return [self._read(db, schema, k) for k in keys]  # in request order

    async def query(self, schema: Schema[T], query: Query) -> Page[T]:
        # The cursor holds the position of the last item of the page before (sort key, then primary key),
        # bound to this query: a foreign or damaged one is a ValidationError, raised before any I/O.
        after = None if query.cursor is None else tuple(decode_cursor(query, query.cursor))
        self.stats.queries += 1
        with self._sql(schema) as db:
            if query.index is None:
                fields, sort_fields = schema.partition, schema.sort
                rows = db.execute(PARTITION, (schema.table, _pack(query.partition)))
            else:
                index = schema.indexes[query.index]
                fields, sort_fields = index.partition_fields, index.sort_fields
                rows = db.execute(TABLE, (schema.table,))
            items = [schema.decoder.decode(v) for (v,) in rows]
        placed: list[tuple[tuple[Any, ...], T]] = []
        for item in items:
            if tuple(getattr(item, f) for f in fields) != query.partition:
                continue
            sort = tuple(getattr(item, f) for f in sort_fields)
            if None in sort:  # an optional index field: an item without the value is not in the index
                continue
            if query.sort is None or sort_matches(query.sort, sort[0]):
                placed.append((sort + schema.key_of(item), item))
        placed.sort(key=lambda p: p[0], reverse=query.reverse)  # ties on the sort key: by primary key
        if after is not None:
            placed = [p for p in placed if (p[0] < after if query.reverse else p[0] > after)]
        if query.limit is not None and len(placed) > query.limit:
            placed = placed[: query.limit]
            return Page([item for _, item in placed], encode_cursor(query, placed[-1][0]))
        return Page([item for _, item in placed], None)

    async def scan(self, schema: Schema[T], *, after: Key | None = None, limit: int = 1000) -> list[T]:
        """``Scannable``: up to ``limit`` items in key order, after the key ``after`` (resharding)."""
        with self._sql(schema) as db:
            items = [schema.decoder.decode(v) for (v,) in db.execute(TABLE, (schema.table,))]
        items.sort(key=schema.key_of)
        return [i for i in items if after is None or schema.key_of(i) > after][:limit]

    # -- writes --------------------------------------------------------------------------------------

    async def put(
        self, schema: Schema[T], item: T, *, if_not_exists: bool = False, expect_version: int | None = None
    ) -> T:
        key = schema.key_of(item)
        with self._sql(schema, key) as db:
            found = self._read(db, schema, key)
            self._check(schema, key, found, if_not_exists, expect_version)
            stored = self._next_version(schema, item, found)
            self._write(db, schema, stored)
        return stored

    async def put_many(self, schema: Schema[T], items: Sequence[T]) -> list[T]:
        out = []
        with self._sql(schema) as db:
            for item in items:
                stored = self._next_version(schema, item, self._read(db, schema, schema.key_of(item)))
                self._write(db, schema, stored)
                out.append(stored)
        return out

    async def restore_many(self, schema: Schema[T], items: Sequence[T]) -> None:
        """``Scannable``: write ``items`` exactly as given, version fields kept."""
        with self._sql(schema) as db:
            for item in items:
                self._write(db, schema, item)

    async def delete(self, schema: Schema[Any], key: Key, *, expect_version: int | None = None) -> bool:
        with self._sql(schema, key) as db:
            found = self._read(db, schema, key)
            self._check(schema, key, found, False, expect_version)
            db.execute(DELETE, (schema.table, _pack(key)))
        self.stats.writes += 1
        return found is not None

    async def delete_many(self, schema: Schema[Any], keys: Sequence[Key]) -> None:
        with self._sql(schema) as db:
            db.executemany(DELETE, [(schema.table, _pack(k)) for k in keys])
        self.stats.writes += len(keys)

    async def transact(self, ops: Sequence[WriteOp]) -> list[Any]:
        """All or nothing in one SQLite transaction; a failed condition cancels it with a reason per op."""
        out: list[Any] = []
        reasons: list[str | None] = []
        with self._sql() as db:
            for op in ops:
                if isinstance(op, Put):
                    schema = schema_of(type(op.item))
                    key, if_not_exists = schema.key_of(op.item), op.if_not_exists
                else:
                    schema, key, if_not_exists = schema_of(op.entity), op.key, False
                found = self._read(db, schema, key)
                try:
                    self._check(schema, key, found, if_not_exists, op.expect_version)
                except ConditionFailed as exc:
                    reasons.append(exc.message)
                    continue
                reasons.append(None)
                if isinstance(op, Put):
                    out.append(self._next_version(schema, op.item, found))
                    self._write(db, schema, out[-1])
                else:
                    db.execute(DELETE, (schema.table, _pack(key)))
                    out.append(None)
            if any(r is not None for r in reasons):
                # Raising inside the transaction rolls back what the ops before the failed one wrote.
                raise TransactionCanceled("transaction canceled", reasons=reasons, backend=self.name)
        return out


@dataclass(frozen=True, slots=True)
class KvStoreConfig:
    """``kv:///path/to/file.db`` (``kv://`` alone: an in-memory database)."""

    path: str = ":memory:"

    @classmethod
    def from_url(cls, url: str) -> KvStoreConfig:
        from tierstore.backends import query_params

        scheme, _, rest = url.partition("://")
        if scheme.lower() != "kv":
            raise ConfigError(f"not a kv:// URL: {url!r}")
        query_params(url, set())  # no parameters: an unknown one is a ConfigError, never ignored
        return cls(path=rest.split("?", 1)[0] or ":memory:")

    def build(self) -> KvStore:
        return KvStore(self.path)
