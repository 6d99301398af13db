"""The memcached text protocol as the tier speaks it: key spelling, commands, replies, one node's connections.

Keys are checked in **bytes**: a key longer than 250 bytes or holding anything but printable ASCII (spaces,
control characters, multi-byte UTF-8) is replaced by ``<namespace>#<sha1>``, so ``"a\\r\\nflush_all"`` can
never reach a server as a command. TTLs over 30 days are sent as absolute Unix times (memcached reads them
so). Every request has a deadline, and a connection whose request did not finish cleanly is discarded, never
reused (aiomcache's pool has neither; tierstore uses only its connections).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from aiomcache.pool import Connection, MemcachePool

from tierstore.errors import TierError
from tierstore.tiers.deadlines import Deadlines

if TYPE_CHECKING:
    from tierstore.tiers.health import Breaker, NodeGuard
    from tierstore.tiers.memcached.config import MemcachedTierConfig

__all__ = [
    "ITEM_OVERHEAD", "MAX_EXPTIME", "STORED", "Node", "ProtocolError", "exptime", "memcached_key",
    "read_all_values", "read_lines", "read_values",
    "store",
]

R = TypeVar("R")

MAX_KEY_BYTES = 250
THIRTY_DAYS = 30 * 24 * 3600
ITEM_OVERHEAD = 512
"""Bytes of an item that are not the value (key, header, CAS, our type byte and version), with margin."""
STORED = b"STORED"

_UNSAFE = re.compile(rb"[^\x21-\x7e]").search


def memcached_key(namespace: bytes, key: str) -> bytes:
    """``namespace + key`` as a memcached key: at most 250 bytes of printable ASCII, else hashed."""
    raw = namespace + key.encode("utf-8", "surrogatepass")
    if len(raw) <= MAX_KEY_BYTES and _UNSAFE(raw) is None and not key.startswith("#"):
        return raw
    # "#" cannot start a key kept as is, so a hashed key never aliases a plain one.
    return namespace + b"#" + hashlib.sha1(raw, usedforsecurity=False).hexdigest().encode()


MAX_EXPTIME = 2**31 - 1
"""The last absolute expiry memcached can hold (a signed 32-bit Unix time: January 2038). Later ones are
clamped to it: sent as they are, they would be refused or expire at once."""


def exptime(seconds: float) -> int:
    """Seconds as memcached's ``exptime``: at least 1; beyond 30 days an absolute Unix time, at most
    :data:`MAX_EXPTIME`."""
    s = max(1, math.ceil(min(seconds, MAX_EXPTIME)))
    if s > THIRTY_DAYS:
        return min(int(time.time()) + s, MAX_EXPTIME)
    return s


class ProtocolError(Exception):
    """The server said something the protocol does not allow here: the connection is out of step."""


async def read_values(reader: asyncio.StreamReader) -> dict[bytes, tuple[bytes, int]]:
    """Parse a ``gets`` reply: key -> (value, cas)."""
    found: dict[bytes, tuple[bytes, int]] = {}
    while True:
        line = await reader.readuntil(b"\r\n")
        if line == b"END\r\n":
            return found
        terms = line.split()
        if len(terms) < 4 or terms[0] != b"VALUE":
            raise ProtocolError(f"unexpected reply to gets: {line[:80]!r}")
        length = int(terms[3])
        data = await reader.readexactly(length + 2)
        found[terms[1]] = (data[:-2], int(terms[4]) if len(terms) > 4 else 0)


_CHUNK = 1 << 16


async def read_all_values(reader: asyncio.StreamReader) -> dict[bytes, tuple[bytes, int]]:
    """:func:`read_values` for a ``gets`` reply that is the last on its connection (nothing pipelined after it):
    read in chunks and parsed in memory, one await per chunk instead of two per value. Bytes after ``END`` mean
    the connection is out of step (:class:`ProtocolError`)."""
    found: dict[bytes, tuple[bytes, int]] = {}
    buf = b""
    size = pos = 0
    while True:
        nl = buf.find(b"\r\n", pos)
        if nl >= 0:
            terms = buf[pos:nl].split()
            if len(terms) == 5 and terms[0] == b"VALUE":  # VALUE <key> <flags> <bytes> <cas>
                start = nl + 2
                end = start + int(terms[3])
                if end + 2 <= size:
                    if buf[end : end + 2] != b"\r\n":
                        raise ProtocolError("a gets value does not end where its length says")
                    found[terms[1]] = (buf[start:end], int(terms[4]))
                    pos = end + 2
                    continue
            elif nl - pos == 3 and buf.startswith(b"END", pos):
                if nl + 2 != size:
                    raise ProtocolError("bytes after the end of a gets reply")
                return found
            else:
                raise ProtocolError(f"unexpected reply to gets: {buf[pos:nl][:80]!r}")
        chunk = await reader.read(_CHUNK)
        if not chunk:
            raise asyncio.IncompleteReadError(buf[pos:], None)
        buf = buf[pos:] + chunk if pos else buf + chunk
        size = len(buf)
        pos = 0


async def read_lines(reader: asyncio.StreamReader, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        line = (await reader.readuntil(b"\r\n"))[:-2]
        if line == b"ERROR" or line.startswith(b"CLIENT_ERROR"):
            raise ProtocolError(f"memcached rejected a command: {line[:80]!r}")
        out.append(line)
    return out


def store(cmd: bytes, key: bytes, value: bytes, exp: int, cas: int | None = None) -> bytes:
    if cas is None:
        return b"%s %s 0 %d %d\r\n%s\r\n" % (cmd, key, exp, len(value), value)
    return b"%s %s 0 %d %d %d\r\n%s\r\n" % (cmd, key, exp, len(value), cas, value)


class Node:
    """One memcached server: a pool of connections (aiomcache's), one deadline per round trip."""

    __slots__ = ("_deadlines", "addr", "closed", "connect_timeout", "gen", "gen_key", "guard", "pool", "timeout")

    def __init__(self, host: str, port: int, config: MemcachedTierConfig, guard: NodeGuard[Breaker]) -> None:
        self.addr = f"{host}:{port}"
        self.pool = MemcachePool(host, port, minsize=1, maxsize=config.pool_size)
        self.guard = guard
        self.timeout = config.timeout
        self.connect_timeout = config.connect_timeout
        self.gen: bytes | None = None
        self.gen_key = config.prefix.encode() + b":gen"
        self.closed = False
        self._deadlines = Deadlines()

    def __repr__(self) -> str:
        return f"Node({self.addr}, {self.guard.breaker.state})"

    def namespace(self) -> bytes:
        assert self.gen is not None
        return self.gen_key[:-3] + self.gen + b":"

    async def call(self, payload: bytes, parse: Callable[[asyncio.StreamReader], Awaitable[R]]) -> R:
        """Write ``payload`` and parse the reply, under the deadline. A connection whose exchange did not
        finish cleanly (deadline, cancellation, error) is discarded: an unread reply must never be read as
        the answer to the next request."""
        if self.closed:
            raise TierError("the memcached tier is closed", backend="memcached")
        # ``connect_timeout`` + ``timeout`` to get a connection (the pool may have to open one), then
        # ``timeout`` for the exchange; on the node's one timer (:class:`Deadlines`), not a timer per call.
        loop = asyncio.get_running_loop()
        deadlines = self._deadlines
        call = deadlines.start(loop, loop.time() + self.connect_timeout + self.timeout)
        try:
            conn: Connection = await self.pool.acquire()
            deadlines.move(call, loop.time() + self.timeout)
            try:
                conn.writer.write(payload)
                await conn.writer.drain()
                result = await parse(conn.reader)
            except BaseException:
                conn.reader.set_exception(ConnectionResetError("discarded after an unfinished exchange"))
                raise
            finally:
                self.pool.release(conn)  # closes it if discarded
        except BaseException as exc:
            # A TimeoutError instead when the deadline did the cancelling.
            deadlines.end(call, exc if isinstance(exc, asyncio.CancelledError) else None)
            raise
        deadlines.end(call)
        return result

    async def aclose(self) -> None:
        self.closed = True
        self._deadlines.close()
        await self.pool.clear()
