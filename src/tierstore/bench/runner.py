"""The harness core: drivers, scenarios and systems as registries, the timing loop, and the run itself.

A *system* (``tierstore:postgres+memory``, ``raw:asyncpg``, ``peer:cashews``) is a :class:`SystemSpec`: a name,
what it needs to run (modules, reachable servers, a probe) and a factory for its :class:`Driver`. A *scenario*
(``get``, ``get_many_100``…) is a :class:`Scenario`: the driver capabilities it needs and how to build one
timed operation from a driver. The harness runs every selected scenario on every open driver that has the
capabilities, interleaving systems round by round so that machine noise hits every row alike. New backends add
rows by registering a system (and, for a raw floor, a driver); new workloads by registering a scenario. Nothing
here names a backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import gc
import importlib.util
import math
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TextIO
from urllib.parse import urlsplit

from tierstore.bench.data import BenchItem, Dataset
from tierstore.config import redact_url

__all__ = [
    "CACHE",
    "CONCURRENT",
    "GET",
    "GET_MANY",
    "JOIN",
    "L1",
    "PUT",
    "QUERY",
    "Cell",
    "Driver",
    "Progress",
    "Registry",
    "RunContext",
    "Scenario",
    "Settings",
    "SystemSpec",
    "differences",
    "endpoints",
    "measure",
    "percentile",
    "run",
]

# Driver capabilities a scenario may require.
GET = "get"
GET_MANY = "get_many"
PUT = "put"
QUERY = "query"
CONCURRENT = "concurrent"  # get() may be awaited by many tasks at once
L1 = "l1"  # an in-process tier whose hits and misses are counted (l1_hits / l1_misses)
CACHE = "cache"  # any cache tier in front of the store (invalidate() works)
JOIN = "join"  # a page of orders joined to their customers (BenchOrder.customer)

Op = Callable[[int], Awaitable[Any]]
GetFn = Callable[[str, str], Awaitable[BenchItem | None]]
GetManyFn = Callable[[Sequence[tuple[str, str]]], Awaitable[Sequence[BenchItem | None]]]
PutFn = Callable[[BenchItem], Awaitable[Any]]
PageFn = Callable[[str, int], Awaitable[Any]]
JoinFn = Callable[[str, int], Awaitable[Any]]

# Ops faster than this are timed in batches (one sample = the mean of a batch): the clock would dominate.
BATCH_TARGET_NS = 20_000
MAX_BATCH = 512
TCP_TIMEOUT = 0.5


class Driver:
    """One system under test: opened once, loaded with the data set, then asked for operations.

    Capabilities (``caps``) say which operation factories work. Factories return the most direct callable
    (``repo.get`` itself, not a wrapper), so the harness measures the system and not an extra frame.
    ``counters()`` returns cumulative counters; the harness takes differences around the timed part. Known
    names: ``store`` (round trips to the store of record), ``tier`` (round trips to remote cache tiers),
    ``l1_hits`` and ``l1_misses``, ``query_cache_hits`` and ``query_cache_misses``.
    """

    caps: frozenset[str] = frozenset()

    async def open(self, data: Dataset) -> None:
        """Connect, create what is needed and load ``data``."""

    async def aclose(self) -> None:
        """Release everything ``open`` acquired. Must not raise."""

    def counters(self) -> dict[str, int]:
        return {}

    async def verify(self, data: Dataset) -> str | None:
        """After the timed part: ``None`` if the system still holds the data set, else what differs.

        Server tables outlive a run and some are shared by name, so another run or test on the same server
        (say, ``--partitions 2``) can reload them halfway through this one; the rows of a system that fails
        are dropped. By default ``get_many`` of the ``get_many_100`` keys is compared with the data set.
        """
        if GET_MANY not in self.caps:
            return None
        got = await self.batch_getter()(data.many)
        return differences(data, data.many, got)

    def _unsupported(self, what: str) -> NotImplementedError:
        return NotImplementedError(f"{type(self).__name__} has no {what}")

    def getter(self) -> GetFn:
        raise self._unsupported("get")

    def concurrent_getter(self) -> GetFn:
        """A ``get`` that many tasks may await at once (a pool where the plain one holds one connection)."""
        return self.getter()

    def batch_getter(self) -> GetManyFn:
        raise self._unsupported("get_many")

    def putter(self) -> PutFn:
        raise self._unsupported("put")

    def pager(self) -> PageFn:
        """``pager()(partition, limit)``: the first page of one partition, ordered by sort key."""
        raise self._unsupported("query")

    def joiner(self) -> JoinFn:
        """``joiner()(order_partition, limit)``: the first page of one order partition with every order's
        customer; the result is a tierstore ``Page`` whose items have ``customer`` loaded, or a list of
        ``(order, customer)`` pairs (see :func:`tierstore.bench.scenarios.join_pairs`)."""
        raise self._unsupported("join")

    async def clear_cache(self) -> None:
        """Empty the cache tiers (``zipf_read`` starts cold, like its LRU reference)."""
        raise self._unsupported("cache")

    async def invalidate(self, pk: str, sk: str) -> None:
        """Make every tier forget one key, as a write through the repository would."""
        raise self._unsupported("cache")


class Scenario:
    """One workload. Subclasses set the class attributes and implement :meth:`prepare`.

    ``cached``: the scenario reads keys a warm cache holds, so a tierstore system is compared with the floor
    of its nearest tier rather than of its store. ``concurrency``: tasks running the operation at once.
    ``round_trips``: the counters summed into ``round_trips_per_op``.
    """

    name: ClassVar[str]
    needs: ClassVar[frozenset[str]]
    description: ClassVar[str] = ""
    cached: ClassVar[bool] = False
    concurrency: ClassVar[int] = 1
    round_trips: ClassVar[tuple[str, ...]] = ("store", "tier")

    async def begin(self, driver: Driver, ctx: RunContext) -> None:
        """Called once per driver before its first round."""

    def prepare(self, driver: Driver, data: Dataset) -> Op:
        """The operation: ``op(i)`` does the ``i``-th unit of work and returns an awaitable."""
        raise NotImplementedError

    def finish(self, driver: Driver, cell: Cell, ctx: RunContext) -> dict[str, Any]:
        """Extra keys for the result row, after the last round."""
        return {}


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemSpec:
    """A named system: how to tell whether it can run here, and how to build its driver.

    ``store_floors`` / ``cache_floors`` map a scenario name (or ``"*"``) to the systems this one is compared
    with, primary first: cached scenarios use the nearest tier's floors, the others the store's.
    """

    name: str
    make: Callable[[RunContext], Driver]
    description: str = ""
    servers: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    probe: Callable[[RunContext], str | None] | None = None
    store_floors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    cache_floors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    quick: bool = True

    @property
    def kind(self) -> str:
        return self.name.split(":", 1)[0]

    def floors_for(self, scenario: Scenario) -> tuple[str, ...]:
        table = self.cache_floors if scenario.cached and self.cache_floors else self.store_floors
        return table.get(scenario.name, table.get("*", ()))

    def all_floors(self) -> tuple[str, ...]:
        names: dict[str, None] = {}
        for table in (self.store_floors, self.cache_floors):
            for floors in table.values():
                names.update(dict.fromkeys(floors))
        return tuple(names)


@dataclass(slots=True)
class Registry:
    """Systems and scenarios by name, in registration order (which is the order of the table)."""

    systems: dict[str, SystemSpec] = field(default_factory=dict)
    scenarios: dict[str, Scenario] = field(default_factory=dict)

    def add_system(self, spec: SystemSpec) -> None:
        if spec.name in self.systems:
            raise ValueError(f"system {spec.name!r} is registered twice")
        if spec.kind not in ("tierstore", "raw", "peer"):
            raise ValueError(f"system names start with tierstore:, raw: or peer:, got {spec.name!r}")
        self.systems[spec.name] = spec

    def add_scenario(self, scenario: Scenario) -> None:
        if scenario.name in self.scenarios:
            raise ValueError(f"scenario {scenario.name!r} is registered twice")
        self.scenarios[scenario.name] = scenario

    @classmethod
    def default(cls, env: Mapping[str, str] | None = None) -> Registry:
        """Every built-in scenario and system; server URLs from ``env`` (default ``os.environ``)."""
        from tierstore.bench.scenarios import builtin_scenarios
        from tierstore.bench.systems import builtin_systems

        reg = cls()
        for sc in builtin_scenarios():
            reg.add_scenario(sc)
        for spec in builtin_systems(os.environ if env is None else env):
            reg.add_system(spec)
        return reg


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """One run's options (the CLI's flags)."""

    quick: bool = False
    duration: float | None = None  # seconds per system × scenario; default 0.15 quick, 1.0 otherwise
    rounds: int | None = None  # interleaved rounds per cell; default 1 quick, 3 otherwise
    systems: tuple[str, ...] = ()  # globs; empty: every tierstore system (quick ones with --quick)
    scenarios: tuple[str, ...] = ()  # names; empty: all
    floors: bool = True  # add the floors of the selected tierstore systems
    checks: bool = True  # in-process tier checks (L1 memory per entry, page memory, Zipf policy)
    partitions: int | None = None  # data set: partitions of 100 items; default 20 quick, 100 otherwise
    progress: bool | None = None  # None: when stderr is a terminal

    @property
    def cell_seconds(self) -> float:
        return self.duration if self.duration is not None else (0.15 if self.quick else 1.0)

    @property
    def warmup_seconds(self) -> float:
        return min(0.25, max(0.02, self.cell_seconds / 4))

    @property
    def round_count(self) -> int:
        return self.rounds if self.rounds is not None else (1 if self.quick else 3)


@dataclass(slots=True)
class RunContext:
    """What drivers and scenarios share during one run."""

    settings: Settings
    data: Dataset
    env: Mapping[str, str]
    workdir: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    setup_times: dict[str, float] = field(default_factory=dict)

    def path(self, name: str) -> str:
        return os.path.join(self.workdir, name)


@dataclass(slots=True)
class Cell:
    """Everything measured for one system × scenario, summed over rounds."""

    system: str
    scenario: str
    samples: list[float] = field(default_factory=list)  # ns per op (batch means when batch > 1)
    ops: int = 0
    wall_ns: int = 0
    cpu_ns: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    spans: list[range] = field(default_factory=list)  # op indexes of the timed parts
    next_index: int = 0
    batch: int = 1
    rounds: int = 0
    elapsed: float = 0.0  # seconds spent on the cell, warm-up and bookkeeping included
    extras: dict[str, Any] = field(default_factory=dict)


def differences(data: Dataset, keys: Sequence[tuple[str, str]], got: Sequence[BenchItem | None]) -> str | None:
    """``None`` if ``got`` are the data set's items of ``keys``, else a short description of what differs."""
    bad = [k for k, item in zip(keys, got, strict=True) if item != data.item(k)]
    if not bad:
        return None
    return f"{len(bad)} of {len(keys)} items differ from the data set, e.g. {bad[0]}"


# -- statistics ------------------------------------------------------------------------------------------


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


# -- timing ----------------------------------------------------------------------------------------------


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


# -- availability ----------------------------------------------------------------------------------------


def endpoints(url: str) -> list[tuple[str, int]]:
    """``(host, port)`` of every node of a backend URL (comma-separated hosts, ``endpoint_url=`` for AWS)."""
    if "endpoint_url=" in url:
        url = url.split("endpoint_url=", 1)[1].split("&", 1)[0]
    netloc = urlsplit(url).netloc.rsplit("@", 1)[-1]
    out: list[tuple[str, int]] = []
    for hostport in netloc.split(","):
        host, sep, port = hostport.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"no port in {redact_url(url)!r}")
        out.append((host.strip("[]") or "127.0.0.1", int(port)))
    return out


class _Reachability:
    """TCP connect checks with a short timeout, each endpoint tried once per run."""

    def __init__(self, timeout: float = TCP_TIMEOUT) -> None:
        self.timeout = timeout
        self._seen: dict[tuple[str, int], str | None] = {}

    async def check(self, url: str) -> str | None:
        try:
            nodes = endpoints(url)
        except ValueError as exc:
            return str(exc)
        for host, port in nodes:
            if (host, port) not in self._seen:
                self._seen[(host, port)] = await self._connect(host, port)
            reason = self._seen[(host, port)]
            if reason is not None:
                return reason
        return None

    async def _connect(self, host: str, port: int) -> str | None:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), self.timeout)
        except (TimeoutError, OSError) as exc:
            what = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            return f"{host}:{port} is unreachable ({what}); start it with scripts/services start"
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None


async def unavailable(spec: SystemSpec, ctx: RunContext, reach: _Reachability) -> str | None:
    """Why ``spec`` cannot run here, or ``None``."""
    for module in spec.modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return f"module {module} is not installed"
    for url in spec.servers:
        reason = await reach.check(url)
        if reason is not None:
            return reason
    if spec.probe is not None:
        try:
            return spec.probe(ctx)
        except Exception as exc:
            return _reason(exc)
    return None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


# -- progress --------------------------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on stderr (only when it is a terminal, unless forced), plus notes."""

    def __init__(self, enabled: bool | None = None, stream: TextIO | None = None, width: int = 28) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.width = width
        self.total = 0
        self.done = 0
        self.phase = ""
        self._drawn = False
        self._start = time.monotonic()

    def begin(self, phase: str, total: int) -> None:
        self.phase, self.total, self.done = phase, max(total, 1), 0
        self.draw("")

    def advance(self, label: str = "") -> None:
        self.done += 1
        self.draw(label)

    def draw(self, label: str) -> None:
        if not self.enabled:
            return
        filled = int(self.width * min(self.done, self.total) / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.monotonic() - self._start
        line = f"\r{self.phase:<6} [{bar}] {self.done}/{self.total} {elapsed:5.1f}s {label}"
        self.stream.write(line[:120].ljust(120))
        self.stream.flush()
        self._drawn = True

    def note(self, message: str) -> None:
        """A line of its own (skip reasons), printed whether or not the bar is shown."""
        self.clear()
        self.stream.write(message + "\n")
        self.stream.flush()

    def clear(self) -> None:
        if self._drawn:
            self.stream.write("\r" + " " * 120 + "\r")
            self.stream.flush()
            self._drawn = False


# -- the run ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Report:
    """The outcome of a run: result rows, skipped systems and cells, checks, metadata."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"results": self.rows, "skipped": self.skipped, "checks": self.checks, "meta": self.meta}


def select(registry: Registry, settings: Settings) -> tuple[list[SystemSpec], list[Scenario]]:
    """The systems asked for (before availability and floors) and the scenarios, in registry order."""
    unknown = [s for s in settings.scenarios if s not in registry.scenarios]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; known: {', '.join(registry.scenarios)}")
    scenarios = [sc for name, sc in registry.scenarios.items() if not settings.scenarios or name in settings.scenarios]
    if settings.systems:
        systems = [
            spec
            for spec in registry.systems.values()
            if any(fnmatch.fnmatchcase(spec.name, g) for g in settings.systems)
        ]
        if not systems:
            raise ValueError(f"no system matches {list(settings.systems)}; see tierstore bench --list")
    else:
        systems = [
            spec
            for spec in registry.systems.values()
            if spec.kind == "tierstore" and (spec.quick or not settings.quick)
        ]
    return systems, scenarios


def _applicable(driver: Driver, scenarios: Sequence[Scenario]) -> list[Scenario]:
    return [sc for sc in scenarios if sc.needs <= driver.caps]


async def run(
    settings: Settings,
    registry: Registry | None = None,
    *,
    env: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> Report:
    """Run the benchmark; returns the report (the CLI prints and writes it)."""
    from tierstore.bench.report import add_ratios

    env = os.environ if env is None else env
    registry = registry if registry is not None else Registry.default(env)
    progress = progress if progress is not None else Progress(settings.progress)
    asked, scenarios = select(registry, settings)
    parts = settings.partitions if settings.partitions is not None else (20 if settings.quick else 100)
    data = Dataset(partitions=parts, zipf_length=50_000 if settings.quick else 200_000)
    report = Report()
    started = time.monotonic()
    phases: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="tierstore-bench-") as workdir:
        ctx = RunContext(settings=settings, data=data, env=env, workdir=workdir)
        drivers: list[tuple[SystemSpec, Driver]] = []
        try:
            await _open_all(registry, asked, scenarios, ctx, progress, report, drivers)
            phases["setup_s"] = time.monotonic() - started
            cells = await _run_cells(drivers, scenarios, ctx, progress, report)
            phases["bench_s"] = time.monotonic() - started - phases["setup_s"]
            changed = await _verify_all(drivers, ctx, progress, report)
            cells = [cell for cell in cells if cell.system not in changed]
        finally:
            progress.begin("close", len(drivers))
            for spec, driver in reversed(drivers):
                try:
                    await driver.aclose()
                except Exception as exc:  # closing must not lose the results
                    progress.note(f"closing {spec.name} failed: {_reason(exc)}")
                progress.advance(spec.name)
        by_name = {sc.name: sc for sc in scenarios}
        report.rows = [summarize(cell, by_name[cell.scenario]) for cell in cells]
        add_ratios(report.rows, registry, by_name)
        if settings.checks:
            from tierstore.bench.checks import run_checks

            t0 = time.monotonic()
            report.checks = await run_checks(ctx, drivers, report.rows, progress)
            phases["checks_s"] = time.monotonic() - t0
    progress.clear()
    report.meta = {
        "quick": settings.quick,
        "cell_seconds": settings.cell_seconds,
        "rounds": settings.round_count,
        "items": len(data.items),
        "l1_capacity": data.l1_capacity,
        "python": sys.version.split()[0],
        "platform": sys.platform,
        "cpus": os.cpu_count(),
        "elapsed_s": round(time.monotonic() - started, 1),
        **{k: round(v, 1) for k, v in phases.items()},
        "setup_s_by_system": {k: round(v, 2) for k, v in ctx.setup_times.items()},
    }
    return report


async def _open_all(
    registry: Registry,
    asked: Sequence[SystemSpec],
    scenarios: Sequence[Scenario],
    ctx: RunContext,
    progress: Progress,
    report: Report,
    opened: list[tuple[SystemSpec, Driver]],
) -> None:
    """Open every available system (and the floors of the tierstore ones) into ``opened``, table order."""
    reach = _Reachability()
    queue = list(asked)
    seen = {spec.name for spec in queue}
    progress.begin("setup", len(queue))
    while queue:
        spec = queue.pop(0)
        reason = await unavailable(spec, ctx, reach)
        driver: Driver | None = None
        if reason is None:
            try:
                driver = spec.make(ctx)
            except Exception as exc:
                driver, reason = None, f"setup failed: {_reason(exc)}"
        if driver is not None:
            if not _applicable(driver, scenarios):
                progress.advance(spec.name)
                continue  # nothing selected that this system can do: not a skip worth printing
            t0 = time.monotonic()
            try:
                await driver.open(ctx.data)
                ctx.setup_times[spec.name] = time.monotonic() - t0
            except Exception as exc:
                reason = f"setup failed: {_reason(exc)}"
                with contextlib.suppress(Exception):  # already failing; the first reason is the useful one
                    await driver.aclose()
        if reason is not None:
            report.skipped.append({"system": spec.name, "reason": reason})
            progress.note(f"skipped {spec.name}: {reason}")
        else:
            assert driver is not None
            opened.append((spec, driver))
            if ctx.settings.floors and spec.kind == "tierstore":
                for floor in spec.all_floors():
                    if floor not in seen and floor in registry.systems:
                        seen.add(floor)
                        queue.append(registry.systems[floor])
                        progress.total += 1
        progress.advance(spec.name)
    # Table order is registry order, whatever order floors were discovered in.
    order = {name: i for i, name in enumerate(registry.systems)}
    opened.sort(key=lambda pair: order.get(pair[0].name, len(order)))


async def _verify_all(
    drivers: Sequence[tuple[SystemSpec, Driver]], ctx: RunContext, progress: Progress, report: Report
) -> set[str]:
    """Names of the systems whose data changed under them during the run (their rows are discarded)."""
    changed: set[str] = set()
    progress.begin("verify", len(drivers))
    for spec, driver in drivers:
        try:
            reason = await driver.verify(ctx.data)
        except Exception as exc:
            reason = _reason(exc)
        if reason is not None:
            changed.add(spec.name)
            why = f"results discarded, its data changed during the run (another run on the same server?): {reason}"
            report.skipped.append({"system": spec.name, "reason": why})
            progress.note(f"{spec.name}: {why}")
        progress.advance(spec.name)
    return changed


async def _run_cells(
    drivers: Sequence[tuple[SystemSpec, Driver]],
    scenarios: Sequence[Scenario],
    ctx: RunContext,
    progress: Progress,
    report: Report,
) -> list[Cell]:
    settings = ctx.settings
    rounds = max(1, settings.round_count)
    plan = [(sc, [(spec, d) for spec, d in drivers if sc.needs <= d.caps]) for sc in scenarios]
    progress.begin("bench", sum(len(p) for _, p in plan) * rounds)
    cells: list[Cell] = []
    # Everything setup allocated (clients, data sets) moves out of the collector's way, so the collection
    # before each cell takes milliseconds instead of a tenth of a second.
    gc.collect()
    gc.freeze()
    try:
        await _run_plan(plan, rounds, ctx, progress, report, cells)
    finally:
        gc.unfreeze()
    return cells


async def _run_plan(
    plan: Sequence[tuple[Scenario, list[tuple[SystemSpec, Driver]]]],
    rounds: int,
    ctx: RunContext,
    progress: Progress,
    report: Report,
    cells: list[Cell],
) -> None:
    settings = ctx.settings
    for scenario, participants in plan:
        live: dict[str, tuple[Driver, Cell, Op]] = {}
        for spec, driver in participants:
            try:
                await scenario.begin(driver, ctx)
                op = scenario.prepare(driver, ctx.data)
            except Exception as exc:
                report.skipped.append({"system": spec.name, "scenario": scenario.name, "reason": _reason(exc)})
                progress.note(f"skipped {scenario.name} on {spec.name}: {_reason(exc)}")
                progress.total -= rounds
                continue
            live[spec.name] = (driver, Cell(spec.name, scenario.name), op)
        for _ in range(rounds):
            for name in list(live):
                driver, cell, op = live[name]
                progress.advance(f"{scenario.name} · {name}")
                t_cell = time.monotonic()
                gc.collect()  # cheap: what setup allocated is frozen
                try:
                    m = await measure(
                        op,
                        start=cell.next_index,
                        duration_s=settings.cell_seconds / rounds,
                        warmup_s=settings.warmup_seconds / rounds if cell.rounds else settings.warmup_seconds,
                        concurrency=scenario.concurrency,
                        counters=driver.counters,
                    )
                except Exception as exc:
                    report.skipped.append({"system": name, "scenario": scenario.name, "reason": _reason(exc)})
                    progress.note(f"{scenario.name} failed on {name}: {_reason(exc)}")
                    del live[name]
                    continue
                cell.samples.extend(m.samples)
                cell.ops += m.ops
                cell.wall_ns += m.wall_ns
                cell.cpu_ns += m.cpu_ns
                for k, v in m.counters.items():
                    cell.counters[k] = cell.counters.get(k, 0) + v
                cell.spans.append(m.timed)
                cell.next_index = m.timed.stop
                cell.batch = max(cell.batch, m.batch)
                cell.rounds += 1
                cell.elapsed += time.monotonic() - t_cell
        for name, (driver, cell, _) in live.items():
            try:
                cell.extras.update(scenario.finish(driver, cell, ctx))
            except Exception as exc:
                progress.note(f"{scenario.name} on {name}: finishing failed: {_reason(exc)}")
            cells.append(cell)
