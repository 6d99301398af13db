"""Per-entity cache policies on every tier kind (in-process, Redis, Memcached): the ``cache=`` class keyword, the
``policies=`` map of ``connect()`` (which wins), never-cached entities, negative caching, write mode and TTL per
entity — each proved by counting store round trips and tier operations."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import redis.asyncio as redis

import tierstore
from tierstore import CachePolicy, ConfigError, Entity, MemoryStore, MemoryTier, PartitionKey, Version
from tierstore.tiers.policy import DATABASE_FIELDS, entity_policy

from _models import Customer
from _servers import REDIS_URL, tier_url


class AuditEvent(Entity, table="ts_audit_events", cache=False):
    id: PartitionKey[str]
    what: str
    version: Version = 0


class Session(Entity, table="ts_sessions", cache=CachePolicy(ttl=30, negative_ttl=5)):
    id: PartitionKey[str]
    user: str
    version: Version = 0


TIER_KINDS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("memcached", id="memcached", marks=pytest.mark.memcached),
]
COUNTERS = ("hits", "misses", "fills", "invalidations", "round_trips", "leases", "lease_waits")


def connect(kind: str, **kwargs: Any) -> tuple[tierstore.Database, MemoryStore, str]:
    store = MemoryStore()
    prefix = f"ep{uuid.uuid4().hex[:10]}"
    return tierstore.connect(store, [tier_url(kind, prefix)], **kwargs), store, prefix


def tier_ops(db: tierstore.Database) -> dict[str, int]:
    stats = db.cache.tiers[0].stats
    return {name: getattr(stats, name) for name in COUNTERS}


@pytest.mark.parametrize("kind", TIER_KINDS)
async def test_a_never_cached_entity_touches_no_tier(kind: str) -> None:
    db, store, _ = connect(kind)
    async with db:
        audit = db.repository(AuditEvent)
        await audit.get("warm-up")  # the store is opened and the table made
        before = tier_ops(db)
        trips = store.stats.round_trips
        await audit.put(AuditEvent("a", "login"))
        for _ in range(3):
            got = await audit.get("a")
            assert got is not None and got.what == "login"
        assert await audit.get("missing") is None
        await audit.get_many(["a", "missing"])
        async with db.transaction() as tx:
            tx.put(AuditEvent("b", "logout"))
        await audit.delete("a")
        assert await db.invalidate(AuditEvent, "b")
        assert tier_ops(db) == before  # not one tier operation
        assert store.stats.round_trips - trips == 1 + 3 + 1 + 1 + 1 + 1  # every read reached the store
        # The same database caches the entities that did not opt out.
        customers = db.repository(Customer)
        await customers.put(Customer("c", "x"))
        await customers.get("c")
        trips = store.stats.round_trips
        assert (await customers.get("c")) is not None
        assert store.stats.round_trips == trips
        assert tier_ops(db) != before


@pytest.mark.parametrize("kind", TIER_KINDS)
async def test_the_policies_map_overrides_the_class_keyword(kind: str) -> None:
    db, store, _ = connect(kind, policies={AuditEvent: CachePolicy(ttl=60), Customer: False})
    async with db:
        audit, customers = db.repository(AuditEvent), db.repository(Customer)
        await audit.put(AuditEvent("a", "login"))
        await customers.put(Customer("c", "x"))
        await audit.get("a")
        await customers.get("c")
        trips = store.stats.round_trips
        before = tier_ops(db)
        assert (await audit.get("a")) is not None  # cached now, against its class keyword
        assert store.stats.round_trips == trips
        assert (await customers.get("c")) is not None  # never cached now
        assert store.stats.round_trips == trips + 1
        after = tier_ops(db)
        if kind != "memory":  # the in-process tier answers the cached read without a round trip
            assert after["round_trips"] == before["round_trips"] + 1


@pytest.mark.parametrize("kind", TIER_KINDS)
async def test_negative_caching_per_entity(kind: str) -> None:
    db, store, _ = connect(kind)  # the database's policy caches no "not found"
    async with db:
        sessions, customers = db.repository(Session), db.repository(Customer)
        await sessions.get("warm-up")
        await customers.get("warm-up")
        trips = store.stats.round_trips
        for _ in range(3):
            assert await sessions.get("ghost") is None
        assert store.stats.round_trips == trips + 1  # Session caches "not found" (negative_ttl=5)
        trips = store.stats.round_trips
        for _ in range(3):
            assert await customers.get("ghost") is None
        assert store.stats.round_trips == trips + 3  # Customer does not
        await sessions.put(Session("ghost", "now real"))  # the write forgets the cached "not found"
        got = await sessions.get("ghost")
        assert got is not None and got.user == "now real"


@pytest.mark.parametrize("kind", TIER_KINDS)
async def test_write_mode_per_entity(kind: str) -> None:
    db, store, _ = connect(kind, policies={Session: CachePolicy(write_mode="write_through")})
    async with db:
        sessions, customers = db.repository(Session), db.repository(Customer)
        await sessions.put(Session("s", "u1"))
        await customers.put(Customer("c", "x"))
        trips = store.stats.round_trips
        got = await sessions.get("s")  # the put filled every tier
        assert got is not None and got.user == "u1"
        assert store.stats.round_trips == trips
        assert (await customers.get("c")) is not None  # invalidate-on-write (the database's mode): a store read
        assert store.stats.round_trips == trips + 1


@pytest.mark.parametrize("kind", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_ttl_per_entity(kind: str) -> None:
    """The entry's expiry as the tier holds it (Memcached cannot be asked for one)."""
    db, _, prefix = connect(kind)
    async with db:
        sessions, customers = db.repository(Session), db.repository(Customer)
        await sessions.put(Session("s", "u"))
        await customers.put(Customer("c", "x"))
        await sessions.get("s")
        await customers.get("c")
        tier = db.cache.tiers[0]
        cks = {e: db.repository(e).schema.cache_key((k,)) for e, k in ((Session, "s"), (Customer, "c"))}
        if isinstance(tier, MemoryTier):
            left = {e: tier.entry(ck).expires - time.monotonic() for e, ck in cks.items()}  # type: ignore[union-attr]
        else:
            raw = redis.Redis.from_url(REDIS_URL)
            try:
                left = {e: await raw.pttl(f"{prefix}:{ck}") / 1000 for e, ck in cks.items()}
            finally:
                await raw.aclose()
        assert 0 < left[Session] <= 30  # its own ttl
        assert 30 < left[Customer] <= 300  # the database's


def test_bad_policies_are_config_errors_before_any_io() -> None:
    with pytest.raises(ConfigError, match="cache="):

        class Bad(Entity, table="ts_bad", cache="yes"):  # type: ignore[call-arg]
            id: PartitionKey[str]

    store = MemoryStore()
    for bad in ({"Customer": False}, {Customer: 30}, {Customer: None}, [Customer]):
        with pytest.raises(ConfigError, match="policies"):
            tierstore.connect(store, ["memory://"], policies=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        CachePolicy(negative_ttl=-1)
    assert store.stats.round_trips == 0


async def test_a_policy_like_class_keyword_is_refused_when_the_database_resolves_it() -> None:
    class Lookalike:
        write_mode = "invalidate"

    class Odd(Entity, table="ts_odd", cache=Lookalike()):
        id: PartitionKey[str]

    store = MemoryStore()
    async with tierstore.connect(store, ["memory://"]) as db:
        with pytest.raises(ConfigError, match="cache="):
            db.repository(Odd)
    assert store.stats.round_trips == 0


def test_an_entity_policy_takes_the_tier_wide_fields_from_the_database() -> None:
    database = CachePolicy(coalesce=False, breaker_failures=2, breaker_cooldown=3.0, invalidation_log=1.0)
    own = entity_policy(database, Session, {})
    assert own is not None and own.ttl == 30 and own.negative_ttl == 5
    assert all(getattr(own, f) == getattr(database, f) for f in DATABASE_FIELDS)
    assert entity_policy(database, AuditEvent, {}) is None
    assert entity_policy(database, Customer, {}) is database
    assert entity_policy(database, AuditEvent, {AuditEvent: True}) is database
