"""Invalidating keys changed outside tierstore, through the same path tierstore's own writes take.

A committed write through a repository ends in ``Repository._after_write``: the query cache bumps the
generations of the written partitions and of every index (DAX-style), in-flight single-flight reads of the
keys are forgotten, and the tiered cache invalidates the keys farthest tier first — on Redis a tombstone
plus a voided lease, published on the invalidation channel so other processes' in-process tiers evict; on
Memcached the lease marker is replaced. :func:`invalidate` and :func:`invalidate_keys` enter exactly there
(:meth:`tierstore.Repository.invalidate_keys`), so the lease guard orders a foreign write like one of
tierstore's own: a reader that read the old row before the change was invalidated holds a voided lease, and
its fill is dropped.

Tiers fail open, so an invalidation a tier could not take is kept and replayed by the tiered path.
:func:`undelivered` says how many are waiting; the change-data-capture loop checkpoints only at 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tierstore.model.entity import Entity
from tierstore.model.schema import Key, Schema

if TYPE_CHECKING:
    from tierstore.db import Database

__all__ = ["invalidate", "invalidate_keys", "undelivered"]


async def invalidate(db: Database, entity: type[Entity], keys: Iterable[Any]) -> bool:
    """Invalidate ``keys`` of ``entity`` in every cache tier of ``db`` and in its query cache, as a write
    through tierstore would. ``keys`` are given as to ``get_many``: partitions, or ``(partition, sort)`` pairs.

    Call it after a write that bypassed tierstore has *committed*. Keys are validated before any I/O
    (``ValidationError``). Returns ``True`` when every tier took the invalidation, ``False`` when some tier
    could not and the invalidation is kept for replay (that tier is not read by this process until then).
    """
    return await db.invalidate(entity, *keys)


async def invalidate_keys(db: Database, schema: Schema[Any], keys: Sequence[Key]) -> None:
    """Invalidate validated key tuples of ``schema`` (the change-data-capture loop's entry)."""
    if keys:
        await db.repository(schema.cls).invalidate_keys(keys)


async def undelivered(db: Database) -> int:
    """Invalidations of ``db`` kept for replay because a tier (item or query cache) could not take them."""
    return await db.undelivered_invalidations()
