"""Counters read by users, tests and the benchmark harness.

Every counter is a typed field, so bumping one is a single attribute store (cheaper than a named entry in a
dict, and a misspelt name fails type checking instead of starting a new counter). Every tier has every
field; a field a tier never touches stays at its default. ``as_dict()`` is the serialised form
(``db.stats()``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["BreakerState", "StoreStats", "TierStats"]

BreakerState = Literal["closed", "open", "half_open"]

# Fields that mirror a breaker's current state: reset() keeps them, since they are not counts.
_STATES = frozenset({"breakers", "tier_breaker"})


@dataclass(slots=True)
class TierStats:
    hits: int = 0
    misses: int = 0
    fills: int = 0
    fills_dropped: int = 0  # fills refused by the stale-fill guard (void lease or older version)
    invalidations: int = 0
    errors: int = 0
    evictions: int = 0
    lease_waits: int = 0
    undecodable: int = 0
    invalidations_replayed: int = 0
    round_trips: int = 0

    # -- the tiered path, per tier ----------------------------------------------------------------------------
    lease_wait_timeouts: int = 0  # keys whose lease holder did not fill in time: read from the store, unfilled
    coalesced_batches: int = 0  # reads of one loop tick merged into one get_many
    coalesced_calls: int = 0  # callers those merged reads served
    coalesced_keys: int = 0  # distinct keys they asked for
    coalesced_max_keys: int = 0  # the largest merged read
    tier_breaker: BreakerState = "closed"  # the tiered path's circuit breaker around this tier
    namespace_clears: int = 0  # whole-namespace clears that replaced an overflowing invalidation backlog

    # -- the shared network tiers (Redis, memcached) ----------------------------------------------------------
    leases: int = 0  # leases handed out on misses
    oversized: int = 0  # values larger than the tier takes: not cached
    stale_hits: int = 0  # entries served past their soft expiry while another reader refreshes them
    refreshes: int = 0  # soft-expired entries this process won the refresh of
    breaker_opens: int = 0  # times a node's circuit breaker opened
    breakers: dict[str, BreakerState] = field(default_factory=dict)  # node address -> its breaker's state
    hashed_keys: int = 0  # memcached: keys too long or not printable ASCII, sent as a hash
    generation_changes: int = 0  # memcached: a node's namespace generation was found moved (a clear elsewhere)

    # -- L1 coherence (on the in-process tier it keeps coherent) ---------------------------------------------
    coherence_subscribes: int = 0
    coherence_flushes: int = 0  # another process cleared the namespace: L1 flushed
    coherence_evictions: int = 0  # keys evicted by other processes' invalidations
    coherence_drops: int = 0  # the invalidation channel was lost (L1 flushed, not filled until it is back)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def reset(self) -> None:
        """Zero every counter. The breaker states stay: they are the breakers' current states, not counts."""
        for name, f in self.__dataclass_fields__.items():
            if name not in _STATES:
                setattr(self, name, f.default)


@dataclass(slots=True)
class StoreStats:
    round_trips: int = 0  # requests sent to the store of record
    reads: int = 0  # items asked for by get/get_many
    writes: int = 0  # items written or deleted
    queries: int = 0
    retries: int = 0
    errors: int = 0
    skipped: int = 0  # stored items tolerant queries left out (undecodable as the entity)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def reset(self) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, 0)
