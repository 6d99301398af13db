"""The query cache, configured like every other backend — by URL or a config object — and reported in stats.

A query cache (:class:`~tierstore.policies.base.QueryCache`) caches query pages and forgets them when a write
touches their partition. The implementation is :class:`~tierstore.policies.dax.DaxStylePolicy`'s query half
(per-partition generations, see its docstring); built from a config it runs on the database's own tiers (the
same objects that cache items, nearest first), so it needs no connection of its own and shares their breakers,
backlogs and L1 invalidation channel.

``connect(..., query_cache=...)`` takes ``None``/``False`` (off), ``True`` (defaults), a URL
``query://?ttl=5m&negative_ttl=30s&local_generation_ttl=1s``, a :class:`QueryCacheConfig`, or a ready
``QueryCache`` object (used as it is). ``db.stats()["query_cache"]`` holds its counters (``hits``, ``misses``,
``fills``, ``generation_bumps``, ``bypassed``, ``errors``) and ``db.reset_stats()`` zeroes them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tierstore.errors import ConfigError
from tierstore.policies.base import QueryCache
from tierstore.tiers.base import CacheTier

__all__ = ["QueryCacheConfig", "QueryCacheSpec", "build_query_cache", "query_cache_stats", "reset_query_cache_stats"]

_PARAMS = {"ttl", "negative_ttl", "local_generation_ttl"}

@dataclass(frozen=True, slots=True, kw_only=True)
class QueryCacheConfig:
    """``query://?ttl=5m&negative_ttl=30s&local_generation_ttl=1s``.

    ``ttl``: how long a cached page lives (writes to its partition end it sooner). ``negative_ttl``: how long an
    empty last page lives. ``local_generation_ttl``: how long an in-process tier may keep a partition's generation
    (the only staleness across processes when no invalidation channel evicts it first).
    """

    ttl: float = 300.0
    negative_ttl: float = 30.0
    local_generation_ttl: float = 1.0

    def __post_init__(self) -> None:
        for name in ("ttl", "negative_ttl", "local_generation_ttl"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"QueryCacheConfig.{name} must be > 0")

    @classmethod
    def from_url(cls, url: str) -> QueryCacheConfig:
        from tierstore.config import parse_duration, query_params, redact_url

        if not isinstance(url, str) or url.split("://", 1)[0].lower() != "query" or "://" not in url:
            raise ConfigError(f"expected a query cache URL like 'query://?ttl=5m', got {redact_url(str(url))!r}")
        p = query_params(url, _PARAMS)
        return cls(**{name: parse_duration(p[name], name) for name in _PARAMS if name in p})

    def build(self, tiers: Sequence[CacheTier]) -> QueryCache:
        """The query cache over ``tiers`` (the database's tiers, nearest first)."""
        if not tiers:
            raise ConfigError("the query cache keeps its pages in the cache tiers; configure at least one tier")
        from tierstore.policies.dax import DaxStylePolicy

        return DaxStylePolicy(
            tiers, query_ttl=self.ttl, negative_ttl=self.negative_ttl, local_generation_ttl=self.local_generation_ttl
        )


QueryCacheSpec = QueryCache | QueryCacheConfig | str | bool | None
"""What ``connect(query_cache=...)`` takes."""


def build_query_cache(spec: Any, tiers: Sequence[CacheTier]) -> QueryCache | None:
    """Resolve what ``connect(query_cache=...)`` was given."""
    if spec is None or spec is False:
        return None
    if spec is True:
        spec = QueryCacheConfig()
    elif isinstance(spec, str):
        spec = QueryCacheConfig.from_url(spec)
    if isinstance(spec, QueryCacheConfig):
        return spec.build(tiers)
    if isinstance(spec, QueryCache):
        return spec
    raise ConfigError(
        f"query_cache takes a URL ('query://?ttl=5m'), a QueryCacheConfig, True or a QueryCache, "
        f"not {type(spec).__name__}"
    )


def query_cache_stats(qc: QueryCache | None) -> dict[str, Any] | None:
    """The query cache's counters as a dict (``None``: no query cache, or one that keeps no counters)."""
    stats = getattr(qc, "stats", None)
    if stats is None:
        return None
    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        return dataclasses.asdict(stats)
    as_dict = getattr(stats, "as_dict", None)
    return dict(as_dict()) if callable(as_dict) else None


def reset_query_cache_stats(qc: QueryCache | None) -> None:
    stats = getattr(qc, "stats", None)
    if stats is None:
        return
    reset = getattr(stats, "reset", None)
    if callable(reset):
        reset()
    elif dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        for f in dataclasses.fields(stats):
            if isinstance(getattr(stats, f.name), int | float):
                setattr(stats, f.name, 0)
