"""``Collection``: several entity types of one table and partition, read in one query (a single-table design).

``db.collection(CustomerProfile, Order).query("c1")`` returns a ``Page[CustomerProfile | Order]``: every item of
the partition that is one of those types, in the order of the sort key attribute, each decoded as its own type
(by its type attribute, else by which entity's sort template its sort key fits). Items of other types in the
partition are left out, never an error.

The entities must share the table and the partition key template (``KeyTemplate("pk", "CUSTOMER#{id}")``), and
each must declare a sort template (a constant one, such as ``"PROFILE"``, is fine). On DynamoDB the read is one
``Query`` on the partition (pages as usual: ``limit`` counts the items returned, ``cursor`` continues). Other
stores read each entity's items of the partition and merge them in the order of their rendered sort keys.
Collection reads go to the store of record: they are not cached.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from tierstore.errors import ConfigError, ValidationError
from tierstore.model.schema import Schema, schema_of
from tierstore.query import Page, Query, decode_cursor, encode_cursor

if TYPE_CHECKING:
    from tierstore.db import Database

__all__ = ["Collection", "check_collection"]

T = TypeVar("T")
_NO_PARTITION: Any = object()


def check_collection(entities: tuple[type[Any], ...]) -> tuple[Schema[Any], ...]:
    """The schemas of ``entities`` if they can be read as one collection, else ``ConfigError``."""
    if len(entities) < 2 or len(set(entities)) != len(entities):
        raise ConfigError(f"a collection reads two or more distinct entity classes, got {entities!r}")
    schemas = tuple(schema_of(e) for e in entities)
    first = schemas[0]
    names = ", ".join(s.name for s in schemas)
    for s in schemas:
        if s.table != first.table:
            raise ConfigError(f"collection {names}: {s.name} is on table {s.table!r}, {first.name} on "
                              f"{first.table!r}; a collection reads one table", entity=s.name)
        p = s.templates.get((None, "partition"))
        if p is None or (None, "sort") not in s.templates:
            raise ConfigError(
                f"collection {names}: {s.name} needs key templates for its partition and sort keys "
                "(partition_key=KeyTemplate(...), sort_key=KeyTemplate(...))",
                entity=s.name,
            )
        p0 = first.templates[(None, "partition")]
        if (p.attribute, p.format) != (p0.attribute, p0.format):
            raise ConfigError(
                f"collection {names}: {s.name}'s partition template {p.attribute}={p.format!r} differs from "
                f"{first.name}'s {p0.attribute}={p0.format!r}",
                entity=s.name,
            )
        if s.templates[(None, "sort")].attribute != first.templates[(None, "sort")].attribute:
            raise ConfigError(f"collection {names}: the sort templates name different attributes", entity=s.name)
    if len({s.type_name for s in schemas}) != len(schemas):
        raise ConfigError(f"collection {names}: two entities share a type name")
    return schemas


def _sort_text(schema: Schema[Any], item: Any) -> str:
    tpl = schema.templates[(None, "sort")]
    return tpl.render(tuple(getattr(item, f) for f in tpl.fields), entity=schema.name)


class Collection(Generic[T]):
    """Entities sharing a table and partition, read together. Build with ``Database.collection``."""

    def __init__(self, db: Database, entities: tuple[type[Any], ...]) -> None:
        self._db = db
        self.schemas = check_collection(entities)

    def __repr__(self) -> str:
        return f"Collection({', '.join(s.name for s in self.schemas)})"

    def _partition(self, partition: Any, fields: dict[str, Any]) -> tuple[Any, ...]:
        first = self.schemas[0]
        pfields = first.partition
        if partition is _NO_PARTITION:
            if set(fields) != set(pfields):
                raise ValidationError(
                    f"a collection query reads one partition: pass {', '.join(pfields)} (as keywords or "
                    f"positionally), got {sorted(fields)}",
                    entity=first.name,
                )
            parts = tuple(fields[f] for f in pfields)
        else:
            if fields:
                raise ValidationError("pass the partition positionally or as keywords, not both", entity=first.name)
            parts = (partition,) if len(pfields) == 1 else partition
            if not isinstance(parts, tuple) or len(parts) != len(pfields):
                raise ValidationError(f"the partition key is {pfields}; pass a tuple of that length", entity=first.name)
        for value, name in zip(parts, pfields, strict=True):
            first.check_value(name, value)
        first.templates[(None, "partition")].render(parts, entity=first.name)
        return parts

    async def query(
        self, partition: Any = _NO_PARTITION, *, limit: int | None = None, cursor: str | None = None,
        consistent: bool = False, **fields: Any,
    ) -> Page[T]:
        """One page of the partition's items of these types, in sort key order."""
        parts = self._partition(partition, fields)
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise ValidationError(f"limit must be an int >= 1, got {limit!r}")
        if cursor is not None and not isinstance(cursor, str):
            raise ValidationError(f"cursor must be a str, got {type(cursor).__name__}")
        for schema in self.schemas:
            await self._db.ensure_schema(schema)
        key = Query(parts, index="collection:" + ",".join(s.type_name for s in self.schemas))
        store: Any = self._db.store
        native = getattr(store, "query_collection", None)
        if native is not None:
            page: Page[T] = await native(self.schemas, key, limit, cursor, consistent)
            return page
        return await self._merged(key, limit, cursor, consistent)

    async def _merged(self, key: Query, limit: int | None, cursor: str | None, consistent: bool) -> Page[T]:
        """Every entity's items of the partition, merged by rendered sort key (stores without one query)."""
        after = None if cursor is None else decode_cursor(key, cursor)
        if after is not None and (len(after) != 1 or not isinstance(after[0], str)):
            raise ValidationError("malformed cursor")
        rows: list[tuple[str, Any]] = []
        for schema in self.schemas:
            q: Query | None = Query(key.partition, consistent=consistent)
            while q is not None:
                page = await self._db.store.query(schema, q)
                rows += [(_sort_text(schema, it), it) for it in page.items]
                q = Query(key.partition, consistent=consistent, cursor=page.cursor) if page.cursor else None
        rows.sort(key=lambda r: r[0].encode())  # DynamoDB's order: UTF-8 bytes
        if after is not None:
            rows = [r for r in rows if r[0].encode() > after[0].encode()]
        if limit is not None and len(rows) > limit:
            return Page([r[1] for r in rows[:limit]], encode_cursor(key, [rows[limit - 1][0]]))
        return Page([r[1] for r in rows], None)
