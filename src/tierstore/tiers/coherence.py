"""L1 coherence across processes: evict in-process entries that other processes' writes made stale.

A shared tier that publishes its invalidations (the Redis tier: ``PUBLISH`` on ``tierstore:inv:<prefix>`` in
the same script that writes the tombstones, so it costs no extra round trip) is an
:class:`~tierstore.tiers.base.InvalidationFeed`. :class:`L1Coherence` subscribes to it and evicts the keys
from the process's :class:`LocalTier`.

Messages sent while a process is not subscribed are lost, so the in-process tier is flushed whenever the
subscription starts or ends, and the tiered path fills it only while :attr:`L1Coherence.connected` is true.
Staleness of an L1 entry is therefore bounded by the channel's delivery delay while it is up, and by nothing
while it is down (L1 is empty then); every L1 entry also has the tier's max age.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tierstore.logs import get_logger
from tierstore.tiers.base import InvalidationFeed, LocalTier

__all__ = ["L1Coherence"]

log = get_logger("tierstore.cache.coherence")


class L1Coherence:
    """Keeps one :class:`LocalTier` coherent with the writes of other processes, through a feed."""

    def __init__(
        self, l1: LocalTier, feed: InvalidationFeed, *, retry: float = 0.05, max_retry: float = 2.0,
        ready_timeout: float = 0.5, on_invalidate: Callable[[list[str] | None], None] | None = None,
    ) -> None:
        self.l1 = l1
        self.on_invalidate = on_invalidate
        """Told the keys of each message as it is applied (``None``: everything — a flush, a (re)subscription
        or a drop), so the tiered path's single flight stops joining reads that began before."""
        self.feed = feed
        self.retry = retry
        self.max_retry = max_retry
        self.ready_timeout = ready_timeout
        self.connected = False
        self.started = False
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._closed = False

    def __repr__(self) -> str:
        state = "connected" if self.connected else "closed" if self._closed else "disconnected"
        return f"L1Coherence({state})"

    @property
    def closed(self) -> bool:
        return self._closed

    async def start(self) -> None:
        """Start listening, and wait (briefly) for the subscription so the first reads may fill L1."""
        if self.started or self._closed:
            return
        self.started = True
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tierstore-l1-coherence")
        try:
            async with asyncio.timeout(self.ready_timeout):
                await self._ready.wait()
        except TimeoutError:
            log.warning("L1 coherence: channel not subscribed after %.2fs; L1 stays empty until it is",
                        self.ready_timeout)

    async def _run(self) -> None:
        delay = self.retry
        while not self._closed:
            try:
                async for keys in self.feed.invalidations():
                    if not keys:
                        # Subscribed: anything L1 holds may have missed messages sent before now.
                        await self.l1.clear()
                        self._heard(None)
                        self.connected = True
                        self._ready.set()
                        delay = self.retry
                        self.l1.stats.coherence_subscribes += 1
                        continue
                    if "*" in keys:
                        await self.l1.clear()
                        self._heard(None)
                        self.l1.stats.coherence_flushes += 1
                    else:
                        invalidate = self.l1.invalidate
                        for k in keys:
                            invalidate(k)
                        self._heard(keys)
                        self.l1.stats.coherence_evictions += len(keys)
            except asyncio.CancelledError:
                await self._down()
                raise
            except Exception as exc:
                log.debug("L1 coherence: channel lost: %r", exc)
            await self._down()
            if self._closed:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_retry)

    async def _down(self) -> None:
        if self.connected:
            self.connected = False
            self.l1.stats.coherence_drops += 1
        self._ready.clear()
        await self.l1.clear()  # messages will be missed from now on: nothing in L1 may outlive the drop
        self._heard(None)

    def _heard(self, keys: list[str] | None) -> None:
        if self.on_invalidate is not None:
            self.on_invalidate(keys)

    async def aclose(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception as exc:
                log.debug("L1 coherence: stopped with %r", exc)
