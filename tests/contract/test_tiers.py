"""The shipped CacheTier contract suite on the project's own tiers: the in-process tier, Redis, Redis Cluster,
memcached, and a sharded tier over two in-process tiers.

Each shared tier gets a fresh key prefix per test; the second instance of ``other_process_tier`` shares it,
``other_namespace_tier`` has its own, and ``dead_tier`` points at a local port nothing listens on (so a
connection is refused at once rather than timing out).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from tierstore import ShardedTierConfig
from tierstore.backends import CacheTier
from tierstore.config import tier_config
from tierstore.testing.contract import CacheTierContract, LocalTierContract

from _servers import tier_url


def _prefix() -> str:
    return f"c{uuid.uuid4().hex[:12]}"


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _opened(url: str) -> CacheTier:
    tier = tier_config(url).build()
    assert isinstance(tier, CacheTier)
    await tier.open()
    return tier


async def _serve(url: str) -> AsyncIterator[CacheTier]:
    tier = await _opened(url)
    try:
        yield tier
    finally:
        await tier.aclose()


# Checks that need a server or a second instance: an in-process tier has neither.
IN_PROCESS_TIER = {
    "test_a_server_that_is_down_fails_open": "in-process: there is no server to lose",
    "test_a_lease_holds_across_instances": "in-process: no other instance shares its entries",
    "test_an_invalidation_from_another_instance_drops_the_fill": "in-process: no other instance shares its entries",
    "test_writes_and_clear_from_another_instance_are_seen": "in-process: no other instance shares its entries",
    "test_clear_and_invalidations_stay_in_their_namespace": "in-process: one instance is one namespace",
}


class TestMemoryTier(LocalTierContract):
    not_applicable = IN_PROCESS_TIER

    @pytest.fixture
    async def tier(self) -> AsyncIterator[CacheTier]:
        async for t in _serve("memory://"):
            yield t


class TestShardedMemoryTier(CacheTierContract):
    not_applicable = {
        **IN_PROCESS_TIER,
        "test_an_empty_fill_releases_the_lease": (
            "its nodes are in-process tiers: the tiered path never sends them an empty fill"
        ),
    }

    @pytest.fixture
    async def tier(self) -> AsyncIterator[CacheTier]:
        sharded = ShardedTierConfig(nodes={"m1": "memory://", "m2": "memory://"}).build()
        await sharded.open()
        try:
            yield sharded
        finally:
            await sharded.aclose()


class _SharedTier(CacheTierContract):
    """A tier on a server: ``name`` is its entry in ``_servers.TIER_URLS``, ``dead_url`` a URL for a port that
    refuses connections."""

    name = ""

    def dead_url(self, port: int, prefix: str) -> str:
        raise NotImplementedError

    @pytest.fixture
    def prefix(self) -> str:
        return _prefix()

    def url(self, prefix: str) -> str:
        # Leases outlive any check: a loaded machine must not turn a slow step into an expired lease.
        return tier_url(self.name, prefix) + "&lease=30s"

    @pytest.fixture
    async def tier(self, prefix: str) -> AsyncIterator[CacheTier]:
        async for t in _serve(self.url(prefix)):
            yield t

    @pytest.fixture
    async def other_process_tier(self, prefix: str) -> AsyncIterator[CacheTier]:
        async for t in _serve(self.url(prefix)):
            yield t

    @pytest.fixture
    async def other_namespace_tier(self) -> AsyncIterator[CacheTier]:
        async for t in _serve(self.url(_prefix())):
            yield t

    @pytest.fixture
    def dead_tier(self) -> Iterator[CacheTier]:
        tier = tier_config(self.dead_url(_unused_port(), _prefix())).build()
        assert isinstance(tier, CacheTier)
        yield tier  # not opened: the suite checks that open() fails open


@pytest.mark.redis
class TestRedisTier(_SharedTier):
    name = "redis"

    def dead_url(self, port: int, prefix: str) -> str:
        return f"redis://127.0.0.1:{port}/0?prefix={prefix}&connect_timeout=200ms"


@pytest.mark.redis
@pytest.mark.redis_cluster
class TestRedisClusterTier(_SharedTier):
    name = "redis_cluster"

    def dead_url(self, port: int, prefix: str) -> str:
        return f"redis+cluster://127.0.0.1:{port}?prefix={prefix}&connect_timeout=200ms"


@pytest.mark.memcached
class TestMemcachedTier(_SharedTier):
    name = "memcached"

    def dead_url(self, port: int, prefix: str) -> str:
        return f"memcached://127.0.0.1:{port}?prefix={prefix}&connect_timeout=200ms"
