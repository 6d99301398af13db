"""Reading a whole query result from one store, page by page (for merges across shards)."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

from tierstore.model.schema import Schema
from tierstore.query import Query
from tierstore.stores.base import Store

__all__ = ["query_all"]

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
