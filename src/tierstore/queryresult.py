"""``QueryResult``: a prepared query of a repository — one page when awaited, every item with ``async for``,
relations loaded with ``.join(...)``."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Generator
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

from tierstore.errors import NotAwaited
from tierstore.joins import check_relations, load_relations
from tierstore.model.entity import Entity
from tierstore.model.relations import Relation
from tierstore.query import Page, Query

if TYPE_CHECKING:
    from tierstore.repository import Repository

__all__ = ["Paged", "QueryResult"]

T = TypeVar("T", bound=Entity)
X = TypeVar("X")


class Paged(Generic[X]):
    """What every prepared query shares: ``.pages()``, ``async for`` over every item, ``.all()``. A subclass says
    where it starts (``_start``) and how one page is read (``_page``)."""

    def _start(self) -> Query:
        raise NotImplementedError

    async def _page(self, q: Query) -> Page[X]:
        raise NotImplementedError

    async def pages(self) -> AsyncIterator[Page[X]]:
        q = self._start()
        while True:
            page = await self._page(q)
            yield page
            if page.cursor is None:
                return
            q = dataclasses.replace(q, cursor=page.cursor)

    async def __aiter__(self) -> AsyncIterator[X]:
        async for page in self.pages():
            for item in page.items:
                yield item

    async def all(self) -> list[X]:
        """Every item of every page (the whole result in memory: prefer ``async for`` on large ones)."""
        items: list[X] = []
        async for page in self.pages():
            items += page.items
        return items


class QueryResult(Paged[T]):
    """A prepared query: ``await`` for one page, ``async for`` for all items, ``.join(...)`` to load relations."""

    def __init__(self, repo: Repository[T], query: Query, joins: tuple[Relation[Any], ...] = ()) -> None:
        self.repo = repo
        self.query = query
        self._joins = joins

    def __repr__(self) -> str:
        return f"QueryResult({self.repo.schema.name}, {self.query})"

    def join(self, *relations: Relation[Any]) -> QueryResult[T]:
        """Load these relations onto every item of each page (batched, no N+1).

        Nested: ``join(Order.customer, Customer.account)`` loads level by level. The path is checked here,
        before any query runs.
        """
        check_relations(self.repo.schema, self._joins + relations)
        return QueryResult(self.repo, self.query, self._joins + relations)

    async def _page(self, q: Query) -> Page[T]:
        page = await self.repo._query_page(q)
        if self._joins and page.items:
            await load_relations(self.repo._context, self.repo.schema, page.items, self._joins)
        return page

    def __await__(self) -> Generator[Any, None, Page[T]]:
        return self._page(self.query).__await__()

    if not TYPE_CHECKING:  # at run time only: a type checker already reports these mistakes itself

        def __iter__(self) -> NoReturn:
            raise self._not_awaited("iterated with for")

        def __len__(self) -> NoReturn:
            raise self._not_awaited("sized with len()")

        def __bool__(self) -> NoReturn:
            raise self._not_awaited("tested for truth")

    def _not_awaited(self, how: str) -> NotAwaited:
        name = self.repo.schema.name
        return NotAwaited(
            f"a query result was {how} without being awaited: `page = await repo.query(...)` gives one Page "
            "(iterate page.items), `async for item in repo.query(...)` every item, "
            "`await repo.query(...).all()` a list",
            entity=name,
        )

    def _start(self) -> Query:
        return self.query
