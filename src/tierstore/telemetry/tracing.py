"""The traced classes a database with telemetry uses instead of the plain ones (the plain ones never check).

* :class:`TracedRepository`: a span per repository operation (``get``, ``get_many``, ``put``, ``put_many``,
  ``delete``, ``delete_many``, ``query`` — one span per page, joins included —, ``load``, ``scatter_gather``)
  of kind ``CLIENT``, with the database semantic conventions and what the caches did
  (``tierstore.cache.hits``, ``tierstore.cache.misses``, ``tierstore.cache.hit_tier``,
  ``tierstore.cache.coalesced``, ``tierstore.cache.lease_waits``); its duration goes into the
  ``db.client.operation.duration`` histogram.
* :class:`TracedTieredCache`: a child span per tier round trip (``get``, ``fill``, ``set``, ``invalidate``,
  ``replay``, ``lease_wait``) with ``tierstore.cache.tier``, the key count, hits, misses, leases, lease waits and
  ``tierstore.cache.coalesced``; a tier failure (the cache fails open, so the operation still succeeds) is
  ``error.type`` and an error status on that child span.
* :func:`traced_store`: a proxy of the store with a child span per store round trip.

What one operation learned on the way down (tier hits, store reads, a coalesced read) travels in a context
variable set by the repository span, so concurrent operations never mix their counts.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

import msgspec
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from tierstore.codecs import Codec
from tierstore.expressions.ast import Condition
from tierstore.model.entity import Entity
from tierstore.model.relations import Relation
from tierstore.model.schema import Key, Schema
from tierstore.projection import ProjectedResult, check_projection
from tierstore.query import _NO_PARTITION, Page, Query, SortCondition
from tierstore.repository import QueryResult, Repository, RepositoryContext
from tierstore.stores.base import Scannable, ScatterGather, Store, WriteOp
from tierstore.telemetry.attributes import error_type, server_of, store_system, tier_system
from tierstore.tiers.base import CacheTier, Lease
from tierstore.tiers.coalesce import SharedFailure
from tierstore.tiers.policy import CachePolicy
from tierstore.tiers.tiered import TieredCache, load_one

if TYPE_CHECKING:
    from tierstore.telemetry.setup import Telemetry

__all__ = ["TracedQueryResult", "TracedRepository", "TracedTieredCache", "traced_store"]

T = TypeVar("T")
R = TypeVar("R", bound=Entity)
P = TypeVar("P", bound=msgspec.Struct)

HIT_TIER = "tierstore.cache.hit_tier"


class _Op:
    """What the layers below learned during one repository operation."""

    __slots__ = ("coalesced", "l1_missed", "lease_waits", "store_keys", "tier_hits", "tiered_keys")

    def __init__(self) -> None:
        self.coalesced = False
        self.l1_missed = False
        self.lease_waits = 0
        self.store_keys = 0
        self.tiered_keys = -1  # keys sent down the tiered path; -1: it was not taken
        self.tier_hits: dict[str, int] = {}


_current: ContextVar[_Op | None] = ContextVar("tierstore_operation", default=None)


def _failed_already(span: Span) -> bool:
    attributes = getattr(span, "attributes", None)  # the SDK's spans expose them; the API promises nothing
    return bool(attributes and "error.type" in attributes)


def _fail(span: Span, exc: BaseException) -> None:
    cause = exc.__cause__ if isinstance(exc, SharedFailure) and exc.__cause__ is not None else exc
    span.set_attribute("error.type", error_type(cause))
    span.set_status(Status(StatusCode.ERROR, f"{type(cause).__name__}"))


# -- the repository ----------------------------------------------------------------------------------------


class TracedRepository(Repository[R]):
    """A :class:`~tierstore.repository.Repository` that traces and times every operation."""

    telemetry: ClassVar[Telemetry]

    def __init__(self, context: RepositoryContext, cls: type[R]) -> None:
        super().__init__(context, cls)
        tel = self.telemetry
        self._tracer = tel.tracer
        self._duration = tel.duration
        table = self.schema.table
        self._attrs: dict[str, Any] = {
            "db.system.name": store_system(context.store),
            "db.collection.name": table,
            **server_of(context.store),
        }
        self.store = traced_store(context.store, tel, self._attrs["db.system.name"])
        self._l1_name = self._l1.name if self._l1 is not None else None
        self._l1_missed = self._note_l1_miss

    @contextmanager
    def _operation(self, op: str, batch: int | None = None) -> Generator[tuple[Span, _Op], None, None]:
        attrs = dict(self._attrs)
        attrs["db.operation.name"] = op
        if batch is not None and batch > 1:  # the conventions count a batch from 2 operations
            attrs["db.operation.batch.size"] = batch
        record = _Op()
        token = _current.set(record)
        start = time.perf_counter()
        metric_attrs = {k: v for k, v in attrs.items() if k != "db.operation.batch.size"}
        try:
            with self._tracer.start_as_current_span(
                f"{op} {self.schema.table}", kind=SpanKind.CLIENT, attributes=attrs,
                record_exception=True, set_status_on_exception=True,
            ) as span:
                try:
                    yield span, record
                except BaseException as exc:
                    span.set_attribute("error.type", error_type(exc))
                    metric_attrs["error.type"] = error_type(exc)
                    raise
                finally:
                    _cache_attributes(span, record)
        finally:
            _current.reset(token)
            self._duration.record(time.perf_counter() - start, metric_attrs)

    # -- reads --

    @overload
    async def get(
        self, partition: Any, sort: Any = None, *, consistent: bool = False, fields: None = None
    ) -> R | None: ...

    @overload
    async def get(self, partition: Any, sort: Any = None, *, consistent: bool = False, fields: type[P]) -> P | None: ...

    async def get(
        self, partition: Any, sort: Any = None, *, consistent: bool = False, fields: type[Any] | None = None
    ) -> Any:
        if fields is not None:
            projection = check_projection(self.schema, fields)
            whole = await self.get(partition, sort, consistent=consistent)
            return None if whole is None else projection.of(whole)
        with self._operation("get") as (span, record):
            item = await super().get(partition, sort, consistent=consistent)
            if not consistent and self._l1_name is not None and not record.l1_missed:
                record.tier_hits[self._l1_name] = record.tier_hits.get(self._l1_name, 0) + 1
            if len(record.tier_hits) == 1:
                span.set_attribute(HIT_TIER, next(iter(record.tier_hits)))
            return item

    def _note_l1_miss(self, ck: str) -> None:
        record = _current.get()
        if record is not None:
            record.l1_missed = True
            flight = self._inflight.get(ck)
            if flight is not None and flight[1] is self:
                record.coalesced = True  # joins the read of this key already under way

    @overload
    async def get_many(
        self, keys: Iterable[Any], *, consistent: bool = False, fields: None = None
    ) -> list[R | None]: ...

    @overload
    async def get_many(self, keys: Iterable[Any], *, consistent: bool = False, fields: type[P]) -> list[P | None]: ...

    async def get_many(
        self, keys: Iterable[Any], *, consistent: bool = False, fields: type[Any] | None = None
    ) -> list[Any]:
        if fields is not None:
            projection = check_projection(self.schema, fields)
            whole = await self.get_many(keys, consistent=consistent)
            return [None if i is None else projection.of(i) for i in whole]
        keys = list(keys)
        with self._operation("get_many", len(keys)) as (_, record):
            found = await super().get_many(keys, consistent=consistent)
            if not consistent and self._l1_name is not None:
                try:
                    distinct = len({tuple(k) if isinstance(k, list) else k for k in keys})
                except TypeError:
                    distinct = len(keys)
                sent = record.tiered_keys if record.tiered_keys >= 0 else 0
                if distinct > sent:
                    record.tier_hits[self._l1_name] = record.tier_hits.get(self._l1_name, 0) + distinct - sent
            return found

    @overload
    def query(
        self, partition: Any = _NO_PARTITION, *, sort: SortCondition | None = None, index: str | None = None,
        limit: int | None = None, cursor: str | None = None, reverse: bool = False, consistent: bool = False,
        where: Condition | bool | None = None, undecodable: str | None = None, fields: None = None,
    ) -> TracedQueryResult[R]: ...

    @overload
    def query(
        self, partition: Any = _NO_PARTITION, *, sort: SortCondition | None = None, index: str | None = None,
        limit: int | None = None, cursor: str | None = None, reverse: bool = False, consistent: bool = False,
        where: Condition | bool | None = None, undecodable: str | None = None, fields: type[P],
    ) -> ProjectedResult[P]: ...

    def query(
        self, partition: Any = _NO_PARTITION, *, sort: SortCondition | None = None, index: str | None = None,
        limit: int | None = None, cursor: str | None = None, reverse: bool = False, consistent: bool = False,
        where: Condition | bool | None = None, undecodable: str | None = None, fields: type[Any] | None = None,
    ) -> TracedQueryResult[R] | ProjectedResult[Any]:
        projection = None if fields is None else check_projection(self.schema, fields)
        q = self._make_query(partition, sort, index, limit, cursor, reverse, consistent, where)
        result = TracedQueryResult(self, self._tolerant(q, undecodable))
        return result if projection is None else ProjectedResult(result, projection)

    async def load(self, items: Sequence[R], *relations: Relation[Any]) -> list[R]:
        with self._operation("load", len(items)) as (span, _):
            span.set_attribute("tierstore.relations", [r.name for r in relations])
            return await super().load(items, *relations)

    async def scatter_gather(
        self, partition: Any, *, index: str | None = None, sort: SortCondition | None = None,
        limit: int | None = None, reverse: bool = False, concurrency: int = 8, where: Condition | bool | None = None,
    ) -> list[R]:
        with self._operation("scatter_gather"):
            return await super().scatter_gather(
                partition, index=index, sort=sort, limit=limit, reverse=reverse, concurrency=concurrency, where=where
            )

    # -- writes --

    async def put(
        self, item: R, *, if_not_exists: bool = False, expect_version: int | None = None,
        when: Condition | bool | None = None, check_version: bool = True,
    ) -> R:
        with self._operation("put"):
            return await super().put(
                item, if_not_exists=if_not_exists, expect_version=expect_version, when=when,
                check_version=check_version,
            )

    async def update(
        self, partition: Any, sort: Any = None, *, set: Mapping[str, Any] | None = None,
        add: Mapping[str, int | float] | None = None, remove: Iterable[str] = (),
        append: Mapping[str, Iterable[Any]] | None = None, when: Condition | bool | None = None,
    ) -> R:
        with self._operation("update"):
            return await super().update(partition, sort, set=set, add=add, remove=remove, append=append, when=when)

    async def put_many(self, items: Iterable[R], *, check_version: bool = True) -> list[R]:
        items = list(items)
        with self._operation("put_many", len(items)):
            return await super().put_many(items, check_version=check_version)

    async def delete(
        self, partition: Any, sort: Any = None, *, expect_version: int | None = None,
        when: Condition | bool | None = None,
    ) -> bool:
        with self._operation("delete"):
            return await super().delete(partition, sort, expect_version=expect_version, when=when)

    async def delete_many(self, keys: Iterable[Any]) -> None:
        keys = list(keys)
        with self._operation("delete_many", len(keys)):
            await super().delete_many(keys)


def _cache_attributes(span: Span, record: _Op) -> None:
    hits = sum(record.tier_hits.values())
    if hits:
        span.set_attribute("tierstore.cache.hits", hits)
    if record.store_keys:
        span.set_attribute("tierstore.cache.misses", record.store_keys)
    if record.coalesced:
        span.set_attribute("tierstore.cache.coalesced", True)
    if record.lease_waits:
        span.set_attribute("tierstore.cache.lease_waits", record.lease_waits)


class TracedQueryResult(QueryResult[R]):
    """A query whose every page (with its joins) is one ``query`` span."""

    repo: TracedRepository[R]

    def join(self, *relations: Relation[Any]) -> TracedQueryResult[R]:
        plain = super().join(*relations)
        return TracedQueryResult(self.repo, plain.query, plain._joins)

    async def _page(self, q: Query) -> Page[R]:
        with self.repo._operation("query") as (span, _):
            if self._joins:
                span.set_attribute("tierstore.relations", [r.name for r in self._joins])
            page = await super()._page(q)
            span.set_attribute("tierstore.query.items", len(page.items))
            return page


# -- the tiered cache ----------------------------------------------------------------------------------------


class TracedTieredCache(TieredCache):
    """A :class:`~tierstore.tiers.tiered.TieredCache` with a child span per tier round trip."""

    def __init__(self, tiers: Sequence[CacheTier], policy: CachePolicy | None, telemetry: Telemetry) -> None:
        super().__init__(tiers, policy)
        self._tracer = telemetry.tracer
        self._tier_attrs = [
            {"db.system.name": tier_system(t), "tierstore.cache.tier": t.name} for t in self.tiers
        ]

    @contextmanager
    def _round_trip(self, t: int, op: str, keys: int) -> Generator[Span, None, None]:
        attrs: dict[str, Any] = dict(self._tier_attrs[t])
        attrs["db.operation.name"] = op
        attrs["tierstore.cache.keys"] = keys
        stats = self.tiers[t].stats
        errors = stats.errors
        with self._tracer.start_as_current_span(
            f"{op} {self.tiers[t].name}", kind=SpanKind.INTERNAL, attributes=attrs,
            record_exception=True, set_status_on_exception=True,
        ) as span:
            yield span
            if stats.errors > errors and span.is_recording() and not _failed_already(span):
                # A network tier fails open node by node: it answered (with misses) but counted a failure.
                span.set_attribute("error.type", "TierError")
                span.set_status(Status(StatusCode.ERROR, "a node of the tier failed; answered as misses"))

    async def read_many(
        self, codec: Codec[T], cks: Sequence[str], load: Callable[[list[int]], Awaitable[list[T | None]]],
        *, expires_of: Callable[[T], float | None] | None = None, start: int = 0, policy: CachePolicy | None = None,
        first: list[bytes | Lease | None] | None = None,
    ) -> list[T | None]:
        record = _current.get()
        if record is not None:
            record.tiered_keys = len(cks) if record.tiered_keys < 0 else record.tiered_keys + len(cks)
        return await super().read_many(
            codec, cks, load, expires_of=expires_of, start=start, policy=policy, first=first
        )

    async def read_one(
        self, codec: Codec[T], ck: str, fetch: Callable[[Any], Awaitable[T | None]], key: Any,
        *, expires_of: Callable[[T], float | None] | None = None, start: int = 0, policy: CachePolicy | None = None,
    ) -> T | None:
        # Through read_many and _tier_get, whose spans and counts this class records.
        (result,) = await self.read_many(
            codec, (ck,), partial(load_one, fetch, key), expires_of=expires_of, start=start, policy=policy
        )
        return result

    async def _tier_get(self, t: int, keys: Sequence[str]) -> list[bytes | Lease | None]:
        coalescer = self._coalescers[t]
        joined = coalescer is not None and coalescer.batch is not None
        with self._round_trip(t, "get", len(keys)) as span:
            got = await super()._tier_get(t, keys)
            hits = waits = leases = 0
            for g in got:
                if g.__class__ is bytes:
                    hits += 1
                elif g is None:
                    waits += 1
                elif g.token is not None:  # type: ignore[union-attr]
                    leases += 1
            span.set_attributes({
                "tierstore.cache.hits": hits, "tierstore.cache.misses": len(got) - hits,
                "tierstore.cache.leases": leases, "tierstore.cache.lease_waits": waits,
                "tierstore.cache.coalesced": joined,
            })
        record = _current.get()
        if record is not None:
            if hits:
                name = self.tiers[t].name
                record.tier_hits[name] = record.tier_hits.get(name, 0) + hits
            record.coalesced = record.coalesced or joined
        return got

    async def _wait_for_fill(
        self, t: int, codec: Codec[Any], cks: Sequence[str], waiting: list[int],
        results: list[Any], got_leases: dict[int, Lease], policy: CachePolicy,
    ) -> list[int]:
        record = _current.get()
        if record is not None:
            record.lease_waits += len(waiting)
        with self._round_trip(t, "lease_wait", len(waiting)) as span:
            missed = await super()._wait_for_fill(t, codec, cks, waiting, results, got_leases, policy)
            span.set_attribute("tierstore.cache.misses", len(missed))
            return missed

    async def _tier_fill(self, t: int, entries: list[tuple[str, bytes, Lease]], ttl: float) -> None:
        with self._round_trip(t, "fill", len(entries)):
            await super()._tier_fill(t, entries, ttl)

    async def _tier_set(self, t: int, entries: list[tuple[str, bytes, int]], ttl: float) -> None:
        with self._round_trip(t, "set", len(entries)):
            await super()._tier_set(t, entries, ttl)

    async def _tier_invalidate(self, t: int, keys: Sequence[str]) -> None:
        with self._round_trip(t, "invalidate", len(keys)):
            await super()._tier_invalidate(t, keys)

    def _error(self, t: int, what: str, exc: BaseException) -> None:
        super()._error(t, what, exc)
        _fail(trace.get_current_span(), exc)  # the tier's child span: the operation itself fails open


# -- the store -------------------------------------------------------------------------------------------------


class TracedStore:
    """A store proxy with a child span per round trip. Everything it does not trace is the store's own."""

    def __init__(self, store: Store, telemetry: Telemetry, system: str) -> None:
        self._store = store
        self._tracer = telemetry.tracer
        self._attrs: dict[str, Any] = {"db.system.name": system, **server_of(store)}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def __repr__(self) -> str:
        return f"Traced({self._store!r})"

    @property
    def name(self) -> str:
        return self._store.name

    @property
    def stats(self) -> Any:
        return self._store.stats

    @contextmanager
    def _call(self, op: str, table: str | None, keys: int | None = None) -> Generator[Span, None, None]:
        attrs = dict(self._attrs)
        attrs["db.operation.name"] = op
        if table is not None:
            attrs["db.collection.name"] = table
        if keys is not None and keys > 1:
            attrs["db.operation.batch.size"] = keys
        with self._tracer.start_as_current_span(
            f"{op} {table}" if table else op, kind=SpanKind.INTERNAL, attributes=attrs,
            record_exception=True, set_status_on_exception=True,
        ) as span:
            try:
                yield span
            except BaseException as exc:
                span.set_attribute("error.type", error_type(exc))
                raise

    async def open(self) -> None:
        await self._store.open()

    async def aclose(self) -> None:
        await self._store.aclose()

    async def ensure_schema(self, schema: Schema[Any]) -> None:
        await self._store.ensure_schema(schema)

    async def truncate(self, schema: Schema[Any]) -> None:
        await self._store.truncate(schema)

    async def get(self, schema: Schema[T], key: Key, *, consistent: bool = False) -> T | None:
        record = _current.get()
        if record is not None:
            record.store_keys += 1
        with self._call("store.get", schema.table):
            return await self._store.get(schema, key, consistent=consistent)

    async def get_many(self, schema: Schema[T], keys: Sequence[Key], *, consistent: bool = False) -> list[T | None]:
        record = _current.get()
        if record is not None:
            record.store_keys += len(keys)
        with self._call("store.get_many", schema.table, len(keys)):
            return await self._store.get_many(schema, keys, consistent=consistent)

    async def get_by_key(self, schema: Schema[T], keys: Sequence[Key]) -> dict[Key, T]:
        """The store's ``get_by_key`` (``GetsByKey``), traced as the ``get_many`` it is; over a store without
        it, its ``get_many`` answer by key."""
        record = _current.get()
        if record is not None:
            record.store_keys += len(keys)
        with self._call("store.get_many", schema.table, len(keys)):
            by_key = getattr(self._store, "get_by_key", None)
            if by_key is not None:
                return await by_key(schema, keys)  # type: ignore[no-any-return]
            found = await self._store.get_many(schema, keys)
            return {k: v for k, v in zip(keys, found, strict=True) if v is not None}

    async def put(self, schema: Schema[T], item: T, *, if_not_exists: bool = False,
                  expect_version: int | None = None, **conditions: Any) -> T:
        with self._call("store.put", schema.table):
            return await self._store.put(
                schema, item, if_not_exists=if_not_exists, expect_version=expect_version, **conditions
            )

    async def put_many(self, schema: Schema[T], items: Sequence[T]) -> list[T]:
        with self._call("store.put_many", schema.table, len(items)):
            return await self._store.put_many(schema, items)

    async def delete(self, schema: Schema[Any], key: Key, *, expect_version: int | None = None,
                     **conditions: Any) -> bool:
        with self._call("store.delete", schema.table):
            return await self._store.delete(schema, key, expect_version=expect_version, **conditions)

    async def update(self, schema: Schema[T], key: Key, changes: Any, **conditions: Any) -> T:
        with self._call("store.update", schema.table):
            stored: T = await self._store.update(schema, key, changes, **conditions)  # type: ignore[attr-defined]
            return stored

    async def delete_many(self, schema: Schema[Any], keys: Sequence[Key]) -> None:
        with self._call("store.delete_many", schema.table, len(keys)):
            await self._store.delete_many(schema, keys)

    async def query(self, schema: Schema[T], query: Query) -> Page[T]:
        with self._call("store.query", schema.table) as span:
            page = await self._store.query(schema, query)
            span.set_attribute("tierstore.query.items", len(page.items))
            return page

    async def transact(self, ops: Sequence[WriteOp]) -> list[Any]:
        with self._call("store.transact", None, len(ops)):
            return await self._store.transact(ops)


class _TracedScannable(TracedStore):
    async def scan(self, schema: Schema[T], *, after: Key | None = None, limit: int = 1000) -> list[T]:
        with self._call("store.scan", schema.table):
            return await self._store.scan(schema, after=after, limit=limit)  # type: ignore[attr-defined, no-any-return]

    async def restore_many(self, schema: Schema[T], items: Sequence[T]) -> None:
        with self._call("store.restore_many", schema.table, len(items)):
            await self._store.restore_many(schema, items)  # type: ignore[attr-defined]


class _TracedScatterGather(TracedStore):
    async def scatter_gather(self, schema: Schema[T], query: Query, *, concurrency: int | None = None) -> list[T]:
        with self._call("store.scatter_gather", schema.table):
            return await self._store.scatter_gather(schema, query, concurrency=concurrency)  # type: ignore[attr-defined, no-any-return]


_PROXIES: dict[tuple[bool, bool], type[TracedStore]] = {
    (False, False): TracedStore,
    (True, False): _TracedScannable,
    (False, True): _TracedScatterGather,
    (True, True): type("_TracedScannableScatterGather", (_TracedScannable, _TracedScatterGather), {}),
}


def traced_store(store: Store, telemetry: Telemetry, system: str) -> Store:
    """``store`` behind a tracing proxy that implements the same optional protocols (``Scannable``,
    ``ScatterGather``) as the store itself, so ``isinstance`` checks answer as for the store."""
    if isinstance(store, TracedStore):
        return store
    cls = _PROXIES[(isinstance(store, Scannable), isinstance(store, ScatterGather))]
    return cls(store, telemetry, system)  # type: ignore[return-value]
