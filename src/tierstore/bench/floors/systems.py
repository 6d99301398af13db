"""The floor and peer systems: their names, what each needs to run, and how to build its driver.

A *floor* (``raw:<what>``) does a scenario's work directly on a client library, the way a careful hand-written
data layer would; a *peer* (``peer:<library>``) is another caching library used as its users would. The
tierstore systems name the floors they are compared with (``STORE_FLOORS`` / ``TIER_FLOORS`` in
:mod:`tierstore.bench.systems`). Every client library is imported when its driver opens, and a system whose
module is missing is skipped with the reason, so listing them costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tierstore.bench.api import RunContext, SystemSpec
from tierstore.bench.floors import (
    aiodynamo_peer,
    cache,
    dynamodb,
    join_many,
    sql_core,
    sql_mysql,
    sql_postgres,
    sql_sqlite,
)
from tierstore.bench.floors.join import JOIN_MODES, JoinFloor, join_system_name

__all__ = ["floor_systems", "join_floor_systems", "join_many_floor_systems"]


def floor_systems(urls: Mapping[str, str]) -> list[SystemSpec]:
    """The floors and peers of the store and cache scenarios, then the join floors (the table's order).

    ``urls``: backend name → URL (``postgres``, ``mariadb``, ``redis``, ``memcached``, ``dynamodb``).
    """
    pg, my, redis, mc, ddb = urls["postgres"], urls["mariadb"], urls["redis"], urls["memcached"], urls["dynamodb"]
    specs = [
        SystemSpec(
            name="raw:dict-decode",
            make=lambda ctx: cache.DictDecodeDriver(),
            description="dict of msgpack payloads + msgspec decode",
        ),
        SystemSpec(
            name="raw:sqlite3",
            make=lambda ctx: sql_sqlite.Sqlite3Driver(ctx.path("raw-sqlite3.db")),
            description="blocking stdlib sqlite3 (reference: the query without a thread hop)",
        ),
        SystemSpec(
            name="raw:aiosqlite",
            make=lambda ctx: sql_sqlite.AiosqliteDriver(ctx.path("raw-aiosqlite.db")),
            modules=("aiosqlite",),
            description="aiosqlite execute_fetchall on one connection",
        ),
        SystemSpec(
            name="raw:sqlalchemy-core-sqlite",
            make=lambda ctx: sql_core.CoreDriver(
                "sqlite+aiosqlite:///" + ctx.path("raw-core.db"), "sqlite"
            ),
            modules=("sqlalchemy", "aiosqlite"),
            description="SQLAlchemy async Core, held AUTOCOMMIT connection",
        ),
        SystemSpec(
            name="raw:asyncpg",
            make=lambda ctx: sql_postgres.AsyncpgDriver(pg),
            modules=("asyncpg",),
            servers=(pg,),
            description="asyncpg fetchrow on a held connection",
        ),
        SystemSpec(
            name="raw:sqlalchemy-core-postgres",
            make=lambda ctx: sql_core.CoreDriver(pg, "postgres"),
            modules=("sqlalchemy", "asyncpg"),
            servers=(pg,),
            description="SQLAlchemy async Core, held AUTOCOMMIT connection",
        ),
        SystemSpec(
            name="raw:aiomysql",
            make=lambda ctx: sql_mysql.AiomysqlDriver(my),
            modules=("aiomysql",),
            servers=(my,),
            description="aiomysql on a held autocommit connection",
        ),
        SystemSpec(
            name="raw:sqlalchemy-core-mariadb",
            make=lambda ctx: sql_core.CoreDriver(my, "mariadb"),
            modules=("sqlalchemy", "aiomysql"),
            servers=(my,),
            description="SQLAlchemy async Core, held AUTOCOMMIT connection",
        ),
        SystemSpec(
            name="raw:redis-get-decode",
            make=lambda ctx: cache.RedisDriver(redis, ctx.run_id, batch=False),
            modules=("redis",),
            servers=(redis,),
            description="redis.asyncio GET + msgspec decode",
        ),
        SystemSpec(
            name="raw:redis-mget-decode",
            make=lambda ctx: cache.RedisDriver(redis, ctx.run_id, batch=True),
            modules=("redis",),
            servers=(redis,),
            description="redis.asyncio MGET + msgspec decode",
        ),
        SystemSpec(
            name="raw:redis-mget-coalesced",
            make=lambda ctx: cache.CoalescedRedisDriver(redis, ctx.run_id),
            modules=("redis",),
            servers=(redis,),
            description="redis.asyncio, concurrent gets coalesced by hand: one MGET per loop tick + msgspec decode",
        ),
        SystemSpec(
            name="raw:aiomcache-multiget-coalesced",
            make=lambda ctx: cache.CoalescedAiomcacheDriver(mc, ctx.run_id),
            modules=("aiomcache",),
            servers=(mc,),
            description="aiomcache, concurrent gets coalesced by hand: one multi_get per node per loop tick + decode",
        ),
        SystemSpec(
            name="raw:aiomcache-get-decode",
            make=lambda ctx: cache.AiomcacheDriver(mc, ctx.run_id),
            modules=("aiomcache",),
            servers=(mc,),
            description="aiomcache get / multi_get (one per node) + msgspec decode",
        ),
        SystemSpec(
            name="raw:aioboto3",
            make=lambda ctx: dynamodb.Aioboto3Driver(ddb, ctx.run_id),
            modules=("aioboto3",),
            servers=(ddb,),
            description="aioboto3 get_item / batch_get_item on one long-lived client",
        ),
        SystemSpec(
            name="peer:aiodynamo",
            make=lambda ctx: aiodynamo_peer.AiodynamoDriver(ddb, ctx.run_id),
            modules=("aiodynamo", "aiohttp", "aioboto3"),
            servers=(ddb,),
            description="aiodynamo get_item / query_single_page on an aiohttp session (no botocore)",
        ),
        SystemSpec(
            name="peer:aiocache",
            make=lambda ctx: cache.AiocacheDriver(redis, ctx.run_id),
            modules=("aiocache", "redis"),
            servers=(redis,),
            description="aiocache RedisCache, JSON serializer",
        ),
        SystemSpec(
            name="peer:cashews",
            make=lambda ctx: cache.CashewsDriver(redis, ctx.run_id),
            modules=("cashews", "redis"),
            servers=(redis,),
            description="cashews on Redis, defaults",
        ),
        SystemSpec(
            name="peer:cashews-client-side",
            make=lambda ctx: cache.CashewsDriver(redis, ctx.run_id, client_side=True),
            modules=("cashews", "redis"),
            servers=(redis,),
            description="cashews on Redis with client_side=True (local hits kept coherent by client tracking)",
        ),
    ]
    return specs + join_floor_systems(urls) + join_many_floor_systems()


def join_many_floor_systems() -> list[SystemSpec]:
    """``raw:dict-join-many`` and ``raw:sqlite3-join-many``: ``join_many_20`` by hand (one batched read)."""
    return [
        SystemSpec(
            name="raw:dict-join-many",
            make=lambda ctx: join_many.DictJoinManyDriver(),
            description="join_many_20 by hand: dict lookups of msgpack payloads per parent",
        ),
        SystemSpec(
            name="raw:sqlite3-join-many",
            make=lambda ctx: join_many.Sqlite3JoinManyDriver(ctx.path("raw-sqlite3-join-many.db")),
            description="join_many_20 by hand: one SELECT … WHERE account_id IN (…) on blocking sqlite3",
        ),
    ]


def join_floor_systems(urls: Mapping[str, str]) -> list[SystemSpec]:
    """``raw:<client>-join-batch`` and ``raw:<client>-join-n+1`` for every join client (the stores' join
    floors are ``JOIN_CLIENTS`` in :mod:`tierstore.bench.systems`)."""

    pg, my, ddb = urls["postgres"], urls["mariadb"], urls["dynamodb"]

    def file_name(client: str, mode: str) -> str:
        return f"raw-{client}-join-{'batch' if mode == 'batch' else 'nplus1'}.db"

    makers: dict[str, tuple[Any, tuple[str, ...], tuple[str, ...], str]] = {
        "dict": (lambda ctx, m: cache.DictJoinDriver(m), (), (), "dicts of msgpack payloads"),
        "sqlite3": (
            lambda ctx, m: sql_sqlite.Sqlite3JoinDriver(ctx.path(file_name("sqlite3", m)), m),
            (), (), "blocking sqlite3 (tierstore's SQLite driver)",
        ),
        "aiosqlite": (
            lambda ctx, m: sql_sqlite.AiosqliteJoinDriver(ctx.path(file_name("aiosqlite", m)), m),
            ("aiosqlite",), (), "aiosqlite, one connection",
        ),
        "asyncpg": (
            lambda ctx, m: sql_postgres.AsyncpgJoinDriver(pg, m), ("asyncpg",), (pg,), "asyncpg, held connection",
        ),
        "aiomysql": (
            lambda ctx, m: sql_mysql.AiomysqlJoinDriver(my, m), ("aiomysql",), (my,),
            "aiomysql, held connection",
        ),
        "aioboto3": (
            lambda ctx, m: dynamodb.Aioboto3JoinDriver(ddb, ctx.run_id, m), ("aioboto3",), (ddb,),
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
