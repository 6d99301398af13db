"""The benchmark harness: statistics, timing loop, registry, selection, skip reasons, ratios, JSON shape, CLI."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import sys
import types
from collections.abc import Sequence
from typing import Any

import pytest

import tierstore
from tierstore.bench import harness, report
from tierstore.bench.data import (
    JOIN_PAGE,
    ORDER_FIELDS,
    BenchItem,
    BenchOrder,
    Dataset,
    LruReference,
    lru_hit_ratio,
    zipf_sequence,
)
from tierstore.bench.harness import (
    GET,
    GET_MANY,
    JOIN,
    Cell,
    Driver,
    GetFn,
    GetManyFn,
    JoinFn,
    Registry,
    RunContext,
    Scenario,
    Settings,
    SystemSpec,
    measure,
    percentile,
    select,
    summarize,
    unavailable,
)
from tierstore.bench.raw_cache import DictJoinDriver
from tierstore.bench.raw_join import JoinFloor
from tierstore.bench.raw_sql import AiosqliteJoinDriver, Sqlite3JoinDriver
from tierstore.bench.scenarios import Get, GetConcurrent64, Herd100, check_join, join_pairs
from tierstore.bench.systems import DAX_STYLE, JOIN_FLOORS, TierstoreDriver, builtin_systems, server_urls
from tierstore.cli import main

DESIGN_SCENARIOS = {
    "get", "get_many_100", "put", "query_page", "get_concurrent_64", "join_100", "zipf_read", "herd_100",
}
BRIEF_SYSTEMS = {
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


# -- statistics ------------------------------------------------------------------------------------------


def test_percentile_interpolates_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 99) == pytest.approx(3.97)
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_summarize_row() -> None:
    cell = Cell("tierstore:x", "get", samples=[3000.0, 1000.0, 2000.0], ops=4, wall_ns=2_000_000, cpu_ns=8000)
    cell.counters = {"store": 2, "tier": 6, "l1_hits": 9}
    cell.rounds = 1
    row = summarize(cell, Get())
    assert row["ops_per_s"] == 2000.0
    assert row["p50_us"] == 2.0
    assert row["p99_us"] == pytest.approx(2.98)
    assert row["round_trips_per_op"] == 2.0  # (store 2 + tier 6) / 4 ops
    assert row["store_round_trips_per_op"] == 0.5
    assert row["cpu_us_per_op"] == 2.0
    herd = summarize(cell, Herd100())  # counts store reads only
    assert herd["round_trips_per_op"] == 0.5
    assert "query_cache_hit_ratio" not in row
    cell.counters.update(query_cache_hits=3, query_cache_misses=1)
    assert summarize(cell, Get())["query_cache_hit_ratio"] == 0.75


def test_summarize_without_samples_has_no_nan() -> None:
    row = summarize(Cell("raw:x", "get"), Get())
    assert row["p50_us"] is None and row["ops_per_s"] == 0.0
    json.dumps(row, allow_nan=False)


# -- timing loop -----------------------------------------------------------------------------------------


async def test_measure_batches_fast_ops_and_counts() -> None:
    calls: list[int] = []

    async def op(i: int) -> None:
        calls.append(i)

    m = await measure(op, start=10, duration_s=0.02, warmup_s=0.005, counters=lambda: {"store": len(calls)})
    assert m.batch > 1
    assert m.ops == len(m.timed) and m.ops >= 5
    assert m.timed.start > 10  # the warm-up used the first indexes
    assert calls[0] == 10 and calls[-1] == m.timed.stop - 1
    assert m.counters["store"] == m.ops  # the difference around the timed part only
    assert m.wall_ns > 0 and len(m.samples) == m.ops // m.batch


async def test_measure_times_slow_ops_one_by_one() -> None:
    async def op(i: int) -> None:
        await asyncio.sleep(0.002)

    m = await measure(op, duration_s=0.02, warmup_s=0.004)
    assert m.batch == 1
    assert len(m.samples) == m.ops
    assert min(m.samples) >= 1_500_000  # ns


async def test_measure_concurrent_tasks_overlap() -> None:
    in_flight = 0
    peak = 0

    async def op(i: int) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1

    m = await measure(op, duration_s=0.03, warmup_s=0.005, concurrency=16)
    assert peak == 16
    assert m.ops == len(m.samples) == len(m.timed)
    # 16 tasks sleeping 1 ms each: throughput well above one task's ~1000/s
    assert m.ops / (m.wall_ns / 1e9) > 3000


# -- data ------------------------------------------------------------------------------------------------


def test_dataset_keys_exist_and_l1_is_smaller_than_key_space() -> None:
    data = Dataset(partitions=20)
    keys = set(data.keys)
    assert len(data.items) == 2000 and len(keys) == 2000
    assert len(data.hot) == 16 and len(data.many) == 100 and len(data.warm) == 128
    assert set(data.hot) | set(data.many) | set(data.warm) <= keys
    assert len(set(data.many)) == 100 and len(set(data.warm)) == 128
    assert data.item(data.many[3]) == next(i for i in data.items if (i.pk, i.sk) == data.many[3])
    assert len(data.cached_keys) < data.l1_capacity < len(data.items)
    assert all(w.pk == "pw" for w in data.writes)


def test_bench_item_is_about_200_bytes() -> None:
    import msgspec

    sizes = [len(msgspec.msgpack.encode(i)) for i in Dataset(partitions=2).items]
    assert 180 <= sum(sizes) / len(sizes) <= 230
    assert len(BenchItem.__struct_fields__) == 10


def test_orders_for_join_100() -> None:
    data = Dataset(partitions=20)
    assert data.order_partitions == 2 and Dataset(partitions=100).order_partitions == 8
    assert Dataset(partitions=1000).order_partitions == 8 and Dataset(partitions=3).order_partitions == 2
    assert len(data.orders) == 2 * JOIN_PAGE == 200
    keys = set(data.keys)
    for pk in data.order_partition_keys:
        orders = [o for o in data.orders if o.pk == pk]
        assert [o.sk for o in orders] == sorted(o.sk for o in orders) and len(orders) == JOIN_PAGE
        customers = [(o.customer_pk, o.customer_sk) for o in orders]
        assert set(customers) <= keys
        assert len(set(customers)) == data.join_distinct == 90  # some customers ordered twice
        assert len({c[0] for c in customers}) > 10  # spread over many item partitions
    assert [o.customer_sk for o in data.orders] == [o.customer_sk for o in Dataset(partitions=20).orders]
    assert Dataset(partitions=20).items == data.items  # the orders drew from their own random stream
    # joined customers stay warm in the in-process tier; Zipf reads still evict
    assert len(set(data.cached_keys) | set(data.join_customers)) < data.l1_capacity < len(data.items)
    assert Dataset(partitions=2, order_partitions=0).orders == []
    with pytest.raises(ValueError):
        Dataset(partitions=2, join_distinct=101)


def test_bench_order_refers_to_an_item() -> None:
    schema = tierstore.schema_of(BenchOrder)
    assert schema.key_fields == ("pk", "sk")
    assert BenchOrder.customer.target is BenchItem
    assert BenchOrder.customer.fields == ("customer_pk", "customer_sk")
    assert BenchOrder.__struct_fields__ == ORDER_FIELDS


def test_zipf_sequence_is_skewed_and_deterministic() -> None:
    seq = zipf_sequence(1000, 20_000, 1.0, seed=3)
    assert seq == zipf_sequence(1000, 20_000, 1.0, seed=3)
    assert all(0 <= k < 1000 for k in seq)
    counts = sorted((seq.count(k) for k in set(seq)), reverse=True)
    assert counts[0] > 20 * (20_000 / 1000)  # the top key is far above a uniform share
    assert len(set(seq)) > 300  # and the tail is long


def test_lru_reference() -> None:
    lru = LruReference(2)
    assert [lru.access(k) for k in (1, 2, 1, 3, 2, 1)] == [False, False, True, False, False, False]
    assert lru.hits == 1 and lru.misses == 5
    # counting only the second half of a repeated sequence: all hits once warm
    assert lru_hit_ratio([1, 2, 1, 2], 2, [range(2, 4)]) == 1.0
    assert lru_hit_ratio([1, 2, 3], 2, [range(0, 3)]) == 0.0
    # the scenario reads the sequence cyclically; positions past its end wrap
    assert lru_hit_ratio([5], 1, [range(1, 3)]) == 1.0


# -- registry and selection ------------------------------------------------------------------------------


def test_default_registry_has_design_names() -> None:
    reg = Registry.default({})
    assert set(reg.scenarios) >= DESIGN_SCENARIOS
    assert set(reg.systems) >= BRIEF_SYSTEMS
    first_raw = next(i for i, n in enumerate(reg.systems) if not n.startswith("tierstore:"))
    assert all(n.startswith("tierstore:") for n in list(reg.systems)[:first_raw])


def test_registry_rejects_duplicates_and_bad_names() -> None:
    reg = Registry()
    spec = SystemSpec(name="raw:x", make=lambda ctx: Driver())
    reg.add_system(spec)
    with pytest.raises(ValueError, match="twice"):
        reg.add_system(spec)
    with pytest.raises(ValueError, match="tierstore:, raw: or peer:"):
        reg.add_system(SystemSpec(name="mine", make=lambda ctx: Driver()))
    reg.add_scenario(Get())
    with pytest.raises(ValueError, match="twice"):
        reg.add_scenario(Get())


def test_floors_follow_the_nearest_tier_for_cached_scenarios() -> None:
    reg = Registry.default({})
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
    reg = Registry.default({})
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
    reg = Registry.default(env)
    spec = reg.systems[DAX_STYLE]
    assert spec.servers == (env["TIERSTORE_DYNAMODB_URL"], env["TIERSTORE_REDIS_URL"])
    sc = reg.scenarios
    for name in ("get", "get_many_100", "query_page", "put"):
        assert spec.floors_for(sc[name])[0] == "raw:aioboto3"
    assert spec.floors_for(sc["get"]) == ("raw:aioboto3", "raw:dict-decode")
    assert spec.floors_for(sc["join_100"])[0] == "raw:aioboto3-join-batch"
    driver = spec.make(_ctx_for_specs())
    assert {GET, GET_MANY, JOIN, harness.QUERY, harness.L1, harness.CACHE} <= driver.caps
    assert isinstance(driver, TierstoreDriver)
    # its own tables and its own Redis namespace
    assert "table_prefix=dynamodb.dax-style." in driver.store_url
    assert driver.tier_urls[1].startswith("redis://cache:6379/2?prefix=tsbench")
    assert driver.tier_urls[1].endswith(".dynamodb.dax-style")


def test_each_system_has_its_own_cache_namespace_and_dynamodb_tables() -> None:
    reg = Registry.default({})
    ctx = _ctx_for_specs()
    seen: dict[str, str] = {}
    for name in ("tierstore:postgres+redis", "tierstore:dynamodb+redis", "tierstore:postgres+memory+redis"):
        driver = reg.systems[name].make(ctx)
        assert isinstance(driver, TierstoreDriver)
        redis_url = driver.tier_urls[-1]
        assert redis_url not in seen, (name, seen.get(redis_url))
        seen[redis_url] = name
    dyn = reg.systems["tierstore:dynamodb+memory"].make(ctx)
    assert isinstance(dyn, TierstoreDriver) and dyn.store_url.endswith("table_prefix=dynamodb.memory.")


def test_server_urls_from_env_with_defaults() -> None:
    urls = server_urls({"TIERSTORE_PG_URL": "postgresql+asyncpg://u@db:5433/x"})
    assert urls["postgres"] == "postgresql+asyncpg://u@db:5433/x"
    assert urls["mariadb"] == "mysql+aiomysql://root@127.0.0.1:3306/test"
    spec = next(s for s in builtin_systems({"TIERSTORE_PG_URL": "postgresql+asyncpg://u@db:5433/x"})
                if s.name == "raw:asyncpg")
    assert spec.servers == ("postgresql+asyncpg://u@db:5433/x",)


def test_select() -> None:
    reg = Registry.default({})
    systems, scenarios = select(reg, Settings())
    assert {s.kind for s in systems} == {"tierstore"}
    assert [s.name for s in scenarios] == list(reg.scenarios)
    quick, _ = select(reg, Settings(quick=True))
    assert {s.name for s in quick} < {s.name for s in systems}
    assert "tierstore:sqlite+memory" in {s.name for s in quick}
    picked, only = select(reg, Settings(systems=("raw:sqlite?", "peer:cashews"), scenarios=("get", "put")))
    assert [s.name for s in picked] == ["raw:sqlite3", "peer:cashews"]
    assert [s.name for s in only] == ["get", "put"]
    with pytest.raises(ValueError, match="unknown scenario"):
        select(reg, Settings(scenarios=("gets",)))
    with pytest.raises(ValueError, match="no system matches"):
        select(reg, Settings(systems=("nothing:*",)))


def testendpoints() -> None:
    assert harness.endpoints("memcached://a:1,b:2") == [("a", 1), ("b", 2)]
    assert harness.endpoints("postgresql+asyncpg://u:secret@h:5432/db") == [("h", 5432)]
    assert harness.endpoints("dynamodb://us-east-1?endpoint_url=http://127.0.0.1:8000") == [("127.0.0.1", 8000)]
    with pytest.raises(ValueError) as err:
        harness.endpoints("redis://u:secret@host/0")
    assert "secret" not in str(err.value)


# -- skip reasons ----------------------------------------------------------------------------------------


def _ctx(tmp_path: Any, **kw: Any) -> RunContext:
    return RunContext(settings=Settings(**kw), data=Dataset(partitions=2), env={}, workdir=str(tmp_path))


def _ctx_for_specs() -> RunContext:
    """A context for building drivers that are never opened (nothing is written to the work dir)."""
    return RunContext(settings=Settings(), data=Dataset(partitions=2), env={}, workdir="/nonexistent-tsbench")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_skip_reason_for_missing_module(tmp_path: Any) -> None:
    spec = SystemSpec(name="raw:x", make=lambda ctx: Driver(), modules=("no_such_module_tsbench",))
    reason = await unavailable(spec, _ctx(tmp_path), harness._Reachability())
    assert reason == "module no_such_module_tsbench is not installed"


async def test_skip_reason_for_unreachable_server(tmp_path: Any) -> None:
    port = _closed_port()
    spec = SystemSpec(name="raw:x", make=lambda ctx: Driver(), servers=(f"redis://u:pw@127.0.0.1:{port}/0",))
    reason = await unavailable(spec, _ctx(tmp_path), harness._Reachability(timeout=0.5))
    assert reason is not None and f"127.0.0.1:{port} is unreachable" in reason and "pw" not in reason


async def test_skip_reason_for_missing_backend_module(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tierstore import config

    monkeypatch.setitem(config.STORE_SCHEMES, "memory", ("tierstore.stores.not_written_yet", "X", "future"))
    spec = Registry.default({}).systems["tierstore:memory"]
    reason = await unavailable(spec, _ctx(tmp_path), harness._Reachability())
    assert reason is not None and "missing" in reason and "tierstore[future]" in reason


async def test_probe_exception_is_a_reason(tmp_path: Any) -> None:
    def probe(ctx: RunContext) -> str | None:
        raise RuntimeError("boom\nsecond line")

    spec = SystemSpec(name="raw:x", make=lambda ctx: Driver(), probe=probe)
    assert await unavailable(spec, _ctx(tmp_path), harness._Reachability()) == "RuntimeError: boom"


# -- a whole run on fake systems: JSON shape, ratios, skips --------------------------------------------


class FakeDriver(Driver):
    """get() costs ``delay`` seconds; get_many() fails when asked to."""

    caps = frozenset({GET, GET_MANY})

    def __init__(self, delay: float, *, fail_open: bool = False, fail_many: bool = False) -> None:
        self.delay = delay
        self.fail_open = fail_open
        self.fail_many = fail_many
        self.trips = 0
        self.closed = False

    async def open(self, data: Dataset) -> None:
        if self.fail_open:
            raise ConnectionError("refused by fake")

    async def aclose(self) -> None:
        self.closed = True

    def counters(self) -> dict[str, int]:
        return {"store": self.trips}

    async def verify(self, data: Dataset) -> str | None:
        return None  # holds no data to check

    def getter(self) -> GetFn:
        async def get(pk: str, sk: str) -> BenchItem | None:
            self.trips += 1
            await asyncio.sleep(self.delay)
            return None

        return get

    def batch_getter(self) -> GetManyFn:
        async def get_many(keys: Sequence[tuple[str, str]]) -> list[BenchItem | None]:
            if self.fail_many:
                raise RuntimeError("get_many exploded")
            self.trips += 1
            return [None] * len(keys)

        return get_many


class GetManyScenario(Scenario):
    name = "get_many_100"
    needs = frozenset({GET_MANY})
    cached = True

    def prepare(self, driver: Driver, data: Dataset) -> harness.Op:
        get_many = driver.batch_getter()
        return lambda i: get_many(data.many)


def _fake_registry(drivers: dict[str, FakeDriver]) -> Registry:
    reg = Registry()
    reg.add_scenario(Get())
    reg.add_scenario(GetManyScenario())
    reg.add_system(SystemSpec(
        name="tierstore:fake", make=lambda ctx: drivers["tierstore:fake"],
        store_floors={"*": ("raw:fast", "raw:slow")},
    ))
    reg.add_system(SystemSpec(name="raw:fast", make=lambda ctx: drivers["raw:fast"]))
    reg.add_system(SystemSpec(name="raw:slow", make=lambda ctx: drivers["raw:slow"]))
    reg.add_system(SystemSpec(name="raw:broken", make=lambda ctx: drivers["raw:broken"]))
    reg.add_system(SystemSpec(name="raw:absent", make=lambda ctx: Driver(), modules=("no_such_module_tsbench",)))

    def bad_make(ctx: RunContext) -> Driver:
        raise ValueError("cannot build")

    reg.add_system(SystemSpec(name="raw:unbuildable", make=bad_make))
    return reg


async def test_run_rows_ratios_and_skips(tmp_path: Any) -> None:
    drivers = {
        "tierstore:fake": FakeDriver(0.002),
        "raw:fast": FakeDriver(0.001, fail_many=True),
        "raw:slow": FakeDriver(0.004),
        "raw:broken": FakeDriver(0.001, fail_open=True),
    }
    settings = Settings(
        duration=0.03, rounds=2, partitions=2, checks=False, progress=False,
        systems=("tierstore:*", "raw:broken", "raw:absent", "raw:unbuildable"),
    )
    rep = await harness.run(settings, _fake_registry(drivers), env={})
    rows = {(r["scenario"], r["system"]): r for r in rep.rows}
    # floors were added because tierstore:fake ran; the broken and absent ones were skipped with reasons
    assert set(rows) == {
        ("get", "tierstore:fake"), ("get", "raw:fast"), ("get", "raw:slow"),
        ("get_many_100", "tierstore:fake"), ("get_many_100", "raw:slow"),
    }
    reasons = {(s["system"], s.get("scenario")): s["reason"] for s in rep.skipped}
    assert reasons[("raw:broken", None)] == "setup failed: ConnectionError: refused by fake"
    assert reasons[("raw:absent", None)] == "module no_such_module_tsbench is not installed"
    assert reasons[("raw:unbuildable", None)] == "setup failed: ValueError: cannot build"
    assert reasons[("raw:fast", "get_many_100")] == "RuntimeError: get_many exploded"
    assert all(d.closed for d in drivers.values())
    get = rows[("get", "tierstore:fake")]
    assert get["rounds"] == 2 and get["round_trips_per_op"] == 1.0
    assert get["floor"] == "raw:fast"
    assert get["ratio_vs_floor"] == pytest.approx(get["p50_us"] / rows[("get", "raw:fast")]["p50_us"], abs=1e-3)
    assert set(get["ratios"]) == {"raw:fast", "raw:slow"}
    assert get["ratios"]["raw:slow"] < 1 < get["ratios"]["raw:fast"]
    # the primary floor has no get_many row: the next floor present is used
    assert rows[("get_many_100", "tierstore:fake")]["floor"] == "raw:slow"
    assert rows[("get", "raw:fast")]["ratio_vs_floor"] is None

    path = tmp_path / "out.json"
    report.write_json(rep, str(path))
    doc = json.loads(path.read_text())
    assert set(doc) == {"results", "skipped", "checks", "meta"}
    for row in doc["results"]:
        for key in report.REQUIRED_KEYS:
            assert key in row
        assert isinstance(row["ops_per_s"], float) and row["ops_per_s"] > 0
    text = report.format_report(rep)
    assert "tierstore:fake" in text and "Skipped:" in text and "refused by fake" in text


# -- join_100 ------------------------------------------------------------------------------------------


def _expected_orders(data: Dataset, pk: str) -> list[BenchOrder]:
    return [o for o in data.orders if o.pk == pk]


@pytest.mark.parametrize("mode", ["batch", "n+1"])
@pytest.mark.parametrize("client", ["dict", "sqlite3", "aiosqlite"])
async def test_join_floors_do_the_same_work(tmp_path: Any, client: str, mode: str) -> None:
    data = Dataset(partitions=3)
    driver: JoinFloor
    if client == "dict":
        driver = DictJoinDriver(mode)
    elif client == "sqlite3":
        driver = Sqlite3JoinDriver(str(tmp_path / "j.db"), mode)
    else:
        driver = AiosqliteJoinDriver(str(tmp_path / "j.db"), mode)
    await driver.open(data)
    try:
        join = driver.joiner()
        for pk in data.order_partition_keys:
            before = driver.counters()["store"]
            pairs = join_pairs(await join(pk, JOIN_PAGE))
            check_join(pairs, _expected_orders(data, pk), data)
            # batch: the page query + one read of the 90 distinct customers; n+1: + one read per order
            assert driver.counters()["store"] - before == (2 if mode == "batch" else 1 + JOIN_PAGE)
        assert join_pairs(await join("o9999", JOIN_PAGE)) == []  # no orders: no customer read
    finally:
        await driver.aclose()


def test_join_floor_modes() -> None:
    with pytest.raises(ValueError, match="join mode"):
        DictJoinDriver("n+2")
    assert DictJoinDriver("n+1").tag == "nplus1"


async def test_tierstore_join_is_one_query_and_one_batch() -> None:
    data = Dataset(partitions=3)
    driver = TierstoreDriver("memory://", [])
    await driver.open(data)
    try:
        join = driver.joiner()
        pk = data.order_partition_keys[1]
        before = driver.counters()["store"]
        page = await join(pk, JOIN_PAGE)
        assert driver.counters()["store"] - before == 2
        check_join(join_pairs(page), _expected_orders(data, pk), data)
        assert all(o.customer is not None for o in page.items)
    finally:
        await driver.aclose()


def test_check_join_catches_wrong_results() -> None:
    data = Dataset(partitions=2)
    orders = _expected_orders(data, data.order_partition_keys[0])
    right = [(o, data.item((o.customer_pk, o.customer_sk))) for o in orders]
    check_join(right, orders, data)
    with pytest.raises(AssertionError, match="expected"):
        check_join(right[:-1], orders, data)  # an order missing
    with pytest.raises(AssertionError, match="customer"):
        check_join([*right[:-1], (orders[-1], None)], orders, data)  # a customer not attached
    wrong = data.items[0] if data.items[0] != right[0][1] else data.items[1]
    with pytest.raises(AssertionError, match="customer"):
        check_join([(orders[0], wrong), *right[1:]], orders, data)  # somebody else's customer


class _WrongJoinDriver(Driver):
    caps = frozenset({JOIN})

    def joiner(self) -> JoinFn:
        async def join(pk: str, limit: int) -> list[Any]:
            return []

        return join


async def test_join_100_on_the_embedded_systems(tmp_path: Any) -> None:
    reg = Registry.default({})
    reg.add_system(SystemSpec(name="raw:wrong-join", make=lambda ctx: _WrongJoinDriver()))
    settings = Settings(
        systems=("tierstore:memory", "tierstore:memory+memory", "raw:wrong-join"), scenarios=("join_100",),
        duration=0.04, rounds=1, partitions=3, checks=False, progress=False,
    )
    rep = await harness.run(settings, reg, env={})
    rows = {r["system"]: r for r in rep.rows}
    assert set(rows) == {"tierstore:memory", "tierstore:memory+memory", "raw:dict-join-batch", "raw:dict-join-n+1"}
    assert rows["tierstore:memory"]["round_trips_per_op"] == 2.0
    assert rows["tierstore:memory+memory"]["round_trips_per_op"] == 1.0  # the page query; customers from L1
    assert rows["raw:dict-join-batch"]["round_trips_per_op"] == 2.0
    assert rows["raw:dict-join-n+1"]["round_trips_per_op"] == 101.0
    assert rows["tierstore:memory"]["floor"] == "raw:dict-join-batch"
    assert set(rows["tierstore:memory"]["ratios"]) == {"raw:dict-join-batch", "raw:dict-join-n+1"}
    reasons = {(s["system"], s.get("scenario")): s["reason"] for s in rep.skipped}
    assert reasons[("raw:wrong-join", "join_100")].startswith("AssertionError: join returned orders []")
    checks = {(c["check"], c["system"]): c for c in report.targets_from_rows(rep.rows)}
    vs = checks[("join_vs_hand_batch", "tierstore:memory")]
    assert vs["value"] == rows["tierstore:memory"]["ratio_vs_floor"] and "raw:dict-join-batch" in vs["detail"]
    assert checks[("join_round_trips", "tierstore:memory")]["ok"] is True
    assert ("join_vs_hand_batch", "tierstore:memory+memory") not in checks  # cache-off rows only


async def test_verify_notices_data_that_changed_under_a_system(tmp_path: Any) -> None:
    data = Dataset(partitions=3)
    driver = TierstoreDriver("memory://", ["memory://"])
    await driver.open(data)
    floor = DictJoinDriver("batch")
    await floor.open(data)
    try:
        assert await driver.verify(data) is None and await floor.verify(data) is None
        await driver.repo.get_many(data.many)  # cached now: the check must look past the tiers
        await driver.db.store.truncate(tierstore.schema_of(BenchItem))  # another run reloads the table…
        reason = await driver.verify(data)
        assert reason is not None and "100 of 100 items differ" in reason
        floor._customers.clear()
        assert "customer" in (await floor.verify(data) or "")
    finally:
        await driver.aclose()


class _ChangedDriver(FakeDriver):
    async def verify(self, data: Dataset) -> str | None:
        return "3 of 100 items differ from the data set, e.g. ('p0001', 's0002')"


async def test_rows_of_a_system_whose_data_changed_are_discarded(tmp_path: Any) -> None:
    drivers = {
        "tierstore:fake": FakeDriver(0.001),
        "raw:fast": _ChangedDriver(0.001),
        "raw:slow": FakeDriver(0.002),
        "raw:broken": FakeDriver(0.001, fail_open=True),
    }
    settings = Settings(duration=0.02, rounds=1, partitions=2, checks=False, progress=False, scenarios=("get",))
    rep = await harness.run(settings, _fake_registry(drivers), env={})
    assert {r["system"] for r in rep.rows} == {"tierstore:fake", "raw:slow"}
    assert rep.rows[0]["floor"] == "raw:slow"
    reasons = {s["system"]: s["reason"] for s in rep.skipped}
    assert reasons["raw:fast"].startswith("results discarded, its data changed during the run")
    assert "3 of 100 items differ" in reasons["raw:fast"]


def test_ratio_uses_throughput_for_concurrent_scenarios() -> None:
    sys_row = {"p50_us": 100.0, "ops_per_s": 4000.0}
    floor = {"p50_us": 50.0, "ops_per_s": 1000.0}
    assert report.ratio(sys_row, floor) == 2.0
    assert report.ratio(sys_row, floor, GetConcurrent64.concurrency) == 0.25
    assert report.ratio({"p50_us": None}, floor) is None


def test_targets_from_rows() -> None:
    rows = [
        {"scenario": "get", "system": "tierstore:sqlite", "p50_us": 10.0, "cpu_us_per_op": 9.0},
        {"scenario": "get", "system": "raw:sqlalchemy-core-sqlite", "p50_us": 100.0},
        {"scenario": "get", "system": "raw:aiosqlite", "p50_us": 40.0},
        {"scenario": "get", "system": "tierstore:sqlite+memory", "p50_us": 1.7, "cpu_us_per_op": 1.6},
    ]
    checks = {(c["check"], c["system"]): c for c in report.targets_from_rows(rows)}
    assert checks[("get_cache_off_vs_core", "tierstore:sqlite")]["value"] == 0.1
    assert checks[("sqlite_get_vs_aiosqlite", "tierstore:sqlite")]["value"] == 0.25
    l1 = checks[("l1_hit_get_us", "tierstore:sqlite+memory")]
    assert l1["value"] == 1.7 and l1["ok"] is False
    assert not any(c["check"].startswith("redis") for c in checks.values())  # no Redis rows: no Redis checks


def test_targets_for_later_backends() -> None:
    rows = [
        {"scenario": "get", "system": "tierstore:postgres+redis", "p50_us": 50.0, "cpu_us_per_op": 40.0},
        {"scenario": "get", "system": "raw:redis-get-decode", "p50_us": 48.0, "cpu_us_per_op": 45.0},
        {"scenario": "get", "system": "peer:aiocache", "p50_us": 75.0},
        {"scenario": "get_concurrent_64", "system": "tierstore:postgres+redis", "p50_us": 9.0, "ops_per_s": 60_000.0},
        {"scenario": "get_concurrent_64", "system": "raw:redis-get-decode", "p50_us": 9.0, "ops_per_s": 10_000.0},
        {"scenario": "herd_100", "system": "tierstore:postgres+redis", "p50_us": 900.0, "round_trips_per_op": 2.0},
        {"scenario": "get", "system": "tierstore:dynamodb", "p50_us": 300.0, "cpu_us_per_op": 100.0},
        {"scenario": "get", "system": "raw:aioboto3", "p50_us": 900.0, "cpu_us_per_op": 600.0},
    ]
    checks = {c["check"]: c for c in report.targets_from_rows(rows)}
    assert checks["redis_get_vs_raw"]["value"] == pytest.approx(50 / 48, abs=1e-3)
    assert checks["redis_get_vs_raw"]["ok"] is True  # within 1.08
    assert checks["redis_get_vs_aiocache"]["ok"] is True
    assert "redis_get_vs_cashews" not in checks  # that peer did not run
    assert checks["redis_concurrent_vs_raw"]["value"] == pytest.approx(1 / 6, abs=1e-3)
    assert checks["redis_concurrent_vs_raw"]["ok"] is True
    assert checks["herd_store_reads"]["ok"] is False
    assert checks["dynamodb_get_cpu_vs_aioboto3"]["value"] == pytest.approx(1 / 6, abs=1e-3)


def test_targets_for_joins_and_the_dax_style_system() -> None:
    rows = [
        {"scenario": "join_100", "system": "tierstore:postgres", "p50_us": 130.0, "round_trips_per_op": 2.0},
        {"scenario": "join_100", "system": "raw:asyncpg-join-batch", "p50_us": 100.0},
        {"scenario": "join_100", "system": "tierstore:sqlite", "p50_us": 140.0, "round_trips_per_op": 3.0},
        {"scenario": "join_100", "system": "raw:sqlite3-join-batch", "p50_us": 100.0},
        {"scenario": "join_100", "system": "raw:aiosqlite-join-batch", "p50_us": 400.0},
        {"scenario": "query_page", "system": DAX_STYLE, "p50_us": 20.0, "store_round_trips_per_op": 0.0},
        {"scenario": "query_page", "system": "tierstore:dynamodb", "p50_us": 900.0, "store_round_trips_per_op": 1.0},
    ]
    checks = {(c["check"], c["system"]): c for c in report.targets_from_rows(rows)}
    assert checks[("join_vs_hand_batch", "tierstore:postgres")]["value"] == 1.3
    assert checks[("join_vs_hand_batch", "tierstore:postgres")]["ok"] is True
    sqlite = checks[("join_vs_hand_batch", "tierstore:sqlite")]  # against sqlite3, the store's own driver
    assert sqlite["value"] == 1.4 and sqlite["ok"] is False
    assert checks[("join_round_trips", "tierstore:sqlite")]["ok"] is False
    assert checks[("dax_style_query_cache_hits", DAX_STYLE)]["ok"] is True
    assert ("dax_style_query_cache_hits", "tierstore:dynamodb") not in checks


def test_progress_bar_draws_only_when_enabled() -> None:
    import io

    out = io.StringIO()
    bar = harness.Progress(enabled=True, stream=out)
    bar.begin("bench", 4)
    bar.advance("get · raw:x")
    bar.note("skipped raw:y: reason")
    text = out.getvalue()
    assert "[#######" in text and "1/4" in text and "skipped raw:y: reason\n" in text
    quiet = io.StringIO()
    off = harness.Progress(enabled=False, stream=quiet)
    off.begin("bench", 2)
    off.advance("x")
    off.note("only notes")
    assert quiet.getvalue() == "only notes\n"


# -- CLI -------------------------------------------------------------------------------------------------


def test_cli_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"tierstore {tierstore.__version__}"


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["bench", "--scenarios", "gets"]) == 2
    assert "unknown scenario" in capsys.readouterr().err
    assert main(["bench", "--duration", "0"]) == 2
    assert main(["bench", "--bogus"]) == 2


def test_cli_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    assert "get_concurrent_64" in out and "raw:sqlalchemy-core-postgres" in out and "peer:cashews" in out


def test_cli_reshard_delegates(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def fake_main(argv: list[str]) -> int:
        seen.append(argv)
        return 7

    fake = types.ModuleType("tierstore.reshard")
    fake.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tierstore.reshard", fake)
    monkeypatch.setattr(tierstore, "reshard", fake, raising=False)
    assert main(["reshard", "--plan", "x"]) == 7
    assert seen == [["--plan", "x"]]


def test_cli_reshard_missing(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "tierstore.reshard", None)
    monkeypatch.delattr(tierstore, "reshard", raising=False)
    assert main(["reshard"]) == 2
    assert "tierstore reshard is not available" in capsys.readouterr().err


# -- benchmarks/README.md runs ---------------------------------------------------------------------------


def test_benchmarks_readme_examples_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    import pathlib
    import re
    import threading

    readme = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "README.md"
    blocks = re.findall(r"^```python\n(.*?)^```", readme.read_text(), re.DOTALL | re.MULTILINE)
    assert blocks
    monkeypatch.chdir(tmp_path)
    errors: list[BaseException] = []

    def exec_blocks() -> None:  # the example calls asyncio.run(): give it a thread without a running loop
        namespace: dict[str, Any] = {"__name__": "bench_readme"}
        try:
            for i, block in enumerate(blocks):
                exec(compile(block, f"benchmarks/README.md[block {i}]", "exec"), namespace)  # noqa: S102
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=exec_blocks)
    worker.start()
    worker.join(120)
    assert not worker.is_alive()
    if errors:
        raise errors[0]
