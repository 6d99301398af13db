"""``Repository[T]``: the typed surface over one entity — store of record plus the tiered cache.

A repository depends on a narrow :class:`RepositoryContext` (the store, the tiered cache, the query cache,
the ensure-schema hook and the other repositories that joins reach), not on the ``Database`` that
implements it. What the read path touches (store, cache, in-process tier, codec) is copied into the
repository's own attributes when it is built, so ``get``/``get_many`` take no extra attribute hop.

This module is one piece because ``Repository`` is the one typed surface of an entity: its reads, its writes
(plain, conditional, partial) and the cache maintenance every write goes through share state that splitting
the class across modules would only scatter; ``QueryResult`` is the query half of that surface.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar, overload

import msgspec

from tierstore import scans
from tierstore.codecs import ABSENT, Codec, codec_for
from tierstore.errors import PartialBatchError, Unsupported, ValidationError
from tierstore.expressions.ast import Condition
from tierstore.expressions.check import check_condition
from tierstore.expressions.update import check_changes
from tierstore.joins import load_relations
from tierstore.model.entity import Entity
from tierstore.model.relations import Relation
from tierstore.model.schema import Key, Schema, schema_of
from tierstore.policies.base import QueryCache
from tierstore.projection import ProjectedResult, check_projection
from tierstore.query import _NO_PARTITION, Page, Query, SortCondition, check_between, decode_cursor
from tierstore.queryresult import QueryResult
from tierstore.stores.base import KeyRules, ScatterGather, Store
from tierstore.stores.paging import query_all
from tierstore.tiers.policy import CachePolicy
from tierstore.tiers.tiered import TieredCache
from tierstore.writes import CacheMaintenance, WriteAhead

__all__ = ["QueryResult", "Repository", "RepositoryContext", "WriteAhead"]

T = TypeVar("T", bound=Entity)
E = TypeVar("E", bound=Entity)
R = TypeVar("R")
P = TypeVar("P", bound=msgspec.Struct)

_PUT_CONCURRENCY = 16  # conditional puts of one put_many in flight at once
_SORT_OPS = frozenset({"eq", "lt", "le", "gt", "ge", "between", "begins_with"})


class RepositoryContext(Protocol):
    """What a repository needs from its owner (``Database`` implements it)."""

    @property
    def store(self) -> Store: ...

    @property
    def cache(self) -> TieredCache: ...

    @property
    def query_cache(self) -> QueryCache | None: ...

    async def ensure_schema(self, schema: Schema[Any]) -> None:
        """Run before the first I/O on an entity: open the owner and create the table where it should."""
        ...

    def repository(self, entity: type[E]) -> Repository[E]:
        """The repository of another entity (joins and transactions reach it)."""
        ...


class Repository(CacheMaintenance[T]):
    """Typed access to one entity. Get one from ``db.repository(Entity)``."""

    def __init__(self, context: RepositoryContext, cls: type[T]) -> None:
        self._context = context
        self.entity = cls
        self.schema: Schema[T] = schema_of(cls)
        self.codec: Codec[T] = codec_for(self.schema)
        self.store: Store = context.store
        # The entity's cache policy (a context without ``entity_policy``: the database's); None: never cached,
        # and the repository gets a tiered path without tiers, so no read or write reaches a tier.
        resolve = getattr(context, "entity_policy", None)
        self.policy: CachePolicy | None = context.cache.policy if resolve is None else resolve(cls)
        if self.policy is None:
            self.cache: TieredCache = TieredCache((), context.cache.policy)
        else:
            self.cache = context.cache
        self._own_policy = None if self.policy is self.cache.policy else self.policy  # passed to the tiered path
        self._l1 = self.cache.l1
        self._epochs = self.cache.epochs
        # Single-flight reads under way (shared by the repositories of one cache, each joining only its own):
        # ck -> [the read's future (made when a second reader joins), the repository reading].
        self._inflight: dict[str, list[Any]] = self._epochs.flights
        # The store's own key rule (PostgreSQL: no NUL), checked before a read reaches the tiers.
        self._key_rule: Callable[[Schema[Any], Key], None] | None = (
            context.store.check_key if isinstance(context.store, KeyRules) else None
        )
        self._ready = False
        self._tiered = bool(self.cache.tiers)
        # Called with the cache key when a get goes past the in-process tier (a traced repository records it).
        self._l1_missed: Callable[[str], None] | None = None
        schema = self.schema
        self._ttl = schema.ttl
        self._expires_of: Callable[[T], float | None] | None = None
        if schema.ttl is not None:
            ttl_field = schema.ttl
            self._expires_of = lambda item: getattr(item, ttl_field) or None

    def __repr__(self) -> str:
        return f"Repository[{self.schema.name}]"

    @property
    def _query_cache(self) -> QueryCache | None:
        return None if self.policy is None else self._context.query_cache

    async def _ensure(self) -> None:
        if not self._ready:
            await self._context.ensure_schema(self.schema)
            self._ready = True

    def _live(self, item: T | None) -> T | None:
        """Items whose TTL field is in the past read as absent."""
        if item is not None and self.schema.ttl is not None:
            at = getattr(item, self.schema.ttl)
            if at and at <= time.time():
                return None
        return item

    # -- reads -------------------------------------------------------------------------------------

    @overload
    async def get(
        self, partition: Any, sort: Any = None, *, consistent: bool = False, fields: None = None
    ) -> T | None: ...

    @overload
    async def get(self, partition: Any, sort: Any = None, *, consistent: bool = False, fields: type[P]) -> P | None: ...

    async def get(
        self, partition: Any, sort: Any = None, *, consistent: bool = False, fields: type[Any] | None = None
    ) -> Any:
        """The item with this key, or ``None``. ``consistent=True`` reads the store, bypassing caches.
        ``fields=``: a projection class (:mod:`tierstore.projection`): the item cut down to its fields."""
        if fields is not None:
            projection = check_projection(self.schema, fields)
            whole = await self.get(partition, sort, consistent=consistent)
            return None if whole is None else projection.of(whole)
        schema = self.schema
        fast = schema.fast_key(partition, sort)
        if fast is None:
            key = schema.key(partition, sort)
            ck = schema.cache_key(key)
        else:
            key, ck = fast
        if not self._ready:
            await self._ensure()
        if consistent:
            item: T | None = await self.store.get(schema, key, consistent=True)
            return self._live(item)
        l1 = self._l1
        if l1 is not None:
            obj = l1.read(ck, self.codec)
            if obj is not None:
                if obj is ABSENT:  # a cached "not found"
                    return None
                return obj if self._ttl is None else self._live(obj)
        # Past the in-process tier, in this frame (one coroutine less per read than a method of its own).
        if self._l1_missed is not None:
            self._l1_missed(ck)
        if self._key_rule is not None:
            self._key_rule(schema, key)
        flights = self._inflight
        inflight = flights.get(ck)
        if inflight is not None and inflight[1] is self:
            # Single flight: join the read already under way for this key (a write or invalidation of the key
            # that this process knows of drops it from ``flights``, so it began after the last). Its future is
            # made by the first reader that joins (most reads are never joined).
            fut = inflight[0]
            if fut is None:
                fut = inflight[0] = asyncio.get_running_loop().create_future()
            return await asyncio.shield(fut)
        flight: list[Any] = [None, self]
        flights[ck] = flight
        try:
            if self._tiered:
                result = await self.cache.read_one(
                    self.codec, ck, self._fetch, key, expires_of=self._expires_of, policy=self._own_policy
                )
            else:
                result = await self.store.get(schema, key)
            if self._ttl is not None:
                result = self._live(result)
        except BaseException as exc:
            fut = flight[0]
            if fut is not None:
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: joiners re-raise it themselves
            raise
        else:
            fut = flight[0]
            if fut is not None:
                fut.set_result(result)
            return result
        finally:
            if flights.get(ck) is flight:
                del flights[ck]

    def _fetch(self, key: Key) -> Awaitable[T | None]:
        """The store's read of one key (what the tiered path calls when every tier missed)."""
        return self.store.get(self.schema, key)

    @overload
    async def get_many(
        self, keys: Iterable[Any], *, consistent: bool = False, fields: None = None
    ) -> list[T | None]: ...

    @overload
    async def get_many(self, keys: Iterable[Any], *, consistent: bool = False, fields: type[P]) -> list[P | None]: ...

    async def get_many(
        self, keys: Iterable[Any], *, consistent: bool = False, fields: type[Any] | None = None
    ) -> list[Any]:
        """Items in request order (``None`` where absent). Keys: partition, or ``(partition, sort)``.
        ``fields=``: a projection class, as on :meth:`get`."""
        if fields is not None:
            projection = check_projection(self.schema, fields)
            whole = await self.get_many(keys, consistent=consistent)
            return [None if i is None else projection.of(i) for i in whole]
        schema = self.schema
        keys = _iterable(keys, "get_many", schema)
        paired = bool(schema.sort)
        flat: list[Key] = []
        if consistent or not self.cache.tiers:
            # No tier to ask: validate the keys, skip building cache keys. A copy of the caller's list: it may
            # become the keys, and the caller may change its list while this awaits.
            flat = schema.plain_keys(list(keys))
            distinct = dict.fromkeys(flat)
            if not flat:
                if not self._ready:
                    await self._ensure()
                return []
            if len(distinct) == len(flat):
                return await self._get_checked(flat, consistent)
            uniq = list(distinct)
            found_direct = await self._get_checked(uniq, consistent)
            index = {k: i for i, k in enumerate(uniq)}
            return [found_direct[index[k]] for k in flat]
        args = list(keys)  # a copy: it may become the keys, and the caller's list may change while this awaits
        built = schema.fast_keys(args)
        if built is not None:
            flat, every_ck = built
        else:
            every_ck = []
            fast = schema.fast_key
            for arg in args:
                if paired:
                    got = fast(arg[0], arg[1]) if type(arg) is tuple and len(arg) == 2 else None
                else:
                    got = fast(arg, None)
                if got is None:
                    key = schema.key_arg(arg)  # the general path: validates and explains
                    ck = schema.cache_key(key)
                else:
                    key, ck = got
                flat.append(key)
                every_ck.append(ck)
        # A key asked for twice is read once (cache keys are as distinct as keys, and hashed once here for the
        # lookups below).
        first_of: dict[str, int] | None = None  # with repeats: cache key -> its place among the distinct keys
        uniq, cks = flat, every_ck
        if len(set(every_ck)) != len(every_ck):
            first_of = {}
            uniq, cks = [], []
            for key, ck in zip(flat, every_ck, strict=True):
                if ck not in first_of:
                    first_of[ck] = len(uniq)
                    uniq.append(key)
                    cks.append(ck)
        if not self._ready:
            await self._ensure()
        if not flat:
            return []
        found: list[T | None] = [None] * len(uniq)
        todo: list[int] | range = range(len(uniq))
        l1 = self._l1
        if l1 is not None:
            # The in-process tier answers synchronously; only its misses take the tiered path.
            misses: list[int] = []
            todo = misses
            read = l1.read
            codec = self.codec
            for i, ck in enumerate(cks):
                obj = read(ck, codec)
                if obj is None:
                    misses.append(i)  # not held, or undecodable: the tiered path counts and replaces it
                elif obj is not ABSENT:
                    found[i] = obj
        if todo:
            every = l1 is None  # no in-process tier: every key takes the tiered path, in order
            wanted = uniq if every else [uniq[i] for i in todo]
            if self._key_rule is not None:
                for k in wanted:
                    self._key_rule(schema, k)

            async def load(idx: list[int]) -> list[T | None]:
                return await self.store.get_many(schema, [wanted[i] for i in idx])

            loaded = await self.cache.read_many(
                self.codec, cks if every else [cks[i] for i in todo], load, expires_of=self._expires_of,
                policy=self._own_policy,
            )
            if every:
                found = loaded
            else:
                for i, value in zip(todo, loaded, strict=True):
                    found[i] = value
        if first_of is not None:
            found = [found[first_of[ck]] for ck in every_ck]  # in request order, repeats included
        if self._ttl is None:
            return found  # no TTL field, so nothing to expire
        live = self._live
        return [live(i) for i in found]

    @overload
    def query(
        self, partition: Any = _NO_PARTITION, *, sort: SortCondition | None = None, index: str | None = None,
        limit: int | None = None, cursor: str | None = None, reverse: bool = False, consistent: bool = False,
        where: Condition | bool | None = None, undecodable: str | None = None, fields: None = None,
    ) -> QueryResult[T]: ...

    @overload
    def query(
        self, partition: Any = _NO_PARTITION, *, sort: SortCondition | None = None, index: str | None = None,
        limit: int | None = None, cursor: str | None = None, reverse: bool = False, consistent: bool = False,
        where: Condition | bool | None = None, undecodable: str | None = None, fields: type[P],
    ) -> ProjectedResult[P]: ...

    def query(
        self,
        partition: Any = _NO_PARTITION,
        *,
        sort: SortCondition | None = None,
        index: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        reverse: bool = False,
        consistent: bool = False,
        where: Condition | bool | None = None,
        undecodable: str | None = None,
        fields: type[Any] | None = None,
    ) -> QueryResult[T] | ProjectedResult[Any]:
        """Items of one partition (of the table or of ``index``), ordered by sort key.

        ``where``: a condition on the entity's fields (``Order.status == "paid"``) the items must satisfy,
        applied after the key condition; ``limit`` counts the items returned (a page is shorter only when it is
        the last one).

        ``await`` it for one :class:`Page`; ``async for`` over it for every item, one page in memory at a
        time; ``.pages()`` for the pages. ``undecodable="skip"`` leaves out stored items that do not decode as
        the entity (listed in ``Page.skipped``, counted in the store's ``stats.skipped``); ``"raise"`` fails
        the page; the default is the entity's ``undecodable=`` (``"raise"`` unless declared). ``fields=``: a
        projection class (:mod:`tierstore.projection`): the items cut down to its fields.
        """
        projection = None if fields is None else check_projection(self.schema, fields)
        q = self._make_query(partition, sort, index, limit, cursor, reverse, consistent, where)
        result = QueryResult(self, self._tolerant(q, undecodable))
        return result if projection is None else ProjectedResult(result, projection)

    def _tolerant(self, q: Query, undecodable: str | None) -> Query:
        mode = self.schema.undecodable if undecodable is None else undecodable
        if mode not in ("raise", "skip"):
            raise ValidationError(f"undecodable= is 'raise' or 'skip', got {mode!r}", entity=self.schema.name)
        return dataclasses.replace(q, skip_undecodable=True) if mode == "skip" else q

    def _make_query(
        self, partition: Any, sort: SortCondition | None, index: str | None, limit: int | None,
        cursor: str | None, reverse: bool, consistent: bool, where: Any = None,
    ) -> Query:
        schema = self.schema
        if where is not None:
            where = check_condition(schema, where)
            self._require_expressions("query(where=...)")
        if index is None:
            pfields, sfields = schema.partition, schema.sort
        else:
            ix = schema.indexes.get(index)
            if ix is None:
                raise ValidationError(
                    f"{schema.name} has no index {index!r} (has {sorted(schema.indexes)})", entity=schema.name
                )
            pfields, sfields = ix.partition_fields, ix.sort_fields
        if partition is _NO_PARTITION:
            of, shape, example = _partition_shape(schema.name, index, pfields)
            raise ValidationError(
                f"a query reads one partition: pass the partition key of {of}, {shape}, as in {example}",
                entity=schema.name,
            )
        parts = (partition,) if len(pfields) == 1 else partition
        if not isinstance(parts, tuple) or len(parts) != len(pfields):
            of, shape, example = _partition_shape(schema.name, index, pfields)
            raise ValidationError(
                f"the partition key of {of} is {shape} ({example}), got {type(partition).__name__}",
                entity=schema.name,
            )
        for value, name in zip(parts, pfields, strict=True):
            schema.check_value(name, value)
        if sort is not None:
            if not isinstance(sort, SortCondition) or sort.op not in _SORT_OPS:
                raise ValidationError("sort= takes eq(), lt(), between(), begins_with()…", entity=schema.name)
            if not sfields:
                raise ValidationError(f"{schema.name} has no sort key to filter on", entity=schema.name)
            for value in sort.values:
                schema.check_value(sfields[0], value, allow_empty=sort.op != "eq")
            if sort.op == "between":
                check_between(*sort.values)
            if sort.op == "begins_with" and not isinstance(sort.values[0], str | bytes):
                raise ValidationError("begins_with needs a str or bytes prefix", entity=schema.name)
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise ValidationError(f"limit must be a positive int, got {limit!r}", entity=schema.name)
        if cursor is not None and not isinstance(cursor, str):
            raise ValidationError("cursor must be the str a previous page returned", entity=schema.name)
        q = Query(tuple(parts), sort, index, limit, cursor, bool(reverse), bool(consistent), where)
        if cursor is not None:
            decode_cursor(q, cursor)  # reject a foreign or damaged cursor before any I/O
        return q

    def _require_expressions(self, what: str) -> None:
        if not getattr(self.store, "expressions", False):
            raise Unsupported(
                f"{what}: the store {self.store.name!r} does not evaluate conditions", entity=self.schema.name,
                backend=self.store.name,
            )

    async def _query_page(self, q: Query) -> Page[T]:
        if not self._ready:
            await self._ensure()
        qc = self._query_cache
        if qc is not None and not q.consistent:
            page = await qc.query(self.schema, q, lambda: self.store.query(self.schema, q))
        else:
            page = await self.store.query(self.schema, q)
        if self.schema.ttl is not None:
            page.items = [i for i in page.items if self._live(i) is not None]
        return page

    def scan(
        self, *, where: Condition | bool | None = None, page_size: int = 1000, scatter_gather: bool = False
    ) -> AsyncIterator[T]:
        """Every item of the table (satisfying ``where``), read from the store page by page: the one explicit
        whole-table read (see :mod:`tierstore.scans`). Sharded stores need ``scatter_gather=True``."""
        return scans.scan(self, where, page_size, scatter_gather)

    async def count(
        self, partition: Any = None, *, sort: SortCondition | None = None, index: str | None = None,
        where: Condition | bool | None = None, scatter_gather: bool = False,
    ) -> int:
        """How many items one partition holds (satisfying ``sort`` and ``where``), or the whole table without a
        partition (a :meth:`scan`). Every counted item is read."""
        return await scans.count(self, partition, sort, index, where, scatter_gather)

    async def _get_checked(self, keys: list[Key], consistent: bool = False) -> list[T | None]:
        """Items of validated, distinct flat keys straight from the store, no tier asked: the end of
        :meth:`get_many` without tiers, and what a join calls with keys it checked itself."""
        if not self._ready:
            await self._ensure()
        found: list[T | None] = await self.store.get_many(self.schema, keys, consistent=consistent)
        return found if self._ttl is None else [self._live(i) for i in found]

    async def _get_by_key(self, keys: list[Key]) -> dict[Key, T | None]:
        """:meth:`_get_checked` by flat key, for a join to attach from: a store with ``get_by_key`` (SQL)
        answers the items found (absent keys left out); others answer ``get_many``, indexed here (absent keys
        map to ``None``)."""
        if not self._ready:
            await self._ensure()
        by_key = getattr(self.store, "get_by_key", None)
        if by_key is not None and self._ttl is None:
            return await by_key(self.schema, keys)  # type: ignore[no-any-return]
        return dict(zip(keys, await self._get_checked(keys), strict=True))

    async def load(self, items: Sequence[T], *relations: Relation[Any]) -> list[T]:
        """Load ``relations`` onto ``items`` with batched reads (application-side join). Returns ``items``."""
        await load_relations(self._context, self.schema, list(items), relations)
        return list(items)

    async def scatter_gather(
        self,
        partition: Any,
        *,
        index: str | None = None,
        sort: SortCondition | None = None,
        limit: int | None = None,
        reverse: bool = False,
        concurrency: int = 8,
        where: Condition | bool | None = None,
    ) -> list[T]:
        """The one explicit cross-shard read: query every shard for ``partition`` (usually of a secondary
        ``index``), ``concurrency`` shards at a time, each with at most ``limit`` items; merge, order by the
        sort key (then the primary key) and cut to ``limit`` globally. Reads the stores directly (no query
        cache). On an unsharded store it is one query, read to the end."""
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise ValidationError(f"concurrency must be an int >= 1, got {concurrency!r}")
        query = self._make_query(partition, sort, index, limit, None, reverse, False, where)
        if not self._ready:
            await self._ensure()
        store = self.store
        if isinstance(store, ScatterGather):
            items: list[T] = await store.scatter_gather(self.schema, query, concurrency=concurrency)
        else:
            items, _ = await query_all(store, self.schema, query)
        if self.schema.ttl is not None:
            items = [i for i in items if self._live(i) is not None]
        return items

    # -- writes ------------------------------------------------------------------------------------

    async def put(
        self, item: T, *, if_not_exists: bool = False, expect_version: int | None = None,
        when: Condition | bool | None = None, check_version: bool = True,
    ) -> T:
        """Write ``item`` and return it as stored (version field advanced).

        Optimistic locking is on by default: for an entity with a ``Version`` field the write succeeds only
        if the stored version equals ``item``'s (an item read from the store carries its version; a new item
        carries 0, which also matches a stored item written without a version attribute), else
        ``ConditionFailed``. ``expect_version``: check against this version instead.
        ``check_version=False``: overwrite whatever is stored (last writer wins). ``if_not_exists``: fail
        with ``ConditionFailed`` if the key exists. ``when``: a condition on the stored item (a missing item
        has every field absent); when it fails, ``ConditionFailed.current`` holds the stored item.
        """
        schema = self.schema
        schema.validate_item(item)
        expect = schema.write_condition(item, if_not_exists, expect_version, check_version)
        if when is not None:
            when = check_condition(schema, when, "when")
            self._require_expressions("put(when=...)")
        if not self._ready:
            await self._ensure()
        ticket = self.begin_write([schema.key_of(item)])
        cond = {} if when is None else {"when": when}  # only an expressive store takes when=
        call = self.store.put(schema, item, if_not_exists=if_not_exists, expect_version=expect, **cond)
        stored: T = await self.run_write(ticket, call, lambda s: [s])
        return stored

    async def update(
        self,
        partition: Any,
        sort: Any = None,
        *,
        set: Mapping[str, Any] | None = None,  # the keyword users write
        add: Mapping[str, int | float] | None = None,
        remove: Iterable[str] = (),
        append: Mapping[str, Iterable[Any]] | None = None,
        when: Condition | bool | None = None,
    ) -> T:
        """Change some fields of a stored item in one round trip and return the item as stored (version
        advanced): ``set`` new values, ``add`` to numbers (atomic counters), ``remove`` optional fields (back to
        ``None``), ``append`` to lists; all under ``when``. ``NotFound`` if there is no item; ``ConditionFailed``
        (with ``current``) if ``when`` does not hold. The caches forget the key, or take the returned item
        under write-through."""
        schema = self.schema
        key = schema.key(partition, sort)
        changes = check_changes(schema, set, add, remove, append)
        if when is not None:
            when = check_condition(schema, when, "when")
        self._require_expressions("update()")
        if not self._ready:
            await self._ensure()
        call = self.store.update(schema, key, changes, when=when)  # type: ignore[attr-defined]
        stored: T = await self.run_write(self.begin_write([key]), call, lambda s: [s])
        return stored

    async def put_many(self, items: Iterable[T], *, check_version: bool = True) -> list[T]:
        """Puts of distinct keys; returns the items as stored. Duplicate keys are a ``ValidationError``.

        Versions are checked per item as in :meth:`put` (one conditional write per item, concurrently);
        ``check_version=False`` writes the batch unconditionally (the store's batch path). Items whose check
        fails raise ``ConditionFailed`` (every item failed) or ``PartialBatchError`` whose ``remaining`` lists
        the items not written; the others are written.
        """
        schema = self.schema
        batch = [schema.validate_item(i) for i in _iterable(items, "put_many", schema)]
        keys = [schema.key_of(i) for i in batch]
        if len(set(keys)) != len(keys):
            raise ValidationError("put_many got the same key twice", entity=schema.name)
        expects = [schema.write_condition(i, False, None, check_version) for i in batch]
        if not batch:
            return []
        if not self._ready:
            await self._ensure()
        if expects[0] is None:
            stored: list[T] = await self.run_write(self.begin_write(keys), self.store.put_many(schema, batch), list)
            return stored
        return await self._put_checked(batch, keys, expects)

    async def _put_checked(self, batch: list[T], keys: list[Key], expects: list[int | None]) -> list[T]:
        """One conditional put per item (concurrently, bounded); each key's caches maintained as its put ends."""
        schema = self.schema
        gate = asyncio.Semaphore(_PUT_CONCURRENCY)

        async def one(item: T, key: Key, expect: int | None) -> T:
            async with gate:
                call = self.store.put(schema, item, expect_version=expect)
                put: T = await self.run_write(self.begin_write([key]), call, lambda s: [s])
                return put

        results = await asyncio.gather(
            *(one(i, k, e) for i, k, e in zip(batch, keys, expects, strict=True)), return_exceptions=True
        )
        failed = [(it, r) for it, r in zip(batch, results, strict=True) if isinstance(r, BaseException)]
        if failed:
            first = failed[0][1]
            if len(failed) == len(batch) or not isinstance(first, Exception):
                raise first
            raise PartialBatchError(
                f"{len(failed)} of {len(batch)} puts failed: {first}", remaining=[it for it, _ in failed],
                entity=schema.name, backend=self.store.name,
            ) from first
        return results  # type: ignore[return-value]

    async def delete(
        self, partition: Any, sort: Any = None, *, expect_version: int | None = None,
        when: Condition | bool | None = None,
    ) -> bool:
        """Delete; ``True`` if the item existed. ``when``: as on :meth:`put`."""
        schema = self.schema
        key = schema.key(partition, sort)
        if expect_version is not None:
            schema.check_expect_version(expect_version)
        if when is not None:
            when = check_condition(schema, when, "when")
            self._require_expressions("delete(when=...)")
        if not self._ready:
            await self._ensure()
        cond = {} if when is None else {"when": when}  # only an expressive store takes when=
        call = self.store.delete(schema, key, expect_version=expect_version, **cond)
        existed: bool = await self.run_write(self.begin_write([key]), call, lambda _: [None])
        return existed

    async def delete_many(self, keys: Iterable[Any]) -> None:
        schema = self.schema
        flat = list(dict.fromkeys(schema.key_arg(k) for k in _iterable(keys, "delete_many", schema)))
        if not flat:
            return
        if not self._ready:
            await self._ensure()
        await self.run_write(self.begin_write(flat), self.store.delete_many(schema, flat), lambda _: [None] * len(flat))


def _iterable(values: Any, what: str, schema: Schema[Any]) -> Iterable[Any]:
    """``values`` if it can be iterated (a ``str`` or ``bytes`` is one key, not a batch), else a ValidationError."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ValidationError(
            f"{what} takes an iterable of keys or items, got {type(values).__name__}", entity=schema.name
        )
    return values


def _partition_shape(name: str, index: str | None, pfields: Sequence[str]) -> tuple[str, str, str]:
    """What a query's partition key is, for its error messages: the table or index, the shape, an example."""
    of = f"index {index!r} of {name}" if index is not None else name
    if len(pfields) == 1:
        return of, f"the value of {pfields[0]!r}", f"query(<{pfields[0]}>)"
    return (
        of, f"a tuple of the values of {', '.join(repr(f) for f in pfields)}",
        f"query(({', '.join(f'<{f}>' for f in pfields)}))",
    )
