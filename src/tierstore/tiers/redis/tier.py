"""``RedisTier``: Redis (standalone, several standalone nodes, or Redis Cluster) as a shared cache tier.

Keys are ``<prefix>:<cache key>``; the cache key's ``{table:partition}`` is a Redis Cluster hash tag, so one
partition's items share a slot and are read with one ``MGET``. Values are stored entries
(:mod:`tierstore.tiers.entry`: data, stale, lease, tombstone).

Reads are one ``MGET`` per slot, one round trip per node; only keys that are absent or tombstoned go on to
the ``lease`` script (a second round trip) that hands out a lease per key. Fills, invalidations and
write-through sets are the scripts of :mod:`tierstore.tiers.redis.scripts`; invalidations are published on
the channel of :mod:`tierstore.tiers.redis.pubsub` in the same step.

Each round trip has one deadline (``timeout=``) and each node a :class:`~tierstore.tiers.health.NodeGuard`
(circuit breaker and backlog of invalidations that could not be delivered, replayed before the node is read
again). Where each key lives is :mod:`tierstore.tiers.redis.cluster`'s job.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, ClassVar

from tierstore.errors import TierError
from tierstore.logs import get_logger
from tierstore.stats import TierStats
from tierstore.tiers.base import Lease
from tierstore.tiers.entry import (
    DATA,
    DATA_HEADER,
    LEASE,
    LEASE_OVER_TOMBSTONE,
    PINNED,
    REFRESH,
    REFRESH_LOCK,
    REFRESH_SEEN,
    STALE,
    STALE_HEADER,
    TOMBSTONE,
    TOMBSTONE_VALUE,
    entry,
    soft_expiry,
)
from tierstore.tiers.network import NodeTier
from tierstore.tiers.redis.cluster import Topology
from tierstore.tiers.redis.config import RedisTierConfig
from tierstore.tiers.redis.protocol import Node, pack
from tierstore.tiers.redis.pubsub import InvalidationChannel
from tierstore.tiers.redis.scripts import evalsha

__all__ = ["RedisTier"]

log = get_logger("tierstore.cache.redis")

_PACKED_KEYS = 65_536  # bound of the cache of keys packed as RESP arguments
VOID = Lease(None)
"""Miss that must not be filled (the node is down or owes invalidations): read the store, skip the fill."""


class _Failed(Exception):
    """A node failed during a multi-node operation (carried to the tier's bookkeeping)."""


class RedisTier(NodeTier[Node]):
    """A shared cache tier on Redis. Build it from :class:`RedisTierConfig` (or a ``redis://`` URL)."""

    local = False
    _log: ClassVar[logging.Logger] = log
    _kind: ClassVar[str] = "redis"

    def __init__(self, config: RedisTierConfig) -> None:
        self.config = config
        self.name = "redis-cluster" if config.cluster else "redis"
        self.stats = TierStats()
        self._prefix = config.prefix.encode() + b":"
        self._origin = os.urandom(8).hex()
        self._tokens = itertools.count(1)
        self._lease_ms = str(max(1, math.ceil(config.lease * 1000)))
        self._tomb_ms = str(max(1, math.ceil(config.tombstone * 1000)))
        self._closed = False
        self.publishes_invalidations = config.coherence
        self._stale_mode = config.stale > 0
        self._packed: dict[str, bytes] = {}
        self._channel = InvalidationChannel(config, self._origin, self.name)
        self.channel = self._channel.name
        self._topology = Topology(config, lambda addr: self._guard(addr, config), self.stats, self.name)
        self._route = self._topology.route
        topology = self._topology
        self._single = topology.order[0] if not config.cluster and len(topology.order) == 1 else None
        """The one node of a standalone tier on one server: reads skip routing (a coroutine and two dicts)."""

    def __repr__(self) -> str:
        hosts = ",".join(f"{h}:{p}" for h, p in self.config.hosts)
        return f"RedisTier({self.name}, {hosts}, prefix={self.config.prefix!r})"

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Fetch the cluster topology (cluster mode). Never fails: a tier that is down fails open."""
        if self.config.cluster:
            try:
                await self._topology.refresh()
            except Exception as exc:
                log.warning("%r: cluster topology unavailable at open, reading through: %r", self, exc)

    async def aclose(self) -> None:
        """Close every connection and end every subscription to the invalidation channel. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._channel.aclose()
        for node in list(self._topology.nodes.values()):
            await node.aclose()

    # -- plumbing --------------------------------------------------------------------------------------

    def _pack_key(self, key: str) -> bytes:
        """``key``'s full name as a RESP argument, remembered: hot keys are read far more often than written."""
        full = self._prefix + key.encode()
        arg = b"$%d\r\n%s\r\n" % (len(full), full)
        if len(self._packed) >= _PACKED_KEYS:
            self._packed.clear()
        self._packed[key] = arg
        return arg

    def _failed(self, node: Node, exc: BaseException) -> None:
        self.stats.errors += 1
        node.guard.breaker.failure()
        if self.config.cluster:
            self._topology.stale = True
        # Throttled (tierstore.logs): once per node and kind, then a summary a minute — never a line per call.
        log.warning("redis %s failed; the tier fails open (a miss, an invalidation kept for replay): %r",
                    node.addr, exc)

    def _reply_error(self, node: Node, reply: Exception) -> None:
        """A per-command error reply (``MOVED``/``ASK`` among them: the topology is read again)."""
        self.stats.errors += 1
        self._topology.note_error(reply)
        log.debug("redis %s: error reply %r", node.addr, reply)

    # -- reads -------------------------------------------------------------------------------------------

    async def get_many(self, keys: Sequence[str]) -> list[bytes | Lease | None]:
        n = len(keys)
        out: list[bytes | Lease | None] = [VOID] * n
        if not n:
            return out
        if self._closed:
            raise TierError("the Redis tier is closed", backend=self.name)
        single = self._single
        if single is not None:
            await self._get_on(single, {0: list(range(n))}, keys, out)
            return out
        groups = await self._route(keys)
        if len(groups) == 1:
            ((node, by_slot),) = groups.items()
            await self._get_on(node, by_slot, keys, out)
        else:
            await asyncio.gather(*(self._get_on(node, by_slot, keys, out) for node, by_slot in groups.items()))
        return out

    async def _get_on(
        self, node: Node, by_slot: dict[int, list[int]], keys: Sequence[str], out: list[bytes | Lease | None]
    ) -> None:
        guard = node.guard
        if (guard.owes or guard.breaker.state != "closed") and not await self._usable(node):
            self.stats.misses += sum(len(g) for g in by_slot.values())
            return
        groups = list(by_slot.values())
        parts: list[bytes] = []
        packed = self._packed
        for g in groups:
            parts.append(b"*2\r\n$3\r\nGET\r\n" if len(g) == 1 else b"*%d\r\n$4\r\nMGET\r\n" % (len(g) + 1))
            for i in g:
                arg = packed.get(keys[i])
                if arg is None:
                    arg = self._pack_key(keys[i])
                parts.append(arg)
        try:
            replies = await node.call_packed(b"".join(parts), len(groups))
        except Exception as exc:
            self._failed(node, exc)
            self.stats.misses += sum(len(g) for g in groups)
            return
        node.guard.breaker.success()
        self.stats.round_trips += 1
        need: dict[int, list[int]] = {}
        refresh: list[tuple[int, bytes]] = []
        hits = 0
        now_ms = int(time.time() * 1000) if self._stale_mode else 0
        for g, reply, slot in zip(groups, replies, by_slot, strict=True):
            if isinstance(reply, Exception):
                self._reply_error(node, reply)
                if str(reply).startswith("WRONGTYPE"):
                    # Not a string (nothing tierstore writes): the lease script replaces it, or every read of
                    # the key would miss forever.
                    need.setdefault(slot, []).extend(g)
                continue
            values = (reply,) if len(g) == 1 else reply
            for i, v in zip(g, values, strict=True):
                if v is None:
                    need.setdefault(slot, []).append(i)
                    continue
                t = v[0] if v else 0
                if t == DATA:
                    out[i] = v[DATA_HEADER:]
                    hits += 1
                elif t == STALE:
                    soft = soft_expiry(v)
                    if soft is None:
                        out[i] = v  # a malformed header: foreign bytes, a miss for this key alone
                    elif now_ms and soft <= now_ms:
                        refresh.append((i, v))  # past its soft expiry: one reader refreshes it
                    else:
                        out[i] = v[STALE_HEADER:]
                        hits += 1
                elif t == LEASE:
                    # Another reader holds the lease: the lease script answers "wait" — or, for a lease
                    # without an expiry (which would make every read miss forever), takes it over.
                    need.setdefault(slot, []).append(i)
                elif t == TOMBSTONE:
                    need.setdefault(slot, []).append(i)
                else:
                    out[i] = v  # foreign bytes: the caller counts them undecodable and invalidates them
        self.stats.hits += hits
        self.stats.misses += sum(len(g) for g in groups) - hits - len(refresh)
        if need:
            await self._lease(node, need, keys, out)
        if refresh:
            await self._refresh_lease(node, refresh, keys, out)

    async def _refresh_lease(
        self, node: Node, refresh: list[tuple[int, bytes]], keys: Sequence[str], out: list[bytes | Lease | None]
    ) -> None:
        """Stale entries: one reader per key wins the refresh lock (see :meth:`_settle_refreshes`)."""
        token = f"{self._origin}{next(self._tokens):x}".encode()
        prefix = self._prefix
        parts = []
        for i, _ in refresh:
            side = prefix + (keys[i] + REFRESH_LOCK).encode()
            parts.append(pack([("SET", side, token, "NX", "PX", self._lease_ms)]))
        try:
            replies = await node.call_packed(b"".join(parts), len(parts))
            self.stats.round_trips += 1
        except Exception as exc:
            self._failed(node, exc)
            replies = [None] * len(refresh)
        self._settle_refreshes(refresh, (r is not None and not isinstance(r, Exception) for r in replies), token, out)

    async def _lease(
        self, node: Node, need: dict[int, list[int]], keys: Sequence[str], out: list[bytes | Lease | None]
    ) -> None:
        token = f"{self._origin}{next(self._tokens):x}"
        prefix = self._prefix
        calls = [
            (len(g), *[prefix + keys[i].encode() for i in g], token, self._lease_ms) for g in need.values()
        ]
        try:
            replies = await evalsha(node, "lease", calls, self.stats)
        except Exception as exc:
            self._failed(node, exc)
            return
        leases = 0
        for g, reply in zip(need.values(), replies, strict=True):
            if isinstance(reply, Exception):
                self._reply_error(node, reply)
                continue
            for i, v in zip(g, reply, strict=True):
                if v is None:
                    out[i] = None
                elif v[0] == LEASE:
                    out[i] = Lease(v)
                    leases += 1
                elif v[0] == DATA:
                    out[i] = v[DATA_HEADER:]  # filled between our two round trips
                elif v[0] == STALE:
                    out[i] = v[STALE_HEADER:]
                else:
                    out[i] = v
        self.stats.leases += leases

    # -- fills and writes ----------------------------------------------------------------------------------

    async def fill_many(self, entries: Sequence[tuple[str, bytes, Lease]], ttl: float) -> None:
        live: list[tuple[str, bytes, bytes]] = []
        max_value = self.config.max_value
        for key, value, lease in entries:
            token = lease.token
            if not isinstance(token, bytes):
                continue  # a VOID lease, or one from another tier: nothing to fill
            if len(value) > max_value:
                self.stats.oversized += 1
                live.append((key, b"", token))  # not sent: give the lease up instead
            else:
                live.append((key, value, token))
        if not live or self._closed:
            return
        stale = self.config.stale
        ttl_ms = str(max(1, math.ceil((ttl + stale) * 1000)))
        stored: list[bytes] = []
        for _, v, token in live:
            if token[:2] == LEASE_OVER_TOMBSTONE:  # a pinned fill, or a tombstone back (see entry.py)
                stored.append(entry(v, PINNED, ttl, stale) if v else TOMBSTONE_VALUE)
            else:
                stored.append(entry(v, 0, ttl, stale) if v else b"")
        groups = await self._route([e[0] for e in live])
        await self._each(groups, lambda node, by_slot: self._fill_on(node, by_slot, live, stored, ttl_ms))

    async def _fill_on(
        self, node: Node, by_slot: dict[int, list[int]], live: list[tuple[str, bytes, bytes]],
        stored: list[bytes], ttl_ms: str,
    ) -> None:
        count = sum(len(g) for g in by_slot.values())
        if node.guard.owes or not node.guard.breaker.allow():
            # Invalidations are owed: a fill now could land before them. Drop it (the lease stays void).
            self.stats.fills_dropped += count
            return
        prefix = self._prefix
        fills: list[tuple[Any, ...]] = []
        refreshes: list[tuple[Any, ...]] = []
        groups: list[list[int]] = []
        for g in by_slot.values():
            plain = [i for i in g if live[i][2][:1] != REFRESH]
            fresh = [i for i in g if live[i][2][:1] == REFRESH]
            if plain:
                args: list[Any] = [len(plain)]
                args += [prefix + live[i][0].encode() for i in plain]
                args += [ttl_ms, self._tomb_ms]
                for i in plain:
                    args.append(live[i][2])
                    args.append(stored[i])
                fills.append(tuple(args))
                groups.append(plain)
            if fresh:
                args = [2 * len(fresh)]
                for i in fresh:
                    main = prefix + live[i][0].encode()
                    args += [main, prefix + (live[i][0] + REFRESH_LOCK).encode()]
                args.append(ttl_ms)
                for i in fresh:
                    args.append(live[i][2][REFRESH_SEEN])
                    args.append(stored[i])
                refreshes.append(tuple(args))
        try:
            replies = await evalsha(node, "fill", fills, self.stats) if fills else []
            if refreshes:
                replies += await evalsha(node, "refresh", refreshes, self.stats)
        except Exception as exc:
            self._failed(node, exc)
            return
        node.guard.breaker.success()
        refresh_groups = [[i for i in g if live[i][2][:1] == REFRESH] for g in by_slot.values()]
        for g, reply in zip(groups + [g for g in refresh_groups if g], replies, strict=True):
            if isinstance(reply, Exception):
                self._reply_error(node, reply)
                continue
            real = sum(1 for i in g if live[i][1])
            self.stats.fills += int(reply)
            self.stats.fills_dropped += real - int(reply)

    async def set_many(self, entries: Sequence[tuple[str, bytes, int]], ttl: float) -> None:
        if not entries or self._closed:
            return
        stale = self.config.stale
        ttl_ms = str(max(1, math.ceil((ttl + stale) * 1000)))
        keys = [e[0] for e in entries]
        max_value = self.config.max_value
        values: list[bytes | None] = []
        for _, value, version in entries:
            if len(value) > max_value:
                self.stats.oversized += 1
                values.append(None)  # not cached: invalidate instead, so no older entry survives
            else:
                values.append(entry(value, version, ttl, stale))
        groups = await self._route(keys)
        await self._each(groups, lambda node, by_slot: self._set_on(node, by_slot, keys, values, ttl_ms))

    async def _set_on(
        self, node: Node, by_slot: dict[int, list[int]], keys: list[str], values: list[bytes | None],
        ttl_ms: str,
    ) -> None:
        idx = [i for g in by_slot.values() for i in g]
        if not await self._usable(node):
            node.guard.remember(keys[i] for i in idx)
            return
        prefix = self._prefix
        channel = self.channel if self.config.coherence else ""
        calls: list[tuple[Any, ...]] = []
        plan: list[tuple[str, list[int]]] = []
        for g in by_slot.values():
            sets = [i for i in g if values[i] is not None]
            drops = [i for i in g if values[i] is None]
            if sets:
                payload = "\n".join([self._origin, *(keys[i] for i in sets)])
                calls.append((len(sets), *[prefix + keys[i].encode() for i in sets], ttl_ms, channel, payload,
                              self._tomb_ms, *[values[i] for i in sets]))
                plan.append(("set", sets))
            if drops:
                payload = "\n".join([self._origin, *(keys[i] for i in drops)])
                calls.append((len(drops), *[prefix + keys[i].encode() for i in drops], self._tomb_ms, channel,
                               payload))
                plan.append(("invalidate", drops))
        try:
            replies: list[Any] = []
            for name in ("set", "invalidate"):
                mine = [c for c, (kind, _) in zip(calls, plan, strict=True) if kind == name]
                if mine:
                    replies += await evalsha(node, name, mine, self.stats)
        except Exception as exc:
            self._failed(node, exc)
            node.guard.remember(keys[i] for i in idx)
            return
        node.guard.breaker.success()
        ordered = [p for p in plan if p[0] == "set"] + [p for p in plan if p[0] == "invalidate"]
        for (kind, g), reply in zip(ordered, replies, strict=True):
            if isinstance(reply, Exception):
                self._reply_error(node, reply)
                node.guard.remember(keys[i] for i in g)
            elif kind == "set":
                self.stats.fills += int(reply)
                self.stats.fills_dropped += len(g) - int(reply)
            else:
                self.stats.invalidations += len(g)

    async def invalidate_many(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        if self._closed:
            raise TierError("the Redis tier is closed", backend=self.name)
        keys = list(dict.fromkeys(keys))
        groups = await self._route(keys)
        await self._each(
            groups, lambda node, by_slot: self._invalidate_node(node, [keys[i] for g in by_slot.values() for i in g])
        )

    async def _invalidate_on(self, node: Node, keys: list[str], *, publish: bool) -> None:
        """Tombstone ``keys`` (all routed to ``node``). Raises if any key could not be invalidated."""
        prefix = self._prefix
        by_slot: dict[int, list[str]] = {}
        if self.config.cluster:
            slot_of = self._topology.slot_of
            for k in keys:
                by_slot.setdefault(slot_of(k), []).append(k)
        else:
            by_slot[0] = keys
        channel = self.channel if publish and self.config.coherence else ""
        calls = []
        for g in by_slot.values():
            payload = "\n".join([self._origin, *g]) if channel else ""
            calls.append((len(g), *[prefix + k.encode() for k in g], self._tomb_ms, channel, payload))
        replies = await evalsha(node, "invalidate", calls, self.stats)
        for reply in replies:
            if isinstance(reply, Exception):
                self._reply_error(node, reply)
                raise _Failed(repr(reply))
        self.stats.invalidations += len(keys)

    # -- namespace ---------------------------------------------------------------------------------------

    # -- health ----------------------------------------------------------------------------------------

    async def ping(self) -> dict[str, str | None]:
        """``PING`` every node (cluster: every master), bypassing the breakers; per address ``None`` or a reason."""
        try:
            nodes = await self._topology.masters()
        except Exception as exc:
            return {f"{h}:{p}": f"{type(exc).__name__}: {exc}" for h, p in self.config.hosts}

        async def one(node: Node) -> str | None:
            try:
                (reply,) = await node.call([("PING",)])
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"
            return f"{type(reply).__name__}: {reply}" if isinstance(reply, Exception) else None

        return dict(zip([n.addr for n in nodes], await asyncio.gather(*(one(n) for n in nodes)), strict=True))

    def _all_nodes(self) -> Iterable[Node]:
        return list(self._topology.nodes.values())

    def breaker_states(self) -> dict[str, str]:
        """Per node address, its circuit breaker's state."""
        return {addr: n.guard.breaker.state for addr, n in self._topology.nodes.items()}

    async def clear(self) -> None:
        """Delete every key of this tier's prefix on every node (SCAN + UNLINK), and tell other processes."""
        if self._closed:
            raise TierError("the Redis tier is closed", backend=self.name)
        nodes = await self._topology.masters()
        failed = await self._clear_nodes(nodes)
        if self.config.coherence:
            try:
                await nodes[0].call([("PUBLISH", self.channel, f"{self._origin}\n*")])
            except Exception as exc:
                log.debug("redis: clear notice not published: %r", exc)
        if failed:
            raise TierError(f"clear failed on {len(failed)} node(s): {failed[0]!r}", backend=self.name)

    async def _announce_clear(self, node: Node) -> None:
        if self.config.coherence:
            (reply,) = await node.call([("PUBLISH", self.channel, f"{self._origin}\n*")])
            if isinstance(reply, Exception):
                raise reply

    async def _clear_node(self, node: Node) -> None:
        cursor = b"0"
        pattern = self._prefix + b"*"
        while True:
            (reply,) = await node.call([("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)])
            self.stats.round_trips += 1
            if isinstance(reply, Exception):
                raise reply
            cursor, found = reply
            if found:
                await node.call([("UNLINK", *found)])
                self.stats.round_trips += 1
            if cursor in (b"0", 0, "0"):
                return

    # -- invalidation channel (L1 coherence) ---------------------------------------------------------------

    def invalidations(self) -> AsyncIterator[list[str]]:
        """Cache keys invalidated by other processes (see :meth:`InvalidationChannel.listen`)."""
        return self._channel.listen(self._topology)
