"""``SqlStore``: the store of record on SQLite, PostgreSQL and MariaDB/MySQL.

SQLAlchemy 2 Core generates the tables (:func:`metadata_for`, usable as Alembic's ``target_metadata``),
compiles every statement once per table and dialect, and pools the connections; the statements run on the
driver connection (asyncpg, aiomysql, sqlite3) to skip SQLAlchemy's per-call cost. See
:mod:`tierstore.stores.sql_schema` for the column mapping and :mod:`tierstore.stores.sql_drivers` for
execution.

Semantics shared with every store:

- ``put`` stores ``version = stored version + 1`` (1 for a new item) in one atomic statement: an upsert that
  returns the new version (``RETURNING`` on PostgreSQL/SQLite, ``LAST_INSERT_ID(version + 1)`` on MySQL).
- ``expect_version`` is a single ``UPDATE … WHERE key AND version = expected``; ``if_not_exists`` an
  ``INSERT … ON CONFLICT DO NOTHING`` (MySQL: a plain ``INSERT`` whose duplicate-key error is the answer).
- ``query`` pages by keyset (``WHERE (sort, key) > cursor ORDER BY sort, key LIMIT n + 1``), never OFFSET.
- ``transact`` runs the ops in one database transaction, in key order (fewer deadlocks), and reports a
  reason per op when a condition fails (nothing is written).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import sqlalchemy as sa

from tierstore.config import parse_duration, query_params, redact_url
from tierstore.errors import (
    ConditionFailed,
    ConfigError,
    StoreError,
    TransactionCanceled,
    ValidationError,
)
from tierstore.model.entity import Entity
from tierstore.model.schema import Key, Schema, schema_of
from tierstore.query import Page, Query, decode_cursor, encode_cursor
from tierstore.stats import StoreStats
from tierstore.stores.base import Delete, Put, WriteOp
from tierstore.stores.sql_drivers import (
    ALL,
    EXEC,
    INSERT,
    ONE,
    Driver,
    MysqlDriver,
    Operation,
    PostgresDriver,
    SqliteDriver,
)
from tierstore.stores.sql_schema import KEY_LENGTH, Plan, Sql, metadata_for, successor, table_for

__all__ = ["KEY_LENGTH", "SqlStore", "SqlStoreConfig", "metadata_for", "table_for"]

T = TypeVar("T")

_BACKENDS = {
    "sqlite": "sqlite",
    "sqlite+aiosqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgresql": "postgres",
    "postgresql+asyncpg": "postgres",
    "postgres": "postgres",
    "mysql": "mysql",
    "mysql+aiomysql": "mysql",
    "mariadb": "mysql",
    "mariadb+aiomysql": "mysql",
}
_DRIVER_SCHEME = {"postgres": "postgresql+asyncpg", "mysql": "mysql+aiomysql"}
_COMMON = {"pool_size", "pool_timeout", "pool_recycle", "page_size", "connect_timeout"}
_OWN = {
    "sqlite": _COMMON | {"busy_timeout", "synchronous"},
    "postgres": _COMMON | {"command_timeout"},
    "mysql": _COMMON,
}
# Driver options passed through to the connection (anything else is a typo: ConfigError).
_PASS_THROUGH = {
    "sqlite": frozenset(),
    "postgres": frozenset({"ssl"}),
    "mysql": frozenset({"ssl_ca", "ssl_cert", "ssl_key", "ssl_check_hostname", "unix_socket"}),
}
_SYNCHRONOUS = ("off", "normal", "full", "extra")
_MAX_PARAMS = 8000  # per statement; SQLite allows 32766, PostgreSQL 32767
_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 100, 128, 256, 512)  # 100: the usual batch (DynamoDB's, the joins')
_ARRAY_BATCH = 1000  # PostgreSQL keys per statement
_IN_LOOP_ROWS = 128  # SQLite: reads of at most this many rows by key run in the event loop's thread


def _backend_of(url: str) -> str:
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"expected an SQL URL like 'postgresql+asyncpg://host/db', got {redact_url(str(url))!r}")
    scheme = url.split("://", 1)[0].lower()
    backend = _BACKENDS.get(scheme)
    if backend is None:
        raise ConfigError(
            f"SqlStore does not support {scheme!r}; use sqlite+aiosqlite, postgresql+asyncpg or mysql+aiomysql"
        )
    return backend


def _split_query(url: str) -> tuple[str, dict[str, str]]:
    # Not urlunsplit: it turns sqlite:////abs/path (empty host) into sqlite://abs/path.
    base, _, query = url.partition("?")
    return base, dict(parse_qsl(query, keep_blank_values=True))


def _positive_int(value: str | int, what: str) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: expected an integer, got {value!r}") from None
    if n < 1:
        raise ConfigError(f"{what}: must be at least 1, got {n}")
    return n


@dataclass(frozen=True, slots=True, kw_only=True)
class SqlStoreConfig:
    """``sqlite+aiosqlite:///path.db``, ``postgresql+asyncpg://user:pw@host/db``, ``mysql+aiomysql://…``.

    URL parameters: ``pool_size`` (connections held; SQLite: worker threads), ``pool_timeout``,
    ``pool_recycle``, ``connect_timeout`` (durations like ``5s``), ``page_size`` (rows of a query page when
    no limit is given); PostgreSQL ``command_timeout`` and ``ssl``; MySQL ``ssl_ca``/``ssl_cert``/
    ``ssl_key``/``ssl_check_hostname``/``unix_socket``; SQLite ``busy_timeout`` and ``synchronous``
    (``full`` by default: an acknowledged write survives power loss). Any other parameter is a ``ConfigError``.
    """

    url: str = field(repr=False)
    pool_size: int = 5
    pool_timeout: float = 30.0
    pool_recycle: float | None = None
    connect_timeout: float | None = 10.0
    command_timeout: float | None = None
    page_size: int = 1000
    busy_timeout: float = 5.0
    synchronous: str = "full"

    def __post_init__(self) -> None:
        backend = _backend_of(self.url)
        _, params = _split_query(self.url)
        unknown = set(params) - _PASS_THROUGH[backend]
        if unknown:
            allowed = sorted(_OWN[backend] | _PASS_THROUGH[backend])
            raise ConfigError(
                f"unknown parameter(s) {sorted(unknown)} in {redact_url(self.url)!r}; allowed: {allowed}"
            )
        for name in ("pool_size", "page_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive int, got {value!r}")
        if self.synchronous not in _SYNCHRONOUS:
            raise ConfigError(f"synchronous must be one of {_SYNCHRONOUS}, got {self.synchronous!r}")
        if self.command_timeout is not None and backend != "postgres":
            raise ConfigError("command_timeout is supported on PostgreSQL only")

    def __repr__(self) -> str:
        return (
            f"SqlStoreConfig(url={redact_url(self.url)!r}, pool_size={self.pool_size}, "
            f"pool_timeout={self.pool_timeout}, pool_recycle={self.pool_recycle}, "
            f"connect_timeout={self.connect_timeout}, command_timeout={self.command_timeout}, "
            f"page_size={self.page_size}, busy_timeout={self.busy_timeout}, synchronous={self.synchronous!r})"
        )

    @property
    def backend(self) -> str:
        """``sqlite``, ``postgres`` or ``mysql`` (MariaDB included)."""
        return _backend_of(self.url)

    @classmethod
    def from_url(cls, url: str) -> SqlStoreConfig:
        backend = _backend_of(url)
        base, _ = _split_query(url)
        params = query_params(url, _OWN[backend] | _PASS_THROUGH[backend])
        own = {k: v for k, v in params.items() if k in _OWN[backend]}
        rest = {k: v for k, v in params.items() if k not in _OWN[backend]}
        kw: dict[str, Any] = {}
        for name in ("pool_size", "page_size"):
            if name in own:
                kw[name] = _positive_int(own[name], name)
        for name in ("pool_timeout", "busy_timeout"):
            if name in own:
                kw[name] = parse_duration(own[name], name)
        for name in ("pool_recycle", "connect_timeout", "command_timeout"):
            if name in own:
                kw[name] = parse_duration(own[name], name) if own[name] not in ("", "none") else None
        if "synchronous" in own:
            kw["synchronous"] = own["synchronous"].lower()
        clean = base + ("?" + urlencode(rest) if rest else "")
        return cls(url=clean, **kw)

    def build(self) -> SqlStore:
        return SqlStore(self)


class SqlStore:
    """The SQL store of record. Build it from a URL via ``tierstore.connect(store=…)`` or
    ``SqlStoreConfig.from_url(url).build()``; ``await open()`` before use (``connect()`` does)."""

    supports_transactions = True

    def __init__(self, config: SqlStoreConfig | str) -> None:
        if isinstance(config, str):
            config = SqlStoreConfig.from_url(config)
        self.config = config
        self.name = config.backend
        self.stats = StoreStats()
        self.metadata = sa.MetaData()
        self.page_size = config.page_size
        self._plans: dict[Schema[Any], Plan[Any]] = {}
        self._created: set[str] = set()
        self._driver = self._make_driver(config)
        self._driver.stats = self.stats
        self._opened = False
        self._closed = False

    def __repr__(self) -> str:
        return f"SqlStore({self.name}, {redact_url(self.config.url)!r})"

    @staticmethod
    def _make_driver(config: SqlStoreConfig) -> Driver:
        backend = config.backend
        redacted = redact_url(config.url)
        if backend == "sqlite":
            base, _ = _split_query(config.url)
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
            cls: type[PostgresDriver | MysqlDriver] = PostgresDriver
        else:
            connect_args["charset"] = "utf8mb4"  # keys and text are utf8mb4 whatever the server default
            if config.connect_timeout is not None:
                connect_args["connect_timeout"] = config.connect_timeout
            cls = MysqlDriver
        return cls(
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
        url = sa.make_url(_split_query(self.config.url)[0])
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
            table = table_for(schema, self.metadata)
            plan = self._plans[schema] = Plan(schema, table, self._driver.dialect, self.name)
        return plan

    async def ensure_schema(self, schema: Schema[Any]) -> None:
        plan = await self._plan(schema)
        if schema.table in self._created:
            return
        if self.name == "mysql":
            _check_mysql_key_size(plan)
        try:
            await self._driver.create(plan.table)
        except StoreError as exc:
            raise self._ctx(exc, schema) from None
        self._created.add(schema.table)

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
        await self._run(schema, None, _single(EXEC, plan.truncate.text, ()), False)

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
            return plan.decode(row)
        except (ValueError, TypeError) as exc:  # msgspec's errors are ValueErrors
            err = StoreError(f"a stored row does not decode: {exc}", backend=self.name)
            raise self._ctx(err, schema, key) from None

    async def get_many(
        self, schema: Schema[T], keys: Sequence[Key], *, consistent: bool = False
    ) -> list[T | None]:
        if not keys:
            return []
        plan = self._plans.get(schema) or await self._plan(schema)
        for k in keys:
            plan.check_key(k)
        self.stats.reads += len(keys)
        found: dict[Key, T] = {}
        decode, key_of_row = plan.decode_row, plan.key_of_row
        for sql, args, n in _key_batches(plan, keys, plan.get_many):
            try:
                rows = await self._driver.fetchall(sql, args, bounded=n <= _IN_LOOP_ROWS)
            except StoreError as exc:
                raise self._ctx(exc, schema) from exc.__cause__
            for row in rows:
                k = key_of_row(row)
                found[k] = decode(row, k)
        return [found.get(k) for k in keys]

    async def query(self, schema: Schema[T], query: Query) -> Page[T]:
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
        sql, order = plan.query(query.index, op, has_high, query.reverse, query.cursor is not None)
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
        decode = plan.decode_row
        items = [decode(r) for r in rows[:limit]]
        cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            cursor = encode_cursor(query, [last[plan.position[c]] for c in order.cols])
        return Page(items, cursor)

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
        per = max(1, min(500, _MAX_PARAMS // len(plan.cols)))
        stmts: list[tuple[str, Sequence[Any]]] = [
            (plan.replace_many(len(chunk)).text, [v for r in chunk for v in r])
            for chunk in (rows[s : s + per] for s in range(0, len(rows), per))
        ]
        await self._run(schema, None, _op_statements(stmts), len(stmts) > 1)

    # -- writes ----------------------------------------------------------------------------------------

    async def put(
        self, schema: Schema[T], item: T, *, if_not_exists: bool = False, expect_version: int | None = None
    ) -> T:
        plan = self._plans.get(schema) or await self._plan(schema)
        vals = plan.row_values(item)
        self.stats.writes += 1
        return await self._run(schema, None, _op_put(plan, item, vals, if_not_exists, expect_version), False)

    async def put_many(self, schema: Schema[T], items: Sequence[T]) -> list[T]:
        if not items:
            return []
        plan = self._plans.get(schema) or await self._plan(schema)
        rows = [plan.row_values(it) for it in items]
        self.stats.writes += len(items)
        per = max(1, min(500, _MAX_PARAMS // len(plan.cols)))
        chunks = [(s, rows[s : s + per]) for s in range(0, len(rows), per)]
        follow_up = plan.flavor == "odku" and plan.version_idx is not None and not plan.mysql_returning
        return await self._run(
            schema, None, _op_put_many(plan, items, chunks), len(chunks) > 1 or follow_up
        )

    async def delete(self, schema: Schema[Any], key: Key, *, expect_version: int | None = None) -> bool:
        plan = self._plans.get(schema) or await self._plan(schema)
        plan.check_key(key)
        self.stats.writes += 1
        return await self._run(schema, key, _op_delete(plan, key, expect_version), False)

    async def delete_many(self, schema: Schema[Any], keys: Sequence[Key]) -> None:
        if not keys:
            return
        plan = self._plans.get(schema) or await self._plan(schema)
        for k in keys:
            plan.check_key(k)
        self.stats.writes += len(keys)
        chunks = [(sql, args) for sql, args, _ in _key_batches(plan, keys, plan.delete_many)]
        await self._run(schema, None, _op_statements(chunks), len(chunks) > 1)

    async def transact(self, ops: Sequence[WriteOp]) -> list[Any]:
        if not ops:
            return []
        prepared: list[tuple[WriteOp, Plan[Any], Any, Key]] = []
        for op in ops:
            if isinstance(op, Put):
                plan = await self._plan(schema_of(type(op.item)))
                vals = plan.row_values(op.item)
                prepared.append((op, plan, vals, tuple(vals[i] for i in plan.key_idx)))
            elif isinstance(op, Delete):
                plan = await self._plan(schema_of(op.entity))
                plan.check_key(op.key)
                prepared.append((op, plan, None, op.key))
            else:
                raise ValidationError(f"transact takes Put and Delete ops, got {type(op).__name__}")
        self.stats.writes += len(ops)
        # Lock rows in a fixed order (table, key) so that concurrent transactions do not deadlock.
        order = sorted(range(len(ops)), key=lambda i: (prepared[i][1].schema.table, prepared[i][3]))
        try:
            return await self._driver.run(_op_transact(prepared, order, self.name), True)
        except StoreError as exc:
            self.stats.errors += 1
            raise exc from exc.__cause__


# -- operations: generators of statements, run by a driver --------------------------------------------


def _single(mode: int, sql: str, args: Sequence[Any]) -> Operation[Any]:
    return (yield (mode, sql, args))


def _op_statements(stmts: list[tuple[str, Sequence[Any]]]) -> Operation[None]:
    for sql, args in stmts:
        yield (EXEC, sql, args)


def _condition(plan: Plan[Any], key: Key, message: str) -> ConditionFailed:
    return ConditionFailed(message, entity=plan.name, key=key, backend=plan.backend)


def _op_put(
    plan: Plan[T], item: T, vals: list[Any], if_not_exists: bool, expect_version: int | None
) -> Generator[Any, Any, T]:
    vi = plan.version_idx
    key = tuple(vals[i] for i in plan.key_idx)
    if expect_version is not None:
        if vi is None or plan.update_expect is None or plan.select_version is None:
            raise ValidationError(f"{plan.name} has no version field", entity=plan.name, key=key)
        if if_not_exists:
            raise _condition(plan, key, "if_not_exists and expect_version cannot both hold")
        new = expect_version + 1
        vals[vi] = new
        count, _ = yield (EXEC, plan.update_expect.text, plan.update_args(vals, expect_version))
        if count == 0:
            found = yield (ONE, plan.select_version.text, key)
            raise _condition(
                plan, key, f"expected version {expect_version}, found {found[0] if found else 'no item'}"
            )
        return plan.with_version(item, new)
    if vi is not None:
        vals[vi] = 1
    if if_not_exists:
        res = yield (INSERT, plan.insert_new.text, vals)
        if res is None or res[0] == 0:
            raise _condition(plan, key, "item exists")
        return item if vi is None else plan.with_version(item, 1)
    if vi is None:
        yield (EXEC, plan.upsert.text, vals)
        return item
    if plan.flavor == "returning":
        row = yield (ONE, plan.upsert.text, vals)
        return plan.with_version(item, row[-1])
    _, last_id = yield (EXEC, plan.upsert.text, vals)
    # MySQL: an update left version + 1 in LAST_INSERT_ID(); a fresh insert leaves 0.
    return plan.with_version(item, last_id or 1)


def _op_put_many(plan: Plan[T], items: Sequence[T], chunks: list[tuple[int, list[list[Any]]]]) -> Operation[list[T]]:
    vi = plan.version_idx
    out = list(items)
    width = len(plan.key_idx)
    for start, rows in chunks:
        if vi is not None:
            for r in rows:
                r[vi] = 1
        sql = plan.upsert_many(len(rows)).text
        args = [v for r in rows for v in r]
        if vi is None:
            yield (EXEC, sql, args)
            continue
        if plan.flavor == "returning" or plan.mysql_returning:
            got = yield (ALL, sql, args)
        else:
            yield (EXEC, sql, args)
            keys = [v for r in rows for v in (r[i] for i in plan.key_idx)]
            got = yield (ALL, plan.select_versions(len(rows)).text, keys)
        versions = {tuple(row[:width]): row[width] for row in got}
        for i, r in enumerate(rows):
            out[start + i] = plan.with_version(items[start + i], versions[tuple(r[j] for j in plan.key_idx)])
    return out


def _op_delete(plan: Plan[Any], key: Key, expect_version: int | None) -> Operation[bool]:
    if expect_version is None:
        count, _ = yield (EXEC, plan.delete.text, key)
        return bool(count)
    if plan.delete_expect is None or plan.select_version is None:
        raise ValidationError(f"{plan.name} has no version field", entity=plan.name, key=key)
    count, _ = yield (EXEC, plan.delete_expect.text, (*key, expect_version))
    if count == 0:
        found = yield (ONE, plan.select_version.text, key)
        raise _condition(plan, key, f"expected version {expect_version}, found {found[0] if found else 'no item'}")
    return True


def _op_transact(
    prepared: list[tuple[WriteOp, Plan[Any], Any, Key]], order: list[int], backend: str
) -> Operation[list[Any]]:
    results: list[Any] = [None] * len(prepared)
    reasons: list[str | None] = [None] * len(prepared)
    for i in order:
        op, plan, vals, key = prepared[i]
        try:
            if isinstance(op, Put):
                results[i] = yield from _op_put(plan, op.item, vals, op.if_not_exists, op.expect_version)
            else:
                assert isinstance(op, Delete)
                yield from _op_delete(plan, key, op.expect_version)
        except ConditionFailed as exc:
            reasons[i] = exc.message
    if any(r is not None for r in reasons):
        raise TransactionCanceled("transaction canceled", reasons=reasons, backend=backend)
    return results


def _key_batches(
    plan: Plan[Any], keys: Sequence[Key], statement: Callable[[int], Sql]
) -> Iterator[tuple[str, Sequence[Any], int]]:
    """Statements over ``keys`` in batches: ``(sql, args, keys in the batch)``.

    PostgreSQL takes a batch as one array per key column. Elsewhere a batch is an ``IN`` list padded to the
    next of a few sizes by repeating its last key (same answer, few statement shapes to prepare and cache).
    """
    width = len(plan.key_idx)
    if plan.array_keys:
        for start in range(0, len(keys), _ARRAY_BATCH):
            part = keys[start : start + _ARRAY_BATCH]
            yield statement(0).text, [list(col) for col in zip(*part, strict=True)], len(part)
        return
    limit = _bucket_floor(_MAX_PARAMS // 8 // width)
    for start in range(0, len(keys), limit):
        chunk = list(keys[start : start + limit])
        n = _bucket(len(chunk))
        chunk += [chunk[-1]] * (n - len(chunk))
        yield statement(n).text, [v for k in chunk for v in k], n


def _bucket(n: int) -> int:
    for b in _BUCKETS:
        if b >= n:
            return b
    return n


def _bucket_floor(n: int) -> int:
    best = 1
    for b in _BUCKETS:
        if b <= n:
            best = b
    return best


def _check_mysql_key_size(plan: Plan[Any]) -> None:
    """InnoDB indexes hold at most 3072 bytes; a utf8mb4 VARCHAR(255) takes 1020. Fail before the DDL does."""
    def size(cols: Sequence[str]) -> int:
        total = 0
        for c in cols:
            typ = plan.schema.field_types[c]
            total += 1020 if typ is str or "str" in repr(typ) else 255 if typ is bytes else 8
        return total

    from tierstore.stores.sql_schema import index_columns

    groups = [("primary key", plan.schema.key_fields)]
    groups += [(f"index {n}", index_columns(plan.schema, n)) for n in plan.schema.indexes]
    for what, cols in groups:
        if size(cols) > 3072:
            raise ConfigError(
                f"{plan.name}: the {what} {cols} needs more than 3072 bytes on MySQL "
                f"(each str key/index field takes {KEY_LENGTH} utf8mb4 characters = 1020 bytes)",
                entity=plan.name,
            )
