"""``await db.health()`` and the strict start-up check: is every backend of a database reachable right now?

A service needs two answers that counters cannot give: *may I take traffic?* (readiness) and *what is degraded?*
(operations). Tiers fail open, so a cache that is down never fails a request — it only costs latency and store
load, silently. This module probes each backend once, concurrently, under one deadline, and reports per backend:

* ``reachable`` — every endpoint (server, node, shard) answered a no-op request (``SELECT 1``, ``PING``,
  ``version``, ``ListTables``); in-process backends are always reachable and not probed;
* ``latency_ms`` — the probe's wall time;
* ``breaker`` — the tier's circuit breaker in the tiered read path (``closed``, ``open``, ``half_open``), and per
  endpoint the node's own breaker where the tier keeps one;
* ``coherence`` — for an in-process tier kept coherent by a farther tier's invalidation channel: ``connected``
  (L1 is filled), ``disconnected`` (L1 is empty and bypassed until the channel is back), ``not_started``.

:attr:`Health.ready` is "the store answered": a tier that is down degrades a service, it does not make it
unable to serve (so a readiness probe must not take every task out of a load balancer because a cache is down).
:func:`require_reachable` is the strict start-up option (``connect(..., strict=True)``): ``open()`` fails with
:class:`~tierstore.StoreError` or :class:`~tierstore.TierError` instead of logging and failing open.

A backend takes part by having ``async def ping(self) -> dict[str, str | None]``: per endpoint address, ``None``
if it answered or a short reason (no secrets) if it did not. Composite backends (``ShardedStore.shards``,
``ShardedTier.nodes``) are probed part by part.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from tierstore.errors import StoreError, TierError, bounded

if TYPE_CHECKING:
    from tierstore.db import Database

__all__ = ["DEFAULT_TIMEOUT", "BackendHealth", "EndpointHealth", "Health", "Pingable", "check", "require_reachable"]

DEFAULT_TIMEOUT = 2.0
"""Seconds a health check waits for every probe (they run concurrently)."""

_REASON = 200  # characters of a failure reason kept

Coherence = Literal["connected", "disconnected", "not_started", "closed"]


@runtime_checkable
class Pingable(Protocol):
    async def ping(self) -> dict[str, str | None]:
        """One no-op request per endpoint. Per endpoint address: ``None`` if it answered, else a short reason.
        Never raises because an endpoint is down."""
        ...


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    """One server, node or shard of a backend."""

    address: str
    reachable: bool
    breaker: str | None = None
    """The node's own circuit breaker (network tiers keep one per node), else ``None``."""
    error: str | None = None


@dataclass(frozen=True, slots=True)
class BackendHealth:
    """The state of the store or of one tier."""

    role: Literal["store", "tier"]
    name: str
    reachable: bool
    latency_ms: float | None = None
    """Wall time of the probe; ``None`` for in-process backends (not probed)."""
    breaker: str | None = None
    """The tiered path's breaker of this tier (``closed``/``open``/``half_open``); ``None`` for the store and
    in-process tiers, which have none."""
    coherence: Coherence | None = None
    """Only for an in-process tier in front of a tier that publishes invalidations."""
    endpoints: tuple[EndpointHealth, ...] = ()
    error: str | None = None

    @property
    def healthy(self) -> bool:
        """Reachable, no breaker open, and (for a coherent L1) its channel not down."""
        return (
            self.reachable
            and self.breaker in (None, "closed")
            and all(e.breaker in (None, "closed") for e in self.endpoints)
            and self.coherence not in ("disconnected", "closed")
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "name": self.name,
            "healthy": self.healthy,
            "reachable": self.reachable,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 3),
            "breaker": self.breaker,
            "coherence": self.coherence,
            "endpoints": [
                {"address": e.address, "reachable": e.reachable, "breaker": e.breaker, "error": e.error}
                for e in self.endpoints
            ],
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class Health:
    """The result of :meth:`Database.health`."""

    store: BackendHealth
    tiers: tuple[BackendHealth, ...] = field(default=())

    @property
    def ready(self) -> bool:
        """The store of record answered: requests can be served (tiers fail open)."""
        return self.store.reachable

    @property
    def degraded(self) -> bool:
        """Something is not as configured: a tier unreachable, a breaker open, an L1 channel down."""
        return not self.store.healthy or any(not t.healthy for t in self.tiers)

    @property
    def status(self) -> Literal["ok", "degraded", "down"]:
        if not self.ready:
            return "down"
        return "degraded" if self.degraded else "ok"

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for a JSON health endpoint). Holds no secrets: addresses are host:port only."""
        return {
            "status": self.status,
            "ready": self.ready,
            "store": self.store.as_dict(),
            "tiers": [t.as_dict() for t in self.tiers],
        }


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return bounded(f"{type(exc).__name__}: {text}" if not text.startswith(type(exc).__name__) else text, _REASON)


async def _ping(obj: Any) -> dict[str, str | None]:
    """Per endpoint: ``None`` or a reason. Composites are probed part by part (addresses prefixed by the part)."""
    if isinstance(obj, Pingable):
        got = await obj.ping()
        return {addr: (None if r is None else bounded(r, _REASON)) for addr, r in got.items()}
    parts: Mapping[str, Any] | None = getattr(obj, "shards", None) or getattr(obj, "nodes", None)
    if isinstance(parts, Mapping) and parts:
        names = list(parts)
        results = await asyncio.gather(*(_ping_safe(parts[n]) for n in names))
        out: dict[str, str | None] = {}
        for name, res in zip(names, results, strict=True):
            for addr, r in res.items():
                out[f"{name}/{addr}"] = r
        return out
    return {}


async def _ping_safe(obj: Any) -> dict[str, str | None]:
    try:
        return await _ping(obj)
    except Exception as exc:  # a backend whose probe itself broke: report it, do not fail the check
        return {getattr(obj, "name", type(obj).__name__): _reason(exc)}


def _in_process(obj: Any) -> bool:
    return bool(getattr(obj, "local", False)) or getattr(obj, "name", None) == "memory"


def _node_breakers(obj: Any) -> dict[str, str]:
    states = getattr(obj, "breaker_states", None)
    return dict(states()) if callable(states) else {}


async def _probe(role: Literal["store", "tier"], obj: Any, within: float) -> BackendHealth:
    name = str(getattr(obj, "name", type(obj).__name__))
    if _in_process(obj) and not isinstance(obj, Pingable):
        return BackendHealth(role, name, True)
    start = time.perf_counter()
    try:
        async with asyncio.timeout(within):
            results = await _ping_safe(obj)
    except TimeoutError:
        ms = (time.perf_counter() - start) * 1000
        return BackendHealth(role, name, False, ms, error=f"no answer within {within:g}s")
    ms = (time.perf_counter() - start) * 1000
    breakers = _node_breakers(obj)
    endpoints = tuple(
        EndpointHealth(addr, reason is None, breakers.get(addr), reason) for addr, reason in results.items()
    )
    if not endpoints and breakers:
        endpoints = tuple(EndpointHealth(addr, True, state) for addr, state in breakers.items())
    down = [e for e in endpoints if not e.reachable]
    error = None
    if down:
        error = bounded("; ".join(f"{e.address}: {e.error}" for e in down), _REASON * 2)
    return BackendHealth(role, name, not down, ms, endpoints=endpoints, error=error)


def _coherence(db: Database) -> Coherence | None:
    coherence = db.cache.coherence
    if coherence is None:
        return None
    if coherence.closed:
        return "closed"
    if not coherence.started:
        return "not_started"
    return "connected" if coherence.connected else "disconnected"


async def check(db: Database, within: float = DEFAULT_TIMEOUT) -> Health:
    """Probe the store and every tier of ``db`` concurrently, each within ``within`` seconds.

    The invalidation channel of an in-process tier is started here if no read has started it yet, so a service
    that checks health before its first request reports the channel's real state.
    """
    if not isinstance(within, int | float) or isinstance(within, bool) or not within > 0:
        from tierstore.errors import ValidationError

        raise ValidationError(f"health: within must be a number of seconds > 0, got {type(within).__name__}")
    coherence = db.cache.coherence
    tiers = db.cache.tiers
    probes = [_probe("store", db.store, within), *(_probe("tier", t, within) for t in tiers)]
    if coherence is not None and not coherence.started and not db.cache.closed:
        results, _ = await asyncio.gather(asyncio.gather(*probes), coherence.start())
    else:
        results = await asyncio.gather(*probes)
    store, tier_results = results[0], list(results[1:])
    for i, tier in enumerate(tiers):
        h = tier_results[i]
        breaker = db.cache.breaker_state(tier)
        coh = _coherence(db) if tier is db.cache.l1 else None
        if breaker is not None or coh is not None:
            tier_results[i] = BackendHealth(
                h.role, h.name, h.reachable, h.latency_ms, breaker, coh, h.endpoints, h.error
            )
    return Health(store, tuple(tier_results))


async def require_reachable(db: Database, within: float = DEFAULT_TIMEOUT) -> Health:
    """The strict start-up check: raise unless the store, every tier and the L1 invalidation channel (if one is
    configured) answer. Raises :class:`~tierstore.StoreError` or :class:`~tierstore.TierError` naming the backend
    and the reason; the caller closes the database."""
    health = await check(db, within)
    if not health.store.reachable:
        raise StoreError(
            f"strict start-up: the store ({health.store.name}) is unreachable: {health.store.error}",
            backend=health.store.name,
        )
    for t in health.tiers:
        if not t.reachable:
            raise TierError(f"strict start-up: cache tier {t.name} is unreachable: {t.error}", backend=t.name)
    for t in health.tiers:
        if t.coherence in ("disconnected", "closed"):
            raise TierError(
                f"strict start-up: the invalidation channel that keeps the {t.name} tier coherent is not subscribed",
                backend=t.name,
            )
    return health
