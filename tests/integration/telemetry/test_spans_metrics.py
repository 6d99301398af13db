"""Spans and metrics of a database with telemetry, read back through the OpenTelemetry SDK's in-memory span
exporter and metric reader: get, get_many, put, query and join on a SQLite store with two tiers (in-process +
a real Redis), a Redis failure (error.type on the tier's span, the operation itself succeeds) and coalesced
reads."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import tierstore
from tierstore import CachePolicy, Entity, PartitionKey, Ref, SortKey, Version
from tierstore.telemetry import Telemetry
from tierstore.testing import ProxiedServer, with_params

from _servers import REDIS_URL, require

pytestmark = pytest.mark.redis


class Customer(Entity, table="otel_customers"):
    id: PartitionKey[str]
    name: str
    version: Version = 0


class Order(Entity, table="otel_orders"):
    customer_id: PartitionKey[str]
    order_id: SortKey[str]
    total: int
    customer = Ref(Customer, "customer_id")


class Telem:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        meter_provider = MeterProvider(metric_readers=[self.reader])
        self.telemetry = Telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)

    def finished(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if name is None or s.name == name]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.parent is not None and s.parent.span_id == parent.context.span_id]

    def metrics(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        data = self.reader.get_metrics_data()
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    out.setdefault(m.name, []).extend(m.data.data_points)
        return out


@pytest.fixture
def telem() -> Iterator[Telem]:
    yield Telem()


@pytest.fixture
def redis_url(tierstore_prefix: str) -> str:
    require(REDIS_URL, "redis")
    return with_params(REDIS_URL, prefix=tierstore_prefix, timeout="1s", connect_timeout="1s")


@pytest.fixture
async def db(telem: Telem, redis_url: str, tmp_path: pathlib.Path) -> AsyncIterator[tierstore.Database]:
    async with tierstore.connect(
        f"sqlite+aiosqlite:///{tmp_path}/otel.db", ["memory://", redis_url], telemetry=telem.telemetry
    ) as database:
        yield database


def _one(spans: list[ReadableSpan]) -> ReadableSpan:
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


async def test_get_path_spans_from_store_to_l1(db: tierstore.Database, telem: Telem) -> None:
    customers = db.repository(Customer)
    await customers.put(Customer("c1", "Ann"))
    telem.spans.clear()

    await customers.get("c1")  # L1 and Redis miss: the store answers, both tiers are filled
    miss = _one(telem.finished("get otel_customers"))
    assert miss.kind == SpanKind.CLIENT
    attrs = dict(miss.attributes or {})
    assert attrs["db.system.name"] == "sqlite" and attrs["db.collection.name"] == "otel_customers"
    assert attrs["db.operation.name"] == "get" and attrs["tierstore.cache.misses"] == 1
    assert "error.type" not in attrs and miss.status.status_code != StatusCode.ERROR
    names = [s.name for s in telem.children(miss)]
    assert names == ["get memory", "get redis", "store.get otel_customers", "fill redis", "fill memory"], names
    redis_get = _one([s for s in telem.children(miss) if s.name == "get redis"])
    assert redis_get.attributes is not None
    assert redis_get.attributes["db.system.name"] == "redis" and redis_get.attributes["tierstore.cache.leases"] == 1

    telem.spans.clear()
    await customers.get("c1")  # L1 hit: no round trip at all
    hit = _one(telem.finished("get otel_customers"))
    assert hit.attributes is not None and hit.attributes["tierstore.cache.hit_tier"] == "memory"
    assert telem.children(hit) == []

    telem.spans.clear()
    await db.cache.tiers[0].clear()
    await customers.get("c1")  # Redis hit, filled back into L1
    from_redis = _one(telem.finished("get otel_customers"))
    assert from_redis.attributes is not None and from_redis.attributes["tierstore.cache.hit_tier"] == "redis"
    assert "store.get otel_customers" not in [s.name for s in telem.children(from_redis)]


async def test_get_many_counts_hits_per_tier_and_store_misses(db: tierstore.Database, telem: Telem) -> None:
    customers = db.repository(Customer)
    await customers.put_many([Customer(f"c{i}", "x") for i in range(3)])
    await customers.get_many(["c0", "c1"])  # both now in Redis and L1
    await db.cache.tiers[0].invalidate_many([db.repository(Customer).schema.cache_key(("c1",))])
    telem.spans.clear()
    await customers.get_many(["c0", "c1", "c2", "c0"])  # c0 from L1, c1 from Redis, c2 from the store
    span = _one(telem.finished("get_many otel_customers"))
    attrs = dict(span.attributes or {})
    assert attrs["db.operation.batch.size"] == 4
    assert attrs["tierstore.cache.hits"] == 2 and attrs["tierstore.cache.misses"] == 1, attrs
    store = _one([s for s in telem.children(span) if s.name.startswith("store.")])
    assert store.name == "store.get_many otel_customers"


async def test_put_and_a_failed_condition(db: tierstore.Database, telem: Telem) -> None:
    customers = db.repository(Customer)
    # The batch path (no per-item version check): one store call, then the tiers' invalidations.
    await customers.put_many([Customer("c1", "Ann"), Customer("c2", "Bob")], check_version=False)
    put_many = _one(telem.finished("put_many otel_customers"))
    assert put_many.attributes is not None and put_many.attributes["db.operation.batch.size"] == 2
    names = [s.name for s in telem.children(put_many)]
    assert names == ["store.put_many otel_customers", "invalidate redis", "invalidate memory"], names

    with pytest.raises(tierstore.ConditionFailed):
        await customers.put(Customer("c1", "Stale"), expect_version=7)
    failed = [s for s in telem.finished("put otel_customers")][-1]
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.attributes is not None and failed.attributes["error.type"] == "ConditionFailed"
    durations = telem.metrics()["db.client.operation.duration"]
    errored = [p for p in durations if p.attributes.get("error.type") == "ConditionFailed"]
    assert errored and errored[0].attributes["db.operation.name"] == "put" and errored[0].count == 1


async def test_query_with_a_join_is_one_span_with_the_join_inside(db: tierstore.Database, telem: Telem) -> None:
    await db.repository(Customer).put(Customer("c1", "Ann"))
    await db.repository(Order).put_many([Order("c1", f"o{i}", i) for i in range(3)])
    telem.spans.clear()
    page = await db.repository(Order).query("c1", limit=2).join(Order.customer)
    assert [o.customer.name for o in page] == ["Ann", "Ann"]
    query = _one(telem.finished("query otel_orders"))
    attrs = dict(query.attributes or {})
    assert attrs["db.operation.name"] == "query" and attrs["tierstore.query.items"] == 2
    assert list(attrs["tierstore.relations"]) == ["customer"]
    children = [s.name for s in telem.children(query)]
    assert children == ["store.query otel_orders", "get_many otel_customers"], children


async def test_coalesced_reads(db: tierstore.Database, telem: Telem) -> None:
    customers = db.repository(Customer)
    await customers.put_many([Customer(f"c{i}", "x") for i in range(4)])
    telem.spans.clear()
    # Same key, concurrently: the second joins the first's read (single flight).
    await asyncio.gather(customers.get("c0"), customers.get("c0"))
    gets = telem.finished("get otel_customers")
    assert len(gets) == 2
    assert [bool((g.attributes or {}).get("tierstore.cache.coalesced")) for g in gets].count(True) == 1
    # Different keys in one loop tick: one Redis round trip carries both, the joiner is marked.
    telem.spans.clear()
    await asyncio.gather(customers.get("c1"), customers.get("c2"), customers.get("c3"))
    redis_gets = telem.finished("get redis")
    joined = [s for s in redis_gets if (s.attributes or {}).get("tierstore.cache.coalesced")]
    assert joined, [dict(s.attributes or {}) for s in redis_gets]
    assert db.stats()["tiers"]["redis"]["coalesced_batches"] >= 1


async def test_a_redis_failure_is_error_type_on_the_tier_span(
    telem: Telem, redis_url: str, tmp_path: pathlib.Path
) -> None:
    async with ProxiedServer(redis_url) as proxy:
        url = with_params(proxy.url, timeout="100ms", connect_timeout="100ms", coherence="false")
        async with tierstore.connect(
            f"sqlite+aiosqlite:///{tmp_path}/f.db", ["memory://", url], telemetry=telem.telemetry,
            policy=CachePolicy(breaker_failures=1000),
        ) as db:
            customers = db.repository(Customer)
            await customers.put(Customer("c1", "Ann"))
            proxy.drop()
            await proxy.cut()  # Redis unreachable from now on
            telem.spans.clear()
            got = await customers.get("c1")
            assert got is not None and got.name == "Ann"  # the cache failed open: the store answered
            op = _one(telem.finished("get otel_customers"))
            assert op.status.status_code != StatusCode.ERROR and "error.type" not in (op.attributes or {})
            failed = [s for s in telem.children(op) if s.status.status_code == StatusCode.ERROR]
            assert failed and all(s.name.endswith(" redis") for s in failed), [s.name for s in failed]
            assert (failed[0].attributes or {}).get("error.type"), dict(failed[0].attributes or {})
            errors = telem.metrics()["tierstore.cache.errors"]
            assert next(p.value for p in errors if p.attributes["tierstore.cache.tier"] == "redis") >= 1


async def test_metrics_read_the_counters(db: tierstore.Database, telem: Telem) -> None:
    customers = db.repository(Customer)
    await customers.put_many([Customer(f"c{i}", "x") for i in range(5)])
    for _ in range(3):
        await customers.get_many([f"c{i}" for i in range(5)])
    await db.repository(Order).query("c1").all()
    m = telem.metrics()
    ops = {p.attributes["db.operation.name"] for p in m["db.client.operation.duration"]}
    assert {"put_many", "get_many", "query"} <= ops

    def by_tier(name: str) -> dict[str, Any]:
        return {p.attributes["tierstore.cache.tier"]: p.value for p in m[name]}

    stats = db.stats()["tiers"]
    assert by_tier("tierstore.cache.hits") == {"memory": stats["memory"]["hits"], "redis": stats["redis"]["hits"]}
    assert by_tier("tierstore.cache.hits")["memory"] == 10
    assert by_tier("tierstore.cache.misses")["memory"] == stats["memory"]["misses"]
    assert [p.value for p in m["tierstore.store.reads_saved"]] == [stats["memory"]["hits"] + stats["redis"]["hits"]]
    breakers = {(p.attributes["tierstore.cache.tier"], p.attributes.get("tierstore.cache.node")): p.value
                for p in m["tierstore.cache.breaker.state"]}
    assert breakers[("redis", None)] == 0
    assert by_tier("tierstore.cache.invalidation.backlog") == {"memory": 0, "redis": 0}
    assert by_tier("tierstore.cache.coherence.connected") == {"memory": 1}
    assert by_tier("tierstore.cache.l1.size") == {"memory": 5}
    assert by_tier("tierstore.cache.l1.bytes")["memory"] > 0
    assert "tierstore.cache.l1.evictions" in m


@pytest.mark.parametrize("store", ["sqlite", "memory"])
async def test_cache_off_join_reads_its_targets_in_one_traced_store_span(
    store: str, telem: Telem, tmp_path: pathlib.Path
) -> None:
    # SQLite answers the join's read by key, the memory store its get_many: one traced span either way.
    url = f"sqlite+aiosqlite:///{tmp_path}/otel.db" if store == "sqlite" else "memory://"
    async with tierstore.connect(url, [], telemetry=telem.telemetry) as database:
        await database.repository(Customer).put_many([Customer("c1", "Ann"), Customer("c2", "Bo")])
        await database.repository(Order).put_many([Order(f"c{i % 3}", f"o{i}", i) for i in range(6)])
        telem.spans.clear()
        page = await database.repository(Order).query("c1").join(Order.customer)
        assert [o.customer.name for o in page] == ["Ann", "Ann"]
        missing = await database.repository(Order).query("c0").join(Order.customer)
        assert [o.customer for o in missing] == [None, None]
    spans = telem.finished("store.get_many otel_customers")
    assert len(spans) == 2, [s.name for s in telem.finished()]
    assert [dict(s.attributes or {}).get("db.collection.name") for s in spans] == ["otel_customers"] * 2
