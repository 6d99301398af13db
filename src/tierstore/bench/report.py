"""Ratios against the floors, the targets of the issues read off the rows, and the printed table.

Ratio = time per op of the system ÷ that of its floor in the same run (below 1: faster than the floor). For a
single caller it compares p50s; with concurrent callers it compares throughput (floor ops/s ÷ system ops/s).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tierstore.bench.harness import Registry, Report, Scenario

__all__ = ["TARGETS", "Target", "add_ratios", "format_report", "ratio", "targets_from_rows", "write_json"]

REQUIRED_KEYS = ("scenario", "system", "ops_per_s", "p50_us", "p99_us", "round_trips_per_op")


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


def _row(rows: Iterable[dict[str, Any]], scenario: str, system: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["scenario"] == scenario and r["system"] == system), None)


def _layout(system: str) -> tuple[str, tuple[str, ...]] | None:
    """``("postgres", ("memory", "redis"))`` for ``tierstore:postgres+memory+redis``; None for other kinds."""
    if not system.startswith("tierstore:"):
        return None
    store, *tiers = system.split(":", 1)[1].split("+")
    return store, tuple(tiers)


@dataclass(frozen=True, slots=True)
class Target:
    """One target of the issues, read off the rows.

    ``applies(store, tiers)`` picks the tierstore rows of ``scenario``; ``against(store)`` names the row it is
    compared with (``None``: the row's own ``metric`` value). ``metric``: ``ratio`` (time per op, as in the
    table), ``cpu_ratio``, or a key of the row itself (``p50_us``, ``round_trips_per_op``,
    ``store_round_trips_per_op``). The target holds when value ``<= limit``.
    """

    check: str
    scenario: str
    applies: Callable[[str, tuple[str, ...]], bool]
    limit: float
    target: str
    against: Callable[[str], str] | None = None
    metric: str = "ratio"


TARGETS: tuple[Target, ...] = (
    # issue 2
    Target("l1_hit_get_us", "get", lambda s, t: t[:1] == ("memory",), 1.5, "<= 1.5 us", metric="p50_us"),
    Target(
        "get_cache_off_vs_core", "get", lambda s, t: not t and s in ("sqlite", "postgres", "mariadb"), 1.1,
        "<= 1.1 (stretch <= 0.8)", against=lambda s: f"raw:sqlalchemy-core-{s}",
    ),
    Target(
        "sqlite_get_vs_aiosqlite", "get", lambda s, t: not t and s == "sqlite", 0.5, "<= 0.5 (aim)",
        against=lambda s: "raw:aiosqlite",
    ),
    # issue 3
    Target(
        "redis_get_vs_raw", "get", lambda s, t: t[:1] == ("redis",), 1.08, "<= 1.08",
        against=lambda s: "raw:redis-get-decode",
    ),
    Target(
        "redis_get_many_vs_mget", "get_many_100", lambda s, t: t[:1] == ("redis",), 1.2, "<= 1.2",
        against=lambda s: "raw:redis-mget-decode",
    ),
    Target(
        "redis_get_vs_aiocache", "get", lambda s, t: t[:1] == ("redis",), 1.0, "< 1 (faster)",
        against=lambda s: "peer:aiocache",
    ),
    Target(
        "redis_get_vs_cashews", "get", lambda s, t: t[:1] == ("redis",), 1.0, "< 1 (faster)",
        against=lambda s: "peer:cashews",
    ),
    Target(
        "redis_concurrent_vs_raw", "get_concurrent_64", lambda s, t: t[:1] == ("redis",), 0.2,
        "<= 0.2 (>= 5x the throughput)", against=lambda s: "raw:redis-get-decode",
    ),
    Target(
        "l1_hit_vs_cashews_client_side", "get", lambda s, t: t[:1] == ("memory",) and "redis" in t, 0.3, "<= 0.3",
        against=lambda s: "peer:cashews-client-side",
    ),
    Target("herd_store_reads", "herd_100", lambda s, t: bool(t), 1.0, "= 1 store read per herd",
           metric="round_trips_per_op"),
    # issue 4
    Target(
        "dynamodb_get_cpu_vs_aioboto3", "get", lambda s, t: not t and s == "dynamodb", 0.8, "<= 0.8 (client CPU)",
        against=lambda s: "raw:aioboto3", metric="cpu_ratio",
    ),
    Target(
        "dynamodb_concurrent_vs_aioboto3", "get_concurrent_64", lambda s, t: not t and s == "dynamodb", 0.2,
        "<= 0.2 (>= 5x the throughput)", against=lambda s: "raw:aioboto3",
    ),
    Target(
        "dax_style_query_cache_hits", "query_page", lambda s, t: t == ("dax-style",), 0.01,
        "~0 store reads per query (query cache hits)", metric="store_round_trips_per_op",
    ),
    # issue 5
    Target(
        "join_vs_hand_batch", "join_100", lambda s, t: not t, 1.3, "<= 1.3 x hand-written batch code",
        against=lambda s: _join_batch_floor(s),
    ),
    Target(
        "join_round_trips", "join_100", lambda s, t: not t, 2.0, "2 (1 query + 1 batch, one shard)",
        metric="round_trips_per_op",
    ),
)


def _join_batch_floor(store: str) -> str:
    from tierstore.bench.systems import JOIN_FLOORS

    floors = JOIN_FLOORS.get(store)
    return floors[0] if floors else f"raw:{store}-join-batch"


def targets_from_rows(rows: Sequence[dict[str, Any]], targets: Sequence[Target] = TARGETS) -> list[dict[str, Any]]:
    """The issues' targets that the result rows answer directly (rows missing on either side: no check)."""
    out: list[dict[str, Any]] = []
    concurrency = {"get_concurrent_64": 64}
    for t in targets:
        for row in rows:
            layout = _layout(row["system"])
            if row["scenario"] != t.scenario or layout is None or not t.applies(*layout):
                continue
            detail = f"p50 {row['p50_us']} us, cpu {row.get('cpu_us_per_op')} us"
            if t.against is None:
                value = row.get(t.metric)
            else:
                other_name = t.against(layout[0])
                other = _row(rows, t.scenario, other_name)
                if other is None:
                    continue
                if t.metric == "cpu_ratio":
                    a, b = row.get("cpu_us_per_op") or 0.0, other.get("cpu_us_per_op") or 0.0
                    value = round(a / b, 3) if a and b else None
                else:
                    value = ratio(row, other, concurrency.get(t.scenario, 1))
                detail += f"; {other_name} p50 {other['p50_us']} us, cpu {other.get('cpu_us_per_op')} us"
            out.append({
                "check": t.check,
                "system": row["system"],
                "value": value,
                "target": t.target,
                "ok": value is not None and value <= t.limit,
                "detail": detail,
            })
    return out


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


def format_checks(checks: Sequence[Mapping[str, Any]]) -> str:
    if not checks:
        return ""
    lines = ["Targets and checks:"]
    for c in checks:
        mark = "ok  " if c.get("ok") else "MISS"
        where = f" [{c['system']}]" if c.get("system") else ""
        value = _num(c.get("value"), 3)
        lines.append(f"  {mark} {c['check']}{where}: {value} (target {c['target']}) {c.get('detail', '')}")
    return "\n".join(lines)


def format_report(report: Report) -> str:
    parts = [format_table(report.rows) if report.rows else "No results."]
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
