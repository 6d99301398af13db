"""Cache tiers and the tiered path over them.

A tier author builds on: the seam (:class:`CacheTier`, :class:`LocalTier`, :class:`Lease`,
:class:`InvalidationFeed`), the fail-open bookkeeping (:class:`Breaker`, :class:`NodeGuard`), what the shared
network tiers have in common (:class:`NodeTier`, :func:`parse_hosts`, :func:`valid_prefix`) and the stored
entry format of :mod:`tierstore.tiers.entry`.
"""

from tierstore.tiers.base import CacheTier, InvalidationFeed, Lease, LocalTier
from tierstore.tiers.health import Breaker, NodeGuard
from tierstore.tiers.network import NodeTier, parse_hosts, valid_prefix

__all__ = [
    "Breaker", "CacheTier", "InvalidationFeed", "Lease", "LocalTier", "NodeGuard", "NodeTier", "parse_hosts",
    "valid_prefix",
]
