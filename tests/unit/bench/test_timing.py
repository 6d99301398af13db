"""Timing of one cell (tierstore.bench.timing): percentiles, the JSON row of a cell, the timing loop."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from tierstore.bench.api import Cell
from tierstore.bench.scenarios import Get, Herd100
from tierstore.bench.timing import measure, percentile, summarize


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


async def test_measure_batches_fast_ops_and_counts() -> None:
    calls: list[int] = []

    async def op(i: int) -> None:
        calls.append(i)

    # The batch comes from the warm-up's mean: a warm-up long enough that one scheduler stall of a loaded
    # machine cannot make ~0.3 µs ops look like 20 µs ones (5 ms was not: a stall at its start left 3 ops).
    m = await measure(op, start=10, duration_s=0.02, warmup_s=0.1, counters=lambda: {"store": len(calls)})
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

    one = await measure(op, duration_s=0.03, warmup_s=0.005, concurrency=1)
    m = await measure(op, duration_s=0.03, warmup_s=0.005, concurrency=16)
    assert peak == 16
    assert m.ops == len(m.samples) == len(m.timed)
    # 16 tasks sleeping 1 ms each overlap: throughput well above one task's in the same run (ideally 16x; a
    # loaded machine stretches every sleep, so the bound is relative, not ops per second)
    assert m.ops / m.wall_ns > 3 * (one.ops / one.wall_ns)
