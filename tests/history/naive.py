"""A naive cache-aside tier, for the checker to catch: GET; on a miss the reader loads the store and SETs
what it read; a write DELetes. No lease, so a reader that loaded the old row before a write committed puts
it back after the write's DEL — the stale fill tierstore's tiers guard against. Each fill waits ``FILL_DELAY``
first, as a reader on a busy machine does, so a short run hits the race. The history tests run it to prove
the checker finds such reads (a checker that cannot fail is no checker)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from redis.asyncio import Redis

from tierstore.stats import TierStats
from tierstore.tiers.base import Lease

_ANY = Lease(1)  # every miss may fill, whatever happened since
FILL_DELAY = 0.1


class NaiveRedisTier:
    local = False
    name = "naive-redis"

    def __init__(self, url: str, prefix: str = "naive") -> None:
        self.stats = TierStats()
        self._url, self._prefix = url, prefix
        self._r: Redis | None = None

    def _k(self, key: str) -> str:
        return f"{self._prefix}:{key}"

    async def open(self) -> None:
        self._r = Redis.from_url(self._url)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | Lease | None]:
        assert self._r is not None
        got = await self._r.mget([self._k(k) for k in keys])
        return [v if v is not None else _ANY for v in got]

    async def fill_many(self, entries: Sequence[tuple[str, bytes, Lease]], ttl: float) -> None:
        assert self._r is not None
        await asyncio.sleep(FILL_DELAY)
        for k, v, _ in entries:
            if v:
                await self._r.set(self._k(k), v, px=int(ttl * 1000))

    async def set_many(self, entries: Sequence[tuple[str, bytes, int]], ttl: float) -> None:
        assert self._r is not None
        for k, v, _ in entries:
            await self._r.set(self._k(k), v, px=int(ttl * 1000))

    async def invalidate_many(self, keys: Sequence[str]) -> None:
        assert self._r is not None
        await self._r.delete(*(self._k(k) for k in keys))

    async def clear(self) -> None:
        pass

    async def aclose(self) -> None:
        if self._r is not None:
            await self._r.aclose()
