"""``db.health()``, the strict start-up option and the query cache's configuration and counters, on real servers.

A tier that is down is a port nothing listens on, or a real Redis behind a fault proxy that starts dropping
connections while the database is open.
"""

from __future__ import annotations

import os
import socket
import uuid

import pytest

import tierstore
from tierstore import ConfigError, Entity, PartitionKey, SortKey, StoreError, TierError
from tierstore.health import Health
from tierstore.querycache import QueryCacheConfig
from tierstore.testing.proxy import FaultProxy

from _servers import MEMCACHED_URL, PG_URL, REDIS_URL, endpoints, require


class Event(Entity, table="health_events"):
    stream: PartitionKey[str]
    seq: SortKey[int]
    body: str = ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prefix() -> str:
    # A generous deadline: these tests check what is reported, and a loaded machine must not turn a slow reply
    # into an unreachable node.
    return f"h{uuid.uuid4().hex[:10]}&timeout=1s&connect_timeout=1s"


async def test_in_process_backends_are_healthy_without_probes(tmp_path: os.PathLike[str]) -> None:
    async with tierstore.connect(f"sqlite+aiosqlite:///{tmp_path}/h.db", ["memory://"]) as db:
        health = await db.health()
    assert isinstance(health, Health)
    assert health.status == "ok" and health.ready and not health.degraded
    assert health.store.name == "sqlite" and health.store.reachable and health.store.latency_ms is not None
    (tier,) = health.tiers
    assert tier.name == "memory" and tier.reachable and tier.latency_ms is None and tier.coherence is None
    assert health.as_dict()["store"]["endpoints"][0]["reachable"] is True


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.memcached
async def test_every_network_backend_is_probed_and_l1_coherence_reported() -> None:
    require(PG_URL, "postgres")
    require(REDIS_URL, "redis")
    require(MEMCACHED_URL, "memcached")
    p = _prefix()
    async with tierstore.connect(
        PG_URL, ["memory://", f"{REDIS_URL}?prefix={p}", f"{MEMCACHED_URL}?prefix={p}"]
    ) as db:
        health = await db.health()
    assert health.status == "ok", [t.error for t in health.tiers]
    memory, redis, memcached = health.tiers
    assert memory.coherence == "connected"  # the check subscribed the channel a first read would have
    assert redis.breaker == "closed" and redis.reachable and redis.latency_ms is not None
    assert [e.address for e in memcached.endpoints] == [f"{h}:{port}" for h, port in endpoints(MEMCACHED_URL)]
    assert all(e.reachable and e.breaker == "closed" for e in memcached.endpoints)
    assert "postgres" not in str(health.store.endpoints[0].address) or "@" not in health.store.endpoints[0].address


@pytest.mark.redis
async def test_a_tier_that_is_down_degrades_but_does_not_unready() -> None:
    dead = _free_port()
    async with tierstore.connect("memory://", ["memory://", f"redis://127.0.0.1:{dead}?prefix={_prefix()}"]) as db:
        health = await db.health()
    assert health.ready and health.status == "degraded"
    memory, redis = health.tiers
    assert not redis.reachable and f"127.0.0.1:{dead}" in (redis.error or "")
    assert memory.coherence == "disconnected" and not memory.healthy


@pytest.mark.redis
async def test_health_follows_a_redis_that_goes_away_and_comes_back() -> None:
    require(REDIS_URL, "redis")
    (host, port), = endpoints(REDIS_URL)
    async with FaultProxy(host, port) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}?prefix={_prefix()}"
        async with tierstore.connect("memory://", ["memory://", url]) as db:
            assert (await db.health()).status == "ok"
            proxy.drop()
            await proxy.cut()
            down = await db.health(within=3.0)
            assert down.ready and down.status == "degraded"
            assert not down.tiers[1].reachable
            proxy.reset()
            assert (await db.health()).tiers[1].reachable


async def test_strict_start_up_fails_on_an_unreachable_tier_and_closes_what_it_built() -> None:
    dead = _free_port()
    db = tierstore.connect("memory://", ["memory://", f"redis://127.0.0.1:{dead}?prefix=x"], strict=True)
    with pytest.raises(TierError, match=f"127.0.0.1:{dead}") as info:
        await db.open()
    assert "redis" in str(info.value)
    with pytest.raises(tierstore.TierstoreError, match="closed"):
        db.repository(Event)
    # Without strict the same configuration opens and fails open (the old behaviour).
    async with tierstore.connect("memory://", ["memory://", f"redis://127.0.0.1:{dead}?prefix=x"]) as lax:
        await lax.repository(Event).put(Event("s", 1))


@pytest.mark.postgres
async def test_strict_start_up_fails_on_an_unreachable_store_without_leaking_the_password() -> None:
    dead = _free_port()
    url = f"postgresql+asyncpg://app:s3cr3t-pw@127.0.0.1:{dead}/nowhere"
    with pytest.raises(StoreError) as info:
        async with tierstore.connect(url, ["memory://"], strict=True):
            pass
    assert "s3cr3t-pw" not in str(info.value)


@pytest.mark.redis
async def test_strict_start_up_passes_when_everything_answers() -> None:
    require(REDIS_URL, "redis")
    async with tierstore.connect("memory://", ["memory://", f"{REDIS_URL}?prefix={_prefix()}"], strict=True) as db:
        assert db.cache.coherence is not None and db.cache.coherence.connected


async def test_health_rejects_a_bad_deadline_before_any_io() -> None:
    async with tierstore.connect("memory://") as db:
        with pytest.raises(tierstore.ValidationError):
            await db.health(within=0)


async def test_query_cache_by_url_is_reported_and_reset_in_stats() -> None:
    async with tierstore.connect("memory://", ["memory://"], query_cache="query://?ttl=30s&negative_ttl=5s") as db:
        events = db.repository(Event)
        await events.put_many([Event("a", i) for i in range(5)])
        assert len(await events.query("a")) == 5
        db.reset_stats()
        assert db.stats()["query_cache"] == {
            "hits": 0, "misses": 0, "fills": 0, "generation_bumps": 0, "bypassed": 0, "errors": 0,
        }
        for _ in range(3):
            assert len(await events.query("a")) == 5
        assert db.stats()["query_cache"]["hits"] == 3
        assert db.stats()["store"]["queries"] == 0
        await events.put(Event("a", 9))  # a write to the partition: the next query misses and sees it
        assert len(await events.query("a")) == 6
        qc = db.stats()["query_cache"]
        assert qc["misses"] == 1 and qc["generation_bumps"] >= 1
        db.reset_stats()
        assert db.stats()["query_cache"]["hits"] == 0


def test_query_cache_configuration_errors_are_typed() -> None:
    with pytest.raises(ConfigError, match="tier"):
        tierstore.connect("memory://", [], query_cache=True)
    with pytest.raises(ConfigError, match="unknown parameter"):
        tierstore.connect("memory://", ["memory://"], query_cache="query://?tll=5s")
    with pytest.raises(ConfigError):
        tierstore.connect("memory://", ["memory://"], query_cache="redis://x")
    with pytest.raises(ConfigError):
        QueryCacheConfig(ttl=0)
    assert QueryCacheConfig.from_url("query://?ttl=5m").ttl == 300.0
    db = tierstore.connect("memory://", ["memory://"])
    assert db.query_cache is None and "query_cache" not in db.stats()
