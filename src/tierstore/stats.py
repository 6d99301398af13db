"""Counters read by users, tests and the benchmark harness. Plain attributes: cheap to bump."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["StoreStats", "TierStats"]


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
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def reset(self) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, {} if name == "extra" else 0)


@dataclass(slots=True)
class StoreStats:
    round_trips: int = 0  # requests sent to the store of record
    reads: int = 0  # items asked for by get/get_many
    writes: int = 0  # items written or deleted
    queries: int = 0
    retries: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def reset(self) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, 0)
