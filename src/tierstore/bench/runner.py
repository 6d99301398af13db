"""The runner: one run's settings, which systems and scenarios it selects, and the run itself.

A run opens every selected system that can run here (adding the floors of the tierstore ones), then runs each
scenario on every open driver that has the capabilities it needs, *interleaving* systems round by round — a
round of every system, then the next — so that drift and the neighbours' load on a shared machine hit every row
of a scenario alike, and the ratio of two rows of one run means something where their absolute times across runs
do not. Before timing, everything setup allocated is frozen out of the garbage collector (``gc.freeze``), so the
collection run before each cell is short. After the last cell each system checks that it still holds the data
set, the rows get their ratios, and the in-process checks and the targets run.
"""

from __future__ import annotations

import contextlib
import fnmatch
import gc
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tierstore.bench.api import Cell, Driver, Op, Registry, RunContext, Scenario, SystemSpec
from tierstore.bench.availability import Reachability, one_line, unavailable
from tierstore.bench.builtin import default_registry
from tierstore.bench.data import Dataset
from tierstore.bench.progress import Progress
from tierstore.bench.report import Report, add_ratios
from tierstore.bench.timing import measure, summarize

__all__ = ["NEEDS_SERVER", "Settings", "run", "select"]

NEEDS_SERVER = "needs a server; pass --servers to include it"


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
    progress: bool | None = None  # None: a bar when stderr is a terminal, else one line per cell
    servers: bool = False  # systems that need a server run only when asked (``--servers``)

    @property
    def cell_seconds(self) -> float:
        return self.duration if self.duration is not None else (0.15 if self.quick else 1.0)

    @property
    def warmup_seconds(self) -> float:
        return min(0.25, max(0.02, self.cell_seconds / 4))

    @property
    def round_count(self) -> int:
        return self.rounds if self.rounds is not None else (1 if self.quick else 3)


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
    data: Dataset | None = None,
) -> Report:
    """Run the benchmark; returns the report (the CLI prints and writes it). ``data``: the data set every system
    loads (default: ``settings.partitions`` partitions of 100 items)."""
    env = os.environ if env is None else env
    registry = registry if registry is not None else default_registry(env)
    progress = progress if progress is not None else Progress(settings.progress)
    asked, scenarios = select(registry, settings)
    if data is None:
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
                    progress.note(f"closing {spec.name} failed: {one_line(exc)}")
                progress.advance(spec.name)
        by_name = {sc.name: sc for sc in scenarios}
        report.rows = [summarize(cell, by_name[cell.scenario]) for cell in cells]
        add_ratios(report.rows, registry, by_name)
        if settings.checks:
            from tierstore.bench.checks import run_checks
            from tierstore.bench.targets import evaluate

            t0 = time.monotonic()
            report.checks = evaluate(report.rows, registry=registry) + await run_checks(ctx, drivers, progress)
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
    reach = Reachability()
    serverless: list[str] = []
    queue = list(asked)
    seen = {spec.name for spec in queue}
    progress.begin("setup", len(queue))
    while queue:
        spec = queue.pop(0)
        if spec.servers and not ctx.settings.servers:
            # Never touch a server that merely happens to run here: the embedded default is the default.
            report.skipped.append({"system": spec.name, "reason": NEEDS_SERVER})
            serverless.append(spec.name)
            progress.advance(spec.name)
            continue
        reason = await unavailable(spec, ctx, reach)
        driver: Driver | None = None
        if reason is None:
            try:
                driver = spec.make(ctx)
            except Exception as exc:
                driver, reason = None, f"setup failed: {one_line(exc)}"
        if driver is not None:
            if not _applicable(driver, scenarios):
                progress.advance(spec.name)
                continue  # nothing selected that this system can do: not a skip worth printing
            t0 = time.monotonic()
            try:
                await driver.open(ctx.data)
                ctx.setup_times[spec.name] = time.monotonic() - t0
            except Exception as exc:
                reason = f"setup failed: {one_line(exc)}"
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
    if serverless:
        progress.note(f"not run, they need a server (pass --servers to include them): {', '.join(serverless)}")
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
            reason = one_line(exc)
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
                report.skipped.append({"system": spec.name, "scenario": scenario.name, "reason": one_line(exc)})
                progress.note(f"skipped {scenario.name} on {spec.name}: {one_line(exc)}")
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
                    report.skipped.append({"system": name, "scenario": scenario.name, "reason": one_line(exc)})
                    progress.note(f"{scenario.name} failed on {name}: {one_line(exc)}")
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
                rate = m.ops / (m.wall_ns / 1e9) if m.wall_ns else 0.0
                progress.finished(f"{scenario.name} · {name}: {m.ops} ops, {rate:,.0f} ops/s")
        for name, (driver, cell, _) in live.items():
            try:
                cell.extras.update(scenario.finish(driver, cell, ctx))
            except Exception as exc:
                progress.note(f"{scenario.name} on {name}: finishing failed: {one_line(exc)}")
            cells.append(cell)
