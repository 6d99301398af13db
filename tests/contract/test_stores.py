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


UNSHARDED = {"test_scatter_gather_merges_every_shard": "one store, not shards: ScatterGather is the sharded store's"}


class TestMemoryStore(StoreContract):
    not_applicable = {**UNSHARDED, "test_a_server_that_is_down_is_a_store_error": "in-process: no server to lose"}

    @pytest.fixture
    async def store(self) -> AsyncIterator[Store]:
        async for s in _serve("memory://"):
            yield s


class TestShardedMemoryStore(StoreContract):
    not_applicable = {
        "test_query_on_an_index_partitioned_unlike_the_table": (
            "such an index spans every shard: the sharded store refuses it and points to scatter_gather"
        ),
        "test_sparse_index_partitioned_unlike_the_table": (
            "such an index spans every shard: the sharded store refuses it and points to scatter_gather"
        ),
        "test_a_server_that_is_down_is_a_store_error": "its shards are in-process stores: no server to lose",
        "test_scan_pages_through_every_item_once": "not Scannable: resharding scans each shard's own store",
        "test_scan_pages_come_in_key_order": "not Scannable: resharding scans each shard's own store",
        "test_restore_many_writes_items_exactly_as_given": "not Scannable: resharding restores into each shard",
    }

    @pytest.fixture
    async def store(self) -> AsyncIterator[Store]:
        sharded = ShardedStoreConfig(router="m1=0-511,m2=512-1023", stores={"m1": "memory://", "m2": "memory://"})
        async for s in _serve_built(sharded.build()):
            yield s


@pytest.mark.sqlite
class TestSqliteStore(StoreContract):
    not_applicable = UNSHARDED

    @pytest.fixture
    async def store(self, tmp_path: os.PathLike[str]) -> AsyncIterator[Store]:
        async for s in _serve(store_url("sqlite", tmp_path)):
            yield s

    @pytest.fixture
    def dead_store(self, tmp_path: os.PathLike[str]) -> Store:
        return _unopened(f"sqlite+aiosqlite:///{tmp_path}/no/such/directory/store.db")


@pytest.mark.postgres
class TestPostgresStore(StoreContract):
    not_applicable = UNSHARDED

    @pytest.fixture
    async def store(self, tmp_path: os.PathLike[str]) -> AsyncIterator[Store]:
        async for s in _serve(store_url("postgres", tmp_path)):
            yield s

    @pytest.fixture
    def dead_store(self) -> Store:
        return _unopened(_with_port(PG_URL, _unused_port()).split("?")[0] + "?connect_timeout=1s")


@pytest.mark.mysql
class TestMysqlStore(StoreContract):
    not_applicable = UNSHARDED

    @pytest.fixture
    async def store(self, tmp_path: os.PathLike[str]) -> AsyncIterator[Store]:
        async for s in _serve(store_url("mysql", tmp_path)):
            yield s

    @pytest.fixture
    def dead_store(self) -> Store:
        return _unopened(_with_port(MYSQL_URL, _unused_port()).split("?")[0] + "?connect_timeout=1s")


@pytest.mark.dynamodb
class TestDynamoStore(StoreContract):
    not_applicable = {
        **UNSHARDED,
        "test_scan_pages_come_in_key_order": "DynamoDB scans in its own hash order (paging still covers every item)",
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
