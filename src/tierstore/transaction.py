"""``Transaction``: writes collected in an ``async with`` block and committed all or nothing.

Each action is validated when it is added (before any I/O), and an item may be touched once. On commit the
store applies every action atomically (``Store.transact``); then each written entity's repository runs its
usual after-write step (query cache, tiers, in-flight reads), exactly as after its own ``put``/``delete``.

``tx.put`` returns a :class:`Pending` handle: its ``result()`` is the item as stored (new version included)
once the block has committed. ``tx.update`` changes some fields of a stored item (as ``Repository.update``) and
``tx.check`` makes the commit depend on a condition over an item it does not write; neither returns the item
(DynamoDB's transactions return none), and after a commit the caches forget an updated key (a check touches no
cache). A rejected transaction's ``TransactionCanceled`` names each action that failed (its position, kind,
entity and key) and why; then every key of the transaction, checked ones included, is forgotten by the caches
(the caller may have acted on a stale cached value).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Generic, TypeVar

from tierstore.errors import MAX_KEY, TransactionCanceled, Unsupported, ValidationError, _safe_repr, bounded
from tierstore.expressions.ast import Condition
from tierstore.expressions.check import check_condition
from tierstore.expressions.update import check_changes
from tierstore.model.entity import Entity
from tierstore.model.schema import Key, Schema, schema_of
from tierstore.repository import Repository, RepositoryContext, WriteAhead
from tierstore.stores.base import Check, Delete, Put, Update, WriteOp

__all__ = ["Pending", "Transaction"]

E = TypeVar("E", bound=Entity)


class Pending(Generic[E]):
    """What ``tx.put(item)`` returns: the stored item, once the transaction has committed.

    ``result()`` before the commit, or after a transaction that did not commit, is a ``ValidationError``
    saying so (the item was not written). ``done`` tells whether the result is there."""

    __slots__ = ("_index", "_tx")

    def __init__(self, tx: Transaction, index: int) -> None:
        self._tx = tx
        self._index = index

    def __repr__(self) -> str:
        state = "stored" if self.done else "not committed"
        return f"Pending({type(self._tx.ops[self._index].item).__name__}, {state})"  # type: ignore[union-attr]

    @property
    def done(self) -> bool:
        return bool(self._tx.results) and self._tx.failed is None

    def result(self) -> E:
        """The item as the store holds it after the commit (its new version included)."""
        if self._tx.failed is not None:
            raise ValidationError(
                f"the transaction did not commit ({type(self._tx.failed).__name__}): nothing was written"
            )
        if not self._tx.results:
            raise ValidationError(
                "the transaction has not committed yet: the stored item is there once the "
                "`async with db.transaction()` block has ended (or after `await tx.commit()`)"
            )
        return self._tx.results[self._index]  # type: ignore[no-any-return]


class Transaction:
    """Writes collected and committed atomically when the ``async with`` block exits without error."""

    def __init__(self, context: RepositoryContext) -> None:
        self._context = context
        self.ops: list[WriteOp] = []
        self._keys: set[tuple[str, Key]] = set()
        self.results: list[Any] = []
        self.failed: BaseException | None = None

    def _claim(self, schema: Schema[Any], key: Key) -> None:
        if (schema.table, key) in self._keys:
            raise ValidationError("a transaction may touch an item once", entity=schema.name, key=key)
        self._keys.add((schema.table, key))

    def put(
        self, item: E, *, if_not_exists: bool = False, expect_version: int | None = None,
        check_version: bool = True,
    ) -> Pending[E]:
        """Add a put; the returned handle's ``result()`` is the stored item once the transaction commits. Its
        version is checked as by ``Repository.put`` (``check_version=False`` opts out)."""
        if not isinstance(item, Entity):
            raise ValidationError(f"a transaction puts entities, got {type(item).__name__}")
        schema = schema_of(type(item))
        schema.validate_item(item)
        expect = schema.write_condition(item, if_not_exists, expect_version, check_version)
        self._claim(schema, schema.key_of(item))
        self.ops.append(Put(item, if_not_exists, expect))
        return Pending(self, len(self.ops) - 1)

    def delete(
        self, entity: type[Entity], partition: Any, sort: Any = None, *, expect_version: int | None = None
    ) -> None:
        schema = schema_of(entity)
        key = schema.key(partition, sort)
        if expect_version is not None:
            schema.check_expect_version(expect_version)
        self._claim(schema, key)
        self.ops.append(Delete(entity, key, expect_version))

    def update(
        self,
        entity: type[Entity],
        partition: Any,
        sort: Any = None,
        *,
        set: Mapping[str, Any] | None = None,  # the keyword users write
        add: Mapping[str, int | float] | None = None,
        remove: Iterable[str] = (),
        append: Mapping[str, Iterable[Any]] | None = None,
        when: Condition | bool | None = None,
    ) -> None:
        """Add a partial update of a stored item, checked as by ``Repository.update`` (before any I/O): ``set``,
        ``add``, ``remove``, ``append``, under ``when``. The commit is canceled if the item does not exist or
        ``when`` does not hold. Its version advances by one; read the item after the commit to see it."""
        schema = self._schema(entity, "update")
        key = schema.key(partition, sort)
        changes = check_changes(schema, set, add, remove, append)
        cond = None if when is None else check_condition(schema, when, "when")
        self._require_expressions("update")
        self._claim(schema, key)
        self.ops.append(Update(entity, key, changes, cond))

    def check(self, entity: type[Entity], partition: Any, sort: Any = None, *, when: Condition | bool) -> None:
        """Add a condition check: the commit goes through only if ``when`` holds for the stored item (a missing
        item has every field absent: ``Entity.field.exists()`` requires one). Writes nothing."""
        schema = self._schema(entity, "check")
        key = schema.key(partition, sort)
        if when is None:
            raise ValidationError("check needs a condition: when=...", entity=schema.name)
        cond = check_condition(schema, when, "when")
        self._require_expressions("check")
        self._claim(schema, key)
        self.ops.append(Check(entity, key, cond))

    @staticmethod
    def _schema(entity: Any, what: str) -> Schema[Any]:
        if not (isinstance(entity, type) and issubclass(entity, Entity)):
            raise ValidationError(f"tx.{what} takes an entity class first, got {entity!r:.60}")
        return schema_of(entity)

    def _require_expressions(self, what: str) -> None:
        store = self._context.store
        if not getattr(store, "expressions", False):
            raise Unsupported(f"tx.{what}: the store {store.name!r} does not evaluate conditions", backend=store.name)

    async def commit(self) -> list[Any]:
        if not self.ops:
            return []
        context = self._context
        schemas = {schema_of(type(op.item) if isinstance(op, Put) else op.entity) for op in self.ops}
        for schema in schemas:
            await context.ensure_schema(schema)
        # Per entity: its repository, the keys written and where each op's result goes; the checked keys apart
        # (their caches are maintained only when the commit fails).
        groups: dict[type[Entity], tuple[Repository[Any], list[Key], list[int]]] = {}
        checked: dict[type[Entity], tuple[Repository[Any], list[Key], list[int]]] = {}
        for i, op in enumerate(self.ops):
            entity = type(op.item) if isinstance(op, Put) else op.entity
            into = checked if isinstance(op, Check) else groups
            group = into.get(entity)
            if group is None:
                group = into[entity] = (context.repository(entity), [], [])
            group[1].append(group[0].schema.key_of(op.item) if isinstance(op, Put) else op.key)
            group[2].append(i)
        writes = [(repo, repo.begin_write(keys), idx) for repo, keys, idx in groups.values()]
        checks = [(repo, repo.begin_write(keys), idx) for repo, keys, idx in checked.values()]
        try:
            cache = context.cache
            inline = context.query_cache is None and (
                not cache.tiers or (not cache.suspends and not getattr(context.store, "suspends", True))
            )
            if inline:
                # Nothing cached, or every layer in-process (no await can suspend): nothing to cut short.
                self.results = await self._commit(writes, checks)
            else:
                # One task for the commit and every entity's maintenance: cancelling the caller cuts none short.
                self.results = await cache.shielded(self._commit(writes, checks))
        except BaseException as exc:
            self.failed = exc
            if isinstance(exc, TransactionCanceled) and any(r is not None for r in exc.reasons):
                raise self._described(exc) from exc
            raise
        return self.results

    async def _commit(
        self, writes: list[tuple[Repository[Any], WriteAhead, list[int]]],
        checks: list[tuple[Repository[Any], WriteAhead, list[int]]],
    ) -> list[Any]:
        try:
            results = await self._context.store.transact(self.ops)
        except BaseException:
            # Outcome unknown (or a condition failed on a value the caller read from a cache): forget every key.
            await self._maintenance(writes + checks, None)
            raise
        await self._maintenance(writes, results)
        return results

    def _described(self, exc: TransactionCanceled) -> TransactionCanceled:
        """``exc`` with a message naming each failed action (position, kind, entity, key) and its reason."""
        n = len(self.ops)
        failed = []
        for i, reason in enumerate(exc.reasons):
            if reason is None or i >= n:
                continue
            op = self.ops[i]
            item = getattr(op, "item", None)
            entity = type(item) if item is not None else getattr(op, "entity", None)
            key = _key_of(op)
            what = f"{type(op).__name__.lower()} {getattr(entity, '__name__', '?')} {bounded(_safe_repr(key), MAX_KEY)}"
            failed.append(f"action {i + 1} of {n} ({what}): {reason}")
        described = TransactionCanceled(
            "transaction canceled, nothing was written; " + "; ".join(failed),
            reasons=exc.reasons, entity=exc.entity, key=exc.key, backend=exc.backend,
        )
        for name, value in vars(exc).items():  # every other attribute (``current``…) as the store set it
            if name != "message":
                setattr(described, name, value)
        return described

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


def _key_of(op: WriteOp) -> Any:
    if isinstance(op, Put):
        return schema_of(type(op.item)).key_of(op.item)
    return getattr(op, "key", None)
