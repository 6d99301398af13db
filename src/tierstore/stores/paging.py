"""Reading a whole query result from one store, page by page (for merges across shards), and the items of many
partitions one query each (for stores without :class:`~tierstore.stores.base.QueryMany`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, TypeVar

from tierstore.concurrency import gather_all
from tierstore.model.schema import Schema
from tierstore.query import Query
from tierstore.stores.base import Store

__all__ = ["query_all", "query_each"]

T = TypeVar("T")


async def query_all(store: Store, schema: Schema[T], query: Query) -> tuple[list[T], int]:
    """Every item of ``query`` on one store, page by page, stopping at ``query.limit`` items; and the
    number of pages (round trips) it took."""
    out: list[T] = []
    q: Query = query
    pages = 0
    while True:
        page = await store.query(schema, q)
        pages += 1
        out.extend(page.items)
        if page.cursor is None or (query.limit is not None and len(out) >= query.limit):
            return (out if query.limit is None else out[: query.limit]), pages
        q = dataclasses.replace(q, cursor=page.cursor)


async def query_each(
    store: Store, schema: Schema[T], partitions: Sequence[tuple[Any, ...]], *, index: str | None = None,
    limit: int | None = None, reverse: bool = False, concurrency: int = 16,
) -> list[list[T]]:
    """What :meth:`~tierstore.stores.base.QueryMany.query_many` answers, asked as one query per partition
    (read to the end, or to ``limit`` items), ``concurrency`` at a time; the first failure cancels the rest."""

    async def one(partition: tuple[Any, ...]) -> list[T]:
        items, _ = await query_all(store, schema, Query(partition, index=index, limit=limit, reverse=reverse))
        return items

    return await gather_all([one(p) for p in partitions], concurrency)
