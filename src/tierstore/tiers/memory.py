"""``MemoryTier``: the in-process tier. Bounded by entries and bytes, TTL per entry, S3-FIFO eviction.

S3-FIFO (Yang et al., SOSP '23) keeps new keys in a small FIFO (10 % of capacity); only keys read again
while there are promoted to the main FIFO, and keys evicted from the small queue are remembered in a ghost
queue so that a quick return goes straight to main. One-hit wonders — most keys of a Zipf workload — are
thus evicted early without displacing the hot set, which plain LRU does; a hit only bumps a counter
(no list surgery). ``tierstore bench`` reports its hit ratio against LRU on ``zipf_read``.

Values are codec envelopes (bytes), so a caller can never mutate what is cached. An entry read ``HOT`` times
also keeps its decoded object when the codec allows it (:attr:`Codec.keep_objects`), and :meth:`MemoryTier.read`
hands out shallow copies of it (or the object itself, :attr:`Codec.share_objects`): only hot entries pay the
object's memory (~2x the encoded size), and a hot read costs no decode.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tierstore.codecs import ABSENT, Codec
from tierstore.stats import TierStats
from tierstore.tiers.base import Lease

__all__ = ["MemoryTier", "MemoryTierConfig"]

# Per-entry bookkeeping beyond key and value (entry object, float, dict slot), used for the byte bound.
ENTRY_OVERHEAD = 160
HOT = 2  # reads after which an entry keeps its decoded object


class _Entry:
    __slots__ = ("expires", "freq", "obj", "size", "value", "version")

    def __init__(self, value: bytes, expires: float, size: int, version: int) -> None:
        self.value = value
        self.expires = expires
        self.freq = 0
        self.size = size
        self.version = version
        self.obj: Any = None


class MemoryTier:
    """In-process cache tier. Not thread-safe: use it from one event loop."""

    local = True

    def __init__(
        self,
        *,
        max_items: int = 50_000,
        max_bytes: int = 64 * 1024 * 1024,
        ttl: float = 60.0,
        name: str = "memory",
    ) -> None:
        if max_items < 1 or max_bytes < 1 or ttl <= 0:
            from tierstore.errors import ConfigError

            raise ConfigError("MemoryTier needs max_items >= 1, max_bytes >= 1 and ttl > 0")
        self.name = name
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.stats = TierStats()
        # The queues are OrderedDicts: taking the head of a plain dict after many pops from its front scans
        # the deleted slots (O(n) per eviction at 100k entries); ``popitem(last=False)`` and ``move_to_end``
        # are O(1) at any size.
        self._small: OrderedDict[str, _Entry] = OrderedDict()
        self._main: OrderedDict[str, _Entry] = OrderedDict()
        self._ghost: OrderedDict[str, None] = OrderedDict()
        self._small_bytes = 0
        self._main_bytes = 0
        self._leases: dict[str, int] = {}
        self._next_token = 0
        self._small_items_cap = max(1, max_items // 10)
        self._small_bytes_cap = max(1, max_bytes // 10)

    def __repr__(self) -> str:
        return f"MemoryTier(items={len(self)}, bytes={self.nbytes}, max_items={self.max_items})"

    def __len__(self) -> int:
        return len(self._small) + len(self._main)

    @property
    def nbytes(self) -> int:
        return self._small_bytes + self._main_bytes

    # -- synchronous core (the repository's fast path) ---------------------------------------------

    def entry(self, key: str) -> _Entry | None:
        """The live entry for ``key`` (counted as a hit), or ``None`` (the caller counts the miss)."""
        e = self._main.get(key) or self._small.get(key)
        if e is not None:
            if e.expires > time.monotonic():
                if e.freq < 3:
                    e.freq += 1
                self.stats.hits += 1
                return e
            self._remove(key)
        return None

    def read(self, key: str, codec: Codec[Any]) -> Any:
        """The item under ``key``, :data:`ABSENT`, or ``None`` (see :class:`~tierstore.tiers.base.LocalTier`)."""
        e = self._main.get(key) or self._small.get(key)
        if e is None:
            return None
        if e.expires <= time.monotonic():
            self._remove(key)
            return None
        if e.freq < 3:
            e.freq += 1
        obj = e.obj
        if obj is None:
            obj = codec.decode(e.value, key)
            if obj is None:
                return None  # undecodable: the tiered path counts and replaces it
            self.stats.hits += 1
            if obj is ABSENT or not codec.keep_objects or e.freq < HOT:
                return obj
            e.obj = obj
        else:
            self.stats.hits += 1
        return obj if codec.share_objects else obj.__copy__()

    def lease(self, key: str) -> Lease:
        token = self._leases.get(key)
        if token is None:
            if len(self._leases) >= self.max_items:
                self._leases.clear()  # dropping leases only drops fills: always safe
            self._next_token += 1
            token = self._leases[key] = self._next_token
        return Lease(token)

    def fill(self, key: str, value: bytes, lease: Lease, ttl: float | None = None) -> _Entry | None:
        if self._leases.get(key) != lease.token:
            self.stats.fills_dropped += 1
            return None
        del self._leases[key]
        return self.store(key, value, ttl)

    def set_versioned(self, key: str, value: bytes, version: int, ttl: float | None = None) -> None:
        current = self._main.get(key) or self._small.get(key)
        if current is not None and current.version > version:
            self.stats.fills_dropped += 1
            return
        self._leases.pop(key, None)
        self.store(key, value, ttl, version)

    def store(self, key: str, value: bytes, ttl: float | None = None, version: int = 0) -> _Entry:
        size = len(value) + len(key) + ENTRY_OVERHEAD
        entry = _Entry(value, time.monotonic() + min(ttl or self.ttl, self.ttl), size, version)
        self.stats.fills += 1
        old = self._main.get(key)
        if old is not None:
            entry.freq = old.freq
            self._main[key] = entry
            self._main_bytes += size - old.size
        else:
            old = self._small.pop(key, None)
            if old is not None:
                self._small_bytes -= old.size
            if self._ghost.pop(key, 0) is None:
                self._main[key] = entry
                self._main_bytes += size
            else:
                self._small[key] = entry
                self._small_bytes += size
        self._evict()
        return entry

    def invalidate(self, key: str) -> None:
        self._leases.pop(key, None)
        self._remove(key)
        self.stats.invalidations += 1

    def _remove(self, key: str) -> None:
        e = self._small.pop(key, None)
        if e is not None:
            self._small_bytes -= e.size
        e = self._main.pop(key, None)
        if e is not None:
            self._main_bytes -= e.size

    def _evict(self) -> None:
        small, main = self._small, self._main
        while len(small) + len(main) > self.max_items or self.nbytes > self.max_bytes:
            if small and (
                len(small) > self._small_items_cap or self._small_bytes > self._small_bytes_cap or not main
            ):
                key, e = small.popitem(last=False)
                self._small_bytes -= e.size
                if e.freq > 0:
                    e.freq = 0
                    main[key] = e
                    self._main_bytes += e.size
                else:
                    ghost = self._ghost
                    ghost[key] = None
                    if len(ghost) > self.max_items:
                        ghost.popitem(last=False)
                    self.stats.evictions += 1
            else:
                key, e = next(iter(main.items()))
                if e.freq > 0:
                    e.freq -= 1
                    main.move_to_end(key)  # reinsert at the tail
                else:
                    del main[key]
                    self._main_bytes -= e.size
                    self.stats.evictions += 1

    # -- CacheTier protocol ------------------------------------------------------------------------

    async def open(self) -> None:
        pass

    async def get_many(self, keys: Sequence[str]) -> list[bytes | Lease | None]:
        out: list[bytes | Lease | None] = []
        for k in keys:
            e = self.entry(k)
            if e is None:
                self.stats.misses += 1
                out.append(self.lease(k))
            else:
                out.append(e.value)
        return out

    async def fill_many(self, entries: Sequence[tuple[str, bytes, Lease]], ttl: float) -> None:
        for k, v, lease in entries:
            self.fill(k, v, lease, ttl)

    async def set_many(self, entries: Sequence[tuple[str, bytes, int]], ttl: float) -> None:
        for k, v, version in entries:
            self.set_versioned(k, v, version, ttl)

    async def invalidate_many(self, keys: Sequence[str]) -> None:
        for k in keys:
            self.invalidate(k)

    async def clear(self) -> None:
        self._small.clear()
        self._main.clear()
        self._ghost.clear()
        self._leases.clear()
        self._small_bytes = self._main_bytes = 0

    async def aclose(self) -> None:
        await self.clear()


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryTierConfig:
    """``memory://?max_items=50000&max_bytes=64MiB&ttl=60s``."""

    max_items: int = 50_000
    max_bytes: int = 64 * 1024 * 1024
    ttl: float = 60.0

    @classmethod
    def from_url(cls, url: str) -> MemoryTierConfig:
        from tierstore.config import parse_duration, parse_int, parse_size, query_params

        p = query_params(url, {"max_items", "max_bytes", "ttl"})
        return cls(
            max_items=parse_int(p["max_items"], "max_items") if "max_items" in p else 50_000,
            max_bytes=parse_size(p["max_bytes"], "max_bytes") if "max_bytes" in p else 64 * 1024 * 1024,
            ttl=parse_duration(p["ttl"], "ttl") if "ttl" in p else 60.0,
        )

    def build(self) -> MemoryTier:
        return MemoryTier(max_items=self.max_items, max_bytes=self.max_bytes, ttl=self.ttl)
