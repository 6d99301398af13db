"""The built-in systems: the tierstore configurations, which floors each is compared with, and the server URLs.

Names: ``tierstore:<store>[+<tier>…]`` with the tiers in ``cache=[…]`` order (nearest first, as in
``tierstore:dynamodb+memory+redis``), ``raw:<what>`` for floors and ``peer:<library>`` for other caching
libraries (those two are :mod:`tierstore.bench.floors.systems`). A system whose backend module is missing
(``ConfigError`` from the URL registry) or whose server does not accept a TCP connection is skipped with the
reason, so one list serves a laptop with no servers and a machine with all of them.

``tierstore:dynamodb+dax-style`` is the one system that is not a store plus tiers from URLs: DynamoDB with
:class:`~tierstore.policies.dax.DaxStylePolicy` over ``[MemoryTier, Redis tier]`` — the item cache written
through and the query cache, both on those two tiers (see ``docs/backends.md``). ``join_100`` floors are
``raw:<client>-join-batch`` (hand-written: the page query, then one batched read of the distinct customers)
and ``raw:<client>-join-n+1`` (the page query, then one read per order).

Server URLs come from ``TIERSTORE_PG_URL``, ``TIERSTORE_MYSQL_URL``, ``TIERSTORE_REDIS_URL``,
``TIERSTORE_REDIS_CLUSTER_URL``, ``TIERSTORE_MEMCACHED_URL`` and ``TIERSTORE_DYNAMODB_URL``, with the
defaults of ``tests/_servers.py`` and ``scripts/services``.
"""

from __future__ import annotations

from collections.abc import Mapping

from tierstore.bench.api import Driver, RunContext, SystemSpec
from tierstore.bench.floors.join import JOIN_MODES, join_system_name
from tierstore.bench.floors.systems import floor_systems
from tierstore.bench.tierstore_driver import DaxStyleDriver, TierstoreDriver

__all__ = [
    "DAX_STYLE",
    "DEFAULT_URLS",
    "JOIN_CLIENTS",
    "JOIN_FLOORS",
    "STORE_FLOORS",
    "TIERSTORE_SYSTEMS",
    "TIER_FLOORS",
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
    "memory": {"*": ("raw:dict-decode",), "join_100": JOIN_FLOORS["memory"], "join_many_20": ("raw:dict-join-many",)},
    "sqlite": {
        "*": ("raw:sqlalchemy-core-sqlite", "raw:aiosqlite", "raw:sqlite3"),
        "join_100": JOIN_FLOORS["sqlite"],
        "join_many_20": ("raw:sqlite3-join-many",),
    },
    "postgres": {
        "*": ("raw:sqlalchemy-core-postgres", "raw:asyncpg"), "join_100": JOIN_FLOORS["postgres"], "join_many_20": (),
    },
    "mariadb": {
        "*": ("raw:sqlalchemy-core-mariadb", "raw:aiomysql"), "join_100": JOIN_FLOORS["mariadb"], "join_many_20": (),
    },
    "dynamodb": {
        "*": ("raw:aioboto3", "peer:aiodynamo"), "join_100": JOIN_FLOORS["dynamodb"], "join_many_20": (),
    },
}
_REDIS_FLOORS = {
    "get": ("raw:redis-get-decode", "peer:aiocache", "peer:cashews"),
    "get_many_100": ("raw:redis-mget-decode", "peer:aiocache", "peer:cashews"),
    "get_concurrent_64": ("raw:redis-get-decode", "raw:redis-mget-coalesced", "peer:aiocache", "peer:cashews"),
    "*": ("raw:redis-get-decode",),
}
TIER_FLOORS: dict[str, dict[str, tuple[str, ...]]] = {
    "memory": {"get": ("raw:dict-decode", "peer:cashews-client-side"), "*": ("raw:dict-decode",)},
    "redis": _REDIS_FLOORS,
    "redis-cluster": _REDIS_FLOORS,
    "memcached": {
        "get_concurrent_64": ("raw:aiomcache-get-decode", "raw:aiomcache-multiget-coalesced"),
        "*": ("raw:aiomcache-get-decode",),
    },
}

# (store, tiers nearest first, in --quick): the tierstore systems, in the table's order.
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

def server_urls(env: Mapping[str, str]) -> dict[str, str]:
    """Backend name → URL, from the environment or the defaults."""
    return {name: env.get(var) or default for name, (var, default) in DEFAULT_URLS.items()}


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
        return _with_param(urls[store], f"table_prefix=tsbench.{_tag(name)}.")
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


def builtin_systems(env: Mapping[str, str]) -> list[SystemSpec]:
    """Every built-in system, tierstore first, then floors and peers (the table's order)."""
    urls = server_urls(env)
    specs = [_tierstore_system(store, tiers, quick, urls) for store, tiers, quick in TIERSTORE_SYSTEMS]
    specs.append(_dax_style_system(urls))
    specs += floor_systems(urls)
    return specs
