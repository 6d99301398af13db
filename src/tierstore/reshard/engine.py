"""The resharding engine: move the slots that change shard between two routers, resumably, and prove it
worked.

Per entity (table), in phases recorded in the checkpoint after every batch:

1. **count** — the items on their old shard (``before``), recorded once, so a resumed run compares against
   the same number.
2. **copy** — each source shard is scanned in key order; items whose slot moves are written to their new
   shard in batches, exactly as stored (version fields kept). The scan position is checkpointed after every
   batch; copying is idempotent, so a resumed run repeats at most one batch.
3. **check** — per move, the source's items in the moving slots and the target's are counted: they must
   match before anything is deleted.
4. **cleanup** — the moved items are deleted from their source shard, and their cache keys invalidated in
   every given tier (entries filled while the move was under way, including "not found" ones, must go).
5. **verify** — every shard of the new layout is scanned: each item must be on the shard the new router
   names (so no key is on two shards), and their count must equal ``before``.

Every pass holds one batch in memory, whatever the table size.

Dry run by default: the plan and, per move, how many items it carries; nothing is written. The engine is an
offline tool: writes to the moving slots must be paused while it runs (or ``stop_after_copy=True`` pauses
it between copy and cleanup, for switching services to the new router).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from hashlib import blake2b
from pathlib import Path
from typing import Any

import msgspec

from tierstore.concurrency import gather_all
from tierstore.errors import ConfigError
from tierstore.model.entity import Entity
from tierstore.model.schema import Key, Schema, schema_of
from tierstore.reshard.checkpoint import Checkpoint, decode_key, encode_key
from tierstore.reshard.report import MoveCount, ReshardError, ReshardEvent, ReshardReport, TableReport
from tierstore.reshard.scan import restore_many, scan_all, scan_page
from tierstore.routing import ReshardPlan, Router, SlotMove
from tierstore.stores.base import Store
from tierstore.tiers.base import CacheTier

__all__ = ["DEFAULT_BATCH", "reshard"]

log = logging.getLogger("tierstore.reshard")

DEFAULT_BATCH = 500
_M64 = (1 << 64) - 1


def _key_digest(key: Key) -> int:
    return int.from_bytes(blake2b(msgspec.msgpack.encode(list(key)), digest_size=8).digest(), "big")


async def reshard(
    old: Router | str,
    new: Router | str,
    stores: Mapping[str, Store],
    entities: Sequence[type[Entity]],
    *,
    execute: bool = False,
    checkpoint: str | os.PathLike[str] | None = None,
    batch_size: int = DEFAULT_BATCH,
    tiers: Sequence[CacheTier] = (),
    progress: Callable[[ReshardEvent], None] | None = None,
    stop_after_copy: bool = False,
) -> ReshardReport:
    """Move the slots that change shard from ``old`` to ``new`` for every entity in ``entities``.

    ``stores`` maps every shard name of both routers to an open store. Without ``execute`` this is a dry
    run. With it, ``checkpoint`` (a file path) makes the run resumable: run again with the same arguments
    after an interruption. ``tiers`` are the cache tiers (farthest last) to invalidate for moved items.
    """
    old_r, new_r = Router.from_config(old), Router.from_config(new)
    plan = old_r.plan(new_r)
    missing = [s for s in (*old_r.shards, *new_r.shards) if s not in stores]
    if missing:
        raise ConfigError(f"reshard: no store for shard(s) {sorted(set(missing))}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an int >= 1, got {batch_size!r}")
    schemas = [schema_of(e) for e in entities]
    if len({s.table for s in schemas}) != len(schemas):
        raise ConfigError("reshard: an entity is listed twice")
    report = ReshardReport(str(plan), dry_run=not execute, fraction=plan.fraction)
    emit = progress or (lambda event: log.info("%s", event))
    if not execute:
        for schema in schemas:
            report.tables.append(await _dry_run(plan, stores, schema, batch_size, emit))
        return report
    for store in {id(s): s for s in stores.values()}.values():
        for schema in schemas:
            await store.ensure_schema(schema)  # the new shards may not have the tables yet
    cp = Checkpoint(Path(checkpoint) if checkpoint is not None else None, plan)
    engine = _Engine(plan, stores, batch_size, tiers, emit, cp)
    for schema in schemas:
        table_report, paused = await engine.run(schema, stop_after_copy)
        report.tables.append(table_report)
        report.paused = report.paused or paused
    return report


async def _dry_run(
    plan: ReshardPlan, stores: Mapping[str, Store], schema: Schema[Any], batch: int,
    emit: Callable[[ReshardEvent], None],
) -> TableReport:
    counts = dict.fromkeys(plan.moves, 0)
    router = plan.old
    for source in plan.sources:
        seen = 0
        async for page in scan_all(stores[source], schema, batch):
            for item in page:
                m = plan.move_of(router.slot_for(schema, schema.key_of(item)))
                if m is not None and m.source == source:
                    counts[m] += 1
            seen += len(page)
            emit(ReshardEvent(schema.table, "scan", source, seen))
    return TableReport(schema.table, moves=[MoveCount(str(m), n) for m, n in counts.items()])


class _Engine:
    def __init__(
        self, plan: ReshardPlan, stores: Mapping[str, Store], batch: int, tiers: Sequence[CacheTier],
        emit: Callable[[ReshardEvent], None], cp: Checkpoint,
    ) -> None:
        self.plan = plan
        self.stores = stores
        self.batch = batch
        self.tiers = tuple(tiers)
        self.emit = emit
        self.cp = cp
        self.layout = tuple(dict.fromkeys((*plan.old.shards, *plan.new.shards)))

    def _moving(self, schema: Schema[Any], item: Any, source: str) -> SlotMove | None:
        m = self.plan.move_of(self.plan.old.slot_for(schema, schema.key_of(item)))
        return m if m is not None and m.source == source else None

    async def run(self, schema: Schema[Any], stop_after_copy: bool) -> tuple[TableReport, bool]:
        state = self.cp.table(schema.table)
        rep = TableReport(schema.table, copied=state.get("copied", 0), deleted=state.get("deleted", 0))
        if state["phase"] == "count":
            state["before"] = await self._count_placed(schema, self.plan.old)
            state.update(phase="copy", cursor={}, copied=0)
            self.cp.save()
        rep.before = state["before"]
        if state["phase"] == "copy":
            await self._copy(schema, state, rep)
            state.update(phase="check", cursor={})
            self.cp.save()
        if state["phase"] == "check":
            rep.moves = await self._check(schema)
            state.update(phase="cleanup", cursor={}, deleted=0)
            self.cp.save()
            if stop_after_copy:
                return rep, True
        if state["phase"] == "cleanup":
            await self._cleanup(schema, state, rep)
            state.update(phase="verify", cursor={})
            self.cp.save()
        if state["phase"] in ("verify", "done"):
            await self._verify(schema, rep)
            if not rep.ok:
                raise ReshardError(
                    f"{schema.table}: verification failed: before {rep.before}, after {rep.after}, "
                    f"misplaced {rep.misplaced}",
                    entity=schema.name,
                )
            state["phase"] = "done"
            self.cp.save()
        return rep, False

    async def _count_placed(self, schema: Schema[Any], router: Router) -> int:
        """Items found on the shard ``router`` names for them (a key can be placed correctly only once)."""
        placed = 0
        for shard in router.shards:
            async for page in scan_all(self.stores[shard], schema, self.batch):
                placed += sum(1 for i in page if router.shard_for(schema, schema.key_of(i)) == shard)
                self.emit(ReshardEvent(schema.table, "count", shard, placed))
        return placed

    async def _copy(self, schema: Schema[Any], state: dict[str, Any], rep: TableReport) -> None:
        cursors: dict[str, str | None] = state.setdefault("cursor", {})
        for source in self.plan.sources:
            if cursors.get(source) == "done":
                continue
            pos = cursors.get(source)
            after = decode_key(pos) if pos else None
            async for page in scan_all(self.stores[source], schema, self.batch, after):
                by_target: dict[str, list[Any]] = {}
                for item in page:
                    m = self._moving(schema, item, source)
                    if m is not None:
                        by_target.setdefault(m.target, []).append(item)
                if by_target:
                    await gather_all([restore_many(self.stores[t], schema, v) for t, v in by_target.items()])
                moved = sum(len(v) for v in by_target.values())
                state["copied"] = state.get("copied", 0) + moved
                rep.copied = state["copied"]
                cursors[source] = encode_key(schema.key_of(page[-1]))
                self.cp.save()
                self.emit(ReshardEvent(schema.table, "copy", source, rep.copied))
            cursors[source] = "done"
            self.cp.save()

    async def _check(self, schema: Schema[Any]) -> list[MoveCount]:
        """Per move: the source's and the target's items in the moving slots must be the same keys — compared
        by count and by an order-independent checksum of the keys, in constant memory."""
        src = {m: [0, 0] for m in self.plan.moves}  # [count, checksum]
        dst = {m: [0, 0] for m in self.plan.moves}
        old = self.plan.old
        for shard in self.layout:
            async for page in scan_all(self.stores[shard], schema, self.batch):
                for item in page:
                    key = schema.key_of(item)
                    m = self.plan.move_of(old.slot_for(schema, key))
                    if m is None or shard not in (m.source, m.target):
                        continue
                    acc = src[m] if m.source == shard else dst[m]
                    acc[0] += 1
                    acc[1] = (acc[1] + _key_digest(key)) & _M64
        for m in self.plan.moves:
            if src[m] != dst[m]:
                raise ReshardError(
                    f"{schema.table}: {m}: {src[m][0]} item(s) on {m.source}, {dst[m][0]} on {m.target}, and "
                    f"not the same keys; run again to resume the copy (a target that held items of these "
                    f"slots before the copy must be cleaned first)",
                    entity=schema.name,
                )
        self.emit(ReshardEvent(schema.table, "check", None, sum(c for c, _ in src.values()), "copies match"))
        return [MoveCount(str(m), src[m][0]) for m in self.plan.moves]

    async def _cleanup(self, schema: Schema[Any], state: dict[str, Any], rep: TableReport) -> None:
        cursors: dict[str, str | None] = state.setdefault("cursor", {})
        for source in self.plan.sources:
            if cursors.get(source) == "done":
                continue
            pos = cursors.get(source)
            after = decode_key(pos) if pos else None
            store = self.stores[source]
            while True:
                page = await scan_page(store, schema, after, self.batch)
                if not page:
                    break
                doomed = [schema.key_of(i) for i in page if self._moving(schema, i, source) is not None]
                if doomed:
                    await store.delete_many(schema, doomed)
                    rep.invalidation_failures += await self._invalidate(schema, doomed)
                state["deleted"] = state.get("deleted", 0) + len(doomed)
                rep.deleted = state["deleted"]
                # Deleted keys are gone from the scan: resume after the last key of the page either way.
                after = schema.key_of(page[-1])
                cursors[source] = encode_key(after)
                self.cp.save()
                self.emit(ReshardEvent(schema.table, "cleanup", source, rep.deleted))
                if len(page) < self.batch:
                    break
            cursors[source] = "done"
            self.cp.save()

    async def _invalidate(self, schema: Schema[Any], keys: list[Key]) -> int:
        cks = [schema.cache_key(k) for k in keys]
        failures = 0
        for tier in reversed(self.tiers):  # farthest first, as every write does
            try:
                await tier.invalidate_many(cks)
            except Exception as exc:
                failures += len(cks)
                log.warning("reshard: invalidating %d key(s) in %s failed: %r", len(cks), tier.name, exc)
        return failures

    async def _verify(self, schema: Schema[Any], rep: TableReport) -> None:
        new = self.plan.new
        placed = misplaced = 0
        for shard in self.layout:
            async for page in scan_all(self.stores[shard], schema, self.batch):
                for item in page:
                    if new.shard_for(schema, schema.key_of(item)) == shard:
                        placed += 1
                    else:
                        misplaced += 1
        rep.after = placed
        rep.misplaced = misplaced
        self.emit(ReshardEvent(schema.table, "verify", None, rep.after, "ok" if rep.ok else "FAILED"))
