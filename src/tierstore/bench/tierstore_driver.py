"""The drivers of the tierstore systems: a repository on ``tierstore.connect()``, and the DAX-style configuration.

:class:`TierstoreDriver` hands the harness the repository's own bound methods (``repo.get``, ``repo.get_many``,
``repo.put``), so a row times tierstore and not a wrapper frame; only the page query and the join go through a
lambda, which spells the ``limit=`` keyword the scenario's positional call cannot. Round trips come from the
store's and the remote tiers' own counters (``stats.round_trips``), L1 hits and misses from the in-process
tier's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tierstore.bench.api import (
    CACHE,
    CONCURRENT,
    GET,
    GET_MANY,
    JOIN,
    JOIN_MANY,
    L1,
    PUT,
    QUERY,
    UPDATE,
    Driver,
    GetFn,
    GetManyFn,
    JoinFn,
    JoinManyFn,
    PageFn,
    PutFn,
    UpdateFn,
    differences,
)
from tierstore.bench.data import BenchAccount, BenchItem, BenchOrder, BenchVisit, Dataset

__all__ = ["LOAD_CHUNK", "DaxStyleDriver", "TierstoreDriver"]

LOAD_CHUNK = 500
"""Items per ``put_many`` while loading the data set."""


class TierstoreDriver(Driver):
    """A ``Repository[BenchItem]`` (and ``Repository[BenchOrder]`` for joins) on
    ``tierstore.connect(store=…, cache=[…])``."""

    def __init__(self, store_url: str, tier_urls: Sequence[str]) -> None:
        self.store_url = store_url
        self.tier_urls = tuple(tier_urls)
        caps = {GET, GET_MANY, PUT, QUERY, CONCURRENT, JOIN, JOIN_MANY, UPDATE}
        if self.tier_urls:
            caps.add(CACHE)
            if self.tier_urls[0].startswith("memory://"):
                caps.add(L1)
        self.caps = frozenset(caps)
        self.db: Any = None
        self.repo: Any = None
        self.orders: Any = None
        self.accounts: Any = None

    def connect(self) -> Any:
        """The (unopened) database; subclasses build other configurations."""
        import tierstore

        return tierstore.connect(self.store_url, list(self.tier_urls))

    async def open(self, data: Dataset) -> None:
        import tierstore.backends

        self.db = db = self.connect()
        await db.open()
        await db.create_tables(BenchItem, BenchOrder, BenchAccount, BenchVisit)
        repos = []
        loads: tuple[tuple[type[Any], list[Any]], ...] = (
            (BenchItem, data.items), (BenchOrder, data.orders), (BenchAccount, data.accounts),
            (BenchVisit, data.visits),
        )
        for entity, rows in loads:
            await db.store.truncate(tierstore.backends.schema_of(entity))
            repo = db.repository(entity)
            for start in range(0, len(rows), LOAD_CHUNK):
                await repo.put_many(rows[start : start + LOAD_CHUNK])
            repos.append(repo)
        for tier in db.cache.tiers:
            await tier.clear()
        db.reset_stats()
        self.repo, self.orders, self.accounts = repos[:3]

    async def aclose(self) -> None:
        if self.db is not None:
            await self.db.aclose()

    async def verify(self, data: Dataset) -> str | None:
        # The store itself, not the tiers: a cache can still answer what a reloaded table lost.
        db, schema = self.db, self.repo.schema
        got = await db.store.get_many(schema, [schema.key(pk, sk) for pk, sk in data.many])
        reason = differences(data, data.many, got)
        if reason is None and data.orders:
            orders = [o for o in data.orders if o.pk == data.orders[0].pk]
            oschema = self.orders.schema
            found = await db.store.get_many(oschema, [oschema.key_of(o) for o in orders])
            if found != orders:
                reason = f"the orders of {orders[0].pk} differ from the data set"
        return reason

    def counters(self) -> dict[str, int]:
        db = self.db
        out = {
            "store": db.store.stats.round_trips,
            "tier": sum(t.stats.round_trips for t in db.cache.tiers if not t.local),
        }
        l1 = db.cache.l1
        if l1 is not None:
            out["l1_hits"] = l1.stats.hits
            out["l1_misses"] = l1.stats.misses
        return out

    def getter(self) -> GetFn:
        return self.repo.get  # type: ignore[no-any-return]

    def batch_getter(self) -> GetManyFn:
        return self.repo.get_many  # type: ignore[no-any-return]

    def putter(self) -> PutFn:
        return self.repo.put  # type: ignore[no-any-return]

    def updater(self) -> UpdateFn:
        update = self.repo.update
        return lambda pk, sk, delta: update(pk, sk, add={"amount_cents": delta})

    def pager(self) -> PageFn:
        query = self.repo.query
        return lambda pk, limit: query(pk, limit=limit)

    def joiner(self) -> JoinFn:
        query, customer = self.orders.query, BenchOrder.customer
        return lambda pk, limit: query(pk, limit=limit).join(customer)

    def many_joiner(self) -> JoinManyFn:
        load, visits = self.accounts.load, BenchAccount.visits
        return lambda accounts: load(accounts, visits)

    async def clear_cache(self) -> None:
        for tier in self.db.cache.tiers:
            await tier.clear()

    async def invalidate(self, pk: str, sk: str) -> None:
        repo = self.repo
        ck = repo.schema.cache_key(repo.schema.key(pk, sk))
        repo.forget_inflight([ck])
        await self.db.cache.after_write([ck])


class DaxStyleDriver(TierstoreDriver):
    """DynamoDB with :class:`~tierstore.policies.dax.DaxStylePolicy` on ``[MemoryTier, Redis tier]``: the same
    tier objects hold the write-through item cache and the query cache."""

    def __init__(self, store_url: str, redis_url: str, l1_items: int) -> None:
        super().__init__(store_url, (f"memory://?max_items={l1_items}", redis_url))
        self.redis_url = redis_url
        self.l1_items = l1_items
        self.policy: Any = None

    def connect(self) -> Any:
        import tierstore
        from tierstore.config import tier_config
        from tierstore.policies.dax import DaxStylePolicy
        from tierstore.tiers.memory import MemoryTier

        tiers = [MemoryTier(max_items=self.l1_items), tier_config(self.redis_url).build()]
        self.policy = dax = DaxStylePolicy(tiers)
        return tierstore.connect(self.store_url, tiers, policy=dax.item_policy, query_cache=dax)

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            if self.policy is not None:  # tiers handed to connect() ready-made are the policy's to close
                await self.policy.aclose()

    def counters(self) -> dict[str, int]:
        out = super().counters()
        if self.policy is not None:
            out["query_cache_hits"] = self.policy.stats.hits
            out["query_cache_misses"] = self.policy.stats.misses
        return out
