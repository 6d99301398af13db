"""``db.stats()`` in the Prometheus text exposition format, for a ``/metrics`` endpoint.

Every number in the stats becomes one sample: ``tierstore_store_<counter>{backend="postgres"}``,
``tierstore_tier_<counter>{tier="redis"}``, ``tierstore_query_cache_<counter>``; per-node breaker states become
``tierstore_tier_breaker_open{tier=..., node=...}`` (1 while open). Reading them costs no I/O: a scrape never
probes a backend (``db.health()`` does that, for readiness). Format:
https://prometheus.io/docs/instrumenting/exposition_formats/ — samples without ``# TYPE`` lines are untyped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["prometheus_text"]

_NAME = re.compile(r"[^a-zA-Z0-9_]")


def _name(*parts: str) -> str:
    return _NAME.sub("_", "_".join(("tierstore", *parts)))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _samples(prefix: str, labels: str, values: Mapping[str, Any], out: list[str]) -> None:
    for key, value in values.items():
        if _number(value):
            out.append(f"{_name(prefix, key)}{{{labels}}} {value}")
        elif key == "breakers" and isinstance(value, Mapping):
            for node, state in value.items():
                open_ = 1 if state == "open" else 0
                out.append(f'{_name(prefix, "breaker_open")}{{{labels},node="{_label(str(node))}"}} {open_}')


def prometheus_text(stats: Mapping[str, Any]) -> str:
    """``stats`` (the dict ``db.stats()`` returns) as Prometheus text."""
    out: list[str] = []
    store = stats.get("store") or {}
    _samples("store", f'backend="{_label(str(store.get("name", "")))}"', store, out)
    for tier, values in (stats.get("tiers") or {}).items():
        _samples("tier", f'tier="{_label(str(tier))}"', values, out)
    qc = stats.get("query_cache")
    if isinstance(qc, Mapping):
        for key, value in qc.items():
            if _number(value):
                out.append(f"{_name('query_cache', key)} {value}")
    return "\n".join(out) + "\n"
