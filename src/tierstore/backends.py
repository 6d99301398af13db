"""The backend author's surface: what you implement to add a store, a cache tier or a query-cache policy,
and the pieces tierstore's own backends are built from.

A service author never needs this module (``tierstore`` has everything to declare entities, connect and
read and write). Import from here when you write a backend::

    from tierstore.backends import Key, Page, Query, Schema, Store, StoreStats

The seams (``typing.Protocol``; implement them structurally, no base class needed):

- :class:`Store` — the store of record; :class:`Scannable` adds the enumeration and exact restore that
  resharding needs; :class:`ScatterGather` a store over several shards that can query them all;
  :class:`QueryMany` a store that reads many partitions in one request (one-to-many joins; without it,
  :func:`query_each` asks one query per partition). Writes of a transaction arrive as :data:`WriteOp` values
  (:class:`Put`, :class:`Delete`, :class:`Update`, :class:`Check`).
- :class:`CacheTier` — a cache tier holding opaque bytes, with :class:`Lease`-guarded fills;
  :class:`LocalTier` an in-process tier the repository reads synchronously; :class:`InvalidationFeed` a shared
  tier that publishes its invalidations (other processes' in-process tiers subscribe to it);
  :class:`Backlogged` a tier that keeps undelivered invalidations per node (instead of raising) and says how
  many it owes.
- :class:`QueryCache` — a policy that caches query pages (``connect(query_cache=...)``).

What stores and tiers work with: :class:`Schema` (from :func:`schema_of`) describes an entity, keys are
flat :data:`Key` tuples; :class:`Query` and :class:`Page` with :func:`encode_cursor` / :func:`decode_cursor`
(opaque cursors bound to their query); :func:`sort_matches` and :func:`evaluate` (a query's ``where``, a write's
``when``) and :func:`apply_changes` (an update's :class:`Changes`) for stores without a query language;
:class:`Codec` and :data:`ABSENT` are the cache envelope a tier stores; :class:`StoreStats` and
:class:`TierStats` are the counters every backend keeps; :class:`TieredCache` runs the tiers of a database.

Building blocks of network tiers: :class:`NodeGuard` (a node's circuit :class:`Breaker` and its backlog of
invalidations still owed, replayed before the node is trusted again), :class:`NodeTier` (the per-node
bookkeeping the Redis and memcached tiers share), :func:`parse_hosts` and :func:`valid_prefix`; the stored
entry format is :mod:`tierstore.tiers.entry`.

Helpers: :class:`BackendConfig` (a config's ``from_url``/``build``) with :func:`query_params`,
:func:`parse_duration`, :func:`parse_size`, :func:`parse_int`, :func:`parse_bool` and :func:`redact_url`
for reading backend URLs; :class:`Backoff` and :func:`retry_async` (capped exponential backoff with full
jitter); :func:`gather_all` (bounded concurrency, the first failure cancels the rest); :func:`query_all`
(a whole query result from one store, page by page).
"""

from __future__ import annotations

from tierstore.codecs import ABSENT, Codec, codec_for
from tierstore.concurrency import gather_all
from tierstore.config import (
    BackendConfig,
    parse_bool,
    parse_duration,
    parse_int,
    parse_size,
    query_params,
    redact_url,
)
from tierstore.expressions.memory import evaluate
from tierstore.expressions.update import Changes, apply_changes
from tierstore.model.keys import Key, KeyPart
from tierstore.model.schema import Schema, schema_of
from tierstore.policies.base import QueryCache
from tierstore.query import Page, Query, decode_cursor, encode_cursor, sort_matches
from tierstore.retry import Backoff, retry_async
from tierstore.stats import StoreStats, TierStats
from tierstore.stores.base import Check, Delete, Put, QueryMany, Scannable, ScatterGather, Store, Update, WriteOp
from tierstore.stores.paging import query_all, query_each
from tierstore.tiers.base import Backlogged, CacheTier, InvalidationFeed, Lease, LocalTier
from tierstore.tiers.health import Breaker, NodeGuard
from tierstore.tiers.network import NodeTier, parse_hosts, valid_prefix
from tierstore.tiers.tiered import TieredCache

__all__ = [
    "ABSENT",
    "BackendConfig",
    "Backlogged",
    "Backoff",
    "Breaker",
    "CacheTier",
    "Changes",
    "Check",
    "Codec",
    "Delete",
    "InvalidationFeed",
    "Key",
    "KeyPart",
    "Lease",
    "LocalTier",
    "NodeGuard",
    "NodeTier",
    "Page",
    "Put",
    "Query",
    "QueryCache",
    "QueryMany",
    "Scannable",
    "ScatterGather",
    "Schema",
    "Store",
    "StoreStats",
    "TierStats",
    "TieredCache",
    "Update",
    "WriteOp",
    "apply_changes",
    "codec_for",
    "decode_cursor",
    "encode_cursor",
    "evaluate",
    "gather_all",
    "parse_bool",
    "parse_duration",
    "parse_hosts",
    "parse_int",
    "parse_size",
    "query_all",
    "query_each",
    "query_params",
    "redact_url",
    "retry_async",
    "schema_of",
    "sort_matches",
    "valid_prefix",
]
