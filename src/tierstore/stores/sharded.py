"""``ShardedStore``: a Store that routes every item by its partition key to one of several child stores.

Single-key operations go to one shard. ``get_many``/``put_many``/``delete_many`` and ``query_many`` (the
partitions of a one-to-many join) group keys by shard and run the groups concurrently; results come back in
request order. ``query`` needs the partition (of the table, or of an index partitioned like the table) and
goes to one shard; a query on any other index spans every
shard and is therefore only available as the explicit :meth:`ShardedStore.scatter_gather`. ``transact``
works when every action lands on one shard, and raises ``Unsupported`` otherwise.

``stats`` counts requests this store sent to its shards (one round trip per shard touched); each shard's own
counters are in :meth:`ShardedStore.shard_stats`.

It is built from the backend author's surface only (:mod:`tierstore.backends`, the errors, the router and
the URL registry), like any third-party store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tierstore.backends import (
    BackendConfig,
    Key,
    Page,
    Put,
    Query,
    QueryMany,
    Schema,
    Store,
    StoreStats,
    WriteOp,
    gather_all,
    query_all,
    query_each,
    redact_url,
    schema_of,
)
from tierstore.config import store_config
from tierstore.errors import ConfigError, Mismatch, PartialBatchError, TierstoreError, Unsupported
from tierstore.routing import Router
from tierstore.stores.base import SchemaVerifier

__all__ = ["ShardedStore", "ShardedStoreConfig"]

log = logging.getLogger("tierstore.sharded")
T = TypeVar("T")


class ShardedStats(StoreStats):
    """The sharded store's own counters; ``reset()`` also resets every shard's."""

    __slots__ = ("_shards",)

    def __init__(self, shards: Sequence[Store]) -> None:
        super().__init__()
        self._shards = tuple(shards)

    def reset(self) -> None:
        StoreStats.reset(self)
        for s in self._shards:
            s.stats.reset()


class ShardedStore:
    """Routes by partition key to ``stores[router.shard_for(...)]``. Closes its shards on ``aclose()``
    unless ``owns_shards=False``."""

    def __init__(
        self,
        router: Router,
        stores: Mapping[str, Store],
        *,
        owns_shards: bool = True,
    ) -> None:
        if not isinstance(router, Router):
            raise ConfigError(f"ShardedStore needs a Router, got {type(router).__name__}")
        missing = [s for s in router.shards if s not in stores]
        extra = [s for s in stores if s not in router.shards]
        if missing or extra:
            raise ConfigError(
                f"ShardedStore: the router's shards {list(router.shards)} and the stores {list(stores)} differ"
                + (f"; no store for {missing}" if missing else "")
                + (f"; no slots for {extra}" if extra else "")
            )
        for shard, store in stores.items():
            if not isinstance(store, Store):
                raise ConfigError(f"ShardedStore: {shard} is not a Store: {store!r}")
        self.router = router
        self.shards: dict[str, Store] = {s: stores[s] for s in router.shards}
        self._stores: tuple[Store, ...] = tuple(self.shards.values())
        kinds = {s.name for s in self._stores}
        self.name = f"sharded-{kinds.pop()}" if len(kinds) == 1 else "sharded"
        self.stats: StoreStats = ShardedStats(self._stores)
        self.owns_shards = owns_shards
        self._closed = False
        # Conditions are evaluated by the shard that holds the item: possible when every shard can.
        self.expressions = all(getattr(st, "expressions", False) for st in self._stores)

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}: {store!r}" for name, store in self.shards.items())
        return f"ShardedStore({self.router!r}, {{{inner}}})"

    def shard_stats(self) -> dict[str, dict[str, Any]]:
        """Each shard's own counters, by shard name."""
        return {name: store.stats.as_dict() for name, store in self.shards.items()}

    def store_for(self, schema: Schema[Any], key: Key) -> Store:
        """The shard that holds the item with flat key ``key``."""
        return self._stores[self.router.shard_index_for(schema, key)]

    def _group(self, schema: Schema[Any], keys: Sequence[Key]) -> dict[int, list[int]]:
        index_for = self.router.shard_index_for
        groups: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(index_for(schema, key), []).append(i)
        return groups

    # -- lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> None:
        await gather_all([s.open() for s in self._stores])

    async def ensure_schema(self, schema: Schema[Any]) -> None:
        await gather_all([s.ensure_schema(schema) for s in self._stores])

    @property
    def embedded(self) -> bool:
        """Embedded unless a shard is a server store that verifies its tables."""
        return not any(isinstance(s, SchemaVerifier) and not s.embedded for s in self._stores)

    async def verify_schema(self, schema: Schema[Any]) -> list[Mismatch]:
        """The mismatches of every shard, each named by its shard."""
        names = list(self.shards)
        for name, store in self.shards.items():
            if not isinstance(store, SchemaVerifier):
                raise ConfigError(f"shard {name} ({store.name}) cannot verify tables", entity=schema.name)
        found = await gather_all([s.verify_schema(schema) for s in self._stores])  # type: ignore[attr-defined]
        return [
            Mismatch(m.entity, m.table, f"shard {names[i]}: {m.problem}", m.fix)
            for i, ms in enumerate(found) for m in ms
        ]

    async def truncate(self, schema: Schema[Any]) -> None:
        await gather_all([s.truncate(schema) for s in self._stores])

    async def aclose(self) -> None:
        """Close the shards (if owned), last first. Idempotent; never raises."""
        if self._closed:
            return
        self._closed = True
        if not self.owns_shards:
            return
        for name, store in reversed(self.shards.items()):
            try:
                await store.aclose()
            except Exception as exc:
                log.warning("closing shard %s failed: %r", name, exc)

    # -- reads -------------------------------------------------------------------------------------

    async def get(self, schema: Schema[T], key: Key, *, consistent: bool = False) -> T | None:
        store = self._stores[self.router.shard_index_for(schema, key)]
        self.stats.round_trips += 1
        self.stats.reads += 1
        try:
            return await store.get(schema, key, consistent=consistent)
        except TierstoreError:
            self.stats.errors += 1
            raise

    async def get_many(
        self, schema: Schema[T], keys: Sequence[Key], *, consistent: bool = False
    ) -> list[T | None]:
        if not keys:
            return []
        groups = self._group(schema, keys)
        self.stats.round_trips += len(groups)
        self.stats.reads += len(keys)
        try:
            if len(groups) == 1:
                (shard,) = groups
                return await self._stores[shard].get_many(schema, keys, consistent=consistent)
            found = await gather_all([
                self._stores[shard].get_many(schema, [keys[i] for i in idx], consistent=consistent)
                for shard, idx in groups.items()
            ])
        except TierstoreError:
            self.stats.errors += 1
            raise
        out: list[T | None] = [None] * len(keys)
        for idx, values in zip(groups.values(), found, strict=True):
            for i, value in zip(idx, values, strict=True):
                out[i] = value
        return out

    async def query(self, schema: Schema[T], query: Query) -> Page[T]:
        if query.index is not None and schema.indexes[query.index].partition_fields != schema.partition:
            raise Unsupported(
                f"index {query.index!r} of {schema.name} is not partitioned like the table, so its "
                f"partitions span every shard; use repository.scatter_gather(...) to read all shards",
                entity=schema.name,
                backend=self.name,
            )
        store = self._stores[self.router.shard_index_for(schema, query.partition)]
        self.stats.round_trips += 1
        self.stats.queries += 1
        try:
            return await store.query(schema, query)
        except TierstoreError:
            self.stats.errors += 1
            raise

    async def query_many(
        self, schema: Schema[T], partitions: Sequence[tuple[Any, ...]], *, index: str | None = None,
        limit: int | None = None, reverse: bool = False, concurrency: int = 16,
    ) -> list[list[T]]:
        """The items of many partitions (see ``QueryMany``): grouped by shard, one ``query_many`` per shard
        (a shard without it: one query per partition), the shards concurrently. Through an index that is not
        partitioned like the table, a partition's items can be on any shard: every shard is asked for every
        partition (still one request per shard) and each partition's items are merged in index order."""
        if not partitions:
            return []
        if index is not None and schema.indexes[index].partition_fields != schema.partition:
            return await self._query_many_everywhere(schema, partitions, index, limit, reverse, concurrency)
        index_of = self.router.shard_index_of
        groups: dict[int, list[int]] = {}
        for i, p in enumerate(partitions):
            groups.setdefault(index_of(p), []).append(i)
        self.stats.round_trips += len(groups)
        self.stats.queries += len(groups)

        kw: dict[str, Any] = {"index": index, "limit": limit, "reverse": reverse, "concurrency": concurrency}

        async def shard(s: int, idx: list[int]) -> list[list[T]]:
            return await _query_many_on(self._stores[s], schema, [partitions[i] for i in idx], kw)

        try:
            found = await gather_all([shard(s, idx) for s, idx in groups.items()])
        except TierstoreError:
            self.stats.errors += 1
            raise
        out: list[list[T]] = [[] for _ in partitions]
        for idx, lists in zip(groups.values(), found, strict=True):
            for i, items in zip(idx, lists, strict=True):
                out[i] = items
        return out

    async def _query_many_everywhere(
        self, schema: Schema[T], partitions: Sequence[tuple[Any, ...]], index: str, limit: int | None,
        reverse: bool, concurrency: int,
    ) -> list[list[T]]:
        kw: dict[str, Any] = {"index": index, "limit": limit, "reverse": reverse, "concurrency": concurrency}
        self.stats.round_trips += len(self._stores)
        self.stats.queries += len(self._stores)
        try:
            found = await gather_all([_query_many_on(s, schema, partitions, kw) for s in self._stores])
        except TierstoreError:
            self.stats.errors += 1
            raise
        sort_fields, key_of = schema.indexes[index].sort_fields, schema.key_of
        out: list[list[T]] = []
        for i in range(len(partitions)):
            merged = [item for lists in found for item in lists[i]]
            if len(found) > 1:
                merged.sort(key=lambda it: (tuple(getattr(it, f) for f in sort_fields), key_of(it)), reverse=reverse)
            out.append(merged if limit is None else merged[:limit])
        return out

    async def scatter_gather(
        self, schema: Schema[T], query: Query, *, concurrency: int | None = None
    ) -> list[T]:
        """``query`` on every shard (``concurrency`` at a time), each up to ``query.limit`` items; the
        merged result ordered by sort key then primary key (descending if ``query.reverse``) and cut to
        ``query.limit``."""
        if query.cursor is not None:
            raise Unsupported("scatter_gather does not take a cursor", entity=schema.name, backend=self.name)
        self.stats.queries += len(self._stores)
        try:
            results = await gather_all([query_all(s, schema, query) for s in self._stores], concurrency)
        except TierstoreError:
            self.stats.errors += 1
            raise
        self.stats.round_trips += sum(pages for _, pages in results)
        parts = [items for items, _ in results]
        sort_fields = schema.indexes[query.index].sort_fields if query.index is not None else schema.sort
        key_of = schema.key_of
        merged = [item for part in parts for item in part]
        merged.sort(
            key=lambda it: (tuple(getattr(it, f) for f in sort_fields), key_of(it)), reverse=query.reverse
        )
        return merged if query.limit is None else merged[: query.limit]

    # -- writes ------------------------------------------------------------------------------------

    async def put(
        self, schema: Schema[T], item: T, *, if_not_exists: bool = False, expect_version: int | None = None,
        **conditions: Any,
    ) -> T:
        store = self._stores[self.router.shard_index_for(schema, schema.key_of(item))]
        self.stats.round_trips += 1
        try:
            stored = await store.put(
                schema, item, if_not_exists=if_not_exists, expect_version=expect_version, **conditions
            )
        except TierstoreError:
            self.stats.errors += 1
            raise
        self.stats.writes += 1
        return stored

    async def put_many(self, schema: Schema[T], items: Sequence[T]) -> list[T]:
        if not items:
            return []
        key_of = schema.key_of
        groups = self._group(schema, [key_of(i) for i in items])
        self.stats.round_trips += len(groups)
        if len(groups) == 1:
            (shard,) = groups
            try:
                stored = await self._stores[shard].put_many(schema, items)
            except TierstoreError:
                self.stats.errors += 1
                raise
            self.stats.writes += len(items)
            return stored
        batches = [[items[i] for i in idx] for idx in groups.values()]
        results = await asyncio.gather(
            *(self._stores[shard].put_many(schema, batch) for shard, batch in zip(groups, batches, strict=True)),
            return_exceptions=True,
        )
        self._raise_partial(schema, "put_many", batches, results)
        out: list[Any] = [None] * len(items)
        for idx, part in zip(groups.values(), results, strict=True):
            assert isinstance(part, list)
            for i, value in zip(idx, part, strict=True):
                out[i] = value
        self.stats.writes += len(items)
        return out

    async def delete(
        self, schema: Schema[Any], key: Key, *, expect_version: int | None = None, **conditions: Any
    ) -> bool:
        store = self._stores[self.router.shard_index_for(schema, key)]
        self.stats.round_trips += 1
        try:
            existed = await store.delete(schema, key, expect_version=expect_version, **conditions)
        except TierstoreError:
            self.stats.errors += 1
            raise
        self.stats.writes += 1
        return existed

    async def update(self, schema: Schema[T], key: Key, changes: Any, **conditions: Any) -> T:
        """``update`` on the shard that holds ``key`` (every shard evaluates conditions, see ``expressions``)."""
        store: Any = self._stores[self.router.shard_index_for(schema, key)]
        self.stats.round_trips += 1
        try:
            stored: T = await store.update(schema, key, changes, **conditions)
        except TierstoreError:
            self.stats.errors += 1
            raise
        self.stats.writes += 1
        return stored

    async def delete_many(self, schema: Schema[Any], keys: Sequence[Key]) -> None:
        if not keys:
            return
        groups = self._group(schema, keys)
        self.stats.round_trips += len(groups)
        batches = [[keys[i] for i in idx] for idx in groups.values()]
        if len(groups) == 1:
            (shard,) = groups
            try:
                await self._stores[shard].delete_many(schema, keys)
            except TierstoreError:
                self.stats.errors += 1
                raise
        else:
            results = await asyncio.gather(
                *(self._stores[s].delete_many(schema, b) for s, b in zip(groups, batches, strict=True)),
                return_exceptions=True,
            )
            self._raise_partial(schema, "delete_many", batches, results)
        self.stats.writes += len(keys)

    def _raise_partial(
        self, schema: Schema[Any], what: str, batches: list[list[Any]], results: Sequence[Any]
    ) -> None:
        """After concurrent per-shard writes: raise if any shard failed, naming exactly what is not done."""
        failed = [(b, r) for b, r in zip(batches, results, strict=True) if isinstance(r, BaseException)]
        if not failed:
            return
        self.stats.errors += len(failed)
        for _, exc in failed:
            if not isinstance(exc, Exception):
                raise exc  # cancellation and friends pass through untouched
        first = failed[0][1]
        if len(failed) == len(batches) and not any(isinstance(r, PartialBatchError) for _, r in failed):
            raise first  # no shard acknowledged anything: the caller sees the shard's own error
        remaining: list[Any] = []
        for batch, exc in failed:
            remaining.extend(exc.remaining if isinstance(exc, PartialBatchError) else batch)
        raise PartialBatchError(
            f"{what}: {len(failed)} of {len(batches)} shards failed ({first!s}); {len(remaining)} not done",
            remaining=remaining,
            entity=schema.name,
            backend=self.name,
        ) from first

    async def transact(self, ops: Sequence[WriteOp]) -> list[Any]:
        if not ops:
            return []
        shards: set[int] = set()
        for op in ops:
            if isinstance(op, Put):
                schema = schema_of(type(op.item))
                shards.add(self.router.shard_index_for(schema, schema.key_of(op.item)))
            else:
                shards.add(self.router.shard_index_for(schema_of(op.entity), op.key))
        if len(shards) != 1:
            names = sorted(self.router.shards[i] for i in shards)
            raise Unsupported(
                f"a transaction must stay on one shard; these actions span {names}. Keep the items of one "
                f"transaction in one partition (or partitions that share a shard)",
                backend=self.name,
            )
        (shard,) = shards
        self.stats.round_trips += 1
        try:
            result = await self._stores[shard].transact(ops)
        except TierstoreError:
            self.stats.errors += 1
            raise
        self.stats.writes += len(ops)
        return result


async def _query_many_on(
    store: Store, schema: Schema[T], partitions: Sequence[tuple[Any, ...]], kw: dict[str, Any]
) -> list[list[T]]:
    """``query_many`` on one shard, or one query per partition where the shard cannot batch them."""
    if isinstance(store, QueryMany):
        return await store.query_many(schema, partitions, **kw)
    return await query_each(store, schema, partitions, **kw)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardedStoreConfig:
    """A sharded store from a router and one store URL (or config) per shard::

        tierstore.connect(store=ShardedStoreConfig(
            router="pg-a=0-511,pg-b=512-1023",
            stores={"pg-a": "postgresql+asyncpg://…/a", "pg-b": "postgresql+asyncpg://…/b"}))
    """

    router: Router | str | Mapping[str, Any]
    stores: Mapping[str, Any] = field(default_factory=dict)

    def build(self) -> ShardedStore:
        router = Router.from_config(self.router)
        built: dict[str, Store] = {}
        for name, spec in self.stores.items():
            cfg = store_config(spec) if isinstance(spec, str) else spec
            if isinstance(cfg, Store):
                raise ConfigError(
                    f"ShardedStoreConfig takes URLs or configs; pass ready stores to ShardedStore({name}=...)"
                )
            if not isinstance(cfg, BackendConfig):
                raise ConfigError(f"shard {name}: expected a store URL or config, got {type(spec).__name__}")
            built[name] = cfg.build()
        return ShardedStore(router, built)

    def __repr__(self) -> str:
        stores = {k: redact_url(v) if isinstance(v, str) else v for k, v in self.stores.items()}
        return f"ShardedStoreConfig(router={str(Router.from_config(self.router))!r}, stores={stores!r})"
