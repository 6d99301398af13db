"""What a run produced (:class:`Report`), the ratios of its rows to their floors, the printed table, the JSON.

Ratio = time per op of the system ÷ that of its floor in the same run (below 1: faster than the floor). For a
single caller it compares p50s; with concurrent callers it compares throughput (floor ops/s ÷ system ops/s).
The targets read off the rows are data (``targets.toml``, see :mod:`tierstore.bench.targets`); this module
prints them with the other checks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tierstore.bench.api import Registry, Scenario

__all__ = ["LEGEND", "REQUIRED_KEYS", "Report", "add_ratios", "format_report", "ratio", "write_json"]

REQUIRED_KEYS = ("scenario", "system", "ops_per_s", "p50_us", "p99_us", "round_trips_per_op")
"""The keys every result row has: the JSON contract of ``tierstore bench --json``; the others may grow."""


@dataclass(slots=True)
class Report:
    """The outcome of a run: result rows, skipped systems and cells, checks, metadata."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"results": self.rows, "skipped": self.skipped, "checks": self.checks, "meta": self.meta}


def ratio(row: Mapping[str, Any], floor: Mapping[str, Any], concurrency: int = 1) -> float | None:
    """Time per op of ``row`` relative to ``floor``; ``None`` when either is unusable."""
    if concurrency > 1:
        num, den = floor.get("ops_per_s") or 0.0, row.get("ops_per_s") or 0.0
    else:
        num, den = row.get("p50_us") or 0.0, floor.get("p50_us") or 0.0
    if not den or not num or math.isnan(num) or math.isnan(den):
        return None
    return round(num / den, 3)


def add_ratios(rows: list[dict[str, Any]], registry: Registry, scenarios: Mapping[str, Scenario]) -> None:
    """Give every row ``floor``, ``ratio_vs_floor``, ``cpu_ratio_vs_floor`` and ``ratios`` (all floors present)."""
    index = {(r["scenario"], r["system"]): r for r in rows}
    for row in rows:
        row.setdefault("floor", None)
        row.setdefault("ratio_vs_floor", None)
        spec = registry.systems.get(row["system"])
        scenario = scenarios.get(row["scenario"])
        if spec is None or scenario is None or spec.kind != "tierstore":
            continue
        ratios: dict[str, float] = {}
        for floor_name in spec.floors_for(scenario):
            floor = index.get((scenario.name, floor_name))
            if floor is not None:
                r = ratio(row, floor, scenario.concurrency)
                if r is not None:
                    ratios[floor_name] = r
        if not ratios:
            continue
        primary = next(iter(ratios))
        row["floor"] = primary
        row["ratio_vs_floor"] = ratios[primary]
        row["ratios"] = ratios
        floor_cpu = index[(scenario.name, primary)].get("cpu_us_per_op") or 0.0
        if floor_cpu:
            row["cpu_ratio_vs_floor"] = round(row["cpu_us_per_op"] / floor_cpu, 3)


# -- printing --------------------------------------------------------------------------------------------


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, int | float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def _notes(row: Mapping[str, Any]) -> str:
    notes = []
    if row.get("hit_ratio") is not None:
        notes.append(f"L1 hit {row['hit_ratio']:.3f} vs LRU {row.get('lru_hit_ratio', 0):.3f}")
    ratios = row.get("ratios") or {}
    others = [f"{name.split(':', 1)[1]} {r:.2f}" for name, r in ratios.items() if name != row.get("floor")]
    if others:
        notes.append("vs " + ", ".join(others))
    if row.get("batch", 1) > 1:
        notes.append(f"batch {row['batch']}")
    return "; ".join(notes)


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    head = ("scenario", "system", "ops/s", "p50 µs", "p99 µs", "cpu µs", "rt/op", "×floor", "floor", "notes")
    body = [
        (
            str(r["scenario"]),
            str(r["system"]),
            _num(r["ops_per_s"], 0),
            _num(r["p50_us"], 2),
            _num(r["p99_us"], 2),
            _num(r.get("cpu_us_per_op"), 2),
            _num(r["round_trips_per_op"], 2),
            _num(r.get("ratio_vs_floor"), 2),
            str(r.get("floor") or ""),
            _notes(r),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    right = {2, 3, 4, 5, 6, 7}

    def line(cells: Sequence[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in pairs)

    out = [line(head), line(["-" * w for w in widths])]
    last = None
    for b in body:
        if last is not None and b[0] != last:
            out.append("")
        out.append(line(b).rstrip())
        last = b[0]
    return "\n".join(out)


LEGEND = """\
Columns:
  scenario  the workload (tierstore bench --list describes each)
  system    tierstore:<store>[+<tiers, nearest first>] is tierstore; raw:<client> is the same work written by hand
            on the client library (the floor: what the hardware and the client allow); peer:<library> is
            another caching library used as its users would
  ops/s     operations per second (for concurrent scenarios: all tasks together)
  p50 µs    median time of one operation; p99 µs: the 99th percentile (tail latency)
  cpu µs    client CPU time per operation (process time / ops): what the library itself costs
  rt/op     round trips per operation to the store and remote tiers (an in-process hit is 0)
  ×floor    this row's time per op ÷ its floor's in this run (p50; throughput for concurrent scenarios):
            1.00 = as fast as hand-written code, below 1 = faster (a cache in front of a store), above 1 = slower
  floor     the system the ratio is taken against (the nearest tier's floor for cached scenarios)
  notes     ratios against the other floors and peers (vs <name> r), hit ratios, batching
Absolute times depend on the machine and its load; ratios within one run are what compare.
PASS / MISS: a target from tierstore/bench/targets.toml or a check, with the measured value and the target."""


def format_checks(checks: Sequence[Mapping[str, Any]]) -> str:
    if not checks:
        return ""
    lines = ["Targets and checks:"]
    for c in checks:
        mark = "PASS" if c.get("ok") else "MISS"
        where = f" [{c['system']}]" if c.get("system") else ""
        value = _num(c.get("value"), 3)
        about = f" — {c['description']}" if c.get("description") else ""
        detail = f" ({c['detail']})" if c.get("detail") else ""
        lines.append(f"  {mark} {c['check']}{where}: measured {value}, target {c['target']}{about}{detail}")
    return "\n".join(lines)


def format_report(report: Report) -> str:
    parts = [format_table(report.rows) if report.rows else "No results."]
    if report.rows:
        parts.append(LEGEND)
    checks = format_checks(report.checks)
    if checks:
        parts.append(checks)
    if report.skipped:
        lines = ["Skipped:"]
        for s in report.skipped:
            what = s["system"] + (f" / {s['scenario']}" if s.get("scenario") else "")
            lines.append(f"  {what}: {s['reason']}")
        parts.append("\n".join(lines))
    meta = report.meta
    if meta:
        parts.append(
            f"{meta.get('items')} items, L1 capacity {meta.get('l1_capacity')}, {meta.get('cell_seconds')} s per cell"
            f" in {meta.get('rounds')} round(s), {meta.get('elapsed_s')} s total."
            " Ratios: time per op vs the floor in this run (p50; throughput for concurrent scenarios)."
        )
    return "\n\n".join(parts)


def write_json(report: Report, path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(report.as_json(), fh, indent=1, allow_nan=False, default=_nan_safe)
        fh.write("\n")


def _nan_safe(value: Any) -> Any:
    return str(value)
