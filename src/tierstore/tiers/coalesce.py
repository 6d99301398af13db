"""Request coalescing: the reads one tier receives in one loop tick go out as one ``get_many``.

A read that finds a batch being collected joins it; the reads of one tick are merged into one ``get_many``
(one ``MGET``/multi-get per node), each caller getting its own results in its own order; a key asked for
twice gets one lease, and the other callers wait for its fill (DataLoader-style). A read that finds no batch
leads one, waiting one tick for the others, only when another callback is ready to run in this tick (someone
may join); when nothing else is ready, no one can join, so it goes out at once and pays no tick. So the 64
readers woken by one batch's reply go out as one batch again, and a lone reader never waits. The loop's ready
queue is read where the loop has one (asyncio's own loops); on other loops a read goes out at once when no
read of the tier is in flight.

If the read that led a batch fails or is cancelled, every caller that joined it fails on its own (a miss,
counted once: :class:`SharedFailure`), so no one is left waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TypeAlias

from tierstore.errors import TierError
from tierstore.tiers.base import CacheTier, Lease

__all__ = ["Coalescer", "SharedFailure"]

Joiners: TypeAlias = list[tuple[Sequence[str], asyncio.Future[list[bytes | Lease | None]]]]


class SharedFailure(TierError):
    """A coalesced read failed in the caller that led it: one failure, not one per caller it served."""


class Coalescer:
    """Merges the ``get_many`` calls one tier receives in one loop tick (see the module docstring).

    ``batch`` is the list of callers joining the batch being collected this tick (``None`` when none is): the
    tiered path appends to it directly, which saves a frame per joiner.
    """

    __slots__ = ("_running", "batch", "tier")

    def __init__(self, tier: CacheTier) -> None:
        self.tier = tier
        self._running = 0
        self.batch: Joiners | None = None

    async def get_many(self, keys: Sequence[str]) -> list[bytes | Lease | None]:
        batch = self.batch
        loop = asyncio.get_running_loop()
        if batch is not None:  # a batch is being collected this tick: join it
            fut: asyncio.Future[list[bytes | Lease | None]] = loop.create_future()
            batch.append((keys, fut))
            return await fut
        ready = getattr(loop, "_ready", None)  # asyncio's loops: the callbacks of this tick still to run
        if not (ready if ready is not None else self._running):  # no one can join this tick: go now
            self._running += 1
            try:
                return await self.tier.get_many(keys)
            finally:
                self._running -= 1
        return await self._lead(keys)

    async def _lead(self, keys: Sequence[str]) -> list[bytes | Lease | None]:
        joiners: Joiners = []
        self.batch = joiners
        try:
            await asyncio.sleep(0)  # one tick: the callers already scheduled join
        except BaseException:
            self.batch = None
            self._abandon(joiners, SharedFailure("coalesced read abandoned"))
            raise
        self.batch = None
        if not joiners:
            self._running += 1
            try:
                return await self.tier.get_many(keys)
            finally:
                self._running -= 1
        merged = list(keys)
        for ks, _ in joiners:
            merged += ks
        distinct = dict.fromkeys(merged)
        asked = merged if len(distinct) == len(merged) else list(distinct)
        self._running += 1
        try:
            got = await self.tier.get_many(asked)
        except BaseException as exc:
            self._abandon(joiners, SharedFailure(f"coalesced read failed: {exc!r}"))
            raise
        finally:
            self._running -= 1
        stats = self.tier.stats
        stats.coalesced_batches += 1
        stats.coalesced_calls += 1 + len(joiners)
        stats.coalesced_keys += len(asked)
        if len(asked) > stats.coalesced_max_keys:
            stats.coalesced_max_keys = len(asked)
        if asked is merged:
            # No key asked twice: each caller's answers are its slice of the reply, in its order.
            end = len(keys)
            mine = got[:end]
            for ks, f in joiners:
                start, end = end, end + len(ks)
                if not f.done():
                    f.set_result(got[start:end])
            return mine
        index = {k: i for i, k in enumerate(asked)}
        leased: set[int] = set()

        def share(ks: Sequence[str]) -> list[bytes | Lease | None]:
            out: list[bytes | Lease | None] = []
            for k in ks:
                j = index[k]
                g = got[j]
                if isinstance(g, Lease) and g.token is not None:
                    if j in leased:
                        g = None  # one lease per key: the others wait for its fill
                    else:
                        leased.add(j)
                out.append(g)
            return out

        mine = share(keys)
        for ks, f in joiners:
            if not f.done():
                f.set_result(share(ks))
        return mine

    @staticmethod
    def _abandon(joiners: Joiners, exc: Exception) -> None:
        """The leader failed or was cancelled: every joiner fails open on its own (a miss)."""
        for _, f in joiners:
            if not f.done():
                f.set_exception(exc)
