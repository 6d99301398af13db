"""Resharding: move the slots that change shard between two routers, resumably, and prove it worked.

Per entity (table), in phases recorded in a checkpoint file after every batch:

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

Enumerating a shard needs two store capabilities beyond the ``Store`` protocol, which every built-in store
has: ``async scan(schema, *, after: Key | None, limit: int) -> list[T]`` (items in key order, after
``after``) and ``async restore_many(schema, items) -> None`` (write items exactly as given, versions kept).
A store without them raises ``Unsupported`` (or, for entities with no version field, is copied with
``put_many``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from hashlib import blake2b
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from tierstore.concurrency import gather_all
from tierstore.errors import ConfigError, StoreError, TierstoreError, Unsupported
from tierstore.model.entity import Entity
from tierstore.model.schema import Key, Schema, schema_of
from tierstore.routing import ReshardPlan, Router, SlotMove
from tierstore.stores.base import Scannable, Store
from tierstore.tiers.base import CacheTier

__all__ = ["MoveCount", "ReshardError", "ReshardEvent", "ReshardReport", "TableReport", "main", "reshard"]

log = logging.getLogger("tierstore.reshard")
T = TypeVar("T")

CHECKPOINT_VERSION = 1
DEFAULT_BATCH = 500


class ReshardError(StoreError):
    """Resharding cannot go on (a check failed, or the checkpoint belongs to another plan)."""


@dataclass(slots=True)
class ReshardEvent:
    """One progress report: ``phase`` of ``table`` on ``shard``; ``done`` items so far in this phase."""

    table: str
    phase: str
    shard: str | None
    done: int
    message: str = ""

    def __str__(self) -> str:
        where = f" {self.shard}" if self.shard else ""
        return f"{self.table} {self.phase}{where}: {self.done}{' ' + self.message if self.message else ''}"


@dataclass(slots=True)
class MoveCount:
    move: str
    items: int


@dataclass(slots=True)
class TableReport:
    table: str
    before: int = 0
    after: int = 0
    copied: int = 0
    deleted: int = 0
    misplaced: int = 0  # items on a shard the new router does not name (a key on two shards is one)
    moves: list[MoveCount] = field(default_factory=list)
    invalidation_failures: int = 0

    @property
    def ok(self) -> bool:
        return self.before == self.after and not self.misplaced


@dataclass(slots=True)
class ReshardReport:
    plan: str
    dry_run: bool
    fraction: float
    tables: list[TableReport] = field(default_factory=list)
    paused: bool = False  # stopped after the copy, as asked

    @property
    def ok(self) -> bool:
        return self.dry_run or self.paused or all(t.ok for t in self.tables)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        for t, td in zip(self.tables, d["tables"], strict=True):
            td["ok"] = t.ok
        return d

    def __str__(self) -> str:
        lines = [self.plan]
        for t in self.tables:
            if self.dry_run:
                lines.append(f"{t.table}: {sum(m.items for m in t.moves)} item(s) would move")
                lines += [f"  {m.move}: {m.items} item(s)" for m in t.moves]
            else:
                state = "ok" if t.ok else "FAILED"
                lines.append(
                    f"{t.table}: {state} — before {t.before}, after {t.after}, copied {t.copied}, "
                    f"deleted {t.deleted}, misplaced {t.misplaced}"
                    + (f", {t.invalidation_failures} cache invalidation(s) failed" if t.invalidation_failures else "")
                )
        if self.dry_run:
            lines.append("dry run: nothing was written (pass --execute to move the data)")
        elif self.paused:
            lines.append("paused after the copy: switch services to the new router, then run again to clean up")
        return "\n".join(lines)


# -- store capabilities --------------------------------------------------------------------------------


_M64 = (1 << 64) - 1


def _key_digest(key: Key) -> int:
    return int.from_bytes(blake2b(msgspec.msgpack.encode(list(key)), digest_size=8).digest(), "big")


def _encode_key(key: Key) -> str:
    return base64.b64encode(msgspec.msgpack.encode(list(key))).decode()


def _decode_key(text: str) -> Key:
    return tuple(msgspec.msgpack.decode(base64.b64decode(text)))


async def scan_page(store: Store, schema: Schema[T], after: Key | None, limit: int) -> list[T]:
    """Up to ``limit`` items of ``schema``'s table on ``store``, in key order, after ``after``."""
    if isinstance(store, Scannable):
        return await store.scan(schema, after=after, limit=limit)
    raise Unsupported(
        f"resharding needs to enumerate {schema.table} on {store!r}; this store offers no scan()",
        entity=schema.name,
        backend=store.name,
    )


async def restore_many(store: Store, schema: Schema[T], items: Sequence[T]) -> None:
    """Write ``items`` exactly as given (version fields kept), replacing what is there."""
    if not items:
        return
    if isinstance(store, Scannable):
        await store.restore_many(schema, items)
        return
    if schema.version is None:
        await store.put_many(schema, items)  # nothing for put_many to change: an exact copy
        return
    raise Unsupported(
        f"{schema.name} has a version field and {store!r} offers no restore_many(): copying with put_many "
        f"would reset every version",
        entity=schema.name,
        backend=store.name,
    )


async def scan_all(store: Store, schema: Schema[T], batch: int, after: Key | None = None) -> AsyncIterator[list[T]]:
    while True:
        page = await scan_page(store, schema, after, batch)
        if not page:
            return
        yield page
        if len(page) < batch:
            return
        after = schema.key_of(page[-1])


# -- checkpoint ----------------------------------------------------------------------------------------


class Checkpoint:
    """A small JSON file, replaced atomically after every batch."""

    def __init__(self, path: Path | None, plan: ReshardPlan) -> None:
        self.path = path
        self.data: dict[str, Any] = {
            "version": CHECKPOINT_VERSION,
            "old": str(plan.old),
            "new": str(plan.new),
            "tables": {},
        }
        if path is not None and path.exists():
            try:
                loaded = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise ReshardError(f"checkpoint {path} is unreadable: {exc}") from None
            if (loaded.get("version"), loaded.get("old"), loaded.get("new")) != (
                CHECKPOINT_VERSION, self.data["old"], self.data["new"]
            ):
                raise ReshardError(
                    f"checkpoint {path} belongs to another plan ({loaded.get('old')} -> {loaded.get('new')}); "
                    f"finish that one or remove the file"
                )
            self.data = loaded

    def table(self, name: str) -> dict[str, Any]:
        tables: dict[str, dict[str, Any]] = self.data["tables"]
        return tables.setdefault(name, {"phase": "count"})

    def save(self) -> None:
        if self.path is None:
            return
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(self.data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


# -- the engine ----------------------------------------------------------------------------------------

PHASES = ("count", "copy", "check", "cleanup", "verify", "done")


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
            after = _decode_key(pos) if pos else None
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
                cursors[source] = _encode_key(schema.key_of(page[-1]))
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
            after = _decode_key(pos) if pos else None
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
                cursors[source] = _encode_key(after)
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


# -- command line ----------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tierstore reshard",
        description="Move the slots that change shard between two routers (dry run unless --execute).",
    )
    p.add_argument("--from", dest="old", required=True, help="current router: spec 'a=0-511,b=512-1023' or @file.json")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", dest="new", help="new router: spec or @file.json")
    target.add_argument("--to-shards", help="new shard names, comma-separated: as few slots as possible move")
    p.add_argument("--store", action="append", default=[], metavar="SHARD=URL", help="store of one shard (repeat)")
    p.add_argument("--entity", action="append", default=[], metavar="MODULE:CLASS", help="entity to move (repeat)")
    p.add_argument("--cache", action="append", default=[], metavar="URL", help="cache tier to invalidate (repeat)")
    p.add_argument("--checkpoint", help="checkpoint file (default: .tierstore-reshard.json)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    p.add_argument("--execute", action="store_true", help="write (default: dry run)")
    p.add_argument("--stop-after-copy", action="store_true", help="pause between copy and cleanup")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def _router_arg(text: str) -> Router:
    if text.startswith("@"):
        try:
            data = json.loads(Path(text[1:]).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read router file {text[1:]}: {exc}") from None
        return Router.from_config(data)
    return Router.parse(text)


def _entity_arg(text: str) -> type[Entity]:
    module_name, _, attr = text.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"--entity takes MODULE:CLASS, got {text!r}")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import entity {text}: {exc}") from None
    if not (isinstance(obj, type) and issubclass(obj, Entity)):
        raise ConfigError(f"{text} is not a tierstore Entity")
    return obj


async def _main(args: argparse.Namespace) -> int:
    from tierstore.config import redact_url, store_config, tier_config

    old = _router_arg(args.old)
    new = old.with_shards([s.strip() for s in args.to_shards.split(",")]) if args.to_shards else _router_arg(args.new)
    entities = [_entity_arg(e) for e in args.entity]
    if not entities:
        raise ConfigError("name at least one --entity MODULE:CLASS")
    urls: dict[str, str] = {}
    for spec in args.store:
        name, sep, url = spec.partition("=")
        if not sep or not name or not url:
            raise ConfigError(f"--store takes SHARD=URL, got {redact_url(spec)!r}")
        urls[name.strip()] = url.strip()
    stores: dict[str, Store] = {}
    tiers: list[CacheTier] = []
    out = sys.stdout
    try:
        for name, url in urls.items():
            store = store_config(url).build()
            stores[name] = store
            await store.open()
        for url in args.cache:
            tier = tier_config(url).build()
            tiers.append(tier)
            await tier.open()
        print(f"plan: {old} -> {new}", file=out)
        progress = None if args.quiet else (lambda e: print(f"  {e}", file=sys.stderr))
        report = await reshard(
            old, new, stores, entities, execute=args.execute,
            checkpoint=args.checkpoint or ".tierstore-reshard.json", batch_size=args.batch_size,
            tiers=tiers, progress=progress, stop_after_copy=args.stop_after_copy,
        )
        print(json.dumps(report.as_dict(), indent=1) if args.json else str(report), file=out)
        return 0 if report.ok else 1
    finally:
        closables: list[Any] = [*reversed(tiers), *reversed(list(stores.values()))]
        for closable in closables:
            try:
                await closable.aclose()
            except Exception as exc:
                log.warning("closing %r failed: %r", closable, exc)


def main(argv: list[str]) -> int:
    """``tierstore reshard …``: 0 done (or dry run), 1 verification failed, 2 bad arguments or config."""
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(_main(args))
    except ReshardError as exc:
        print(f"tierstore reshard: {exc}", file=sys.stderr)
        return 1
    except TierstoreError as exc:
        print(f"tierstore reshard: {exc}", file=sys.stderr)
        return 2
