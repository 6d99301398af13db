"""tierstore: typed async repositories with tiered caching over DynamoDB and SQL stores.

Importing tierstore does no I/O and configures nothing; backends are imported when first used.
"""

from tierstore.codecs import ABSENT, Codec
from tierstore.db import Database, Transaction, connect
from tierstore.errors import (
    BackendError,
    CircuitOpen,
    ConditionFailed,
    ConfigError,
    NotFound,
    NotLoaded,
    PartialBatchError,
    StoreError,
    Throttled,
    TierError,
    TierstoreError,
    TransactionCanceled,
    Unsupported,
    ValidationError,
)
from tierstore.joins import Many
from tierstore.model import TTL, Entity, Index, PartitionKey, Ref, Schema, SortKey, Version, schema_of
from tierstore.query import Page, SortCondition, begins_with, between, eq, ge, gt, le, lt
from tierstore.repository import QueryResult, Repository
from tierstore.routing import Router
from tierstore.session import Session
from tierstore.stats import StoreStats, TierStats
from tierstore.stores.base import Delete, Put, Store
from tierstore.stores.memory import MemoryStore
from tierstore.stores.sharded import ShardedStore, ShardedStoreConfig
from tierstore.tiers.base import CacheTier, Lease
from tierstore.tiers.memory import MemoryTier
from tierstore.tiers.policy import CachePolicy
from tierstore.tiers.sharded import ShardedTier, ShardedTierConfig
from tierstore.tiers.tiered import TieredCache

__version__ = "0.1.0"

__all__ = [
    "ABSENT",
    "TTL",
    "BackendError",
    "CachePolicy",
    "CacheTier",
    "CircuitOpen",
    "Codec",
    "ConditionFailed",
    "ConfigError",
    "Database",
    "Delete",
    "Entity",
    "Index",
    "Lease",
    "Many",
    "MemoryStore",
    "MemoryTier",
    "NotFound",
    "NotLoaded",
    "Page",
    "PartialBatchError",
    "PartitionKey",
    "Put",
    "QueryResult",
    "Ref",
    "Repository",
    "Router",
    "Schema",
    "Session",
    "ShardedStore",
    "ShardedStoreConfig",
    "ShardedTier",
    "ShardedTierConfig",
    "SortCondition",
    "SortKey",
    "Store",
    "StoreError",
    "StoreStats",
    "Throttled",
    "TierError",
    "TierStats",
    "TieredCache",
    "TierstoreError",
    "Transaction",
    "TransactionCanceled",
    "Unsupported",
    "ValidationError",
    "Version",
    "__version__",
    "begins_with",
    "between",
    "connect",
    "eq",
    "ge",
    "gt",
    "le",
    "lt",
    "schema_of",
]
