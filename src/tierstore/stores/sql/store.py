"""``SqlStore``: the store of record on SQLite, PostgreSQL and MariaDB/MySQL.

It keeps one :class:`~tierstore.stores.sql.statements.Plan` per entity, checks keys and items before any
I/O, and hands statements to the driver of its backend (:mod:`tierstore.stores.sql.drivers`).

Semantics shared with every store:

- ``put`` stores ``version = stored version + 1`` (1 for a new item) in one atomic statement: an upsert that
  returns the new version (``RETURNING`` on PostgreSQL/SQLite, ``LAST_INSERT_ID(version + 1)`` on MySQL).
- ``expect_version`` is a single ``UPDATE … WHERE key AND version = expected``; ``if_not_exists`` an
  ``INSERT … ON CONFLICT DO NOTHING`` (MySQL: a plain ``INSERT`` whose duplicate-key error is the answer).
- ``query`` pages by keyset (``WHERE (sort, key) > cursor ORDER BY sort, key LIMIT n + 1``), never OFFSET.
- ``query(..., undecodable="skip")`` leaves out the rows that do not decode as the entity (another writer's:
  a JSON value of the wrong shape, a text where the entity reads an int, a NULL in a required field), lists
  them in ``Page.skipped`` (primary-key columns and reason) and counts them in ``stats.skipped``; by default
  such a row fails the page with ``StoreError``. ``get``/``get_many`` of such a row raise ``StoreError`` naming
  its key (tolerance is a query's: a read by key asked for that item).
- ``transact`` runs the ops in one database transaction, in key order (fewer deadlocks), and reports a
  reason per op when a condition fails (nothing is written).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any, TypeVar
from urllib.parse import urlsplit

import sqlalchemy as sa

from tierstore.config import redact_url
from tierstore.errors import Mismatch, StoreError, ValidationError
from tierstore.expressions.ast import Condition
from tierstore.expressions.update import Changes
from tierstore.model.entity import Entity
from tierstore.model.schema import Key, Schema, schema_of
from tierstore.query import Page, Query, Skipped, decode_cursor, encode_cursor
from tierstore.stats import StoreStats
from tierstore.stores.base import Check, Delete, Put, Update, WriteOp
from tierstore.stores.sql.config import SqlStoreConfig, split_query
from tierstore.stores.sql.drivers.base import EXEC, Driver, Operation
from tierstore.stores.sql.drivers.mysql import MysqlDriver
from tierstore.stores.sql.drivers.postgres import PostgresDriver
from tierstore.stores.sql.drivers.sqlite import SqliteDriver
from tierstore.stores.sql.many import many_batches, window_functions
from tierstore.stores.sql.operations import (
    MAX_PARAMS,
    key_batches,
    op_delete,
    op_delete_when,
    op_put,
    op_put_many,
    op_put_when,
    op_single,
    op_statements,
    op_transact,
    op_update,
)
from tierstore.stores.sql.rows import check_sql_key
from tierstore.stores.sql.statements import Plan, successor
from tierstore.stores.sql.tables import KEY_LENGTH, check_mysql_key_size, table_for
from tierstore.stores.sql.verify import check_table

__all__ = ["SqlStore"]

T = TypeVar("T")
P = TypeVar("P")
_ROW_ERRORS = (ValueError, TypeError)

_DRIVER_SCHEME = {"postgres": "postgresql+asyncpg", "mysql": "mysql+aiomysql"}
_IN_LOOP_ROWS = 128  # SQLite: reads of at most this many rows by key run in the event loop's thread


class SqlStore:
    """The SQL store of record. Build it from a URL via ``tierstore.connect(store=…)`` or
    ``SqlStoreConfig.from_url(url).build()``; ``await open()`` before use (``connect()`` does)."""

    expressions = True  # honours Query.where, when= on put/delete, and update()


    def __init__(self, config: SqlStoreConfig | str) -> None:
        if isinstance(config, str):
            config = SqlStoreConfig.from_url(config)
        self.config = config
        self.name = config.backend
        self.embedded = config.backend == "sqlite"
        """A SQLite file is the application's own (schema mode ``create`` by default); a server is not."""
        self.stats = StoreStats()
        self.metadata = sa.MetaData(schema=config.pg_schema)
        self.page_size = config.page_size
        self._plans: dict[Schema[Any], Plan[Any]] = {}
        self._created: set[str] = set()
        self._driver = self._make_driver(config)
        self._driver.stats = self.stats
        self._opened = False
        self._closed = False
        self._windows: bool | None = None  # the database has window functions (known once connected)

    def __repr__(self) -> str:
        return f"SqlStore({self.name}, {redact_url(self.config.url)!r})"

    def check_key(self, schema: Schema[Any], key: Key) -> None:
        """The SQL limits on a key (text and bytes up to 255, integers within 64 bits, no NUL in PostgreSQL
        text), checked before any I/O — before the tiers are read (see ``KeyRules``). It runs on every cached
        read too, so the common key — one or two short texts, no NUL — is let through in one expression (about a
        fifth of the general check's cost); anything else takes the general check, which explains."""
        if len(key) == 2:
            a, b = key
            if (
                type(a) is str and type(b) is str and len(a) <= KEY_LENGTH and len(b) <= KEY_LENGTH
                and "\x00" not in a and "\x00" not in b
            ):
                return
        elif len(key) == 1:
            (a,) = key
            if type(a) is str and len(a) <= KEY_LENGTH and "\x00" not in a:
                return
        check_sql_key(schema, key, postgres=self.name == "postgres")

    @staticmethod
    def _make_driver(config: SqlStoreConfig) -> Driver:
        backend = config.backend
        redacted = redact_url(config.url)
        if backend == "sqlite":
            base, _ = split_query(config.url)
            database = sa.make_url(base).database
            path = None if database in (None, "", ":memory:") else database
            return SqliteDriver(
                path, redacted, threads=config.pool_size, busy_timeout=config.busy_timeout,
                synchronous=config.synchronous,
            )
        parts = urlsplit(config.url)
        url = _DRIVER_SCHEME[backend] + "://" + config.url.split("://", 1)[1]
        connect_args: dict[str, Any] = {}
        if backend == "postgres":
            if config.connect_timeout is not None:
                connect_args["timeout"] = config.connect_timeout
            if config.command_timeout is not None:
                connect_args["command_timeout"] = config.command_timeout
        else:
            connect_args["charset"] = "utf8mb4"  # keys and text are utf8mb4 whatever the server default
            if config.connect_timeout is not None:
                connect_args["connect_timeout"] = config.connect_timeout
            return MysqlDriver(
                url, redacted, parts.password, pool_size=config.pool_size, pool_timeout=config.pool_timeout,
                pool_recycle=config.pool_recycle, engine_kw={"connect_args": connect_args},
                command_timeout=config.command_timeout,
            )
        return PostgresDriver(
            url, redacted, parts.password, pool_size=config.pool_size, pool_timeout=config.pool_timeout,
            pool_recycle=config.pool_recycle, engine_kw={"connect_args": connect_args},
        )

    # -- lifecycle -------------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._closed:
            raise StoreError(f"this {self.name} store was closed", backend=self.name)
        if not self._opened:
            await self._driver.open()
            self._opened = True

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._driver.aclose()

    async def ping(self) -> dict[str, str | None]:
        """``SELECT 1`` on a pooled connection (opening the store if needed); ``{address: None or reason}``."""
        url = sa.make_url(split_query(self.config.url)[0])
        where = self.name if self.name == "sqlite" else f"{url.host or 'localhost'}:{url.port or ''}/{url.database}"
        try:
            await self.open()
            await self._driver.fetchone("SELECT 1", ())
        except Exception as exc:
            return {where: str(exc)}
        return {where: None}

    async def _plan(self, schema: Schema[T]) -> Plan[T]:
        plan = self._plans.get(schema)
        if plan is None:
            if not self._opened:
                await self.open()
            table = table_for(schema, self.metadata, self._driver.dialect)
            plan = self._plans[schema] = Plan(schema, table, self._driver.dialect, self.name)
        return plan

    async def ensure_schema(self, schema: Schema[Any]) -> None:
        plan = await self._plan(schema)
        if schema.table in self._created:
            return
        if self.name == "mysql":
            check_mysql_key_size(schema)
        try:
            await self._driver.create(plan.table)
        except StoreError as exc:
            raise self._ctx(exc, schema) from None
        self._created.add(schema.table)

    async def verify_schema(self, schema: Schema[Any]) -> list[Mismatch]:
        """Every way the existing table differs from what ``schema`` needs (see
        :mod:`~tierstore.stores.sql.verify`). Reads the catalog; creates and alters nothing."""
        plan = await self._plan(schema)
        dialect = self._driver.dialect
        try:
            return await self._driver.catalog(lambda conn: check_table(conn, schema, plan.table, dialect))
        except StoreError as exc:
            raise self._ctx(exc, schema) from exc.__cause__

    async def create_tables(self, *entities: type[Entity]) -> None:
        """Create the tables and indexes of ``entities`` where missing."""
        for entity in entities:
            await self.ensure_schema(schema_of(entity))

    async def drop_tables(self, *entities: type[Entity]) -> None:
        """Drop the tables of ``entities`` if they exist (tests, tooling)."""
        for entity in entities:
            schema = schema_of(entity)
            plan = await self._plan(schema)
            try:
                await self._driver.drop(plan.table)
            except StoreError as exc:
                raise self._ctx(exc, schema) from exc.__cause__
            self._created.discard(schema.table)

    async def truncate(self, schema: Schema[Any]) -> None:
        plan = await self._plan(schema)
        await self._run(schema, None, op_single(EXEC, plan.truncate.text, ()), False)

    def _ctx(self, exc: StoreError, schema: Schema[Any], key: Any = None) -> StoreError:
        self.stats.errors += 1
        if exc.entity is None:
            exc.entity = schema.name
        if exc.key is None:
            exc.key = key
        return exc

    async def _run(self, schema: Schema[Any], key: Any, op: Operation[T], transaction: bool) -> T:
        try:
            return await self._driver.run(op, transaction)
        except StoreError as exc:
            raise self._ctx(exc, schema, key) from exc.__cause__

    # -- reads -----------------------------------------------------------------------------------------

    async def get(self, schema: Schema[T], key: Key, *, consistent: bool = False) -> T | None:
        plan: Plan[T] | None = self._plans.get(schema)
        if plan is None:
            plan = await self._plan(schema)
        plan.check_key(key)
        self.stats.reads += 1
        try:
            row = await self._driver.fetchone(plan.get.text, key)
        except StoreError as exc:
            raise self._ctx(exc, schema, key) from exc.__cause__
        if row is None:
            return None
        try:
            return plan.decode_row(row, key)
        except StoreError as exc:
            raise self._ctx(exc, schema, key) from None

    async def get_many(
        self, schema: Schema[T], keys: Sequence[Key], *, consistent: bool = False
    ) -> list[T | None]:
        if not keys:
            return []
        return list(map((await self.get_by_key(schema, keys)).get, keys))

    async def get_by_key(self, schema: Schema[T], keys: Sequence[Key]) -> dict[Key, T]:
        """The items of ``keys`` found, by key (see ``GetsByKey``): the rows' own key columns index them."""
        plan = self._plans.get(schema) or await self._plan(schema)
        plan.check_keys(keys)
        self.stats.reads += len(keys)
        found: dict[Key, T] = {}
        for sql, args, n in key_batches(plan, keys, plan.get_many):
            try:
                rows = await self._driver.fetchall(sql, args, bounded=n <= _IN_LOOP_ROWS)
                found.update(plan.decode_by_key(rows))
            except StoreError as exc:
                raise self._ctx(exc, schema) from exc.__cause__
        return found

    async def query(self, schema: Schema[T], query: Query) -> Page[T]:
        return await self._query(schema, query, None, ())

    async def query_projected(
        self, schema: Schema[Any], query: Query, cls: type[P], names: tuple[str, ...]
    ) -> Page[P]:
        """One page of ``query`` selecting only the columns of ``names`` plus the key columns (see
        :class:`~tierstore.stores.base.Projects`), decoded straight into ``cls``."""
        return await self._query(schema, query, cls, names)

    async def _query(
        self, schema: Schema[Any], query: Query, cls: type[Any] | None, names: tuple[str, ...]
    ) -> Page[Any]:
        plan = self._plans.get(schema) or await self._plan(schema)
        if query.index is not None and query.index not in schema.indexes:
            raise ValidationError(f"{schema.name} has no index {query.index!r}", entity=schema.name)
        self.stats.queries += 1
        named: dict[str, Any] = {f"p{i}": v for i, v in enumerate(query.partition)}
        op: str | None = None
        has_high = False
        if query.sort is not None:
            op = query.sort.op
            values = query.sort.values
            if op == "begins_with":
                prefix = values[0]
                high = successor(prefix)
                if not prefix:
                    op = None
                else:
                    named["s0"] = prefix
                    if high is not None:
                        named["s1"] = high
                        has_high = True
            else:
                named["s0"] = values[0]
                if op == "between":
                    named["s1"] = values[1]
        decode_one: Callable[[Sequence[Any]], Any] | None = None
        cols: tuple[str, ...] | None = None
        colpos = plan.position
        if cls is not None:
            cols, decode_one = plan.projected(names, cls, plan.order_for(query.index).cols)
            colpos = {c: i for i, c in enumerate(cols)}
        sql, order, where_values = plan.query(
            query.index, op, has_high, query.reverse, query.cursor is not None, query.where, cols
        )
        named.update(where_values)
        if query.cursor is not None:
            position = decode_cursor(query, query.cursor)
            types = [schema.field_types[c] for c in order.cols]
            if len(position) != len(order.cols) or not all(
                isinstance(v, t) and not isinstance(v, bool) for v, t in zip(position, types, strict=False)
            ):
                raise ValidationError("malformed cursor", entity=schema.name)
            named.update({f"c{i}": v for i, v in enumerate(position)})
        limit = query.limit if query.limit is not None else self.page_size
        named["lim"] = limit + 1
        try:
            rows = await self._driver.fetchall(sql.text, sql.args(named), bounded=limit < _IN_LOOP_ROWS)
        except StoreError as exc:
            raise self._ctx(exc, schema, query.partition) from exc.__cause__
        skipped: list[Skipped] = []
        if decode_one is not None:
            items, skipped = self._decode_projected(schema, rows[:limit], decode_one, cols or (), query)
        elif query.skip_undecodable:
            items, skipped = plan.decode_page(rows[:limit])
            self.stats.skipped += len(skipped)
        else:
            try:
                items = plan.decode_all(rows[:limit] if len(rows) > limit else rows)
            except StoreError as exc:
                raise self._ctx(exc, schema, exc.key) from None
        cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            cursor = encode_cursor(query, [last[colpos[c]] for c in order.cols])
        return Page(items, cursor, skipped)

    def _decode_projected(
        self, schema: Schema[Any], rows: Sequence[Sequence[Any]], decode: Callable[[Sequence[Any]], Any],
        cols: tuple[str, ...], query: Query,
    ) -> tuple[list[Any], list[Skipped]]:
        items: list[Any] = []
        skipped: list[Skipped] = []
        stored = schema.stored_names
        for row in rows:
            try:
                items.append(decode(row))
            except _ROW_ERRORS as exc:
                key = {stored[c]: row[cols.index(c)] for c in schema.key_fields}
                why = f"a stored row of {schema.name} does not decode: {exc}"
                if not query.skip_undecodable:
                    raise StoreError(
                        why, entity=schema.name, key=tuple(key.values()), backend=self.name
                    ) from None
                skipped.append(Skipped(key, why))
        self.stats.skipped += len(skipped)
        return items, skipped

    async def query_many(
        self, schema: Schema[T], partitions: Sequence[tuple[Any, ...]], *, index: str | None = None,
        limit: int | None = None, reverse: bool = False, concurrency: int = 16,
    ) -> list[list[T]]:
        """The items of many partitions (see ``QueryMany``): one ``SELECT … IN`` per 500 partitions, each
        partition cut to ``limit`` by ``ROW_NUMBER()`` in the database (see :mod:`~tierstore.stores.sql.many`)."""
        if not partitions:
            return []
        plan = self._plans.get(schema) or await self._plan(schema)
        if index is not None and index not in schema.indexes:
            raise ValidationError(f"{schema.name} has no index {index!r}", entity=schema.name)
        order = plan.order_for(index)
        if self._windows is None:
            self._windows = window_functions(self.name, self._driver.dialect)
        windowed = limit is not None and bool(order.cols) and self._windows
        groups: dict[tuple[Any, ...], list[T]] = {p: [] for p in partitions}
        pget = attrgetter(*order.pfields)
        single = len(order.pfields) == 1
        self.stats.queries += 1
        bounded = limit is not None and len(partitions) * limit < _IN_LOOP_ROWS
        for text, args in many_batches(plan, index, partitions, limit, windowed, reverse):
            try:
                if bounded or windowed:
                    rows = await self._driver.fetchall(text, args, bounded=bounded)
                else:  # the partitions' index ranges in key order: the rows stepped are the rows returned
                    rows = await self._driver.fetchall_indexed(text, args)
            except StoreError as exc:
                raise self._ctx(exc, schema) from exc.__cause__
            items = plan.decode_all(rows)
            values = map(pget, items)
            for got, item in zip(zip(values) if single else values, items, strict=True):
                group = groups.get(got)
                if group is not None:
                    group.append(item)
        if limit is not None and not windowed:
            return [groups[p][:limit] for p in partitions]
        return [groups[p] for p in partitions]

    async def scan(self, schema: Schema[T], *, after: Key | None = None, limit: int = 1000) -> list[T]:
        """Up to ``limit`` items of the whole table in key order, after the key ``after`` (resharding,
        exports). Keyset-paged: each call is one indexed range read."""
        plan = self._plans.get(schema) or await self._plan(schema)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValidationError(f"limit must be a positive int, got {limit!r}", entity=schema.name)
        named: dict[str, Any] = {"lim": limit}
        if after is not None:
            schema.check_key(after)
            plan.check_key(after)
            named.update({f"a{i}": v for i, v in enumerate(after)})
        sql = plan.scan(after is not None)
        self.stats.queries += 1
        try:
            rows = await self._driver.fetchall(sql.text, sql.args(named), bounded=limit < _IN_LOOP_ROWS)
        except StoreError as exc:
            raise self._ctx(exc, schema, after) from exc.__cause__
        return [plan.decode_row(r) for r in rows]

    async def restore_many(self, schema: Schema[T], items: Sequence[T]) -> None:
        """Write ``items`` exactly as given, version fields kept, replacing what is there (resharding,
        backups). One transaction when it takes more than one statement."""
        if not items:
            return
        plan = self._plans.get(schema) or await self._plan(schema)
        for it in items:
            if type(it) is not schema.cls:
                raise ValidationError(f"expected {schema.name}, got {type(it).__name__}", entity=schema.name)
        rows = [plan.row_values(it) for it in items]
        if len({tuple(r[i] for i in plan.key_idx) for r in rows}) != len(rows):
            raise ValidationError("restore_many got the same key twice", entity=schema.name)
        self.stats.writes += len(items)
        per = max(1, min(500, MAX_PARAMS // len(plan.cols)))
        stmts: list[tuple[str, Sequence[Any]]] = [
            (plan.replace_many(len(chunk)).text, [v for r in chunk for v in r])
            for chunk in (rows[s : s + per] for s in range(0, len(rows), per))
        ]
        await self._run(schema, None, op_statements(stmts), len(stmts) > 1)

    # -- writes ----------------------------------------------------------------------------------------

    async def put(
        self, schema: Schema[T], item: T, *, if_not_exists: bool = False, expect_version: int | None = None,
        when: Condition | None = None,
    ) -> T:
        plan = self._plans.get(schema) or await self._plan(schema)
        vals = plan.row_values(item)
        self.stats.writes += 1
        if when is not None:
            return await self._run(
                schema, None, op_put_when(plan, item, vals, if_not_exists, expect_version, when), True
            )
        return await self._run(schema, None, op_put(plan, item, vals, if_not_exists, expect_version), False)

    async def update(self, schema: Schema[T], key: Key, changes: Changes, *, when: Condition | None = None) -> T:
        """Apply ``changes`` in one ``UPDATE … RETURNING`` (MySQL: ``UPDATE`` then ``SELECT`` in one transaction);
        the version advances by one. ``NotFound`` if there is no item, ``ConditionFailed`` if ``when`` fails.
        On PostgreSQL and SQLite the item a failed condition reports is read right after the ``UPDATE``, not
        atomically with it."""
        plan = self._plans.get(schema) or await self._plan(schema)
        plan.check_key(key)
        sql, values = plan.update(changes, when)
        values.update({f"k{i}": v for i, v in enumerate(key)})
        self.stats.writes += 1
        op = op_update(plan, key, sql.text, sql.args(values), when)
        return await self._run(schema, key, op, plan.flavor != "returning")

    async def put_many(self, schema: Schema[T], items: Sequence[T]) -> list[T]:
        if not items:
            return []
        plan = self._plans.get(schema) or await self._plan(schema)
        rows = [plan.row_values(it) for it in items]
        self.stats.writes += len(items)
        per = max(1, min(500, MAX_PARAMS // len(plan.cols)))
        chunks = [(s, rows[s : s + per]) for s in range(0, len(rows), per)]
        follow_up = plan.flavor == "odku" and plan.version_idx is not None and not plan.mysql_returning
        return await self._run(
            schema, None, op_put_many(plan, items, chunks), len(chunks) > 1 or follow_up
        )

    async def delete(
        self, schema: Schema[Any], key: Key, *, expect_version: int | None = None, when: Condition | None = None
    ) -> bool:
        plan = self._plans.get(schema) or await self._plan(schema)
        plan.check_key(key)
        self.stats.writes += 1
        if when is not None:
            return await self._run(schema, key, op_delete_when(plan, key, expect_version, when), True)
        return await self._run(schema, key, op_delete(plan, key, expect_version), False)

    async def delete_many(self, schema: Schema[Any], keys: Sequence[Key]) -> None:
        if not keys:
            return
        plan = self._plans.get(schema) or await self._plan(schema)
        for k in keys:
            plan.check_key(k)
        self.stats.writes += len(keys)
        chunks = [(sql, args) for sql, args, _ in key_batches(plan, keys, plan.delete_many)]
        await self._run(schema, None, op_statements(chunks), len(chunks) > 1)

    async def transact(self, ops: Sequence[WriteOp]) -> list[Any]:
        if not ops:
            return []
        prepared: list[tuple[WriteOp, Plan[Any], Any, Key]] = []
        for op in ops:
            if isinstance(op, Put):
                plan = await self._plan(schema_of(type(op.item)))
                vals = plan.row_values(op.item)
                prepared.append((op, plan, vals, tuple(vals[i] for i in plan.key_idx)))
            elif isinstance(op, Delete | Check):
                plan = await self._plan(schema_of(op.entity))
                plan.check_key(op.key)
                prepared.append((op, plan, None, op.key))
            elif isinstance(op, Update):
                plan = await self._plan(schema_of(op.entity))
                plan.check_key(op.key)
                sql, values = plan.update(op.changes, op.when)
                values.update({f"k{i}": v for i, v in enumerate(op.key)})
                prepared.append((op, plan, (sql.text, sql.args(values)), op.key))
            else:
                raise ValidationError(f"transact takes Put, Delete, Update and Check ops, got {type(op).__name__}")
        self.stats.writes += len(ops)
        # Lock rows in a fixed order (table, key) so that concurrent transactions do not deadlock.
        order = sorted(range(len(ops)), key=lambda i: (prepared[i][1].schema.table, prepared[i][3]))
        try:
            return await self._driver.run(op_transact(prepared, order, self.name), True)
        except StoreError as exc:
            self.stats.errors += 1
            raise exc from exc.__cause__

