"""Where each key of a Redis tier lives: a Redis Cluster's slot map, or rendezvous over standalone nodes.

Cluster: the slot map comes from ``CLUSTER SLOTS`` (any node that answers seeds it) and is read again before
the next routing when a reply says ``MOVED``/``ASK``/``TRYAGAIN`` or a node fails; the cache key's
``{table:partition}`` is the hash tag, so one partition's keys share a slot and one ``MGET``. Invalidations a
node still owes follow their keys to the node that owns them now, so a moved slot never loses one.

Standalone: one node, or several chosen per partition by rendezvous hashing (the same placement as
:class:`~tierstore.tiers.sharded.ShardedTier`, so one node name picks the same partitions in either layer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from redis.crc import key_slot
from redis.exceptions import AskError, TryAgainError

from tierstore.errors import TierError
from tierstore.routing.rendezvous import Rendezvous
from tierstore.tiers.redis.protocol import Node

if TYPE_CHECKING:
    from tierstore.stats import TierStats
    from tierstore.tiers.health import Breaker, NodeGuard
    from tierstore.tiers.redis.config import RedisTierConfig

__all__ = ["SLOTS", "Topology"]

SLOTS = 16384


class Topology:
    """The nodes of one Redis tier and which of them owns each key. ``route`` is on every read's path."""

    def __init__(
        self, config: RedisTierConfig, guard: Callable[[str], NodeGuard[Breaker]], stats: TierStats, name: str
    ) -> None:
        self.config = config
        self.cluster = config.cluster
        self.nodes: dict[str, Node] = {}
        self.order: list[Node] = []  # standalone: the nodes, in rendezvous order
        self.slots: list[Node | None] = []  # cluster: slot -> node
        self.stale = config.cluster
        """The cluster's slot map must be read again before the next routing."""
        self._guard = guard
        self._stats = stats
        self._name = name
        self._prefix = config.prefix.encode() + b":"
        self._rendezvous: Rendezvous | None = None
        self._lock = asyncio.Lock()
        if not config.cluster:
            for host, port in config.hosts:
                self.order.append(self.node(host, port))
            if len(self.order) > 1:
                self._rendezvous = Rendezvous(n.addr for n in self.order)

    def node(self, host: str, port: int) -> Node:
        addr = f"{host}:{port}"
        node = self.nodes.get(addr)
        if node is None:
            node = self.nodes[addr] = Node(host, port, self.config, self._guard(addr))
        return node

    async def route(self, keys: Sequence[str]) -> dict[Node, dict[int, list[int]]]:
        """node -> slot -> indexes into ``keys`` (slot 0 for standalone nodes)."""
        if not self.cluster:
            if self._rendezvous is None:
                return {self.order[0]: {0: list(range(len(keys)))}}
            groups: dict[Node, dict[int, list[int]]] = {}
            pick = self._rendezvous.index
            order = self.order
            for i, k in enumerate(keys):
                groups.setdefault(order[pick(k)], {}).setdefault(0, []).append(i)
            return groups
        if self.stale or not self.slots:
            await self.refresh()
        slots = self.slots
        groups = {}
        prefix = self._prefix
        for i, k in enumerate(keys):
            slot = key_slot(prefix + k.encode())
            node = slots[slot]
            if node is None:
                raise TierError(f"slot {slot} has no node in the cluster topology", backend=self._name)
            groups.setdefault(node, {}).setdefault(slot, []).append(i)
        return groups

    def slot_of(self, key: str) -> int:
        return key_slot(self._prefix + key.encode())

    async def masters(self) -> list[Node]:
        """Every node that holds keys: each cluster master (slot map read first if stale), or each standalone
        node."""
        if not self.cluster:
            return list(self.order)
        if self.stale or not self.slots:
            await self.refresh()
        return list(dict.fromkeys(n for n in self.slots if n is not None))

    def note_error(self, reply: Exception) -> None:
        """A per-command error reply: ``MOVED``/``ASK``/``TRYAGAIN`` mean the slot moved."""
        if isinstance(reply, AskError | TryAgainError):  # MovedError derives from AskError
            self.stale = True

    async def refresh(self) -> None:
        """Read the slot map (``CLUSTER SLOTS``) from the first node that answers, if it is stale."""
        async with self._lock:
            if not self.stale and self.slots:
                return
            seeds = [n for n in self.nodes.values() if n.guard.breaker.state == "closed"]
            seeds += [self.node(h, p) for h, p in self.config.hosts]
            last: BaseException | None = None
            for seed in dict.fromkeys(seeds):
                try:
                    (reply,) = await seed.call([("CLUSTER", "SLOTS")])
                except Exception as exc:
                    last = exc
                    continue
                if isinstance(reply, Exception):
                    last = reply
                    continue
                slots: list[Node | None] = [None] * SLOTS
                for entry in reply:
                    start, end, master = int(entry[0]), int(entry[1]), entry[2]
                    host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
                    node = self.node(host or seed.host, int(master[1]))
                    for s in range(start, end + 1):
                        slots[s] = node
                self.slots = slots
                self.stale = False
                self._stats.round_trips += 1
                self._rehome_backlogs()
                return
            raise TierError(f"no Redis Cluster node answered CLUSTER SLOTS: {last!r}", backend=self._name)

    def _rehome_backlogs(self) -> None:
        """After a topology change, move each owed invalidation to the node that now owns its key, so it is
        replayed before that node is read; a pending namespace clear applies to every node (slots may have
        carried stale keys anywhere)."""
        nodes = list(self.nodes.values())
        if any(n.guard.overflow for n in nodes):
            for n in nodes:
                n.guard.require_clear()
            return
        for node in nodes:
            moving: dict[Node, list[str]] = {}
            for k in node.guard.pending:
                owner = self.slots[self.slot_of(k)]
                if owner is not None and owner is not node:
                    moving.setdefault(owner, []).append(k)
            for owner, keys in moving.items():
                node.guard.move(keys, owner.guard)
