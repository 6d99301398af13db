"""The tiered read/write path, generic over tiers.

Reads go nearest-first; the first hit wins; misses go down as one batch per tier; values found farther down
are filled back up into every nearer tier that handed out a lease. Writes go to the store first; then
(cache-aside) every tier invalidates the keys, farthest first — so a reader filling a near tier from a far
one can never re-fill the old value after the write — or (write-through) every tier gets a versioned set.

Tiers fail open: an error on a tier is a miss on read; an invalidation that could not be delivered is kept
and replayed before the tier is read again (past a bound, the tier is cleared instead).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from tierstore.codecs import ABSENT, Codec
from tierstore.errors import ConfigError
from tierstore.tiers.base import CacheTier, Lease
from tierstore.tiers.memory import MemoryTier

__all__ = ["CachePolicy", "TieredCache"]

log = logging.getLogger("tierstore.cache")
T = TypeVar("T")

MAX_PENDING_INVALIDATIONS = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class CachePolicy:
    """How the repository uses its tiers.

    ``ttl``: seconds an entry lives in a shared tier (L1 entries are also capped by the tier's own max age).
    ``ttl_jitter``: fraction by which TTLs are randomly shortened, so entries filled together do not expire
    together. ``negative_ttl``: cache "not found" for this long (``None``: off). ``write_mode``:
    ``"invalidate"`` (cache-aside) or ``"write_through"`` (versioned sets). ``lease_wait``/``lease_retries``:
    when another reader holds a key's lease, wait this long between re-reads before going to the store.
    """

    ttl: float = 300.0
    ttl_jitter: float = 0.1
    negative_ttl: float | None = None
    write_mode: Literal["invalidate", "write_through"] = "invalidate"
    lease_wait: float = 0.02
    lease_retries: int = 5

    def __post_init__(self) -> None:
        if self.ttl <= 0 or not 0 <= self.ttl_jitter < 1:
            raise ConfigError("CachePolicy needs ttl > 0 and 0 <= ttl_jitter < 1")
        if self.negative_ttl is not None and self.negative_ttl <= 0:
            raise ConfigError("CachePolicy.negative_ttl must be > 0 or None")
        if self.write_mode not in ("invalidate", "write_through"):
            raise ConfigError(f"unknown write_mode {self.write_mode!r}")

    def jittered(self, ttl: float) -> float:
        return ttl * (1.0 - random.random() * self.ttl_jitter) if self.ttl_jitter else ttl


class TieredCache:
    """Orchestrates the tiers of one database. Nearest tier first."""

    def __init__(self, tiers: Sequence[CacheTier], policy: CachePolicy | None = None) -> None:
        self.tiers = tuple(tiers)
        self.policy = policy or CachePolicy()
        first = self.tiers[0] if self.tiers else None
        self.l1: MemoryTier | None = first if isinstance(first, MemoryTier) else None
        self._pending: dict[int, set[str]] = {}

    def __repr__(self) -> str:
        return f"TieredCache({', '.join(t.name for t in self.tiers)}, {self.policy})"

    # -- reads -------------------------------------------------------------------------------------

    async def read_many(
        self,
        codec: Codec[T],
        cks: Sequence[str],
        load: Callable[[list[int]], Awaitable[list[T | None]]],
        *,
        expires_of: Callable[[T], float | None] | None = None,
        start: int = 0,
    ) -> list[T | None]:
        """Resolve distinct cache keys ``cks``; ``load(indexes)`` reads the store for what every tier missed.

        ``start`` skips the nearest tiers (the caller already looked there).
        """
        n = len(cks)
        results: list[Any] = [None] * n
        pending = list(range(n))
        leases: list[dict[int, Lease]] = []
        for t in range(start, len(self.tiers)):
            tier = self.tiers[t]
            got_leases: dict[int, Lease] = {}
            leases.append(got_leases)
            if not pending:
                continue
            got = await self._tier_get(t, [cks[i] for i in pending])
            waiting: list[int] = []
            missed: list[int] = []
            bad: list[str] = []
            for i, g in zip(pending, got, strict=True):
                if isinstance(g, bytes):
                    value = codec.decode(g)
                    if value is None:
                        tier.stats.undecodable += 1
                        bad.append(cks[i])
                        missed.append(i)
                    else:
                        results[i] = value
                elif isinstance(g, Lease):
                    got_leases[i] = g
                    missed.append(i)
                else:
                    waiting.append(i)
            if bad:
                await self._tier_invalidate(t, bad)
            if waiting:
                missed += await self._wait_for_fill(t, codec, cks, waiting, results, got_leases)
            pending = missed
        if pending:
            loaded = await load(pending)
            for i, value in zip(pending, loaded, strict=True):
                results[i] = ABSENT if value is None else value
        await self._back_fill(codec, cks, results, leases, start, expires_of)
        return [None if r is ABSENT else r for r in results]

    async def _wait_for_fill(
        self, t: int, codec: Codec[Any], cks: Sequence[str], waiting: list[int],
        results: list[Any], got_leases: dict[int, Lease],
    ) -> list[int]:
        """Another reader holds these keys' leases: re-read a few times before going to the store.

        Returns the indexes still missing (with a lease of their own now, or none).
        """
        tier = self.tiers[t]
        missed: list[int] = []
        for _ in range(self.policy.lease_retries):
            tier.stats.lease_waits += 1
            await asyncio.sleep(self.policy.lease_wait)
            got = await self._tier_get(t, [cks[i] for i in waiting])
            still: list[int] = []
            for i, g in zip(waiting, got, strict=True):
                value = codec.decode(g) if isinstance(g, bytes) else None
                if value is not None:
                    results[i] = value
                elif isinstance(g, Lease):
                    got_leases[i] = g  # the holder finished or gave up: we fill
                    missed.append(i)
                else:
                    still.append(i)
            waiting = still
            if not waiting:
                break
        return missed + waiting

    async def _back_fill(
        self, codec: Codec[Any], cks: Sequence[str], results: list[Any], leases: list[dict[int, Lease]],
        start: int, expires_of: Callable[[Any], float | None] | None,
    ) -> None:
        policy = self.policy
        encoded: dict[int, tuple[bytes, float]] = {}
        for offset, tier_leases in enumerate(leases):
            if not tier_leases:
                continue
            entries: list[tuple[str, bytes, Lease]] = []
            ttl = policy.ttl
            for i, lease in tier_leases.items():
                enc = encoded.get(i)
                if enc is None:
                    value = results[i]
                    if value is ABSENT:
                        if policy.negative_ttl is None:
                            continue
                        enc = (codec.absent_bytes, policy.negative_ttl)
                    else:
                        item_ttl = policy.ttl
                        if expires_of is not None:
                            at = expires_of(value)
                            if at is not None:
                                item_ttl = min(item_ttl, at - time.time())
                                if item_ttl <= 0:
                                    continue
                        enc = (codec.encode(value), item_ttl)
                    encoded[i] = enc
                entries.append((cks[i], enc[0], lease))
                ttl = min(ttl, enc[1])
            if entries:
                await self._tier_fill(start + offset, entries, policy.jittered(ttl))

    # -- writes ------------------------------------------------------------------------------------

    async def after_write(self, cks: Sequence[str], values: Sequence[bytes | None] = (), version: Sequence[int] = ()) -> None:
        """Make every tier forget (or, write-through, replace) ``cks`` after a committed write.

        ``values`` are the new envelopes (``None`` for deletes); used only in write-through mode.
        """
        if self.policy.write_mode == "write_through" and values:
            sets = [(k, v, ver) for k, v, ver in zip(cks, values, version, strict=True) if v is not None]
            gone = [k for k, v in zip(cks, values, strict=True) if v is None]
            for t in reversed(range(len(self.tiers))):
                if gone:
                    await self._tier_invalidate(t, gone)
                if sets:
                    await self._tier_set(t, sets, self.policy.jittered(self.policy.ttl))
            return
        for t in reversed(range(len(self.tiers))):
            await self._tier_invalidate(t, cks)

    # -- fail-open wrappers --------------------------------------------------------------------------

    async def _replay(self, t: int) -> bool:
        keys = self._pending.get(t)
        if not keys:
            return True
        tier = self.tiers[t]
        try:
            if "*" in keys:
                await tier.clear()
            else:
                await tier.invalidate_many(sorted(keys))
        except Exception as exc:  # the tier is still down: keep the backlog
            tier.stats.errors += 1
            log.debug("tier %s: replay failed: %r", tier.name, exc)
            return False
        tier.stats.invalidations_replayed += len(keys)
        del self._pending[t]
        return True

    async def _tier_get(self, t: int, keys: list[str]) -> list[bytes | Lease | None]:
        tier = self.tiers[t]
        if t in self._pending and not await self._replay(t):
            return [None] * len(keys)
        try:
            return await tier.get_many(keys)
        except Exception as exc:
            tier.stats.errors += 1
            log.debug("tier %s: get failed, reading through: %r", tier.name, exc)
            return [None] * len(keys)

    async def _tier_fill(self, t: int, entries: list[tuple[str, bytes, Lease]], ttl: float) -> None:
        tier = self.tiers[t]
        try:
            await tier.fill_many(entries, ttl)
        except Exception as exc:
            tier.stats.errors += 1
            log.debug("tier %s: fill failed: %r", tier.name, exc)

    async def _tier_set(self, t: int, entries: list[tuple[str, bytes, int]], ttl: float) -> None:
        tier = self.tiers[t]
        try:
            await tier.set_many(entries, ttl)
        except Exception as exc:
            tier.stats.errors += 1
            self._remember(t, [e[0] for e in entries])
            log.debug("tier %s: set failed: %r", tier.name, exc)

    async def _tier_invalidate(self, t: int, keys: Sequence[str]) -> None:
        tier = self.tiers[t]
        if t in self._pending:
            self._remember(t, keys)
            await self._replay(t)
            return
        try:
            await tier.invalidate_many(keys)
        except Exception as exc:
            tier.stats.errors += 1
            self._remember(t, keys)
            log.warning("tier %s: invalidation failed, kept for replay: %r", tier.name, exc)

    def _remember(self, t: int, keys: Sequence[str]) -> None:
        pending = self._pending.setdefault(t, set())
        pending.update(keys)
        if len(pending) > MAX_PENDING_INVALIDATIONS:
            # Too much to replay key by key: the tier will be cleared as a whole before it is trusted.
            pending.clear()
            pending.add("*")

    async def aclose(self) -> None:
        for tier in reversed(self.tiers):
            try:
                await tier.aclose()
            except Exception as exc:
                log.warning("tier %s: close failed: %r", tier.name, exc)
