"""The targets a run is checked against: data in ``targets.toml`` (package data next to this module), read here.

A target is a rule over the result rows — which tierstore rows it reads (scenario, stores, tiers), what it
compares them with (a floor, a peer or the row's own value), which statistic, the comparison and the threshold,
and one line saying what it asks. Keeping them as data means a new target, or a new backend's row under an
existing one, is a TOML entry, not code; the file's header documents every key. :func:`evaluate` turns the
targets and the rows into check entries (``{"check", "system", "value", "target", "ok", …}``) that
:mod:`tierstore.bench.report` prints as PASS / MISS.
"""

from __future__ import annotations

import fnmatch
import math
import operator
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from tierstore.bench.api import Registry
from tierstore.bench.builtin import default_registry
from tierstore.bench.report import ratio
from tierstore.errors import ConfigError

__all__ = ["COMPARISONS", "RATIOS", "Target", "evaluate", "load_targets"]

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
    "==": operator.eq,
}
RATIOS = ("time_ratio", "cpu_ratio")
"""Statistics of a row compared with another system's row; any other statistic is a key of the row itself."""

_KEYS = {"name", "description", "scenario", "stores", "tiers", "against", "statistic", "compare", "threshold"}
_REQUIRED = ("name", "description", "scenario", "statistic", "compare", "threshold")


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One target (the keys of a ``[[target]]`` entry; see the header of ``targets.toml``)."""

    name: str
    description: str
    scenario: str
    statistic: str
    compare: str
    threshold: float
    stores: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()
    against: str | None = None

    @property
    def text(self) -> str:
        """The comparison as printed: ``<= 1.3``."""
        return f"{self.compare} {self.threshold:g}"

    def applies(self, store: str, tiers: Sequence[str]) -> bool:
        """Whether the row of ``tierstore:<store>+<tiers…>`` is one this target reads."""
        if self.stores and store not in self.stores:
            return False
        joined = "+".join(tiers)
        return not self.tiers or any(fnmatch.fnmatchcase(joined, g) for g in self.tiers)

    def holds(self, value: float | None) -> bool:
        return value is not None and not math.isnan(value) and COMPARISONS[self.compare](value, self.threshold)


def load_targets(source: str | Path | None = None) -> tuple[Target, ...]:
    """The targets of ``source`` (a TOML file), by default the ``targets.toml`` shipped with the package.

    A malformed file raises :class:`~tierstore.errors.ConfigError` naming the entry and the key.
    """
    if source is None:
        raw = resources.files("tierstore.bench").joinpath("targets.toml").read_bytes()
        where = "tierstore/bench/targets.toml"
    else:
        raw = Path(source).read_bytes()
        where = str(source)
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    unknown = set(doc) - {"target"}
    if unknown:
        raise ConfigError(f"{where}: unknown top-level keys {sorted(unknown)}; targets are [[target]] entries")
    entries = doc.get("target", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: 'target' must be an array of tables ([[target]])")
    targets = tuple(_target(entry, f"{where}, target {i + 1}") for i, entry in enumerate(entries))
    names = [t.name for t in targets]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"{where}: target names must be unique, {twice} repeat")
    return targets


def _target(entry: Any, where: str) -> Target:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table")
    unknown = set(entry) - _KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    missing = [k for k in _REQUIRED if k not in entry]
    if missing:
        raise ConfigError(f"{where}: missing {missing}")
    for key in ("name", "description", "scenario", "statistic", "compare"):
        if not isinstance(entry[key], str) or not entry[key]:
            raise ConfigError(f"{where}: {key!r} must be a non-empty string")
    where = f"{where} ({entry['name']})"
    threshold = entry["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ConfigError(f"{where}: 'threshold' must be a number")
    if entry["compare"] not in COMPARISONS:
        raise ConfigError(f"{where}: 'compare' must be one of {list(COMPARISONS)}")
    against = entry.get("against")
    if against is not None and (not isinstance(against, str) or not against):
        raise ConfigError(f"{where}: 'against' must be a system name")
    if (against is not None) != (entry["statistic"] in RATIOS):
        raise ConfigError(f"{where}: statistics {list(RATIOS)} need 'against', and only they take it")
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("stores", "tiers"):
        value = entry.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: {key!r} must be a list of strings")
        lists[key] = tuple(value)
    return Target(
        name=entry["name"],
        description=entry["description"],
        scenario=entry["scenario"],
        statistic=entry["statistic"],
        compare=entry["compare"],
        threshold=float(threshold),
        stores=lists["stores"],
        tiers=lists["tiers"],
        against=against,
    )


def _layout(system: str) -> tuple[str, tuple[str, ...]] | None:
    """``("postgres", ("memory", "redis"))`` for ``tierstore:postgres+memory+redis``; None for other kinds."""
    if not system.startswith("tierstore:"):
        return None
    store, *tiers = system.split(":", 1)[1].split("+")
    return store, tuple(tiers)


def _other(target: Target, system: str, store: str, registry: Registry) -> str | None:
    """The system ``target`` compares the row of ``system`` with (``None``: it names no system here)."""
    assert target.against is not None
    if "{floor}" not in target.against:
        return target.against.replace("{store}", store)
    spec, scenario = registry.systems.get(system), registry.scenarios.get(target.scenario)
    floors = spec.floors_for(scenario) if spec is not None and scenario is not None else ()
    return target.against.replace("{store}", store).replace("{floor}", floors[0]) if floors else None


def evaluate(
    rows: Sequence[Mapping[str, Any]],
    targets: Sequence[Target] | None = None,
    registry: Registry | None = None,
) -> list[dict[str, Any]]:
    """A check entry per target and row it applies to (a row whose comparison row is missing: no entry).

    ``targets`` default to :func:`load_targets`; ``registry`` (for ``{floor}`` and the scenarios' concurrency)
    to the default one.
    """
    targets = load_targets() if targets is None else targets
    registry = default_registry({}) if registry is None else registry
    index = {(r["scenario"], r["system"]): r for r in rows}
    out: list[dict[str, Any]] = []
    for t in targets:
        scenario = registry.scenarios.get(t.scenario)
        for row in rows:
            layout = _layout(row["system"])
            if row["scenario"] != t.scenario or layout is None or not t.applies(*layout):
                continue
            detail = f"p50 {row['p50_us']} us, cpu {row.get('cpu_us_per_op')} us"
            text = t.text
            value: float | None
            if t.against is None:
                value = row.get(t.statistic)
            else:
                other_name = _other(t, row["system"], layout[0], registry)
                other = index.get((t.scenario, other_name)) if other_name is not None else None
                if other is None:
                    continue
                if t.statistic == "cpu_ratio":
                    a, b = row.get("cpu_us_per_op") or 0.0, other.get("cpu_us_per_op") or 0.0
                    value = round(a / b, 3) if a and b else None
                else:
                    concurrency = scenario.concurrency if scenario is not None else row.get("concurrency", 1)
                    value = ratio(row, other, concurrency)
                text += f" x {other_name}"
                detail += f"; {other_name} p50 {other['p50_us']} us, cpu {other.get('cpu_us_per_op')} us"
            out.append({
                "check": t.name,
                "system": row["system"],
                "value": value,
                "target": text,
                "description": t.description,
                "ok": t.holds(value),
                "detail": detail,
            })
    return out
