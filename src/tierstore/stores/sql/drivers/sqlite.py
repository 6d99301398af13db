"""SQLite on the standard library's ``sqlite3``, called directly: in the event loop's thread for bounded
reads, in worker threads for the rest (see :class:`SqliteDriver`).

Not aiosqlite: it hops to its thread for every statement, which costs more than a primary-key read itself
(``tierstore bench``, scenario ``get``: 7.2 µs here, 22 µs for aiosqlite's ``execute_fetchall``, 5.4 µs for
bare ``sqlite3``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import sqlalchemy as sa

from tierstore.errors import StoreError
from tierstore.stores.sql.drivers.base import ALL, INSERT, ONE, Driver, Operation, Row

__all__ = ["INLINE_ROWS", "SqliteDriver"]

INLINE_ROWS = 256
"""Rows of an indexed read stepped in the event loop's thread at most (about one thread hop's CPU time)."""

R = TypeVar("R")


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

    def _timeout_of(self, exc: BaseException) -> str | None:
        if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
            return f"another writer held the database lock longer than busy_timeout={self.busy_timeout}s"
        return None

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

    async def fetchall_indexed(self, sql: str, args: Sequence[Any]) -> list[Row]:
        """Stepped on the reader in the loop's thread up to :data:`INLINE_ROWS` rows (each step is an index
        step: time grows with the rows); a longer answer is dropped there and read whole in a worker, so every
        answer comes from one snapshot and no read transaction stays open in the reader."""
        reader = self._reader
        if reader is None or self._executor is None:
            return await self.fetchall(sql, args)
        self.stats.round_trips += 1
        try:
            cursor = reader.execute(sql, args)
            try:
                rows = cursor.fetchmany(INLINE_ROWS + 1)
            except BaseException:
                cursor.close()
                raise
            if len(rows) <= INLINE_ROWS:
                return rows  # stepped to its end: the statement is reset
            cursor.close()  # resets the statement: the reader's read transaction ends
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise self.error(exc, "read") from None
        except (sqlite3.Error, ValueError, OverflowError) as exc:
            raise self.error(exc, "read") from None
        return await self.fetchall(sql, args)

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

    async def catalog(self, fn: Callable[[sa.Connection], R]) -> R:
        def work(conn: sqlite3.Connection) -> R:
            # An engine over this very connection (never closed by SQLAlchemy: the pool is static).
            engine = sa.create_engine("sqlite://", creator=lambda: conn, poolclass=sa.pool.StaticPool)
            with engine.connect() as c:
                return fn(c)

        try:
            result = await self._in_thread(work)
        except (sqlite3.Error, sa.exc.SQLAlchemyError) as exc:
            raise self.error(exc, "reading the catalog") from None
        self.stats.round_trips += 1
        return result

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
