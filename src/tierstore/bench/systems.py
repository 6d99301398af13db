"""The built-in systems: tierstore configurations built through ``tierstore.connect()``, raw floors, peers.

Names follow DESIGN §10: ``tierstore:<store>[+<tier>…]`` with the tiers in ``cache=[…]`` order (nearest
first, as in ``tierstore:dynamodb+memory+redis``), ``raw:<what>``, ``peer:<library>``. A system whose backend
module is missing (``ConfigError`` from the URL registry) or whose server does not accept a TCP connection is
skipped with the reason, so the Redis, Memcached and DynamoDB rows light up when those modules land.

``tierstore:dynamodb+dax-style`` is the one system that is not a store plus tiers from URLs: DynamoDB with
:class:`~tierstore.policies.dax.DaxStylePolicy` over ``[MemoryTier, Redis tier]`` — the item cache written
through and the query cache, both on those two tiers (see ``docs/backends.md``). ``join_100`` floors are
``raw:<client>-join-batch`` (hand-written: the page query, then one batched read of the distinct customers)
and ``raw:<client>-join-n+1`` (the page query, then one read per order).

Server URLs come from ``TIERSTORE_PG_URL``, ``TIERSTORE_MYSQL_URL``, ``TIERSTORE_REDIS_URL``,
``TIERSTORE_REDIS_CLUSTER_URL``, ``TIERSTORE_MEMCACHED_URL`` and ``TIERSTORE_DYNAMODB_URL`` (defaults as in
``tests/conftest.py`` and ``scripts/services``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tierstore.bench.data import BenchItem, BenchOrder, Dataset
from tierstore.bench.harness import (
    CACHE,
    CONCURRENT,
    GET,
    GET_MANY,
    JOIN,
    L1,
    PUT,
    QUERY,
    Driver,
    GetFn,
    GetManyFn,
    JoinFn,
    PageFn,
    PutFn,
    RunContext,
    SystemSpec,
    differences,
)
from tierstore.bench.raw_join import JOIN_MODES, join_system_name

__all__ = [
    "DAX_STYLE",
    "DEFAULT_URLS",
    "JOIN_FLOORS",
    "STORE_FLOORS",
    "TIER_FLOORS",
    "DaxStyleDriver",
    "TierstoreDriver",
    "builtin_systems",
    "server_urls",
]

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

# join_100 floors per store: the clients whose hand-written joins run on the same store, primary first.
# SQLite's primary is sqlite3, the driver tierstore's SQLite store runs its statements on.
JOIN_CLIENTS: dict[str, tuple[str, ...]] = {
    "memory": ("dict",),
    "sqlite": ("sqlite3", "aiosqlite"),
    "postgres": ("asyncpg",),
    "mariadb": ("aiomysql",),
    "dynamodb": ("aioboto3",),
}
JOIN_FLOORS: dict[str, tuple[str, ...]] = {
    store: tuple(join_system_name(c, m) for m in JOIN_MODES for c in clients)
    for store, clients in JOIN_CLIENTS.items()
}
"""``join_100`` floors per store: the ``-join-batch`` ones first (the first is the primary), then ``-join-n+1``."""

# Floors per store (scenarios a cache does not answer) and per nearest tier (cached scenarios); primary first.
STORE_FLOORS: dict[str, dict[str, tuple[str, ...]]] = {
    "memory": {"*": ("raw:dict-decode",), "join_100": JOIN_FLOORS["memory"]},
    "sqlite": {
        "*": ("raw:sqlalchemy-core-sqlite", "raw:aiosqlite", "raw:sqlite3"),
        "join_100": JOIN_FLOORS["sqlite"],
    },
    "postgres": {"*": ("raw:sqlalchemy-core-postgres", "raw:asyncpg"), "join_100": JOIN_FLOORS["postgres"]},
    "mariadb": {"*": ("raw:sqlalchemy-core-mariadb", "raw:aiomysql"), "join_100": JOIN_FLOORS["mariadb"]},
    "dynamodb": {"*": ("raw:aioboto3",), "join_100": JOIN_FLOORS["dynamodb"]},
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

DAX_STYLE = "tierstore:dynamodb+dax-style"
"""DynamoDB with ``DaxStylePolicy([MemoryTier, Redis tier])`` as item policy and query cache."""

LOAD_CHUNK = 500


def server_urls(env: Mapping[str, str]) -> dict[str, str]:
    """Backend name → URL, from the environment or the defaults."""
    return {name: env.get(var) or default for name, (var, default) in DEFAULT_URLS.items()}


class TierstoreDriver(Driver):
    """A ``Repository[BenchItem]`` (and ``Repository[BenchOrder]`` for joins) on
    ``tierstore.connect(store=…, cache=[…])``."""

    def __init__(self, store_url: str, tier_urls: Sequence[str]) -> None:
        self.store_url = store_url
        self.tier_urls = tuple(tier_urls)
        caps = {GET, GET_MANY, PUT, QUERY, CONCURRENT, JOIN}
        if self.tier_urls:
            caps.add(CACHE)
            if self.tier_urls[0].startswith("memory://"):
                caps.add(L1)
        self.caps = frozenset(caps)
        self.db: Any = None
        self.repo: Any = None
        self.orders: Any = None

    def connect(self) -> Any:
        """The (unopened) database; subclasses build other configurations."""
        import tierstore

        return tierstore.connect(self.store_url, list(self.tier_urls))

    async def open(self, data: Dataset) -> None:
        import tierstore.backends

        self.db = db = self.connect()
        await db.open()
        await db.create_tables(BenchItem, BenchOrder)
        repos = []
        for entity, rows in ((BenchItem, data.items), (BenchOrder, data.orders)):
            await db.store.truncate(tierstore.backends.schema_of(entity))
            repo = db.repository(entity)
            for start in range(0, len(rows), LOAD_CHUNK):
                await repo.put_many(rows[start : start + LOAD_CHUNK])
            repos.append(repo)
        for tier in db.cache.tiers:
            await tier.clear()
        db.reset_stats()
        self.repo, self.orders = repos

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

    def pager(self) -> PageFn:
        query = self.repo.query
        return lambda pk, limit: query(pk, limit=limit)

    def joiner(self) -> JoinFn:
        query, customer = self.orders.query, BenchOrder.customer
        return lambda pk, limit: query(pk, limit=limit).join(customer)

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


def _tag(name: str) -> str:
    """``postgres.memory.redis`` for ``tierstore:postgres+memory+redis``: a namespace of one system."""
    return name.split(":", 1)[1].replace("+", ".")


def _with_param(url: str, param: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{param}"


def _store_url(store: str, name: str, ctx: RunContext, urls: Mapping[str, str]) -> str:
    if store == "memory":
        return "memory://"
    if store == "sqlite":
        return "sqlite+aiosqlite:///" + ctx.path(name.replace(":", "-").replace("+", "-") + ".db")
    if store == "dynamodb":
        # Tables of their own (kept between runs, truncated and reloaded): a system that fails halfway through
        # loading, or the DAX-style system's query cache, must not meet another system's writes.
        return _with_param(urls[store], f"table_prefix={_tag(name)}.")
    return urls[store]


def _tier_url(tier: str, name: str, ctx: RunContext, urls: Mapping[str, str]) -> str:
    if tier == "memory":
        return f"memory://?max_items={ctx.data.l1_capacity}"
    # A namespace per system: systems on different stores must not read (or clear) each other's entries.
    return _with_param(urls[tier], f"prefix=tsbench{ctx.run_id}.{_tag(name)}")


def _tierstore_system(store: str, tiers: tuple[str, ...], quick: bool, urls: Mapping[str, str]) -> SystemSpec:
    name = "tierstore:" + "+".join((store, *tiers))

    def urls_for(ctx: RunContext) -> tuple[str, list[str]]:
        return _store_url(store, name, ctx, urls), [_tier_url(t, name, ctx, urls) for t in tiers]

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


def _dax_style_system(urls: Mapping[str, str]) -> SystemSpec:
    ddb, redis = urls["dynamodb"], urls["redis"]

    def probe(ctx: RunContext) -> str | None:
        import importlib.util

        from tierstore.config import store_config, tier_config
        from tierstore.errors import ConfigError

        try:
            store_config(_store_url("dynamodb", DAX_STYLE, ctx, urls))
            tier_config(_tier_url("redis", DAX_STYLE, ctx, urls))
        except ConfigError as exc:
            return str(exc)
        if importlib.util.find_spec("tierstore.policies.dax") is None:
            return "tierstore.policies.dax is missing"
        return None

    return SystemSpec(
        name=DAX_STYLE,
        make=lambda ctx: DaxStyleDriver(
            _store_url("dynamodb", DAX_STYLE, ctx, urls), _tier_url("redis", DAX_STYLE, ctx, urls), ctx.data.l1_capacity
        ),
        description="DynamoDB + DaxStylePolicy([memory, redis]): write-through item cache and query cache",
        servers=(ddb, redis),
        probe=probe,
        store_floors=STORE_FLOORS["dynamodb"],
        cache_floors={"*": ("raw:aioboto3", "raw:dict-decode")},
    )


def _join_floors(urls: Mapping[str, str]) -> list[SystemSpec]:
    """``raw:<client>-join-batch`` and ``raw:<client>-join-n+1`` for every client of :data:`JOIN_CLIENTS`."""
    from tierstore.bench import raw_cache, raw_dynamo, raw_sql
    from tierstore.bench.raw_join import JoinFloor

    pg, my, ddb = urls["postgres"], urls["mariadb"], urls["dynamodb"]

    def file_name(client: str, mode: str) -> str:
        return f"raw-{client}-join-{'batch' if mode == 'batch' else 'nplus1'}.db"

    makers: dict[str, tuple[Any, tuple[str, ...], tuple[str, ...], str]] = {
        "dict": (lambda ctx, m: raw_cache.DictJoinDriver(m), (), (), "dicts of msgpack payloads"),
        "sqlite3": (
            lambda ctx, m: raw_sql.Sqlite3JoinDriver(ctx.path(file_name("sqlite3", m)), m),
            (), (), "blocking sqlite3 (tierstore's SQLite driver)",
        ),
        "aiosqlite": (
            lambda ctx, m: raw_sql.AiosqliteJoinDriver(ctx.path(file_name("aiosqlite", m)), m),
            ("aiosqlite",), (), "aiosqlite, one connection",
        ),
        "asyncpg": (
            lambda ctx, m: raw_sql.AsyncpgJoinDriver(pg, m), ("asyncpg",), (pg,), "asyncpg, held connection",
        ),
        "aiomysql": (
            lambda ctx, m: raw_sql.AiomysqlJoinDriver(my, m), ("aiomysql",), (my,),
            "aiomysql, held connection",
        ),
        "aioboto3": (
            lambda ctx, m: raw_dynamo.Aioboto3JoinDriver(ddb, ctx.run_id, m), ("aioboto3",), (ddb,),
            "aioboto3, one client",
        ),
    }
    how = {"batch": "query + one batched read of the distinct customers", "n+1": "query + one read per order"}
    specs = []
    for client, (make, modules, servers, what) in makers.items():
        for mode in JOIN_MODES:

            def build(ctx: RunContext, make: Any = make, mode: str = mode) -> JoinFloor:
                driver: JoinFloor = make(ctx, mode)
                return driver

            specs.append(SystemSpec(
                name=join_system_name(client, mode),
                make=build,
                description=f"join_100 by hand: {how[mode]}; {what}",
                modules=modules,
                servers=servers,
            ))
    return specs


def builtin_systems(env: Mapping[str, str]) -> list[SystemSpec]:
    """Every built-in system, tierstore first, then floors and peers (the table's order)."""
    from tierstore.bench import raw_cache, raw_dynamo, raw_sql

    urls = server_urls(env)
    specs = [_tierstore_system(store, tiers, quick, urls) for store, tiers, quick in TIERSTORE_SYSTEMS]
    specs.append(_dax_style_system(urls))
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
    specs += _join_floors(urls)
    return specs
