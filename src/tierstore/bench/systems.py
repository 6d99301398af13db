"""The built-in systems: tierstore configurations built through ``tierstore.connect()``, raw floors, peers.

Names follow DESIGN §10: ``tierstore:<store>[+<tier>…]`` with the tiers in ``cache=[…]`` order (nearest
first, as in ``tierstore:dynamodb+memory+redis``), ``raw:<what>``, ``peer:<library>``. A system whose backend
module is missing (``ConfigError`` from the URL registry) or whose server does not accept a TCP connection is
skipped with the reason, so the Redis, Memcached and DynamoDB rows light up when those modules land.

Server URLs come from ``TIERSTORE_PG_URL``, ``TIERSTORE_MYSQL_URL``, ``TIERSTORE_REDIS_URL``,
``TIERSTORE_REDIS_CLUSTER_URL``, ``TIERSTORE_MEMCACHED_URL`` and ``TIERSTORE_DYNAMODB_URL`` (defaults as in
``tests/conftest.py`` and ``scripts/services``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tierstore.bench.data import BenchItem, Dataset
from tierstore.bench.harness import (
    CACHE,
    CONCURRENT,
    GET,
    GET_MANY,
    L1,
    PUT,
    QUERY,
    Driver,
    GetFn,
    GetManyFn,
    PageFn,
    PutFn,
    RunContext,
    SystemSpec,
)

__all__ = ["DEFAULT_URLS", "STORE_FLOORS", "TIER_FLOORS", "TierstoreDriver", "builtin_systems", "server_urls"]

DEFAULT_URLS = {
    "postgres": ("TIERSTORE_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"),
    "mariadb": ("TIERSTORE_MYSQL_URL", "mysql+aiomysql://root@127.0.0.1:3306/test"),
    "redis": ("TIERSTORE_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "redis-cluster": (
        "TIERSTORE_REDIS_CLUSTER_URL",
        "redis+cluster://127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003",
    ),
    "memcached": ("TIERSTORE_MEMCACHED_URL", "memcached://127.0.0.1:11211,127.0.0.1:11212"),
    "dynamodb": ("TIERSTORE_DYNAMODB_URL", "dynamodb://us-east-1?endpoint_url=http://127.0.0.1:8000"),
}

# Floors per store (scenarios a cache does not answer) and per nearest tier (cached scenarios); primary first.
STORE_FLOORS: dict[str, dict[str, tuple[str, ...]]] = {
    "memory": {"*": ("raw:dict-decode",)},
    "sqlite": {"*": ("raw:sqlalchemy-core-sqlite", "raw:aiosqlite", "raw:sqlite3")},
    "postgres": {"*": ("raw:sqlalchemy-core-postgres", "raw:asyncpg")},
    "mariadb": {"*": ("raw:sqlalchemy-core-mariadb", "raw:aiomysql")},
    "dynamodb": {"*": ("raw:aioboto3",)},
}
_REDIS_FLOORS = {
    "get": ("raw:redis-get-decode", "peer:aiocache", "peer:cashews"),
    "get_many_100": ("raw:redis-mget-decode", "peer:aiocache", "peer:cashews"),
    "*": ("raw:redis-get-decode",),
}
TIER_FLOORS: dict[str, dict[str, tuple[str, ...]]] = {
    "memory": {"get": ("raw:dict-decode", "peer:cashews-client-side"), "*": ("raw:dict-decode",)},
    "redis": _REDIS_FLOORS,
    "redis-cluster": _REDIS_FLOORS,
    "memcached": {"*": ("raw:aiomcache-get-decode",)},
}

# (store, tiers nearest first, in --quick). Issue 2: memory/sqlite/postgres/mariadb × (none, memory);
# the rest light up when their backend modules land.
TIERSTORE_SYSTEMS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("memory", (), True),
    ("memory", ("memory",), True),
    ("sqlite", (), True),
    ("sqlite", ("memory",), True),
    ("postgres", (), True),
    ("postgres", ("memory",), True),
    ("mariadb", (), True),
    ("mariadb", ("memory",), True),
    ("memory", ("redis",), False),
    ("postgres", ("redis",), True),
    ("postgres", ("memory", "redis"), True),
    ("postgres", ("redis-cluster",), False),
    ("postgres", ("memcached",), True),
    ("postgres", ("memory", "memcached"), False),
    ("dynamodb", (), True),
    ("dynamodb", ("memory",), True),
    ("dynamodb", ("redis",), False),
    ("dynamodb", ("memory", "redis"), False),
)

LOAD_CHUNK = 500


def server_urls(env: Mapping[str, str]) -> dict[str, str]:
    """Backend name → URL, from the environment or the defaults."""
    return {name: env.get(var) or default for name, (var, default) in DEFAULT_URLS.items()}


class TierstoreDriver(Driver):
    """A ``Repository[BenchItem]`` on ``tierstore.connect(store=…, cache=[…])``."""

    def __init__(self, store_url: str, tier_urls: Sequence[str]) -> None:
        self.store_url = store_url
        self.tier_urls = tuple(tier_urls)
        caps = {GET, GET_MANY, PUT, QUERY, CONCURRENT}
        if self.tier_urls:
            caps.add(CACHE)
            if self.tier_urls[0].startswith("memory://"):
                caps.add(L1)
        self.caps = frozenset(caps)
        self.db: Any = None
        self.repo: Any = None

    async def open(self, data: Dataset) -> None:
        import tierstore

        self.db = db = tierstore.connect(self.store_url, list(self.tier_urls))
        await db.open()
        await db.create_tables(BenchItem)
        await db.store.truncate(tierstore.schema_of(BenchItem))
        repo = db.repository(BenchItem)
        for start in range(0, len(data.items), LOAD_CHUNK):
            await repo.put_many(data.items[start : start + LOAD_CHUNK])
        for tier in db.cache.tiers:
            await tier.clear()
        db.reset_stats()
        self.repo = repo

    async def aclose(self) -> None:
        if self.db is not None:
            await self.db.aclose()

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

    def pager(self) -> PageFn:
        query = self.repo.query
        return lambda pk, limit: query(pk, limit=limit)

    async def clear_cache(self) -> None:
        for tier in self.db.cache.tiers:
            await tier.clear()

    async def invalidate(self, pk: str, sk: str) -> None:
        repo = self.repo
        ck = repo.schema.cache_key(repo.schema.key(pk, sk))
        repo.forget_inflight([ck])
        await self.db.cache.after_write([ck])


def _store_url(store: str, name: str, ctx: RunContext, urls: Mapping[str, str]) -> str:
    if store == "memory":
        return "memory://"
    if store == "sqlite":
        return "sqlite+aiosqlite:///" + ctx.path(name.replace(":", "-").replace("+", "-") + ".db")
    return urls[store]


def _tier_url(tier: str, ctx: RunContext, urls: Mapping[str, str]) -> str:
    if tier == "memory":
        return f"memory://?max_items={ctx.data.l1_capacity}"
    url = urls[tier]
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}prefix=tsbench{ctx.run_id}"


def _tierstore_system(store: str, tiers: tuple[str, ...], quick: bool, urls: Mapping[str, str]) -> SystemSpec:
    name = "tierstore:" + "+".join((store, *tiers))

    def urls_for(ctx: RunContext) -> tuple[str, list[str]]:
        return _store_url(store, name, ctx, urls), [_tier_url(t, ctx, urls) for t in tiers]

    def probe(ctx: RunContext) -> str | None:
        from tierstore.config import store_config, tier_config
        from tierstore.errors import ConfigError

        store_url, tier_urls = urls_for(ctx)
        try:
            store_config(store_url)
            for url in tier_urls:
                tier_config(url)
        except ConfigError as exc:
            return str(exc)
        return None

    def make(ctx: RunContext) -> Driver:
        store_url, tier_urls = urls_for(ctx)
        return TierstoreDriver(store_url, tier_urls)

    servers = tuple(urls[b] for b in (store, *tiers) if b in urls)
    return SystemSpec(
        name=name,
        make=make,
        description=f"tierstore.connect(store={store}, cache={list(tiers)})",
        servers=servers,
        probe=probe,
        store_floors=STORE_FLOORS.get(store, {}),
        cache_floors=TIER_FLOORS.get(tiers[0], {}) if tiers else {},
        quick=quick,
    )


def builtin_systems(env: Mapping[str, str]) -> list[SystemSpec]:
    """Every built-in system, tierstore first, then floors and peers (the table's order)."""
    from tierstore.bench import raw_cache, raw_dynamo, raw_sql

    urls = server_urls(env)
    specs = [_tierstore_system(store, tiers, quick, urls) for store, tiers, quick in TIERSTORE_SYSTEMS]
    pg, my, redis, mc, ddb = urls["postgres"], urls["mariadb"], urls["redis"], urls["memcached"], urls["dynamodb"]
    specs += [
        SystemSpec(
            name="raw:dict-decode",
            make=lambda ctx: raw_cache.DictDecodeDriver(),
            description="dict of msgpack payloads + msgspec decode",
        ),
        SystemSpec(
            name="raw:sqlite3",
            make=lambda ctx: raw_sql.Sqlite3Driver(ctx.path("raw-sqlite3.db")),
            description="blocking stdlib sqlite3 (reference: the query without a thread hop)",
        ),
        SystemSpec(
            name="raw:aiosqlite",
            make=lambda ctx: raw_sql.AiosqliteDriver(ctx.path("raw-aiosqlite.db")),
            modules=("aiosqlite",),
            description="aiosqlite execute_fetchall on one connection",
        ),
        SystemSpec(
            name="raw:sqlalchemy-core-sqlite",
            make=lambda ctx: raw_sql.CoreDriver(
                "sqlite+aiosqlite:///" + ctx.path("raw-core.db"), "sqlite"
            ),
            modules=("sqlalchemy", "aiosqlite"),
            description="SQLAlchemy async Core, held AUTOCOMMIT connection",
        ),
        SystemSpec(
            name="raw:asyncpg",
            make=lambda ctx: raw_sql.AsyncpgDriver(pg),
            modules=("asyncpg",),
            servers=(pg,),
            description="asyncpg fetchrow on a held connection",
        ),
        SystemSpec(
            name="raw:sqlalchemy-core-postgres",
            make=lambda ctx: raw_sql.CoreDriver(pg, "postgres"),
            modules=("sqlalchemy", "asyncpg"),
            servers=(pg,),
            description="SQLAlchemy async Core, held AUTOCOMMIT connection",
        ),
        SystemSpec(
            name="raw:aiomysql",
            make=lambda ctx: raw_sql.AiomysqlDriver(my),
            modules=("aiomysql",),
            servers=(my,),
            description="aiomysql on a held autocommit connection",
        ),
        SystemSpec(
            name="raw:sqlalchemy-core-mariadb",
            make=lambda ctx: raw_sql.CoreDriver(my, "mariadb"),
            modules=("sqlalchemy", "aiomysql"),
            servers=(my,),
            description="SQLAlchemy async Core, held AUTOCOMMIT connection",
        ),
        SystemSpec(
            name="raw:redis-get-decode",
            make=lambda ctx: raw_cache.RedisDriver(redis, ctx.run_id, batch=False),
            modules=("redis",),
            servers=(redis,),
            description="redis.asyncio GET + msgspec decode",
        ),
        SystemSpec(
            name="raw:redis-mget-decode",
            make=lambda ctx: raw_cache.RedisDriver(redis, ctx.run_id, batch=True),
            modules=("redis",),
            servers=(redis,),
            description="redis.asyncio MGET + msgspec decode",
        ),
        SystemSpec(
            name="raw:aiomcache-get-decode",
            make=lambda ctx: raw_cache.AiomcacheDriver(mc, ctx.run_id),
            modules=("aiomcache",),
            servers=(mc.split(",")[0],),
            description="aiomcache get / multi_get + msgspec decode",
        ),
        SystemSpec(
            name="raw:aioboto3",
            make=lambda ctx: raw_dynamo.Aioboto3Driver(ddb, ctx.run_id),
            modules=("aioboto3",),
            servers=(ddb,),
            description="aioboto3 get_item / batch_get_item on one long-lived client",
        ),
        SystemSpec(
            name="peer:aiocache",
            make=lambda ctx: raw_cache.AiocacheDriver(redis, ctx.run_id),
            modules=("aiocache", "redis"),
            servers=(redis,),
            description="aiocache RedisCache, JSON serializer",
        ),
        SystemSpec(
            name="peer:cashews",
            make=lambda ctx: raw_cache.CashewsDriver(redis, ctx.run_id),
            modules=("cashews", "redis"),
            servers=(redis,),
            description="cashews on Redis, defaults",
        ),
        SystemSpec(
            name="peer:cashews-client-side",
            make=lambda ctx: raw_cache.CashewsDriver(redis, ctx.run_id, client_side=True),
            modules=("cashews", "redis"),
            servers=(redis,),
            description="cashews on Redis with client_side=True (local hits kept coherent by client tracking)",
        ),
    ]
    return specs
