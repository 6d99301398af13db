"""``MemcachedTier``: one or more memcached servers as a shared cache tier (classic text protocol).

A partition's keys live on one node, chosen by rendezvous hashing on the ``{table:partition}`` part of the
cache key. Keys are built as ``<prefix>:<generation>:<cache key>`` and checked in **bytes**: a key longer than
250 bytes or holding anything but printable ASCII (spaces, control characters, multi-byte UTF-8) is replaced
by ``<prefix>:<generation>:#<sha1>``, so ``"a\\r\\nflush_all"`` can never reach a server as a command.

Values start with a type byte, as in the Redis tier: ``D`` + 16 hex digits of version + envelope (an entry),
``L`` + token (a lease), ``T`` (a tombstone). The stale-fill guard uses add/gets/cas:

* read: ``gets`` the keys (one round trip per node); for each absent key ``add`` a lease, for each tombstone
  ``cas`` it into a lease (one more pipelined round trip, misses only);
* fill: ``gets``; ``cas`` the value in only where the key still holds the caller's lease;
* invalidate: ``set`` a tombstone (replacing entries and leases, so a racing fill finds no lease);
* write-through: ``gets``; ``add``/``cas`` unless the key holds a newer version or a tombstone.

Each node has a *generation*, stored under ``<prefix>:gen`` on that node and read in the same request as the
keys: :meth:`MemcachedTier.clear` moves the node to a new generation, which every process sees on its next
request, without ``flush_all`` (other namespaces share the server). TTLs over 30 days are sent as absolute
Unix times (memcached reads them so); values that cannot fit an item are not sent; every request has a
deadline, and a connection whose request was cancelled is discarded, never reused (aiomcache has neither).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import math
import os
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from aiomcache.pool import Connection, MemcachePool

from tierstore.errors import ConfigError, TierError
from tierstore.routing.rendezvous import Rendezvous
from tierstore.stats import TierStats
from tierstore.tiers.base import Lease
from tierstore.tiers.breaker import (
    ENTRY_HEADER,
    STALE_HEADER,
    NodeHealth,
    NodeTier,
    entry,
    parse_hosts,
    valid_prefix,
)

__all__ = ["MemcachedTier", "MemcachedTierConfig", "memcached_key"]

log = logging.getLogger("tierstore.cache.memcached")
R = TypeVar("R")

_D, _S, _L, _T = 0x44, 0x53, 0x4C, 0x54  # b"D", b"S", b"L", b"T": see tiers/breaker.py
MAX_KEY_BYTES = 250
THIRTY_DAYS = 30 * 24 * 3600
ITEM_OVERHEAD = 512
"""Bytes of an item that are not the value (key, header, CAS, our type byte and version), with margin."""
VOID = Lease(None)
"""Miss that must not be filled (the node is down or owes invalidations): read the store, skip the fill."""

_UNSAFE = re.compile(rb"[^\x21-\x7e]").search
_STORED, _NOT_STORED, _EXISTS, _NOT_FOUND = b"STORED", b"NOT_STORED", b"EXISTS", b"NOT_FOUND"


def memcached_key(namespace: bytes, key: str) -> bytes:
    """``namespace + key`` as a memcached key: at most 250 bytes of printable ASCII, else hashed."""
    raw = namespace + key.encode("utf-8", "surrogatepass")
    if len(raw) <= MAX_KEY_BYTES and _UNSAFE(raw) is None and not key.startswith("#"):
        return raw
    # "#" cannot start a key kept as is, so a hashed key never aliases a plain one.
    return namespace + b"#" + hashlib.sha1(raw, usedforsecurity=False).hexdigest().encode()


def exptime(seconds: float) -> int:
    """Seconds as memcached's ``exptime``: at least 1; beyond 30 days an absolute Unix time."""
    s = max(1, math.ceil(seconds))
    if s > THIRTY_DAYS:
        return int(time.time()) + s
    return s


# -- configuration ------------------------------------------------------------------------------------------

_PARAMS = {
    "prefix", "timeout", "connect_timeout", "pool_size", "lease", "tombstone", "breaker_failures",
    "breaker_cooldown", "max_value", "max_pending", "stale",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class MemcachedTierConfig:
    """``memcached://h1:11211,h2:11211?prefix=app&timeout=100ms``.

    Parameters: ``prefix`` (key namespace), ``timeout`` (deadline of one round trip), ``connect_timeout``,
    ``pool_size`` (connections per node), ``lease``/``tombstone`` (lifetimes, whole seconds, at least 2 s:
    memcached's clock ticks once a second), ``breaker_failures``/``breaker_cooldown``, ``max_value`` (the
    servers' item size, ``-I``; 1 MiB by default), ``max_pending`` (invalidation backlog per node), ``stale``
    (serve an entry up to this long past its TTL while one reader refreshes it — never after an invalidation;
    0, the default, is off).
    """

    hosts: tuple[tuple[str, int], ...] = (("127.0.0.1", 11211),)
    prefix: str = "tierstore"
    timeout: float = 0.1
    connect_timeout: float = 0.2
    pool_size: int = 8
    lease: float = 2.0
    tombstone: float = 2.0
    breaker_failures: int = 5
    breaker_cooldown: float = 1.0
    max_value: int = 1024 * 1024
    max_pending: int = 10_000
    stale: float = 0.0

    def __post_init__(self) -> None:
        if self.stale < 0:
            raise ConfigError("MemcachedTierConfig.stale must be >= 0")
        valid_prefix(self.prefix)
        if not self.hosts:
            raise ConfigError("MemcachedTierConfig needs at least one host")
        for name in ("timeout", "connect_timeout", "breaker_cooldown"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"MemcachedTierConfig.{name} must be > 0")
        if self.lease < 2 or self.tombstone < 2:
            raise ConfigError("memcached lease and tombstone lifetimes must be >= 2s (1-second clock)")
        for name in ("pool_size", "breaker_failures", "max_pending"):
            if getattr(self, name) < 1:
                raise ConfigError(f"MemcachedTierConfig.{name} must be >= 1")
        if self.max_value <= ITEM_OVERHEAD:
            raise ConfigError(f"MemcachedTierConfig.max_value must exceed {ITEM_OVERHEAD} bytes")

    @classmethod
    def from_url(cls, url: str) -> MemcachedTierConfig:
        from tierstore.config import parse_duration, parse_int, parse_size, query_params, redact_url
        scheme, _, rest = url.partition("://")
        if scheme.lower() != "memcached":
            raise ConfigError(f"not a memcached URL: {redact_url(url)!r}")
        p = query_params(url, _PARAMS)
        netloc = rest.split("?", 1)[0].split("/", 1)[0]
        if "@" in netloc:
            raise ConfigError("memcached has no authentication in the text protocol; remove user:password@")

        def dur(name: str, default: float) -> float:
            return parse_duration(p[name], name) if name in p else default

        def num(name: str, default: int) -> int:
            return parse_int(p[name], name) if name in p else default

        return cls(
            hosts=parse_hosts(netloc, 11211),
            prefix=p.get("prefix", "tierstore"),
            timeout=dur("timeout", 0.1),
            connect_timeout=dur("connect_timeout", 0.2),
            pool_size=num("pool_size", 8),
            lease=dur("lease", 2.0),
            tombstone=dur("tombstone", 2.0),
            breaker_failures=num("breaker_failures", 5),
            breaker_cooldown=dur("breaker_cooldown", 1.0),
            max_value=parse_size(p["max_value"], "max_value") if "max_value" in p else 1024 * 1024,
            max_pending=num("max_pending", 10_000),
            stale=dur("stale", 0.0),
        )

    def build(self) -> MemcachedTier:
        return MemcachedTier(self)


# -- protocol ---------------------------------------------------------------------------------------------


class _ProtocolError(Exception):
    """The server said something the protocol does not allow here: the connection is out of step."""


async def _read_values(reader: asyncio.StreamReader) -> dict[bytes, tuple[bytes, int]]:
    """Parse a ``gets`` reply: key -> (value, cas)."""
    found: dict[bytes, tuple[bytes, int]] = {}
    while True:
        line = await reader.readuntil(b"\r\n")
        if line == b"END\r\n":
            return found
        terms = line.split()
        if len(terms) < 4 or terms[0] != b"VALUE":
            raise _ProtocolError(f"unexpected reply to gets: {line[:80]!r}")
        length = int(terms[3])
        data = await reader.readexactly(length + 2)
        found[terms[1]] = (data[:-2], int(terms[4]) if len(terms) > 4 else 0)


async def _read_lines(reader: asyncio.StreamReader, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        line = (await reader.readuntil(b"\r\n"))[:-2]
        if line == b"ERROR" or line.startswith(b"CLIENT_ERROR"):
            raise _ProtocolError(f"memcached rejected a command: {line[:80]!r}")
        out.append(line)
    return out


def _store(cmd: bytes, key: bytes, value: bytes, exp: int, cas: int | None = None) -> bytes:
    if cas is None:
        return b"%s %s 0 %d %d\r\n%s\r\n" % (cmd, key, exp, len(value), value)
    return b"%s %s 0 %d %d %d\r\n%s\r\n" % (cmd, key, exp, len(value), cas, value)


class _Node:
    """One memcached server: a pool of connections (aiomcache's), one deadline per round trip."""

    __slots__ = ("addr", "closed", "connect_timeout", "gen", "gen_key", "health", "pool", "timeout")

    def __init__(self, host: str, port: int, config: MemcachedTierConfig, health: NodeHealth) -> None:
        self.addr = f"{host}:{port}"
        self.pool = MemcachePool(host, port, minsize=1, maxsize=config.pool_size)
        self.health = health
        self.timeout = config.timeout
        self.connect_timeout = config.connect_timeout
        self.gen: bytes | None = None
        self.gen_key = config.prefix.encode() + b":gen"
        self.closed = False

    def __repr__(self) -> str:
        return f"_Node({self.addr}, {self.health.breaker.state})"

    def namespace(self) -> bytes:
        assert self.gen is not None
        return self.gen_key[:-3] + self.gen + b":"

    async def call(self, payload: bytes, parse: Callable[[asyncio.StreamReader], Awaitable[R]]) -> R:
        """Write ``payload`` and parse the reply, under the deadline. A connection whose exchange did not
        finish cleanly (deadline, cancellation, error) is discarded: an unread reply must never be read as
        the answer to the next request."""
        if self.closed:
            raise TierError("the memcached tier is closed", backend="memcached")
        # ``connect_timeout`` + ``timeout`` to get a connection (the pool may have to open one), then
        # ``timeout`` for the exchange.
        async with asyncio.timeout(self.connect_timeout + self.timeout) as deadline:
            conn: Connection = await self.pool.acquire()
            deadline.reschedule(asyncio.get_running_loop().time() + self.timeout)
            try:
                conn.writer.write(payload)
                await conn.writer.drain()
                result = await parse(conn.reader)
            except BaseException:
                conn.reader.set_exception(ConnectionResetError("discarded after an unfinished exchange"))
                raise
            finally:
                self.pool.release(conn)  # closes it if discarded
            return result

    async def aclose(self) -> None:
        self.closed = True
        await self.pool.clear()


# -- the tier ------------------------------------------------------------------------------------------------


class MemcachedTier(NodeTier[_Node]):
    """A shared cache tier on memcached. Build it from :class:`MemcachedTierConfig` (or a URL)."""

    local = False
    _log: ClassVar[logging.Logger] = log
    _kind: ClassVar[str] = "memcached"

    def __init__(self, config: MemcachedTierConfig) -> None:
        self.config = config
        self.name = "memcached"
        self.stats = TierStats()
        self.stats.extra.update({"breakers": {}, "oversized": 0, "leases": 0, "hashed_keys": 0})
        self._origin = os.urandom(6).hex().encode()
        self._tokens = itertools.count(1)
        self._lease_exp = exptime(config.lease)
        self._tomb_exp = exptime(config.tombstone)
        self._limit = config.max_value - ITEM_OVERHEAD
        self._closed = False
        self._nodes: list[_Node] = []
        for host, port in config.hosts:
            self._nodes.append(_Node(host, port, config, self._health(f"{host}:{port}", config)))
        self._rendezvous = Rendezvous(n.addr for n in self._nodes)

    def __repr__(self) -> str:
        return f"MemcachedTier({','.join(n.addr for n in self._nodes)}, prefix={self.config.prefix!r})"

    # -- lifecycle -------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Learn each node's generation. Never fails: a node that is down fails open."""
        await asyncio.gather(*(self._probe(node) for node in self._nodes))

    async def _probe(self, node: _Node) -> None:
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

        async def one(node: _Node) -> str | None:
            try:
                await node.call(b"version\r\n", lambda r: _read_lines(r, 1))
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"
            return None

        nodes = self._nodes
        return dict(zip([n.addr for n in nodes], await asyncio.gather(*(one(n) for n in nodes)), strict=True))

    def breaker_states(self) -> dict[str, str]:
        """Per node address, its circuit breaker's state."""
        return {n.addr: n.health.breaker.state for n in self._nodes}

    # -- plumbing -------------------------------------------------------------------------------------------

    def _failed(self, node: _Node, exc: BaseException) -> None:
        self.stats.errors += 1
        node.health.breaker.failure()
        node.gen = None  # re-read it: a restarted server has lost it
        log.debug("memcached %s failed: %r", node.addr, exc)

    def _key(self, node: _Node, key: str) -> bytes:
        ns = node.namespace()
        mk = memcached_key(ns, key)
        if mk[len(ns) : len(ns) + 1] == b"#":
            self._bump("hashed_keys")
        return mk

    async def _ensure_gen(self, node: _Node) -> None:
        """Read the node's generation, creating it if the node has none (new or restarted server)."""
        for _ in range(3):
            found = await node.call(b"gets " + node.gen_key + b"\r\n", _read_values)
            self.stats.round_trips += 1
            if node.gen_key in found:
                node.gen = found[node.gen_key][0]
                return
            fresh = os.urandom(4).hex().encode()
            (reply,) = await node.call(_store(b"add", node.gen_key, fresh, 0), lambda r: _read_lines(r, 1))
            self.stats.round_trips += 1
            if reply == _STORED:
                node.gen = fresh
                return
        raise TierError("memcached generation key keeps changing", backend=self.name)

    def _check_gen(self, node: _Node, found: dict[bytes, tuple[bytes, int]]) -> bool:
        """True if the reply was read under the node's current generation (else the cached one is refreshed)."""
        seen = found.get(node.gen_key)
        if seen is not None and seen[0] == node.gen:
            return True
        node.gen = seen[0] if seen is not None else None
        self._bump("generation_changes")
        return False

    def _route(self, keys: Sequence[str]) -> dict[_Node, list[int]]:
        if len(self._nodes) == 1:
            return {self._nodes[0]: list(range(len(keys)))}
        groups: dict[_Node, list[int]] = {}
        pick = self._rendezvous.index
        nodes = self._nodes
        for i, k in enumerate(keys):
            groups.setdefault(nodes[pick(k)], []).append(i)
        return groups

    async def _gets(self, node: _Node, keys: Sequence[str]) -> tuple[list[bytes], dict[bytes, tuple[bytes, int]]]:
        """``gets`` the generation and ``keys`` in one request; retried once if the generation moved."""
        for _ in range(2):
            if node.gen is None:
                await self._ensure_gen(node)
            mkeys = [self._key(node, k) for k in keys]
            uniq = list(dict.fromkeys(mkeys))
            found = await node.call(b"gets " + node.gen_key + b" " + b" ".join(uniq) + b"\r\n", _read_values)
            self.stats.round_trips += 1
            if self._check_gen(node, found):
                return mkeys, found
        raise TierError("memcached generation changed twice during one read", backend=self.name)

    # -- reads ---------------------------------------------------------------------------------------------

    async def get_many(self, keys: Sequence[str]) -> list[bytes | Lease | None]:
        out: list[bytes | Lease | None] = [VOID] * len(keys)
        if not keys:
            return out
        if self._closed:
            raise TierError("the memcached tier is closed", backend=self.name)
        await self._each(self._route(keys), lambda node, idx: self._get_on(node, idx, keys, out))
        return out

    async def _get_on(self, node: _Node, idx: list[int], keys: Sequence[str], out: list[bytes | Lease | None]) -> None:
        if not await self._usable(node):
            self.stats.misses += len(idx)
            return
        mine = [keys[i] for i in idx]
        try:
            mkeys, found = await self._gets(node, mine)
        except Exception as exc:
            self._failed(node, exc)
            self.stats.misses += len(idx)
            return
        node.health.breaker.success()
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
                if t == _D:
                    out[i] = value[ENTRY_HEADER:]
                    hits += 1
                    continue
                if t == _S:
                    if now_ms and int(value[17:29], 16) <= now_ms and mk not in seen:
                        seen.add(mk)
                        refresh.append((i, value))  # past its soft expiry: one reader refreshes it
                    else:
                        out[i] = value[STALE_HEADER:]
                        hits += 1
                    continue
                if t == _L:
                    out[i] = None
                    continue
                if t != _T:
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
        markers = [b"L" + token + b":%d" % j for j in range(len(need))]
        parts = [
            _store(b"add", mk, m, self._lease_exp) if cas is None else _store(b"cas", mk, m, self._lease_exp, cas)
            for (_, mk, cas), m in zip(need, markers, strict=True)
        ]
        # A stale entry's refresh lock lives beside it: the reader that adds it refreshes; the others are
        # served the stale value at once.
        parts += [_store(b"add", self._key(node, keys[i] + "#r"), token, self._lease_exp) for i, _ in refresh]
        try:
            replies = await node.call(b"".join(parts), lambda r: _read_lines(r, len(parts)))
        except Exception as exc:
            self._failed(node, exc)
            for i, value in refresh:  # absent keys stay VOID misses; stale entries are still served
                out[i] = value[STALE_HEADER:]
            self.stats.hits += len(refresh)
            return
        self.stats.round_trips += 1
        leases = 0
        for (i, _, _), m, reply in zip(need, markers, replies[: len(need)], strict=True):
            if reply == _STORED:
                out[i] = Lease(m)
                leases += 1
            else:
                out[i] = None  # another reader won the lease (or filled): wait and re-read
        self._bump("leases", leases)
        self._settle_refreshes(refresh, (r == _STORED for r in replies[len(need) :]), token, out)

    # -- fills and writes ----------------------------------------------------------------------------------

    async def fill_many(self, entries: Sequence[tuple[str, bytes, Lease]], ttl: float) -> None:
        live = [(k, v, lease.token) for k, v, lease in entries if isinstance(lease.token, bytes)]
        if not live or self._closed:
            return
        exp = exptime(ttl + self.config.stale)
        keys = [e[0] for e in live]
        await self._each(self._route(keys), lambda node, idx: self._fill_on(node, idx, live, ttl, exp))

    async def _fill_on(
        self, node: _Node, idx: list[int], live: list[tuple[str, bytes, bytes]], ttl: float, exp: int
    ) -> None:
        if node.health.owes or not node.health.breaker.allow():
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
                if token[:1] == b"R":
                    # A refresh: only if the entry is still the one the refresher saw (no invalidation since).
                    parts.append(b"delete " + self._key(node, key + "#r") + b"\r\n")
                    planned.append(False)
                    if got is None or got[0][:STALE_HEADER] != token[1 : 1 + STALE_HEADER]:
                        self.stats.fills_dropped += bool(value)
                        continue
                elif got is None or got[0] != token:
                    self.stats.fills_dropped += 1
                    continue
                if not value or len(value) + STALE_HEADER > self._limit:
                    if value:
                        self._bump("oversized")  # not sent
                    # Give the lease up (nothing to cache): a short tombstone, which the next reader leases.
                    parts.append(_store(b"cas", mk, b"T", self._tomb_exp, got[1]))
                    planned.append(False)
                else:
                    parts.append(_store(b"cas", mk, entry(value, 0, ttl, stale), exp, got[1]))
                    planned.append(True)
            if not parts:
                return
            replies = await node.call(b"".join(parts), lambda r: _read_lines(r, len(parts)))
            self.stats.round_trips += 1
        except Exception as exc:
            self._failed(node, exc)
            return
        node.health.breaker.success()
        for real, reply in zip(planned, replies, strict=True):
            if not real:
                continue
            if reply == _STORED:
                self.stats.fills += 1
            elif reply.startswith(b"SERVER_ERROR"):
                self._bump("oversized")  # the server's item size is smaller than max_value says
            else:
                self.stats.fills_dropped += 1

    async def set_many(self, entries: Sequence[tuple[str, bytes, int]], ttl: float) -> None:
        if not entries or self._closed:
            return
        exp = exptime(ttl + self.config.stale)
        keys = [e[0] for e in entries]
        await self._each(self._route(keys), lambda node, idx: self._set_on(node, idx, entries, ttl, exp))

    async def _set_on(
        self, node: _Node, idx: list[int], entries: Sequence[tuple[str, bytes, int]], ttl: float, exp: int
    ) -> None:
        keys = [entries[i][0] for i in idx]
        if not await self._usable(node):
            node.health.remember(keys)
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
                for i, mk in zip(todo, mkeys, strict=True):
                    key, value, version = entries[i]
                    if len(value) + STALE_HEADER > self._limit:
                        self._bump("oversized")
                        failed.append(key)  # not cacheable: tombstone it so no older entry survives
                        continue
                    stored = entry(value, version, ttl, self.config.stale)
                    got = found.get(mk)
                    if got is None:
                        parts.append(_store(b"add", mk, stored, exp))
                    else:
                        current, cas = got
                        t = current[0] if current else 0
                        if t == _T or (t in (_D, _S) and current[1:ENTRY_HEADER] > stored[1:ENTRY_HEADER]):
                            self.stats.fills_dropped += 1  # deleted a moment ago, or a newer version is in
                            continue
                        parts.append(_store(b"cas", mk, stored, exp, cas))
                    sent.append(i)
                if not parts:
                    todo = []
                    break
                n = len(parts)
                replies = await node.call(b"".join(parts), lambda r, n=n: _read_lines(r, n))  # type: ignore[misc]
                self.stats.round_trips += 1
                todo = []
                for i, reply in zip(sent, replies, strict=True):
                    if reply == _STORED:
                        self.stats.fills += 1
                    elif reply.startswith(b"SERVER_ERROR"):
                        self._bump("oversized")
                        failed.append(entries[i][0])
                    else:
                        todo.append(i)  # raced with another writer or reader: look again
            failed += [entries[i][0] for i in todo]
            if failed:
                await self._invalidate_on(node, failed, publish=False)
        except Exception as exc:
            self._failed(node, exc)
            node.health.remember(keys)
            return
        node.health.breaker.success()

    async def invalidate_many(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        if self._closed:
            raise TierError("the memcached tier is closed", backend=self.name)
        keys = list(dict.fromkeys(keys))
        await self._each(self._route(keys), lambda node, idx: self._invalidate_node(node, [keys[i] for i in idx]))

    async def _invalidate_on(self, node: _Node, keys: Sequence[str], *, publish: bool) -> None:
        """``set`` a tombstone on ``keys`` under the node's current generation (checked in the same request).
        memcached has no channel to other processes: ``publish`` changes nothing."""
        for _ in range(2):
            if node.gen is None:
                await self._ensure_gen(node)
            mkeys = list(dict.fromkeys(self._key(node, k) for k in keys))
            payload = b"gets " + node.gen_key + b"\r\n" + b"".join(
                _store(b"set", mk, b"T", self._tomb_exp) for mk in mkeys
            )

            async def parse(reader: asyncio.StreamReader, n: int = len(mkeys)) -> tuple[dict[bytes, Any], list[bytes]]:
                return await _read_values(reader), await _read_lines(reader, n)

            found, replies = await node.call(payload, parse)
            self.stats.round_trips += 1
            bad = [r for r in replies if r != _STORED]
            if bad:
                raise TierError(f"memcached refused a tombstone: {bad[0][:80]!r}", backend=self.name)
            if self._check_gen(node, found):
                self.stats.invalidations += len(keys)
                return
        raise TierError("memcached generation changed twice during one invalidation", backend=self.name)

    # -- namespace ---------------------------------------------------------------------------------------

    async def clear(self) -> None:
        """Move every node to a new generation: the namespace's old entries become unreachable at once."""
        if self._closed:
            raise TierError("the memcached tier is closed", backend=self.name)
        failed: list[BaseException] = []
        for node in self._nodes:
            try:
                await self._clear_node(node)
            except Exception as exc:
                self._failed(node, exc)
                node.health.overflow = True  # owed: clear it before it is read again
                failed.append(exc)
        if failed:
            raise TierError(f"clear failed on {len(failed)} node(s): {failed[0]!r}", backend=self.name)

    async def _clear_node(self, node: _Node) -> None:
        """Move ``node`` to a new generation (its old keys become unreachable; other namespaces are untouched)."""
        fresh = os.urandom(4).hex().encode()
        (reply,) = await node.call(_store(b"set", node.gen_key, fresh, 0), lambda r: _read_lines(r, 1))
        self.stats.round_trips += 1
        if reply != _STORED:
            raise TierError(f"memcached refused the generation key: {reply[:80]!r}", backend=self.name)
        node.gen = fresh


