"""Projections: typed partial views of an entity (``get(..., fields=OrderSummary)``, ``query(..., fields=...)``).

A projection is a ``msgspec.Struct`` class whose fields are some of the entity's, with the same names and types::

    class OrderSummary(msgspec.Struct):
        order_id: str
        total_cents: int

It is checked when a read names it, before any I/O (:func:`check_projection`: a ``ValidationError`` naming every
unknown or wrong-typed field; the result is remembered per pair of classes). A projected ``get``/``get_many``
is the entity's read — served by the caches like any other, and what it reads from the store fills them with
the whole item — and each item is then cut down to the projection's fields (:class:`Projection`). A projected
``query`` that goes to the store (no query cache in the read, or ``consistent=True``; an entity without a TTL
field) reads only the projection's attributes plus the key attributes from a store that can
(:class:`~tierstore.stores.base.Projects`: DynamoDB, SQL) and decodes them straight into the projection class;
otherwise it is the entity's query cut down. The caches therefore never hold a partial item, and a projection
never sees fields older than a full read would.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import msgspec

from tierstore.errors import ValidationError
from tierstore.model.schema import Schema
from tierstore.query import Page, Query
from tierstore.queryresult import Paged
from tierstore.stores.base import Projects

if TYPE_CHECKING:
    from tierstore.queryresult import QueryResult

__all__ = ["ProjectedResult", "Projection", "check_projection"]

P = TypeVar("P")

_CHECKED: dict[tuple[type[Any], type[Any]], Projection[Any]] = {}


def _plain(tp: Any) -> Any:
    """``tp`` without ``Annotated`` markers (``PartitionKey[str]`` is ``str``)."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = tp.__origin__
    return tp


@dataclasses.dataclass(frozen=True, slots=True)
class Projection(Generic[P]):
    """A checked projection class and the entity fields it takes."""

    cls: type[P]
    names: tuple[str, ...]

    def of(self, item: Any) -> P:
        """The projection of ``item`` (an entity instance)."""
        cls: Callable[..., P] = self.cls
        return cls(**{n: getattr(item, n) for n in self.names})


def check_projection(schema: Schema[Any], cls: Any) -> Projection[Any]:
    """The projection of ``schema``'s entity onto ``cls``, or a ``ValidationError`` saying what does not fit."""
    key = (schema.cls, cls)
    done = _CHECKED.get(key) if isinstance(cls, type) else None
    if done is not None:
        return done
    if not (isinstance(cls, type) and issubclass(cls, msgspec.Struct)):
        raise ValidationError(
            f"fields= takes a msgspec.Struct class whose fields are some of {schema.name}'s, got {cls!r:.60}",
            entity=schema.name,
        )
    unknown: list[str] = []
    wrong: list[str] = []
    names: list[str] = []
    for info in msgspec.structs.fields(cls):
        want = schema.field_types.get(info.name)
        if want is None:
            unknown.append(info.name)
        elif _plain(info.type) != want:
            wrong.append(f"{info.name} is {_name(_plain(info.type))} in {cls.__name__}, {_name(want)} in {schema.name}")
        else:
            names.append(info.name)
    problems = []
    if unknown:
        problems.append(f"{schema.name} has no field {', '.join(map(repr, unknown))}")
    if wrong:
        problems.append("; ".join(wrong))
    if problems:
        raise ValidationError(f"projection {cls.__name__}: {'; '.join(problems)}", entity=schema.name)
    if not names:
        raise ValidationError(f"projection {cls.__name__} has no fields", entity=schema.name)
    projection: Projection[Any] = Projection(cls, tuple(names))
    _CHECKED[key] = projection
    return projection


def _name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else repr(tp)


class ProjectedResult(Paged[P]):
    """A query whose items are projections: ``await`` for one :class:`Page` of them, ``async for`` for every one,
    ``.pages()``, ``.all()`` — as :class:`~tierstore.queryresult.QueryResult`."""

    def __init__(self, result: QueryResult[Any], projection: Projection[P]) -> None:
        self._result = result
        self._projection = projection

    def __repr__(self) -> str:
        return f"ProjectedResult({self._result.repo.schema.name} as {self._projection.cls.__name__})"

    def _cut(self, page: Page[Any]) -> Page[P]:
        of = self._projection.of
        return Page([of(i) for i in page.items], page.cursor, page.skipped)

    async def _page(self, q: Query) -> Page[P]:
        repo = self._result.repo
        store = repo.store
        # The store reads only the projection's attributes when no cache takes part in the read (the query
        # cache holds whole items; a projected read never fills it) and no TTL field must be checked.
        if isinstance(store, Projects) and repo.schema.ttl is None and (repo._query_cache is None or q.consistent):
            if not repo._ready:
                await repo._ensure()
            projection = self._projection
            return await store.query_projected(repo.schema, q, projection.cls, projection.names)
        return self._cut(await self._result._page(q))

    async def _first(self) -> Page[P]:
        return await self._page(self._result.query)

    def __await__(self) -> Generator[Any, None, Page[P]]:
        return self._first().__await__()

    def _start(self) -> Query:
        return self._result.query
