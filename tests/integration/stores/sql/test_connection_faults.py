"""What a server-side error does to the pooled connection, and statement deadlines, on the real servers.

An error after which the server closes the session (a packet over MariaDB's ``max_allowed_packet``, a
connection the server killed or terminated) never leaves a dead socket in the pool: the next, unrelated call
works. A statement that outlives ``command_timeout`` (or a lock wait, or SQLite's ``busy_timeout``) is one
``StoreTimeout``, not retried, and the connection is cancelled cleanly (kept or dropped, never reused
mid-reply), with nothing left for the event loop to complain about.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from tierstore import StoreError, StoreTimeout
from tierstore.stores.sql import SqlStore, SqlStoreConfig
from tierstore.testing.proxy import FaultProxy

from _sql import NETWORK, K, Kinds, open_store, url_of


@pytest.fixture
async def loop_complaints() -> AsyncIterator[list[str]]:
    """What the event loop reports through its exception handler ("Future exception was never retrieved"
    and the like) while the test runs; checked after a garbage collection."""
    seen: list[str] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: seen.append(str(ctx.get("message"))))
    yield seen
    loop.set_exception_handler(previous)


async def _settle(seen: list[str]) -> None:
    for _ in range(3):
        gc.collect()
        await asyncio.sleep(0)
    assert seen == []


def _pool(store: SqlStore) -> Any:
    return store._driver  # the pooled driver: its connection count is what these tests watch


async def _admin(backend: str) -> Any:
    """A second, plain client connection to the same database (it holds locks, kills sessions)."""
    url = sa.make_url(url_of(backend, "."))
    if backend == "postgres":
        import asyncpg

        return await asyncpg.connect(
            host=url.host, port=url.port, user=url.username, password=url.password, database=url.database
        )
    import aiomysql

    return await aiomysql.connect(
        host=url.host or "127.0.0.1", port=url.port or 3306, user=url.username or "root",
        password=url.password or "", db=url.database, autocommit=True,
    )


@pytest.mark.mysql
async def test_a_packet_over_max_allowed_packet_does_not_break_the_next_write(tmp_path: os.PathLike[str]) -> None:
    store = await open_store(url_of("mysql", tmp_path, "pool_size=1"))
    try:
        admin = await _admin("mysql")
        async with admin.cursor() as cur:
            await cur.execute("SELECT @@max_allowed_packet")
            (limit,) = await cur.fetchone()
        admin.close()
        await store.put(K, Kinds("before"))
        with pytest.raises(StoreError) as info:
            await store.put(K, Kinds("big", text="x" * (int(limit) + 1024)))
        assert "1153" in str(info.value) and not isinstance(info.value, StoreTimeout)
        # The server closed that session: the pool must not hand its socket to the next, unrelated write.
        assert (await store.put(K, Kinds("after", n=1))).n == 1
        got = await store.get(K, ("after",))
        assert got is not None and got.n == 1
        assert await store.get(K, ("big",)) is None
    finally:
        await store.aclose()


async def _session_ids(backend: str, store: SqlStore) -> list[int]:
    return [
        held.conn.get_server_pid() if backend == "postgres" else held.conn.thread_id() for held in _pool(store)._idle
    ]


@pytest.mark.parametrize("backend", NETWORK)
async def test_a_session_the_server_ended_is_not_reused(backend: str, tmp_path: os.PathLike[str]) -> None:
    store = await open_store(url_of(backend, tmp_path, "pool_size=2"))
    admin = await _admin(backend)
    try:
        await asyncio.gather(*(store.put(K, Kinds(f"k{i}")) for i in range(2)))  # two pooled connections
        ids = await _session_ids(backend, store)
        assert ids
        for sid in ids:
            if backend == "postgres":
                await admin.execute("SELECT pg_terminate_backend($1)", sid)
            else:
                async with admin.cursor() as cur:
                    await cur.execute(f"KILL CONNECTION {int(sid)}")
        # Wait until the client has seen the close (an event on the socket, not a sleep of a guessed length).
        for _ in range(200):
            if not any(_pool(store)._alive(h) for h in _pool(store)._idle):
                break
            await asyncio.sleep(0.01)
        # A write is never repeated, so it must not be sent on a dead socket in the first place.
        assert (await store.put(K, Kinds("k0", n=5))).n == 5
        got = await store.get(K, ("k0",))
        assert got is not None and got.n == 5
    finally:
        await store.aclose()
        if backend == "postgres":
            await admin.close()
        else:
            admin.close()


async def _hold_lock(backend: str, admin: Any) -> None:
    """Take a lock on Kinds' table that every store statement on it waits for."""
    if backend == "postgres":
        await admin.execute("BEGIN")
        await admin.execute(f'LOCK TABLE "{K.table}" IN ACCESS EXCLUSIVE MODE')
    else:
        async with admin.cursor() as cur:
            await cur.execute("BEGIN")
            await cur.execute(f"SELECT id FROM `{K.table}` WHERE id = 'locked' FOR UPDATE")  # noqa: S608 (our table name)


async def _release_lock(backend: str, admin: Any) -> None:
    if backend == "postgres":
        await admin.execute("ROLLBACK")
    else:
        async with admin.cursor() as cur:
            await cur.execute("ROLLBACK")


@pytest.mark.parametrize("backend", NETWORK)
async def test_a_statement_past_command_timeout_is_one_typed_timeout(
    backend: str, tmp_path: os.PathLike[str], loop_complaints: list[str]
) -> None:
    store = await open_store(url_of(backend, tmp_path, "command_timeout=300ms&pool_size=2"))
    admin = await _admin(backend)
    try:
        await store.put(K, Kinds("locked"))
        await _hold_lock(backend, admin)
        try:
            before = store.stats.round_trips
            with pytest.raises(StoreTimeout) as info:
                await store.put(K, Kinds("locked", n=1))
            assert "command_timeout" in str(info.value) and info.value.backend == backend
            if backend == "postgres":  # the table lock blocks reads there too; a timed-out read is not repeated
                before = store.stats.round_trips
                with pytest.raises(StoreTimeout):
                    await store.get(K, ("locked",))
                assert store.stats.round_trips - before == 1
        finally:
            await _release_lock(backend, admin)
        # The cancelled statements left nothing behind: the connections work, the write did not happen.
        got = await store.get(K, ("locked",))
        assert got is not None and got.n == 0
        assert (await store.put(K, Kinds("locked", n=2))).n == 2
        assert _pool(store)._count <= 2
        await _settle(loop_complaints)
    finally:
        await store.aclose()
        if backend == "postgres":
            await admin.close()
        else:
            admin.close()


@pytest.mark.parametrize("backend", NETWORK)
async def test_command_timeout_defaults_to_thirty_seconds_and_can_be_turned_off(
    backend: str, tmp_path: os.PathLike[str]
) -> None:
    from tierstore.stores.sql import SqlStoreConfig

    url = url_of(backend, tmp_path)
    assert SqlStoreConfig.from_url(url).command_timeout == 30.0
    assert SqlStoreConfig.from_url(url + ("&" if "?" in url else "?") + "command_timeout=none").command_timeout is None
    assert SqlStoreConfig.from_url(url + ("&" if "?" in url else "?") + "command_timeout=0").command_timeout is None


@pytest.mark.sqlite
async def test_sqlite_busy_timeout_is_a_typed_timeout(tmp_path: os.PathLike[str]) -> None:
    store = await open_store(url_of("sqlite", tmp_path, "busy_timeout=100ms"))
    other = sqlite3.connect(f"{tmp_path}/store.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
        with pytest.raises(StoreTimeout) as info:
            await store.put(K, Kinds("x"))
        assert "busy_timeout" in str(info.value)
        other.execute("ROLLBACK")
        assert (await store.put(K, Kinds("x", n=1))).n == 1
    finally:
        other.close()
        await store.aclose()


@pytest.mark.parametrize("backend", NETWORK)
async def test_a_server_that_stops_answering_is_a_timeout_and_its_connection_is_not_reused(
    backend: str, tmp_path: os.PathLike[str], loop_complaints: list[str]
) -> None:
    url = url_of(backend, tmp_path)
    u = sa.make_url(url)
    async with FaultProxy(u.host or "127.0.0.1", u.port or 0) as proxy:
        proxied = url.replace(f":{u.port}/", f":{proxy.port}/", 1)
        store = await open_store(proxied + ("&" if "?" in proxied else "?") + "command_timeout=200ms&pool_size=1")
        try:
            await store.put(K, Kinds("h", n=1))
            proxy.blackhole()
            with pytest.raises(StoreTimeout) as info:
                await store.get(K, ("h",))
            assert "command_timeout" in str(info.value)
            proxy.reset()
            got = await store.get(K, ("h",))  # a fresh (or cleanly cancelled) connection, not one mid-reply
            assert got is not None and got.n == 1
            assert (await store.put(K, Kinds("h", n=2))).n == 2
            await _settle(loop_complaints)
        finally:
            await store.aclose()


@pytest.mark.postgres
async def test_a_connection_to_a_read_only_server_is_not_reused_for_the_next_write(
    tmp_path: os.PathLike[str],
) -> None:
    """After a failover a pooled connection can sit on the demoted writer, which refuses writes
    (read_only_sql_transaction): it is dropped like a lost one, so the next write reconnects."""
    import uuid

    base = url_of("postgres", tmp_path)
    name = f"ro_{uuid.uuid4().hex[:8]}"
    admin = await _admin("postgres")
    await admin.execute(f"CREATE DATABASE {name}")
    url = str(sa.make_url(base).set(database=name).render_as_string(hide_password=False))
    try:
        store = await open_store(url + "?pool_size=1")
        await store.aclose()
        await admin.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
        store = SqlStoreConfig.from_url(url + "?pool_size=1").build()
        try:
            await store.open()
            with pytest.raises(StoreError, match="read-only"):
                await store.put(K, Kinds("k1"))  # on a session that started read-only
            await admin.execute(f"ALTER DATABASE {name} RESET default_transaction_read_only")
            assert (await store.put(K, Kinds("k1", n=2))).n == 2  # a new session: writes again
        finally:
            await store.aclose()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
