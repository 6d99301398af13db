"""A shared cache tier over a plain dict: the smallest complete ``CacheTier``, leases and tombstones included.

``DictServer`` stands in for a cache server: a dict of entries per namespace, shared by every ``DictTier``
built on it, as processes share a Redis. ``DictTier`` does no I/O, but it keeps the rules a network tier
keeps, so it passes the same contract suite:

* A miss hands out a lease (a token stored under the key); another reader of a leased key gets ``None`` and
  waits for the fill. ``fill_many`` stores a value only where the key still holds the caller's lease; an
  empty value gives the lease up, so the waiting readers stop waiting.
* ``invalidate_many`` replaces whatever the key holds by a tombstone: a fill racing the invalidation finds
  no lease and is dropped, and a write-through ``set_many`` that lost the race to a delete cannot bring the
  item back while the tombstone lives. The next reader turns the tombstone into a lease.
* ``set_many`` never replaces a newer version (fills carry version 0) and voids a reader's lease.
* It fails open: while the server is down every call raises ``TierError`` (the tiered path then reads the
  store, and keeps invalidations to replay them later); ``open()`` never raises.

A network tier adds a deadline per round trip, a circuit breaker per node and one batched request per node;
the rules stay the same. Expired entries here are dropped when next touched (a server evicts them).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from tierstore.backends import Lease, TierStats
from tierstore.errors import ConfigError, TierError

__all__ = ["DictServer", "DictTier", "DictTierConfig"]

DATA, LEASE, TOMBSTONE = "data", "lease", "tombstone"


@dataclass
class _Entry:
    kind: str  # DATA, LEASE or TOMBSTONE
    expires: float  # time.monotonic() deadline
    value: bytes = b""
    version: int = 0
    token: int = 0


class DictServer:
    """The "server": entries by namespace, then by key. Set ``up = False`` to simulate an outage."""

    def __init__(self) -> None:
        self.up = True
        self.namespaces: dict[str, dict[str, _Entry]] = {}
        self.tokens = itertools.count(1)


SERVERS: dict[str, DictServer] = {}
"""Servers by name: every tier built from ``dict://NAME`` shares one."""


class DictTier:
    """Implements ``CacheTier`` on a :class:`DictServer`; build it from :class:`DictTierConfig`."""

    local = False  # shared between processes: the tiered path coalesces its reads and waits on its leases

    def __init__(self, server: DictServer, *, prefix: str = "tierstore", lease: float = 1.0,
                 tombstone: float = 2.0) -> None:
        self.name = "dict"
        self.stats = TierStats()
        self.server = server
        self.prefix = prefix
        self.lease_ttl = lease  # a reader that crashed mid-miss blocks the key this long at most
        self.tombstone_ttl = tombstone

    def _namespace(self) -> dict[str, _Entry]:
        """This tier's entries; a network tier makes its round trip here and turns failures into TierError."""
        if not self.server.up:
            self.stats.errors += 1
            raise TierError("the dict server is down", backend=self.name)
        return self.server.namespaces.setdefault(self.prefix, {})

    @staticmethod
    def _live(entries: dict[str, _Entry], key: str, now: float) -> _Entry | None:
        entry = entries.get(key)
        if entry is not None and entry.expires <= now:
            del entries[key]
            return None
        return entry

    async def open(self) -> None:
        """Nothing to connect. A network tier connects here, and never raises: it fails open on use."""

    async def aclose(self) -> None:
        """Nothing to release; a network tier closes its connections here (idempotent)."""

    async def get_many(self, keys: Sequence[str]) -> list[bytes | Lease | None]:
        entries, now = self._namespace(), time.monotonic()
        out: list[bytes | Lease | None] = []
        for key in keys:
            entry = self._live(entries, key, now)
            if entry is not None and entry.kind == DATA:
                self.stats.hits += 1
                out.append(entry.value)
                continue
            self.stats.misses += 1
            if entry is not None and entry.kind == LEASE:
                out.append(None)  # another reader is filling it: wait and read again
                continue
            token = next(self.server.tokens)  # absent or tombstoned: this reader fills it
            entries[key] = _Entry(LEASE, now + self.lease_ttl, token=token)
            out.append(Lease(token))
        return out

    async def fill_many(self, entries: Sequence[tuple[str, bytes, Lease]], ttl: float) -> None:
        held, now = self._namespace(), time.monotonic()
        for key, value, lease in entries:
            entry = self._live(held, key, now)
            if lease.token is None or entry is None or entry.kind != LEASE or entry.token != lease.token:
                self.stats.fills_dropped += 1  # invalidated, written or filled since the miss: stale
            elif value:
                held[key] = _Entry(DATA, now + ttl, value)
                self.stats.fills += 1
            else:
                del held[key]  # nothing to cache: give the lease up

    async def set_many(self, entries: Sequence[tuple[str, bytes, int]], ttl: float) -> None:
        held, now = self._namespace(), time.monotonic()
        for key, value, version in entries:
            entry = self._live(held, key, now)
            if entry is not None and (entry.kind == TOMBSTONE or (entry.kind == DATA and entry.version > version)):
                self.stats.fills_dropped += 1  # deleted a moment ago, or a newer version is cached
                continue
            held[key] = _Entry(DATA, now + ttl, value, version)  # replaces a lease: its fill will be dropped
            self.stats.fills += 1

    async def invalidate_many(self, keys: Sequence[str]) -> None:
        held, expires = self._namespace(), time.monotonic() + self.tombstone_ttl
        for key in keys:
            held[key] = _Entry(TOMBSTONE, expires)
        self.stats.invalidations += len(keys)

    async def clear(self) -> None:
        self._namespace().clear()


@dataclass(frozen=True, slots=True, kw_only=True)
class DictTierConfig:
    """``dict://NAME?prefix=app&lease=1s&tombstone=2s`` (``NAME`` picks the server; default ``default``)."""

    server: str = "default"
    prefix: str = "tierstore"
    lease: float = 1.0
    tombstone: float = 2.0

    def __post_init__(self) -> None:
        if not self.prefix or self.lease <= 0 or self.tombstone <= 0:
            raise ConfigError("DictTierConfig needs a prefix, lease > 0 and tombstone > 0")

    @classmethod
    def from_url(cls, url: str) -> DictTierConfig:
        from tierstore.backends import parse_duration, query_params

        parts = urlsplit(url)
        if parts.scheme.lower() != "dict":
            raise ConfigError(f"not a dict:// URL: {url!r}")
        p = query_params(url, {"prefix", "lease", "tombstone"})  # an unknown parameter is a ConfigError
        return cls(
            server=parts.netloc or "default",
            prefix=p.get("prefix", "tierstore"),
            lease=parse_duration(p["lease"], "lease") if "lease" in p else 1.0,
            tombstone=parse_duration(p["tombstone"], "tombstone") if "tombstone" in p else 2.0,
        )

    def build(self) -> DictTier:
        server = SERVERS.setdefault(self.server, DictServer())
        return DictTier(server, prefix=self.prefix, lease=self.lease, tombstone=self.tombstone)
