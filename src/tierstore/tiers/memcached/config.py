"""``MemcachedTierConfig``: a memcached tier from a ``memcached://`` URL (or in code).

Every parameter is checked here, before any connection is made. Lease and tombstone lifetimes are at least
2 s: memcached's clock ticks once a second, so a 1 s item may expire at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tierstore.errors import ConfigError
from tierstore.tiers.memcached.protocol import ITEM_OVERHEAD
from tierstore.tiers.network import parse_hosts, valid_prefix

if TYPE_CHECKING:
    from tierstore.tiers.memcached.tier import MemcachedTier

__all__ = ["MemcachedTierConfig"]

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
        from tierstore.config import (
            normalize_credentials,
            parse_duration,
            parse_int,
            parse_size,
            query_params,
            redact_url,
        )

        url = normalize_credentials(url)
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
        from tierstore.tiers.memcached.tier import MemcachedTier

        return MemcachedTier(self)
