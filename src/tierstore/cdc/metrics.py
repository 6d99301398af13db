"""What an invalidator reports about itself: lag, backlog, progress, errors and a health verdict.

* **Lag** is measured per change as *invalidated at* minus *committed at*, with the commit time the change log
  records (PostgreSQL: the commit timestamp, microseconds; MySQL/MariaDB: the event header, whole seconds;
  DynamoDB Streams: ``ApproximateCreationDateTime``, whose precision is the service's — whole minutes on
  DynamoDB Local). Kept as a window of the last 4,096 changes, reported as p50/p99/max.
* **Backlog** is what the source says is still ahead of the checkpoint (bytes of WAL, binlog bytes, or
  shards not yet at their end), refreshed at most every few seconds.
* **Health**: ``ok`` while the loop reads and delivers; ``degraded`` while invalidations wait for a tier that
  cannot take them (nothing is checkpointed past them) or after recent errors; ``down`` when the loop is not
  running or has not completed a read for ``stall_after`` seconds. While an invalidator is down, caches fall
  back to their TTLs (see docs/change-data-capture.md).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["InvalidatorStats", "percentile"]

WINDOW = 4096


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values`` by the nearest-rank method, or ``None`` if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.999999) - 1))
    return ordered[rank]


@dataclass(slots=True)
class InvalidatorStats:
    changes: int = 0  # changes read from the log that mapped to an entity key
    keys_invalidated: int = 0  # cache keys handed to the tiered path (a change may carry two: old and new key)
    ignored: int = 0  # changes of tables without an entity, or whose key cannot be a tierstore key
    batches: int = 0
    checkpoints: int = 0
    gaps: int = 0  # times the log could not be resumed where it stopped (caches cleared or left to TTL)
    clears: int = 0
    errors: int = 0
    delivery_retries: int = 0  # re-deliveries while a tier could not take invalidations
    restarts: int = 0  # reconnects of the source after an error
    undelivered: int = 0  # invalidations currently waiting for a tier (nothing is checkpointed past them)
    backlog: dict[str, Any] = field(default_factory=dict)
    position: Any = None
    last_error: str | None = None
    last_gap: str | None = None  # why the log last could not be resumed exactly
    last_error_at: float | None = None
    last_read_at: float | None = None  # wall clock of the last completed read of the log
    last_commit_at: float | None = None  # commit time of the newest change applied
    started_at: float | None = None
    lags: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))

    def record_lags(self, committed: list[float], now: float) -> None:
        for at in committed:
            self.lags.append(max(0.0, now - at))
            if self.last_commit_at is None or at > self.last_commit_at:
                self.last_commit_at = at

    def lag(self) -> dict[str, float | None]:
        values = list(self.lags)
        return {
            "p50": percentile(values, 0.50),
            "p99": percentile(values, 0.99),
            "max": max(values) if values else None,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "changes": self.changes,
            "keys_invalidated": self.keys_invalidated,
            "ignored": self.ignored,
            "batches": self.batches,
            "checkpoints": self.checkpoints,
            "gaps": self.gaps,
            "clears": self.clears,
            "errors": self.errors,
            "delivery_retries": self.delivery_retries,
            "restarts": self.restarts,
            "undelivered": self.undelivered,
            "backlog": dict(self.backlog),
            "position": self.position,
            "last_error": self.last_error,
            "last_gap": self.last_gap,
            "last_read_age": None if self.last_read_at is None else round(time.time() - self.last_read_at, 3),
            "lag_seconds": self.lag(),
        }
