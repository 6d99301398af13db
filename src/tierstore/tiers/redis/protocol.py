"""RESP on the wire, and the connections to one Redis server.

The tier packs its commands itself (:func:`pack`: about twice as fast as redis-py's general packer for MGET
and EVALSHA) and sends them through redis-py ``Connection`` objects (hiredis parser) held per node, with no
client-side retries: each round trip has one deadline, and a connection whose exchange did not finish
cleanly is never reused (a late reply must not be read as the answer to the next request).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError

from tierstore.errors import TierError
from tierstore.logs import get_logger
from tierstore.tiers.deadlines import Deadlines

if TYPE_CHECKING:
    from tierstore.tiers.health import Breaker, NodeGuard
    from tierstore.tiers.redis.config import RedisTierConfig

__all__ = ["Node", "pack"]

log = get_logger("tierstore.cache.redis")


def _arg(a: Any) -> bytes:
    if isinstance(a, bytes):
        return a
    if isinstance(a, str):
        return a.encode()
    if isinstance(a, int):
        return b"%d" % a
    raise TypeError(f"cannot send {type(a).__name__} to Redis")


def pack(commands: Sequence[Sequence[Any]]) -> bytes:
    """Commands in RESP, ready to write (about twice as fast as redis-py's general packer for MGET/EVALSHA)."""
    out: list[bytes] = []
    append = out.append
    for cmd in commands:
        append(b"*%d\r\n" % len(cmd))
        for a in cmd:
            b = _arg(a)
            append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class Node:
    """Connections to one Redis server, each round trip under one deadline, no client-side retries."""

    __slots__ = ("_deadlines", "_free", "_kwargs", "_sem", "addr", "closed", "connect_timeout", "connection_class",
                 "guard", "host", "port", "timeout")

    def __init__(self, host: str, port: int, config: RedisTierConfig, guard: NodeGuard[Breaker]) -> None:
        self.host = host
        self.port = port
        self.addr = f"{host}:{port}"
        self.guard = guard
        self.timeout = config.timeout
        self.connect_timeout = config.connect_timeout
        self.closed = False
        self._free: list[Connection] = []
        self._deadlines = Deadlines()
        self._sem = asyncio.Semaphore(config.pool_size)
        kwargs: dict[str, Any] = {
            "host": host,
            "port": port,
            "db": config.db,
            "username": config.username,
            "password": config.password,
            "socket_timeout": None,  # the round trip's deadline covers reads and writes
            "socket_connect_timeout": config.connect_timeout,
            "retry": Retry(NoBackoff(), 0),
        }
        self.connection_class: type[Connection] = Connection
        if config.tls:
            self.connection_class = SSLConnection
            kwargs["ssl_cert_reqs"] = "required" if config.tls_verify else "none"
            kwargs["ssl_check_hostname"] = config.tls_verify
            if config.tls_ca:
                kwargs["ssl_ca_certs"] = config.tls_ca
        self._kwargs = kwargs

    def __repr__(self) -> str:
        return f"Node({self.addr}, {self.guard.breaker.state})"

    async def call(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send ``commands`` in one write and read their replies (a ``ResponseError`` reply is returned in
        place, not raised). Raises on a connection problem or when the deadline passes."""
        return await self.call_packed(pack(commands), len(commands))

    async def call_packed(self, packed: bytes, n: int) -> list[Any]:
        """:meth:`call` for ``n`` commands already in RESP (see :func:`pack`)."""
        if self.closed:
            raise TierError("the Redis tier is closed", backend="redis")
        # One deadline: ``timeout`` for the exchange, waiting for a free connection included; a connection made
        # first gets ``connect_timeout`` of its own (a TLS handshake and AUTH must not eat the budget of the
        # request itself). On the node's one timer (:class:`Deadlines`), not a timer per call.
        loop = asyncio.get_running_loop()
        deadlines = self._deadlines
        call = deadlines.start(loop, loop.time() + self.timeout)
        try:
            async with self._sem:
                conn = self._free.pop() if self._free else self.connection_class(**self._kwargs)
                try:
                    if not conn.is_connected:
                        deadlines.move(call, loop.time() + self.connect_timeout)
                        await conn.connect()  # type: ignore[no-untyped-call]
                        deadlines.move(call, loop.time() + self.timeout)
                    await conn.send_packed_command(packed, check_health=False)
                    out: list[Any] = []
                    for _ in range(n):
                        try:
                            out.append(await conn.read_response())
                        except ResponseError as exc:
                            out.append(exc)
                except BaseException:
                    # A reply may still be on its way: this connection is never reused.
                    await conn.disconnect(nowait=True)
                    raise
                if self.closed:
                    await conn.disconnect(nowait=True)
                else:
                    self._free.append(conn)
        except BaseException as exc:
            # A TimeoutError instead when the deadline did the cancelling.
            deadlines.end(call, exc if isinstance(exc, asyncio.CancelledError) else None)
            raise
        deadlines.end(call)
        return out

    async def aclose(self) -> None:
        self.closed = True
        self._deadlines.close()
        free, self._free = self._free, []
        for conn in free:
            try:
                await conn.disconnect(nowait=True)
            except Exception as exc:  # closing must not fail
                log.debug("redis %s: disconnect failed: %r", self.addr, exc)
