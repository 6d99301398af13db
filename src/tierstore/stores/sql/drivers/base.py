"""Statement execution for the SQL store: one small driver per database client.

SQLAlchemy is the schema, DDL, dialect and pooling layer; statements are compiled by it once per table
(see :mod:`tierstore.stores.sql_schema`) and executed here on the driver connection, which skips
SQLAlchemy's per-call work (about half the cost of a primary-key read on PostgreSQL and MariaDB).

A write is an *operation*: a generator that yields ``(mode, sql, args)`` steps and receives each result.
The PostgreSQL and MySQL drivers await each step on one pooled connection; the SQLite driver runs the whole
generator in a worker thread, so a write costs one thread hop however many statements it has.

This module and :mod:`tierstore.stores.sql` are the only places that see asyncpg, aiomysql/pymysql and
sqlite3 exceptions; everything leaves as a tierstore error.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from tierstore.errors import ConfigError, StoreError, TierstoreError
from tierstore.stats import StoreStats

__all__ = ["ALL", "EXEC", "INSERT", "ONE", "Driver", "MysqlDriver", "Operation", "PostgresDriver", "SqliteDriver"]

R = TypeVar("R")
Row = Sequence[Any]

ONE = 0  # -> the first row or None
ALL = 1  # -> list of rows
EXEC = 2  # -> (rowcount, lastrowid)
INSERT = 3  # -> (rowcount, lastrowid), or None when the key already exists (a unique violation)

Step = tuple[int, str, Sequence[Any]]
Operation = Generator[Step, Any, R]


def _identity(value: Any) -> Any:
    return value


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


class Driver:
    """Runs compiled statements; bumps ``stats.round_trips`` per statement sent (begin/commit included)."""

    backend: str
    dialect: Dialect

    def __init__(self, url: str, redacted: str, password: str | None) -> None:
        self.url = url
        self.redacted = redacted
        self.password = password
        self.stats = StoreStats()  # the store replaces it with its own

    async def open(self) -> None:
        raise NotImplementedError

    async def fetchone(self, sql: str, args: Sequence[Any]) -> Row | None:
        raise NotImplementedError

    async def fetchall(self, sql: str, args: Sequence[Any], bounded: bool = False) -> list[Row]:
        """``bounded``: the caller knows the statement touches few rows (SQLite may run it in the loop)."""
        raise NotImplementedError

    async def run(self, op: Operation[R], transaction: bool) -> R:
        raise NotImplementedError

    async def create(self, table: sa.Table) -> None:
        raise NotImplementedError

    async def drop(self, table: sa.Table) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    def error(self, exc: BaseException, what: str) -> StoreError:
        err = StoreError(f"{what} failed: {_scrub(_describe(exc), self.password)}", backend=self.backend)
        err.__cause__ = exc
        return err

    def _translate(self, exc: BaseException) -> BaseException:
        """Errors of an operation: tierstore errors (conditions) and cancellation pass, the rest is wrapped."""
        if isinstance(exc, TierstoreError) or not isinstance(exc, Exception):
            return exc
        return self.error(exc, "write")

    def connect_error(self, exc: BaseException) -> StoreError:
        msg = _scrub(_describe(exc), self.password)
        err = StoreError(f"cannot connect to {self.backend} at {self.redacted}: {msg}", backend=self.backend)
        err.__cause__ = exc
        return err


def _describe(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)  # SQLAlchemy wraps driver errors
    inner = orig if isinstance(orig, BaseException) else exc
    text = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {text[0] if text else ''}".rstrip(": ")


# -- pooled network drivers ------------------------------------------------------------------------


class _Held:
    """A pooled connection the store holds (checked out of SQLAlchemy's pool once, reused per operation)."""

    __slots__ = ("born", "conn", "cursor", "fairy")

    def __init__(self, fairy: PoolProxiedConnection, conn: Any) -> None:
        self.fairy = fairy
        self.conn = conn
        self.cursor: Any = None
        self.born = time.monotonic()


class _EngineDriver(Driver):
    """Driver connections held out of an ``AsyncEngine`` pool: an idle list, FIFO waiters, no per-op
    pool checkout (that alone costs ~35 µs in SQLAlchemy's pool)."""

    def __init__(
        self, url: str, redacted: str, password: str | None, *, pool_size: int, pool_timeout: float,
        pool_recycle: float | None, engine_kw: dict[str, Any],
    ) -> None:
        super().__init__(url, redacted, password)
        self.size = pool_size
        self.timeout = pool_timeout
        self.recycle = pool_recycle
        self._engine_kw = engine_kw
        self.engine: AsyncEngine | None = None
        self._idle: list[_Held] = []
        self._count = 0
        self._waiters: deque[asyncio.Future[_Held | None]] = deque()
        self._closed = False

    async def open(self) -> None:
        if self.engine is not None:
            return
        try:
            self.engine = create_async_engine(
                self.url,
                pool_size=self.size,
                max_overflow=2,  # room for DDL next to the connections the store holds
                pool_timeout=self.timeout,
                pool_reset_on_return=None,  # held connections come back clean (committed or discarded)
                **self._engine_kw,
            )
        except (SQLAlchemyError, ImportError, ValueError, TypeError) as exc:
            raise self.connect_error(exc) from None
        self.dialect = self.engine.dialect
        try:
            self.release(await self._connect())  # fail fast, and initialize the dialect
        except BaseException:
            engine, self.engine = self.engine, None
            with contextlib.suppress(Exception):
                await engine.dispose()
            raise

    async def _connect(self) -> _Held:
        assert self.engine is not None
        self._count += 1
        try:
            fairy = await self.engine.raw_connection()
        except BaseException as exc:
            self._count -= 1
            if isinstance(exc, Exception):
                raise self.connect_error(exc) from None
            raise
        held = _Held(fairy, fairy.driver_connection)
        try:
            await self._setup(held)
        except BaseException as exc:
            self.discard(held)
            if isinstance(exc, Exception):
                raise self.connect_error(exc) from None
            raise
        return held

    async def _setup(self, held: _Held) -> None:
        pass

    def _take(self) -> _Held | None:
        idle = self._idle
        while idle:
            held = idle.pop()
            if not self._alive(held) or (
                self.recycle is not None and time.monotonic() - held.born > self.recycle
            ):
                self.discard(held)
                continue
            return held
        return None

    def _alive(self, held: _Held) -> bool:
        """Cheap local check (no I/O) that the server has not closed the connection."""
        return True

    async def acquire(self) -> _Held:
        if self._closed:
            raise StoreError(f"the {self.backend} store is closed", backend=self.backend)
        while True:
            held = self._take()
            if held is not None:
                return held
            if self.engine is None:
                await self.open()
                continue
            if self._count < self.size:
                return await self._connect()
            fut: asyncio.Future[_Held | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                got = await asyncio.wait_for(fut, self.timeout)
            except TimeoutError:
                raise StoreError(
                    f"no {self.backend} connection free within {self.timeout}s (pool_size={self.size})",
                    backend=self.backend,
                ) from None
            except BaseException:
                if fut.done() and not fut.cancelled() and fut.result() is not None:
                    self.release(fut.result())  # type: ignore[arg-type]
                raise
            if got is not None:
                return got

    def release(self, held: _Held) -> None:
        if self._closed:
            self.discard(held)
            return
        waiters = self._waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(held)
                return
        self._idle.append(held)

    def discard(self, held: _Held) -> None:
        """Drop a connection that may be unusable (error mid-protocol, cancelled, too old)."""
        self._count -= 1
        with contextlib.suppress(Exception):  # the connection is being thrown away either way
            held.fairy.invalidate()  # outside a greenlet SQLAlchemy force-closes the socket: no I/O wait
        while self._waiters:  # a waiter may now open a new connection
            w = self._waiters.popleft()
            if not w.done():
                w.set_result(None)
                break

    def _broken(self, held: _Held, exc: BaseException) -> bool:
        raise NotImplementedError

    def _fail(self, held: _Held, exc: BaseException) -> bool:
        """Release or discard ``held`` after ``exc``; True if the connection was broken."""
        if isinstance(exc, TierstoreError):
            self.release(held)
            return False
        if not isinstance(exc, Exception):  # cancelled mid-protocol: the connection state is unknown
            self.discard(held)
            return True
        if self._broken(held, exc):
            # A lost connection usually means a restart or failover: the idle ones are gone too.
            self.discard(held)
            idle, self._idle = self._idle, []
            for other in idle:
                self.discard(other)
            return True
        self.release(held)
        return False

    def _retry_read(self, held: _Held, exc: BaseException, attempt: int) -> None:
        """A read on ``held`` raised ``exc``: returns if the read is to be tried again (once, and only when the
        connection was broken: a stale pooled connection; reads are safe to repeat), else raises."""
        if self._fail(held, exc) and not attempt and isinstance(exc, Exception):
            return
        if isinstance(exc, Exception):
            raise self.error(exc, "read") from None
        raise exc

    async def _abort(self, held: _Held, exc: BaseException, rollback: Callable[[], Awaitable[Any]] | None) -> NoReturn:
        """An operation on ``held`` raised ``exc``: roll back its open transaction (``rollback``, None if none)
        where the connection lives (a failed rollback discards it), release or discard ``held``, and raise."""
        if rollback is not None and isinstance(exc, Exception) and self._alive(held):
            try:
                await rollback()
                self.stats.round_trips += 1
            except BaseException:
                self.discard(held)
                raise self._translate(exc) from None
        self._fail(held, exc)
        raise self._translate(exc) from None

    async def create(self, table: sa.Table) -> None:
        if self.engine is None:
            await self.open()
        assert self.engine is not None
        for attempt in range(2):
            try:
                async with self.engine.begin() as conn:
                    await conn.run_sync(table.metadata.create_all, tables=[table], checkfirst=True)
                self.stats.round_trips += 1
                return
            except SQLAlchemyError as exc:
                # Another process may have created it between the check and the CREATE: look again.
                if attempt:
                    raise self.error(exc, f"creating table {table.name}") from None

    async def drop(self, table: sa.Table) -> None:
        if self.engine is None:
            await self.open()
        assert self.engine is not None
        try:
            async with self.engine.begin() as conn:
                await conn.run_sync(table.drop, checkfirst=True)
        except SQLAlchemyError as exc:
            raise self.error(exc, f"dropping table {table.name}") from None
        self.stats.round_trips += 1

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        idle, self._idle = self._idle, []
        for held in idle:
            try:
                await greenlet_spawn(held.fairy.close)
            except Exception:
                self.discard(held)
        for w in self._waiters:
            if not w.done():
                w.set_result(None)
        if self.engine is not None:
            with contextlib.suppress(Exception):  # closing must not raise
                await self.engine.dispose()


class PostgresDriver(_EngineDriver):
    backend = "postgres"

    def __init__(self, *args: Any, **kw: Any) -> None:
        kw.setdefault("engine_kw", {})
        # JSONB arrives as text and is decoded by msgspec with the field's type; SQLAlchemy's codec
        # otherwise runs json.loads first.
        kw["engine_kw"] = {**kw["engine_kw"], "json_deserializer": _identity, "json_serializer": _identity}
        super().__init__(*args, **kw)
        try:
            import asyncpg
        except ImportError:
            raise ConfigError("the postgres store needs asyncpg: pip install 'tierstore[postgres]'") from None

        self._pg_error = asyncpg.PostgresError
        self._pg_conn_error = asyncpg.PostgresConnectionError
        self._unique = asyncpg.UniqueViolationError
        self._data_error = asyncpg.DataError

    def _alive(self, held: _Held) -> bool:
        return not held.conn.is_closed()

    def _broken(self, held: _Held, exc: BaseException) -> bool:
        if held.conn.is_closed() or isinstance(exc, self._pg_conn_error):
            return True
        return not isinstance(exc, self._pg_error | self._data_error)

    async def fetchone(self, sql: str, args: Sequence[Any]) -> Row | None:
        for attempt in (0, 1):
            held = self._take() or await self.acquire()
            self.stats.round_trips += 1
            try:
                row = await held.conn.fetchrow(sql, *args)
            except BaseException as exc:
                self._retry_read(held, exc, attempt)
                continue
            self.release(held)
            return row  # type: ignore[no-any-return]
        raise AssertionError("unreachable")

    async def fetchall(self, sql: str, args: Sequence[Any], bounded: bool = False) -> list[Row]:
        for attempt in (0, 1):
            held = self._take() or await self.acquire()
            self.stats.round_trips += 1
            try:
                rows = await held.conn.fetch(sql, *args)
            except BaseException as exc:
                self._retry_read(held, exc, attempt)
                continue
            self.release(held)
            return rows  # type: ignore[no-any-return]
        raise AssertionError("unreachable")

    async def run(self, op: Operation[R], transaction: bool) -> R:
        held = self._take() or await self.acquire()
        conn = held.conn
        tx = None
        try:
            if transaction:
                tx = conn.transaction()
                await tx.start()
                self.stats.round_trips += 1
            try:
                step = next(op)
                while True:
                    mode, sql, args = step
                    self.stats.round_trips += 1
                    if mode == ONE:
                        res: Any = await conn.fetchrow(sql, *args)
                    elif mode == ALL:
                        res = await conn.fetch(sql, *args)
                    else:
                        tail = (await conn.execute(sql, *args)).rpartition(" ")[2]  # "UPDATE 1"
                        res = (int(tail) if tail.isdigit() else 0, None)
                    step = op.send(res)
            except StopIteration as stop:
                result: R = stop.value
            if tx is not None:
                await tx.commit()
                self.stats.round_trips += 1
        except BaseException as exc:
            await self._abort(held, exc, tx.rollback if tx is not None else None)
        self.release(held)
        return result



class MysqlDriver(_EngineDriver):
    backend = "mysql"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        try:
            import aiomysql  # re-exports pymysql's exception classes
        except ImportError:
            raise ConfigError("the mysql store needs aiomysql: pip install 'tierstore[mysql]'") from None

        self._my_error = aiomysql.MySQLError
        self._integrity = aiomysql.IntegrityError
        self._interface = aiomysql.InterfaceError

    async def _setup(self, held: _Held) -> None:
        # Autocommit: a single statement is its own transaction (one round trip); ``run`` BEGINs explicitly.
        await held.conn.autocommit(True)
        held.cursor = await held.conn.cursor()

    def _alive(self, held: _Held) -> bool:
        return not held.conn.closed

    def _broken(self, held: _Held, exc: BaseException) -> bool:
        if isinstance(exc, self._my_error) and not isinstance(exc, self._interface):
            code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
            return code >= 2000 or held.conn.closed  # 2000+: client-side (lost connection, protocol)
        return True

    async def _read(self, sql: str, args: Sequence[Any], one: bool) -> Any:
        for attempt in (0, 1):
            held = self._take() or await self.acquire()
            cur = held.cursor
            self.stats.round_trips += 1
            try:
                await cur.execute(_bind(held.conn, sql, args))
                res = await (cur.fetchone() if one else cur.fetchall())
            except BaseException as exc:
                self._retry_read(held, exc, attempt)
                continue
            self.release(held)
            return res
        raise AssertionError("unreachable")

    async def fetchone(self, sql: str, args: Sequence[Any]) -> Row | None:
        return await self._read(sql, args, True)  # type: ignore[no-any-return]

    async def fetchall(self, sql: str, args: Sequence[Any], bounded: bool = False) -> list[Row]:
        return list(await self._read(sql, args, False))

    async def run(self, op: Operation[R], transaction: bool) -> R:
        held = self._take() or await self.acquire()
        conn, cur = held.conn, held.cursor
        began = False
        try:
            if transaction:
                await conn.begin()
                began = True
                self.stats.round_trips += 1
            try:
                step = next(op)
                while True:
                    mode, sql, args = step
                    self.stats.round_trips += 1
                    res: Any
                    if mode == ONE:
                        await cur.execute(_bind(conn, sql, args))
                        res = await cur.fetchone()
                    elif mode == ALL:
                        await cur.execute(_bind(conn, sql, args))
                        res = await cur.fetchall()
                    else:
                        try:
                            await cur.execute(_bind(conn, sql, args))
                            res = (cur.rowcount, cur.lastrowid)
                        except self._integrity as exc:
                            if mode != INSERT or exc.args[0] != 1062:  # ER_DUP_ENTRY
                                raise
                            res = None
                    step = op.send(res)
            except StopIteration as stop:
                result: R = stop.value
            if began:
                await conn.commit()
                self.stats.round_trips += 1
        except BaseException as exc:
            await self._abort(held, exc, conn.rollback if began else None)
        self.release(held)
        return result



def _bind(conn: Any, sql: str, args: Sequence[Any]) -> str:
    """Interpolate escaped values, as aiomysql's ``Cursor.execute`` does, but with a working ``bytes``
    escape: aiomysql 0.3 imports ``escape_bytes_prefixed`` from PyMySQL, which PyMySQL ≥ 1.1 replaced by
    a string, so aiomysql fails on every ``bytes`` parameter. A hex literal is a binary string in MySQL."""
    esc = conn.escape
    return sql % tuple(f"X'{a.hex()}'" if isinstance(a, bytes) else esc(a) for a in args)


# -- SQLite ----------------------------------------------------------------------------------------


class SqliteDriver(Driver):
    """SQLite without aiosqlite's per-statement thread hop.

    Bounded reads (primary-key gets, small ``IN`` batches, small pages) run on a read-only connection in the
    event loop's thread: they take microseconds, less than one hop. Everything else runs in worker threads,
    each with its own connection, one hop per operation. The file is in WAL mode, so readers never wait for
    the writer. A ``:memory:`` database has one connection, used in the loop's thread (it does no I/O).
    """

    backend = "sqlite"

    def __init__(
        self, path: str | None, redacted: str, *, threads: int, busy_timeout: float, synchronous: str
    ) -> None:
        super().__init__(f"sqlite:///{path or ':memory:'}", redacted, None)
        self.path = path
        self.threads = threads
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous
        self.dialect = sa.create_engine("sqlite://").dialect  # compiles only; never connects
        self._reader: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def _connect(self, *, reader: bool = False) -> sqlite3.Connection:
        assert self.path is not None
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,  # autocommit; transactions are explicit BEGIN IMMEDIATE
            check_same_thread=False,
            timeout=0.0 if reader else self.busy_timeout,
        )
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        if reader:
            conn.execute("PRAGMA query_only=ON")
        with self._lock:
            self._conns.append(conn)
        return conn

    async def open(self) -> None:
        if self._reader is not None:
            return
        if self._closed:
            raise StoreError("the sqlite store is closed", backend=self.backend)
        try:
            if self.path is None:
                self._reader = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
                self._conns.append(self._reader)
                return
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="tierstore-sqlite")
            await asyncio.get_running_loop().run_in_executor(self._executor, self._init_file)
            self._reader = self._connect(reader=True)
        except (sqlite3.Error, OSError) as exc:
            raise self.connect_error(exc) from None

    def _init_file(self) -> None:
        assert self.path is not None
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):  # sqlite3 would say only "unable to open database file"
            raise FileNotFoundError(f"directory {directory} does not exist")
        conn = self._worker_conn()
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot switch {self.path} to WAL mode (got {mode})")

    def _worker_conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    async def _in_thread(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        if self._executor is None:
            await self.open()
        if self._executor is None:  # :memory:
            assert self._reader is not None
            return fn(self._reader)
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: fn(self._worker_conn())
        )

    async def fetchone(self, sql: str, args: Sequence[Any]) -> Row | None:
        reader = self._reader
        self.stats.round_trips += 1
        if reader is not None:
            try:
                # fetchall steps the statement to its end, so no read transaction stays open in the reader.
                rows = reader.execute(sql, args).fetchall()
                return rows[0] if rows else None
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise self.error(exc, "read") from None
                # locked for a moment (e.g. WAL recovery): wait for it in a worker instead of the loop
            except (sqlite3.Error, ValueError, OverflowError) as exc:
                raise self.error(exc, "read") from None
        try:
            return await self._in_thread(lambda c: c.execute(sql, args).fetchone())
        except (sqlite3.Error, ValueError, OverflowError) as exc:
            raise self.error(exc, "read") from None

    async def fetchall(self, sql: str, args: Sequence[Any], bounded: bool = False) -> list[Row]:
        reader = self._reader
        self.stats.round_trips += 1
        if reader is not None and (bounded or self._executor is None):
            try:
                return reader.execute(sql, args).fetchall()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or self._executor is None:
                    raise self.error(exc, "read") from None
            except (sqlite3.Error, ValueError, OverflowError) as exc:
                raise self.error(exc, "read") from None
        try:
            return await self._in_thread(lambda c: c.execute(sql, args).fetchall())
        except (sqlite3.Error, ValueError, OverflowError) as exc:
            raise self.error(exc, "read") from None

    async def run(self, op: Operation[R], transaction: bool) -> R:
        def work(conn: sqlite3.Connection) -> tuple[R, int]:
            trips = 0
            if transaction:
                conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no deadlocking upgrade later
                trips += 1
            try:
                try:
                    step = next(op)
                    while True:
                        mode, sql, args = step
                        trips += 1
                        res: Any
                        if mode == ONE:
                            rows = conn.execute(sql, args).fetchall()  # run RETURNING to completion
                            res = rows[0] if rows else None
                        elif mode == ALL:
                            res = conn.execute(sql, args).fetchall()
                        else:
                            try:
                                cur = conn.execute(sql, args)
                                res = (cur.rowcount, cur.lastrowid)
                            except sqlite3.IntegrityError:
                                if mode != INSERT:
                                    raise
                                res = None
                        step = op.send(res)
                except StopIteration as stop:
                    result: R = stop.value
                if transaction:
                    conn.execute("COMMIT")
                    trips += 1
            except BaseException:
                if transaction and conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result, trips

        try:
            result, trips = await self._in_thread(work)
        except (sqlite3.Error, ValueError, OverflowError) as exc:
            raise self.error(exc, "write") from None
        self.stats.round_trips += trips
        return result

    async def create(self, table: sa.Table) -> None:
        stmts = [str(sa.schema.CreateTable(table, if_not_exists=True).compile(dialect=self.dialect))]
        stmts += [
            str(sa.schema.CreateIndex(ix, if_not_exists=True).compile(dialect=self.dialect))
            for ix in sorted(table.indexes, key=lambda i: str(i.name))
        ]

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for s in stmts:
                    conn.execute(s)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        try:
            await self._in_thread(work)
        except sqlite3.Error as exc:
            raise self.error(exc, f"creating table {table.name}") from None
        self.stats.round_trips += len(stmts)

    async def drop(self, table: sa.Table) -> None:
        ddl = str(sa.schema.DropTable(table, if_exists=True).compile(dialect=self.dialect))
        try:
            await self._in_thread(lambda conn: conn.execute(ddl))
        except sqlite3.Error as exc:
            raise self.error(exc, f"dropping table {table.name}") from None
        self.stats.round_trips += 1

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown, True)
        self._reader = None
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):  # closing must not raise
                conn.close()


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    msg = str(exc).lower()
    return "locked" in msg or "busy" in msg
