"""``CachePolicy``: how a database uses its tiers (TTLs, negative caching, write mode, lease waits, breakers).

Checked when it is built: a bad value is a :class:`~tierstore.errors.ConfigError` before any tier is used.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

from tierstore.errors import ConfigError

__all__ = ["MAX_TTL", "CachePolicy"]

MAX_TTL = 10 * 365 * 86400
"""The longest TTL a policy takes (seconds): every tier can hold it as an expiry (memcached's absolute
``exptime`` is a 32-bit Unix time, which ends in 2038)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CachePolicy:
    """How the repository uses its tiers.

    ``ttl``: seconds an entry lives in a shared tier (L1 entries are also capped by the tier's own max age).
    ``ttl_jitter``: fraction by which TTLs are randomly shortened, so entries filled together do not expire
    together. ``negative_ttl``: cache "not found" for this long (``None``: off). ``write_mode``:
    ``"invalidate"`` (cache-aside) or ``"write_through"`` (versioned sets; an entity without a version field
    is invalidated instead, since unordered writers could not be told apart). ``lease_wait``/``lease_retries``:
    when another reader holds a key's lease, wait this long between re-reads before going to the store.
    ``coalesce``: merge concurrent reads of one tier in the same loop tick. ``breaker_failures``/
    ``breaker_cooldown``: the per-tier circuit breaker (network tiers also have one per node).
    ``invalidation_log``: poll interval (seconds) of the invalidation log in the store of record, which carries
    invalidations a shared tier could not take to every process (:mod:`tierstore.invalidation_log`); ``None``
    (the default): off, the writer alone replays them.
    """

    ttl: float = 300.0
    ttl_jitter: float = 0.1
    negative_ttl: float | None = None
    write_mode: Literal["invalidate", "write_through"] = "invalidate"
    lease_wait: float = 0.02
    lease_retries: int = 5
    coalesce: bool = True
    breaker_failures: int = 5
    breaker_cooldown: float = 1.0
    invalidation_log: float | None = None

    def __post_init__(self) -> None:
        for name in ("ttl", "ttl_jitter", "negative_ttl", "lease_wait", "breaker_cooldown"):
            value = getattr(self, name)
            if value is None and name == "negative_ttl":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ConfigError(f"CachePolicy.{name} must be a finite number of seconds, got {value!r}")
        if self.ttl > MAX_TTL or (self.negative_ttl is not None and self.negative_ttl > MAX_TTL):
            raise ConfigError(f"CachePolicy TTLs must be at most {MAX_TTL} s (10 years)")
        if self.ttl <= 0 or not 0 <= self.ttl_jitter < 1:
            raise ConfigError("CachePolicy needs ttl > 0 and 0 <= ttl_jitter < 1")
        if self.negative_ttl is not None and self.negative_ttl <= 0:
            raise ConfigError("CachePolicy.negative_ttl must be > 0 or None")
        if self.write_mode not in ("invalidate", "write_through"):
            raise ConfigError(f"unknown write_mode {self.write_mode!r}")
        if self.lease_wait < 0 or self.lease_retries < 0:
            raise ConfigError("CachePolicy.lease_wait and lease_retries must be >= 0")
        if self.invalidation_log is not None and self.invalidation_log <= 0:
            raise ConfigError("CachePolicy.invalidation_log is a poll interval in seconds (> 0), or None: off")
        if self.breaker_failures < 1 or self.breaker_cooldown <= 0:
            raise ConfigError("CachePolicy needs breaker_failures >= 1 and breaker_cooldown > 0")

    def jittered(self, ttl: float) -> float:
        return ttl * (1.0 - random.random() * self.ttl_jitter) if self.ttl_jitter else ttl
