"""``Telemetry``: the tracer, the meter and the instruments of the databases that use them.

Metrics are read from the counters tierstore keeps anyway (``db.stats()``), by observable instruments whose
callbacks run when the metric reader collects — nothing is added to an operation for them. The one
synchronous instrument is the ``db.client.operation.duration`` histogram, recorded by the traced repository.

================================================  =========  ============================================
instrument                                        unit       attributes
================================================  =========  ============================================
``db.client.operation.duration`` (histogram)      s          ``db.system.name``, ``db.collection.name``,
                                                             ``db.operation.name``, ``server.address``,
                                                             ``error.type``
``tierstore.cache.hits`` (counter)                {hit}      ``tierstore.cache.tier``, ``db.system.name``
``tierstore.cache.misses`` (counter)              {miss}     same
``tierstore.cache.errors`` (counter)              {error}    same
``tierstore.store.reads_saved`` (counter)         {read}     ``db.system.name`` (of the store)
``tierstore.cache.breaker.state`` (gauge)         1          ``tierstore.cache.tier``, ``tierstore.cache.node``
                                                             (absent for the tiered path's own breaker);
                                                             0 closed, 1 half open, 2 open
``tierstore.cache.invalidation.backlog`` (gauge)  {key}      ``tierstore.cache.tier``; ``-1``: overflowed,
                                                             the tier's namespace will be cleared
``tierstore.cache.coherence.connected`` (gauge)   1          ``tierstore.cache.tier`` (the in-process tier)
``tierstore.cache.l1.size`` (gauge)               {entry}    ``tierstore.cache.tier``
``tierstore.cache.l1.bytes`` (gauge)              By         same
``tierstore.cache.l1.evictions`` (counter)        {entry}    same
================================================  =========  ============================================

Databases sharing a ``Telemetry`` are summed per attribute set; a closed database stops being observed.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.trace import TracerProvider

from tierstore.telemetry.attributes import store_system, tier_system
from tierstore.telemetry.tracing import TracedRepository, TracedTieredCache
from tierstore.tiers.base import CacheTier
from tierstore.tiers.policy import CachePolicy

if TYPE_CHECKING:
    from tierstore.db import Database

__all__ = ["Telemetry", "default_telemetry"]

SCOPE = "tierstore"
# The bucket boundaries the database conventions advise for db.client.operation.duration.
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
_BREAKER = {"closed": 0, "half_open": 1, "open": 2}


class Telemetry:
    """Where tierstore's spans and metrics go: ``connect(..., telemetry=Telemetry(tracer_provider=…,
    meter_provider=…))``. A provider left ``None`` is the global one (set by the service)."""

    def __init__(
        self, *, tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None
    ) -> None:
        version = str(getattr(sys.modules.get("tierstore"), "__version__", ""))  # the package, loaded by now
        self.tracer = trace.get_tracer(SCOPE, version, tracer_provider)
        self.meter = metrics.get_meter(SCOPE, version, meter_provider)
        self.duration = self.meter.create_histogram(
            "db.client.operation.duration", unit="s", description="Duration of repository operations",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._databases: weakref.WeakSet[Database] = weakref.WeakSet()
        self.repository_class: type[TracedRepository[Any]] = type(
            "TracedRepository", (TracedRepository,), {"telemetry": self}
        )
        m = self.meter
        m.create_observable_counter("tierstore.cache.hits", [self._hits], unit="{hit}",
                                    description="Keys a cache tier answered")
        m.create_observable_counter("tierstore.cache.misses", [self._misses], unit="{miss}",
                                    description="Keys a cache tier did not hold")
        m.create_observable_counter("tierstore.cache.errors", [self._errors], unit="{error}",
                                    description="Failed calls to a cache tier (each a miss: tiers fail open)")
        m.create_observable_counter("tierstore.store.reads_saved", [self._saved], unit="{read}",
                                    description="Reads a cache tier answered instead of the store")
        m.create_observable_gauge("tierstore.cache.breaker.state", [self._breakers], unit="1",
                                  description="Circuit breaker state: 0 closed, 1 half open, 2 open")
        m.create_observable_gauge("tierstore.cache.invalidation.backlog", [self._backlog], unit="{key}",
                                  description="Invalidations kept for replay (-1: overflowed, a clear is owed)")
        m.create_observable_gauge("tierstore.cache.coherence.connected", [self._coherence], unit="1",
                                  description="1 while the in-process tier's invalidation channel is subscribed")
        m.create_observable_gauge("tierstore.cache.l1.size", [self._l1_size], unit="{entry}",
                                  description="Entries in the in-process tier")
        m.create_observable_gauge("tierstore.cache.l1.bytes", [self._l1_bytes], unit="By",
                                  description="Encoded bytes in the in-process tier")
        m.create_observable_counter("tierstore.cache.l1.evictions", [self._l1_evictions], unit="{entry}",
                                    description="Entries the in-process tier evicted to stay within its bounds")

    def __repr__(self) -> str:
        return f"Telemetry({len(self._databases)} database(s))"

    # -- what a database asks for --

    def tiered_cache(self, tiers: Sequence[CacheTier], policy: CachePolicy | None) -> TracedTieredCache:
        return TracedTieredCache(tiers, policy, self)

    def watch(self, db: Database) -> None:
        self._databases.add(db)

    def unwatch(self, db: Database) -> None:
        self._databases.discard(db)

    # -- observable callbacks --

    def _tiers(self) -> Iterable[tuple[Database, int, CacheTier, dict[str, Any]]]:
        for db in list(self._databases):
            for t, tier in enumerate(db.cache.tiers):
                yield db, t, tier, {"tierstore.cache.tier": tier.name, "db.system.name": tier_system(tier)}

    @staticmethod
    def _sum(pairs: Iterable[tuple[dict[str, Any], float]]) -> list[Observation]:
        totals: dict[tuple[tuple[str, Any], ...], float] = {}
        for attrs, value in pairs:
            key = tuple(sorted(attrs.items()))
            totals[key] = totals.get(key, 0) + value
        return [Observation(v, dict(k)) for k, v in totals.items()]

    def _hits(self, _: CallbackOptions) -> list[Observation]:
        return self._sum((a, tier.stats.hits) for _, _, tier, a in self._tiers())

    def _misses(self, _: CallbackOptions) -> list[Observation]:
        return self._sum((a, tier.stats.misses) for _, _, tier, a in self._tiers())

    def _errors(self, _: CallbackOptions) -> list[Observation]:
        return self._sum((a, tier.stats.errors) for _, _, tier, a in self._tiers())

    def _saved(self, _: CallbackOptions) -> list[Observation]:
        return self._sum(
            ({"db.system.name": store_system(db.store)}, sum(t.stats.hits for t in db.cache.tiers))
            for db in list(self._databases)
        )

    def _breakers(self, _: CallbackOptions) -> list[Observation]:
        out: dict[tuple[tuple[str, Any], ...], int] = {}
        for _db, _t, tier, _attrs in self._tiers():
            if tier.local:
                continue
            states = [({"tierstore.cache.tier": tier.name}, tier.stats.tier_breaker)]
            states += [({"tierstore.cache.tier": tier.name, "tierstore.cache.node": node}, state)
                       for node, state in tier.stats.breakers.items()]
            for a, state in states:
                key = tuple(sorted(a.items()))
                out[key] = max(out.get(key, 0), _BREAKER.get(state, 0))
        return [Observation(v, dict(k)) for k, v in out.items()]

    def _backlog(self, _: CallbackOptions) -> list[Observation]:
        pairs = []
        for db, t, tier, _a in self._tiers():
            guard = db.cache._guards[t]
            pairs.append(({"tierstore.cache.tier": tier.name}, -1 if guard.overflow else len(guard.pending)))
        return self._sum(pairs)

    def _coherence(self, _: CallbackOptions) -> list[Observation]:
        return [
            Observation(1 if db.cache.coherence.connected else 0, {"tierstore.cache.tier": db.cache.coherence.l1.name})
            for db in list(self._databases) if db.cache.coherence is not None
        ]

    def _l1(self) -> Iterable[tuple[Any, dict[str, Any]]]:
        for db in list(self._databases):
            if db.cache.l1 is not None:
                yield db.cache.l1, {"tierstore.cache.tier": db.cache.l1.name}

    def _l1_size(self, _: CallbackOptions) -> list[Observation]:
        return self._sum((a, len(l1)) for l1, a in self._l1() if hasattr(l1, "__len__"))

    def _l1_bytes(self, _: CallbackOptions) -> list[Observation]:
        return self._sum((a, l1.nbytes) for l1, a in self._l1() if hasattr(l1, "nbytes"))

    def _l1_evictions(self, _: CallbackOptions) -> list[Observation]:
        return self._sum((a, l1.stats.evictions) for l1, a in self._l1())


_default: Telemetry | None = None


def default_telemetry() -> Telemetry:
    """The telemetry of the global providers (one per process, so its instruments are created once)."""
    global _default
    if _default is None:
        _default = Telemetry()
    return _default
