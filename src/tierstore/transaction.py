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
from tierstore.repository import Repository, RepositoryContext, WriteAhead
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
        # Per entity: its repository, the keys written and where each op's result goes.
        groups: dict[type[Entity], tuple[Repository[Any], list[Key], list[int]]] = {}
        for i, op in enumerate(self.ops):
            entity = type(op.item) if isinstance(op, Put) else op.entity
            group = groups.get(entity)
            if group is None:
                group = groups[entity] = (context.repository(entity), [], [])
            group[1].append(group[0].schema.key_of(op.item) if isinstance(op, Put) else op.key)
            group[2].append(i)
        writes = [(repo, repo.begin_write(keys), idx) for repo, keys, idx in groups.values()]
        if context.cache.tiers or context.query_cache is not None:
            # One task for the commit and every entity's maintenance: cancelling the caller cuts none short.
            self.results = await context.cache.shielded(self._commit(writes))
        else:
            self.results = await self._commit(writes)
        return self.results

    async def _commit(self, writes: list[tuple[Repository[Any], WriteAhead, list[int]]]) -> list[Any]:
        try:
            results = await self._context.store.transact(self.ops)
        except BaseException:
            # Outcome unknown (or a condition failed on a value the caller read from a cache): forget every key.
            await self._maintenance(writes, None)
            raise
        await self._maintenance(writes, results)
        return results

    async def _maintenance(
        self, writes: list[tuple[Repository[Any], WriteAhead, list[int]]], results: list[Any] | None
    ) -> None:
        """Every written entity's cache maintenance, in one piece (one task: no entity's is skipped)."""
        for repo, write, idx in writes:
            stored = None if results is None else [
                results[i] if isinstance(self.ops[i], Put) else None for i in idx
            ]
            await repo._maintenance(write, stored)

    async def __aenter__(self) -> Transaction:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is None:
            await self.commit()
