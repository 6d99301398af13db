"""PostgreSQL through asyncpg: statements run on the held asyncpg connection (``fetchrow``, ``fetch``,
``execute``) and transactions are asyncpg's own. What counts as a lost connection (to be replaced), a session
the server ended (``57P0x`` shutdown, idle-session timeouts: dropped) or an error of the statement (the
connection stays) is asyncpg's exception tree and the SQLSTATE.

Every statement has a deadline, ``command_timeout`` (30 s unless the URL says otherwise): asyncpg then sends
the server a cancel request and the connection stays usable once the server has acknowledged it (asyncpg waits
for that before the connection's next statement, and terminates the connection if the cancel itself fails).
The caller gets :class:`~tierstore.errors.StoreTimeout`, once: a timed-out read is not repeated."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from tierstore.errors import ConfigError
from tierstore.stores.sql.drivers.base import ALL, ONE, Operation, Row
from tierstore.stores.sql.drivers.pool import DROP, KEEP, LOST, EngineDriver, Held

__all__ = ["PostgresDriver"]

R = TypeVar("R")


# The server is shutting down or restarting: every connection to it is gone.
_SERVER_GONE = frozenset({"57P01", "57P02", "57P03"})  # admin_shutdown, crash_shutdown, cannot_connect_now
# read_only_sql_transaction: the server (or its database) takes no writes — after a failover, a connection left
# on the demoted writer of a cluster. Like a lost server: reconnect (a fresh DNS lookup) rather than reuse it.
_READ_ONLY = frozenset({"25006"})
# The server ends this one session (it closes the socket after the error).
_SESSION_ENDED = frozenset({"25P03", "57P05"})  # idle_in_transaction_session_timeout, idle_session_timeout
# A server-side deadline (set by the user on the role or database) cancelled the statement.
_TIMEOUTS = {
    "57014": "the server cancelled the statement (statement_timeout or a cancel request)",
    "55P03": "a lock was not granted in time (lock_timeout)",
}


def _identity(value: Any) -> Any:
    return value


class PostgresDriver(EngineDriver):
    backend = "postgres"

    def __init__(self, *args: Any, **kw: Any) -> None:
        kw.setdefault("engine_kw", {})
        # JSONB arrives as text and is decoded by msgspec with the field's type; SQLAlchemy's codec
        # otherwise runs json.loads first.
        kw["engine_kw"] = {**kw["engine_kw"], "json_deserializer": _identity, "json_serializer": _identity}
        connect_args = kw["engine_kw"].get("connect_args", {})
        self._command_timeout: float | None = connect_args.get("command_timeout")
        super().__init__(*args, **kw)
        try:
            import asyncpg
        except ImportError:
            raise ConfigError("the postgres store needs asyncpg: pip install 'tierstore[postgres]'") from None

        self._pg_error = asyncpg.PostgresError
        self._pg_conn_error = asyncpg.PostgresConnectionError
        self._data_error = asyncpg.DataError

    def _alive(self, held: Held) -> bool:
        return not held.conn.is_closed()

    def _damage(self, held: Held, exc: Exception) -> int:
        if isinstance(exc, TimeoutError):
            return KEEP  # asyncpg cancelled the statement; the connection waits for the server's answer
        if held.conn.is_closed() or isinstance(exc, self._pg_conn_error):
            return LOST
        if isinstance(exc, self._pg_error):
            state = getattr(exc, "sqlstate", None) or ""
            if state in _SERVER_GONE or state in _READ_ONLY:
                return LOST
            if state in _SESSION_ENDED:
                return DROP
            return KEEP
        return LOST  # asyncpg's InterfaceError, a protocol error, OSError: the connection state is unknown

    def _timeout_of(self, exc: BaseException) -> str | None:
        if isinstance(exc, TimeoutError):
            return f"no answer within command_timeout={self._command_timeout}s; the statement was cancelled"
        state = getattr(exc, "sqlstate", None)
        if isinstance(exc, self._pg_error) and state in _TIMEOUTS:
            return f"{_TIMEOUTS[state]} (SQLSTATE {state})"
        return None

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
