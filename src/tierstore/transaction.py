"""``Transaction``: writes collected in an ``async with`` block and committed all or nothing.

Each action is validated when it is added (before any I/O), and an item may be touched once. On commit the
store applies every action atomically (``Store.transact``); then each written entity's repository runs its
usual after-write step (query cache, tiers, in-flight reads), exactly as after its own ``put``/``delete``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from tierstore.errors import ValidationError
from tierstore.model.entity import Entity
from tierstore.model.schema import Key, Schema, schema_of
from tierstore.repository import RepositoryContext
from tierstore.stores.base import Delete, Put, WriteOp

__all__ = ["Transaction"]


class Transaction:
    """Writes collected and committed atomically when the ``async with`` block exits without error."""

    def __init__(self, context: RepositoryContext) -> None:
        self._context = context
        self.ops: list[WriteOp] = []
        self._keys: set[tuple[str, Key]] = set()
        self.results: list[Any] = []

    def _claim(self, schema: Schema[Any], key: Key) -> None:
        if (schema.table, key) in self._keys:
            raise ValidationError("a transaction may touch an item once", entity=schema.name, key=key)
        self._keys.add((schema.table, key))

    def put(self, item: Entity, *, if_not_exists: bool = False, expect_version: int | None = None) -> None:
        schema = schema_of(type(item))
        schema.validate_item(item)
        if expect_version is not None:
            schema.check_expect_version(expect_version)
        self._claim(schema, schema.key_of(item))
        self.ops.append(Put(item, if_not_exists, expect_version))

    def delete(
        self, entity: type[Entity], partition: Any, sort: Any = None, *, expect_version: int | None = None
    ) -> None:
        schema = schema_of(entity)
        key = schema.key(partition, sort)
        if expect_version is not None:
            schema.check_expect_version(expect_version)
        self._claim(schema, key)
        self.ops.append(Delete(entity, key, expect_version))

    async def commit(self) -> list[Any]:
        if not self.ops:
            return []
        context = self._context
        schemas = {schema_of(type(op.item) if isinstance(op, Put) else op.entity) for op in self.ops}
        for schema in schemas:
            await context.ensure_schema(schema)
        self.results = await context.store.transact(self.ops)
        for op, stored in zip(self.ops, self.results, strict=True):
            if isinstance(op, Put):
                repo = context.repository(type(op.item))
                await repo._after_write([repo.schema.key_of(op.item)], [stored])
            else:
                repo = context.repository(op.entity)
                await repo._after_write([op.key], [None])
        return self.results

    async def __aenter__(self) -> Transaction:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is None:
            await self.commit()
