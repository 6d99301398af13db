"""The timing of one cell, and the statistics of its samples.

:func:`measure` warms an operation up, then times it with ``perf_counter_ns`` for a given duration. Ops faster
than ``BATCH_TARGET_NS`` (20 µs) are timed in batches, one sample being the mean of a batch: around a sub-
microsecond in-process hit the clock reads themselves would dominate. With concurrent callers every task
times its own ops and throughput is ops over wall time. :func:`summarize` turns what the rounds of a cell
gathered into the cell's JSON row.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tierstore.bench.api import Cell, Op, Scenario

__all__ = ["BATCH_TARGET_NS", "MAX_BATCH", "Measurement", "measure", "percentile", "summarize"]

# Ops faster than this are timed in batches (one sample = the mean of a batch): the clock would dominate.
BATCH_TARGET_NS = 20_000
MAX_BATCH = 512


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) of sorted ``values``, linearly interpolated (numpy's default)."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    pos = (len(values) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def _us(ns: float) -> float | None:
    return None if math.isnan(ns) else round(ns / 1000, 3)


def summarize(cell: Cell, scenario: Scenario) -> dict[str, Any]:
    """The JSON row of a cell (without ratios: those need the other rows)."""
    ordered = sorted(cell.samples)
    ops = max(cell.ops, 1)
    rt = sum(cell.counters.get(name, 0) for name in scenario.round_trips)
    row: dict[str, Any] = {
        "scenario": cell.scenario,
        "system": cell.system,
        "ops_per_s": round(cell.ops / (cell.wall_ns / 1e9), 1) if cell.wall_ns else 0.0,
        "p50_us": _us(percentile(ordered, 50)),
        "p99_us": _us(percentile(ordered, 99)),
        "round_trips_per_op": round(rt / ops, 3),
        "cpu_us_per_op": round(cell.cpu_ns / ops / 1000, 3),
        "ops": cell.ops,
        "samples": len(cell.samples),
        "batch": cell.batch,
        "concurrency": scenario.concurrency,
        "rounds": cell.rounds,
        "cell_s": round(cell.elapsed, 3),
    }
    for name in ("store", "tier"):
        if name in cell.counters:
            row[f"{name}_round_trips_per_op"] = round(cell.counters[name] / ops, 3)
    looked_up = cell.counters.get("query_cache_hits", 0) + cell.counters.get("query_cache_misses", 0)
    if looked_up:
        row["query_cache_hit_ratio"] = round(cell.counters["query_cache_hits"] / looked_up, 4)
    row.update(cell.extras)
    return row


@dataclass(slots=True)
class Measurement:
    samples: list[float]
    ops: int
    wall_ns: int
    cpu_ns: int
    counters: dict[str, int]
    timed: range
    batch: int


def _delta(after: Mapping[str, int], before: Mapping[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items()}


async def measure(
    op: Op,
    *,
    start: int = 0,
    duration_s: float,
    warmup_s: float,
    concurrency: int = 1,
    counters: Callable[[], dict[str, int]] = dict,
    batch: int | None = None,
    min_ops: int = 5,
) -> Measurement:
    """Warm up, then run ``op(start…)`` for ``duration_s``; ``perf_counter_ns`` around each op or batch.

    With ``concurrency`` > 1, that many tasks take the next index in turn and time their own ops; throughput
    is ops over wall time. ``batch``: ops per sample (default: chosen from the warm-up so one batch takes
    ~20 µs; 1 for slow ops).
    """
    clock = time.perf_counter_ns
    i = start
    if concurrency > 1:
        i, _ = await _run_concurrent(op, i, int(warmup_s * 1e9), concurrency, None)
        before, cpu0, wall0 = counters(), time.process_time_ns(), clock()
        timed_start = i
        samples: list[float] = []
        i, ops = await _run_concurrent(op, i, int(duration_s * 1e9), concurrency, samples)
        wall = clock() - wall0
        cpu = time.process_time_ns() - cpu0
        return Measurement(samples, ops, wall, cpu, _delta(counters(), before), range(timed_start, i), 1)

    warm_deadline = clock() + int(warmup_s * 1e9)
    t0 = clock()
    n = 0
    while True:
        await op(i)
        i += 1
        n += 1
        now = clock()
        if now >= warm_deadline and n >= 3:
            break
    mean = (now - t0) / n
    if batch is None:
        batch = max(1, min(MAX_BATCH, int(BATCH_TARGET_NS // max(mean, 1.0))))
    samples = []
    append = samples.append
    deadline_ns = int(duration_s * 1e9)
    before, cpu0 = counters(), time.process_time_ns()
    timed_start = i
    wall0 = clock()
    deadline = wall0 + deadline_ns
    ops = 0
    if batch == 1:
        while True:
            t0 = clock()
            await op(i)
            t1 = clock()
            append(t1 - t0)
            i += 1
            ops += 1
            if t1 >= deadline and ops >= min_ops:
                break
    else:
        while True:
            t0 = clock()
            for j in range(i, i + batch):
                await op(j)
            t1 = clock()
            append((t1 - t0) / batch)
            i += batch
            ops += batch
            if t1 >= deadline and ops >= min_ops:
                break
    wall = clock() - wall0
    cpu = time.process_time_ns() - cpu0
    return Measurement(samples, ops, wall, cpu, _delta(counters(), before), range(timed_start, i), batch)


async def _run_concurrent(
    op: Op, start: int, duration_ns: int, concurrency: int, samples: list[float] | None
) -> tuple[int, int]:
    clock = time.perf_counter_ns
    deadline = clock() + duration_ns
    state = [start, 0]

    async def worker() -> None:
        while clock() < deadline:
            j = state[0]
            state[0] = j + 1
            t0 = clock()
            await op(j)
            if samples is not None:
                samples.append(clock() - t0)
            state[1] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return state[0], state[1]
