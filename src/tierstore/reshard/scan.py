"""Reading and writing a shard the way resharding needs: every item in key order, page by page, and
items restored exactly as stored (version fields kept).

Both come from the store's :class:`~tierstore.stores.base.Scannable` protocol (``scan`` and
``restore_many``), which every built-in store implements. A store without it cannot be enumerated and
raises ``Unsupported``; for an entity with no version field, ``put_many`` is already an exact copy and is
used instead of ``restore_many``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TypeVar

from tierstore.errors import Unsupported
from tierstore.model.schema import Key, Schema
from tierstore.stores.base import Scannable, Store

__all__ = ["restore_many", "scan_all", "scan_page"]

T = TypeVar("T")


async def scan_page(store: Store, schema: Schema[T], after: Key | None, limit: int) -> list[T]:
    """Up to ``limit`` items of ``schema``'s table on ``store``, in key order, after ``after``."""
    if isinstance(store, Scannable):
        return await store.scan(schema, after=after, limit=limit)
    raise Unsupported(
        f"resharding needs to enumerate {schema.table} on {store!r}; this store offers no scan()",
        entity=schema.name,
        backend=store.name,
    )


async def restore_many(store: Store, schema: Schema[T], items: Sequence[T]) -> None:
    """Write ``items`` exactly as given (version fields kept), replacing what is there."""
    if not items:
        return
    if isinstance(store, Scannable):
        await store.restore_many(schema, items)
        return
    if schema.version is None:
        await store.put_many(schema, items)  # nothing for put_many to change: an exact copy
        return
    raise Unsupported(
        f"{schema.name} has a version field and {store!r} offers no restore_many(): copying with put_many "
        f"would reset every version",
        entity=schema.name,
        backend=store.name,
    )


async def scan_all(store: Store, schema: Schema[T], batch: int, after: Key | None = None) -> AsyncIterator[list[T]]:
    """Every item after ``after``, ``batch`` at a time: one page in memory, whatever the table size."""
    while True:
        page = await scan_page(store, schema, after, batch)
        if not page:
            return
        yield page
        if len(page) < batch:
            return
        after = schema.key_of(page[-1])
