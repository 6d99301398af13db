"""What every SQL driver does, and the steps a store operation is made of.

A write is an *operation*: a generator that yields ``(mode, sql, args)`` steps and receives each result
(``ONE`` the first row, ``ALL`` the rows, ``EXEC`` ``(rowcount, lastrowid)``, ``INSERT`` the same or None on
a duplicate key). The PostgreSQL and MySQL drivers await each step on one pooled connection; the SQLite
driver runs the whole generator in a worker thread, so a write costs one thread hop however many statements
it has.

Only the drivers see asyncpg, aiomysql/pymysql and sqlite3 exceptions; everything leaves them as a
tierstore error, with the password scrubbed from the message.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any, TypeVar
from urllib.parse import unquote

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from tierstore.errors import StoreError, StoreTimeout, TierstoreError
from tierstore.stats import StoreStats

__all__ = ["ALL", "EXEC", "INSERT", "ONE", "Driver", "Operation", "Row", "Step"]

R = TypeVar("R")
Row = Sequence[Any]

ONE = 0  # -> the first row or None
ALL = 1  # -> list of rows
EXEC = 2  # -> (rowcount, lastrowid)
INSERT = 3  # -> (rowcount, lastrowid), or None when the key already exists (a unique violation)

Step = tuple[int, str, Sequence[Any]]
Operation = Generator[Step, Any, R]


def _scrub(text: str, secret: str | None) -> str:
    """``text`` without ``secret``, as written in the URL (percent-encoded) or as sent to the server."""
    if not secret:
        return text
    for form in (secret, unquote(secret)):
        text = text.replace(form, "***")
    return text


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

    async def fetchall_indexed(self, sql: str, args: Sequence[Any]) -> list[Row]:
        """:meth:`fetchall` of a statement that steps about as many rows as it returns (index ranges in key
        order: no sort, no filter of its own), however many that is; SQLite reads a small answer in the loop."""
        return await self.fetchall(sql, args)

    async def run(self, op: Operation[R], transaction: bool) -> R:
        raise NotImplementedError

    async def create(self, table: sa.Table) -> None:
        raise NotImplementedError

    async def drop(self, table: sa.Table) -> None:
        raise NotImplementedError

    async def catalog(self, fn: Callable[[sa.Connection], R]) -> R:
        """Run ``fn`` on a synchronous SQLAlchemy connection (reads of the catalog: ``sa.inspect(conn)``,
        ``information_schema``); rare, so it goes through SQLAlchemy. Nothing it does is committed."""
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    def error(self, exc: BaseException, what: str) -> StoreError:
        timeout = self._timeout_of(exc)
        if timeout is not None:
            err: StoreError = StoreTimeout(
                f"{what} timed out: {_scrub(timeout, self.password)}",
                backend=self.backend,
            )
        else:
            err = StoreError(f"{what} failed: {_scrub(_describe(exc), self.password)}", backend=self.backend)
        err.__cause__ = exc
        return err

    def _timeout_of(self, exc: BaseException) -> str | None:
        """What ran out if ``exc`` is a timeout (statement deadline, lock wait), else None."""
        return None

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
