"""What the network tiers (Redis, memcached) share beyond their protocols.

:class:`NodeTier` is the per-node bookkeeping around each node's :class:`~tierstore.tiers.health.NodeGuard`:
the breaker's state in the tier's stats, the replay of a node's backlog before the node is trusted again,
invalidations kept for replay when a node cannot take them, and the outcome of a stale entry's refresh lock.
Each tier keeps its protocol: how a node's namespace is cleared, how keys are tombstoned, what a failure makes
doubtful. :func:`parse_hosts` and :func:`valid_prefix` read the parts of their URLs they have in common.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, ClassVar, Generic, Protocol, TypeVar

from tierstore.errors import ConfigError
from tierstore.tiers.base import Lease
from tierstore.tiers.entry import REFRESH, STALE_HEADER
from tierstore.tiers.health import Breaker, NodeGuard

if TYPE_CHECKING:
    import logging

    from tierstore.stats import TierStats

__all__ = ["BreakerSettings", "GuardedNode", "NodeTier", "parse_hosts", "valid_prefix"]


class GuardedNode(Protocol):
    """What :class:`NodeTier` needs of a tier's node."""

    addr: str
    guard: NodeGuard[Breaker]


class BreakerSettings(Protocol):
    """The part of a tier's config that shapes each node's breaker and backlog."""

    @property
    def breaker_failures(self) -> int: ...
    @property
    def breaker_cooldown(self) -> float: ...
    @property
    def max_pending(self) -> int: ...


N = TypeVar("N", bound=GuardedNode)
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

    def _all_nodes(self) -> Iterable[N]:
        """Every node the tier has connected to (for bookkeeping across all of them)."""
        raise NotImplementedError

    def undelivered(self) -> int:
        """Invalidations the nodes owe, kept for replay (a namespace clear counts as one): the tier is
        :class:`~tierstore.tiers.base.Backlogged`."""
        return sum(node.guard.owed for node in self._all_nodes())

    async def _clear_node(self, node: N) -> None:
        raise NotImplementedError

    async def _invalidate_on(self, node: N, keys: list[str], *, publish: bool) -> None:
        raise NotImplementedError

    def _guard(self, addr: str, config: BreakerSettings) -> NodeGuard[Breaker]:
        """A new node's guard; its breaker's state is kept in ``stats.breakers``."""
        self.stats.breakers[addr] = "closed"
        breaker = Breaker(
            failures=config.breaker_failures, cooldown=config.breaker_cooldown, name=addr,
            on_change=self._on_breaker,
        )
        return NodeGuard(addr, breaker, max_pending=config.max_pending)

    def _on_breaker(self, b: Breaker) -> None:
        self.stats.breakers[b.name] = b.state
        if b.state == "open":
            self.stats.breaker_opens += 1

    async def _each(self, groups: dict[N, G], fn: Callable[[N, G], Awaitable[None]]) -> None:
        """``fn`` on every node's group: inline for one node, concurrently for several."""
        if len(groups) == 1:
            ((node, group),) = groups.items()
            await fn(node, group)
        else:
            await asyncio.gather(*(fn(node, group) for node, group in groups.items()))

    async def _announce_clear(self, node: N) -> None:
        """Tell other processes' in-process tiers that ``node``'s namespace was cleared (where the tier has a
        channel; a replayed clear is announced like :meth:`clear`)."""

    async def _replay(self, node: N) -> bool:
        """Deliver what ``node`` owes (a clear of its namespace, then pending invalidations). True if done.

        Replayed invalidations are published like any other: other processes' in-process tiers may have kept
        (or filled, while the channel looked healthy) the entries they remove, and hear of them only here.
        """

        async def clear() -> None:
            await self._clear_node(node)
            await self._announce_clear(node)

        try:
            keys, cleared = await node.guard.replay(
                clear, lambda keys: self._invalidate_on(node, keys, publish=True)
            )
        except Exception as exc:
            self._failed(node, exc)
            return False
        self.stats.invalidations_replayed += keys
        if cleared:
            self.stats.namespace_clears += 1
        return True

    async def _usable(self, node: N) -> bool:
        """May ``node`` be read now? (breaker closed or probing, and nothing owed)."""
        guard = node.guard
        if not guard.breaker.allow():
            return False
        if guard.owes:
            return await self._replay(node)
        return True

    async def _invalidate_node(self, node: N, keys: list[str]) -> None:
        """Invalidate ``keys`` (all routed to ``node``); what the node cannot take now is kept for replay."""
        if not await self._usable(node):
            node.guard.remember(keys)
            return
        try:
            await self._invalidate_on(node, keys, publish=True)
        except Exception as exc:
            self._failed(node, exc)
            node.guard.remember(keys)
            self._log.warning("%s %s: invalidation failed, kept for replay: %r", self._kind, node.addr, exc)
            return
        node.guard.breaker.success()

    async def _clear_nodes(self, nodes: Iterable[N]) -> list[BaseException]:
        """Clear each node's namespace (one after the other); a node that fails owes a clear. The failures."""
        failed: list[BaseException] = []
        for node in nodes:
            try:
                await node.guard.clear(functools.partial(self._clear_node, node))
            except Exception as exc:
                self._failed(node, exc)
                failed.append(exc)
        return failed

    def _settle_refreshes(
        self, refresh: list[tuple[int, bytes]], won: Iterable[bool], token: bytes, out: list[bytes | Lease | None]
    ) -> None:
        """Entries past their soft expiry, and per entry whether this reader won its refresh lock: a winner gets
        a lease that carries the entry's header (its fill replaces only that very entry); the others are served
        the stale value at once, without waiting."""
        n = 0
        for (i, v), mine in zip(refresh, won, strict=True):
            if mine:
                out[i] = Lease(REFRESH + v[:STALE_HEADER] + token)
                n += 1
            else:
                out[i] = v[STALE_HEADER:]
        stats = self.stats
        stats.hits += len(refresh) - n
        stats.misses += n
        stats.stale_hits += len(refresh) - n
        stats.refreshes += n


_PREFIX = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")


def valid_prefix(prefix: str) -> str:
    """A key namespace: 1-64 characters of ``[A-Za-z0-9_.:-]`` (no braces: they would become the hash tag)."""
    if not _PREFIX.fullmatch(prefix):
        raise ConfigError(f"cache prefix must be 1-64 characters of [A-Za-z0-9_.:-], got {prefix!r}")
    return prefix


def parse_hosts(netloc: str, default_port: int) -> tuple[tuple[str, int], ...]:
    """``h1:p1,h2,[::1]:p3`` as ``((host, port), ...)``."""
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
