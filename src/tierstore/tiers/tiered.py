"""The tiered read/write path, generic over tiers.

Reads go nearest-first; the first hit wins; misses go down as one batch per tier; values found farther down
are filled back up into every nearer tier that handed out a lease. Writes go to the store first; then
(cache-aside) every tier invalidates the keys, farthest first — so a reader filling a near tier from a far
one can never re-fill the old value after the write — or (write-through) every tier gets a versioned set.

Around every non-local tier:

* **Request coalescing** (:mod:`tierstore.tiers.coalesce`): the reads of one loop tick go out as one
  ``get_many``.
* **Lease waits.** A miss without a lease means another reader (maybe in another process) is filling the key:
  re-read a few times (``CachePolicy.lease_wait``/``lease_retries``) before reading the store unfilled.
* **Fail-open.** An error is a miss on read (a miss that is never filled), a dropped fill, or an invalidation
  kept and replayed before the tier is read again (past a bound, the tier is cleared instead): each tier has
  a :class:`~tierstore.tiers.health.NodeGuard`, with a circuit breaker for network tiers (which also keep a
  guard per node).
* **L1 coherence** (:mod:`tierstore.tiers.coherence`). When the nearest tier is in-process and a farther tier
  publishes invalidations (Redis), other processes' writes evict L1 entries; while that channel is down, L1
  is flushed and not filled.

Write epochs (:mod:`tierstore.tiers.epochs`): every write of this process (once its cache maintenance is done)
and every invalidation heard on the L1 channel bumps its keys and drops their single-flight reads from
``WriteEpochs.flights``, so a read invoked after it never joins a read that began before.

Cache maintenance after a write (:meth:`TieredCache.after_write`) is not cancellable: with a network tier it runs
in a task of its own that the writer awaits through :func:`asyncio.shield`, bounded by
:data:`MAINTENANCE_DEADLINE`; what a tier could not take by then is kept for replay, like any failed
invalidation. A write-through set is sent only within :data:`SET_WINDOW` of its write's start (later it becomes
an invalidation), and a tombstone outlives that window, so a set from a write that committed before a delete
can never land after the delete's tombstone is gone (see :mod:`tierstore.tiers.entry`, pinned entries).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from tierstore.codecs import ABSENT, Codec
from tierstore.logs import get_logger
from tierstore.stats import TierStats
from tierstore.tiers.base import Backlogged, CacheTier, InvalidationFeed, Lease, LocalTier
from tierstore.tiers.coalesce import Coalescer, SharedFailure
from tierstore.tiers.coherence import L1Coherence
from tierstore.tiers.epochs import WriteEpochs, WriteTicket
from tierstore.tiers.health import Breaker, NodeGuard
from tierstore.tiers.policy import CachePolicy

if TYPE_CHECKING:
    from tierstore.invalidation_log import InvalidationLog

__all__ = ["MAINTENANCE_DEADLINE", "SET_WINDOW", "TieredCache", "WriteEpochs", "WriteTicket", "load_one"]

log = get_logger("tierstore.cache")
_eager: Callable[..., Any] | None = getattr(asyncio, "eager_task_factory", None)  # Python 3.12+
T = TypeVar("T")
R = TypeVar("R")

MAX_PENDING_INVALIDATIONS = 10_000
MAINTENANCE_DEADLINE = 2.0
"""Seconds the cache maintenance after one write may take; what is left then is kept for replay."""
SET_WINDOW = 0.5
"""Seconds after a write began during which its write-through sets may still be sent (later: invalidations).
Shorter than every tier's tombstone lifetime (at least 1 s), which the stale-set argument relies on."""
_VOID = Lease(None)
_RELEASE = (b"", 0.0)  # fill entry with an empty value: release the lease, cache nothing
_NO_LEASES: dict[int, Lease] = {}  # shared, never written
_BYTES = {bytes}


def _track(stats: TierStats) -> Callable[[Breaker], None]:
    """Keep ``stats.tier_breaker`` equal to the tiered path's breaker state of that tier."""

    def on_change(b: Breaker) -> None:
        stats.tier_breaker = b.state

    return on_change


async def load_one(fetch: Callable[[Any], Awaitable[T | None]], key: Any, _: list[int]) -> list[T | None]:
    """:meth:`TieredCache.read_many`'s ``load`` for :meth:`TieredCache.read_one`, bound with ``partial``."""
    return [await fetch(key)]


class TieredCache:
    """Orchestrates the tiers of one database. Nearest tier first."""

    def __init__(self, tiers: Sequence[CacheTier], policy: CachePolicy | None = None) -> None:
        self.tiers = tuple(tiers)
        self.policy = policy or CachePolicy()
        first = self.tiers[0] if self.tiers else None
        self.l1: LocalTier | None = first if isinstance(first, LocalTier) else None
        p = self.policy
        self._getters: list[Callable[[Sequence[str]], Awaitable[list[bytes | Lease | None]]]] = []
        self._coalescers: list[Coalescer | None] = []
        self._guards: list[NodeGuard[Breaker | None]] = []
        for tier in self.tiers:
            breaker: Breaker | None = None
            if tier.local:
                self._getters.append(tier.get_many)
                self._coalescers.append(None)
            else:
                coalescer = Coalescer(tier) if p.coalesce else None
                self._coalescers.append(coalescer)
                self._getters.append(coalescer.get_many if coalescer is not None else tier.get_many)
                breaker = Breaker(failures=p.breaker_failures, cooldown=p.breaker_cooldown, name=tier.name,
                                  on_change=_track(tier.stats))
            self._guards.append(NodeGuard(tier.name, breaker, max_pending=MAX_PENDING_INVALIDATIONS))
        self.epochs = WriteEpochs()
        self.coherence: L1Coherence | None = None
        self.invalidation_log: InvalidationLog | None = None
        """Set by the owner (the Database) when ``policy.invalidation_log`` is on."""
        if self.l1 is not None:
            for tier in self.tiers[1:]:
                if isinstance(tier, InvalidationFeed) and tier.publishes_invalidations:
                    self.coherence = L1Coherence(self.l1, tier, on_invalidate=self.epochs.heard)
                    break
        self.suspends = any(not t.local for t in self.tiers)
        """Whether the maintenance after a write can suspend (a network tier): then it runs as its own task."""
        self._maintaining: set[asyncio.Task[Any]] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"TieredCache({', '.join(t.name for t in self.tiers)}, {self.policy})"

    @property
    def closed(self) -> bool:
        return self._closed

    def breaker_state(self, tier: CacheTier) -> str | None:
        """The state of ``tier``'s breaker on this path (``None`` for in-process tiers, which have none)."""
        for t, guard in zip(self.tiers, self._guards, strict=True):
            if t is tier:
                return None if guard.breaker is None else guard.breaker.state
        return None

    async def _l1_ready(self) -> bool:
        """May L1 be filled now? Only while the invalidation channel (if any) is connected."""
        coherence = self.coherence
        if coherence is None:
            return True
        if not coherence.started and not self._closed:
            await coherence.start()
        return coherence.connected

    # -- reads -------------------------------------------------------------------------------------

    async def read_one(
        self, codec: Codec[T], ck: str, fetch: Callable[[Any], Awaitable[T | None]], key: Any, *,
        expires_of: Callable[[T], float | None] | None = None, start: int = 0, policy: CachePolicy | None = None,
    ) -> T | None:
        """:meth:`read_many` of one key (``fetch(key)`` reads the store) on a shorter path: a hit in tier
        ``start`` returns at once; anything else (a miss, a lease, a key being filled) goes on through
        :meth:`read_many` with that tier's answer. It is :meth:`_tier_get` inlined for a tier that owes nothing
        and whose breaker is closed (one frame less per read; the same fail-open handling)."""
        got: list[bytes | Lease | None] | None = None
        if start < len(self.tiers):
            guard = self._guards[start]
            breaker = guard.breaker
            if guard.owes or (breaker is not None and breaker.state != "closed"):
                got = await self._tier_get(start, (ck,))
            else:
                coalescer = self._coalescers[start]
                try:
                    if coalescer is not None and coalescer.batch is not None:
                        fut: asyncio.Future[list[bytes | Lease | None]] = (
                            asyncio.get_running_loop().create_future()
                        )
                        coalescer.batch.append(((ck,), fut))
                        got = await fut
                    else:
                        got = await self._getters[start]((ck,))
                except Exception as exc:
                    self._error(start, "get", exc)
                    got = [_VOID]
                else:
                    if breaker is not None and (breaker.failing or breaker.state != "closed"):
                        breaker.success()  # else it would change nothing
            g = got[0]
            if g.__class__ is bytes:
                value = codec.decode(g, ck)
                if value is not None:
                    return None if value is ABSENT else value  # type: ignore[return-value]
        # The general path itself, not an override of it (a subclass's read_many would count the key twice).
        (result,) = await TieredCache.read_many(
            self, codec, (ck,), partial(load_one, fetch, key), expires_of=expires_of, start=start, policy=policy,
            first=got,
        )
        return result

    async def read_many(
        self, codec: Codec[T], cks: Sequence[str], load: Callable[[list[int]], Awaitable[list[T | None]]], *,
        expires_of: Callable[[T], float | None] | None = None, start: int = 0, policy: CachePolicy | None = None,
        first: list[bytes | Lease | None] | None = None,
    ) -> list[T | None]:
        """Resolve distinct cache keys ``cks``; ``load(indexes)`` reads the store for what every tier missed.
        ``start`` skips the nearest tiers (the caller already looked there). ``policy``: the entity's own (TTLs,
        negative caching, lease waits) instead of the database's. ``first``: tier ``start``'s answer, if read."""
        if policy is None:
            policy = self.policy
        n = len(cks)
        results: list[Any] = [None] * n
        pending = list(range(n))
        leases: list[dict[int, Lease]] = []  # per tier visited: the leases it handed out
        decode = codec.decode
        missed = pending
        for t in range(start, len(self.tiers)):
            if first is not None:
                got, first = first, None
            else:
                got = await self._tier_get(t, [cks[i] for i in pending] if len(pending) < n else cks)
            values: list[Any] | None = None
            if set(map(type, got)) == _BYTES:  # every key answered bytes (a batch of hits): one decode loop
                values, items = codec.decode_all(got, cks if len(pending) == n else [cks[i] for i in pending])  # type: ignore[arg-type]
                if items:
                    if len(pending) == n:
                        results = values
                    else:
                        for i, value in zip(pending, values, strict=True):
                            results[i] = value
                    missed = []
                    leases.append(_NO_LEASES)
                    break
            missed = []
            got_leases: dict[int, Lease] | None = None
            waiting: list[int] | None = None
            bad: list[str] | None = None
            for i, g, done in zip(pending, got, got if values is None else values, strict=True):
                if g.__class__ is bytes:
                    value = decode(g, cks[i]) if values is None else done  # decoded above, if it was
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
                missed += await self._wait_for_fill(t, codec, cks, waiting, results, got_leases, policy)
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
                await self._back_fill(codec, cks, results, leases, start, expires_of, policy)
                break
        if ABSENT in results:
            return [None if r is ABSENT else r for r in results]
        return results

    async def _wait_for_fill(
        self, t: int, codec: Codec[Any], cks: Sequence[str], waiting: list[int],
        results: list[Any], got_leases: dict[int, Lease], policy: CachePolicy,
    ) -> list[int]:
        """Another reader holds these keys' leases: re-read a few times before going to the store.

        Returns the indexes still missing (with a lease of their own now, or none).
        """
        tier = self.tiers[t]
        missed: list[int] = []
        for _ in range(policy.lease_retries):
            tier.stats.lease_waits += 1
            await asyncio.sleep(policy.lease_wait)
            got = await self._tier_get(t, [cks[i] for i in waiting])
            still: list[int] = []
            for i, g in zip(waiting, got, strict=True):
                if isinstance(g, bytes):
                    value = codec.decode(g, cks[i])
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
            tier.stats.lease_wait_timeouts += len(waiting)
        return missed + waiting

    async def _back_fill(
        self, codec: Codec[Any], cks: Sequence[str], results: list[Any], leases: list[dict[int, Lease]],
        start: int, expires_of: Callable[[Any], float | None] | None, policy: CachePolicy,
    ) -> None:
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
                        enc = _RELEASE if policy.negative_ttl is None else (codec.absent(cks[i]), policy.negative_ttl)
                    else:
                        item_ttl = policy.ttl
                        if expires_of is not None:
                            at = expires_of(value)
                            if at is not None:
                                item_ttl = min(item_ttl, at - time.time())
                        enc = (codec.encode(value, cks[i]), item_ttl) if item_ttl > 0 else _RELEASE
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

    def ticket(self, cks: Sequence[str]) -> WriteTicket:
        """Take before a write's store call; hand to :meth:`after_write`."""
        return WriteTicket(cks, self.epochs)

    def spawn(self, work: Coroutine[Any, Any, R]) -> asyncio.Task[R]:
        """Run a write and/or its cache maintenance as a task of its own (kept until done; :meth:`aclose` waits
        for it), so that cancelling the writer cannot cut it short. Await it through :func:`asyncio.shield`."""
        loop = asyncio.get_running_loop()
        if _eager is not None:
            # Python 3.12+: the task runs at once, up to its first suspension (an in-memory write never
            # suspends and costs no loop turn); it is the current task meanwhile, so its timeouts are its own.
            task: asyncio.Task[R] = _eager(loop, work, name="tierstore-write")
        else:
            task = loop.create_task(work, name="tierstore-write")
        self._maintaining.add(task)
        task.add_done_callback(self._maintained)
        return task

    async def shielded(self, work: Coroutine[Any, Any, R]) -> R:
        """``work`` as a task of its own (:meth:`spawn`), awaited; cancelling the caller leaves it running."""
        task = self.spawn(work)
        if task.done():
            return task.result()
        return await asyncio.shield(task)

    def _maintained(self, task: asyncio.Task[Any]) -> None:
        self._maintaining.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Retrieved here: a writer that was cancelled meanwhile is no longer there to see it.
            log.debug("write or cache maintenance ended with %r", task.exception())

    async def after_write(
        self, cks: Sequence[str], values: Sequence[bytes | None] = (), version: Sequence[int] = (),
        *, ticket: WriteTicket | None = None, record: bool = True, policy: CachePolicy | None = None,
    ) -> None:
        """Make every tier forget (or, write-through, replace) ``cks`` after a committed write.

        ``values`` are the new envelopes (``None`` for deletes); used only in write-through mode. An entry
        with version 0 (an entity without a version field) is invalidated rather than set: without versions,
        a slow writer's older value could overwrite a newer one. ``ticket`` (from :meth:`ticket`, taken before
        the store call) orders this write against the others of this process. Bounded by
        :data:`MAINTENANCE_DEADLINE`; the epochs of ``cks`` are bumped when it ends, however it ends. With an
        invalidation log (``CachePolicy.invalidation_log``), a write that leaves invalidations owed is recorded
        there for the other processes (``record=False``: this is the replay of such a record). ``policy``: the
        entity's own (write mode, TTL) instead of the database's.
        """
        if ticket is None:
            ticket = WriteTicket(cks, self.epochs)
        done: list[int] = []
        try:
            if self.suspends:
                async with asyncio.timeout(MAINTENANCE_DEADLINE):
                    await self._maintain(cks, values, version, ticket, done, policy or self.policy)
            else:
                await self._maintain(cks, values, version, ticket, done, policy or self.policy)
        except TimeoutError:
            # Fail-open: the write stands; what a tier did not take in time is owed to it.
            log.warning("cache maintenance after a write took over %.1fs; the rest is kept for replay",
                        MAINTENANCE_DEADLINE)
            await self._owe(cks, done)
        except BaseException:
            await self._owe(cks, done)
            raise
        finally:
            self.epochs.bump(cks)
        if record and self.invalidation_log is not None and self.undelivered():
            await self.invalidation_log.record(cks)

    async def _owe(self, cks: Sequence[str], done: list[int]) -> None:
        """The tiers not in ``done`` did not get ``cks``: forget them in-process, keep them owed elsewhere."""
        for t in range(len(self.tiers)):
            if t not in done:
                if self.tiers[t].local:
                    await self.tiers[t].invalidate_many(cks)  # no I/O: cannot be cut short
                else:
                    self._guards[t].remember(cks)

    async def _maintain(
        self, cks: Sequence[str], values: Sequence[bytes | None], version: Sequence[int], ticket: WriteTicket,
        done: list[int], policy: CachePolicy,
    ) -> None:
        if self.coherence is not None and not self.coherence.started:
            await self._l1_ready()
        if policy.write_mode == "write_through" and values:
            sets: list[tuple[str, bytes, int]] = []
            gone: list[str] = []
            for k, v, ver in zip(cks, values, version or [0] * len(cks), strict=True):
                if v is None or ver <= 0:
                    gone.append(k)
                else:
                    sets.append((k, v, ver))
            ttl = policy.jittered(policy.ttl)
            epochs = self.epochs
            began = dict(zip(ticket.cks, ticket.epochs, strict=True))
            for t in reversed(range(len(self.tiers))):
                if gone:
                    await self._tier_invalidate(t, gone)
                if sets:
                    tier = self.tiers[t]
                    if tier.local:
                        # Another write or invalidation of the key since this write began (in this process, or
                        # heard on the channel): the order of the two is unknown, so forget the key instead.
                        late = [k for k, _, _ in sets if epochs.of(k) != began.get(k)]
                        ok = [e for e in sets if epochs.of(e[0]) == began.get(e[0])] if late else sets
                        if late:
                            await self._tier_invalidate(t, late)
                        if ok and tier is self.l1 and not await self._l1_ready():
                            await self._tier_invalidate(t, [k for k, _, _ in ok])
                        elif ok:
                            await self._tier_set(t, ok, ttl)
                    elif time.monotonic() - ticket.started > SET_WINDOW:
                        await self._tier_invalidate(t, [k for k, _, _ in sets])  # too late to be ordered
                    else:
                        await self._tier_set(t, sets, ttl)
                done.append(t)
            return
        for t in reversed(range(len(self.tiers))):
            await self._tier_invalidate(t, cks)
            done.append(t)

    # -- fail-open wrappers --------------------------------------------------------------------------

    def _allow(self, t: int) -> bool:
        breaker = self._guards[t].breaker
        return breaker is None or breaker.allow()

    def _ok(self, t: int) -> None:
        breaker = self._guards[t].breaker
        if breaker is not None:
            breaker.success()

    def _error(self, t: int, what: str, exc: BaseException) -> None:
        tier = self.tiers[t]
        if isinstance(exc, SharedFailure):
            return  # counted once, by the caller that led the coalesced read
        tier.stats.errors += 1
        breaker = self._guards[t].breaker
        if breaker is not None:
            breaker.failure()
        # Throttled (tierstore.logs): a dead tier writes this once, then a summary a minute, not a line per call.
        log.warning("tier %s: %s failed; failing open (a miss, a dropped fill, or an invalidation kept for "
                    "replay): %r", tier.name, what, exc)

    async def _replay(self, t: int) -> bool:
        """Deliver what tier ``t`` owes; ``True`` when it can be trusted again."""
        guard = self._guards[t]
        if not guard.owes:
            return True
        if not self._allow(t):
            return False
        tier = self.tiers[t]
        try:
            keys, cleared = await guard.replay(tier.clear, tier.invalidate_many)
        except Exception as exc:  # the tier is still down: keep the backlog
            self._error(t, "replay", exc)
            return False
        tier.stats.invalidations_replayed += keys
        if cleared:
            tier.stats.namespace_clears += 1
        return True

    async def _tier_get(self, t: int, keys: Sequence[str]) -> list[bytes | Lease | None]:
        guard = self._guards[t]
        if guard.owes and not await self._replay(t):
            return [_VOID] * len(keys)
        breaker = guard.breaker
        if breaker is not None and breaker.state != "closed" and not breaker.allow():
            return [_VOID] * len(keys)
        try:
            coalescer = self._coalescers[t]
            if coalescer is not None and coalescer.batch is not None:
                # A batch is being collected this tick: join it (the coalescer's fast path, one frame less).
                fut: asyncio.Future[list[bytes | Lease | None]] = asyncio.get_running_loop().create_future()
                coalescer.batch.append((keys, fut))
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
        if not live or self._guards[t].owes or not self._allow(t):
            return
        try:
            await self.tiers[t].fill_many(live, ttl)
        except Exception as exc:
            self._error(t, "fill", exc)
            return
        self._ok(t)

    async def _tier_set(self, t: int, entries: list[tuple[str, bytes, int]], ttl: float) -> None:
        guard = self._guards[t]
        if guard.owes or not self._allow(t):
            guard.remember([e[0] for e in entries])
            await self._replay(t)
            return
        try:
            await self.tiers[t].set_many(entries, ttl)
        except Exception as exc:
            self._error(t, "set", exc)
            guard.remember([e[0] for e in entries])
            return
        self._ok(t)

    async def _tier_invalidate(self, t: int, keys: Sequence[str]) -> None:
        guard = self._guards[t]
        if guard.owes or not self._allow(t):
            guard.remember(keys)
            await self._replay(t)
            return
        tier = self.tiers[t]
        try:
            await tier.invalidate_many(keys)
        except Exception as exc:
            self._error(t, "invalidate", exc)
            guard.remember(keys)
            return
        self._ok(t)

    def undelivered(self) -> int:
        """Invalidations kept for replay because a tier could not take them — here, or inside a tier that keeps
        a backlog of its own (:class:`~tierstore.tiers.base.Backlogged`); a whole-namespace clear counts as one."""
        own = sum(g.owed for g in self._guards)
        return own + sum(t.undelivered() for t in self.tiers if isinstance(t, Backlogged))

    async def aclose(self) -> None:
        """Let running cache maintenance finish, stop the L1 coherence listener. The tiers themselves are
        closed by their owner (the Database)."""
        self._closed = True
        if self._maintaining:
            await asyncio.wait(list(self._maintaining), timeout=MAINTENANCE_DEADLINE)
        if self.coherence is not None:
            await self.coherence.aclose()
