"""``MemcachedTier``: one or more memcached servers as a shared cache tier (classic text protocol).

A partition's keys live on one node, chosen by rendezvous hashing on the ``{table:partition}`` part of the
cache key. Keys are ``<prefix>:<generation>:<cache key>``, spelt safely by
:func:`~tierstore.tiers.memcached.protocol.memcached_key`. Values are stored entries
(:mod:`tierstore.tiers.entry`: data, stale, lease, tombstone). The stale-fill guard uses add/gets/cas:

* read: ``gets`` the keys (one round trip per node); for each absent key ``add`` a lease, for each tombstone
  ``cas`` it into a lease (one more pipelined round trip, misses only);
* fill: ``gets``; ``cas`` the value in only where the key still holds the caller's lease;
* invalidate: ``set`` a tombstone (replacing entries and leases, so a racing fill finds no lease);
* write-through: ``gets``; ``add``/``cas`` unless the key holds a newer version or a tombstone.

Each node has a *generation*, stored under ``<prefix>:gen`` on that node and read in the same request as the
keys: :meth:`MemcachedTier.clear` moves the node to a new generation, which every process sees on its next
request, without ``flush_all`` (other namespaces share the server). Values that cannot fit an item are not
sent. Each node has a :class:`~tierstore.tiers.health.NodeGuard` (circuit breaker and invalidation backlog).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from tierstore.errors import TierError
from tierstore.logs import get_logger
from tierstore.routing.rendezvous import Rendezvous
from tierstore.stats import TierStats
from tierstore.tiers.base import Lease
from tierstore.tiers.entry import (
    DATA,
    DATA_HEADER,
    LEASE,
    LEASE_MARK,
    LEASE_OVER_TOMBSTONE,
    PINNED,
    PINNED_DIGITS,
    REFRESH,
    REFRESH_LOCK,
    REFRESH_SEEN,
    STALE,
    STALE_HEADER,
    TOMBSTONE,
    TOMBSTONE_VALUE,
    VERSION,
    entry,
    soft_expiry,
)
from tierstore.tiers.memcached.config import MemcachedTierConfig
from tierstore.tiers.memcached.protocol import (
    ITEM_OVERHEAD,
    STORED,
    Node,
    exptime,
    memcached_key,
    read_all_values,
    read_lines,
    read_values,
    store,
)
from tierstore.tiers.network import NodeTier

__all__ = ["MemcachedTier"]

log = get_logger("tierstore.cache.memcached")

SPELT_MAX = 16_384
"""Cache keys whose node and memcached spelling a tier remembers (all are forgotten at once when full): about
250 bytes each for keys of 30 characters, 4 MB at most."""

VOID = Lease(None)
"""Miss that must not be filled (the node is down or owes invalidations): read the store, skip the fill."""


class MemcachedTier(NodeTier[Node]):
    """A shared cache tier on memcached. Build it from :class:`MemcachedTierConfig` (or a URL)."""

    local = False
    _log: ClassVar[logging.Logger] = log
    _kind: ClassVar[str] = "memcached"

    def __init__(self, config: MemcachedTierConfig) -> None:
        self.config = config
        self.name = "memcached"
        self.stats = TierStats()
        self._origin = os.urandom(6).hex().encode()
        self._tokens = itertools.count(1)
        self._lease_exp = exptime(config.lease)
        self._tomb_exp = exptime(config.tombstone)
        self._limit = config.max_value - ITEM_OVERHEAD
        self._closed = False
        self._nodes: list[Node] = []
        for host, port in config.hosts:
            self._nodes.append(Node(host, port, config, self._guard(f"{host}:{port}", config)))
        self._rendezvous = Rendezvous(n.addr for n in self._nodes)
        self._spelt: dict[str, tuple[Node, bytes, bytes]] = {}

    def __repr__(self) -> str:
        return f"MemcachedTier({','.join(n.addr for n in self._nodes)}, prefix={self.config.prefix!r})"

    # -- lifecycle -------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Learn each node's generation. Never fails: a node that is down fails open."""
        await asyncio.gather(*(self._probe(node) for node in self._nodes))

    async def _probe(self, node: Node) -> None:
        try:
            await self._ensure_gen(node)
        except Exception as exc:
            self._failed(node, exc)
            log.warning("memcached %s unavailable at open, reading through: %r", node.addr, exc)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for node in self._nodes:
            try:
                await node.aclose()
            except Exception as exc:
                log.debug("memcached %s: close failed: %r", node.addr, exc)

    # -- health ---------------------------------------------------------------------------------------------

    async def ping(self) -> dict[str, str | None]:
        """``version`` on every node, bypassing the breakers; per address ``None`` or a reason."""

        async def one(node: Node) -> str | None:
            try:
                await node.call(b"version\r\n", lambda r: read_lines(r, 1))
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"
            return None

        nodes = self._nodes
        return dict(zip([n.addr for n in nodes], await asyncio.gather(*(one(n) for n in nodes)), strict=True))

    def _all_nodes(self) -> Iterable[Node]:
        return self._nodes

    def breaker_states(self) -> dict[str, str]:
        """Per node address, its circuit breaker's state."""
        return {n.addr: n.guard.breaker.state for n in self._nodes}

    # -- plumbing -------------------------------------------------------------------------------------------

    def _failed(self, node: Node, exc: BaseException) -> None:
        self.stats.errors += 1
        node.guard.breaker.failure()
        node.gen = None  # re-read it: a restarted server has lost it
        # Throttled (tierstore.logs): once per node and kind, then a summary a minute — never a line per call.
        log.warning("memcached %s failed; the tier fails open (a miss, an invalidation kept for replay): %r",
                    node.addr, exc)

    def _key(self, node: Node, key: str) -> bytes:
        ns = node.namespace()
        mk = memcached_key(ns, key)
        if mk[len(ns) : len(ns) + 1] == b"#":
            self.stats.hashed_keys += 1
        return mk

    async def _ensure_gen(self, node: Node) -> None:
        """Read the node's generation, creating it if the node has none (new or restarted server)."""
        for _ in range(3):
            found = await node.call(b"gets " + node.gen_key + b"\r\n", read_values)
            self.stats.round_trips += 1
            if node.gen_key in found:
                node.gen = found[node.gen_key][0]
                return
            fresh = os.urandom(4).hex().encode()
            (reply,) = await node.call(store(b"add", node.gen_key, fresh, 0), lambda r: read_lines(r, 1))
            self.stats.round_trips += 1
            if reply == STORED:
                node.gen = fresh
                return
        raise TierError("memcached generation key keeps changing", backend=self.name)

    def _check_gen(self, node: Node, found: dict[bytes, tuple[bytes, int]], gen: bytes | None) -> bool:
        """True if the reply was read under generation ``gen``, the one its keys were spelt under (else the node's
        cached generation is refreshed)."""
        seen = found.get(node.gen_key)
        if seen is not None and seen[0] == gen:
            return True
        node.gen = seen[0] if seen is not None else None
        self.stats.generation_changes += 1
        return False

    def _spell(self, node: Node, key: str) -> bytes:
        """``key`` on ``node`` under its current generation (known), remembered for the next reads: a cache key
        read again is routed and spelt by one dict look-up. Hashed keys are not remembered (they are counted in
        ``stats.hashed_keys`` each time they are sent)."""
        gen = node.gen
        assert gen is not None
        ns = node.namespace()
        mk = memcached_key(ns, key)
        if mk.startswith(b"#", len(ns)):
            self.stats.hashed_keys += 1
            return mk
        spelt = self._spelt
        if len(spelt) >= SPELT_MAX:
            spelt.clear()
        spelt[key] = (node, gen, mk)
        return mk

    def _read_groups(self, keys: Sequence[str]) -> dict[Node, tuple[list[int], list[bytes], bytes | None]]:
        """Per node: the indexes of its keys, their spelling and the generation they are spelt under (``None``:
        the node's generation is not known yet, the keys are spelt once it is)."""
        spelt = self._spelt.get
        nodes = self._nodes
        groups: dict[Node, tuple[list[int], list[bytes], bytes | None]] = {}
        if len(nodes) == 1:
            node = nodes[0]
            gen = node.gen
            if gen is None:
                return {node: (list(range(len(keys))), [], None)}
            mkeys: list[bytes] = []
            for k in keys:
                s = spelt(k)
                mkeys.append(s[2] if s is not None and s[1] is gen else self._spell(node, k))
            return {node: (list(range(len(keys))), mkeys, gen)}
        pick = self._rendezvous.index
        for i, k in enumerate(keys):
            s = spelt(k)
            if s is not None and s[1] is s[0].gen:
                node, gen, mk = s
            else:
                node = nodes[pick(k)]
                gen = node.gen
                mk = b"" if gen is None else self._spell(node, k)
            g = groups.get(node)
            if g is None:
                groups[node] = g = ([], [], gen)
            g[0].append(i)
            g[1].append(mk)
        return groups

    def _route(self, keys: Sequence[str]) -> dict[Node, list[int]]:
        if len(self._nodes) == 1:
            return {self._nodes[0]: list(range(len(keys)))}
        groups: dict[Node, list[int]] = {}
        pick = self._rendezvous.index
        nodes = self._nodes
        for i, k in enumerate(keys):
            groups.setdefault(nodes[pick(k)], []).append(i)
        return groups

    async def _gets(
        self, node: Node, keys: Sequence[str], mkeys: list[bytes] | None = None, gen: bytes | None = None
    ) -> tuple[list[bytes], dict[bytes, tuple[bytes, int]]]:
        """``gets`` the generation and ``keys`` in one request; retried once if the generation moved. ``mkeys``:
        the keys already spelt under generation ``gen`` (spelt again if the node's generation is another)."""
        for _ in range(2):
            if node.gen is None:
                await self._ensure_gen(node)
            if mkeys is None or gen is None or node.gen is not gen:
                gen = node.gen
                mkeys = [self._spell(node, k) for k in keys]
            found = await node.call(
                b"gets " + node.gen_key + b" " + b" ".join(dict.fromkeys(mkeys)) + b"\r\n", read_all_values
            )
            self.stats.round_trips += 1
            if self._check_gen(node, found, gen):
                return mkeys, found
            mkeys = None
        raise TierError("memcached generation changed twice during one read", backend=self.name)

    # -- reads ---------------------------------------------------------------------------------------------

    async def get_many(self, keys: Sequence[str]) -> list[bytes | Lease | None]:
        out: list[bytes | Lease | None] = [VOID] * len(keys)
        if not keys:
            return out
        if self._closed:
            raise TierError("the memcached tier is closed", backend=self.name)
        groups = iter(self._read_groups(keys).items())
        node, group = next(groups)
        # The first node inline, any other as a task: one task fewer than gather, and no gathering future.
        others = [asyncio.create_task(self._get_on(n, g, keys, out)) for n, g in groups]
        try:
            await self._get_on(node, group, keys, out)
        except BaseException:
            for task in others:
                task.cancel()
            raise
        for task in others:
            await task  # _get_on fails open: only a cancellation comes out of it
        return out

    async def _get_on(
        self,
        node: Node,
        group: tuple[list[int], list[bytes], bytes | None],
        keys: Sequence[str],
        out: list[bytes | Lease | None],
    ) -> None:
        idx, mkeys, gen = group
        guard = node.guard
        if (guard.owes or guard.breaker.state != "closed") and not await self._usable(node):
            self.stats.misses += len(idx)
            return
        try:
            mkeys, found = await self._gets(node, [keys[i] for i in idx], mkeys, gen)
        except Exception as exc:
            self._failed(node, exc)
            self.stats.misses += len(idx)
            return
        node.guard.breaker.success()
        need: list[tuple[int, bytes, int | None]] = []  # (index, key, cas of a tombstone)
        refresh: list[tuple[int, bytes]] = []  # (index, stale entry)
        seen: set[bytes] = set()
        hits = 0
        now_ms = int(time.time() * 1000) if self.config.stale > 0 else 0
        for i, mk in zip(idx, mkeys, strict=True):
            got = found.get(mk)
            if got is None:
                t, cas = 0, None
            else:
                value, cas = got
                t = value[0] if value else 0
                if t == DATA:
                    out[i] = value[DATA_HEADER:]
                    hits += 1
                    continue
                if t == STALE:
                    soft = soft_expiry(value)
                    if soft is None:
                        out[i] = value  # a malformed header: foreign bytes, a miss for this key alone
                        continue
                    if now_ms and soft <= now_ms and mk not in seen:
                        seen.add(mk)
                        refresh.append((i, value))  # past its soft expiry: one reader refreshes it
                    else:
                        out[i] = value[STALE_HEADER:]
                        hits += 1
                    continue
                if t == LEASE:
                    out[i] = None
                    continue
                if t != TOMBSTONE:
                    out[i] = value  # foreign bytes: counted undecodable and invalidated by the caller
                    continue
            if mk in seen:
                out[i] = None  # the same key twice in one call: one lease
                continue
            seen.add(mk)
            need.append((i, mk, cas))
        self.stats.hits += hits
        self.stats.misses += len(idx) - hits - len(refresh)
        if not need and not refresh:
            return
        token = self._origin + b"%x" % next(self._tokens)
        # A lease over a tombstone is marked and lives at least as long as the tombstone (pinned entries,
        # tiers/entry.py); ``cas`` is set exactly for tombstones.
        markers = [
            (LEASE_MARK if cas is None else LEASE_OVER_TOMBSTONE) + token + b":%d" % j
            for j, (_, _, cas) in enumerate(need)
        ]
        pinned_exp = max(self._lease_exp, self._tomb_exp)
        parts = [
            store(b"add", mk, m, self._lease_exp) if cas is None else store(b"cas", mk, m, pinned_exp, cas)
            for (_, mk, cas), m in zip(need, markers, strict=True)
        ]
        # A stale entry's refresh lock lives beside it: the reader that adds it refreshes; the others are
        # served the stale value at once.
        parts += [store(b"add", self._key(node, keys[i] + REFRESH_LOCK), token, self._lease_exp) for i, _ in refresh]
        try:
            replies = await node.call(b"".join(parts), lambda r: read_lines(r, len(parts)))
        except Exception as exc:
            self._failed(node, exc)
            for i, value in refresh:  # absent keys stay VOID misses; stale entries are still served
                out[i] = value[STALE_HEADER:]
            self.stats.hits += len(refresh)
            return
        self.stats.round_trips += 1
        leases = 0
        for (i, _, _), m, reply in zip(need, markers, replies[: len(need)], strict=True):
            if reply == STORED:
                out[i] = Lease(m)
                leases += 1
            else:
                out[i] = None  # another reader won the lease (or filled): wait and re-read
        self.stats.leases += leases
        self._settle_refreshes(refresh, (r == STORED for r in replies[len(need) :]), token, out)

    # -- fills and writes ----------------------------------------------------------------------------------

    async def fill_many(self, entries: Sequence[tuple[str, bytes, Lease]], ttl: float) -> None:
        live = [(k, v, lease.token) for k, v, lease in entries if isinstance(lease.token, bytes)]
        if not live or self._closed:
            return
        exp = exptime(ttl + self.config.stale)
        keys = [e[0] for e in live]
        await self._each(self._route(keys), lambda node, idx: self._fill_on(node, idx, live, ttl, exp))

    async def _fill_on(
        self, node: Node, idx: list[int], live: list[tuple[str, bytes, bytes]], ttl: float, exp: int
    ) -> None:
        if node.guard.owes or not node.guard.breaker.allow():
            self.stats.fills_dropped += len(idx)
            return
        stale = self.config.stale
        try:
            mkeys, found = await self._gets(node, [live[i][0] for i in idx])
            parts: list[bytes] = []
            planned: list[bool] = []  # per command: a real fill (True), or giving a lease up / unlocking
            for i, mk in zip(idx, mkeys, strict=True):
                key, value, token = live[i]
                got = found.get(mk)
                if token[:1] == REFRESH:
                    # A refresh: only if the entry is still the one the refresher saw (no invalidation since).
                    parts.append(b"delete " + self._key(node, key + REFRESH_LOCK) + b"\r\n")
                    planned.append(False)
                    if got is None or got[0][:STALE_HEADER] != token[REFRESH_SEEN]:
                        self.stats.fills_dropped += bool(value)
                        continue
                elif got is None or got[0] != token:
                    self.stats.fills_dropped += 1
                    continue
                if not value or len(value) + STALE_HEADER > self._limit:
                    if value:
                        self.stats.oversized += 1  # not sent
                    # Give the lease up (nothing to cache): a short tombstone, which the next reader leases.
                    parts.append(store(b"cas", mk, TOMBSTONE_VALUE, self._tomb_exp, got[1]))
                    planned.append(False)
                else:
                    version = PINNED if token[:2] == LEASE_OVER_TOMBSTONE else 0
                    parts.append(store(b"cas", mk, entry(value, version, ttl, stale), exp, got[1]))
                    planned.append(True)
            if not parts:
                return
            replies = await node.call(b"".join(parts), lambda r: read_lines(r, len(parts)))
            self.stats.round_trips += 1
        except Exception as exc:
            self._failed(node, exc)
            return
        node.guard.breaker.success()
        for real, reply in zip(planned, replies, strict=True):
            if not real:
                continue
            if reply == STORED:
                self.stats.fills += 1
            elif reply.startswith(b"SERVER_ERROR"):
                self.stats.oversized += 1  # the server's item size is smaller than max_value says
            else:
                self.stats.fills_dropped += 1

    async def set_many(self, entries: Sequence[tuple[str, bytes, int]], ttl: float) -> None:
        if not entries or self._closed:
            return
        exp = exptime(ttl + self.config.stale)
        keys = [e[0] for e in entries]
        await self._each(self._route(keys), lambda node, idx: self._set_on(node, idx, entries, ttl, exp))

    async def _set_on(
        self, node: Node, idx: list[int], entries: Sequence[tuple[str, bytes, int]], ttl: float, exp: int
    ) -> None:
        keys = [entries[i][0] for i in idx]
        if not await self._usable(node):
            node.guard.remember(keys)
            return
        todo = list(idx)
        failed: list[str] = []
        try:
            for _ in range(3):
                if not todo:
                    break
                mkeys, found = await self._gets(node, [entries[i][0] for i in todo])
                parts: list[bytes] = []
                sent: list[int] = []
                buried: set[int] = set()  # tombstoned instead of set (pinned, see tiers/entry.py)
                for i, mk in zip(todo, mkeys, strict=True):
                    key, value, version = entries[i]
                    if len(value) + STALE_HEADER > self._limit:
                        self.stats.oversized += 1
                        failed.append(key)  # not cacheable: tombstone it so no older entry survives
                        continue
                    stored = entry(value, version, ttl, self.config.stale)
                    got = found.get(mk)
                    if got is None:
                        parts.append(store(b"add", mk, stored, exp))
                    else:
                        current, cas = got
                        t = current[0] if current else 0
                        if t == TOMBSTONE or (t in (DATA, STALE) and current[VERSION] > stored[VERSION]
                                              and current[VERSION] != PINNED_DIGITS):
                            self.stats.fills_dropped += 1  # deleted a moment ago, or a newer version is in
                            continue
                        if current[:2] == LEASE_OVER_TOMBSTONE or (
                            t in (DATA, STALE) and current[VERSION] == PINNED_DIGITS
                        ):
                            self.stats.fills_dropped += 1
                            parts.append(store(b"cas", mk, TOMBSTONE_VALUE, self._tomb_exp, cas))
                            buried.add(i)
                        else:
                            parts.append(store(b"cas", mk, stored, exp, cas))
                    sent.append(i)
                if not parts:
                    todo = []
                    break
                n = len(parts)
                replies = await node.call(b"".join(parts), lambda r, n=n: read_lines(r, n))  # type: ignore[misc]
                self.stats.round_trips += 1
                todo = []
                for i, reply in zip(sent, replies, strict=True):
                    if reply == STORED:
                        if i not in buried:
                            self.stats.fills += 1
                    elif reply.startswith(b"SERVER_ERROR"):
                        self.stats.oversized += 1
                        failed.append(entries[i][0])
                    else:
                        todo.append(i)  # raced with another writer or reader: look again
            failed += [entries[i][0] for i in todo]
            if failed:
                await self._invalidate_on(node, failed, publish=False)
        except Exception as exc:
            self._failed(node, exc)
            node.guard.remember(keys)
            return
        node.guard.breaker.success()

    async def invalidate_many(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        if self._closed:
            raise TierError("the memcached tier is closed", backend=self.name)
        keys = list(dict.fromkeys(keys))
        await self._each(self._route(keys), lambda node, idx: self._invalidate_node(node, [keys[i] for i in idx]))

    async def _invalidate_on(self, node: Node, keys: Sequence[str], *, publish: bool) -> None:
        """``set`` a tombstone on ``keys`` under the node's current generation (checked in the same request).
        memcached has no channel to other processes: ``publish`` changes nothing."""
        for _ in range(2):
            if node.gen is None:
                await self._ensure_gen(node)
            gen = node.gen
            mkeys = list(dict.fromkeys(self._key(node, k) for k in keys))
            payload = b"gets " + node.gen_key + b"\r\n" + b"".join(
                store(b"set", mk, TOMBSTONE_VALUE, self._tomb_exp) for mk in mkeys
            )

            async def parse(reader: asyncio.StreamReader, n: int = len(mkeys)) -> tuple[dict[bytes, Any], list[bytes]]:
                return await read_values(reader), await read_lines(reader, n)

            found, replies = await node.call(payload, parse)
            self.stats.round_trips += 1
            bad = [r for r in replies if r != STORED]
            if bad:
                raise TierError(f"memcached refused a tombstone: {bad[0][:80]!r}", backend=self.name)
            if self._check_gen(node, found, gen):
                self.stats.invalidations += len(keys)
                return
        raise TierError("memcached generation changed twice during one invalidation", backend=self.name)

    # -- namespace ---------------------------------------------------------------------------------------

    async def clear(self) -> None:
        """Move every node to a new generation: the namespace's old entries become unreachable at once."""
        if self._closed:
            raise TierError("the memcached tier is closed", backend=self.name)
        failed = await self._clear_nodes(self._nodes)  # a node that failed owes a clear before it is read
        if failed:
            raise TierError(f"clear failed on {len(failed)} node(s): {failed[0]!r}", backend=self.name)

    async def _clear_node(self, node: Node) -> None:
        """Move ``node`` to a new generation (its old keys become unreachable; other namespaces are untouched)."""
        fresh = os.urandom(4).hex().encode()
        (reply,) = await node.call(store(b"set", node.gen_key, fresh, 0), lambda r: read_lines(r, 1))
        self.stats.round_trips += 1
        if reply != STORED:
            raise TierError(f"memcached refused the generation key: {reply[:80]!r}", backend=self.name)
        node.gen = fresh
