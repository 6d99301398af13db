"""``MemoryStore``: a complete in-process store of record (the unit-test fake and a real backend).

Written against :mod:`tierstore.backends` only, so it doubles as the smallest complete example of a store.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from tierstore.backends import (
    Changes,
    Check,
    Delete,
    Key,
    Page,
    Put,
    Query,
    Schema,
    StoreStats,
    Update,
    WriteOp,
    apply_changes,
    decode_cursor,
    encode_cursor,
    evaluate,
    parse_duration,
    query_params,
    schema_of,
    sort_matches,
)
from tierstore.errors import ConditionFailed, Mismatch, NotFound, TransactionCanceled, ValidationError

__all__ = ["MemoryStore", "MemoryStoreConfig"]

T = TypeVar("T")
_NIL = b"\xc0"  # msgpack nil


class _Table(dict[Key, bytes]):
    """Encoded items by key, plus the keys of each partition (so a query reads one partition only) and, once
    a partition was queried, its keys in key order (kept until a key joins or leaves the partition) and, once a
    query read it from the start, its encoded items in that order (an overwrite replaces its entry in place)."""

    def __init__(self, n_partition: int) -> None:
        super().__init__()
        self.n = n_partition
        self.partitions: dict[Key, set[Key]] = {}
        self._ordered: dict[Key, list[Key]] = {}
        self._raws: dict[Key, list[bytes]] = {}

    def __setitem__(self, key: Key, raw: bytes) -> None:
        super().__setitem__(key, raw)
        p = key[: self.n]
        part = self.partitions.get(p)
        if part is None:
            part = self.partitions[p] = set()
        if key not in part:
            part.add(key)
            self._ordered.pop(p, None)
            self._raws.pop(p, None)
            return
        raws = self._raws.get(p)
        if raws is not None:  # held only beside the partition's ordered keys
            raws[bisect_left(self._ordered[p], key)] = raw

    def pop(self, key: Key, default: Any = None) -> Any:
        raw = super().pop(key, default)
        p = key[: self.n]
        part = self.partitions.get(p)
        if part is not None and key in part:
            part.discard(key)
            self._ordered.pop(p, None)
            self._raws.pop(p, None)
            if not part:
                del self.partitions[p]
        return raw

    def clear(self) -> None:
        super().clear()
        self.partitions.clear()
        self._ordered.clear()
        self._raws.clear()

    def ordered(self, partition: Key) -> list[Key]:
        """The keys of ``partition`` in key order (= sort-key order). The caller must not change the list."""
        keys = self._ordered.get(partition)
        if keys is None:
            part = self.partitions.get(partition)
            if part is None:
                return []  # nothing kept for a partition that holds no item
            keys = self._ordered[partition] = sorted(part)
        return keys

    def ordered_raws(self, partition: Key) -> list[bytes]:
        """The encoded items of ``partition`` in key order (beside :meth:`ordered`; the caller must not change
        the list)."""
        raws = self._raws.get(partition)
        if raws is None:
            if partition not in self.partitions:
                return []
            get = super().__getitem__
            raws = self._raws[partition] = [get(k) for k in self.ordered(partition)]
        return raws


class MemoryStore:
    """Items are kept encoded, so callers never share objects with the store."""

    name = "memory"
    expressions = True  # honours Query.where, when= on put/delete, and update()
    embedded = True

    def __init__(self, *, latency: float = 0.0) -> None:
        self.stats = StoreStats()
        self._tables: dict[str, _Table] = {}
        self._closed = False
        self._maybe_decoders: dict[Schema[Any], Callable[[bytes], Any]] = {}
        self.latency = latency  # optional simulated round-trip time, for demos and benchmarks

    def __repr__(self) -> str:
        return f"MemoryStore(tables={sorted(self._tables)})"

    @property
    def suspends(self) -> bool:
        """Whether a call can suspend: with a simulated ``latency``, or in a subclass (which may override a call
        with one that awaits). When neither the store nor any tier can, a write and its cache maintenance run
        inline, with nothing a cancellation could cut in between."""
        return bool(self.latency) or type(self) is not MemoryStore

    async def _trip(self) -> None:
        self.stats.round_trips += 1
        if self.latency:
            import asyncio

            await asyncio.sleep(self.latency)

    def _table(self, schema: Schema[Any]) -> _Table:
        # Entities sharing a table by templates or a type attribute each have their own (cache_table names
        # the type): an item is only ever read as the entity that wrote it, as on DynamoDB.
        table = self._tables.get(schema.cache_table)
        if table is None:
            table = self._tables[schema.cache_table] = _Table(len(schema.partition))
        return table

    async def open(self) -> None:
        pass

    async def ensure_schema(self, schema: Schema[Any]) -> None:
        self._table(schema)

    async def verify_schema(self, schema: Schema[Any]) -> list[Mismatch]:
        """Nothing to check: a memory table fits any entity."""
        return []

    async def truncate(self, schema: Schema[Any]) -> None:
        self._table(schema).clear()

    async def get(self, schema: Schema[T], key: Key, *, consistent: bool = False) -> T | None:
        await self._trip()
        self.stats.reads += 1
        raw = self._table(schema).get(key)
        return None if raw is None else schema.unpack(raw)

    async def get_many(
        self, schema: Schema[T], keys: Sequence[Key], *, consistent: bool = False
    ) -> list[T | None]:
        await self._trip()
        self.stats.reads += len(keys)
        get = self._table(schema).get
        decode = self._maybe_decoders.get(schema)
        if decode is None:
            decode = self._maybe_decoders[schema] = msgspec.msgpack.Decoder(schema.cls | None).decode
        # An absent key reads as msgpack nil, which the entity-or-None decoder turns into None: one pass.
        raws = [get(k, _NIL) for k in keys]
        try:
            return list(map(decode, raws))
        except msgspec.ValidationError:  # an item in the wide form (integers beyond 64 bits)
            unpack = schema.unpack
            return [None if raw is _NIL else unpack(raw) for raw in raws]

    def _check(self, schema: Schema[Any], key: Key, if_not_exists: bool, expect_version: int | None) -> int:
        """Check a write's condition; return the stored version (0 if absent)."""
        raw = self._table(schema).get(key)
        current = 0
        if raw is not None and schema.version:
            current = getattr(schema.unpack(raw), schema.version)
        if if_not_exists and raw is not None:
            raise ConditionFailed("item exists", entity=schema.name, key=key, backend=self.name)
        if expect_version is not None:
            if not schema.version:
                raise ValidationError(f"{schema.name} has no version field", entity=schema.name)
            if current != expect_version:  # an absent item counts as version 0
                raise ConditionFailed(
                    f"expected version {expect_version}, found {current if raw is not None else 'no item'}",
                    entity=schema.name, key=key, backend=self.name,
                )
        return current

    def _write(self, schema: Schema[T], item: T, current: int) -> T:
        if schema.version:
            item = msgspec.structs.replace(item, **{schema.version: current + 1})  # type: ignore[type-var]
        self._table(schema)[schema.key_of(item)] = schema.pack(item)
        self.stats.writes += 1
        return item

    def _when(self, schema: Schema[Any], key: Key, when: Any) -> None:
        """Raise ``ConditionFailed`` (with the stored item) unless ``when`` holds for what ``key`` holds now."""
        raw = self._table(schema).get(key)
        current = None if raw is None else schema.decoder.decode(raw)
        if not evaluate(when, current):
            raise ConditionFailed(
                f"condition {when!r} did not hold{' (no item)' if current is None else ''}",
                entity=schema.name, key=key, backend=self.name, current=current,
            )

    async def put(
        self, schema: Schema[T], item: T, *, if_not_exists: bool = False, expect_version: int | None = None,
        when: Any = None,
    ) -> T:
        await self._trip()
        key = schema.key_of(item)
        current = self._check(schema, key, if_not_exists, expect_version)
        if when is not None:
            self._when(schema, key, when)
        return self._write(schema, item, current)

    async def update(self, schema: Schema[T], key: Key, changes: Changes, *, when: Any = None) -> T:
        """Apply ``changes`` to the stored item (``NotFound`` if there is none), under ``when``; the version
        advances by one. Returns the item as stored."""
        await self._trip()
        raw = self._table(schema).get(key)
        if raw is None:
            raise NotFound("update of an item that does not exist", entity=schema.name, key=key, backend=self.name)
        if when is not None:
            self._when(schema, key, when)
        current: T = schema.decoder.decode(raw)
        try:
            item = schema.validate_item(apply_changes(schema, current, changes))
        except ValidationError as exc:
            raise ValidationError(f"update: {exc.message}", entity=schema.name, key=key) from None
        return self._write(schema, item, schema.version_of(current))

    async def put_many(self, schema: Schema[T], items: Sequence[T]) -> list[T]:
        await self._trip()
        return [self._write(schema, it, self._check(schema, schema.key_of(it), False, None)) for it in items]

    async def delete(
        self, schema: Schema[Any], key: Key, *, expect_version: int | None = None, when: Any = None
    ) -> bool:
        await self._trip()
        self._check(schema, key, False, expect_version)
        if when is not None:
            self._when(schema, key, when)
        self.stats.writes += 1
        return self._table(schema).pop(key, None) is not None

    async def delete_many(self, schema: Schema[Any], keys: Sequence[Key]) -> None:
        await self._trip()
        table = self._table(schema)
        for k in keys:
            table.pop(k, None)
        self.stats.writes += len(keys)

    async def scan(self, schema: Schema[T], *, after: Key | None = None, limit: int = 1000) -> list[T]:
        """Up to ``limit`` items in key order, after ``after`` (resharding, exports)."""
        await self._trip()
        table = self._table(schema)
        keys = sorted(k for k in table if after is None or k > after)[:limit]
        return [schema.unpack(table[k]) for k in keys]

    async def restore_many(self, schema: Schema[T], items: Sequence[T]) -> None:
        """Write items exactly as given, versions kept (resharding, backups)."""
        await self._trip()
        table = self._table(schema)
        for item in items:
            table[schema.key_of(item)] = schema.pack(item)
        self.stats.writes += len(items)

    async def query(self, schema: Schema[T], query: Query) -> Page[T]:
        await self._trip()
        self.stats.queries += 1
        if query.index is None:
            pfields, sfields = schema.partition, schema.sort
        else:
            ix = schema.indexes[query.index]
            pfields, sfields = ix.partition_fields, ix.sort_fields
        decode = schema.unpack
        table = self._table(schema)
        after = None if query.cursor is None else tuple(decode_cursor(query, query.cursor))
        limit = query.limit
        if query.index is None:
            # Table order is key order: filter on keys (kept sorted per partition), decode only the page.
            n = len(pfields)
            keys = table.ordered(query.partition)
            if query.reverse:
                keys = keys[::-1]
            cond = query.sort
            if cond is not None:
                keys = [k for k in keys if sort_matches(cond, k[n])]
            if after is not None:
                keys = [k for k in keys if ((k[n:] + k) < after if query.reverse else (k[n:] + k) > after)]
            if query.where is not None:
                rows_w: list[tuple[Key, T]] = []
                for k in keys:
                    item = decode(table[k])
                    if evaluate(query.where, item):
                        rows_w.append((k, item))
                        if limit is not None and len(rows_w) > limit:
                            break
                if limit is not None and len(rows_w) > limit:
                    last = rows_w[limit - 1][0]
                    return Page([r[1] for r in rows_w[:limit]], encode_cursor(query, last[n:] + last))
                return Page([r[1] for r in rows_w], None)
            more = limit is not None and len(keys) > limit
            page_keys = keys[:limit] if limit is not None else keys
            if cond is None and after is None and not query.reverse:  # the partition from its start
                raws = table.ordered_raws(query.partition)
                items = _decode_all(schema, raws[:limit] if more else raws)
            else:
                items = _decode_all(schema, [table[k] for k in page_keys])
            if not more:
                return Page(items, None)
            end = page_keys[-1]
            return Page(items, encode_cursor(query, end[n:] + end))
        rows: list[tuple[tuple[Any, ...], T]] = []
        for key, raw in table.items():
            item = decode(raw)
            if tuple(getattr(item, f) for f in pfields) != query.partition:
                continue
            sort_vals = tuple(getattr(item, f) for f in sfields)
            if None in sort_vals:  # a sparse index: an item without the value is not in it
                continue
            if query.sort is not None and not sort_matches(query.sort, sort_vals[0]):
                continue
            if query.where is not None and not evaluate(query.where, item):
                continue
            rows.append((sort_vals + key, item))
        rows.sort(key=lambda r: r[0], reverse=query.reverse)
        if after is not None:
            rows = [r for r in rows if (r[0] < after if query.reverse else r[0] > after)]
        if limit is not None and len(rows) > limit:
            page = rows[:limit]
            return Page([r[1] for r in page], encode_cursor(query, page[-1][0]))
        return Page([r[1] for r in rows], None)

    async def query_many(
        self, schema: Schema[T], partitions: Sequence[tuple[Any, ...]], *, index: str | None = None,
        limit: int | None = None, reverse: bool = False, concurrency: int = 16,
    ) -> list[list[T]]:
        """The items of many partitions in one round trip (see ``QueryMany``): a lookup per partition of the
        table, or one pass over the table for an index."""
        await self._trip()
        self.stats.queries += 1
        table = self._table(schema)
        if not partitions:
            return []
        if index is None:
            raws: list[bytes] = []
            ends: list[int] = []
            ordered, ordered_raws = table.ordered, table.ordered_raws
            for p in partitions:
                if reverse:
                    keys = ordered(p)[::-1]
                    raws += map(table.__getitem__, keys if limit is None else keys[:limit])
                else:
                    raws += ordered_raws(p) if limit is None else ordered_raws(p)[:limit]
                ends.append(len(raws))
            items = _decode_all(schema, raws)
            starts = [0, *ends[:-1]]
            return [items[a:b] for a, b in zip(starts, ends, strict=True)]
        ix = schema.indexes[index]
        pget, sget = _getter(ix.partition_fields), _getter(ix.sort_fields)
        groups: dict[tuple[Any, ...], list[tuple[tuple[Any, ...], T]]] = {p: [] for p in partitions}
        for key, item in zip(table.keys(), _decode_all(schema, list(table.values())), strict=True):
            group = groups.get(pget(item))
            if group is not None:
                sort_vals = sget(item)
                if None not in sort_vals:  # a sparse index: an item without the value is not in it
                    group.append((sort_vals + key, item))
        lists = []
        for p in partitions:
            rows = sorted(groups[p], key=lambda r: r[0], reverse=reverse)
            lists.append([r[1] for r in (rows if limit is None else rows[:limit])])
        return lists

    async def transact(self, ops: Sequence[WriteOp]) -> list[Any]:
        await self._trip()
        reasons: list[str | None] = []
        plan: list[tuple[WriteOp, Schema[Any], Any]] = []
        for op in ops:
            try:
                plan.append(self._prepare(op))
                reasons.append(None)
            except (ConditionFailed, NotFound) as exc:
                reasons.append(exc.message)
        if any(reasons):
            raise TransactionCanceled("transaction canceled", reasons=reasons, backend=self.name)
        out: list[Any] = []
        for op, schema, ready in plan:
            if isinstance(op, Put):
                out.append(self._write(schema, op.item, ready))
            elif isinstance(op, Delete):
                self._table(schema).pop(op.key, None)
                self.stats.writes += 1
                out.append(None)
            elif isinstance(op, Update):
                item, current = ready
                self._write(schema, item, current)
                out.append(None)
            else:
                out.append(None)  # a check writes nothing
        return out

    def _prepare(self, op: WriteOp) -> tuple[WriteOp, Schema[Any], Any]:
        """Check one action of a transaction against what is stored; what applying it needs."""
        if isinstance(op, Put):
            schema = schema_of(type(op.item))
            return op, schema, self._check(schema, schema.key_of(op.item), op.if_not_exists, op.expect_version)
        schema = schema_of(op.entity)
        if isinstance(op, Delete):
            return op, schema, self._check(schema, op.key, False, op.expect_version)
        if isinstance(op, Check):
            self._when(schema, op.key, op.when)
            return op, schema, None
        if not isinstance(op, Update):
            raise ValidationError(f"transact takes Put, Delete, Update and Check, got {type(op).__name__}")
        raw = self._table(schema).get(op.key)
        if raw is None:
            raise NotFound("update of an item that does not exist", entity=schema.name, key=op.key, backend=self.name)
        if op.when is not None:
            self._when(schema, op.key, op.when)
        current = schema.decoder.decode(raw)
        try:
            item = schema.validate_item(apply_changes(schema, current, op.changes))
        except ValidationError as exc:
            raise ValidationError(f"update: {exc.message}", entity=schema.name, key=op.key) from None
        return op, schema, (item, schema.version_of(current))

    async def aclose(self) -> None:
        self._closed = True


def _getter(fields: tuple[str, ...]) -> Any:
    """``item -> tuple of the fields' values``."""
    return lambda item: tuple(getattr(item, f) for f in fields)


def _decode_all(schema: Schema[T], raws: list[bytes]) -> list[T]:
    try:
        return list(map(schema.decoder.decode, raws))
    except msgspec.ValidationError:  # an item in the wide form (integers beyond 64 bits)
        return [schema.unpack(raw) for raw in raws]


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryStoreConfig:
    """``memory://`` (``?latency=1ms`` simulates a round trip)."""

    latency: float = 0.0

    @classmethod
    def from_url(cls, url: str) -> MemoryStoreConfig:
        p = query_params(url, {"latency"})
        return cls(latency=parse_duration(p["latency"], "latency") if "latency" in p else 0.0)

    def build(self) -> MemoryStore:
        return MemoryStore(latency=self.latency)
