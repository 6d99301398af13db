"""``Session``: a per-request loader with an identity map.

Within one unit of work (one request, one job) each item is read at most once: ``get``/``get_many`` answer
keys already seen from the map, including keys found absent, and joins loaded through the session share it,
so ``session.load(orders, Order.customer)`` after ``session.get(Customer, ...)`` reads only the customers
not seen yet. Every read of a key returns the same object. Writes through the session update the map.

A session is cheap and meant to be short-lived: it never expires what it holds (that is the point), so
create one per request — ``async with Session(db) as s:`` (or ``db.session()``) — and drop it afterwards.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from tierstore.joins import key_arg, load_relations
from tierstore.model.entity import Entity
from tierstore.model.relations import Relation
from tierstore.model.schema import Key, Schema
from tierstore.query import _NO_PARTITION, Page, Query, SortCondition
from tierstore.queryresult import Paged

if TYPE_CHECKING:
    from tierstore.db import Database
    from tierstore.repository import QueryResult, Repository

__all__ = ["Session", "SessionQuery", "SessionRepository"]

T = TypeVar("T", bound=Entity)

_MISSING = object()


class Session:
    """An identity map over a :class:`~tierstore.Database` for one unit of work."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._map: dict[tuple[str, Key], Any] = {}
        self._repos: dict[type[Any], SessionRepository[Any]] = {}
        self.hits = 0  # reads answered by the identity map
        self.misses = 0  # keys that had to be read

    def __repr__(self) -> str:
        return f"Session(items={len(self._map)}, hits={self.hits}, misses={self.misses})"

    def __len__(self) -> int:
        return len(self._map)

    def repository(self, entity: type[T]) -> SessionRepository[T]:
        repo = self._repos.get(entity)
        if repo is None:
            repo = self._repos[entity] = SessionRepository(self, self.db.repository(entity))
        return repo

    async def get(self, entity: type[T], partition: Any, sort: Any = None) -> T | None:
        return await self.repository(entity).get(partition, sort)

    async def load(self, items: Sequence[T], *relations: Relation[Any]) -> list[T]:
        """Load ``relations`` onto ``items`` through this session's identity map."""
        if not items:
            return list(items)
        return await self.repository(type(items[0])).load(items, *relations)

    def forget(self, entity: type[Any] | None = None) -> None:
        """Drop what the map holds (of ``entity``, or everything)."""
        if entity is None:
            self._map.clear()
            return
        table = self.repository(entity).schema.table
        for k in [k for k in self._map if k[0] == table]:
            del self._map[k]

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.forget()


class SessionRepository(Generic[T]):
    """A repository view whose reads go through the session's identity map."""

    def __init__(self, session: Session, repo: Repository[T]) -> None:
        self.session = session
        self.repo = repo
        self.schema: Schema[T] = repo.schema
        self._table = repo.schema.table

    def __repr__(self) -> str:
        return f"SessionRepository[{self.schema.name}]"

    def _adopt(self, item: T) -> T:
        """The map's object for ``item``'s key: an earlier one if the key was seen, else ``item``."""
        k = (self._table, self.schema.key_of(item))
        known = self.session._map.get(k)
        if known is None:
            self.session._map[k] = item
            return item
        return known  # type: ignore[no-any-return]

    async def get(self, partition: Any, sort: Any = None) -> T | None:
        key = self.schema.key(partition, sort)
        m = self.session._map
        found = m.get((self._table, key), _MISSING)
        if found is not _MISSING:
            self.session.hits += 1
            return found  # type: ignore[no-any-return]
        self.session.misses += 1
        item = await self.repo.get(partition, sort)
        # A concurrent read in this session may have won the race: keep its object.
        return m.setdefault((self._table, key), item)

    async def get_many(self, keys: Iterable[Any]) -> list[T | None]:
        schema = self.schema
        flat = [schema.key_arg(k) for k in keys]
        m = self.session._map
        table = self._table
        todo: dict[Key, None] = {}
        for k in flat:
            if (table, k) not in m:
                todo[k] = None
        self.session.hits += len(flat) - len(todo)
        if todo:
            self.session.misses += len(todo)
            found = await self.repo.get_many([key_arg(schema, k) for k in todo])
            for k, item in zip(todo, found, strict=True):
                m.setdefault((table, k), item)
        return [m[(table, k)] for k in flat]

    def query(
        self,
        partition: Any = _NO_PARTITION,
        *,
        sort: SortCondition | None = None,
        index: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        reverse: bool = False,
    ) -> SessionQuery[T]:
        """Like ``Repository.query``; the query always runs, but the items it returns join the map
        (an item already in the map comes back as that object)."""
        return SessionQuery(self, self.repo.query(
            partition, sort=sort, index=index, limit=limit, cursor=cursor, reverse=reverse
        ))

    async def load(self, items: Sequence[T], *relations: Relation[Any]) -> list[T]:
        await load_relations(self.session, self.schema, list(items), relations)
        return list(items)

    async def put(
        self, item: T, *, if_not_exists: bool = False, expect_version: int | None = None,
        check_version: bool = True,
    ) -> T:
        stored = await self.repo.put(
            item, if_not_exists=if_not_exists, expect_version=expect_version, check_version=check_version
        )
        self.session._map[(self._table, self.schema.key_of(stored))] = stored
        return stored

    async def put_many(self, items: Iterable[T], *, check_version: bool = True) -> list[T]:
        stored = await self.repo.put_many(items, check_version=check_version)
        for s in stored:
            self.session._map[(self._table, self.schema.key_of(s))] = s
        return stored

    async def delete(self, partition: Any, sort: Any = None, *, expect_version: int | None = None) -> bool:
        existed = await self.repo.delete(partition, sort, expect_version=expect_version)
        self.session._map[(self._table, self.schema.key(partition, sort))] = None
        return existed


class SessionQuery(Paged[T]):
    """A prepared query inside a session: ``await`` for a page, ``async for``, ``.all()``, ``.join()``."""

    def __init__(self, repo: SessionRepository[T], result: QueryResult[T], joins: tuple[Relation[Any], ...] = ()):
        self.repo = repo
        self.result = result
        self._joins = joins

    def join(self, *relations: Relation[Any]) -> SessionQuery[T]:
        return SessionQuery(self.repo, self.result, self._joins + relations)

    def _start(self) -> Query:
        return self.result.query

    async def _page(self, q: Query) -> Page[T]:
        page = await self.result._page(q)
        page.items = [self.repo._adopt(i) for i in page.items]
        if self._joins and page.items:
            await load_relations(self.repo.session, self.repo.schema, page.items, self._joins)
        return page

    def __await__(self) -> Generator[Any, None, Page[T]]:
        return self._page(self.result.query).__await__()

    if not TYPE_CHECKING:  # at run time only, as on QueryResult

        def __iter__(self) -> None:
            raise self.result._not_awaited("iterated with for")

        def __len__(self) -> int:
            raise self.result._not_awaited("sized with len()")

        def __bool__(self) -> bool:
            raise self.result._not_awaited("tested for truth")
