"""``db.invalidate``: a write made behind tierstore's back is forgotten by every tier, as a tierstore write is."""

from __future__ import annotations

import uuid

import pytest

import tierstore
from tierstore import MemoryStore, ValidationError
from tierstore.backends import schema_of

from _models import Customer
from _servers import tier_url
from _tiers import eventually

TIERS = [
    pytest.param(("memory",), id="memory"),
    pytest.param(("redis",), id="redis", marks=pytest.mark.redis),
    pytest.param(("memcached",), id="memcached", marks=pytest.mark.memcached),
    pytest.param(("memory", "redis"), id="memory+redis", marks=pytest.mark.redis),
    pytest.param(("memory", "memcached"), id="memory+memcached", marks=pytest.mark.memcached),
]


@pytest.mark.parametrize("tiers", TIERS)
async def test_invalidate_forgets_a_write_made_around_tierstore(tiers: tuple[str, ...]) -> None:
    store = MemoryStore()
    prefix = f"inv{uuid.uuid4().hex[:10]}"
    db = await tierstore.connect(store, [tier_url(t, prefix) for t in tiers]).open()
    try:
        repo = db.repository(Customer)
        await repo.put(Customer("c1", "old"))
        await repo.put(Customer("c2", "old"))
        assert [c.name for c in await repo.get_many(["c1", "c2"]) if c] == ["old", "old"]  # cached
        for key in ("c1", "c2"):
            stored = await store.get(schema_of(Customer), (key,))
            assert stored is not None
            await store.put(schema_of(Customer), Customer(key, "new", version=stored.version))
        got = await repo.get("c1")
        assert got is not None and got.name == "old"  # the control: the tiers do not know of the write
        assert await db.invalidate(Customer, "c1", "c2") is True
        assert [c.name for c in await repo.get_many(["c1", "c2"]) if c] == ["new", "new"]
    finally:
        await db.aclose()


@pytest.mark.redis
async def test_invalidate_reaches_other_processes_in_process_tiers_over_the_channel() -> None:
    store = MemoryStore()
    prefix = f"inv{uuid.uuid4().hex[:10]}"
    urls = [tier_url("memory", prefix), tier_url("redis", prefix)]
    a, b = [await tierstore.connect(store, urls).open() for _ in range(2)]
    try:
        await a.repository(Customer).put(Customer("c1", "old"))
        got = await b.repository(Customer).get("c1")
        assert got is not None and got.name == "old"  # in b's in-process tier now
        await store.put(schema_of(Customer), Customer("c1", "new", version=1))
        l1 = b.cache.tiers[0]
        before = l1.stats.coherence_evictions
        assert await a.invalidate(Customer, "c1") is True

        async def heard() -> bool:  # the channel's delivery
            return l1.stats.coherence_evictions > before

        await eventually(heard)
        got = await b.repository(Customer).get("c1")
        assert got is not None and got.name == "new"
    finally:
        await a.aclose()
        await b.aclose()


async def test_invalidate_checks_keys_before_any_io() -> None:
    store = MemoryStore()
    db = await tierstore.connect(store, ["memory://"]).open()
    try:
        tier = db.cache.tiers[0]
        with pytest.raises(ValidationError):
            await db.invalidate(Customer, "")
        with pytest.raises(ValidationError):
            await db.invalidate(Customer, ("c1", "sort"))  # Customer has no sort key
        assert tier.stats.invalidations == 0
    finally:
        await db.aclose()
