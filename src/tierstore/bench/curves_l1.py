"""The in-process tier's curves: hit ratio against its ceiling as capacity grows, and hit / miss cost as the
number of entries grows.

``l1_capacity``: a memory tier over the memory store holding 1 %, 10 % and 50 % of a key space, read cold with
Zipf(0.99) keys through ``repo.get``. Its hit ratio is reported with Belady's MIN and the static top-k on the
same trace, the static top-k of the distribution, and a plain LRU (:mod:`tierstore.bench.ceiling`); the ratio
to the ceiling is the tier's hit ratio over MIN's (no cache filled on demand can beat MIN).

``dataset_size``: a memory tier of N entries, full, over a memory store of N + M items. Hit cost: ``repo.get``
of resident keys, uniform and Zipf(0.99) over the N. Miss cost: ``repo.get`` of M keys never read before, each
once — a store read, a fill and one eviction each. Eviction is O(1), so both should stay flat as N grows. The
same uniform reads on ``raw:dict-decode`` (a dict of N encoded items + decode) show what the CPU caches add as
the working set grows, which no O(1) structure avoids.
Timing: batches of 100 gets, ``perf_counter_ns`` around each; the p50 of the batch means is reported.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Sequence
from typing import Any

from tierstore.bench.ceiling import belady_ratio, lru_ratio, trace_top_k, zipf_top_k
from tierstore.bench.data import Dataset, zipf_sequence
from tierstore.bench.floors.cache import DictDecodeDriver
from tierstore.bench.tierstore_driver import TierstoreDriver
from tierstore.bench.timing import percentile

__all__ = ["BATCH", "dataset_size_curve", "l1_capacity_curve"]

BATCH = 100
TIER = "tierstore:memory+memory"
FLOOR_HIT = "raw:dict-decode read, uniform"


def _tier_url(capacity: int) -> str:
    return f"memory://?max_items={capacity}&max_bytes={max(64 << 20, capacity * 1024)}&ttl=3600"


def _l1(driver: TierstoreDriver) -> tuple[int, int]:
    c = driver.counters()
    return c.get("l1_hits", 0), c.get("l1_misses", 0)


async def l1_capacity_curve(cfg: Any) -> dict[str, Any]:
    """Hit ratio of the memory tier against the ceilings, per capacity (percent of the key space)."""
    keys_n = max(100, cfg.l1_keys - cfg.l1_keys % 100)
    data = Dataset(partitions=keys_n // 100, zipf_s=cfg.zipf_s, zipf_length=cfg.l1_trace, order_partitions=0)
    trace = data.zipf
    pks = [k[0] for k in data.keys]
    sks = [k[1] for k in data.keys]
    xs = list(cfg.points_of("l1_capacity"))
    names = ("tier", "belady", "top_k_trace", "top_k_zipf", "lru")
    values: dict[str, list[Any]] = {n: [] for n in names}
    us_per_get: list[float] = []
    for pct in xs:
        capacity = max(1, keys_n * pct // 100)
        driver = TierstoreDriver("memory://", [_tier_url(capacity)])
        await driver.open(data)
        try:
            get = driver.getter()
            h0, m0 = _l1(driver)
            t0 = time.perf_counter_ns()
            for idx in trace:
                await get(pks[idx], sks[idx])
            us_per_get.append(round((time.perf_counter_ns() - t0) / len(trace) / 1000, 3))
            h1, m1 = _l1(driver)
        finally:
            await driver.aclose()
        hits, total = h1 - h0, (h1 - h0) + (m1 - m0)
        values["tier"].append(round(hits / total, 4) if total else None)
        values["belady"].append(round(belady_ratio(trace, capacity), 4))
        values["top_k_trace"].append(round(trace_top_k(trace, capacity), 4))
        values["top_k_zipf"].append(round(zipf_top_k(keys_n, cfg.zipf_s, capacity), 4))
        values["lru"].append(round(lru_ratio(trace, capacity), 4))
    labels = {
        "tier": f"{TIER} (hit ratio)",
        "belady": "Belady MIN, same trace (ceiling)",
        "top_k_trace": "static top-k, same trace",
        "top_k_zipf": "static top-k, Zipf distribution",
        "lru": "plain LRU, same trace",
    }

    def over(a: str, b: str) -> list[Any]:
        return [round(x / y, 3) if x is not None and y else None for x, y in zip(values[a], values[b], strict=True)]

    return {
        "name": "l1_capacity",
        "description": f"cold Zipf({cfg.zipf_s}) get() of {len(trace):,} keys over {keys_n:,} items",
        "axis": "L1 capacity (% of the key space)",
        "x": xs,
        "metric": "hit_ratio",
        "unit": "hit ratio",
        "log_x": False,
        "series": {labels[n]: values[n] for n in names},
        "ratios": {
            "tier ÷ Belady MIN": over("tier", "belady"),
            "tier ÷ static top-k (trace)": over("tier", "top_k_trace"),
            "tier ÷ LRU": over("tier", "lru"),
        },
        "capacity": [max(1, keys_n * pct // 100) for pct in xs],
        "us_per_get": us_per_get,
        "key_space": keys_n,
        "trace": len(trace),
        "skipped": [],
    }


async def _timed(get: Any, pks: Sequence[str], sks: Sequence[str], order: Sequence[int]) -> tuple[float, float]:
    """(p50 over batches of :data:`BATCH` gets of the keys at ``order``, mean CPU time), ns per get."""
    clock = time.perf_counter_ns
    samples: list[float] = []
    cpu0 = time.process_time_ns()
    for start in range(0, len(order) - BATCH + 1, BATCH):
        batch = order[start : start + BATCH]
        t0 = clock()
        for i in batch:
            await get(pks[i], sks[i])
        samples.append((clock() - t0) / BATCH)
    cpu = (time.process_time_ns() - cpu0) / max(1, len(samples) * BATCH)
    samples.sort()
    return percentile(samples, 50), cpu


async def dataset_size_curve(cfg: Any) -> dict[str, Any]:
    """µs per hit (uniform, Zipf) and per miss of a full memory tier of N entries, per N."""
    xs = list(cfg.points_of("dataset_size"))
    series: dict[str, list[Any]] = {"hit, uniform": [], "hit, Zipf 0.99": [], "miss (store read, fill, evict)": [],
                                    FLOOR_HIT: []}
    checks: dict[str, list[Any]] = {"hit_ratio_uniform": [], "hit_ratio_zipf": [], "miss_hit_ratio": [],
                                    "entries_after": []}
    cpu: dict[str, list[Any]] = {label: [] for label in series}
    for n in xs:
        cold = min(n, cfg.miss_ops)
        total = n + cold
        data = Dataset(partitions=-(-total // 100), zipf_length=10, order_partitions=0)
        keys = data.keys
        pks = [k[0] for k in keys]
        sks = [k[1] for k in keys]
        driver = TierstoreDriver("memory://", [_tier_url(n)])
        await driver.open(data)
        floor = DictDecodeDriver()  # the same reads on a plain dict + decode: what the machine's caches add
        await floor.open(data)
        del data
        try:
            get = driver.getter()
            for i in range(n):  # fill the tier: n entries, none evicted yet
                await get(pks[i], sks[i])
            rng = random.Random(n)
            uniform = [rng.randrange(n) for _ in range(cfg.hit_ops)]
            zipf = zipf_sequence(n, cfg.hit_ops, cfg.zipf_s, n + 1)
            gc.collect()
            for label, order, key in (("hit, uniform", uniform, "hit_ratio_uniform"),
                                      ("hit, Zipf 0.99", zipf, "hit_ratio_zipf"),
                                      ("miss (store read, fill, evict)", list(range(n, n + cold)), "miss_hit_ratio")):
                h0, m0 = _l1(driver)
                ns, cpu_ns = await _timed(get, pks, sks, order)
                h1, m1 = _l1(driver)
                series[label].append(round(ns / 1000, 3))
                cpu[label].append(round(cpu_ns / 1000, 3))
                checks[key].append(round((h1 - h0) / max(1, (h1 - h0) + (m1 - m0)), 4))
            l1 = driver.db.cache.l1
            checks["entries_after"].append(len(l1) if l1 is not None else None)
            ns, cpu_ns = await _timed(floor.getter(), pks, sks, uniform)
            series[FLOOR_HIT].append(round(ns / 1000, 3))
            cpu[FLOOR_HIT].append(round(cpu_ns / 1000, 3))
        finally:
            await driver.aclose()
            del floor
            gc.collect()

    def growth(values: list[Any]) -> float | None:
        return round(values[-1] / values[0], 3) if values and values[0] else None

    return {
        "name": "dataset_size",
        "description": "memory tier over the memory store, full at N entries",
        "axis": "entries in the memory tier (N)",
        "x": xs,
        "metric": "us_per_get",
        "unit": "µs per get (p50 of batches of 100)",
        "log_x": True,
        "series": series,
        "ratios": {f"{label}: cost at N ÷ cost at {xs[0]:,}": [
            round(v / values[0], 3) if values[0] else None for v in values] for label, values in series.items()},
        "growth": {label: growth(values) for label, values in series.items()},
        "cpu_us_per_get": cpu,
        "cpu_growth": {label: growth(values) for label, values in cpu.items()},
        **checks,
        "skipped": [],
    }
