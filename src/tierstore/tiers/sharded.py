"""``ShardedTier``: one cache tier over several nodes (any ``CacheTier``: standalone Redis, Memcached, …).

Each key goes to one node, chosen by rendezvous (highest-random-weight) hashing on the partition part of the
cache key — the text inside ``{…}``, ``table:partition`` — so one partition's items share a node and adding
or removing a node moves only the keys that node wins or held (about 1/n of them). Node names, not their
order, decide placement: keep them stable (``"10.0.0.5:6379"``).

Batches group keys by node and run the groups concurrently. Each node fails open on its own: a node that
errs turns its keys into misses that will not be filled, while the other nodes keep serving; invalidations a
node did not get are kept per node and replayed before that node is read or filled again (past a bound the
node is cleared instead), so an outage of one node never leaves stale data behind and never fails a call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tierstore.errors import ConfigError
from tierstore.logs import get_logger
from tierstore.model.cachekey import partition_tag
from tierstore.routing.rendezvous import Rendezvous
from tierstore.stats import TierStats
from tierstore.tiers.base import Backlogged, CacheTier, Lease
from tierstore.tiers.health import NodeGuard

__all__ = ["ShardedTier", "ShardedTierConfig", "node_tag"]

log = get_logger("tierstore.cache")

MAX_PENDING_PER_NODE = 10_000

VOID = Lease(None)
"""Miss that must not be filled (its node failed or owes invalidations), as the other tiers spell it."""
node_tag = partition_tag


class ShardedTier:
    """A CacheTier spreading keys over ``nodes`` (name → tier) by rendezvous hashing.

    Closes its nodes on ``aclose()`` unless ``owns_nodes=False``.
    """

    def __init__(
        self,
        nodes: Mapping[str, CacheTier],
        *,
        name: str | None = None,
        owns_nodes: bool = True,
    ) -> None:
        if not nodes:
            raise ConfigError("ShardedTier needs at least one node")
        for node_name, tier in nodes.items():
            if not isinstance(node_name, str) or not node_name:
                raise ConfigError(f"ShardedTier node names must be non-empty strings, got {node_name!r}")
            if not isinstance(tier, CacheTier):
                raise ConfigError(f"ShardedTier: node {node_name} is not a CacheTier: {tier!r}")
        self.nodes: dict[str, CacheTier] = dict(nodes)
        self._names = tuple(self.nodes)
        self._tiers = tuple(self.nodes.values())
        # The same rendezvous as the Redis and Memcached tiers' own multi-node routing: one node name picks
        # the same partitions whichever layer spreads the keys.
        self._rendezvous = Rendezvous(self._names)
        kinds = {t.name for t in self._tiers}
        self.name = name or (f"sharded-{kinds.pop()}" if len(kinds) == 1 else "sharded")
        self.local = all(getattr(t, "local", False) for t in self._tiers)
        self.stats = TierStats()
        self.owns_nodes = owns_nodes
        # No breaker per node: a node's own tier fails fast or keeps its own breakers (the network tiers do).
        self._guards = tuple(NodeGuard(n, None, max_pending=MAX_PENDING_PER_NODE) for n in self._names)
        self._closed = False

    def __repr__(self) -> str:
        return f"ShardedTier({', '.join(f'{n}: {t!r}' for n, t in self.nodes.items())})"

    # -- placement ---------------------------------------------------------------------------------

    def node_index(self, key: str) -> int:
        """Position of the node that owns ``key`` (rendezvous on the partition tag inside ``{…}``)."""
        return self._rendezvous.index(key)

    def node_of(self, key: str) -> str:
        return self._names[self.node_index(key)]

    def _group(self, keys: Sequence[str]) -> dict[int, list[int]]:
        groups: dict[int, list[int]] = {}
        index = self.node_index
        for i, k in enumerate(keys):
            groups.setdefault(index(k), []).append(i)
        return groups

    def node_stats(self) -> dict[str, dict[str, Any]]:
        return {n: t.stats.as_dict() for n, t in self.nodes.items()}

    # -- fail-open bookkeeping -------------------------------------------------------------------

    def _failed(self, n: int, what: str, exc: BaseException) -> None:
        self.stats.errors += 1
        log.debug("cache node %s: %s failed: %r", self._names[n], what, exc)

    async def _replay(self, n: int) -> bool:
        """Deliver the invalidations node ``n`` missed; ``True`` when it can be trusted again."""
        guard = self._guards[n]
        if not guard.owes:
            return True
        tier = self._tiers[n]
        try:
            keys, cleared = await guard.replay(tier.clear, tier.invalidate_many)
        except Exception as exc:
            self._failed(n, "replay", exc)
            return False
        self.stats.invalidations_replayed += keys
        if cleared:
            self.stats.namespace_clears += 1
        return True

    # -- CacheTier protocol ------------------------------------------------------------------------

    async def open(self) -> None:
        async def one(n: int) -> None:
            try:
                await self._tiers[n].open()
            except Exception as exc:  # a node that is down fails open, as every tier does
                self._failed(n, "open", exc)

        await asyncio.gather(*(one(n) for n in range(len(self._tiers))))

    async def get_many(self, keys: Sequence[str]) -> list[bytes | Lease | None]:
        if not keys:
            return []
        groups = self._group(keys)
        self.stats.round_trips += len(groups)

        async def one(n: int, idx: list[int]) -> list[bytes | Lease | None]:
            if self._guards[n].owes and not await self._replay(n):
                return [VOID] * len(idx)
            try:
                return await self._tiers[n].get_many([keys[i] for i in idx])
            except Exception as exc:
                self._failed(n, "get", exc)
                return [VOID] * len(idx)

        if len(groups) == 1:
            ((n, idx),) = groups.items()
            out = await one(n, idx)
        else:
            parts = await asyncio.gather(*(one(n, idx) for n, idx in groups.items()))
            out = [None] * len(keys)
            for idx, got in zip(groups.values(), parts, strict=True):
                for i, g in zip(idx, got, strict=True):
                    out[i] = g
        hits = sum(1 for g in out if isinstance(g, bytes))
        self.stats.hits += hits
        self.stats.misses += len(out) - hits
        return out

    async def fill_many(self, entries: Sequence[tuple[str, bytes, Lease]], ttl: float) -> None:
        live = [e for e in entries if e[2].token is not None]
        self.stats.fills_dropped += len(entries) - len(live)
        if not live:
            return
        groups = self._group([e[0] for e in live])

        async def one(n: int, idx: list[int]) -> None:
            if self._guards[n].owes:
                # The node missed invalidations: a fill now could revive what they removed.
                self.stats.fills_dropped += len(idx)
                return
            node = self._tiers[n]
            dropped = node.stats.fills_dropped
            try:
                await node.fill_many([live[i] for i in idx], ttl)
            except Exception as exc:
                self._failed(n, "fill", exc)
                return
            # The node's stale-fill guard may drop some of them: report those as dropped, so the tiered path
            # does not fill nearer tiers with a value this tier refused.
            refused = node.stats.fills_dropped - dropped
            self.stats.fills_dropped += refused
            self.stats.fills += len(idx) - refused

        await asyncio.gather(*(one(n, idx) for n, idx in groups.items()))

    async def set_many(self, entries: Sequence[tuple[str, bytes, int]], ttl: float) -> None:
        if not entries:
            return
        groups = self._group([e[0] for e in entries])

        async def one(n: int, idx: list[int]) -> None:
            batch = [entries[i] for i in idx]
            guard = self._guards[n]
            if guard.owes and not await self._replay(n):
                guard.remember([e[0] for e in batch])
                return
            try:
                await self._tiers[n].set_many(batch, ttl)
                self.stats.fills += len(batch)
            except Exception as exc:
                self._failed(n, "set", exc)
                guard.remember([e[0] for e in batch])

        await asyncio.gather(*(one(n, idx) for n, idx in groups.items()))

    # -- hook: change-data-capture (tierstore.cdc) ---------------------------------------------------------

    def undelivered(self) -> int:
        """Invalidations kept for replay here and in the node tiers (a clear counts as one)."""
        own = sum(g.owed for g in self._guards)
        return own + sum(t.undelivered() for t in self._tiers if isinstance(t, Backlogged))

    async def invalidate_many(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        groups = self._group(keys)
        self.stats.invalidations += len(keys)

        async def one(n: int, idx: list[int]) -> None:
            batch = [keys[i] for i in idx]
            guard = self._guards[n]
            if guard.owes:
                guard.remember(batch)
                await self._replay(n)
                return
            try:
                await self._tiers[n].invalidate_many(batch)
            except Exception as exc:
                self._failed(n, "invalidate", exc)
                guard.remember(batch)
                log.warning("cache node %s: invalidation failed, kept for replay: %r", self._names[n], exc)

        await asyncio.gather(*(one(n, idx) for n, idx in groups.items()))

    async def clear(self) -> None:
        async def one(n: int) -> None:
            try:
                await self._guards[n].clear(self._tiers[n].clear)  # a node that fails owes a clear
            except Exception as exc:
                self._failed(n, "clear", exc)

        await asyncio.gather(*(one(n) for n in range(len(self._tiers))))

    async def aclose(self) -> None:
        """Close the nodes (if owned). Idempotent; never raises."""
        if self._closed:
            return
        self._closed = True
        if not self.owns_nodes:
            return
        for n in reversed(range(len(self._tiers))):
            try:
                await self._tiers[n].aclose()
            except Exception as exc:
                log.warning("closing cache node %s failed: %r", self._names[n], exc)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardedTierConfig:
    """A sharded tier from one tier URL (or config) per node name::

        ShardedTierConfig(nodes={"r1": "redis://10.0.0.5:6379/0", "r2": "redis://10.0.0.6:6379/0"})
    """

    nodes: Mapping[str, Any] = field(default_factory=dict)

    def build(self) -> ShardedTier:
        from tierstore.config import BackendConfig, tier_config

        built: dict[str, CacheTier] = {}
        for name, spec in self.nodes.items():
            cfg = tier_config(spec) if isinstance(spec, str) else spec
            if not isinstance(cfg, BackendConfig) or isinstance(cfg, CacheTier):
                raise ConfigError(f"node {name}: expected a cache URL or config, got {type(spec).__name__}")
            built[name] = cfg.build()
        return ShardedTier(built)

    def __repr__(self) -> str:
        from tierstore.config import redact_url

        nodes = {k: redact_url(v) if isinstance(v, str) else v for k, v in self.nodes.items()}
        return f"ShardedTierConfig(nodes={nodes!r})"
