"""``connect()`` and ``Database``: the owner of one store, its cache tiers and the repositories.

``Database`` is the :class:`~tierstore.repository.RepositoryContext` its repositories and transactions are
built on; they see only that narrow surface (store, tiered cache, query cache, ``ensure_schema``,
``repository``), never the rest of the database.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload
from urllib.parse import unquote_plus

from tierstore.collection import Collection
from tierstore.config import BackendConfig, store_config, tier_config
from tierstore.errors import ConfigError, Mismatch, SchemaMismatch, TierstoreError
from tierstore.model.entity import Entity
from tierstore.model.schema import Schema, schema_of
from tierstore.policies.base import QueryCache
from tierstore.querycache import QueryCacheConfig, build_query_cache, query_cache_stats, reset_query_cache_stats
from tierstore.repository import Repository
from tierstore.session import Session
from tierstore.stores.base import SchemaMode, SchemaVerifier, Store, check_schema_mode
from tierstore.telemetry import resolve as resolve_telemetry
from tierstore.tiers.base import CacheTier
from tierstore.tiers.policy import CachePolicy, check_policies, entity_policy
from tierstore.tiers.tiered import TieredCache
from tierstore.transaction import Transaction

__all__ = ["DEFAULT_CACHE", "DEFAULT_STORE", "Database", "connect", "default_schema_mode", "split_schema_param"]

if TYPE_CHECKING:
    from tierstore.health import Health
    from tierstore.telemetry import Telemetry

log = logging.getLogger("tierstore")
T = TypeVar("T", bound=Entity)
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")

DEFAULT_STORE = "sqlite+aiosqlite:///tierstore.db"
DEFAULT_CACHE = ("memory://",)

StoreSpec = str | BackendConfig | Store
TierSpec = str | BackendConfig | CacheTier


def connect(
    store: StoreSpec | None = None,
    cache: Sequence[TierSpec] | TierSpec | None = None,
    *,
    policy: CachePolicy | None = None,
    policies: Mapping[type[Entity], CachePolicy | bool] | None = None,
    query_cache: QueryCache | QueryCacheConfig | str | bool | None = None,
    create_tables: bool | None = None,
    telemetry: Telemetry | bool | None = None,
    strict: bool = False,
    schema: SchemaMode | None = None,
) -> Database:
    """A database handle; use it as ``async with connect(...) as db``.

    ``store``: a URL (``postgresql+asyncpg://…``), a config object, or a ready ``Store``. ``cache``: tiers
    nearest first, each a URL (``memory://``, ``redis://…``), a config object or a ready ``CacheTier``.
    With no arguments: the embedded default, a SQLite file ``tierstore.db`` plus an in-process tier.
    Objects you pass ready-made are not closed by tierstore; what it builds from URLs and configs, it closes.
    ``policy``: the database's :class:`CachePolicy`; ``policies``: entity classes to a ``CachePolicy`` of their
    own or ``False`` (never cached), overriding the classes' ``cache=`` keyword (see docs/guide.md).
    ``query_cache``: off, ``True``, a ``query://?ttl=…`` URL, a ``QueryCacheConfig`` or a ready ``QueryCache``
    (see :mod:`tierstore.querycache`). ``strict``: ``open()`` fails with ``StoreError``/``TierError`` when the
    store, a tier or the L1 invalidation channel does not answer, instead of failing open (see
    :mod:`tierstore.health`). ``schema``: what happens to an entity's table before its first I/O —
    ``"create"`` creates what is missing (the default for the embedded stores: memory, SQLite),
    ``"verify"`` checks that the existing table fits the entity and raises ``SchemaMismatch`` listing every
    difference, creating and altering nothing (the default for server stores: PostgreSQL, MySQL/MariaDB,
    DynamoDB), ``"off"`` does neither; a store URL may carry it as ``?schema=…``. ``create_tables=False`` is
    the older spelling of ``schema="off"``.
    ``telemetry``: OpenTelemetry spans and metrics (the ``otel`` extra) — ``None`` turns them on when the
    service has set a global tracer or meter provider, ``True``/``False`` force it, or a
    ``tierstore.telemetry.Telemetry`` names the providers (docs/observability.md).
    """
    checked_policies = check_policies(policies)
    if policy is not None and not isinstance(policy, CachePolicy):
        raise ConfigError(f"policy= takes a CachePolicy, got {policy!r}")
    if store is None and cache is None:
        cache = DEFAULT_CACHE
    if isinstance(store, str):
        store, url_mode = split_schema_param(store)
        if url_mode is not None:
            if schema is not None and schema != url_mode:
                raise ConfigError(f"schema={schema!r} and the store URL's schema={url_mode!r} disagree")
            schema = url_mode
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
        built_store, tiers, policy=policy, policies=checked_policies, query_cache=query_cache,
        create_tables=create_tables, owned=owned,
        strict=strict, telemetry=telemetry, schema=schema,
    )


def split_schema_param(url: str) -> tuple[str, SchemaMode | None]:
    """``url`` without its ``schema=`` parameter (which every store URL may carry), and the mode it names.
    The rest of the URL is kept as written."""
    base, sep, query = url.partition("?")
    if not sep:
        return url, None
    mode: SchemaMode | None = None
    kept = []
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if unquote_plus(name) == "schema":
            mode = check_schema_mode(unquote_plus(value))
        else:
            kept.append(part)
    return (base + "?" + "&".join(kept) if kept else base), mode


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
        policies: Mapping[type[Entity], CachePolicy | bool] | None = None,
        query_cache: QueryCache | QueryCacheConfig | str | bool | None = None,
        create_tables: bool | None = None,
        owned: Sequence[Any] | None = None,
        strict: bool = False,
        telemetry: Telemetry | bool | None = None,
        schema: SchemaMode | None = None,
    ) -> None:
        self._policies = check_policies(policies)
        self.schema_mode = _schema_mode(store, schema, create_tables)
        """``create``, ``verify`` or ``off``: see :func:`connect`."""
        self.store = store
        # Telemetry swaps classes, it adds no check to the plain ones: off, nothing on any path changes.
        self.telemetry = resolve_telemetry(telemetry)
        self._repository_class: type[Repository[Any]] = Repository
        if self.telemetry is None:
            self.cache = TieredCache(tiers, policy)
        else:
            self.cache = self.telemetry.tiered_cache(tiers, policy)
            self._repository_class = self.telemetry.repository_class
            self.telemetry.watch(self)
        self.query_cache: QueryCache | None = build_query_cache(query_cache, self.cache.tiers)
        self.strict = strict
        self._owned = list(owned) if owned is not None else []
        self._repos: dict[type[Any], Repository[Any]] = {}
        self._ensured: set[Schema[Any]] = set()
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
            poll = self.cache.policy.invalidation_log
            if poll is not None and any(not t.local for t in self.cache.tiers):
                from tierstore.invalidation_log import InvalidationLog

                self.cache.invalidation_log = InvalidationLog(self.store, self.cache, poll=poll,
                                                              create=self.schema_mode == "create")
                await self.cache.invalidation_log.start()
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
        if self.telemetry is not None:
            self.telemetry.unwatch(self)
        if self.cache.invalidation_log is not None:
            await self.cache.invalidation_log.aclose()
        try:
            await self.cache.aclose()  # background work of the tiered path (the coherence listener)
        except Exception as exc:
            log.warning("closing the tiered cache failed: %r", exc)
        for obj in reversed(self._owned):
            try:
                await obj.aclose()
            except Exception as exc:
                log.warning("closing %s failed: %r", type(obj).__name__, exc)

    def entity_policy(self, entity: type[Entity]) -> CachePolicy | None:
        """The cache policy of ``entity`` here (``None``: never cached): its entry in ``policies=``, else its
        ``cache=`` class keyword, else the database's policy. ``ConfigError`` for a bad ``cache=`` keyword."""
        return entity_policy(self.cache.policy, entity, self._policies)

    def repository(self, entity: type[T]) -> Repository[T]:
        """The typed repository of ``entity`` (one per database and class)."""
        if self._closed:
            raise TierstoreError("this Database was closed")
        repo = self._repos.get(entity)
        if repo is None:
            repo = self._repos[entity] = self._repository_class(self, entity)
        return repo

    @overload
    def collection(self, a: type[A], b: type[B], /) -> Collection[A | B]: ...
    @overload
    def collection(self, a: type[A], b: type[B], c: type[C], /) -> Collection[A | B | C]: ...
    @overload
    def collection(self, a: type[A], b: type[B], c: type[C], d: type[D], /) -> Collection[A | B | C | D]: ...
    @overload
    def collection(self, *entities: type[Any]) -> Collection[Any]: ...

    def collection(self, *entities: type[Any]) -> Collection[Any]:
        """Several entity types sharing a table and partition (key templates), read in one query:
        ``await db.collection(CustomerProfile, Order).query("c1")`` is a ``Page[CustomerProfile | Order]``
        (see :mod:`tierstore.collection`). ``ConfigError`` when they do not share a table and partition."""
        if self._closed:
            raise TierstoreError("this Database was closed")
        return Collection(self, entities)

    async def invalidate(self, entity: type[Entity], *keys: Any) -> bool:
        """Make every cache tier and the query cache forget ``keys`` of ``entity``, as a write through
        tierstore would — for code paths that changed the store behind tierstore's back (a migration script,
        another service, a raw SQL statement). Call it after that write committed.

        ``keys`` are given as to ``get_many``: partitions, or ``(partition, sort)`` pairs; they are validated
        before any I/O (``ValidationError``). Returns ``True`` when every tier took the invalidation, ``False``
        when a tier could not and it is kept for replay (this process does not read that tier until then)."""
        schema = schema_of(entity)
        flat = list(dict.fromkeys(schema.key_arg(k) for k in keys))
        if flat:
            await self.repository(entity).invalidate_keys(flat)
        return await self.undelivered_invalidations() == 0

    async def undelivered_invalidations(self) -> int:
        """Invalidations kept for replay because a tier (item tiers or the query cache) could not take them."""
        n = self.cache.undelivered()
        check = getattr(self.query_cache, "undelivered", None)
        if check is not None:
            n += int(await check())
        return n

    async def ensure_schema(self, schema: Schema[Any]) -> None:
        """Open the database and, once per entity, apply the schema mode to its table: create it
        (``create``), check it (``verify``: ``SchemaMismatch`` when it does not fit) or nothing (``off``).
        Repositories and transactions call it before their first I/O on an entity."""
        if not self._opened:
            await self.open()
        if schema in self._ensured or self.schema_mode == "off":
            return
        if self.schema_mode == "create":
            await self.store.ensure_schema(schema)
        else:
            mismatches = await self._mismatches([schema])
            if mismatches:
                raise SchemaMismatch(mismatches, entity=schema.name, backend=self.store.name)
        self._ensured.add(schema)

    async def verify(self, *entities: type[Entity]) -> None:
        """Check now, whatever the schema mode, that the existing tables fit ``entities``; raise one
        ``SchemaMismatch`` listing every difference (with the statement that fixes each). Creates and alters
        nothing. A store that cannot verify its tables raises ``ConfigError``."""
        await self.open()
        schemas = [schema_of(e) for e in entities]
        mismatches = await self._mismatches(schemas)
        if mismatches:
            raise SchemaMismatch(mismatches, backend=self.store.name)
        if self.schema_mode == "verify":
            self._ensured.update(schemas)

    async def _mismatches(self, schemas: Sequence[Schema[Any]]) -> list[Mismatch]:
        if not isinstance(self.store, SchemaVerifier):
            raise ConfigError(f"{self.store.name} cannot verify tables; use schema='create' or schema='off'")
        out: list[Mismatch] = []
        for schema in schemas:
            out.extend(await self.store.verify_schema(schema))
        return out

    async def create_tables(self, *entities: type[Entity]) -> None:
        """Create the tables and indexes of ``entities`` where missing, whatever the schema mode (an explicit
        request: a deployment step, a test)."""
        for e in entities:
            schema = schema_of(e)
            await self.open()
            await self.store.ensure_schema(schema)
            if self.schema_mode == "create":
                self._ensured.add(schema)

    def session(self) -> Session:
        """A unit of work with an identity map: repeated loads in it are not fetched again."""
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


def default_schema_mode(store: Store) -> SchemaMode:
    """``create`` for an embedded store (memory, SQLite) and for stores that cannot verify their tables,
    ``verify`` for a server store."""
    if isinstance(store, SchemaVerifier) and not store.embedded:
        return "verify"
    return "create"


def _schema_mode(store: Store, schema: Any, create_tables: bool | None) -> SchemaMode:
    if create_tables is not None and not isinstance(create_tables, bool):
        raise ConfigError(f"create_tables must be True or False, got {create_tables!r}")
    if schema is None:
        if create_tables is False:
            return "off"
        return "create" if create_tables else default_schema_mode(store)
    mode = check_schema_mode(schema)
    if create_tables is not None and create_tables != (mode == "create"):
        raise ConfigError(f"create_tables={create_tables} and schema={mode!r} disagree; give schema= alone")
    if mode == "verify" and not isinstance(store, SchemaVerifier):
        raise ConfigError(f"{store.name} cannot verify tables; use schema='create' or schema='off'")
    return mode
