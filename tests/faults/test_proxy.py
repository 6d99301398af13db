"""FaultProxy (tierstore/testing/proxy.py) in front of the real Redis, spoken to with plain asyncio streams."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from tierstore.testing import FaultProxy

from _servers import REDIS_URL, endpoints, require

pytestmark = [pytest.mark.faults, pytest.mark.redis]

PING = b"PING\r\n"
PONG = b"+PONG\r\n"
TIMEOUT = 2.0
REDIS_HOST, REDIS_PORT = endpoints(REDIS_URL)[0]


@pytest.fixture(autouse=True)
def _redis_is_up() -> None:
    require(REDIS_URL, "redis")


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    async with FaultProxy(REDIS_HOST, REDIS_PORT) as p:
        yield p


async def _connect(p: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(p.host, p.port), TIMEOUT)


async def _ping(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, within: float = TIMEOUT) -> bytes:
    writer.write(PING)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(PONG)), within)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), TIMEOUT)


async def _wait_until(predicate: Callable[[], bool], within: float = TIMEOUT) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def _assert_broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The connection is closed or reset: a PING gets no PONG, but EOF or an error, promptly."""
    try:
        writer.write(PING)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(100), TIMEOUT)
    except (ConnectionError, BrokenPipeError):
        return
    assert data == b""


async def test_pass_through(proxy: FaultProxy) -> None:
    assert proxy.host == "127.0.0.1"
    assert proxy.port > 0
    reader, writer = await _connect(proxy)
    assert await _ping(reader, writer) == PONG
    assert await _ping(reader, writer) == PONG
    assert proxy.connections == 1
    assert proxy.total_connections == 1
    await _close(writer)
    await _wait_until(lambda: proxy.connections == 0)
    assert proxy.total_connections == 1


async def test_large_payload_round_trips(proxy: FaultProxy) -> None:
    key = f"tierstore-test:proxy:{uuid.uuid4().hex}".encode()
    value = os.urandom(300_000)  # several chunks each way
    reader, writer = await _connect(proxy)
    try:
        writer.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(value), value))
        writer.write(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key))
        await writer.drain()
        assert await asyncio.wait_for(reader.readexactly(5), TIMEOUT) == b"+OK\r\n"
        header = await asyncio.wait_for(reader.readline(), TIMEOUT)
        assert header == b"$%d\r\n" % len(value)
        assert await asyncio.wait_for(reader.readexactly(len(value) + 2), TIMEOUT) == value + b"\r\n"
    finally:
        writer.write(b"*2\r\n$3\r\nDEL\r\n$%d\r\n%s\r\n" % (len(key), key))
        await writer.drain()
        await asyncio.wait_for(reader.readline(), TIMEOUT)
        await _close(writer)


async def test_delay_adds_latency_both_ways(proxy: FaultProxy) -> None:
    delay = 0.15
    reader, writer = await _connect(proxy)
    assert await _ping(reader, writer) == PONG
    proxy.set_delay(delay)
    start = time.monotonic()
    assert await _ping(reader, writer) == PONG
    elapsed = time.monotonic() - start
    # One chunk each way, each held back by the delay (the small slack is the timer's resolution).
    assert elapsed >= 2 * delay - 0.005
    proxy.set_delay(0)
    await _close(writer)


async def test_negative_delay_is_rejected(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError):
        proxy.set_delay(-1)


async def test_blackhole_hangs_open_and_new_connections(proxy: FaultProxy) -> None:
    old_reader, old_writer = await _connect(proxy)
    assert await _ping(old_reader, old_writer) == PONG
    proxy.blackhole()
    with pytest.raises(TimeoutError):
        await _ping(old_reader, old_writer, within=0.3)

    new_reader, new_writer = await _connect(proxy)  # still accepted
    with pytest.raises(TimeoutError):
        await _ping(new_reader, new_writer, within=0.3)
    assert proxy.connections == 2
    await _close(old_writer)
    await _close(new_writer)


async def test_drop_refuses_new_connections(proxy: FaultProxy) -> None:
    open_reader, open_writer = await _connect(proxy)
    proxy.drop()
    try:
        reader, writer = await _connect(proxy)
    except ConnectionError:
        pass  # reset before the handshake finished: refused outright
    else:
        await _assert_broken(reader, writer)
        await _close(writer)
    await _wait_until(lambda: proxy.total_connections == 2)
    assert proxy.connections == 1
    # A connection opened before drop() is left alone.
    assert await _ping(open_reader, open_writer) == PONG
    await _close(open_writer)


async def test_cut_breaks_open_connections(proxy: FaultProxy) -> None:
    conns = [await _connect(proxy) for _ in range(3)]
    for reader, writer in conns:
        assert await _ping(reader, writer) == PONG
    assert proxy.connections == 3
    await proxy.cut()
    assert proxy.connections == 0
    for reader, writer in conns:
        await _assert_broken(reader, writer)
        await _close(writer)
    # The proxy itself keeps serving.
    reader, writer = await _connect(proxy)
    assert await _ping(reader, writer) == PONG
    await _close(writer)


async def test_cut_resets_with_rst(proxy: FaultProxy) -> None:
    reader, writer = await _connect(proxy)
    assert await _ping(reader, writer) == PONG
    await proxy.cut()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(100), TIMEOUT)
    await _close(writer)


async def test_reset_restores_pass_through(proxy: FaultProxy) -> None:
    proxy.set_delay(5)
    proxy.blackhole()
    proxy.drop()
    proxy.reset()
    reader, writer = await _connect(proxy)
    start = time.monotonic()
    assert await _ping(reader, writer) == PONG
    assert time.monotonic() - start < 5
    await _close(writer)


async def test_upstream_down_resets_client() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        free_port = s.getsockname()[1]
    async with FaultProxy("127.0.0.1", free_port) as p:
        reader, writer = await _connect(p)
        await _assert_broken(reader, writer)
        await _close(writer)
        await _wait_until(lambda: p.connections == 0)


async def test_aclose_ends_every_connection_and_task() -> None:
    before = asyncio.all_tasks()
    p = FaultProxy(REDIS_HOST, REDIS_PORT)
    await p.start()
    conns = [await _connect(p) for _ in range(2)]
    assert await _ping(*conns[0]) == PONG
    p.blackhole()
    blackholed = await _connect(p)
    p.reset()
    p.set_delay(10)  # a pump is asleep in its delay when aclose() comes
    conns[1][1].write(PING)
    await conns[1][1].drain()
    await _wait_until(lambda: p.connections == 3)
    await asyncio.sleep(0.05)

    await p.aclose()
    assert p.connections == 0
    assert asyncio.all_tasks() - before == set()
    for reader, writer in [*conns, blackholed]:
        await _assert_broken(reader, writer)
        await _close(writer)
    with pytest.raises(OSError):
        await asyncio.open_connection(p.host, p.port)
    await p.aclose()  # idempotent


async def test_start_twice_is_an_error(proxy: FaultProxy) -> None:
    with pytest.raises(RuntimeError):
        await proxy.start()
