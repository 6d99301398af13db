"""The staleness bound of a write that bypasses tierstore when no invalidator runs, measured.

docs/consistency.md states it as a function of the TTLs: with shared-tier TTL ``T`` (``CachePolicy.ttl``)
and in-process max age ``a`` (``memory://?ttl=``), a value cached before a foreign write can be served until

* in-process tier only: ``min(T, a)`` after it was cached;
* a shared tier only (Redis; Memcached rounds to whole seconds): ``T``;
* in-process in front of a shared tier: ``T + min(T, a)`` — the in-process entry may be filled from the shared
  entry just before that one expires.

(plus the duration of a read that fetched the old row before the write and fills after it). Each case builds
its worst case — fill, foreign write, and for two tiers a read just before the shared entry expires — and
reads in a loop until the new row shows. Asserted on every attempt: no read that *started* later than the
bound after the fill returned the old row (start times, so a stalled test process cannot fake a breach).
Asserted on some attempt (up to 3, since a stalled process can miss the instant that builds the worst case):
the staleness came within 0.2 s of the bound, so the bound is not a loose guess. Short TTLs (T = 1 s,
a = 0.6 s) keep it quick.
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
CASES = [
    pytest.param(("memory",), min(T, A), id="memory"),
    pytest.param(("redis",), T, id="redis", marks=pytest.mark.redis),
    pytest.param(("memory", "redis"), T + min(T, A), id="memory+redis", marks=pytest.mark.redis),
]


async def _attempt(tiers: tuple[str, ...], writer: ForeignWriter) -> tuple[float, float] | None:
    """(start of the last stale read, start of the first fresh read), both measured from the fill; None if
    the worst case could not be built this time."""
    loop = asyncio.get_running_loop()
    prefix = f"bb{uuid.uuid4().hex[:10]}"
    urls = [f"memory://?ttl={A}s" if t == "memory" else f"{REDIS_URL}{'&' if '?' in REDIS_URL else '?'}prefix={prefix}"
            for t in tiers]
    db = await tierstore.connect(store_url("postgres"), urls, policy=CachePolicy(ttl=T, ttl_jitter=0)).open()
    try:
        await db.create_tables(CdcItem)
        repo = db.repository(CdcItem)
        k = f"{prefix}-k"
        await repo.put(CdcItem(k, "old"))
        got = await repo.get(k)  # the miss fills every tier
        filled = loop.time()
        assert got is not None and got.name == "old"
        await writer.set_item(k, "new", 1)  # around tierstore; nobody invalidates
        if len(tiers) == 2:
            # The in-process entry has expired; read just before the shared one expires, so the in-process
            # tier takes the old value for another min(T, a).
            await asyncio.sleep(max(0.0, filled + T - 0.1 - loop.time()))
            again = await repo.get(k)
            if again is None or again.name != "old":
                return None  # this process was too late (a loaded machine): try again
        last_stale = 0.0
        while True:
            start = loop.time()
            got = await repo.get(k)
            assert got is not None
            if got.name == "new":
                return last_stale - filled, start - filled
            last_stale = start
            assert start - filled < T + A + 5, "stale far beyond any bound"
            await asyncio.sleep(0.01)
    finally:
        await db.aclose()


@pytest.mark.postgres
@pytest.mark.parametrize(("tiers", "bound"), CASES)
async def test_staleness_of_a_bypassing_write_is_bounded_by_the_ttls(tiers: tuple[str, ...], bound: float) -> None:
    require(server_url("postgres"), "postgres")
    if tiers != ("memory",):
        require(REDIS_URL, "redis")
    writer = await ForeignWriter("postgres").open()
    close_to_bound = False
    measured = []
    try:
        for _ in range(3):
            got = await _attempt(tiers, writer)
            if got is None:
                continue
            last_stale, first_fresh = got
            measured.append(got)
            assert last_stale <= bound + 0.05, f"a read {last_stale:.3f}s after the fill was stale (bound {bound})"
            if first_fresh >= bound - 0.2:
                close_to_bound = True
                break
    finally:
        await writer.aclose()
    assert close_to_bound, f"the worst case never came near the bound {bound}: {measured}"
