"""Fixtures of the memcached tier tests: a memcached of the test's own, and a plain client of it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiomcache
import pytest

from _tiers import OwnMemcached


@pytest.fixture
def own() -> Iterator[OwnMemcached]:
    server = OwnMemcached()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def own_raw(own: OwnMemcached) -> AsyncIterator[aiomcache.Client]:
    client = aiomcache.Client("127.0.0.1", own.port)
    try:
        yield client
    finally:
        await client.close()
