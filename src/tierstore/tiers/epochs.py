"""Write epochs: per-key counters of the writes (and heard invalidations) of one process.

Every write of this process (once its cache maintenance is done) and every invalidation heard on the L1 channel
bumps the epoch of its keys (:class:`~tierstore.tiers.tiered.TieredCache` does). A bump also drops the key's
single-flight read under way from :attr:`WriteEpochs.flights`, so a reader that starts after the bump never
joins a read that began before it; a :class:`WriteTicket`, taken before a write's store call, tells its cache
maintenance whether another write of the key came in between.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["EPOCH_STRIPES", "WriteEpochs", "WriteTicket"]

EPOCH_STRIPES = 4096  # a power of two


class WriteEpochs:
    """Per-key write epochs of one process, striped (keys sharing a stripe share an epoch: a bump only costs a
    concurrent write of another key of its stripe its in-process set, which becomes an invalidation).
    ``of(ck)`` never decreases; it grows on every bump of ``ck``. Single-flight reads (:attr:`flights`) are
    dropped per key, not per stripe."""

    __slots__ = ("_all", "_stripes", "flights")

    def __init__(self) -> None:
        self._stripes = [0] * EPOCH_STRIPES
        self._all = 0
        self.flights: dict[str, list[Any]] = {}
        """Single-flight reads under way that a new reader may join: cache key -> [the read's future (made
        when a second reader joins), the repository reading]. Every bump of a key drops its entry."""

    def of(self, ck: str) -> int:
        return self._all + self._stripes[hash(ck) & (EPOCH_STRIPES - 1)]

    def bump(self, cks: Iterable[str]) -> None:
        stripes = self._stripes
        pop = self.flights.pop
        for ck in cks:
            stripes[hash(ck) & (EPOCH_STRIPES - 1)] += 1
            pop(ck, None)

    def bump_all(self) -> None:
        self._all += 1
        self.flights.clear()

    def heard(self, cks: Sequence[str] | None) -> None:
        """Invalidations heard on the L1 channel (``None``: everything, e.g. the channel dropped)."""
        if cks is None:
            self.bump_all()
        else:
            self.bump(cks)


class WriteTicket:
    """Taken before a write's store call: when it began and the epochs of its keys then."""

    __slots__ = ("cks", "epochs", "started")

    def __init__(self, cks: Sequence[str], epochs: WriteEpochs) -> None:
        self.cks = cks
        self.started = time.monotonic()
        self.epochs = [epochs.of(ck) for ck in cks]
