"""``RedisTierConfig``: a Redis tier from a ``redis://`` URL (or in code).

Every parameter is checked here, before any connection is made: a typo in a URL parameter is a
:class:`~tierstore.errors.ConfigError`, never a silently ignored option.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from tierstore.errors import ConfigError
from tierstore.tiers.network import parse_hosts, valid_prefix

if TYPE_CHECKING:
    from tierstore.tiers.redis.tier import RedisTier

__all__ = ["RedisTierConfig"]

_PARAMS = {
    "prefix", "timeout", "connect_timeout", "pool_size", "lease", "tombstone", "breaker_failures",
    "breaker_cooldown", "max_value", "max_pending", "coherence", "ping", "tls_ca", "tls_verify", "stale",
}


_DEFAULT_PING = 1.0


def _ping(value: str) -> float:
    """``ping``: the probe interval (``2s``); ``true`` keeps the default interval. The probe cannot be turned
    off: it is how a hung invalidation channel is told from a quiet one."""
    from tierstore.config import parse_duration

    word = value.strip().lower()
    if word in ("true", "yes", "on"):
        return _DEFAULT_PING
    if word in ("false", "no", "off"):
        raise ConfigError(
            "ping cannot be turned off (it tells a hung invalidation channel from a quiet one); "
            "give an interval such as ping=5s, or coherence=false to run without the channel"
        )
    return parse_duration(value, "ping")


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
    ping: float = _DEFAULT_PING
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
        from tierstore.config import (
            normalize_credentials,
            parse_bool,
            parse_duration,
            parse_int,
            parse_size,
            query_params,
            redact_url,
        )

        url = normalize_credentials(url)
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
            ping=_ping(p["ping"]) if "ping" in p else 1.0,
            tls_ca=p.get("tls_ca") or None,
            tls_verify=parse_bool(p["tls_verify"], "tls_verify") if "tls_verify" in p else True,
            stale=dur("stale", 0.0),
        )

    def build(self) -> RedisTier:
        from tierstore.tiers.redis.tier import RedisTier

        return RedisTier(self)
