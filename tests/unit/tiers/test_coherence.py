"""L1 coherence (tiers/coherence.py) against an in-memory invalidation feed: subscribing flushes L1, a message
evicts its keys, ``*`` flushes everything, and a lost subscription flushes L1 and stops the tiered path from
filling it until the feed is back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import tierstore
from tierstore import MemoryStore, MemoryTier, TierError
from tierstore.tiers.base import InvalidationFeed
from tierstore.tiers.coherence import L1Coherence

from _models import Customer

DROP = ["<drop>"]


class FakeFeed(MemoryTier):
    """A shared tier (in memory) that publishes invalidations through a queue the test feeds."""

    local = False
    publishes_invalidations = True

    def __init__(self) -> None:
        super().__init__(name="feed")
        self.up = True
        self.messages: asyncio.Queue[list[str]] = asyncio.Queue()
        self.subscriptions = 0

    async def invalidations(self) -> AsyncIterator[list[str]]:
        if not self.up:
            raise TierError("feed down", backend="test")
        self.subscriptions += 1
        yield []
        while True:
            keys = await self.messages.get()
            if keys is DROP:
                raise TierError("subscription lost", backend="test")
            yield keys


async def until(check: Callable[[], bool | Awaitable[bool]]) -> None:
    """Poll ``check`` for up to ~3 s (a bound for the test, not a measured speed)."""
    for _ in range(300):
        got = check()
        if got if isinstance(got, bool) else await got:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


def test_the_fake_is_a_feed() -> None:
    assert isinstance(FakeFeed(), InvalidationFeed)


async def test_subscribing_flushes_l1() -> None:
    l1, feed = MemoryTier(), FakeFeed()
    l1.store("k", b"v")
    coherence = L1Coherence(l1, feed)
    try:
        await coherence.start()  # waits for the subscription
        assert coherence.connected and coherence.started
        assert len(l1) == 0  # it may have missed messages sent before now
        assert l1.stats.coherence_subscribes == 1
    finally:
        await coherence.aclose()


async def test_a_message_evicts_its_keys_and_star_flushes() -> None:
    l1, feed = MemoryTier(), FakeFeed()
    coherence = L1Coherence(l1, feed)
    try:
        await coherence.start()
        for k in ("a", "b", "c"):
            l1.store(k, b"v")
        feed.messages.put_nowait(["a", "b"])
        await until(lambda: len(l1) == 1)
        assert l1.entry("c") is not None and l1.stats.coherence_evictions == 2
        feed.messages.put_nowait(["*"])
        await until(lambda: len(l1) == 0)
        assert l1.stats.coherence_flushes == 1
    finally:
        await coherence.aclose()


async def test_a_drop_flushes_l1_and_stops_fills_until_the_feed_is_back() -> None:
    l1, feed = MemoryTier(), FakeFeed()
    async with tierstore.connect(MemoryStore(), [l1, feed]) as db:
        coherence = db.cache.coherence
        assert coherence is not None and coherence.feed is feed
        repo = db.repository(Customer)
        await repo.put(Customer("k", "v1"))
        assert (await repo.get("k")).name == "v1"  # type: ignore[union-attr]
        assert coherence.connected and len(l1) == 1  # filled while connected

        feed.up = False
        feed.messages.put_nowait(DROP)
        await until(lambda: not coherence.connected)
        assert len(l1) == 0 and l1.stats.coherence_drops == 1  # messages may be missed from now on
        assert (await repo.get("k")).name == "v1"  # type: ignore[union-attr]
        assert len(l1) == 0  # served from the shared tier, L1 not filled

        feed.up = True
        await until(lambda: coherence.connected)
        assert feed.subscriptions == 2 and l1.stats.coherence_subscribes == 2
        await repo.get("k")
        assert len(l1) == 1  # filled again
    assert not coherence.connected  # closing the database stops the listener


async def test_a_feed_that_never_subscribes_leaves_l1_unfilled() -> None:
    l1, feed = MemoryTier(), FakeFeed()
    feed.up = False
    coherence = L1Coherence(l1, feed, ready_timeout=0.05)
    try:
        await coherence.start()  # gives up waiting after ready_timeout, keeps retrying in the background
        assert coherence.started and not coherence.connected
        feed.up = True
        await until(lambda: coherence.connected)
    finally:
        await coherence.aclose()
    assert not coherence.connected
