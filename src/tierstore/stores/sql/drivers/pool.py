"""The connection pool and the error rules shared by the PostgreSQL and MySQL drivers.

Connections are checked out of SQLAlchemy's ``AsyncEngine`` pool once and then held by the store: an idle
list and FIFO waiters, no per-operation pool checkout (that checkout alone costs ~35 µs in SQLAlchemy's pool).
``pool_recycle`` retires a held connection by age; a cheap local check drops one the server has closed.

Errors follow one rule set for both network drivers. Each driver says what an error did to its connection
(:data:`KEEP`, :data:`DROP`, :data:`LOST`): a statement error leaves it usable; an error after which the
server closes the session (a packet over MariaDB's ``max_allowed_packet``, an idle-session timeout, a protocol
desync, a statement deadline that fired mid-reply) drops that one connection, so the next call gets a fresh
one instead of a dead socket; a lost connection usually means a restart or failover, so the idle ones are
dropped with it and a read is tried once more on a new connection (reads are safe to repeat; a write is never
repeated, and neither is a read whose own statement broke its connection or timed out). An operation cancelled
mid-protocol throws its connection away, since its state is unknown. A failed transaction is rolled back
where the connection still lives.

Tables are created and dropped through the engine (SQLAlchemy's DDL with ``checkfirst``): rare, so the
SQLAlchemy execution layer's cost does not matter there.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool, PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from tierstore.errors import StoreError, TierstoreError
from tierstore.stores.sql.drivers.base import Driver

__all__ = ["DROP", "KEEP", "LOST", "EngineDriver", "Held"]

KEEP = 0
"""The error was the statement's: the connection stays in the pool."""
DROP = 1
"""The server closed (or will not answer on) this connection: it is discarded, the others stay."""
LOST = 2
"""The connection was lost (restart, failover, network): the idle ones are discarded too, a read retries."""

R = TypeVar("R")


class Held:
    """A pooled connection the store holds (checked out of SQLAlchemy's pool once, reused per operation)."""

    __slots__ = ("born", "conn", "cursor", "fairy")

    def __init__(self, fairy: PoolProxiedConnection, conn: Any) -> None:
        self.fairy = fairy
        self.conn = conn
        self.cursor: Any = None
        self.born = time.monotonic()


class EngineDriver(Driver):
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
        self.catalog_kw = {k: v for k, v in engine_kw.items() if not k.startswith("json_")}
        """Engine options for catalog reads: SQLAlchemy's own JSON codec (its reflection decodes JSON)."""
        self.engine: AsyncEngine | None = None
        self._idle: list[Held] = []
        self._count = 0
        self._waiters: deque[asyncio.Future[Held | None]] = deque()
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

    async def _connect(self) -> Held:
        assert self.engine is not None
        self._count += 1
        try:
            fairy = await self.engine.raw_connection()
        except BaseException as exc:
            self._count -= 1
            if isinstance(exc, Exception):
                raise self.connect_error(exc) from None
            raise
        held = Held(fairy, fairy.driver_connection)
        try:
            await self._setup(held)
        except BaseException as exc:
            self.discard(held)
            if isinstance(exc, Exception):
                raise self.connect_error(exc) from None
            raise
        return held

    async def _setup(self, held: Held) -> None:
        pass

    def _take(self) -> Held | None:
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

    def _alive(self, held: Held) -> bool:
        """Cheap local check (no I/O) that the server has not closed the connection."""
        return True

    async def acquire(self) -> Held:
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
            fut: asyncio.Future[Held | None] = asyncio.get_running_loop().create_future()
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

    def release(self, held: Held) -> None:
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

    def discard(self, held: Held) -> None:
        """Drop a connection that may be unusable (error mid-protocol, cancelled, too old)."""
        self._count -= 1
        with contextlib.suppress(Exception):  # the connection is being thrown away either way
            held.fairy.invalidate()  # outside a greenlet SQLAlchemy force-closes the socket: no I/O wait
        while self._waiters:  # a waiter may now open a new connection
            w = self._waiters.popleft()
            if not w.done():
                w.set_result(None)
                break

    def _damage(self, held: Held, exc: Exception) -> int:
        """What ``exc`` did to ``held``: :data:`KEEP`, :data:`DROP` or :data:`LOST`."""
        raise NotImplementedError

    def _fail(self, held: Held, exc: BaseException) -> int:
        """Release or discard ``held`` after ``exc``; what the error did to the connection."""
        if isinstance(exc, TierstoreError):
            self.release(held)
            return KEEP
        if not isinstance(exc, Exception):  # cancelled mid-protocol: the connection state is unknown
            self.discard(held)
            return DROP
        damage = self._damage(held, exc)
        if damage == KEEP and not self._alive(held):
            damage = DROP
        if damage == KEEP:
            self.release(held)
            return KEEP
        self.discard(held)
        if damage == LOST:
            # A lost connection usually means a restart or failover: the idle ones are gone too.
            idle, self._idle = self._idle, []
            for other in idle:
                self.discard(other)
        return damage

    def _retry_read(self, held: Held, exc: BaseException, attempt: int) -> None:
        """A read on ``held`` raised ``exc``: returns if the read is to be tried again (once, and only when the
        connection was lost: a stale pooled connection; reads are safe to repeat), else raises."""
        if self._fail(held, exc) == LOST and not attempt and isinstance(exc, Exception):
            return
        if isinstance(exc, Exception):
            raise self.error(exc, "read") from None
        raise exc

    async def _abort(self, held: Held, exc: BaseException, rollback: Callable[[], Awaitable[Any]] | None) -> NoReturn:
        """An operation on ``held`` raised ``exc``: roll back its open transaction (``rollback``, None if none)
        where the connection lives (a failed rollback discards it), release or discard ``held``, and raise."""
        if (
            rollback is not None and isinstance(exc, Exception) and self._alive(held)
            and (isinstance(exc, TierstoreError) or self._damage(held, exc) == KEEP)
        ):
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
                    if table.schema is not None:
                        await conn.execute(sa.schema.CreateSchema(table.schema, if_not_exists=True))
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

    async def catalog(self, fn: Callable[[sa.Connection], R]) -> R:
        # A connection of its own, outside the pool: the pool's connections decode JSON with msgspec, not
        # with the codec SQLAlchemy's reflection expects. Verification runs once per entity: rare.
        engine = create_async_engine(self.url, poolclass=NullPool, **self.catalog_kw)
        try:
            async with engine.connect() as conn:
                result = await conn.run_sync(fn)
                await conn.rollback()
        except SQLAlchemyError as exc:
            raise self.error(exc, "reading the catalog") from None
        except OSError as exc:
            raise self.connect_error(exc) from None
        finally:
            await engine.dispose()
        self.stats.round_trips += 1
        return result

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
