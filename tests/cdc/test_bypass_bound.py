"""The staleness bound of a write that bypasses tierstore when no invalidator runs, measured.

docs/consistency.md states it as a function of the TTLs: with shared-tier TTL ``T`` (``CachePolicy.ttl``)
and in-process max age ``a`` (``memory://?ttl=``), a value cached before a foreign write can be served until

* in-process tier only: ``min(T, a)`` after it was cached;
* a shared tier only (Redis; Memcached rounds to whole seconds): ``T``;
* in-process in front of a shared tier: ``T + min(T, a)`` — the in-process entry may be filled from the shared
  entry just before that one expires.

(plus the duration of a read that fetched the old row before the write and fills after it). Each case here
builds its worst case — fill, foreign write, and for two tiers a read just before the shared entry expires —
and measures how long reads stay stale after the write: never longer than the bound, and close to it (so the
bound is not a loose guess). Short TTLs (T = 1 s, a = 0.6 s) keep it quick.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

import tierstore
from _cdc import CdcItem, ForeignWriter, server_url, store_url
from tierstore import CachePolicy

from _servers import REDIS_URL, require

T = 1.0
A = 0.6
SLACK = 0.3  # scheduling and the 10 ms read loop

CASES = [
    pytest.param(("memory",), min(T, A), id="memory"),
    pytest.param(("redis",), T, id="redis", marks=pytest.mark.redis),
    pytest.param(("memory", "redis"), T + min(T, A), id="memory+redis", marks=pytest.mark.redis),
]


@pytest.mark.postgres
@pytest.mark.parametrize(("tiers", "bound"), CASES)
async def test_staleness_of_a_bypassing_write_is_bounded_by_the_ttls(tiers: tuple[str, ...], bound: float) -> None:
    require(server_url("postgres"), "postgres")
    prefix = f"bb{uuid.uuid4().hex[:10]}"
    urls = []
    for t in tiers:
        if t == "memory":
            urls.append(f"memory://?ttl={A}s")
        else:
            require(REDIS_URL, "redis")
            urls.append(f"{REDIS_URL}{'&' if '?' in REDIS_URL else '?'}prefix={prefix}")
    db = await tierstore.connect(store_url("postgres"), urls, policy=CachePolicy(ttl=T, ttl_jitter=0)).open()
    writer = await ForeignWriter("postgres").open()
    loop = asyncio.get_running_loop()
    try:
        await db.create_tables(CdcItem)
        repo = db.repository(CdcItem)
        k = f"{prefix}-k"
        await repo.put(CdcItem(k, "old"))
        filled = loop.time()
        assert (await repo.get(k)).name == "old"  # type: ignore[union-attr]  # cached in every tier
        await writer.set_item(k, "new", 1)  # around tierstore; nobody invalidates
        written = loop.time()
        if len(tiers) == 2:
            # The worst case: the in-process entry expired; read again just before the shared one expires,
            # so the in-process tier takes the old value for another min(T, a).
            await asyncio.sleep(max(0.0, filled + T - 0.1 - loop.time()))
            assert (await repo.get(k)).name == "old"  # type: ignore[union-attr]
        while True:
            got = await repo.get(k)
            assert got is not None
            if got.name == "new":
                break
            assert loop.time() - written < bound + SLACK + 1.0, "stale far beyond the stated bound"
            await asyncio.sleep(0.01)
        stale_for = loop.time() - written
        fill_to_write = written - filled
    finally:
        await writer.aclose()
        await db.aclose()
    # Measured from the fill: never beyond the bound; and the worst case comes close to it.
    assert stale_for + fill_to_write <= bound + SLACK, (stale_for, bound)
    assert stale_for + fill_to_write >= bound - 0.15 - SLACK, (stale_for, bound)
