"""PostgreSQL through asyncpg: statements run on the held asyncpg connection (``fetchrow``, ``fetch``,
``execute``) and transactions are asyncpg's own. What counts as a broken connection (to be replaced) versus
an error of the statement (the connection stays) is asyncpg's exception tree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from tierstore.errors import ConfigError
from tierstore.stores.sql.drivers.base import ALL, ONE, Operation, Row
from tierstore.stores.sql.drivers.pool import EngineDriver, Held

__all__ = ["PostgresDriver"]

R = TypeVar("R")


def _identity(value: Any) -> Any:
    return value


class PostgresDriver(EngineDriver):
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
        self._data_error = asyncpg.DataError

    def _alive(self, held: Held) -> bool:
        return not held.conn.is_closed()

    def _broken(self, held: Held, exc: BaseException) -> bool:
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
