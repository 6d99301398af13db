"""join_100 and routing micro-benchmarks.

    PYTHONPATH=src python benchmarks/join_micro.py [--quick] [--json PATH] [--stores memory,sqlite,postgres]

``tierstore bench --scenarios join_100`` measures the join against hand-written code on the raw clients
(``raw:<client>-join-batch`` / ``-join-n+1``). This script keeps the other comparison: the join machinery
against the same batch written by hand on tierstore's own repository API (what ``join()`` itself costs).

``join_100``: one query returning 100 orders, then each order's product (100 distinct keys), three ways on
the same data in the same run — ``tierstore`` (``query(...).join(Order.product)``), ``hand-batch`` (the same
query, then one ``get_many`` of the de-duplicated keys and a dict to attach them, written by hand) and
``naive-n+1`` (the query, then one ``get`` per order). Rounds interleave the three, so machine noise hits
all alike; compare ratios, not absolute times. Without a cache tier, so every run reaches the store.

``route``: ``Router.shard_for`` per key (new partitions, and partitions seen before), and ``get_many(100)``
through a 2-shard ``ShardedStore`` of MemoryStores against one MemoryStore (the per-key overhead of routing
and regrouping).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import tierstore
from tierstore import Entity, MemoryStore, PartitionKey, Ref, SortKey
from tierstore.backends import schema_of
from tierstore.routing import Router
from tierstore.stores.sharded import ShardedStore

PG_URL = os.environ.get("TIERSTORE_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


class Product(Entity, table="bench_join_products"):
    sku: PartitionKey[str]
    title: str
    price_cents: int = 0


class Order(Entity, table="bench_join_orders"):
    customer_id: PartitionKey[str]
    order_id: SortKey[str]
    sku: str
    qty: int = 1
    product = Ref(Product, "sku")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def row(scenario: str, system: str, times: list[float], trips: float, **extra: Any) -> dict[str, Any]:
    p50 = statistics.median(times)
    return {
        "scenario": scenario,
        "system": system,
        "ops_per_s": round(1 / statistics.mean(times), 1),
        "p50_us": round(p50 * 1e6, 1),
        "p99_us": round(percentile(times, 0.99) * 1e6, 1),
        "round_trips_per_op": trips,
        **extra,
    }


async def open_store(kind: str, tmp: str) -> tierstore.Database | None:
    if kind == "memory":
        return await tierstore.connect(MemoryStore()).open()
    if kind == "sharded-memory":
        store = ShardedStore(Router.uniform(["a", "b"]), {"a": MemoryStore(), "b": MemoryStore()})
        return await tierstore.connect(store).open()
    url = {"sqlite": f"sqlite+aiosqlite:///{tmp}/bench.db", "postgres": PG_URL}[kind]
    try:
        db = tierstore.connect(url)
        await db.open()
    except Exception as exc:  # unreachable server or backend not installed: skip with the reason
        print(f"skip {kind}: {exc}", file=sys.stderr)
        return None
    return db


async def bench_join(kind: str, rounds: int, tmp: str) -> list[dict[str, Any]]:
    db = await open_store(kind, tmp)
    if db is None:
        return []
    try:
        for e in (Product, Order):
            await db.create_tables(e)
            await db.store.truncate(schema_of(e))
        orders, products = db.repository(Order), db.repository(Product)
        await products.put_many([Product(f"p{i:03}", f"Product {i}", i) for i in range(100)])
        await orders.put_many([Order("feed", f"o{i:03}", f"p{(i * 37) % 100:03}") for i in range(100)])

        async def tierstore_join() -> Any:
            page = await orders.query("feed").join(Order.product)
            assert page.items[-1].product is not None
            return page

        async def hand_batch() -> Any:
            page = await orders.query("feed")
            skus = list(dict.fromkeys(o.sku for o in page.items))
            found = await products.get_many(skus)
            by_sku = {p.sku: p for p in found if p is not None}
            pairs = [(o, by_sku.get(o.sku)) for o in page.items]
            assert pairs[-1][1] is not None
            return pairs

        async def naive() -> Any:
            page = await orders.query("feed")
            pairs = [(o, await products.get(o.sku)) for o in page.items]
            assert pairs[-1][1] is not None
            return pairs

        variants: dict[str, Callable[[], Awaitable[Any]]] = {
            "tierstore": tierstore_join, "hand-batch": hand_batch, "naive-n+1": naive,
        }
        times: dict[str, list[float]] = {k: [] for k in variants}
        trips: dict[str, float] = {}
        for name, fn in variants.items():  # warm up, and count round trips once
            await fn()
            db.reset_stats()
            await fn()
            trips[name] = db.stats()["store"]["round_trips"]
        naive_every = 5  # N+1 is slow: sample it less often, still interleaved
        for r in range(rounds):
            for name, fn in variants.items():
                if name == "naive-n+1" and r % naive_every:
                    continue
                t0 = time.perf_counter()
                await fn()
                times[name].append(time.perf_counter() - t0)
        base = statistics.median(times["hand-batch"])
        return [
            row("join_100", f"{name}:{kind}", times[name], trips[name],
                ratio_vs_hand_batch=round(statistics.median(times[name]) / base, 3))
            for name in variants
        ]
    finally:
        await db.aclose()


async def bench_routing(rounds: int) -> list[dict[str, Any]]:
    schema = schema_of(Order)
    router = Router.uniform(["a", "b", "c", "d"])
    keys = [(f"customer-{i}", "o1") for i in range(10_000)]
    cold: list[float] = []
    warm: list[float] = []
    for _ in range(max(5, rounds // 20)):
        router._memo.clear()  # every partition new: the full hash path
        t0 = time.perf_counter()
        for k in keys:
            router.shard_for(schema, k)
        cold.append((time.perf_counter() - t0) / len(keys))
        t0 = time.perf_counter()  # the same partitions again: the router's memo answers
        for k in keys:
            router.shard_for(schema, k)
        warm.append((time.perf_counter() - t0) / len(keys))
    out = [row("route_key", "tierstore:router-cold", cold, 0), row("route_key", "tierstore:router-warm", warm, 0)]

    plain = MemoryStore()
    sharded = ShardedStore(Router.uniform(["a", "b"]), {"a": MemoryStore(), "b": MemoryStore()})
    items = [Order(f"c{i}", "o1", "p1") for i in range(100)]
    flat = [schema.key_of(i) for i in items]
    for s in (plain, sharded):
        await s.put_many(schema, items)
    t_plain: list[float] = []
    t_sharded: list[float] = []
    for _ in range(rounds):
        for s, acc in ((plain, t_plain), (sharded, t_sharded)):
            t0 = time.perf_counter()
            await s.get_many(schema, flat)
            acc.append(time.perf_counter() - t0)
    overhead = (statistics.median(t_sharded) - statistics.median(t_plain)) / 100
    out.append(row("get_many_100", "tierstore:memory", t_plain, 1))
    out.append(row("get_many_100", "tierstore:sharded-memory", t_sharded, 2,
                   routing_overhead_us_per_key=round(overhead * 1e6, 3)))
    return out


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'scenario':<14}{'system':<30}{'p50 µs':>10}{'p99 µs':>10}{'trips':>7}  extra")
    for r in rows:
        extra = {k: v for k, v in r.items()
                 if k not in ("scenario", "system", "ops_per_s", "p50_us", "p99_us", "round_trips_per_op")}
        print(f"{r['scenario']:<14}{r['system']:<30}{r['p50_us']:>10.1f}{r['p99_us']:>10.1f}"
              f"{r['round_trips_per_op']:>7}  {extra or ''}")


async def run(stores: list[str], quick: bool) -> list[dict[str, Any]]:
    rounds = 60 if quick else 300
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in stores:
            rows += await bench_join(kind, rounds, tmp)
    rows += await bench_routing(rounds)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", help="write {'results': [...]} here")
    p.add_argument("--stores", default="memory,sharded-memory,sqlite,postgres")
    args = p.parse_args(argv)
    rows = asyncio.run(run([s.strip() for s in args.stores.split(",") if s.strip()], args.quick))
    print_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
