"""Undelivered invalidations that outlive their writer: a log in the store of record.

When a write's invalidation cannot reach a shared tier (a stopped, restarting or overloaded node, an open
breaker), the writing process keeps it for replay — but only that process knows, and only while it runs.
Other processes keep reading the old shared entry until the writer reaches the node again; if the writer
goes idle or exits, until the entry's TTL. With ``CachePolicy(invalidation_log=0.5)`` the writer also
appends the keys to a small table in the store of record (``tierstore_invalidation_log``, one item per
write made while any tier owed invalidations) before the write returns, and every process with a network
tier polls that table every ``invalidation_log`` seconds and invalidates what it finds in its own tiers
(through the path of a write: leases voided, tombstones, the L1 channel). What a process cannot deliver
either is kept in its own backlog, as usual. So an acknowledged write's invalidation reaches every tier
within one poll of the first process able to reach the node, whoever wrote it.

The table is created in schema-create mode (``schema="create"``) and otherwise must exist (its definition
is :class:`InvalidationRecord`; ``db.create_tables(InvalidationRecord)`` creates it once). Records carry a
TTL attribute (``expires_at``, a DynamoDB TTL) and are pruned after ``RETENTION`` by the processes that
poll. A process reads records from
``LOOKBACK`` seconds before its start (and before each poll, for commits that land late or clocks that
differ a little between hosts); a record is applied once per process.

Hand-written rather than a library because it is a few store calls over tierstore's own ``Store``
protocol, so one implementation serves every store (SQL, DynamoDB, memory).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tierstore.logs import get_logger
from tierstore.model import TTL, Entity, PartitionKey, SortKey
from tierstore.model.schema import schema_of
from tierstore.query import Query, gt, lt

if TYPE_CHECKING:
    from tierstore.stores.base import Store
    from tierstore.tiers.tiered import TieredCache

__all__ = ["InvalidationLog", "InvalidationRecord"]

log = get_logger("tierstore.cache.invalidation_log")

RETENTION = 600.0
LOOKBACK = 5.0
STREAM = "cache"


class InvalidationRecord(Entity, table="tierstore_invalidation_log"):
    """Cache keys one write could not invalidate everywhere. ``at``: wall-clock nanoseconds (zero-padded),
    the writer's origin and a sequence number — ordered by time, unique."""

    stream: PartitionKey[str]
    at: SortKey[str]
    keys: list[str]
    expires_at: TTL = 0


_SCHEMA = schema_of(InvalidationRecord)


def _stamp(ns: int) -> str:
    return f"{ns:020d}"


class InvalidationLog:
    """The log of one database's tiered cache: :meth:`record` after a write that left invalidations owed,
    and a poller that applies other processes' records. Start with :meth:`start`, stop with :meth:`aclose`."""

    def __init__(self, store: Store, cache: TieredCache, *, poll: float, create: bool = True) -> None:
        self.store = store
        self.cache = cache
        self.poll = poll
        self.create = create
        self.origin = os.urandom(6).hex()
        self.recorded = 0
        """Records this process appended."""
        self.applied = 0
        """Records of other processes this process applied to its tiers."""
        self._seq = itertools.count()
        self._seen: dict[str, int] = {}  # record id -> its time, for records inside the lookback window
        self._task: asyncio.Task[None] | None = None
        self._cursor = 0
        self._next_prune = 0.0

    def __repr__(self) -> str:
        return f"InvalidationLog(poll={self.poll}s, recorded={self.recorded}, applied={self.applied})"

    async def start(self) -> None:
        if self._task is not None:
            return
        if self.create:
            await self.store.ensure_schema(_SCHEMA)
        self._cursor = time.time_ns() - int(LOOKBACK * 1e9)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tierstore-invalidation-log")

    async def record(self, cks: Sequence[str]) -> None:
        """Append ``cks`` (a write that left invalidations owed). Fail-open: a failure is logged."""
        ns = time.time_ns()
        item = InvalidationRecord(
            stream=STREAM, at=f"{_stamp(ns)}-{self.origin}-{next(self._seq)}", keys=list(cks),
            expires_at=int(time.time() + RETENTION),
        )
        self._seen[item.at] = ns  # this process delivers its own backlog
        try:
            await self.store.put(_SCHEMA, item)
        except Exception as exc:
            log.warning("invalidation log: could not record %d key(s): %r", len(cks), exc)
            return
        self.recorded += 1

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            try:
                await self.apply()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("invalidation log: poll failed: %r", exc)

    async def apply(self) -> int:
        """Read records newer than the cursor (less the lookback) and invalidate their keys; returns how many
        records were applied."""
        now = time.time_ns()
        since = min(self._cursor, now - int(LOOKBACK * 1e9))
        query = Query((STREAM,), gt(_stamp(since)), consistent=True)
        keys: dict[str, None] = {}
        fresh = 0
        cursor: str | None = None
        while True:
            page = await self.store.query(_SCHEMA, Query(query.partition, query.sort, cursor=cursor,
                                                         consistent=True) if cursor else query)
            for rec in page.items:
                if rec.at in self._seen:
                    continue
                self._seen[rec.at] = int(rec.at[:20])
                keys.update(dict.fromkeys(rec.keys))
                fresh += 1
            cursor = page.cursor
            if cursor is None:
                break
        if keys:
            await self.cache.after_write(list(keys), record=False)
            self.applied += fresh
        self._cursor = now
        horizon = now - int(LOOKBACK * 1e9)
        self._seen = {k: t for k, t in self._seen.items() if t >= horizon}
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + 60.0
            await self._prune(now)
        return fresh

    async def _prune(self, now: int) -> None:
        old = await self.store.query(
            _SCHEMA, Query((STREAM,), lt(_stamp(now - int(RETENTION * 1e9))), limit=500, consistent=True)
        )
        if old.items:
            await self.store.delete_many(_SCHEMA, [_SCHEMA.key_of(r) for r in old.items])

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception as exc:
                log.debug("invalidation log: stopped with %r", exc)
