"""``RedisTier``: Redis (standalone, several standalone nodes, or Redis Cluster) as a shared cache tier.

Keys are ``<prefix>:<cache key>``; the cache key's ``{table:partition}`` is a Redis Cluster hash tag, so one
partition's items share a slot and are read with one ``MGET``. Every value starts with a type byte:

* ``D`` + 16 hex digits of version + the codec envelope — an entry (fills carry version 0);
* ``L`` + token — a lease: a reader missed and is reading the store; only that reader may fill;
* ``T`` — a tombstone: the key was invalidated a moment ago (``tombstone=`` long).

Reads are one ``MGET`` per slot, one round trip per node; only keys that are absent or tombstoned go on to
the ``LEASE`` script (a second round trip) that hands out a lease per key. ``FILL`` stores a value only if the
key still holds the caller's lease; ``INVALIDATE`` replaces entries and leases by a tombstone (so a fill racing
the invalidation finds no lease and is dropped) and publishes the keys on the invalidation channel that keeps
other processes' in-process tiers coherent; ``SET`` (write-through) never replaces a newer version, and never
lands on a tombstone. Scripts run with ``EVALSHA`` and are loaded on ``NOSCRIPT``.

Connections are redis-py ``Connection`` objects (hiredis parser) held per node, with no client-side retries:
each round trip has one deadline (``timeout=``), each node a circuit breaker and a backlog of invalidations
that could not be delivered, replayed before the node is read again. Cluster topology comes from
``CLUSTER SLOTS`` and is refreshed on ``MOVED``/``ASK`` or when a node fails.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from redis.asyncio.client import Redis
from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import AskError, NoScriptError, RedisError, ResponseError, TryAgainError

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

__all__ = ["RedisTier", "RedisTierConfig"]

log = logging.getLogger("tierstore.cache.redis")

_D, _S, _L, _T = 0x44, 0x53, 0x4C, 0x54  # b"D", b"S", b"L", b"T": see tiers/breaker.py
_PACKED_KEYS = 65_536  # bound of the cache of keys packed as RESP arguments
VOID = Lease(None)
"""Miss that must not be filled (the node is down or owes invalidations): read the store, skip the fill."""

_LEASE = """
local out = {}
for i = 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  local t = v and string.byte(v, 1)
  if (not v) or t == 84 then
    local m = 'L' .. ARGV[1] .. ':' .. i
    redis.call('SET', KEYS[i], m, 'PX', ARGV[2])
    out[i] = m
  elseif t == 76 then
    out[i] = false
  else
    out[i] = v
  end
end
return out
"""
# FILL: ARGV = ttl_ms, tombstone_ms, then (lease marker, value) per key; an empty value gives the lease up
# (nothing to cache: the item does not exist, or is too large).
_FILL = """
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[2 * i + 1] then
    local v = ARGV[2 * i + 2]
    if v == '' then
      redis.call('DEL', KEYS[i])
    else
      redis.call('SET', KEYS[i], v, 'PX', ARGV[1])
      n = n + 1
    end
  end
end
return n
"""
# INVALIDATE: ARGV = tombstone_ms, channel ('' = none), payload.
_INVALIDATE = """
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], 'T', 'PX', ARGV[1])
end
if ARGV[2] ~= '' then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return #KEYS
"""
# SET (write-through): ARGV = ttl_ms, channel, payload, then one 'D'+version+envelope value per key.
_SET = """
local n = 0
for i = 1, #KEYS do
  local new = ARGV[3 + i]
  local v = redis.call('GET', KEYS[i])
  local t = v and string.byte(v, 1)
  if t ~= 84 and not ((t == 68 or t == 83) and string.sub(v, 2, 17) > string.sub(new, 2, 17)) then
    redis.call('SET', KEYS[i], new, 'PX', ARGV[1])
    n = n + 1
  end
end
if ARGV[2] ~= '' then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return n
"""
# REFRESH (stale mode): KEYS = (entry, refresh lock) pairs; ARGV = ttl_ms, then per pair the header of the entry
# the refresher saw and the new value (empty: the item is gone). Replaces the entry only if it is still the one
# seen, so an invalidation (and any fill after it) always wins over a refresh that read the store before it.
_REFRESH = """
local n = 0
for i = 1, #KEYS, 2 do
  local j = (i + 1) / 2
  local cur = redis.call('GET', KEYS[i])
  if cur and string.sub(cur, 1, 37) == ARGV[2 * j] then
    local v = ARGV[2 * j + 1]
    if v == '' then
      redis.call('DEL', KEYS[i])
    else
      redis.call('SET', KEYS[i], v, 'PX', ARGV[1])
      n = n + 1
    end
  end
  redis.call('DEL', KEYS[i + 1])
end
return n
"""
_SCRIPTS = {"lease": _LEASE, "fill": _FILL, "invalidate": _INVALIDATE, "set": _SET, "refresh": _REFRESH}
_SHA: dict[str, str] = {}


def _sha(name: str) -> str:
    sha = _SHA.get(name)
    if sha is None:
        sha = _SHA[name] = hashlib.sha1(_SCRIPTS[name].encode(), usedforsecurity=False).hexdigest()
    return sha


# -- configuration ------------------------------------------------------------------------------------------

_PARAMS = {
    "prefix", "timeout", "connect_timeout", "pool_size", "lease", "tombstone", "breaker_failures",
    "breaker_cooldown", "max_value", "max_pending", "coherence", "ping", "tls_ca", "tls_verify", "stale",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisTierConfig:
    """``redis://[user:password@]host[:port][/db]?prefix=app&timeout=100ms``.

    ``rediss://`` for TLS; ``redis+cluster://h1:p1,h2:p2,h3:p3`` for Redis Cluster (any reachable node
    seeds the topology); ``redis://h1,h2`` for several standalone nodes chosen per partition by rendezvous
    hashing. Parameters: ``prefix`` (key namespace), ``timeout`` (deadline of one round trip),
    ``connect_timeout``, ``pool_size`` (connections per node), ``lease`` (lease lifetime), ``tombstone``
    (tombstone lifetime), ``breaker_failures``/``breaker_cooldown``, ``max_value`` (larger entries are not
    cached), ``max_pending`` (invalidation backlog per node before the node's namespace is cleared instead),
    ``coherence`` (publish invalidations for other processes' in-process tiers), ``ping`` (liveness probe of
    the invalidation channel), ``tls_ca`` (CA bundle path), ``tls_verify``, ``stale`` (serve an entry up to this
    long past its TTL while one reader refreshes it — never after an invalidation; 0, the default, is off).
    """

    hosts: tuple[tuple[str, int], ...] = (("127.0.0.1", 6379),)
    cluster: bool = False
    tls: bool = False
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    prefix: str = "tierstore"
    timeout: float = 0.1
    connect_timeout: float = 0.2
    pool_size: int = 8
    lease: float = 1.0
    tombstone: float = 2.0
    breaker_failures: int = 5
    breaker_cooldown: float = 1.0
    max_value: int = 16 * 1024 * 1024
    max_pending: int = 10_000
    coherence: bool = True
    ping: float = 1.0
    tls_ca: str | None = None
    tls_verify: bool = True
    stale: float = 0.0

    def __post_init__(self) -> None:
        valid_prefix(self.prefix)
        if not self.hosts:
            raise ConfigError("RedisTierConfig needs at least one host")
        if self.stale < 0:
            raise ConfigError("RedisTierConfig.stale must be >= 0")
        if self.cluster and self.db != 0:
            raise ConfigError("Redis Cluster has only database 0")
        for name in ("timeout", "connect_timeout", "lease", "tombstone", "breaker_cooldown", "ping"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"RedisTierConfig.{name} must be > 0")
        for name in ("pool_size", "breaker_failures", "max_value", "max_pending"):
            if getattr(self, name) < 1:
                raise ConfigError(f"RedisTierConfig.{name} must be >= 1")

    @classmethod
    def from_url(cls, url: str) -> RedisTierConfig:
        from tierstore.config import parse_bool, parse_duration, parse_int, parse_size, query_params, redact_url

        scheme, _, rest = url.partition("://")
        scheme = scheme.lower()
        if scheme not in ("redis", "rediss", "redis+cluster", "rediss+cluster"):
            raise ConfigError(f"not a Redis URL: {redact_url(url)!r}")
        p = query_params(url, _PARAMS)
        parts = urlsplit("x://" + rest)
        netloc = parts.netloc
        username = password = None
        if "@" in netloc:
            userinfo, netloc = netloc.rsplit("@", 1)
            user, has_pw, pw = userinfo.partition(":")
            username = unquote(user) or None
            password = unquote(pw) if has_pw else None
        cluster = scheme.endswith("+cluster")
        db = 0
        path = parts.path.strip("/")
        if path:
            try:
                db = int(path)
            except ValueError:
                raise ConfigError(f"bad database number {path!r} in {redact_url(url)!r}") from None

        def dur(name: str, default: float) -> float:
            return parse_duration(p[name], name) if name in p else default

        def num(name: str, default: int) -> int:
            return parse_int(p[name], name) if name in p else default

        return cls(
            hosts=parse_hosts(netloc, 6379),
            cluster=cluster,
            tls=scheme.startswith("rediss"),
            db=db,
            username=username,
            password=password,
            prefix=p.get("prefix", "tierstore"),
            timeout=dur("timeout", 0.1),
            connect_timeout=dur("connect_timeout", 0.2),
            pool_size=num("pool_size", 8),
            lease=dur("lease", 1.0),
            tombstone=dur("tombstone", 2.0),
            breaker_failures=num("breaker_failures", 5),
            breaker_cooldown=dur("breaker_cooldown", 1.0),
            max_value=parse_size(p["max_value"], "max_value") if "max_value" in p else 16 * 1024 * 1024,
            max_pending=num("max_pending", 10_000),
            coherence=parse_bool(p["coherence"], "coherence") if "coherence" in p else True,
            ping=dur("ping", 1.0),
            tls_ca=p.get("tls_ca") or None,
            tls_verify=parse_bool(p["tls_verify"], "tls_verify") if "tls_verify" in p else True,
            stale=dur("stale", 0.0),
        )

    def build(self) -> RedisTier:
        return RedisTier(self)


# -- one node ------------------------------------------------------------------------------------------------


class _Node:
    """Connections to one Redis server, each round trip under one deadline, no client-side retries."""

    __slots__ = ("_free", "_kwargs", "_sem", "addr", "closed", "connect_timeout", "connection_class", "health",
                 "host", "port", "timeout")

    def __init__(self, host: str, port: int, config: RedisTierConfig, health: NodeHealth) -> None:
        self.host = host
        self.port = port
        self.addr = f"{host}:{port}"
        self.health = health
        self.timeout = config.timeout
        self.connect_timeout = config.connect_timeout
        self.closed = False
        self._free: list[Connection] = []
        self._sem = asyncio.Semaphore(config.pool_size)
        kwargs: dict[str, Any] = {
            "host": host,
            "port": port,
            "db": config.db,
            "username": config.username,
            "password": config.password,
            "socket_timeout": None,  # the round trip's deadline covers reads and writes
            "socket_connect_timeout": config.connect_timeout,
            "retry": Retry(NoBackoff(), 0),
        }
        self.connection_class: type[Connection] = Connection
        if config.tls:
            self.connection_class = SSLConnection
            kwargs["ssl_cert_reqs"] = "required" if config.tls_verify else "none"
            kwargs["ssl_check_hostname"] = config.tls_verify
            if config.tls_ca:
                kwargs["ssl_ca_certs"] = config.tls_ca
        self._kwargs = kwargs

    def __repr__(self) -> str:
        return f"_Node({self.addr}, {self.health.breaker.state})"

    async def call(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send ``commands`` in one write and read their replies (a ``ResponseError`` reply is returned in
        place, not raised). Raises on a connection problem or when the deadline passes."""
        return await self.call_packed(_pack(commands), len(commands))

    async def call_packed(self, packed: bytes, n: int) -> list[Any]:
        """:meth:`call` for ``n`` commands already in RESP (see :func:`_pack`)."""
        if self.closed:
            raise TierError("the Redis tier is closed", backend="redis")
        # One deadline: ``timeout`` for the exchange; a connection made first gets ``connect_timeout`` of its
        # own (a TLS handshake and AUTH must not eat the budget of the request itself).
        async with asyncio.timeout(self.timeout) as deadline:
            async with self._sem:
                conn = self._free.pop() if self._free else self.connection_class(**self._kwargs)
                try:
                    if not conn.is_connected:
                        loop = asyncio.get_running_loop()
                        deadline.reschedule(loop.time() + self.connect_timeout)
                        await conn.connect()  # type: ignore[no-untyped-call]
                        deadline.reschedule(loop.time() + self.timeout)
                    await conn.send_packed_command(packed, check_health=False)
                    out: list[Any] = []
                    for _ in range(n):
                        try:
                            out.append(await conn.read_response())
                        except ResponseError as exc:
                            out.append(exc)
                except BaseException:
                    # A reply may still be on its way: this connection is never reused.
                    await conn.disconnect(nowait=True)
                    raise
                if self.closed:
                    await conn.disconnect(nowait=True)
                else:
                    self._free.append(conn)
                return out

    async def aclose(self) -> None:
        self.closed = True
        free, self._free = self._free, []
        for conn in free:
            try:
                await conn.disconnect(nowait=True)
            except Exception as exc:  # closing must not fail
                log.debug("redis %s: disconnect failed: %r", self.addr, exc)


def _arg(a: Any) -> bytes:
    if isinstance(a, bytes):
        return a
    if isinstance(a, str):
        return a.encode()
    if isinstance(a, int):
        return b"%d" % a
    raise TypeError(f"cannot send {type(a).__name__} to Redis")


def _pack(commands: Sequence[Sequence[Any]]) -> bytes:
    """Commands in RESP, ready to write (about twice as fast as redis-py's general packer for MGET/EVALSHA)."""
    out: list[bytes] = []
    append = out.append
    for cmd in commands:
        append(b"*%d\r\n" % len(cmd))
        for a in cmd:
            b = _arg(a)
            append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class _Failed(Exception):
    """A node failed during a multi-node operation (carried to the tier's bookkeeping)."""


# -- the tier ------------------------------------------------------------------------------------------------


class RedisTier(NodeTier[_Node]):
    """A shared cache tier on Redis. Build it from :class:`RedisTierConfig` (or a ``redis://`` URL)."""

    local = False
    _log: ClassVar[logging.Logger] = log
    _kind: ClassVar[str] = "redis"

    def __init__(self, config: RedisTierConfig) -> None:
        self.config = config
        self.name = "redis-cluster" if config.cluster else "redis"
        self.stats = TierStats()
        self.stats.extra.update({"breakers": {}, "oversized": 0, "leases": 0})
        self.channel = f"tierstore:inv:{config.prefix}"
        self._prefix = config.prefix.encode() + b":"
        self._prefix_len = len(self._prefix)
        self._origin = os.urandom(8).hex()
        self._tokens = itertools.count(1)
        self._lease_ms = str(max(1, math.ceil(config.lease * 1000)))
        self._tomb_ms = str(max(1, math.ceil(config.tombstone * 1000)))
        self._nodes: dict[str, _Node] = {}
        self._order: list[_Node] = []  # standalone: rendezvous order
        self._rendezvous: Rendezvous | None = None
        self._slots: list[_Node | None] = []  # cluster: slot -> node
        self._topology_stale = config.cluster
        self._topology_lock = asyncio.Lock()
        self._closed = False
        self.publishes_invalidations = config.coherence
        self._stale_mode = config.stale > 0
        self._listeners: set[asyncio.Task[Any]] = set()
        self._packed: dict[str, bytes] = {}
        if not config.cluster:
            for host, port in config.hosts:
                self._order.append(self._node(host, port))
            if len(self._order) > 1:
                self._rendezvous = Rendezvous(n.addr for n in self._order)

    def __repr__(self) -> str:
        hosts = ",".join(f"{h}:{p}" for h, p in self.config.hosts)
        return f"RedisTier({self.name}, {hosts}, prefix={self.config.prefix!r})"

    def _node(self, host: str, port: int) -> _Node:
        addr = f"{host}:{port}"
        node = self._nodes.get(addr)
        if node is None:
            node = self._nodes[addr] = _Node(host, port, self.config, self._health(addr, self.config))
        return node

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Fetch the cluster topology (cluster mode). Never fails: a tier that is down fails open."""
        if self.config.cluster:
            try:
                await self._refresh_topology()
            except Exception as exc:
                log.warning("%r: cluster topology unavailable at open, reading through: %r", self, exc)

    async def aclose(self) -> None:
        """Close every connection and end every subscription to the invalidation channel. Idempotent."""
        if self._closed:
            return
        self._closed = True
        listeners = [t for t in self._listeners if not t.done() and t is not asyncio.current_task()]
        for task in listeners:
            task.cancel()
        if listeners:
            await asyncio.wait(listeners, timeout=1.0)
        for node in list(self._nodes.values()):
            await node.aclose()

    # -- health ----------------------------------------------------------------------------------------

    async def ping(self) -> dict[str, str | None]:
        """``PING`` every node (cluster: every master), bypassing the breakers; per address ``None`` or a reason."""
        if self.config.cluster:
            try:
                await self._refresh_topology()
            except Exception as exc:
                return {f"{h}:{p}": f"{type(exc).__name__}: {exc}" for h, p in self.config.hosts}
            nodes = list(dict.fromkeys(n for n in self._slots if n is not None))
        else:
            nodes = list(self._order)

        async def one(node: _Node) -> str | None:
            try:
                (reply,) = await node.call([("PING",)])
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"
            return f"{type(reply).__name__}: {reply}" if isinstance(reply, Exception) else None

        return dict(zip([n.addr for n in nodes], await asyncio.gather(*(one(n) for n in nodes)), strict=True))

    def breaker_states(self) -> dict[str, str]:
        """Per node address, its circuit breaker's state."""
        return {addr: n.health.breaker.state for addr, n in self._nodes.items()}

    # -- routing ---------------------------------------------------------------------------------------

    async def _refresh_topology(self) -> None:
        async with self._topology_lock:
            if not self._topology_stale and self._slots:
                return
            seeds = [n for n in self._nodes.values() if n.health.breaker.state == "closed"]
            seeds += [self._node(h, p) for h, p in self.config.hosts]
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
                slots: list[_Node | None] = [None] * 16384
                for entry in reply:
                    start, end, master = int(entry[0]), int(entry[1]), entry[2]
                    host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
                    node = self._node(host or seed.host, int(master[1]))
                    for s in range(start, end + 1):
                        slots[s] = node
                self._slots = slots
                self._topology_stale = False
                self.stats.round_trips += 1
                self._rehome_backlogs()
                return
            raise TierError(f"no Redis Cluster node answered CLUSTER SLOTS: {last!r}", backend=self.name)

    def _pack_key(self, key: str) -> bytes:
        """``key``'s full name as a RESP argument, remembered: hot keys are read far more often than written."""
        full = self._prefix + key.encode()
        arg = b"$%d\r\n%s\r\n" % (len(full), full)
        if len(self._packed) >= _PACKED_KEYS:
            self._packed.clear()
        self._packed[key] = arg
        return arg

    def _rehome_backlogs(self) -> None:
        """After a topology change, move each owed invalidation to the node that now owns its key, so it is
        replayed before that node is read; a pending namespace clear applies to every node (slots may have
        carried stale keys anywhere)."""
        nodes = list(self._nodes.values())
        if any(n.health.overflow for n in nodes):
            for n in nodes:
                n.health.require_clear()
            return
        prefix = self._prefix
        for node in nodes:
            for k in list(node.health.pending):
                owner = self._slots[key_slot(prefix + k.encode())]
                if owner is not None and owner is not node:
                    node.health.pending.discard(k)
                    owner.health.remember([k])

    def _full(self, key: str) -> bytes:
        return self._prefix + key.encode()

    async def _route(self, keys: Sequence[str]) -> dict[_Node, dict[int, list[int]]]:
        """node -> slot -> indexes into ``keys`` (slot 0 for standalone nodes)."""
        if not self.config.cluster:
            if self._rendezvous is None:
                return {self._order[0]: {0: list(range(len(keys)))}}
            groups: dict[_Node, dict[int, list[int]]] = {}
            pick = self._rendezvous.index
            order = self._order
            for i, k in enumerate(keys):
                groups.setdefault(order[pick(k)], {}).setdefault(0, []).append(i)
            return groups
        if self._topology_stale or not self._slots:
            await self._refresh_topology()
        slots = self._slots
        groups = {}
        prefix = self._prefix
        for i, k in enumerate(keys):
            slot = key_slot(prefix + k.encode())
            node = slots[slot]
            if node is None:
                raise TierError(f"slot {slot} has no node in the cluster topology", backend=self.name)
            groups.setdefault(node, {}).setdefault(slot, []).append(i)
        return groups

    def _failed(self, node: _Node, exc: BaseException) -> None:
        self.stats.errors += 1
        node.health.breaker.failure()
        if self.config.cluster:
            self._topology_stale = True
        log.debug("redis %s failed: %r", node.addr, exc)

    def _reply_error(self, node: _Node, reply: Exception) -> None:
        """A per-command error reply; ``MOVED``/``ASK`` mean the slot moved: refresh the topology."""
        self.stats.errors += 1
        if isinstance(reply, AskError | TryAgainError):  # MovedError derives from AskError
            self._topology_stale = True
        log.debug("redis %s: error reply %r", node.addr, reply)

    async def _scripts(self, node: _Node, name: str, calls: list[tuple[Any, ...]]) -> list[Any]:
        """Run EVALSHA ``calls`` (``(numkeys, *keys, *args)``) on ``node``; load the script on ``NOSCRIPT``."""
        sha = _sha(name)
        commands = [("EVALSHA", sha, *c) for c in calls]
        replies = await node.call(commands)
        self.stats.round_trips += 1
        missing = [j for j, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if missing:
            await node.call([("SCRIPT", "LOAD", _SCRIPTS[name])])
            again = await node.call([commands[j] for j in missing])
            self.stats.round_trips += 2
            for j, r in zip(missing, again, strict=True):
                replies[j] = r
        return replies

    # -- reads -------------------------------------------------------------------------------------------

    async def get_many(self, keys: Sequence[str]) -> list[bytes | Lease | None]:
        n = len(keys)
        out: list[bytes | Lease | None] = [VOID] * n
        if not n:
            return out
        if self._closed:
            raise TierError("the Redis tier is closed", backend=self.name)
        groups = await self._route(keys)
        if len(groups) == 1:
            ((node, by_slot),) = groups.items()
            await self._get_on(node, by_slot, keys, out)
        else:
            await asyncio.gather(*(self._get_on(node, by_slot, keys, out) for node, by_slot in groups.items()))
        return out

    async def _get_on(
        self, node: _Node, by_slot: dict[int, list[int]], keys: Sequence[str], out: list[bytes | Lease | None]
    ) -> None:
        if not await self._usable(node):
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
        node.health.breaker.success()
        self.stats.round_trips += 1
        need: dict[int, list[int]] = {}
        refresh: list[tuple[int, bytes]] = []
        hits = 0
        now_ms = int(time.time() * 1000) if self._stale_mode else 0
        for g, reply, slot in zip(groups, replies, by_slot, strict=True):
            if isinstance(reply, Exception):
                self._reply_error(node, reply)
                continue
            values = (reply,) if len(g) == 1 else reply
            for i, v in zip(g, values, strict=True):
                if v is None:
                    need.setdefault(slot, []).append(i)
                    continue
                t = v[0] if v else 0
                if t == _D:
                    out[i] = v[ENTRY_HEADER:]
                    hits += 1
                elif t == _S:
                    if now_ms and int(v[17:29], 16) <= now_ms:
                        refresh.append((i, v))  # past its soft expiry: one reader refreshes it
                    else:
                        out[i] = v[STALE_HEADER:]
                        hits += 1
                elif t == _L:
                    out[i] = None  # another reader holds the lease
                elif t == _T:
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
        self, node: _Node, refresh: list[tuple[int, bytes]], keys: Sequence[str], out: list[bytes | Lease | None]
    ) -> None:
        """Stale entries: one reader per key wins the refresh lock (see :meth:`_settle_refreshes`)."""
        token = f"{self._origin}{next(self._tokens):x}".encode()
        prefix = self._prefix
        parts = []
        for i, _ in refresh:
            side = prefix + keys[i].encode() + b"#r"
            parts.append(_pack([("SET", side, token, "NX", "PX", self._lease_ms)]))
        try:
            replies = await node.call_packed(b"".join(parts), len(parts))
            self.stats.round_trips += 1
        except Exception as exc:
            self._failed(node, exc)
            replies = [None] * len(refresh)
        self._settle_refreshes(refresh, (r is not None and not isinstance(r, Exception) for r in replies), token, out)

    async def _lease(
        self, node: _Node, need: dict[int, list[int]], keys: Sequence[str], out: list[bytes | Lease | None]
    ) -> None:
        token = f"{self._origin}{next(self._tokens):x}"
        prefix = self._prefix
        calls = [
            (len(g), *[prefix + keys[i].encode() for i in g], token, self._lease_ms) for g in need.values()
        ]
        try:
            replies = await self._scripts(node, "lease", calls)
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
                elif v[0] == _L:
                    out[i] = Lease(v)
                    leases += 1
                elif v[0] == _D:
                    out[i] = v[ENTRY_HEADER:]  # filled between our two round trips
                elif v[0] == _S:
                    out[i] = v[STALE_HEADER:]
                else:
                    out[i] = v
        self._bump("leases", leases)

    # -- fills and writes ----------------------------------------------------------------------------------

    async def fill_many(self, entries: Sequence[tuple[str, bytes, Lease]], ttl: float) -> None:
        live: list[tuple[str, bytes, bytes]] = []
        max_value = self.config.max_value
        for key, value, lease in entries:
            token = lease.token
            if not isinstance(token, bytes):
                continue  # a VOID lease, or one from another tier: nothing to fill
            if len(value) > max_value:
                self._bump("oversized")
                live.append((key, b"", token))  # not sent: give the lease up instead
            else:
                live.append((key, value, token))
        if not live or self._closed:
            return
        stale = self.config.stale
        ttl_ms = str(max(1, math.ceil((ttl + stale) * 1000)))
        stored = [entry(v, 0, ttl, stale) if v else b"" for _, v, _ in live]
        groups = await self._route([e[0] for e in live])
        await self._each(groups, lambda node, by_slot: self._fill_on(node, by_slot, live, stored, ttl_ms))

    async def _fill_on(
        self, node: _Node, by_slot: dict[int, list[int]], live: list[tuple[str, bytes, bytes]],
        stored: list[bytes], ttl_ms: str,
    ) -> None:
        count = sum(len(g) for g in by_slot.values())
        if node.health.owes or not node.health.breaker.allow():
            # Invalidations are owed: a fill now could land before them. Drop it (the lease stays void).
            self.stats.fills_dropped += count
            return
        prefix = self._prefix
        fills: list[tuple[Any, ...]] = []
        refreshes: list[tuple[Any, ...]] = []
        groups: list[list[int]] = []
        for g in by_slot.values():
            plain = [i for i in g if live[i][2][:1] != b"R"]
            fresh = [i for i in g if live[i][2][:1] == b"R"]
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
                    args += [main, main + b"#r"]
                args.append(ttl_ms)
                for i in fresh:
                    args.append(live[i][2][1 : 1 + STALE_HEADER])
                    args.append(stored[i])
                refreshes.append(tuple(args))
        try:
            replies = await self._scripts(node, "fill", fills) if fills else []
            if refreshes:
                replies += await self._scripts(node, "refresh", refreshes)
        except Exception as exc:
            self._failed(node, exc)
            return
        node.health.breaker.success()
        refresh_groups = [[i for i in g if live[i][2][:1] == b"R"] for g in by_slot.values()]
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
                self._bump("oversized")
                values.append(None)  # not cached: invalidate instead, so no older entry survives
            else:
                values.append(entry(value, version, ttl, stale))
        groups = await self._route(keys)
        await self._each(groups, lambda node, by_slot: self._set_on(node, by_slot, keys, values, ttl_ms))

    async def _set_on(
        self, node: _Node, by_slot: dict[int, list[int]], keys: list[str], values: list[bytes | None],
        ttl_ms: str,
    ) -> None:
        idx = [i for g in by_slot.values() for i in g]
        if not await self._usable(node):
            node.health.remember(keys[i] for i in idx)
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
                              *[values[i] for i in sets]))
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
                    replies += await self._scripts(node, name, mine)
        except Exception as exc:
            self._failed(node, exc)
            node.health.remember(keys[i] for i in idx)
            return
        node.health.breaker.success()
        ordered = [p for p in plan if p[0] == "set"] + [p for p in plan if p[0] == "invalidate"]
        for (kind, g), reply in zip(ordered, replies, strict=True):
            if isinstance(reply, Exception):
                self._reply_error(node, reply)
                node.health.remember(keys[i] for i in g)
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

    async def _invalidate_on(self, node: _Node, keys: list[str], *, publish: bool) -> None:
        """Tombstone ``keys`` (all routed to ``node``). Raises if any key could not be invalidated."""
        prefix = self._prefix
        by_slot: dict[int, list[str]] = {}
        if self.config.cluster:
            for k in keys:
                by_slot.setdefault(key_slot(prefix + k.encode()), []).append(k)
        else:
            by_slot[0] = keys
        channel = self.channel if publish and self.config.coherence else ""
        calls = []
        for g in by_slot.values():
            payload = "\n".join([self._origin, *g]) if channel else ""
            calls.append((len(g), *[prefix + k.encode() for k in g], self._tomb_ms, channel, payload))
        replies = await self._scripts(node, "invalidate", calls)
        for reply in replies:
            if isinstance(reply, Exception):
                self._reply_error(node, reply)
                raise _Failed(repr(reply))
        self.stats.invalidations += len(keys)

    # -- namespace ---------------------------------------------------------------------------------------

    async def clear(self) -> None:
        """Delete every key of this tier's prefix on every node (SCAN + UNLINK), and tell other processes."""
        if self._closed:
            raise TierError("the Redis tier is closed", backend=self.name)
        if self.config.cluster:
            await self._refresh_topology()
            nodes = list(dict.fromkeys(n for n in self._slots if n is not None))
        else:
            nodes = list(self._order)
        failed: list[BaseException] = []
        for node in nodes:
            try:
                await self._clear_node(node)
            except Exception as exc:
                self._failed(node, exc)
                node.health.remember(["*"])
                node.health.overflow = True
                failed.append(exc)
        if self.config.coherence:
            try:
                await nodes[0].call([("PUBLISH", self.channel, f"{self._origin}\n*")])
            except Exception as exc:
                log.debug("redis: clear notice not published: %r", exc)
        if failed:
            raise TierError(f"clear failed on {len(failed)} node(s): {failed[0]!r}", backend=self.name)

    async def _clear_node(self, node: _Node) -> None:
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

    async def invalidations(self) -> AsyncIterator[list[str]]:
        """Cache keys invalidated by other processes, as published on this prefix's channel.

        Yields ``[]`` once subscribed, then one list per message (``["*"]``: everything). Returns or raises
        when the subscription is lost; the consumer flushes its in-process tier and subscribes again.
        """
        if self.config.cluster:
            if self._topology_stale or not self._slots:
                await self._refresh_topology()
            candidates = list(dict.fromkeys(n for n in self._slots if n is not None))
        else:
            candidates = list(self._order)
        node = next((n for n in candidates if n.health.breaker.state == "closed"), candidates[0])
        cfg = self.config
        kwargs: dict[str, Any] = {
            "host": node.host, "port": node.port, "db": cfg.db, "username": cfg.username,
            "password": cfg.password, "socket_timeout": None, "socket_connect_timeout": cfg.connect_timeout,
            # No silent reconnect: messages sent while disconnected are lost, so a drop must reach the consumer
            # (which flushes L1) rather than be papered over by a retry that resubscribes.
            "retry": Retry(NoBackoff(), 0),
        }
        if cfg.tls:
            kwargs.update(ssl=True, ssl_cert_reqs="required" if cfg.tls_verify else "none",
                          ssl_check_hostname=cfg.tls_verify, ssl_ca_certs=cfg.tls_ca)
        if self._closed:
            return
        client = Redis(**kwargs)
        pubsub = client.pubsub(ignore_subscribe_messages=False)
        me = asyncio.current_task()
        if me is not None:
            self._listeners.add(me)
        try:
            async with asyncio.timeout(cfg.connect_timeout + cfg.timeout):
                await pubsub.subscribe(self.channel)
                while True:
                    msg = await pubsub.get_message(timeout=cfg.timeout)
                    if msg is not None and msg["type"] == "subscribe":
                        break
            yield []
            waiting_pong = False
            origin = self._origin
            while not self._closed:
                msg = await pubsub.get_message(timeout=cfg.ping)
                if msg is None:
                    if waiting_pong:
                        raise TierError("invalidation channel: no answer to PING", backend=self.name)
                    await pubsub.ping()
                    waiting_pong = True
                    continue
                waiting_pong = False
                if msg["type"] != "message":
                    continue
                data = msg["data"]
                text = data.decode() if isinstance(data, bytes) else str(data)
                sender, _, body = text.partition("\n")
                if sender == origin or not body:
                    continue
                yield body.split("\n")
        except RedisError as exc:
            raise TierError(f"invalidation channel lost: {exc}", backend=self.name) from exc
        finally:
            if me is not None:
                self._listeners.discard(me)
            try:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                await client.aclose()
            except Exception as exc:
                log.debug("invalidation channel: close failed: %r", exc)
