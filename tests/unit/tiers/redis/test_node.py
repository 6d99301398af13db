"""One Redis node's round trips (tiers/redis/protocol.py) against a local TCP server that answers ``+OK`` or stays
silent: the deadline of each round trip raises TimeoutError and drops the connection (a late reply must never be
read as the next request's), a cancelled call drops it too and stays a cancellation, and a clean exchange keeps
the connection for the next call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tierstore.tiers.health import Breaker, NodeGuard
from tierstore.tiers.redis.config import RedisTierConfig
from tierstore.tiers.redis.protocol import Node


class Server:
    def __init__(self) -> None:
        self.silent = False
        self.connections = 0
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while data := await reader.read(65536):
                if not self.silent:
                    writer.write(b"+OK\r\n" * data.count(b"*"))  # one reply per command (no "*" in arguments)
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    s = Server()
    srv = await asyncio.start_server(s.handle, "127.0.0.1", 0)
    s.port = srv.sockets[0].getsockname()[1]
    try:
        yield s
    finally:
        srv.close()


def _node(port: int, timeout: float = 0.05) -> Node:
    config = RedisTierConfig(hosts=(("127.0.0.1", port),), timeout=timeout)
    return Node("127.0.0.1", port, config, NodeGuard("n", Breaker(failures=5, cooldown=1.0, name="n")))


async def test_a_silent_server_times_out_and_the_connection_is_dropped(server: Server) -> None:
    node = _node(server.port)
    assert await node.call([("PING",)]) == [b"OK"]
    assert len(node._free) == 1
    server.silent = True
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(TimeoutError):
        await node.call([("PING",)])
    assert 0.04 <= loop.time() - began < 1
    assert node._free == []  # its reply may still come: never reused
    server.silent = False
    assert await node.call([("PING",)]) == [b"OK"]
    assert server.connections == 2
    await node.aclose()


async def test_each_round_trip_has_the_whole_budget(server: Server) -> None:
    node = _node(server.port, timeout=0.05)
    for _ in range(4):  # together longer than one deadline: none of them is cut short
        assert await node.call([("PING",)]) == [b"OK"]
        await asyncio.sleep(0.02)
    assert server.connections == 1
    await node.aclose()


async def test_a_cancelled_call_stays_cancelled_and_drops_its_connection(server: Server) -> None:
    node = _node(server.port, timeout=5)
    assert await node.call([("PING",)]) == [b"OK"]
    server.silent = True
    task = asyncio.create_task(node.call([("PING",)]))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert node._free == []
    server.silent = False
    assert await node.call([("PING",)]) == [b"OK"]
    await asyncio.sleep(0.01)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    await node.aclose()


async def test_waiting_for_a_free_connection_counts_against_the_deadline(server: Server) -> None:
    config = RedisTierConfig(hosts=(("127.0.0.1", server.port),), timeout=0.05, pool_size=1)
    node = Node("127.0.0.1", server.port, config, NodeGuard("n", Breaker(failures=5, cooldown=1.0, name="n")))
    server.silent = True
    first = asyncio.create_task(node.call([("PING",)]))
    await asyncio.sleep(0.03)
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(TimeoutError):
        await node.call([("PING",)])  # waits for the one connection, then for the reply
    assert loop.time() - began < 0.09
    with pytest.raises(TimeoutError):
        await first
    await node.aclose()
