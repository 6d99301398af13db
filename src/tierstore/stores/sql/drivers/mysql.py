"""MariaDB and MySQL through aiomysql: one cursor per held connection, autocommit for single statements and
an explicit BEGIN for operations that need a transaction. Values are interpolated by :func:`_bind` (see why
there); a duplicate key on a conditional insert is the answer "the item exists", not an error.

What an error did to the connection is read from its error code: client-side codes (2000 and up: lost
connection, server gone) and codes after which the server closes the session (a packet over
``max_allowed_packet``, network read/write errors, a killed connection) never let the dead socket back into
the pool. Deadlines: MariaDB enforces ``command_timeout`` itself (``max_statement_time``, set per connection:
the statement is aborted, the connection stays); the client gives up a moment later in any case (a server that
does not answer at all, or MySQL, whose own limit covers SELECT only), and drops that connection. A lock wait
ends after the server's ``innodb_lock_wait_timeout``. Each is a :class:`~tierstore.errors.StoreTimeout`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, TypeVar

from tierstore.errors import ConfigError
from tierstore.stores.sql.drivers.base import ALL, INSERT, ONE, Operation, Row
from tierstore.stores.sql.drivers.pool import DROP, KEEP, LOST, EngineDriver, Held

__all__ = ["MysqlDriver"]

R = TypeVar("R")

# Server errors after which the server closes the session: the connection is dropped, the others stay.
_SESSION_ENDED = frozenset({
    1152, 1184,  # ER_ABORTING_CONNECTION, ER_NEW_ABORTING_CONNECTION
    1153,  # ER_NET_PACKET_TOO_LARGE: a statement over max_allowed_packet
    *range(1154, 1162),  # ER_NET_*: read/write errors, packets out of order, interrupted
    4031,  # ER_CLIENT_INTERACTION_TIMEOUT (idle too long)
})
# Server errors that mean the server is going away: every connection to it is.
_SERVER_GONE = frozenset({1053, 1077, 1079, 1080, 1927})  # shutdown in progress, normal shutdown, forcing
# close, shutdown complete, connection killed
# The server takes no writes (--read-only, read-only mode): after a failover, a connection left on the demoted
# writer of a cluster. Like a lost server: reconnect (a fresh DNS lookup) rather than reuse it.
_READ_ONLY = frozenset({1290, 1836})  # ER_OPTION_PREVENTS_STATEMENT, ER_READ_ONLY_MODE
_TIMEOUTS = {
    1205: "a lock was not granted within innodb_lock_wait_timeout",
    1969: "the server aborted the statement after command_timeout (max_statement_time)",
    3024: "the server aborted the statement (max_execution_time)",
}
# The client's own deadline is this much later than the server's, so the server's clean abort comes first.
_CLIENT_GRACE = 1.0


class MysqlDriver(EngineDriver):
    backend = "mysql"

    def __init__(self, *args: Any, **kw: Any) -> None:
        self.command_timeout: float | None = kw.pop("command_timeout", None)
        super().__init__(*args, **kw)
        try:
            import aiomysql  # re-exports pymysql's exception classes
        except ImportError:
            raise ConfigError("the mysql store needs aiomysql: pip install 'tierstore[mysql]'") from None

        self._my_error = aiomysql.MySQLError
        self._integrity = aiomysql.IntegrityError
        self._interface = aiomysql.InterfaceError

    async def _setup(self, held: Held) -> None:
        # Autocommit: a single statement is its own transaction (one round trip); ``run`` BEGINs explicitly.
        await held.conn.autocommit(True)
        held.cursor = await held.conn.cursor()
        if self.command_timeout is not None and "mariadb" in str(held.conn.get_server_info()).lower():
            await held.cursor.execute(f"SET SESSION max_statement_time = {self.command_timeout:.6f}")

    def _deadline(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """The client's deadline of one statement (none without ``command_timeout``)."""
        if self.command_timeout is None:
            return contextlib.nullcontext()
        return asyncio.timeout(self.command_timeout + _CLIENT_GRACE)

    def _alive(self, held: Held) -> bool:
        # aiomysql notices a server-side close only when it next reads; the stream already knows (no I/O).
        reader = getattr(held.conn, "_reader", None)
        return not held.conn.closed and not (reader is not None and reader.at_eof())

    def _damage(self, held: Held, exc: Exception) -> int:
        if isinstance(exc, TimeoutError):
            return DROP  # the reply may still come: the connection is mid-protocol
        if not isinstance(exc, self._my_error) or isinstance(exc, self._interface):
            return LOST
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        if code is None:
            return DROP  # PyMySQL's own errors (a packet out of sequence): the protocol is out of step
        if code >= 2000 or code in _SERVER_GONE or code in _READ_ONLY:  # 2000+: client-side (lost, gone)
            return LOST
        if code in _SESSION_ENDED or held.conn.closed:
            return DROP
        return KEEP

    def _timeout_of(self, exc: BaseException) -> str | None:
        if isinstance(exc, TimeoutError):
            return (
                f"no answer within command_timeout={self.command_timeout}s (+{_CLIENT_GRACE}s); "
                "the connection was dropped"
            )
        if isinstance(exc, self._my_error) and exc.args and exc.args[0] in _TIMEOUTS:
            return _TIMEOUTS[exc.args[0]]
        return None

    async def _read(self, sql: str, args: Sequence[Any], one: bool) -> Any:
        for attempt in (0, 1):
            held = self._take() or await self.acquire()
            cur = held.cursor
            self.stats.round_trips += 1
            try:
                async with self._deadline():
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
                    async with self._deadline():
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
