"""The pooled network drivers (PostgreSQL, MariaDB): connect errors, lost and hung connections, waiting for a
free connection. Network faults come from ``tierstore.testing.FaultProxy`` in front of the real server.
"""

from __future__ import annotations

import asyncio
import os

import pytest
import sqlalchemy as sa

from tierstore import StoreError
from tierstore.stores.sql import SqlStoreConfig
from tierstore.testing.proxy import FaultProxy

from _sql import NETWORK, K, Kinds, open_store, url_of


@pytest.mark.parametrize("backend", NETWORK)
async def test_connect_failure_names_backend_and_hides_password(backend: str) -> None:
    scheme = "postgresql+asyncpg" if backend == "postgres" else "mysql+aiomysql"
    store = SqlStoreConfig.from_url(f"{scheme}://user:s3cret@127.0.0.1:1/db?connect_timeout=2s").build()
    with pytest.raises(StoreError) as info:
        await store.open()
    text = str(info.value)
    assert "s3cret" not in text and "***" in text and backend in text
    with pytest.raises(StoreError):  # still failing, not half-open
        await store.open()
    with pytest.raises(StoreError):
        await store.get(K, ("x",))
    await store.aclose()


def _proxied(url: str, port: int) -> str:
    return url.replace(f":{sa.make_url(url).port}/", f":{port}/", 1)


@pytest.mark.parametrize("backend", NETWORK)
async def test_lost_connections_are_replaced(backend: str, tmp_path: os.PathLike[str]) -> None:
    url = url_of(backend, tmp_path)
    u = sa.make_url(url)
    async with FaultProxy(u.host or "127.0.0.1", u.port or 0) as proxy:
        store = await open_store(_proxied(url, proxy.port))
        try:
            await store.put(K, Kinds("p"))
            await asyncio.gather(*(store.get(K, ("p",)) for _ in range(4)))  # several pooled connections
            await proxy.cut()  # like a server restart: every pooled connection is dead
            assert await store.get(K, ("p",)) is not None  # a read retries once on a new connection
            await proxy.cut()
            await asyncio.sleep(0.05)
            try:
                await store.put(K, Kinds("p", n=1))  # a write is not retried, but must fail cleanly
            except StoreError as exc:
                assert exc.backend == backend
            assert (await store.put(K, Kinds("p", n=2))).n == 2
        finally:
            await store.aclose()


@pytest.mark.parametrize("backend", NETWORK)
async def test_cancelled_operation_does_not_poison_the_pool(backend: str, tmp_path: os.PathLike[str]) -> None:
    url = url_of(backend, tmp_path)
    u = sa.make_url(url)
    async with FaultProxy(u.host or "127.0.0.1", u.port or 0) as proxy:
        store = await open_store(_proxied(url, proxy.port) + "?pool_size=2")
        try:
            await store.put(K, Kinds("q", n=1))
            proxy.blackhole()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(store.get(K, ("q",)), 0.3)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(store.put(K, Kinds("q", n=2)), 0.3)
            proxy.reset()
            # The hung connections were thrown away, not handed to the next caller mid-reply.
            got = await asyncio.gather(*(store.get(K, ("q",)) for _ in range(6)))
            assert all(g is not None and g.n == 1 for g in got)
        finally:
            await store.aclose()


@pytest.mark.parametrize("backend", NETWORK)
async def test_callers_wait_for_a_free_connection(backend: str, tmp_path: os.PathLike[str]) -> None:
    store = await open_store(url_of(backend, tmp_path, "pool_size=1&pool_timeout=20s"))
    try:
        await store.put(K, Kinds("w"))
        got = await asyncio.gather(*(store.get(K, ("w",)) for _ in range(20)))
        assert all(g is not None for g in got)
        assert store._driver._count == 1  # type: ignore[attr-defined]
    finally:
        await store.aclose()
