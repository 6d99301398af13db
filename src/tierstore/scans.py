"""Explicit whole-table reads: ``repository.scan(...)`` and ``repository.count(...)``.

Nothing in tierstore scans implicitly: a query needs a partition, and a read of the whole table is a method
whose name says so. A scan reads every item of the table, page by page in the store's scan order (key order on
SQL and memory, DynamoDB's own order), and keeps those that satisfy ``where`` (evaluated in Python, so every
item is read and paid for). On a sharded store it reads every shard, one after the other, and is refused unless
the caller says ``scatter_gather=True``; a scan bypasses the caches. ``count`` counts the items of one
partition (a query read to the end, every item read) or, without a partition, of a scan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypeVar

from tierstore.errors import Unsupported, ValidationError
from tierstore.expressions.check import check_condition
from tierstore.expressions.memory import evaluate
from tierstore.model.entity import Entity
from tierstore.stores.base import Scannable, Store

if TYPE_CHECKING:
    from tierstore.repository import Repository

__all__ = ["count", "scan"]

T = TypeVar("T", bound=Entity)


def _stores(repo: Repository[Any], scatter_gather: bool, what: str) -> list[Store]:
    store = repo.store
    shards = getattr(store, "shards", None)
    if isinstance(shards, dict):
        if not scatter_gather:
            raise Unsupported(
                f"{what} on a sharded store reads every shard: pass scatter_gather=True to say so",
                entity=repo.schema.name, backend=store.name,
            )
        stores: list[Store] = list(shards.values())
    else:
        stores = [store]
    for s in stores:
        if not isinstance(s, Scannable):
            raise Unsupported(f"{what}: the store {s.name!r} cannot enumerate a table", entity=repo.schema.name,
                              backend=s.name)
    return stores


def scan(
    repo: Repository[T], where: Any = None, page_size: int = 1000, scatter_gather: bool = False
) -> AsyncIterator[T]:
    """Every item of the table (that satisfies ``where``); checked here, before any I/O."""
    schema = repo.schema
    cond = None if where is None else check_condition(schema, where)
    if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size < 1:
        raise ValidationError(f"page_size must be a positive int, got {page_size!r}", entity=schema.name)
    stores = _stores(repo, scatter_gather, "scan()")

    async def items() -> AsyncIterator[T]:
        await repo._ensure()
        for store in stores:
            scannable: Any = store
            after = None
            while True:
                page: list[T] = await scannable.scan(schema, after=after, limit=page_size)
                for item in page:
                    if repo._live(item) is not None and (cond is None or evaluate(cond, item)):
                        yield item
                if len(page) < page_size:
                    break
                after = schema.key_of(page[-1])

    return items()


async def count(
    repo: Repository[T], partition: Any = None, sort: Any = None, index: str | None = None, where: Any = None,
    scatter_gather: bool = False,
) -> int:
    """Items of ``partition`` (of the table or of ``index``), or of the whole table without one."""
    if partition is None:
        if sort is not None or index is not None:
            raise ValidationError("count() without a partition counts the whole table: sort= and index= need one",
                                  entity=repo.schema.name)
        return sum([1 async for _ in scan(repo, where, scatter_gather=scatter_gather)])
    result = repo.query(partition, sort=sort, index=index, where=where, consistent=False)
    return sum([1 async for _ in result])
