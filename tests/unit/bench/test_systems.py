"""The built-in systems (tierstore.bench.systems): names, floors per store and tier, URLs and namespaces."""

from __future__ import annotations

from tierstore.bench.api import CACHE, GET, GET_MANY, JOIN, L1, QUERY, RunContext
from tierstore.bench.builtin import default_registry
from tierstore.bench.data import Dataset
from tierstore.bench.runner import Settings
from tierstore.bench.systems import DAX_STYLE, JOIN_FLOORS, builtin_systems, server_urls
from tierstore.bench.tierstore_driver import TierstoreDriver

CONTRACT_SCENARIOS = {
    "get", "get_many_100", "put", "query_page", "get_concurrent_64", "join_100", "zipf_read", "herd_100",
}


BUILTIN_SYSTEMS = {
    "tierstore:memory",
    "tierstore:memory+memory",
    "tierstore:sqlite",
    "tierstore:sqlite+memory",
    "tierstore:postgres",
    "tierstore:postgres+memory",
    "tierstore:mariadb",
    "tierstore:mariadb+memory",
    "tierstore:postgres+redis",
    "tierstore:dynamodb+memory+redis",
    "raw:sqlalchemy-core-postgres",
    "raw:sqlalchemy-core-mariadb",
    "raw:sqlalchemy-core-sqlite",
    "raw:asyncpg",
    "raw:aiomysql",
    "raw:aiosqlite",
    "raw:sqlite3",
    "raw:redis-get-decode",
    "raw:redis-mget-decode",
    "raw:aiomcache-get-decode",
    "raw:aioboto3",
    "peer:aiodynamo",
    "peer:aiocache",
    "peer:cashews",
    "tierstore:dynamodb+dax-style",
    "raw:dict-join-batch",
    "raw:dict-join-n+1",
    "raw:sqlite3-join-batch",
    "raw:sqlite3-join-n+1",
    "raw:aiosqlite-join-batch",
    "raw:aiosqlite-join-n+1",
    "raw:asyncpg-join-batch",
    "raw:asyncpg-join-n+1",
    "raw:aiomysql-join-batch",
    "raw:aiomysql-join-n+1",
    "raw:aioboto3-join-batch",
    "raw:aioboto3-join-n+1",
}


def _ctx_for_specs() -> RunContext:
    """A context for building drivers that are never opened (nothing is written to the work dir)."""
    return RunContext(settings=Settings(), data=Dataset(partitions=2), env={}, workdir="/nonexistent-tsbench")


def test_default_registry_has_the_contract_names() -> None:
    reg = default_registry({})
    assert set(reg.scenarios) >= CONTRACT_SCENARIOS
    assert set(reg.systems) >= BUILTIN_SYSTEMS
    first_raw = next(i for i, n in enumerate(reg.systems) if not n.startswith("tierstore:"))
    assert all(n.startswith("tierstore:") for n in list(reg.systems)[:first_raw])


def test_floors_follow_the_nearest_tier_for_cached_scenarios() -> None:
    reg = default_registry({})
    pg_mem = reg.systems["tierstore:postgres+memory"]
    sc = reg.scenarios
    assert pg_mem.floors_for(sc["get"]) == ("raw:dict-decode", "peer:cashews-client-side")
    assert pg_mem.floors_for(sc["get_many_100"]) == ("raw:dict-decode",)
    assert pg_mem.floors_for(sc["put"])[0] == "raw:sqlalchemy-core-postgres"
    pg_redis = reg.systems["tierstore:postgres+redis"]
    assert pg_redis.floors_for(sc["get"]) == ("raw:redis-get-decode", "peer:aiocache", "peer:cashews")
    assert pg_redis.floors_for(sc["get_many_100"])[0] == "raw:redis-mget-decode"
    sqlite = reg.systems["tierstore:sqlite"]
    assert sqlite.floors_for(sc["get"]) == ("raw:sqlalchemy-core-sqlite", "raw:aiosqlite", "raw:sqlite3")
    assert "raw:sqlite3" in sqlite.all_floors()


def test_join_floors_are_the_stores_hand_written_joins() -> None:
    reg = default_registry({})
    join = reg.scenarios["join_100"]
    assert not join.cached  # tiered systems are compared with the store's hand-written join too
    assert reg.systems["tierstore:postgres"].floors_for(join) == ("raw:asyncpg-join-batch", "raw:asyncpg-join-n+1")
    assert reg.systems["tierstore:postgres+memory+redis"].floors_for(join)[0] == "raw:asyncpg-join-batch"
    assert reg.systems["tierstore:sqlite"].floors_for(join) == (
        "raw:sqlite3-join-batch", "raw:aiosqlite-join-batch", "raw:sqlite3-join-n+1", "raw:aiosqlite-join-n+1",
    )
    assert reg.systems["tierstore:memory"].floors_for(join) == ("raw:dict-join-batch", "raw:dict-join-n+1")
    assert reg.systems["tierstore:mariadb"].floors_for(join)[0] == "raw:aiomysql-join-batch"
    assert reg.systems["tierstore:dynamodb"].floors_for(join)[0] == "raw:aioboto3-join-batch"
    for floors in JOIN_FLOORS.values():
        assert all(f in reg.systems for f in floors)
    # join floors do nothing but join; the plain floors do not join
    ctx = _ctx_for_specs()
    for name in ("raw:dict-join-batch", "raw:sqlite3-join-n+1"):
        assert reg.systems[name].make(ctx).caps == frozenset({JOIN})
    assert JOIN not in reg.systems["raw:dict-decode"].make(ctx).caps


def test_dax_style_system() -> None:
    env = {
        "TIERSTORE_DYNAMODB_URL": "dynamodb://eu-west-1?endpoint_url=http://ddb:8000",
        "TIERSTORE_REDIS_URL": "redis://cache:6379/2",
    }
    reg = default_registry(env)
    spec = reg.systems[DAX_STYLE]
    assert spec.servers == (env["TIERSTORE_DYNAMODB_URL"], env["TIERSTORE_REDIS_URL"])
    sc = reg.scenarios
    for name in ("get", "get_many_100", "query_page", "put"):
        assert spec.floors_for(sc[name])[0] == "raw:aioboto3"
    assert spec.floors_for(sc["get"]) == ("raw:aioboto3", "raw:dict-decode")
    assert spec.floors_for(sc["join_100"])[0] == "raw:aioboto3-join-batch"
    driver = spec.make(_ctx_for_specs())
    assert {GET, GET_MANY, JOIN, QUERY, L1, CACHE} <= driver.caps
    assert isinstance(driver, TierstoreDriver)
    # its own tables and its own Redis namespace
    assert "table_prefix=tsbench.dynamodb.dax-style." in driver.store_url
    assert driver.tier_urls[1].startswith("redis://cache:6379/2?prefix=tsbench")
    assert driver.tier_urls[1].endswith(".dynamodb.dax-style")


def test_each_system_has_its_own_cache_namespace_and_dynamodb_tables() -> None:
    reg = default_registry({})
    ctx = _ctx_for_specs()
    seen: dict[str, str] = {}
    for name in ("tierstore:postgres+redis", "tierstore:dynamodb+redis", "tierstore:postgres+memory+redis"):
        driver = reg.systems[name].make(ctx)
        assert isinstance(driver, TierstoreDriver)
        redis_url = driver.tier_urls[-1]
        assert redis_url not in seen, (name, seen.get(redis_url))
        seen[redis_url] = name
    dyn = reg.systems["tierstore:dynamodb+memory"].make(ctx)
    assert isinstance(dyn, TierstoreDriver) and dyn.store_url.endswith("table_prefix=tsbench.dynamodb.memory.")


def test_server_urls_from_env_with_defaults() -> None:
    urls = server_urls({"TIERSTORE_PG_URL": "postgresql+asyncpg://u@db:5433/x"})
    assert urls["postgres"] == "postgresql+asyncpg://u@db:5433/x"
    assert urls["mariadb"] == "mysql+aiomysql://root@127.0.0.1:3306/test"
    spec = next(s for s in builtin_systems({"TIERSTORE_PG_URL": "postgresql+asyncpg://u@db:5433/x"})
                if s.name == "raw:asyncpg")
    assert spec.servers == ("postgresql+asyncpg://u@db:5433/x",)
