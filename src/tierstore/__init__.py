"""tierstore: typed async repositories with tiered caching over DynamoDB and SQL stores.

This namespace is what a service author uses: ``connect``, entities and their keys, repositories, queries,
sessions, transactions, the cache policy, the errors, and the routing values and backends one passes to
``connect`` ready-made. What only someone writing a store, a cache tier or a query-cache policy needs
(the protocols, the schema, the cache envelope, the stats and helper functions) is in
:mod:`tierstore.backends`.

Importing tierstore does no I/O and configures nothing; backends are imported when first used.
"""

from __future__ import annotations

import typing as _typing

from tierstore.collection import Collection
from tierstore.db import Database, connect
from tierstore.errors import (
    BackendError,
    CircuitOpen,
    ConditionFailed,
    ConfigError,
    Mismatch,
    NotAwaited,
    NotFound,
    NotLoaded,
    PartialBatchError,
    SchemaMismatch,
    StoreError,
    StoreTimeout,
    Throttled,
    TierError,
    TierstoreError,
    TransactionCanceled,
    Unsupported,
    ValidationError,
)
from tierstore.expressions import Condition, Path, attr, not_
from tierstore.model import TTL, Entity, Index, KeyTemplate, Many, PartitionKey, Ref, SortKey, Version
from tierstore.query import Page, SortCondition, begins_with, between, eq, ge, gt, le, lt
from tierstore.repository import QueryResult, Repository
from tierstore.routing import Router
from tierstore.session import Session
from tierstore.stores.memory import MemoryStore
from tierstore.stores.sharded import ShardedStore, ShardedStoreConfig
from tierstore.tiers.memory import MemoryTier
from tierstore.tiers.policy import CachePolicy
from tierstore.tiers.sharded import ShardedTier, ShardedTierConfig
from tierstore.transaction import Pending, Transaction

__version__ = "0.1.0"

__all__ = [
    "TTL",
    "BackendError",
    "CachePolicy",
    "CircuitOpen",
    "Collection",
    "Condition",
    "ConditionFailed",
    "ConfigError",
    "Database",
    "Entity",
    "Index",
    "KeyTemplate",
    "Many",
    "MemoryStore",
    "MemoryTier",
    "Mismatch",
    "NotAwaited",
    "NotFound",
    "NotLoaded",
    "Page",
    "PartialBatchError",
    "PartitionKey",
    "Path",
    "Pending",
    "QueryResult",
    "Ref",
    "Repository",
    "Router",
    "SchemaMismatch",
    "Session",
    "ShardedStore",
    "ShardedStoreConfig",
    "ShardedTier",
    "ShardedTierConfig",
    "SortCondition",
    "SortKey",
    "StoreError",
    "StoreTimeout",
    "Throttled",
    "TierError",
    "TierstoreError",
    "Transaction",
    "TransactionCanceled",
    "Unsupported",
    "ValidationError",
    "Version",
    "__version__",
    "attr",
    "begins_with",
    "between",
    "connect",
    "eq",
    "ge",
    "gt",
    "le",
    "lt",
    "not_",
]

# Names that were importable from ``tierstore`` until 0.1.0 and now live in the backend author's surface.
# They keep working, with a DeprecationWarning, for one release.
_MOVED = {
    name: "tierstore.backends"
    for name in (
        "ABSENT",
        "CacheTier",
        "Codec",
        "Delete",
        "Lease",
        "Put",
        "Schema",
        "Store",
        "StoreStats",
        "TierStats",
        "TieredCache",
        "schema_of",
    )
}


if not _typing.TYPE_CHECKING:  # type checkers report the old names as missing, pointing users to the new home

    def __getattr__(name: str) -> object:
        home = _MOVED.get(name)
        if home is None:
            raise AttributeError(f"module 'tierstore' has no attribute {name!r}")
        import importlib
        import warnings

        warnings.warn(
            f"tierstore.{name} moved to {home}.{name}; import it from there "
            f"(the old name will be removed in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(home), name)
