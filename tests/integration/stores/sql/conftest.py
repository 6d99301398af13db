"""Fixtures of the SQL store integration tests: a clean store per backend, and the tables dropped afterwards."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator

import pytest

from tierstore import StoreError
from tierstore.stores.sql import SqlStore, SqlStoreConfig

from _servers import MYSQL_URL, PG_URL
from _sql import BACKENDS, ENTITIES, open_store, url_of


@pytest.fixture(scope="module", autouse=True)
def _drop_tables() -> Iterator[None]:
    yield

    async def drop(url: str) -> None:
        store = SqlStoreConfig.from_url(url).build()
        try:
            await store.open()
            await store.drop_tables(*ENTITIES)
        except StoreError:
            pass  # server gone: nothing to clean
        finally:
            await store.aclose()

    for url in (PG_URL, MYSQL_URL):
        asyncio.run(drop(url))


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> AsyncIterator[SqlStore]:
    s = await open_store(url_of(request.param, tmp_path))
    try:
        yield s
    finally:
        await s.aclose()
