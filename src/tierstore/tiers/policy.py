"""``CachePolicy``: how a database uses its tiers (TTLs, negative caching, write mode, lease waits, breakers).

Checked when it is built: a bad value is a :class:`~tierstore.errors.ConfigError` before any tier is used.

Per entity (:func:`entity_policy`): the class keyword ``cache=`` and the ``policies=`` map of ``connect()``
(which wins) give an entity a policy of its own, or ``False``: never cached. An entity's policy sets its TTLs,
negative caching, write mode and lease waits; what the tiers share — coalescing, breakers, the invalidation
log (:data:`DATABASE_FIELDS`) — is always the database's.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tierstore.errors import ConfigError

__all__ = ["DATABASE_FIELDS", "MAX_TTL", "CachePolicy", "check_policies", "entity_policy"]

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


DATABASE_FIELDS = ("coalesce", "breaker_failures", "breaker_cooldown", "invalidation_log")
"""Fields of a ``CachePolicy`` that belong to the tiers of a database, not to an entity: an entity's policy
takes them from the database's."""


def _check_choice(choice: Any, where: str, *, declared: bool = True) -> CachePolicy | bool:
    if choice is None and declared:  # no class keyword: the database's policy
        return True
    if isinstance(choice, bool | CachePolicy):
        return choice
    raise ConfigError(f"{where} takes a CachePolicy, True (the database's policy) or False (never cached), "
                      f"got {choice!r}")


def check_policies(policies: Any) -> dict[type, CachePolicy | bool]:
    """The ``policies=`` map of ``connect()``, checked: entity classes to a ``CachePolicy`` or a bool."""
    if policies is None:
        return {}
    if not isinstance(policies, Mapping):
        raise ConfigError(f"policies= takes a mapping of entity classes to CachePolicy or bool, got {policies!r}")
    out: dict[type, CachePolicy | bool] = {}
    for entity, choice in policies.items():
        if not isinstance(entity, type) or not hasattr(entity, "__tierstore_decl__"):
            raise ConfigError(f"policies= keys are entity classes, got {entity!r}")
        out[entity] = _check_choice(choice, f"policies[{entity.__name__}]", declared=False)
    return out


def entity_policy(
    database: CachePolicy, entity: type, policies: Mapping[type, CachePolicy | bool]
) -> CachePolicy | None:
    """The policy ``entity`` is cached under: its entry in ``policies`` (checked by :func:`check_policies`),
    else its class keyword ``cache=``, else ``database``. ``None``: never cached."""
    if entity in policies:
        choice = policies[entity]
    else:
        choice = _check_choice(getattr(entity, "__tierstore_decl__", {}).get("cache"), f"{entity.__name__} cache=")
    if choice is True:
        return database
    if choice is False:
        return None
    return dataclasses.replace(choice, **{name: getattr(database, name) for name in DATABASE_FIELDS})
