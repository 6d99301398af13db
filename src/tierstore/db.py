"""``connect()`` and ``Database``: the owner of one store, its cache tiers and the repositories."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from tierstore.config import BackendConfig, store_config, tier_config
from tierstore.errors import ConfigError, TierstoreError, ValidationError
from tierstore.model.entity import Entity
from tierstore.model.schema import Key, Schema, schema_of
from tierstore.policies.base import QueryCache
from tierstore.querycache import QueryCacheConfig, build_query_cache, query_cache_stats, reset_query_cache_stats
from tierstore.repository import Repository, _check_expect
from tierstore.stores.base import Delete, Put, Store, WriteOp
from tierstore.tiers.base import CacheTier
from tierstore.tiers.tiered import CachePolicy, TieredCache

__all__ = ["DEFAULT_CACHE", "DEFAULT_STORE", "Database", "Transaction", "connect"]

if TYPE_CHECKING:
    from tierstore.health import Health
    from tierstore.session import Session

log = logging.getLogger("tierstore")
T = TypeVar("T", bound=Entity)

DEFAULT_STORE = "sqlite+aiosqlite:///tierstore.db"
DEFAULT_CACHE = ("memory://",)

StoreSpec = str | BackendConfig | Store
TierSpec = str | BackendConfig | CacheTier


def connect(
    store: StoreSpec | None = None,
    cache: Sequence[TierSpec] | TierSpec | None = None,
    *,
    policy: CachePolicy | None = None,
    query_cache: QueryCache | QueryCacheConfig | str | bool | None = None,
    create_tables: bool = True,
    strict: bool = False,
) -> Database:
    """A database handle; use it as ``async with connect(...) as db``.

    ``store``: a URL (``postgresql+asyncpg://…``), a config object, or a ready ``Store``. ``cache``: tiers
    nearest first, each a URL (``memory://``, ``redis://…``), a config object or a ready ``CacheTier``.
    With no arguments: the embedded default, a SQLite file ``tierstore.db`` plus an in-process tier.
    Objects you pass ready-made are not closed by tierstore; what it builds from URLs and configs, it closes.
    ``query_cache``: off, ``True``, a ``query://?ttl=…`` URL, a ``QueryCacheConfig`` or a ready ``QueryCache``
    (see :mod:`tierstore.querycache`). ``strict``: ``open()`` fails with ``StoreError``/``TierError`` when the
    store, a tier or the L1 invalidation channel does not answer, instead of failing open (see
    :mod:`tierstore.health`). ``create_tables``: create missing tables on first use of an entity.
    """
    if store is None and cache is None:
        cache = DEFAULT_CACHE
    if cache is None:
        cache = ()
    elif isinstance(cache, str | BackendConfig | CacheTier):
        cache = (cache,)
    owned: list[Any] = []
    built_store = _build(store if store is not None else DEFAULT_STORE, store_config, owned)
    tiers = [_build(spec, tier_config, owned) for spec in cache]
    for t in tiers:
        if not isinstance(t, CacheTier):
            raise ConfigError(f"{t!r} is not a cache tier")
    if not isinstance(built_store, Store):
        raise ConfigError(f"{built_store!r} is not a store")
    return Database(
        built_store, tiers, policy=policy, query_cache=query_cache, create_tables=create_tables, owned=owned,
        strict=strict,
    )


def _build(spec: Any, parse: Any, owned: list[Any]) -> Any:
    if isinstance(spec, str):
        spec = parse(spec)
    if isinstance(spec, Store | CacheTier):
        return spec
    if isinstance(spec, BackendConfig):
        obj = spec.build()
        owned.append(obj)
        return obj
    raise ConfigError(f"expected a URL, a config object or a backend, got {type(spec).__name__}")


class Database:
    """One store of record, its tiers, and a repository per entity. An async context manager."""

    def __init__(
        self,
        store: Store,
        tiers: Sequence[CacheTier] = (),
        *,
        policy: CachePolicy | None = None,
        query_cache: QueryCache | QueryCacheConfig | str | bool | None = None,
        create_tables: bool = True,
        owned: Sequence[Any] | None = None,
        strict: bool = False,
    ) -> None:
        self.store = store
        self.cache = TieredCache(tiers, policy)
        self.query_cache: QueryCache | None = build_query_cache(query_cache, self.cache.tiers)
        self.strict = strict
        self._auto_create = create_tables
        self._owned = list(owned) if owned is not None else []
        self._repos: dict[type[Any], Repository[Any]] = {}
        self._ensured: set[str] = set()
        self._opened = False
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._opened else "new"
        return f"Database(store={self.store!r}, cache={self.cache!r}, {state})"

    async def open(self) -> Database:
        if self._closed:
            raise TierstoreError("this Database was closed; create a new one with connect()")
        if not self._opened:
            await self.store.open()
            for tier in self.cache.tiers:
                await tier.open()
            self._opened = True
            if self.strict:
                from tierstore.health import require_reachable

                try:
                    await require_reachable(self)
                except BaseException:
                    await self.aclose()
                    raise
        return self

    async def health(self, within: float = 2.0) -> Health:
        """Probe the store and every tier now (see :mod:`tierstore.health`)."""
        from tierstore.health import check

        await self.open()
        return await check(self, within)

    async def __aenter__(self) -> Database:
        return await self.open()

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close what this database built, nearest tier first, store last. Idempotent; never raises."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.cache.aclose()  # background work of the tiered path (the coherence listener)
        except Exception as exc:
            log.warning("closing the tiered cache failed: %r", exc)
        for obj in reversed(self._owned):
            try:
                await obj.aclose()
            except Exception as exc:
                log.warning("closing %s failed: %r", type(obj).__name__, exc)

    def repository(self, entity: type[T]) -> Repository[T]:
        """The typed repository of ``entity`` (one per database and class)."""
        if self._closed:
            raise TierstoreError("this Database was closed")
        repo = self._repos.get(entity)
        if repo is None:
            repo = self._repos[entity] = Repository(self, entity)
        return repo

    async def _ensure_schema(self, schema: Schema[Any]) -> None:
        if not self._opened:
            await self.open()
        if self._auto_create and schema.table not in self._ensured:
            await self.store.ensure_schema(schema)
            self._ensured.add(schema.table)

    async def create_tables(self, *entities: type[Entity]) -> None:
        """Create the tables and indexes of ``entities`` where missing."""
        for e in entities:
            schema = schema_of(e)
            await self.open()
            await self.store.ensure_schema(schema)
            self._ensured.add(schema.table)

    def session(self) -> Session:
        """A unit of work with an identity map: repeated loads in it are not fetched again."""
        from tierstore.session import Session

        return Session(self)

    def transaction(self) -> Transaction:
        """``async with db.transaction() as tx: tx.put(a); tx.delete(B, key)`` — all or nothing."""
        return Transaction(self)

    def stats(self) -> dict[str, Any]:
        """Counters of the store, of each tier and of the query cache (``{"store": {...}, "tiers": {name: {...}},
        "query_cache": {...}}``; the last only when one is configured)."""
        out: dict[str, Any] = {
            "store": {"name": self.store.name, **self.store.stats.as_dict()},
            "tiers": {t.name: t.stats.as_dict() for t in self.cache.tiers},
        }
        qc = query_cache_stats(self.query_cache)
        if qc is not None:
            out["query_cache"] = qc
        return out

    def reset_stats(self) -> None:
        self.store.stats.reset()
        for t in self.cache.tiers:
            t.stats.reset()
        reset_query_cache_stats(self.query_cache)


class Transaction:
    """Writes collected and committed atomically when the ``async with`` block exits without error."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.ops: list[WriteOp] = []
        self._keys: set[tuple[str, Key]] = set()
        self.results: list[Any] = []

    def _claim(self, schema: Schema[Any], key: Key) -> None:
        if (schema.table, key) in self._keys:
            raise ValidationError("a transaction may touch an item once", entity=schema.name, key=key)
        self._keys.add((schema.table, key))

    def put(self, item: Entity, *, if_not_exists: bool = False, expect_version: int | None = None) -> None:
        schema = schema_of(type(item))
        schema.validate_item(item)
        if expect_version is not None:
            _check_expect(schema, expect_version)
        self._claim(schema, schema.key_of(item))
        self.ops.append(Put(item, if_not_exists, expect_version))

    def delete(
        self, entity: type[Entity], partition: Any, sort: Any = None, *, expect_version: int | None = None
    ) -> None:
        schema = schema_of(entity)
        key = schema.key(partition, sort)
        if expect_version is not None:
            _check_expect(schema, expect_version)
        self._claim(schema, key)
        self.ops.append(Delete(entity, key, expect_version))

    async def commit(self) -> list[Any]:
        if not self.ops:
            return []
        db = self.db
        schemas = {schema_of(type(op.item) if isinstance(op, Put) else op.entity) for op in self.ops}
        for schema in schemas:
            await db._ensure_schema(schema)
        self.results = await db.store.transact(self.ops)
        for op, stored in zip(self.ops, self.results, strict=True):
            if isinstance(op, Put):
                repo = db.repository(type(op.item))
                await repo._after_write([repo.schema.key_of(op.item)], [stored])
            else:
                repo = db.repository(op.entity)
                await repo._after_write([op.key], [None])
        return self.results

    async def __aenter__(self) -> Transaction:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is None:
            await self.commit()
