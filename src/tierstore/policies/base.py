"""The query-cache seam (DAX-style policy). The repository calls it; the policy decides what to cache."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from tierstore.model.schema import Key, Schema
from tierstore.query import Page, Query

__all__ = ["QueryCache"]

T = TypeVar("T")


@runtime_checkable
class QueryCache(Protocol):
    async def query(
        self, schema: Schema[T], query: Query, load: Callable[[], Awaitable[Page[T]]]
    ) -> Page[T]:
        """A page for ``query``: cached, or ``await load()`` and maybe cached. Never called when
        ``query.consistent`` is set."""
        ...

    async def after_write(self, schema: Schema[Any], keys: Sequence[Key], items: Sequence[Any]) -> None:
        """Called after every committed write of ``keys`` (``items``: stored values, ``None`` for deletes)
        so that cached query results of the written partitions stop being served."""
        ...
