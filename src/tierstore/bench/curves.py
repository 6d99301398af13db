"""Cost as work grows: ``tierstore bench --curves`` — one series of cells per curve, tierstore beside its floors
and peers on the same axis, written to JSON and plotted (one PNG per curve).

Curves (``CURVES``; points in ``DEFAULT_POINTS``):

- ``get_many``: keys per ``get_many`` call (1, 10, 100, 1000), cache warm. The Redis tier against raw ``MGET`` +
  msgspec decode and the aiocache / cashews ``multi_get`` peers; the memory tier against a dict + decode.
- ``concurrency``: tasks doing ``get`` at once (1, 8, 64, 256) over 512 warm keys. The Redis and Memcached tiers
  against a raw pooled client and the hand-coalesced floors (``raw:redis-mget-coalesced``,
  ``raw:aiomcache-multiget-coalesced``), and the peers; throughput is the metric.
- ``item_size``: encoded item size (~100 B, 4 KiB, 64 KiB), ``get`` through the Redis tier against raw ``GET`` +
  decode (and the memory tier against the dict floor). One run per point: each point is its own data set.
- ``l1_capacity`` and ``dataset_size``: the in-process tier alone (:mod:`tierstore.bench.curves_l1`).

The server curves run through the ordinary runner (:func:`tierstore.bench.runner.run`): systems interleaved round
by round, the same timing, the same availability rules — without ``--servers`` only the embedded systems run, so
a curve then has its memory-tier series only. ``make bench`` never runs a curve.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from tierstore.bench.api import CONCURRENT, GET, GET_MANY, Driver, Op, Registry, RunContext, Scenario
from tierstore.bench.builtin import default_registry
from tierstore.bench.data import BenchItem, Dataset
from tierstore.bench.progress import Progress
from tierstore.bench.report import ratio
from tierstore.bench.runner import Settings, run
from tierstore.bench.scenarios import Get
from tierstore.bench.systems import _tierstore_system, server_urls

__all__ = [
    "CURVES",
    "DEFAULT_POINTS",
    "LARGE_DATASET",
    "CurveConfig",
    "CurveDataset",
    "format_curves",
    "run_curves",
    "sized_item",
]

MEMORY = "tierstore:memory+memory"
REDIS = "tierstore:memory+redis"
MEMCACHED = "tierstore:memory+memcached"
LARGE_DATASET = 1_000_000
"""The point ``dataset_size`` adds with ``--curves-large`` (a few GiB and minutes on a small machine)."""

DEFAULT_POINTS: dict[str, tuple[int, ...]] = {
    "get_many": (1, 10, 100, 1000),
    "concurrency": (1, 8, 64, 256),
    "item_size": (100, 4096, 65536),
    "l1_capacity": (1, 10, 50),  # percent of the key space
    "dataset_size": (10_000, 100_000),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class CurveConfig:
    """One ``--curves`` run. ``points``: overrides of :data:`DEFAULT_POINTS` per curve (tests use tiny ones)."""

    names: tuple[str, ...] = ()  # empty: every curve
    points: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    duration: float = 0.4  # timed seconds per system × point (split over rounds)
    rounds: int = 2
    servers: bool = False
    progress: bool | None = None
    partitions: int = 20  # data set of the get_many and concurrency curves (partitions of 100 items)
    large: bool = False  # dataset_size: add the 1M point
    l1_keys: int = 10_000  # l1_capacity: key space
    l1_trace: int = 100_000  # l1_capacity: Zipf reads
    zipf_s: float = 0.99
    hit_ops: int = 50_000  # dataset_size: timed hits per cell
    miss_ops: int = 20_000  # dataset_size: timed misses (distinct cold keys)

    def points_of(self, name: str) -> tuple[int, ...]:
        pts = tuple(self.points.get(name, DEFAULT_POINTS[name]))
        if name == "dataset_size" and self.large and LARGE_DATASET not in pts:
            pts += (LARGE_DATASET,)
        return pts


@dataclass(slots=True)
class CurveDataset(Dataset):
    """The bench data set with larger key sets: ``many_count`` distinct ``get_many`` keys, ``warm_count`` warm keys
    for concurrent readers, and items padded (or shrunk) to about ``item_bytes`` encoded bytes."""

    many_count: int = 1000
    warm_count: int = 512
    item_bytes: int | None = None

    def __post_init__(self) -> None:
        Dataset.__post_init__(self)  # zero-argument super() does not work in a slots dataclass
        keys = self.keys
        n = len(keys)
        # 7919 and 104729 are primes that divide no multiple of 100: the picks are distinct.
        self.many = [keys[(i * 7919) % n] for i in range(min(self.many_count, n))]
        self.warm = [keys[(i * 104_729 + 13) % n] for i in range(min(self.warm_count, n))]
        if self.item_bytes is not None:
            self.items = [sized_item(item, self.item_bytes) for item in self.items]

    @property
    def item_size(self) -> int:
        """Mean encoded size of the items (msgspec msgpack, no envelope)."""
        enc = msgspec.msgpack.encode
        return round(sum(len(enc(i)) for i in self.items) / max(1, len(self.items)))


def sized_item(item: BenchItem, target: int) -> BenchItem:
    """``item`` with its ``note`` set so it encodes to about ``target`` bytes; below what the fixed fields take,
    name, email and status are emptied too (the smallest is about 110 bytes)."""
    enc = msgspec.msgpack.encode
    bare = msgspec.structs.replace(item, note="")
    if len(enc(bare)) >= target:
        return msgspec.structs.replace(bare, name="", email="", status="")
    length = target - len(enc(bare))
    out = msgspec.structs.replace(item, note="x" * length)
    length -= len(enc(out)) - target  # the string header grows with the length
    return msgspec.structs.replace(item, note="x" * max(0, length))


async def _read_each(get: Callable[[str, str], Awaitable[Any]], keys: Sequence[tuple[str, str]]) -> None:
    for pk, sk in keys:
        await get(pk, sk)


def get_many_scenario(n: int) -> Scenario:
    """``get_many`` of the first ``n`` distinct keys of ``data.many``, cache warm."""

    class GetManyN(Scenario):
        name = f"get_many_n{n}"
        needs = frozenset({GET_MANY})
        cached = True
        description = f"get_many() of {n} distinct keys, cache warm"

        async def begin(self, driver: Driver, ctx: RunContext) -> None:
            await driver.batch_getter()(ctx.data.many[:n])

        def prepare(self, driver: Driver, data: Dataset) -> Op:
            if len(data.many) < n:
                raise ValueError(f"the data set has {len(data.many)} get_many keys, fewer than {n}")
            get_many = driver.batch_getter()
            keys = list(data.many[:n])
            return lambda i: get_many(keys)

    return GetManyN()


def concurrent_scenario(c: int) -> Scenario:
    """``c`` tasks doing ``get`` over the warm set (distinct keys in flight while ``c`` <= its size)."""

    class GetConcurrentC(Scenario):
        name = f"get_c{c}"
        needs = frozenset({GET, CONCURRENT})
        cached = True
        concurrency = c
        description = f"{c} tasks each doing get() over the warm keys"

        async def begin(self, driver: Driver, ctx: RunContext) -> None:
            await _read_each(driver.concurrent_getter(), ctx.data.warm)

        def prepare(self, driver: Driver, data: Dataset) -> Op:
            get = driver.concurrent_getter()
            pks = [k[0] for k in data.warm]
            sks = [k[1] for k in data.warm]
            m = len(pks)
            return lambda i: get(pks[i % m], sks[i % m])

    return GetConcurrentC()


@dataclass(frozen=True, slots=True)
class ServerCurve:
    """A curve run through the runner: its systems, the pairs whose ratio it reports, the plotted metric."""

    axis: str
    metric: str
    unit: str
    systems: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]
    description: str


SERVER_CURVES: dict[str, ServerCurve] = {
    "get_many": ServerCurve(
        axis="keys per get_many call",
        metric="p50_us",
        unit="µs per call (p50)",
        systems=(REDIS, "raw:redis-mget-decode", "peer:aiocache", "peer:cashews", MEMORY, "raw:dict-decode"),
        pairs=((REDIS, "raw:redis-mget-decode"), (REDIS, "peer:aiocache"), (REDIS, "peer:cashews"),
               (MEMORY, "raw:dict-decode")),
        description="get_many() of N distinct warm keys",
    ),
    "concurrency": ServerCurve(
        axis="tasks doing get() at once",
        metric="ops_per_s",
        unit="gets per second",
        systems=(REDIS, "raw:redis-get-decode", "raw:redis-mget-coalesced", "peer:aiocache", "peer:cashews",
                 MEMCACHED, "raw:aiomcache-get-decode", "raw:aiomcache-multiget-coalesced",
                 MEMORY, "raw:dict-decode"),
        pairs=((REDIS, "raw:redis-get-decode"), (REDIS, "raw:redis-mget-coalesced"), (REDIS, "peer:aiocache"),
               (REDIS, "peer:cashews"), (MEMCACHED, "raw:aiomcache-get-decode"),
               (MEMCACHED, "raw:aiomcache-multiget-coalesced"), (MEMORY, "raw:dict-decode")),
        description="C concurrent get() tasks over 512 warm keys",
    ),
    "item_size": ServerCurve(
        axis="encoded item size (bytes)",
        metric="p50_us",
        unit="µs per get (p50)",
        systems=(REDIS, "raw:redis-get-decode", MEMORY, "raw:dict-decode"),
        pairs=((REDIS, "raw:redis-get-decode"), (MEMORY, "raw:dict-decode")),
        description="get() of 16 hot keys, items padded to the size",
    ),
}

CURVES: tuple[str, ...] = ("get_many", "concurrency", "item_size", "l1_capacity", "dataset_size")


def _registry(scenarios: Sequence[Scenario], env: Mapping[str, str]) -> Registry:
    reg = default_registry(env)
    reg.scenarios.clear()
    for sc in scenarios:
        reg.add_scenario(sc)
    if MEMCACHED not in reg.systems:
        reg.add_system(_tierstore_system("memory", ("memcached",), False, server_urls(env)))
    return reg


async def _runner_rows(
    curve: ServerCurve, scenarios: Sequence[Scenario], data: Dataset, cfg: CurveConfig, env: Mapping[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    settings = Settings(
        duration=cfg.duration, rounds=cfg.rounds, systems=curve.systems, scenarios=tuple(s.name for s in scenarios),
        floors=False, checks=False, servers=cfg.servers, progress=cfg.progress,
    )
    report = await run(settings, _registry(scenarios, env), env=env, data=data)
    return report.rows, report.skipped


def _series(
    curve: ServerCurve,
    xs: Sequence[int],
    rows_at: Mapping[int, Mapping[str, Mapping[str, Any]]],
    conc: Mapping[int, int],
) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    series: dict[str, list[Any]] = {}
    for system in curve.systems:
        values = [rows_at[x].get(system, {}).get(curve.metric) for x in xs]
        if any(v is not None for v in values):
            series[system] = values
    ratios: dict[str, list[Any]] = {}
    for a, b in curve.pairs:
        values = [
            ratio(rows_at[x][a], rows_at[x][b], conc.get(x, 1)) if a in rows_at[x] and b in rows_at[x] else None
            for x in xs
        ]
        if any(v is not None for v in values):
            ratios[f"{a} ÷ {b}"] = values
    return series, ratios


async def _server_curve(name: str, cfg: CurveConfig, env: Mapping[str, str]) -> dict[str, Any]:
    curve = SERVER_CURVES[name]
    xs = cfg.points_of(name)
    rows_at: dict[int, dict[str, dict[str, Any]]] = {x: {} for x in xs}
    skipped: list[dict[str, Any]] = []
    conc: dict[int, int] = {}
    sizes: dict[int, int] = {}
    if name == "item_size":
        for x in xs:
            data = CurveDataset(partitions=2, many_count=16, warm_count=16, item_bytes=x, zipf_length=1000)
            sizes[x] = data.item_size
            rows, skip = await _runner_rows(curve, [Get()], data, cfg, env)
            rows_at[x] = {r["system"]: r for r in rows}
            skipped += skip
    else:
        make = get_many_scenario if name == "get_many" else concurrent_scenario
        by_name = {make(x).name: x for x in xs}
        scenarios = [make(x) for x in xs]
        if name == "concurrency":
            conc = {x: x for x in xs}
        data = CurveDataset(partitions=cfg.partitions, zipf_length=1000, many_count=max(xs))
        rows, skipped = await _runner_rows(curve, scenarios, data, cfg, env)
        for r in rows:
            rows_at[by_name[r["scenario"]]][r["system"]] = r
    series, ratios = _series(curve, xs, rows_at, conc)
    cpu = {system: [rows_at[x].get(system, {}).get("cpu_us_per_op") for x in xs] for system in series}
    out: dict[str, Any] = {
        "name": name,
        "description": curve.description,
        "axis": curve.axis,
        "x": list(xs),
        "metric": curve.metric,
        "unit": curve.unit,
        "log_x": True,
        "series": series,
        "ratios": ratios,
        "cpu_us_per_op": cpu,  # client CPU per op: steadier than wall time on a loaded machine
        "rows": [{"x": x, **row} for x in xs for row in rows_at[x].values()],
        "skipped": _dedupe(skipped),
    }
    if sizes:
        out["item_bytes"] = [sizes[x] for x in xs]
    return out


def _dedupe(skipped: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for s in skipped:
        seen.setdefault((str(s.get("system")), str(s.get("reason"))), s)
    return list(seen.values())


async def run_curves(cfg: CurveConfig, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run the curves of ``cfg``; returns ``{"curves": [...], "meta": {...}}`` (the JSON written)."""
    from tierstore.bench import curves_l1

    env = os.environ if env is None else env
    unknown = [n for n in cfg.names if n not in CURVES]
    if unknown:
        raise ValueError(f"unknown curve(s) {unknown}; known: {', '.join(CURVES)}")
    names = cfg.names or CURVES
    started = time.monotonic()
    load_before = os.getloadavg()
    out: list[dict[str, Any]] = []
    progress = Progress(cfg.progress)
    for name in CURVES:
        if name not in names:
            continue
        progress.note(f"curve {name}: points {list(cfg.points_of(name))}")
        if name in SERVER_CURVES:
            out.append(await _server_curve(name, cfg, env))
        elif name == "l1_capacity":
            out.append(await curves_l1.l1_capacity_curve(cfg))
        else:
            out.append(await curves_l1.dataset_size_curve(cfg))
    return {
        "curves": out,
        "meta": {
            "cell_seconds": cfg.duration,
            "rounds": cfg.rounds,
            "servers": cfg.servers,
            "loadavg_before": [round(v, 2) for v in load_before],
            "loadavg_after": [round(v, 2) for v in os.getloadavg()],
            "python": sys.version.split()[0],
            "platform": sys.platform,
            "cpus": os.cpu_count(),
            "elapsed_s": round(time.monotonic() - started, 1),
        },
    }


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else (f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}")
    return str(v)


def format_curves(result: Mapping[str, Any]) -> str:
    """The curves as text: per curve, one line per series (and per ratio) across the points."""
    lines: list[str] = []
    for c in result["curves"]:
        xs = c["x"]
        lines.append(f"\n{c['name']}: {c['description']} — {c['unit']} by {c['axis']}")
        width = max([len(k) for k in (*c["series"], *c["ratios"])] + [10])
        lines.append(f"  {'':<{width}}" + "".join(f"{x:>12}" for x in xs))
        for label, values in (*c["series"].items(), *c["ratios"].items()):
            lines.append(f"  {label:<{width}}" + "".join(f"{_fmt(v):>12}" for v in values))
        cpu = c.get("cpu_us_per_op") or c.get("cpu_us_per_get") or {}
        if cpu:
            lines.append("  client CPU µs per op:")
            for label, values in cpu.items():
                lines.append(f"  {label:<{width}}" + "".join(f"{_fmt(v):>12}" for v in values))
        lines.extend(f"  not run: {s.get('system')}: {s.get('reason')}" for s in c.get("skipped", []))
    meta = result["meta"]
    lines.append(f"\nload average before/after: {meta['loadavg_before']} / {meta['loadavg_after']}; "
                 f"{meta['elapsed_s']} s")
    return "\n".join(lines)
