"""An asyncio TCP proxy that injects network faults between a client and a real server.

Put a :class:`FaultProxy` in front of a server, point the client under test at ``proxy.host:proxy.port``,
then switch faults on and off while the test runs::

    async with FaultProxy("127.0.0.1", 6379) as proxy:
        client = make_client(port=proxy.port)
        proxy.set_delay(0.05)    # 50 ms more per chunk, each direction
        proxy.blackhole()        # a hung server: bytes go in, nothing comes back
        proxy.drop()             # new connections are reset as soon as they are accepted
        await proxy.cut()        # every open connection is reset now
        proxy.reset()            # clean pass-through again

Faults apply to open connections as well as new ones, checked chunk by chunk:

* ``set_delay`` sleeps before forwarding each chunk read, in both directions.
* ``blackhole`` keeps reading from both sides and discards the bytes. A connection accepted while the
  blackhole is on never opens an upstream connection; it hangs until the client closes it or
  :meth:`FaultProxy.cut` / :meth:`FaultProxy.aclose` resets it. Bytes discarded from an open connection
  are lost for good, so turn the blackhole off only for connections that will not be reused.
* ``drop`` affects new connections only: they are accepted and reset at once.

The proxy owns every task it runs; :meth:`FaultProxy.aclose` resets all connections and waits for those
tasks, so nothing outlives it. If the upstream refuses a connection, the client's connection is reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from types import TracebackType
from typing import Self

__all__ = ["FaultProxy"]

_CHUNK = 64 * 1024
# struct linger {int l_onoff; int l_linger;}: on, 0 s -> close() sends RST instead of FIN.
_LINGER_RESET = struct.pack("ii", 1, 0)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close ``writer``'s connection abruptly, with a TCP RST where the platform allows it."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    writer.transport.abort()


class _Link:
    """One proxied client connection and, once opened, its upstream connection."""

    __slots__ = ("client", "task", "upstream")

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.task: asyncio.Task[None] | None = None
        self.upstream: asyncio.StreamWriter | None = None

    def reset(self) -> None:
        _reset(self.client)
        if self.upstream is not None:
            _reset(self.upstream)

    def close(self) -> None:
        self.client.close()
        if self.upstream is not None:
            self.upstream.close()


class FaultProxy:
    """A TCP proxy from ``listen_host:listen_port`` to ``upstream_host:upstream_port`` with injectable faults.

    ``listen_port=0`` (the default) binds a free port; :attr:`host` and :attr:`port` give the bound address
    after :meth:`start`. Use it as an async context manager, or call :meth:`start` and :meth:`aclose`.
    :attr:`connections` counts client connections open now; :attr:`total_connections` counts every
    connection accepted since start, dropped ones included.
    """

    host: str
    port: int

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.host = listen_host
        self.port = listen_port
        self.total_connections = 0
        self._delay = 0.0
        self._blackhole = False
        self._drop = False
        self._server: asyncio.Server | None = None
        self._closed = False
        self._links: set[_Link] = set()

    # -- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the listening socket and start accepting connections."""
        if self._server is not None or self._closed:
            raise RuntimeError("FaultProxy.start() may be called once, before aclose()")
        self._server = await asyncio.start_server(self._on_accept, self.host, self.port)
        sockname = self._server.sockets[0].getsockname()
        self.host, self.port = str(sockname[0]), int(sockname[1])

    async def aclose(self) -> None:
        """Stop listening, reset every open connection and wait for all of the proxy's tasks to end."""
        if self._closed:
            return
        self._closed = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        # Let handlers of connections accepted just before close() run, see _closed and reset.
        await asyncio.sleep(0)
        await self._reset_links(set(self._links))
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- faults ----------------------------------------------------------------------------------------

    def set_delay(self, seconds: float) -> None:
        """Add ``seconds`` of latency before each chunk is forwarded, in both directions (0 turns it off)."""
        if seconds < 0:
            raise ValueError("delay must be >= 0")
        self._delay = float(seconds)

    def blackhole(self, on: bool = True) -> None:
        """Keep accepting and reading, but forward nothing in either direction: a hung server."""
        self._blackhole = on

    def drop(self, on: bool = True) -> None:
        """Reset each new connection as soon as it is accepted; open connections are left alone."""
        self._drop = on

    async def cut(self) -> None:
        """Reset every open connection now (RST where possible); the proxy keeps accepting new ones."""
        await self._reset_links(set(self._links))

    def reset(self) -> None:
        """Turn every fault off: clean pass-through. Open connections stay open."""
        self._delay = 0.0
        self._blackhole = False
        self._drop = False

    @property
    def connections(self) -> int:
        """Client connections open now."""
        return len(self._links)

    # -- internals -------------------------------------------------------------------------------------

    async def _reset_links(self, links: set[_Link]) -> None:
        tasks: list[asyncio.Task[None]] = []
        current = asyncio.current_task()
        for link in links:
            link.reset()
            if link.task is not None and link.task is not current and not link.task.done():
                link.task.cancel()
                tasks.append(link.task)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _on_accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback, not a coroutine: each connection runs in a task the proxy owns and may cancel.
        # (On 3.11, cancelling the task in which asyncio's server runs a coroutine callback logs an error.)
        self.total_connections += 1
        if self._closed or self._drop:
            _reset(writer)
            return
        link = _Link(writer)
        self._links.add(link)
        link.task = asyncio.get_running_loop().create_task(
            self._run(link, reader), name=f"FaultProxy:{self.port}:conn{self.total_connections}"
        )

    async def _run(self, link: _Link, reader: asyncio.StreamReader) -> None:
        clean = False
        try:
            clean = await self._serve(link, reader)
        finally:
            self._links.discard(link)
            if clean:
                link.close()
            else:
                link.reset()

    async def _serve(self, link: _Link, client_reader: asyncio.StreamReader) -> bool:
        """Proxy one connection; True if it ended with EOF on both sides, False if it should be reset."""
        if self._blackhole:
            await self._pump(client_reader, None, link)
            return True
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            return False
        link.upstream = upstream_writer
        async with asyncio.TaskGroup() as group:
            to_upstream = group.create_task(self._pump(client_reader, upstream_writer, link))
            to_client = group.create_task(self._pump(upstream_reader, link.client, link))
        return to_upstream.result() and to_client.result()

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter | None, link: _Link
    ) -> bool:
        """Copy ``source`` to ``sink`` chunk by chunk, applying faults; True on EOF, False on an error."""
        try:
            while True:
                data = await source.read(_CHUNK)
                if not data:
                    if sink is not None and sink.can_write_eof():
                        sink.write_eof()
                    return True
                delay = self._delay
                if delay > 0:
                    await asyncio.sleep(delay)
                if sink is None or self._blackhole:
                    continue
                sink.write(data)
                await sink.drain()
        except OSError:
            # One side failed: reset both, so the other direction's pump sees EOF and ends too.
            link.reset()
            return False
