"""MariaDB and MySQL through aiomysql: one cursor per held connection, autocommit for single statements and
an explicit BEGIN for operations that need a transaction. Values are interpolated by :func:`_bind` (see why
there); a duplicate key on a conditional insert is the answer "the item exists", not an error."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from tierstore.errors import ConfigError
from tierstore.stores.sql.drivers.base import ALL, INSERT, ONE, Operation, Row
from tierstore.stores.sql.drivers.pool import EngineDriver, Held

__all__ = ["MysqlDriver"]

R = TypeVar("R")


class MysqlDriver(EngineDriver):
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

    async def _setup(self, held: Held) -> None:
        # Autocommit: a single statement is its own transaction (one round trip); ``run`` BEGINs explicitly.
        await held.conn.autocommit(True)
        held.cursor = await held.conn.cursor()

    def _alive(self, held: Held) -> bool:
        return not held.conn.closed

    def _broken(self, held: Held, exc: BaseException) -> bool:
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
