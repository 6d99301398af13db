"""Change-data-capture invalidation: keep tierstore's caches coherent with writes that bypass tierstore.

Writers that do not go through tierstore — a batch job with boto3, a migration, another service, an operator
with psql — leave cached values stale until their TTL (see docs/consistency.md for the bound). An
:class:`Invalidator` tails the store's change log and invalidates each changed key through the path of
tierstore's own writes, so the lease guard orders those writes too. Sources, one per store family:

* :class:`~tierstore.cdc.dynamodb_streams.DynamoStreamsSource` — DynamoDB Streams (extra ``cdc-dynamodb``);
* :class:`~tierstore.cdc.postgres.PostgresLogicalSource` — a PostgreSQL logical slot (extra ``cdc-postgres``);
  :class:`~tierstore.cdc.pg_notify.PostgresNotifySource` — trigger + LISTEN/NOTIFY fallback (not durable);
* :class:`~tierstore.cdc.mysql_binlog.MySqlBinlogSource` — the MySQL/MariaDB row binlog (extra ``cdc-mysql``).

:func:`invalidate` is the public one-shot entry: call it after a write you made around tierstore.
The ``tierstore invalidator`` command runs an invalidator as a sidecar (docs/change-data-capture.md).
Sources are imported on first use, so importing this package needs no client library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tierstore.cdc.apply import invalidate, invalidate_keys, undelivered
from tierstore.cdc.base import Change, ChangeBatch, ChangeSource, Invalidator
from tierstore.cdc.checkpoint import Checkpoint, FileCheckpoint, MemoryCheckpoint
from tierstore.cdc.keys import EntityMap
from tierstore.cdc.metrics import InvalidatorStats

if TYPE_CHECKING:  # imported on first use at run time (their client libraries are optional extras)
    from tierstore.cdc.dynamodb_streams import DynamoStreamsSource
    from tierstore.cdc.mysql_binlog import MySqlBinlogSource
    from tierstore.cdc.pg_notify import PostgresNotifySource
    from tierstore.cdc.postgres import PostgresLogicalSource

__all__ = [
    "Change",
    "ChangeBatch",
    "ChangeSource",
    "Checkpoint",
    "DynamoStreamsSource",
    "EntityMap",
    "FileCheckpoint",
    "Invalidator",
    "InvalidatorStats",
    "MemoryCheckpoint",
    "MySqlBinlogSource",
    "PostgresLogicalSource",
    "PostgresNotifySource",
    "invalidate",
    "invalidate_keys",
    "undelivered",
]

_LAZY = {
    "DynamoStreamsSource": "tierstore.cdc.dynamodb_streams",
    "PostgresLogicalSource": "tierstore.cdc.postgres",
    "PostgresNotifySource": "tierstore.cdc.pg_notify",
    "MySqlBinlogSource": "tierstore.cdc.mysql_binlog",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tierstore.cdc' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
