"""The invalidator loop: read the change log, invalidate the changed keys, checkpoint, repeat.

One :class:`Invalidator` ties a :class:`ChangeSource` (a table's DynamoDB stream, a PostgreSQL logical slot,
a MySQL/MariaDB binlog) to a :class:`~tierstore.Database` whose tiers and query cache it keeps coherent. Run
it in-process (``async with Invalidator(db, source, entities): ...``, keeping even that process's in-process
tier coherent) or as a sidecar (``tierstore invalidator``, whose Database holds the shared tiers: other
processes' in-process tiers follow through the Redis invalidation channel).

Ordering, per batch of changes read from the log:

1. every changed key goes through :func:`tierstore.cdc.invalidate_keys` — the path of tierstore's own writes
   (leases voided, tombstones, channel, query-cache generations);
2. if a tier could not take some of them (down, breaker open), they are re-delivered with capped backoff and
   **nothing is checkpointed** until every tier took them;
3. then the batch's position is saved (:mod:`tierstore.cdc.checkpoint`) and acknowledged to the source
   (a PostgreSQL slot advances only now).

A crash (even ``kill -9``) anywhere in 1-3 leaves the checkpoint at or before the batch, so a restart
delivers it again: at-least-once, which is safe because invalidation is idempotent. When the log cannot be
resumed where it stopped (binlog purged, stream records trimmed after 24 h, a TRUNCATE that names no keys),
the source reports a *gap*; with ``on_gap="clear"`` (the default) every tier is cleared, with ``"ttl"``
the caches are left to expire by TTL, and the gap is counted either way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from tierstore.cdc.apply import invalidate_keys, undelivered
from tierstore.cdc.checkpoint import Checkpoint, MemoryCheckpoint
from tierstore.cdc.keys import EntityMap
from tierstore.cdc.metrics import InvalidatorStats
from tierstore.errors import ConfigError
from tierstore.model.entity import Entity
from tierstore.model.schema import Key, Schema

if TYPE_CHECKING:
    from tierstore.db import Database
    from tierstore.tiers.base import CacheTier

__all__ = ["Change", "ChangeBatch", "ChangeSource", "Invalidator"]

log = logging.getLogger("tierstore.cdc")


@dataclass(frozen=True, slots=True)
class Change:
    """One committed change of one item: its key(s) (two when an update moved the key) and commit time."""

    schema: Schema[Any]
    keys: tuple[Key, ...]
    committed_at: float | None = None  # Unix seconds, from the change log


@dataclass(slots=True)
class ChangeBatch:
    """What one read of the log returned."""

    changes: list[Change] = field(default_factory=list)
    position: Any = None  # JSON value to checkpoint once ``changes`` are delivered; None: nothing new
    gap: str | None = None  # why the log could not be resumed exactly (invalidations may have been missed)
    ignored: int = 0  # changes of other tables, or keys tierstore cannot hold


@runtime_checkable
class ChangeSource(Protocol):
    """A change log. Implementations: DynamoDB Streams, PostgreSQL logical decoding (and LISTEN/NOTIFY),
    MySQL/MariaDB binlog."""

    @property
    def identity(self) -> str:
        """Names the log (server, slot, tables) without secrets; saved with every checkpoint."""
        ...

    async def start(self, entities: EntityMap, position: Any | None) -> Any | None:
        """Connect and position after ``position`` (``None``: first start, at the log's end). Returns a
        position to checkpoint at once on a first start (so a crash before the first change loses nothing),
        or ``None``."""
        ...

    async def read(self, wait: float) -> ChangeBatch:
        """The next changes, waiting at most about ``wait`` seconds (an empty batch then)."""
        ...

    async def acknowledge(self, position: Any) -> None:
        """Everything up to ``position`` is delivered and checkpointed (a slot may advance now)."""
        ...

    async def backlog(self) -> dict[str, Any]:
        """How far behind the log's end the checkpoint is, in the source's own units."""
        ...

    async def aclose(self) -> None: ...


class Invalidator:
    """Keeps ``db``'s caches coherent with writes made outside tierstore, from ``source``'s change log.

    ``entities``: the entity classes whose tables to follow. ``checkpoint``: where positions are saved
    (default: in memory — fine when the source keeps its own position, as a PostgreSQL slot does; use a
    :class:`~tierstore.cdc.FileCheckpoint` for DynamoDB Streams and binlogs). ``on_gap``: ``"clear"`` or
    ``"ttl"`` (see the module docstring). ``read_timeout``: longest wait of one read of the log.
    ``stall_after``: seconds without a completed read after which :meth:`health` says ``down``.
    ``on_applied``: called with each delivered batch's changes (metrics, tests).
    """

    def __init__(
        self,
        db: Database,
        source: ChangeSource,
        entities: Iterable[type[Entity]],
        *,
        checkpoint: Checkpoint | None = None,
        on_gap: Literal["clear", "ttl"] = "clear",
        read_timeout: float = 1.0,
        retry_base: float = 0.05,
        retry_cap: float = 2.0,
        stall_after: float = 30.0,
        backlog_every: float = 5.0,
        on_applied: Callable[[Sequence[Change]], None] | None = None,
    ) -> None:
        if on_gap not in ("clear", "ttl"):
            raise ConfigError(f"on_gap must be 'clear' or 'ttl', got {on_gap!r}")
        if read_timeout <= 0 or retry_base <= 0 or retry_cap < retry_base or stall_after <= 0:
            raise ConfigError("Invalidator needs read_timeout > 0, 0 < retry_base <= retry_cap, stall_after > 0")
        self.db = db
        self.source = source
        self.entities = EntityMap(entities, table_prefix=getattr(source, "table_prefix", ""))
        self.checkpoint: Checkpoint = checkpoint if checkpoint is not None else MemoryCheckpoint()
        self.on_gap = on_gap
        self.read_timeout = read_timeout
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.stall_after = stall_after
        self.backlog_every = backlog_every
        self.on_applied = on_applied
        self.stats = InvalidatorStats()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._progress = asyncio.Event()
        self._ready = asyncio.Event()
        self._backlog_at = 0.0

    def __repr__(self) -> str:
        return f"Invalidator({self.source.identity}, {self.entities!r})"

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> Invalidator:
        """Start the loop as a task of the running event loop; returns once the source is positioned (or the
        first attempt failed: the loop keeps retrying, and :meth:`health` says why)."""
        if self._task is None:
            await self.db.open()
            self.stats.started_at = time.time()
            self._task = asyncio.get_running_loop().create_task(self.run(), name="tierstore-invalidator")
            waiter = asyncio.ensure_future(self._ready.wait())
            done, _ = await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
            if waiter not in done:
                waiter.cancel()
            if self._task in done:
                self._task.result()  # the loop ended at once: raise why
        return self

    async def __aenter__(self) -> Invalidator:
        return await self.start()

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the loop (what was delivered stays checkpointed) and close the source. Idempotent."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception as exc:
                log.debug("invalidator stopped with %r", exc)
        try:
            await self.source.aclose()
        except Exception as exc:
            log.warning("closing the change source failed: %r", exc)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # -- the loop ----------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Follow the log until cancelled; reconnect with capped backoff after any error."""
        delay = self.retry_base
        first = True
        while not self._closed:
            try:
                await self._attach()
                self._ready.set()
                while not self._closed:
                    batch = await self.source.read(self.read_timeout)
                    await self._handle(batch)
                    delay = self.retry_base
            except asyncio.CancelledError:
                raise
            except ConfigError as exc:
                if first:  # misconfiguration found on the first attempt: stop and say so
                    self._error(exc)
                    raise
                self._error(exc)
            except Exception as exc:
                self._error(exc)
            first = False
            self._ready.set()  # start() waits for the first attempt, not for success
            try:
                await self.source.aclose()
            except Exception as exc:
                log.debug("closing the change source after an error failed: %r", exc)
            if self._closed:
                break
            self.stats.restarts += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_cap)

    async def _attach(self) -> None:
        position = await self.checkpoint.load(self.source.identity)
        start = await self.source.start(self.entities, position)
        if position is None and start is not None:
            await self.checkpoint.save(self.source.identity, start)
            self.stats.checkpoints += 1
            self.stats.position = start
        elif position is not None:
            self.stats.position = position

    def _error(self, exc: BaseException) -> None:
        text = f"{type(exc).__name__}: {exc}"
        repeated = text == self.stats.last_error
        self.stats.errors += 1
        self.stats.last_error = text
        self.stats.last_error_at = time.time()
        (log.debug if repeated else log.warning)("invalidator (%s): %s", self.source.identity, text)
        self._notify()

    async def _handle(self, batch: ChangeBatch) -> None:
        stats = self.stats
        stats.last_read_at = time.time()
        stats.ignored += batch.ignored
        if batch.gap is not None:
            await self._gap(batch.gap)
        if batch.changes:
            await self._deliver(batch.changes)
        if batch.position is not None:
            await self.checkpoint.save(self.source.identity, batch.position)
            await self.source.acknowledge(batch.position)
            stats.checkpoints += 1
            stats.position = batch.position
        stats.batches += 1
        now = time.monotonic()
        if now - self._backlog_at >= self.backlog_every:
            self._backlog_at = now
            try:
                stats.backlog = await self.source.backlog()
            except Exception as exc:  # a metric: never stop the loop for it
                log.debug("backlog query failed: %r", exc)
        self._notify()

    def _notify(self) -> None:
        """Wake :meth:`wait_until` callers: the stats changed."""
        self._progress.set()
        self._progress = asyncio.Event()

    async def _deliver(self, changes: Sequence[Change]) -> None:
        grouped: dict[Schema[Any], dict[Key, None]] = {}
        for change in changes:
            keys = grouped.setdefault(change.schema, {})
            for key in change.keys:
                keys[key] = None
        delay = self.retry_base
        while True:
            for schema, keys in grouped.items():
                await invalidate_keys(self.db, schema, list(keys))
            waiting = await undelivered(self.db)
            self.stats.undelivered = waiting
            if waiting == 0:
                break
            # A tier could not take them: keep re-delivering; checkpointing now could lose them on a crash.
            self.stats.delivery_retries += 1
            self._notify()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_cap)
        self.stats.changes += len(changes)
        self.stats.keys_invalidated += sum(len(k) for k in grouped.values())
        self.stats.record_lags([c.committed_at for c in changes if c.committed_at is not None], time.time())
        if self.on_applied is not None:
            self.on_applied(changes)

    async def _gap(self, reason: str) -> None:
        self.stats.gaps += 1
        self.stats.last_gap = reason
        if self.on_gap == "ttl":
            log.warning("invalidator (%s): %s; caches fall back to their TTLs", self.source.identity, reason)
            return
        log.warning("invalidator (%s): %s; clearing every cache tier", self.source.identity, reason)
        tiers: list[CacheTier] = list(reversed(self.db.cache.tiers))
        qc_tiers = getattr(self.db.query_cache, "tiers", ())
        tiers += [t for t in reversed(qc_tiers) if all(t is not x for x in tiers)]
        delay = self.retry_base
        for tier in tiers:
            while True:
                try:
                    await tier.clear()
                    break
                except Exception as exc:
                    self._error(exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.retry_cap)
        self.stats.clears += 1

    # -- observation -------------------------------------------------------------------------------------------

    async def wait_until(self, predicate: Callable[[InvalidatorStats], bool], within: float) -> None:
        """Wait (at most ``within`` seconds, else ``TimeoutError``) until ``predicate(stats)`` holds after a
        batch was handled."""
        async with asyncio.timeout(within):
            while not predicate(self.stats):
                if self._task is not None and self._task.done():
                    self._task.result()
                    raise RuntimeError("the invalidator stopped")
                await self._progress.wait()

    def health(self) -> dict[str, Any]:
        """``{"status": "ok" | "degraded" | "down", "reasons": [...], **stats}``."""
        stats = self.stats
        now = time.time()
        reasons: list[str] = []
        status = "ok"
        if not self.running:
            status = "down"
            reasons.append("not running")
        else:
            since = stats.last_read_at if stats.last_read_at is not None else stats.started_at
            if since is not None and now - since > self.stall_after:
                status = "down"
                reasons.append(f"no read of the change log for {now - since:.1f}s")
        if status == "ok":
            if stats.undelivered:
                status = "degraded"
                reasons.append(f"{stats.undelivered} invalidation(s) waiting for a tier")
            if stats.last_error_at is not None and now - stats.last_error_at < self.stall_after:
                status = "degraded"
                reasons.append(f"recent error: {stats.last_error}")
        return {"status": status, "reasons": reasons, "source": self.source.identity, **stats.as_dict()}
