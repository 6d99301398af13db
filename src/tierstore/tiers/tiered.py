"""The tiered read/write path, generic over tiers.

Reads go nearest-first; the first hit wins; misses go down as one batch per tier; values found farther down
are filled back up into every nearer tier that handed out a lease. Writes go to the store first; then
(cache-aside) every tier invalidates the keys, farthest first — so a reader filling a near tier from a far
one can never re-fill the old value after the write — or (write-through) every tier gets a versioned set.

Around every non-local tier:

* **Request coalescing.** While a read is in flight on a tier, the reads that arrive in the same loop tick
  are merged into one ``get_many`` (one ``MGET``/multi-get per node), each caller getting its own results;
  a key asked for twice gets one lease, the other callers wait for its fill (DataLoader-style).
* **Lease waits.** A miss without a lease means another reader (maybe in another process) is filling the key:
  re-read a few times (``CachePolicy.lease_wait``/``lease_retries``) before reading the store unfilled.
* **Fail-open.** An error is a miss on read (a miss that is never filled), a dropped fill, or an invalidation
  kept and replayed before the tier is read again (past a bound, the tier is cleared instead). A circuit
  breaker per tier stops paying timeouts; network tiers also keep a breaker and a backlog per node.
* **L1 coherence.** When the nearest tier is in-process and a farther tier publishes invalidations (Redis),
  other processes' writes evict L1 entries; while that channel is down, L1 is flushed and not filled.
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
from tierstore.errors import ConfigError, TierError
from tierstore.tiers.base import CacheTier, Lease, LocalTier
from tierstore.tiers.breaker import Breaker
from tierstore.tiers.coherence import InvalidationFeed, L1Coherence

__all__ = ["CachePolicy", "TieredCache"]

log = logging.getLogger("tierstore.cache")
T = TypeVar("T")

MAX_PENDING_INVALIDATIONS = 10_000
_VOID = Lease(None)
_RELEASE = (b"", 0.0)  # fill entry with an empty value: release the lease, cache nothing
_NO_LEASES: dict[int, Lease] = {}  # shared, never written


@dataclass(frozen=True, slots=True, kw_only=True)
class CachePolicy:
    """How the repository uses its tiers.

    ``ttl``: seconds an entry lives in a shared tier (L1 entries are also capped by the tier's own max age).
    ``ttl_jitter``: fraction by which TTLs are randomly shortened, so entries filled together do not expire
    together. ``negative_ttl``: cache "not found" for this long (``None``: off). ``write_mode``:
    ``"invalidate"`` (cache-aside) or ``"write_through"`` (versioned sets; an entity without a version field
    is invalidated instead, since unordered writers could not be told apart). ``lease_wait``/``lease_retries``:
    when another reader holds a key's lease, wait this long between re-reads before going to the store.
    ``coalesce``: merge concurrent reads of one tier in the same loop tick. ``breaker_failures``/
    ``breaker_cooldown``: the per-tier circuit breaker (network tiers also have one per node).
    """

    ttl: float = 300.0
    ttl_jitter: float = 0.1
    negative_ttl: float | None = None
    write_mode: Literal["invalidate", "write_through"] = "invalidate"
    lease_wait: float = 0.02
    lease_retries: int = 5
    coalesce: bool = True
    breaker_failures: int = 5
    breaker_cooldown: float = 1.0

    def __post_init__(self) -> None:
        if self.ttl <= 0 or not 0 <= self.ttl_jitter < 1:
            raise ConfigError("CachePolicy needs ttl > 0 and 0 <= ttl_jitter < 1")
        if self.negative_ttl is not None and self.negative_ttl <= 0:
            raise ConfigError("CachePolicy.negative_ttl must be > 0 or None")
        if self.write_mode not in ("invalidate", "write_through"):
            raise ConfigError(f"unknown write_mode {self.write_mode!r}")
        if self.lease_wait < 0 or self.lease_retries < 0:
            raise ConfigError("CachePolicy.lease_wait and lease_retries must be >= 0")
        if self.breaker_failures < 1 or self.breaker_cooldown <= 0:
            raise ConfigError("CachePolicy needs breaker_failures >= 1 and breaker_cooldown > 0")

    def jittered(self, ttl: float) -> float:
        return ttl * (1.0 - random.random() * self.ttl_jitter) if self.ttl_jitter else ttl


class _SharedFailure(TierError):
    """A coalesced read failed in the caller that led it: one failure, not one per caller it served."""


class _Coalescer:
    """Merges the ``get_many`` calls one tier receives in one loop tick (while another is in flight)."""

    __slots__ = ("_batch", "_running", "tier")

    def __init__(self, tier: CacheTier) -> None:
        self.tier = tier
        self._running = 0
        self._batch: list[tuple[Sequence[str], asyncio.Future[list[bytes | Lease | None]]]] | None = None

    async def get_many(self, keys: Sequence[str]) -> list[bytes | Lease | None]:
        batch = self._batch
        if batch is not None:  # a batch is being collected this tick: join it
            fut: asyncio.Future[list[bytes | Lease | None]] = asyncio.get_running_loop().create_future()
            batch.append((keys, fut))
            return await fut
        if not self._running:  # nothing in flight: no one to merge with, go now
            self._running += 1
            try:
                return await self.tier.get_many(keys)
            finally:
                self._running -= 1
        return await self._lead(keys)

    async def _lead(self, keys: Sequence[str]) -> list[bytes | Lease | None]:
        joiners: list[tuple[Sequence[str], asyncio.Future[list[bytes | Lease | None]]]] = []
        self._batch = joiners
        try:
            await asyncio.sleep(0)  # one tick: the callers already scheduled join
        except BaseException:
            self._batch = None
            self._abandon(joiners, _SharedFailure("coalesced read abandoned"))
            raise
        self._batch = None
        if not joiners:
            self._running += 1
            try:
                return await self.tier.get_many(keys)
            finally:
                self._running -= 1
        index: dict[str, int] = {}
        merged: list[str] = []
        for ks in [keys, *(j[0] for j in joiners)]:
            for k in ks:
                if k not in index:
                    index[k] = len(merged)
                    merged.append(k)
        self._running += 1
        try:
            got = await self.tier.get_many(merged)
        except BaseException as exc:
            self._abandon(joiners, _SharedFailure(f"coalesced read failed: {exc!r}"))
            raise
        finally:
            self._running -= 1
        extra = self.tier.stats.extra
        extra["coalesced_batches"] = extra.get("coalesced_batches", 0) + 1
        extra["coalesced_calls"] = extra.get("coalesced_calls", 0) + 1 + len(joiners)
        extra["coalesced_keys"] = extra.get("coalesced_keys", 0) + len(merged)
        if len(merged) > extra.get("coalesced_max_keys", 0):
            extra["coalesced_max_keys"] = len(merged)
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
    def _abandon(joiners: list[tuple[Sequence[str], asyncio.Future[list[bytes | Lease | None]]]],
                 exc: Exception) -> None:
        """The leader failed or was cancelled: every joiner fails open on its own (a miss)."""
        for _, f in joiners:
            if not f.done():
                f.set_exception(exc)


class TieredCache:
    """Orchestrates the tiers of one database. Nearest tier first."""

    def __init__(self, tiers: Sequence[CacheTier], policy: CachePolicy | None = None) -> None:
        self.tiers = tuple(tiers)
        self.policy = policy or CachePolicy()
        first = self.tiers[0] if self.tiers else None
        self.l1: LocalTier | None = first if isinstance(first, LocalTier) else None
        self._pending: dict[int, set[str]] = {}
        p = self.policy
        self._getters: list[Callable[[Sequence[str]], Awaitable[list[bytes | Lease | None]]]] = []
        self._coalescers: list[_Coalescer | None] = []
        self._breakers: list[Breaker | None] = []
        for tier in self.tiers:
            if tier.local:
                self._getters.append(tier.get_many)
                self._breakers.append(None)
                self._coalescers.append(None)
            else:
                coalescer = _Coalescer(tier) if p.coalesce else None
                self._coalescers.append(coalescer)
                self._getters.append(coalescer.get_many if coalescer is not None else tier.get_many)
                self._breakers.append(Breaker(failures=p.breaker_failures, cooldown=p.breaker_cooldown,
                                              name=tier.name))
        self.coherence: L1Coherence | None = None
        if self.l1 is not None:
            for tier in self.tiers[1:]:
                if isinstance(tier, InvalidationFeed) and tier.publishes_invalidations:
                    self.coherence = L1Coherence(self.l1, tier)
                    break
        self._closed = False

    def __repr__(self) -> str:
        return f"TieredCache({', '.join(t.name for t in self.tiers)}, {self.policy})"

    async def _l1_ready(self) -> bool:
        """May L1 be filled now? Only while the invalidation channel (if any) is connected."""
        coherence = self.coherence
        if coherence is None:
            return True
        if not coherence.started and not self._closed:
            await coherence.start()
        return coherence.connected

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
        leases: list[dict[int, Lease]] = []  # per tier visited: the leases it handed out
        decode = codec.decode
        missed = pending
        for t in range(start, len(self.tiers)):
            got = await self._tier_get(t, [cks[i] for i in pending] if len(pending) < n else cks)
            missed = []
            got_leases: dict[int, Lease] | None = None
            waiting: list[int] | None = None
            bad: list[str] | None = None
            for i, g in zip(pending, got, strict=True):
                if g.__class__ is bytes:
                    value = decode(g)
                    if value is not None:
                        results[i] = value
                        continue
                    self.tiers[t].stats.undecodable += 1
                    if bad is None:
                        bad = []
                    bad.append(cks[i])
                    missed.append(i)
                elif g is None:
                    if waiting is None:
                        waiting = []
                    waiting.append(i)
                else:
                    if g.token is not None:  # type: ignore[union-attr]
                        if got_leases is None:
                            got_leases = {}
                        got_leases[i] = g  # type: ignore[assignment]
                    missed.append(i)
            if bad is not None:
                await self._tier_invalidate(t, bad)
            if waiting is not None:
                if got_leases is None:
                    got_leases = {}
                missed += await self._wait_for_fill(t, codec, cks, waiting, results, got_leases)
            leases.append(got_leases or _NO_LEASES)
            if not missed:
                break
            pending = missed
        if missed:
            loaded = await load(missed)
            for i, value in zip(missed, loaded, strict=True):
                results[i] = ABSENT if value is None else value
        for tier_leases in leases:
            if tier_leases:
                await self._back_fill(codec, cks, results, leases, start, expires_of)
                break
        if ABSENT in results:
            return [None if r is ABSENT else r for r in results]
        return results

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
                if isinstance(g, bytes):
                    value = codec.decode(g)
                    if value is not None:
                        results[i] = value
                    else:
                        tier.stats.undecodable += 1
                        missed.append(i)
                elif isinstance(g, Lease):
                    if g.token is not None:
                        got_leases[i] = g  # the holder finished or gave up: we fill
                    missed.append(i)
                else:
                    still.append(i)
            waiting = still
            if not waiting:
                break
        if waiting:
            extra = tier.stats.extra
            extra["lease_wait_timeouts"] = extra.get("lease_wait_timeouts", 0) + len(waiting)
        return missed + waiting

    async def _back_fill(
        self, codec: Codec[Any], cks: Sequence[str], results: list[Any], leases: list[dict[int, Lease]],
        start: int, expires_of: Callable[[Any], float | None] | None,
    ) -> None:
        policy = self.policy
        encoded: dict[int, tuple[bytes, float]] = {}
        dropped = False
        # Farthest first: if a shared tier drops a fill, an invalidation has overtaken this read (in some
        # process), so the value must not go into the nearer tiers either — not even this process's L1.
        for offset in reversed(range(len(leases))):
            tier_leases = leases[offset]
            if not tier_leases or dropped:
                continue
            t = start + offset
            if self.tiers[t] is self.l1 and not await self._l1_ready():
                continue  # L1 would miss other processes' invalidations now: keep it empty
            entries: list[tuple[str, bytes, Lease]] = []
            ttl = policy.ttl
            local = self.tiers[t].local
            for i, lease in tier_leases.items():
                enc = encoded.get(i)
                if enc is None:
                    value = results[i]
                    if value is ABSENT:
                        enc = _RELEASE if policy.negative_ttl is None else (codec.absent_bytes, policy.negative_ttl)
                    else:
                        item_ttl = policy.ttl
                        if expires_of is not None:
                            at = expires_of(value)
                            if at is not None:
                                item_ttl = min(item_ttl, at - time.time())
                        enc = (codec.encode(value), item_ttl) if item_ttl > 0 else _RELEASE
                    encoded[i] = enc
                if enc is _RELEASE:
                    if not local:
                        # Nothing to cache: give the lease up, so other processes stop waiting for a fill.
                        entries.append((cks[i], b"", lease))
                    continue
                entries.append((cks[i], enc[0], lease))
                ttl = min(ttl, enc[1])
            if entries:
                stats = self.tiers[t].stats
                before = stats.fills_dropped
                await self._tier_fill(t, entries, policy.jittered(ttl))
                dropped = stats.fills_dropped > before

    # -- writes ------------------------------------------------------------------------------------

    async def after_write(
        self, cks: Sequence[str], values: Sequence[bytes | None] = (), version: Sequence[int] = ()
    ) -> None:
        """Make every tier forget (or, write-through, replace) ``cks`` after a committed write.

        ``values`` are the new envelopes (``None`` for deletes); used only in write-through mode. An entry
        with version 0 (an entity without a version field) is invalidated rather than set: without versions,
        a slow writer's older value could overwrite a newer one.
        """
        if self.coherence is not None and not self.coherence.started:
            await self._l1_ready()
        if self.policy.write_mode == "write_through" and values:
            sets: list[tuple[str, bytes, int]] = []
            gone: list[str] = []
            for k, v, ver in zip(cks, values, version or [0] * len(cks), strict=True):
                if v is None or ver <= 0:
                    gone.append(k)
                else:
                    sets.append((k, v, ver))
            ttl = self.policy.jittered(self.policy.ttl)
            for t in reversed(range(len(self.tiers))):
                if gone:
                    await self._tier_invalidate(t, gone)
                if sets:
                    if self.tiers[t] is self.l1 and not await self._l1_ready():
                        await self._tier_invalidate(t, [k for k, _, _ in sets])
                    else:
                        await self._tier_set(t, sets, ttl)
            return
        for t in reversed(range(len(self.tiers))):
            await self._tier_invalidate(t, cks)

    # -- fail-open wrappers --------------------------------------------------------------------------

    def _allow(self, t: int) -> bool:
        breaker = self._breakers[t]
        return breaker is None or breaker.allow()

    def _ok(self, t: int) -> None:
        breaker = self._breakers[t]
        if breaker is not None:
            breaker.success()

    def _error(self, t: int, what: str, exc: BaseException) -> None:
        tier = self.tiers[t]
        if isinstance(exc, _SharedFailure):
            return  # counted once, by the caller that led the coalesced read
        tier.stats.errors += 1
        breaker = self._breakers[t]
        if breaker is not None:
            breaker.failure()
            tier.stats.extra["tier_breaker"] = breaker.state
        log.debug("tier %s: %s failed: %r", tier.name, what, exc)

    async def _replay(self, t: int) -> bool:
        keys = self._pending.get(t)
        if not keys:
            return True
        tier = self.tiers[t]
        if not self._allow(t):
            return False
        try:
            if "*" in keys:
                await tier.clear()
            else:
                await tier.invalidate_many(sorted(keys))
        except Exception as exc:  # the tier is still down: keep the backlog
            self._error(t, "replay", exc)
            return False
        self._ok(t)
        tier.stats.invalidations_replayed += len(keys)
        if self._pending.get(t) is keys:
            del self._pending[t]
        return True

    async def _tier_get(self, t: int, keys: Sequence[str]) -> list[bytes | Lease | None]:
        if self._pending and t in self._pending and not await self._replay(t):
            return [_VOID] * len(keys)
        breaker = self._breakers[t]
        if breaker is not None and breaker.state != "closed" and not breaker.allow():
            return [_VOID] * len(keys)
        try:
            coalescer = self._coalescers[t]
            if coalescer is not None and coalescer._batch is not None:
                # A batch is being collected this tick: join it (the coalescer's fast path, one frame less).
                fut: asyncio.Future[list[bytes | Lease | None]] = asyncio.get_running_loop().create_future()
                coalescer._batch.append((keys, fut))
                got = await fut
            else:
                got = await self._getters[t](keys)
        except Exception as exc:
            self._error(t, "get", exc)
            return [_VOID] * len(keys)
        if breaker is not None:
            breaker.success()
        return got

    async def _tier_fill(self, t: int, entries: list[tuple[str, bytes, Lease]], ttl: float) -> None:
        live = [e for e in entries if e[2].token is not None]
        if not live or t in self._pending or not self._allow(t):
            return
        try:
            await self.tiers[t].fill_many(live, ttl)
        except Exception as exc:
            self._error(t, "fill", exc)
            return
        self._ok(t)

    async def _tier_set(self, t: int, entries: list[tuple[str, bytes, int]], ttl: float) -> None:
        if t in self._pending or not self._allow(t):
            self._remember(t, [e[0] for e in entries])
            await self._replay(t)
            return
        try:
            await self.tiers[t].set_many(entries, ttl)
        except Exception as exc:
            self._error(t, "set", exc)
            self._remember(t, [e[0] for e in entries])
            return
        self._ok(t)

    async def _tier_invalidate(self, t: int, keys: Sequence[str]) -> None:
        if t in self._pending or not self._allow(t):
            self._remember(t, keys)
            await self._replay(t)
            return
        tier = self.tiers[t]
        try:
            await tier.invalidate_many(keys)
        except Exception as exc:
            self._error(t, "invalidate", exc)
            self._remember(t, keys)
            log.warning("tier %s: invalidation failed, kept for replay: %r", tier.name, exc)
            return
        self._ok(t)

    # -- hook: change-data-capture (tierstore.cdc) ---------------------------------------------------------

    def undelivered(self) -> int:
        """How many invalidations are kept for replay because a tier could not take them — here, or inside a
        network tier that keeps a backlog per node (a whole-tier clear counts as one). The change-data-capture
        invalidator checkpoints only when this is 0."""
        own = sum(len(keys) for keys in self._pending.values())
        return own + sum(int(getattr(t, "undelivered", lambda: 0)()) for t in self.tiers)

    def _remember(self, t: int, keys: Sequence[str]) -> None:
        pending = self._pending.setdefault(t, set())
        pending.update(keys)
        if len(pending) > MAX_PENDING_INVALIDATIONS:
            # Too much to replay key by key: the tier will be cleared as a whole before it is trusted.
            pending.clear()
            pending.add("*")

    async def aclose(self) -> None:
        """Stop the L1 coherence listener. The tiers themselves are closed by their owner (the Database)."""
        self._closed = True
        if self.coherence is not None:
            await self.coherence.aclose()
