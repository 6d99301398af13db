"""The shipped Store contract suite on the project's own stores: memory, SQLite, PostgreSQL, MariaDB, DynamoDB,
and a sharded store over two in-process stores.

The suite's tables (``tierstore_contract_*``) are created where missing and emptied before each check.
``dead_store`` points at a local port nothing listens on (SQLite: a file in a directory that does not exist),
so the failure is immediate rather than a timeout.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator

import pytest

from tierstore import ShardedStoreConfig
from tierstore.backends import Store
from tierstore.config import store_config
from tierstore.testing.contract import StoreContract

from _servers import DYNAMODB_URL, MYSQL_URL, PG_URL, store_url


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with_port(url: str, port: int) -> str:
    """``url`` with the port of its (single) host replaced."""
    scheme, rest = url.split("://", 1)
    netloc, sep, tail = rest.partition("/")
    host = netloc.rsplit(":", 1)[0] if ":" in netloc.rsplit("@", 1)[-1] else netloc
    return f"{scheme}://{host}:{port}{sep}{tail}"


async def _serve(url: str) -> AsyncIterator[Store]:
    async for store in _serve_built(_unopened(url)):
        yield store


async def _serve_built(store: Store) -> AsyncIterator[Store]:
    await store.open()
    try:
        yield store
    finally:
        await store.aclose()


def _unopened(url: str) -> Store:
    store = store_config(url).build()
    assert isinstance(store, Store)
    return store


class TestMemoryStore(StoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[Store]:
        async for s in _serve("memory://"):
            yield s


class TestShardedMemoryStore(StoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[Store]:
        sharded = ShardedStoreConfig(router="m1=0-511,m2=512-1023", stores={"m1": "memory://", "m2": "memory://"})
        async for s in _serve_built(sharded.build()):
            yield s


@pytest.mark.sqlite
class TestSqliteStore(StoreContract):
    @pytest.fixture
    async def store(self, tmp_path: os.PathLike[str]) -> AsyncIterator[Store]:
        async for s in _serve(store_url("sqlite", tmp_path)):
            yield s

    @pytest.fixture
    def dead_store(self, tmp_path: os.PathLike[str]) -> Store:
        return _unopened(f"sqlite+aiosqlite:///{tmp_path}/no/such/directory/store.db")


@pytest.mark.postgres
class TestPostgresStore(StoreContract):
    @pytest.fixture
    async def store(self, tmp_path: os.PathLike[str]) -> AsyncIterator[Store]:
        async for s in _serve(store_url("postgres", tmp_path)):
            yield s

    @pytest.fixture
    def dead_store(self) -> Store:
        return _unopened(_with_port(PG_URL, _unused_port()).split("?")[0] + "?connect_timeout=1s")


@pytest.mark.mysql
class TestMysqlStore(StoreContract):
    @pytest.fixture
    async def store(self, tmp_path: os.PathLike[str]) -> AsyncIterator[Store]:
        async for s in _serve(store_url("mysql", tmp_path)):
            yield s

    @pytest.fixture
    def dead_store(self) -> Store:
        return _unopened(_with_port(MYSQL_URL, _unused_port()).split("?")[0] + "?connect_timeout=1s")


@pytest.mark.dynamodb
class TestDynamoStore(StoreContract):
    expected_failures = {
        "test_a_closed_store_raises_only_tierstore_errors": (
            "a closed DynamoStore lets aiohttp's RuntimeError('Session is closed') through instead of a StoreError"
        ),
        "test_scan_pages_come_in_key_order": (
            "DynamoDB scans in its own hash order, not key order (resuming after the last key seen still covers "
            "every item once)"
        ),
    }

    @pytest.fixture
    async def store(self, tmp_path: os.PathLike[str]) -> AsyncIterator[Store]:
        async for s in _serve(store_url("dynamodb", tmp_path)):
            yield s

    @pytest.fixture
    def dead_store(self) -> Store:
        endpoint = f"http://127.0.0.1:{_unused_port()}"
        region = DYNAMODB_URL.split("://", 1)[1].split("?", 1)[0] or "us-east-1"
        return _unopened(
            f"dynamodb://{region}?endpoint_url={endpoint}&attempts=2&backoff_base=1ms&backoff_cap=2ms"
            "&connect_timeout=500ms"
        )
