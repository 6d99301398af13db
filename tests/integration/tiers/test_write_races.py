"""Writes and reads of one key interleaved step by step, on real servers: single flight across a write,
read-your-writes, write-through across a delete, cancelled writes, and a failed condition.

Each test forces the losing order with events (a gate inside the store, or around a real tier's calls), never
with sleeps, and each failed before the fix it guards.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

import tierstore
from tierstore import CachePolicy, ConditionFailed, MemoryStore
from tierstore.backends import schema_of
from tierstore.config import tier_config
from tierstore.model.schema import Key, Schema
from tierstore.tiers import tiered
from tierstore.tiers.base import CacheTier, Lease

from _models import Customer
from _servers import tier_url

SHARED = [
    pytest.param(("redis",), id="redis", marks=pytest.mark.redis),
    pytest.param(("memcached",), id="memcached", marks=pytest.mark.memcached),
    pytest.param(("memory", "redis"), id="memory+redis", marks=pytest.mark.redis),
    pytest.param(("memory", "memcached"), id="memory+memcached", marks=pytest.mark.memcached),
]
ALL = [pytest.param(("memory",), id="memory"), *SHARED]
WAIT = 5  # seconds: a bound for the test, never a measured speed


class Gate:
    """Armed, it holds the next call it guards: ``reached`` is set when the call arrives, the call goes on
    after ``release``."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    async def hold(self) -> None:
        self.reached.set()
        await self.release.wait()


class GatedTier:
    """A real tier whose next ``get_many`` (after its reply), ``invalidate_many`` or ``set_many`` (before they
    are sent) can be held — the only way to stop a real server's round trip at a chosen point."""

    def __init__(self, tier: CacheTier) -> None:
        self.tier = tier
        self.get_gate: Gate | None = None
        self.invalidate_gate: Gate | None = None
        self.set_gate: Gate | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tier, name)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | Lease | None]:
        got = await self.tier.get_many(keys)
        gate, self.get_gate = self.get_gate, None
        if gate is not None:
            await gate.hold()
        return got

    async def invalidate_many(self, keys: Sequence[str]) -> None:
        gate, self.invalidate_gate = self.invalidate_gate, None
        if gate is not None:
            await gate.hold()
        await self.tier.invalidate_many(keys)

    async def set_many(self, entries: Sequence[tuple[str, bytes, int]], ttl: float) -> None:
        gate, self.set_gate = self.set_gate, None
        if gate is not None:
            await gate.hold()
        await self.tier.set_many(entries, ttl)


class GatedStore(MemoryStore):
    """A MemoryStore whose next read (after it took its value) or next put (after it committed) can be held."""

    def __init__(self) -> None:
        super().__init__()
        self.read_gate: Gate | None = None
        self.put_gate: Gate | None = None

    async def get(self, schema: Schema[Any], key: Key, *, consistent: bool = False) -> Any:
        item = await super().get(schema, key, consistent=consistent)
        gate, self.read_gate = self.read_gate, None
        if gate is not None:
            await gate.hold()
        return item

    async def put(self, schema: Schema[Any], item: Any, **kw: Any) -> Any:
        stored = await super().put(schema, item, **kw)
        gate, self.put_gate = self.put_gate, None
        if gate is not None:
            await gate.hold()
        return stored


class Pair:
    """Two databases ("processes") on one store and one shared cache namespace; ``a`` has every tier, ``b``
    the shared ones. ``gated``: ``a``'s farthest shared tier, wrapped."""

    def __init__(self, store: GatedStore, a: tierstore.Database, b: tierstore.Database, gated: GatedTier | None,
                 owned: list[CacheTier]) -> None:
        self.store, self.a, self.b, self.gated, self.owned = store, a, b, gated, owned
        self.ra = a.repository(Customer)
        self.rb = b.repository(Customer)

    async def aclose(self) -> None:
        await self.a.aclose()
        await self.b.aclose()
        for t in self.owned:
            await t.aclose()


async def open_pair(tiers: tuple[str, ...], policy: CachePolicy | None = None) -> Pair:
    store = GatedStore()
    prefix = f"wr{uuid.uuid4().hex[:10]}"
    cache: list[Any] = []
    gated: GatedTier | None = None
    owned: list[CacheTier] = []
    for t in tiers:
        if t == "memory":
            cache.append(tier_url(t, prefix))
        else:
            tier = tier_config(tier_url(t, prefix)).build()
            await tier.open()
            owned.append(tier)
            gated = GatedTier(tier)
            cache.append(gated)
    shared = [tier_url(t, prefix) for t in tiers if t != "memory"]
    a = await tierstore.connect(store, cache, policy=policy).open()
    b = await tierstore.connect(store, shared or [tier_url("memory", prefix)], policy=policy).open()
    return Pair(store, a, b, gated, owned)


async def settle(db: tierstore.Database) -> None:
    """Wait for cache maintenance still running in ``db`` (after a cancelled write)."""
    pending = list(db.cache._maintaining)
    if pending:
        await asyncio.wait(pending, timeout=WAIT)


# -- single flight across a write -----------------------------------------------------------------------


async def test_single_flight_does_not_join_a_read_that_began_before_a_write_store_only() -> None:
    """No tier at all: a get invoked after put() returned must not join the store read that began before."""
    store = GatedStore()
    db = await tierstore.connect(store, []).open()
    try:
        repo = db.repository(Customer)
        await repo.put(Customer("k", "v1"), check_version=False)
        gate = store.read_gate = Gate()
        first = asyncio.create_task(repo.get("k"))
        await asyncio.wait_for(gate.reached.wait(), WAIT)  # holds v1, read before the write
        await repo.put(Customer("k", "v2"), check_version=False)
        second = asyncio.create_task(repo.get("k"))  # invoked after the put returned
        await asyncio.sleep(0)
        gate.release.set()
        assert (await first) is not None
        got = await asyncio.wait_for(second, WAIT)
        assert got is not None and got.name == "v2"
    finally:
        await db.aclose()


@pytest.mark.parametrize("tiers", SHARED)
async def test_read_your_writes_a_read_begun_during_the_write_is_not_joined(tiers: tuple[str, ...]) -> None:
    """A get that begins while put() is still invalidating reads the old shared entry; a get invoked after
    put() returned must not join it."""
    p = await open_pair(tiers)
    try:
        await p.ra.put(Customer("k", "v1"), check_version=False)
        assert (await p.rb.get("k")) is not None  # the shared tier holds v1
        assert p.gated is not None
        inv = p.gated.invalidate_gate = Gate()
        writer = asyncio.create_task(p.ra.put(Customer("k", "v2"), check_version=False))
        await asyncio.wait_for(inv.reached.wait(), WAIT)  # committed; the shared tier still holds v1
        read = p.gated.get_gate = Gate()
        early = asyncio.create_task(p.ra.get("k"))
        await asyncio.wait_for(read.reached.wait(), WAIT)  # read v1 from the shared tier, still in flight
        inv.release.set()
        await asyncio.wait_for(writer, WAIT)  # put() returned
        late = asyncio.create_task(p.ra.get("k"))
        await asyncio.sleep(0)
        read.release.set()
        got_early = await asyncio.wait_for(early, WAIT)
        assert got_early is not None  # began before put() returned: either version is allowed
        got = await asyncio.wait_for(late, WAIT)
        assert got is not None and got.name == "v2"
        again = await p.ra.get("k")
        assert again is not None and again.name == "v2"
    finally:
        await p.aclose()


@pytest.mark.redis
async def test_single_flight_does_not_join_across_an_invalidation_heard_on_the_channel() -> None:
    """Another process's write, once its invalidation reached this process's L1 channel, separates the reads
    before it from the reads after it: the later read does its own round trip."""
    p = await open_pair(("memory", "redis"))
    try:
        await p.ra.put(Customer("k", "v1"), check_version=False)
        l1 = p.a.cache.tiers[0]
        gate = p.store.read_gate = Gate()
        early = asyncio.create_task(p.ra.get("k"))
        await asyncio.wait_for(gate.reached.wait(), WAIT)  # holds v1 from the store, still in flight
        heard = l1.stats.coherence_evictions
        await p.rb.put(Customer("k", "v2"), check_version=False)  # acknowledged in the other process
        for _ in range(WAIT * 100):  # the channel's delivery: wait for the message, not for a time
            if l1.stats.coherence_evictions > heard:
                break
            await asyncio.sleep(0.01)
        assert l1.stats.coherence_evictions > heard
        late = asyncio.create_task(p.ra.get("k"))
        await asyncio.sleep(0)
        gate.release.set()
        await asyncio.wait_for(early, WAIT)
        got = await asyncio.wait_for(late, WAIT)
        assert got is not None and got.name == "v2"
    finally:
        await p.aclose()


# -- write-through across a delete ----------------------------------------------------------------------


@pytest.mark.parametrize("tiers", ALL)
async def test_write_through_a_set_from_before_a_delete_loses_to_the_re_created_item(tiers: tuple[str, ...]) -> None:
    """Versions restart after a delete. A put of v3 whose cache maintenance is late (held before its set),
    then delete, re-create (version 1) and a read that fills: the late v3 set must not land on any tier."""
    p = await open_pair(tiers, CachePolicy(write_mode="write_through"))
    try:
        ra = p.ra
        rb = p.rb if p.gated is not None else ra  # in-process tiers are not shared between processes
        for name in ("a", "b"):
            await ra.put(Customer("k", name), check_version=False)
        late_gate = Gate()
        if p.gated is not None:
            p.gated.set_gate = late_gate
        else:  # in-process only: hold the store's reply instead (the maintenance follows it)
            p.store.put_gate = late_gate
        late = asyncio.create_task(ra.put(Customer("k", "deleted", version=2), check_version=False))
        await asyncio.wait_for(late_gate.reached.wait(), WAIT)
        assert await ra.delete("k")
        created = await ra.put(Customer("k", "re-created"), check_version=False)
        assert created.version == 1
        for repo in (ra, rb):
            got = await repo.get("k")  # fills from the store
            assert got is not None and got.name == "re-created"
        late_gate.release.set()
        await asyncio.wait_for(late, WAIT)
        for repo in (ra, rb, ra, rb):
            got = await repo.get("k")
            assert got is not None and got.name == "re-created", got
        # And a later write-through of the re-created item is served.
        await ra.put(Customer("k", "v2"), check_version=False)
        for repo in (ra, rb):
            got = await repo.get("k")
            assert got is not None and got.name == "v2"
    finally:
        await p.aclose()


# -- cancelled writes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("tiers", SHARED)
async def test_a_put_cancelled_during_its_invalidation_still_invalidates(tiers: tuple[str, ...]) -> None:
    p = await open_pair(tiers)
    try:
        await p.ra.put(Customer("k", "v1"), check_version=False)
        assert (await p.rb.get("k")) is not None  # the shared tier holds v1
        assert p.gated is not None
        inv = p.gated.invalidate_gate = Gate()
        writer = asyncio.create_task(p.ra.put(Customer("k", "v2"), check_version=False))
        await asyncio.wait_for(inv.reached.wait(), WAIT)  # committed, invalidation not sent yet
        writer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writer
        inv.release.set()
        await settle(p.a)
        for repo in (p.rb, p.ra):
            got = await repo.get("k")
            assert got is not None and got.name == "v2"
    finally:
        await p.aclose()


@pytest.mark.parametrize("tiers", ALL)
async def test_a_put_cancelled_after_the_store_committed_still_invalidates(tiers: tuple[str, ...]) -> None:
    p = await open_pair(tiers)
    try:
        await p.ra.put(Customer("k", "v1"), check_version=False)
        for repo in (p.ra, p.rb):
            assert (await repo.get("k")) is not None  # cached everywhere
        gate = p.store.put_gate = Gate()
        writer = asyncio.create_task(p.ra.put(Customer("k", "v2"), check_version=False))
        await asyncio.wait_for(gate.reached.wait(), WAIT)  # committed; the reply is not back yet
        writer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writer  # the caller stops waiting at once
        gate.release.set()  # the store's reply comes in after the caller gave up
        await settle(p.a)
        for repo in (p.ra, p.rb) if p.gated is not None else (p.ra,):
            got = await repo.get("k")
            assert got is not None and got.name == "v2"
    finally:
        await p.aclose()


# -- a failed condition -----------------------------------------------------------------------------------


@pytest.mark.parametrize("tiers", ALL)
async def test_condition_failed_invalidates_the_key_so_a_retry_converges(tiers: tuple[str, ...]) -> None:
    """The cached value is stale (the store changed behind the caches): the read-modify-write fails its
    condition, and the retry must read the current value instead of the same stale one."""
    p = await open_pair(tiers)
    try:
        repo = p.ra
        await repo.put(Customer("k", "v1"), check_version=False)
        cached = await repo.get("k")
        assert cached is not None
        await p.store.put(schema_of(Customer), Customer("k", "changed elsewhere", version=cached.version))
        stale = await repo.get("k")
        assert stale is not None and stale.name == "v1"  # the caches do not know yet
        with pytest.raises(ConditionFailed):
            await repo.put(Customer("k", "mine", version=stale.version), expect_version=stale.version)
        fresh = await repo.get("k")
        assert fresh is not None and fresh.name == "changed elsewhere"
        done = await repo.put(Customer("k", "mine", version=fresh.version), expect_version=fresh.version)
        assert done.name == "mine"
    finally:
        await p.aclose()


@pytest.mark.parametrize("tiers", ALL)
async def test_transaction_condition_failed_invalidates_its_keys(tiers: tuple[str, ...]) -> None:
    p = await open_pair(tiers)
    try:
        repo = p.ra
        await repo.put(Customer("k", "v1"), check_version=False)
        cached = await repo.get("k")
        assert cached is not None
        await p.store.put(schema_of(Customer), Customer("k", "changed elsewhere", version=cached.version))
        with pytest.raises(ConditionFailed):
            async with p.a.transaction() as tx:
                tx.put(Customer("k", "mine", version=cached.version), expect_version=cached.version)
        fresh = await repo.get("k")
        assert fresh is not None and fresh.name == "changed elsewhere"
    finally:
        await p.aclose()


# -- bounds of the maintenance ----------------------------------------------------------------------------


@pytest.mark.redis
async def test_maintenance_is_bounded_and_what_a_tier_did_not_take_is_owed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tier that never answers the invalidation: the put returns after the deadline, the key is owed to
    the tier (so it is not read before the replay) and forgotten in-process."""
    monkeypatch.setattr(tiered, "MAINTENANCE_DEADLINE", 0.2)
    p = await open_pair(("memory", "redis"))
    try:
        await p.ra.put(Customer("k", "v1"), check_version=False)
        assert (await p.ra.get("k")) is not None  # cached in both tiers
        assert p.gated is not None
        p.gated.invalidate_gate = Gate()  # never released: the tier never answers
        await asyncio.wait_for(p.ra.put(Customer("k", "v2"), check_version=False), WAIT)
        assert p.a.cache.undelivered() >= 1
        got = await p.ra.get("k")  # replays the invalidation before reading the tier
        assert got is not None and got.name == "v2"
        assert p.a.cache.undelivered() == 0
    finally:
        await p.aclose()


@pytest.mark.parametrize("tiers", SHARED)
async def test_a_write_through_set_later_than_the_window_becomes_an_invalidation(
    tiers: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tiered, "SET_WINDOW", 0.0)
    p = await open_pair(tiers, CachePolicy(write_mode="write_through"))
    try:
        await p.ra.put(Customer("k", "v1"), check_version=False)
        shared = p.a.cache.tiers[-1]
        assert shared.stats.fills == 0 and shared.stats.invalidations >= 1
        got = await p.rb.get("k")
        assert got is not None and got.name == "v1"
    finally:
        await p.aclose()
