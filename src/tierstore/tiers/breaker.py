"""Per-node machinery shared by the network tiers: circuit breaker and invalidation backlog.

A :class:`Breaker` has three states::

    closed ──(``failures`` consecutive failures)──► open ──(``cooldown`` elapsed)──► half-open
      ▲                                              ▲                                  │
      └──────────────(the probe succeeds)────────────┼──────────(the probe fails)───────┘

While open, calls are refused without I/O (the caller treats that as a miss), so a dead or hung node costs
nothing after the first few timeouts. In half-open, one call at a time is let through as a probe.

A :class:`NodeHealth` pairs a node's breaker with its backlog of invalidations that could not be delivered.
The tier replays the backlog before it reads the node again; past ``max_pending`` keys the backlog collapses
into "clear this node's namespace" (cheaper to replay than 10,000 deletes, and bounded in memory).

:class:`NodeTier` is the bookkeeping the Redis and memcached tiers share around those: a breaker per node with
its state in the tier's stats, the replay of a node's backlog before the node is trusted again, invalidations
kept for replay when a node cannot take them, and the outcome of a stale entry's refresh lock. Each tier keeps
its protocol: how a node's namespace is cleared, how keys are tombstoned, what a failure makes doubtful.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, Protocol, TypeVar

from tierstore.tiers.base import Lease

if TYPE_CHECKING:
    import logging

    from tierstore.stats import TierStats

__all__ = [
    "ENTRY", "ENTRY_HEADER", "LEASE", "MAX_VERSION", "STALE_ENTRY", "STALE_HEADER", "TOMBSTONE", "Breaker",
    "BreakerSettings", "BreakerState", "HealthNode", "NodeHealth", "NodeTier", "entry",
    "parse_hosts", "valid_prefix",
]

BreakerState = Literal["closed", "open", "half_open"]


class Breaker:
    """Circuit breaker of one node. Not thread-safe: use it from one event loop."""

    __slots__ = (
        "_failures", "_on_change", "_probe_until", "_retry_at", "_state", "cooldown", "failures",
        "name", "opens", "rejected",
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
            from tierstore.errors import ConfigError

            raise ConfigError("a breaker needs failures >= 1 and cooldown > 0")
        self.failures = failures
        self.cooldown = cooldown
        self.name = name
        self.opens = 0
        """Times the breaker went from closed or half-open to open."""
        self.rejected = 0
        """Calls refused without I/O while open."""
        self._state: BreakerState = "closed"
        self._failures = 0
        self._retry_at = 0.0
        self._probe_until = 0.0
        self._on_change = on_change

    def __repr__(self) -> str:
        return f"Breaker({self.name!r}, {self._state}, opens={self.opens})"

    @property
    def state(self) -> BreakerState:
        return self._state

    def allow(self) -> bool:
        """May a call go out now? In half-open, ``True`` means: you are the probe."""
        state = self._state
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
        self._failures = 0
        if self._state == "half_open":
            self._set("closed")

    def failure(self) -> None:
        self._failures += 1
        if self._state == "half_open" or (self._state == "closed" and self._failures >= self.failures):
            self._retry_at = time.monotonic() + self.cooldown
            self.opens += 1
            self._set("open")

    def trip(self) -> None:
        """Open now, whatever the count (e.g. the node reported it is shutting down)."""
        self._failures = self.failures
        if self._state != "open":
            self._retry_at = time.monotonic() + self.cooldown
            self.opens += 1
            self._set("open")

    def _set(self, state: BreakerState) -> None:
        self._state = state
        if self._on_change is not None:
            self._on_change(self)


class NodeHealth:
    """A node's breaker plus the invalidations it still owes (replayed before the node is read again)."""

    __slots__ = ("_overflows", "breaker", "max_pending", "name", "overflow", "pending")

    def __init__(self, name: str, breaker: Breaker, *, max_pending: int = 10_000) -> None:
        self.name = name
        self.breaker = breaker
        self.max_pending = max_pending
        self.pending: set[str] = set()
        self.overflow = False
        """The backlog outgrew ``max_pending``: the node's namespace must be cleared before it is trusted."""
        self._overflows = 0

    def __repr__(self) -> str:
        return (
            f"NodeHealth({self.name!r}, {self.breaker.state}, pending={len(self.pending)}, "
            f"overflow={self.overflow})"
        )

    @property
    def owes(self) -> bool:
        """Invalidations are owed: the node must not be read (or filled) before they are replayed."""
        return self.overflow or bool(self.pending)

    def remember(self, keys: Iterable[str]) -> None:
        if self.overflow:
            self._overflows += 1  # a clear already under way may have missed these: it must run again
            return
        self.pending.update(keys)
        if len(self.pending) > self.max_pending:
            self.pending.clear()
            self.overflow = True
            self._overflows += 1

    def require_clear(self) -> None:
        """The node's namespace must be cleared before it is trusted (e.g. slots moved in with stale keys)."""
        self.pending.clear()
        self.overflow = True
        self._overflows += 1

    def backlog(self) -> tuple[list[str], int | None]:
        """What to replay now: the keys, and (if the namespace must be cleared) a ticket for :meth:`replayed`."""
        return sorted(self.pending), (self._overflows if self.overflow else None)

    def replayed(self, keys: Iterable[str], clear_ticket: int | None = None) -> None:
        """The replay of ``keys`` went through (and, with the ticket of :meth:`backlog`, the clear did)."""
        self.pending.difference_update(keys)
        if clear_ticket is not None and clear_ticket == self._overflows:
            self.overflow = False


class HealthNode(Protocol):
    """What :class:`NodeTier` needs of a tier's node."""

    addr: str
    health: NodeHealth


class BreakerSettings(Protocol):
    """The part of a tier's config that shapes each node's breaker and backlog."""

    @property
    def breaker_failures(self) -> int: ...
    @property
    def breaker_cooldown(self) -> float: ...
    @property
    def max_pending(self) -> int: ...


N = TypeVar("N", bound=HealthNode)
G = TypeVar("G")


class NodeTier(Generic[N]):
    """Per-node bookkeeping shared by the network tiers (see the module docstring).

    A subclass sets ``stats``, ``_log`` and ``_kind`` (the backend's name in log lines) and supplies the protocol:
    ``_failed`` (count a node's failure), ``_clear_node`` (drop the node's whole namespace) and ``_invalidate_on``
    (tombstone keys on the node; with ``publish``, also tell other processes' in-process tiers where it can).
    """

    stats: TierStats
    _log: ClassVar[logging.Logger]
    _kind: ClassVar[str]

    def _failed(self, node: N, exc: BaseException) -> None:
        raise NotImplementedError

    async def _clear_node(self, node: N) -> None:
        raise NotImplementedError

    async def _invalidate_on(self, node: N, keys: list[str], *, publish: bool) -> None:
        raise NotImplementedError

    def _bump(self, name: str, n: int = 1) -> None:
        if n:
            self.stats.extra[name] = self.stats.extra.get(name, 0) + n

    def _health(self, addr: str, config: BreakerSettings) -> NodeHealth:
        """A new node's breaker and backlog; the breaker's state is kept in ``stats.extra["breakers"]``."""
        self.stats.extra.setdefault("breakers", {})[addr] = "closed"
        breaker = Breaker(
            failures=config.breaker_failures, cooldown=config.breaker_cooldown, name=addr,
            on_change=self._on_breaker,
        )
        return NodeHealth(addr, breaker, max_pending=config.max_pending)

    def _on_breaker(self, b: Breaker) -> None:
        self.stats.extra.setdefault("breakers", {})[b.name] = b.state
        if b.state == "open":
            self._bump("breaker_opens")

    async def _each(self, groups: dict[N, G], fn: Callable[[N, G], Awaitable[None]]) -> None:
        """``fn`` on every node's group: inline for one node, concurrently for several."""
        if len(groups) == 1:
            ((node, group),) = groups.items()
            await fn(node, group)
        else:
            await asyncio.gather(*(fn(node, group) for node, group in groups.items()))

    # -- hook: change-data-capture (tierstore.cdc) ---------------------------------------------------------

    def undelivered(self) -> int:
        """Invalidations the nodes owe (kept for replay; a namespace clear counts as one)."""
        nodes: Any = getattr(self, "_nodes", ())
        nodes = nodes.values() if isinstance(nodes, dict) else nodes
        return sum(len(n.health.pending) + (1 if n.health.overflow else 0) for n in nodes)

    async def _replay(self, node: N) -> bool:
        """Deliver what ``node`` owes (a clear of its namespace, then pending invalidations). True if done."""
        health = node.health
        keys, ticket = health.backlog()
        try:
            if ticket is not None:
                await self._clear_node(node)
            if keys:
                await self._invalidate_on(node, keys, publish=False)
        except Exception as exc:
            self._failed(node, exc)
            return False
        health.breaker.success()
        health.replayed(keys, ticket)
        self.stats.invalidations_replayed += len(keys)
        if ticket is not None:
            self._bump("namespace_clears")
        return True

    async def _usable(self, node: N) -> bool:
        """May ``node`` be read now? (breaker closed or probing, and nothing owed)."""
        if not node.health.breaker.allow():
            return False
        if node.health.owes:
            return await self._replay(node)
        return True

    async def _invalidate_node(self, node: N, keys: list[str]) -> None:
        """Invalidate ``keys`` (all routed to ``node``); what the node cannot take now is kept for replay."""
        if not await self._usable(node):
            node.health.remember(keys)
            return
        try:
            await self._invalidate_on(node, keys, publish=True)
        except Exception as exc:
            self._failed(node, exc)
            node.health.remember(keys)
            self._log.warning("%s %s: invalidation failed, kept for replay: %r", self._kind, node.addr, exc)
            return
        node.health.breaker.success()

    def _settle_refreshes(
        self, refresh: list[tuple[int, bytes]], won: Iterable[bool], token: bytes, out: list[bytes | Lease | None]
    ) -> None:
        """Entries past their soft expiry, and per entry whether this reader won its refresh lock: a winner gets
        a lease that carries the entry's header (its fill replaces only that very entry); the others are served
        the stale value at once, without waiting."""
        n = 0
        for (i, v), mine in zip(refresh, won, strict=True):
            if mine:
                out[i] = Lease(b"R" + v[:STALE_HEADER] + token)
                n += 1
            else:
                out[i] = v[STALE_HEADER:]
        self.stats.hits += len(refresh) - n
        self.stats.misses += n
        self._bump("stale_hits", len(refresh) - n)
        self._bump("refreshes", n)


def valid_prefix(prefix: str) -> str:
    """A key namespace: 1-64 characters of ``[A-Za-z0-9_.:-]`` (no braces: they would become the hash tag)."""
    import re

    from tierstore.errors import ConfigError

    if not re.fullmatch(r"[A-Za-z0-9_.:\-]{1,64}", prefix):
        raise ConfigError(f"cache prefix must be 1-64 characters of [A-Za-z0-9_.:-], got {prefix!r}")
    return prefix


def parse_hosts(netloc: str, default_port: int) -> tuple[tuple[str, int], ...]:
    """``h1:p1,h2,[::1]:p3`` as ``((host, port), ...)``."""
    from tierstore.errors import ConfigError

    out: list[tuple[str, int]] = []
    for part in netloc.split(","):
        part = part.strip()
        if not part:
            continue
        if part.startswith("["):
            host, _, rest = part[1:].partition("]")
            port_s = rest[1:] if rest.startswith(":") else ""
        else:
            host, _, port_s = part.rpartition(":") if ":" in part else (part, "", "")
        try:
            port = int(port_s) if port_s else default_port
        except ValueError:
            raise ConfigError(f"bad port in {part!r}") from None
        if not host or not 0 < port < 65536:
            raise ConfigError(f"bad host:port {part!r}")
        out.append((host, port))
    if not out:
        raise ConfigError("the URL names no host")
    return tuple(out)


# -- the stored form of an entry (shared by the Redis and memcached tiers) -------------------------------------

ENTRY = 0x44  # b"D" + 16 hex digits of version + envelope
STALE_ENTRY = 0x53  # b"S" + 16 hex version + 12 hex soft expiry (Unix ms) + 8 hex nonce + envelope
LEASE = 0x4C  # b"L" + token: a reader missed and will fill
TOMBSTONE = 0x54  # b"T": invalidated a moment ago
ENTRY_HEADER = 17
STALE_HEADER = 37
MAX_VERSION = (1 << 64) - 1


def entry(value: bytes, version: int, ttl: float, stale: float) -> bytes:
    """``value`` as stored. With ``stale`` > 0 it carries a soft expiry ``ttl`` from now: past it, one reader
    refreshes the entry while the others are still served it (it lives ``ttl + stale`` in all). The nonce
    makes two fills of one key distinguishable, so a refresh can check that it replaces the entry it saw."""
    import random

    v = min(max(int(version), 0), MAX_VERSION)
    if stale <= 0:
        return b"D%016x" % v + value
    soft = int((time.time() + ttl) * 1000)
    return b"S%016x%012x%08x" % (v, soft, random.getrandbits(32)) + value
