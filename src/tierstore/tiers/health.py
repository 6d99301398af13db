"""Fail-open bookkeeping: whether a cache may be trusted now, and what it is owed before it is.

A :class:`Breaker` has three states::

    closed ──(``failures`` consecutive failures)──► open ──(``cooldown`` elapsed)──► half-open
      ▲                                              ▲                                  │
      └──────────────(the probe succeeds)────────────┼──────────(the probe fails)───────┘

While open, calls are refused without I/O (the caller treats that as a miss), so a dead or hung node costs
nothing after the first few timeouts. In half-open, one call at a time is let through as a probe.

A :class:`NodeGuard` pairs a breaker (or none) with the backlog of invalidations the cache could not take. A
cache that owes invalidations is neither read nor filled until they are replayed: a read could serve what
they removed, a fill could bring it back. Past ``max_pending`` keys the backlog collapses into "clear the
whole namespace" (cheaper to replay than 10,000 deletes, and bounded in memory). The same class guards each
tier of the tiered path, each node of a :class:`~tierstore.tiers.sharded.ShardedTier`, each node of the
Redis and memcached tiers, and each tier of the DAX-style query cache.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, TypeVar

from tierstore.errors import ConfigError
from tierstore.stats import BreakerState

__all__ = ["Breaker", "NodeGuard"]


class Breaker:
    """Circuit breaker of one node. Not thread-safe: use it from one event loop.

    ``state`` and ``failing`` are plain attributes (read them, never set them): the read path checks
    ``state != "closed"`` before it pays for a call to :meth:`allow`, and calls :meth:`success` only when
    ``failing`` or the state says it would change something.
    """

    __slots__ = (
        "_on_change", "_probe_until", "_retry_at", "cooldown", "failing", "failures", "name", "opens",
        "rejected", "state",
    )

    def __init__(
        self,
        *,
        failures: int = 5,
        cooldown: float = 1.0,
        name: str = "",
        on_change: Callable[[Breaker], None] | None = None,
    ) -> None:
        if failures < 1 or cooldown <= 0:
            raise ConfigError("a breaker needs failures >= 1 and cooldown > 0")
        self.failures = failures
        self.cooldown = cooldown
        self.name = name
        self.opens = 0
        """Times the breaker went from closed or half-open to open."""
        self.rejected = 0
        """Calls refused without I/O while open."""
        self.state: BreakerState = "closed"
        self.failing = 0
        """Consecutive failures counted since the last success."""
        self._retry_at = 0.0
        self._probe_until = 0.0
        self._on_change = on_change

    def __repr__(self) -> str:
        return f"Breaker({self.name!r}, {self.state}, opens={self.opens})"

    def allow(self) -> bool:
        """May a call go out now? In half-open, ``True`` means: you are the probe."""
        state = self.state
        if state == "closed":
            return True
        now = time.monotonic()
        if state == "open":
            if now < self._retry_at:
                self.rejected += 1
                return False
            self._set("half_open")
            self._probe_until = now + self.cooldown
            return True
        # half-open with a probe out: let another through only if that probe has not answered in a cooldown
        if now >= self._probe_until:
            self._probe_until = now + self.cooldown
            return True
        self.rejected += 1
        return False

    def success(self) -> None:
        self.failing = 0
        if self.state == "half_open":
            self._set("closed")

    def failure(self) -> None:
        self.failing += 1
        if self.state == "half_open" or (self.state == "closed" and self.failing >= self.failures):
            self._open()

    def trip(self) -> None:
        """Open now, whatever the count (e.g. the node reported it is shutting down)."""
        self.failing = self.failures
        if self.state != "open":
            self._open()

    def _open(self) -> None:
        self._retry_at = time.monotonic() + self.cooldown
        self.opens += 1
        self._set("open")

    def _set(self, state: BreakerState) -> None:
        self.state = state
        if self._on_change is not None:
            self._on_change(self)


B = TypeVar("B", bound=Breaker | None)


class NodeGuard(Generic[B]):
    """One cache's breaker (``None``: the owner keeps none) and the invalidations it still owes.

    ``owes`` is a plain attribute, kept current by every method, so the read path checks it at the cost of an
    attribute load. A clear that was owed is settled only by a clear that started after the last
    invalidation the cache could not take: an invalidation that fails while a clear is under way may have
    missed that clear, so it makes the clear run again (the *ticket* of :meth:`backlog`).
    """

    __slots__ = ("_tickets", "breaker", "max_pending", "name", "overflow", "owes", "pending")

    def __init__(self, name: str, breaker: B, *, max_pending: int = 10_000) -> None:
        self.name = name
        self.breaker = breaker
        self.max_pending = max_pending
        self.pending: set[str] = set()
        """Keys whose invalidation is owed (read it; change it through the methods)."""
        self.overflow = False
        """The namespace must be cleared before the cache is trusted (the backlog outgrew ``max_pending``)."""
        self.owes = False
        """Invalidations are owed: the cache must not be read or filled before they are replayed."""
        self._tickets = 0

    def __repr__(self) -> str:
        state = "no breaker" if self.breaker is None else self.breaker.state
        return f"NodeGuard({self.name!r}, {state}, pending={len(self.pending)}, overflow={self.overflow})"

    @property
    def owed(self) -> int:
        """How many invalidations this cache is owed (a pending clear of the whole namespace counts as one)."""
        return len(self.pending) + (1 if self.overflow else 0)

    def remember(self, keys: Iterable[str]) -> None:
        """Keep invalidations the cache could not take, for replay."""
        if self.overflow:
            self._tickets += 1  # a clear already under way may have missed these: it must run again
            return
        pending = self.pending
        pending.update(keys)
        if len(pending) > self.max_pending:
            pending.clear()
            self.overflow = True
            self._tickets += 1
        self.owes = self.overflow or bool(pending)

    def require_clear(self) -> None:
        """The namespace must be cleared before the cache is trusted (a clear failed, or slots moved in with
        stale keys)."""
        self.pending.clear()
        self.overflow = True
        self.owes = True
        self._tickets += 1

    def move(self, keys: Iterable[str], to: NodeGuard[Any]) -> None:
        """Hand owed ``keys`` over to ``to`` (their owner now, e.g. after cluster slots moved)."""
        moving = list(keys)
        self.pending.difference_update(moving)
        self.owes = self.overflow or bool(self.pending)
        to.remember(moving)

    def backlog(self) -> tuple[list[str], int | None]:
        """What to replay now: the keys, and (if the namespace must be cleared) a ticket for :meth:`replayed`."""
        return sorted(self.pending), (self._tickets if self.overflow else None)

    def replayed(self, keys: Iterable[str], clear_ticket: int | None = None) -> None:
        """The replay of ``keys`` went through (and, with the ticket of :meth:`backlog`, the clear did)."""
        self.pending.difference_update(keys)
        if clear_ticket is not None and clear_ticket == self._tickets:
            self.overflow = False
        self.owes = self.overflow or bool(self.pending)

    async def replay(
        self, clear: Callable[[], Awaitable[object]], invalidate: Callable[[list[str]], Awaitable[object]]
    ) -> tuple[int, bool]:
        """Deliver the backlog: ``clear()`` if a clear is owed, then ``invalidate(keys)``; a success closes the
        breaker. Returns (keys replayed, whether it cleared). Raises what they raise, keeping the backlog."""
        keys, ticket = self.backlog()
        if ticket is not None:
            await clear()
        if keys:
            await invalidate(keys)
        breaker = self.breaker
        if breaker is not None:
            breaker.success()
        self.replayed(keys, ticket)
        return len(keys), ticket is not None

    async def clear(self, clear: Callable[[], Awaitable[object]]) -> None:
        """Run an explicit ``clear()`` of the namespace: it settles what was owed before it started; if it
        fails, a clear is owed (and the exception propagates)."""
        keys, ticket = list(self.pending), self._tickets
        try:
            await clear()
        except BaseException:
            self.require_clear()
            raise
        self.replayed(keys, ticket)
