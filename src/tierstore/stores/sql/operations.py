"""The store's writes as *operations*: generators of ``(mode, sql, args)`` steps that receive each result
(:mod:`tierstore.stores.sql.drivers.base`). One operation is written once and runs on every driver: awaited
step by step on a pooled network connection, or whole in one SQLite worker thread (one thread hop per write
however many statements it takes). A failed condition raises ``ConditionFailed`` from inside the operation,
so the driver rolls back whatever it began.

Also here: how a list of keys becomes statements (:func:`key_batches`), and the cap on parameters per
statement (:data:`MAX_PARAMS`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator, Iterator, Sequence
from itertools import chain
from typing import Any, TypeVar

from tierstore.errors import ConditionFailed, NotFound, TransactionCanceled, ValidationError
from tierstore.expressions.ast import Condition
from tierstore.expressions.memory import evaluate
from tierstore.model.schema import Key
from tierstore.stores.base import Check, Delete, Put, Update, WriteOp
from tierstore.stores.sql.drivers.base import ALL, EXEC, INSERT, ONE, Operation
from tierstore.stores.sql.statements import Plan, Sql

__all__ = [
    "MAX_PARAMS", "key_batches", "op_delete", "op_delete_when", "op_put", "op_put_many", "op_put_when", "op_single",
    "op_statements", "op_transact", "op_update",
]

T = TypeVar("T")

MAX_PARAMS = 8000  # per statement; SQLite allows 32766, PostgreSQL 32767
_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 100, 128, 256, 512)  # 100: the usual batch (DynamoDB's, the joins')
_ARRAY_BATCH = 1000  # PostgreSQL keys per statement


def op_single(mode: int, sql: str, args: Sequence[Any]) -> Operation[Any]:
    return (yield (mode, sql, args))


def op_statements(stmts: list[tuple[str, Sequence[Any]]]) -> Operation[None]:
    for sql, args in stmts:
        yield (EXEC, sql, args)


def _condition(plan: Plan[Any], key: Key, message: str) -> ConditionFailed:
    return ConditionFailed(message, entity=plan.name, key=key, backend=plan.backend)


def op_put(
    plan: Plan[T], item: T, vals: list[Any], if_not_exists: bool, expect_version: int | None
) -> Generator[Any, Any, T]:
    vi = plan.version_idx
    key = tuple(vals[i] for i in plan.key_idx)
    if expect_version is not None:
        if vi is None or plan.update_expect is None or plan.select_version is None:
            raise ValidationError(f"{plan.name} has no version field", entity=plan.name, key=key)
        if if_not_exists:
            raise _condition(plan, key, "if_not_exists and expect_version cannot both hold")
        new = expect_version + 1
        vals[vi] = new
        if expect_version == 0:
            # 0: no row there (or a row stored at version 0). Insert; if a row is there, the update decides.
            res = yield (INSERT, plan.insert_new.text, vals)
            if res is not None and res[0] != 0:
                return plan.with_version(item, 1)
        count, _ = yield (EXEC, plan.update_expect.text, plan.update_args(vals, expect_version))
        if count == 0:
            found = yield (ONE, plan.select_version.text, key)
            raise _condition(
                plan, key, f"expected version {expect_version}, found {found[0] if found else 'no item'}"
            )
        return plan.with_version(item, new)
    if vi is not None:
        vals[vi] = 1
    if if_not_exists:
        res = yield (INSERT, plan.insert_new.text, vals)
        if res is None or res[0] == 0:
            raise _condition(plan, key, "item exists")
        return item if vi is None else plan.with_version(item, 1)
    if vi is None:
        yield (EXEC, plan.upsert.text, vals)
        return item
    if plan.flavor == "returning":
        row = yield (ONE, plan.upsert.text, vals)
        return plan.with_version(item, row[-1])
    _, last_id = yield (EXEC, plan.upsert.text, vals)
    # MySQL: an update left version + 1 in LAST_INSERT_ID(); a fresh insert leaves 0.
    return plan.with_version(item, last_id or 1)


def op_put_many(plan: Plan[T], items: Sequence[T], chunks: list[tuple[int, list[list[Any]]]]) -> Operation[list[T]]:
    vi = plan.version_idx
    out = list(items)
    width = len(plan.key_idx)
    for start, rows in chunks:
        if vi is not None:
            for r in rows:
                r[vi] = 1
        sql = plan.upsert_many(len(rows)).text
        args = [v for r in rows for v in r]
        if vi is None:
            yield (EXEC, sql, args)
            continue
        if plan.flavor == "returning" or plan.mysql_returning:
            got = yield (ALL, sql, args)
        else:
            yield (EXEC, sql, args)
            keys = [v for r in rows for v in (r[i] for i in plan.key_idx)]
            got = yield (ALL, plan.select_versions(len(rows)).text, keys)
        versions = {tuple(row[:width]): row[width] for row in got}
        for i, r in enumerate(rows):
            out[start + i] = plan.with_version(items[start + i], versions[tuple(r[j] for j in plan.key_idx)])
    return out


def _check_when(plan: Plan[Any], key: Key, row: Any, when: Condition) -> Any:
    """The current item (or ``None``); ``ConditionFailed`` carrying it unless ``when`` holds for it."""
    current = None if row is None else plan.decode_row(row, key)
    if not evaluate(when, current):
        raise ConditionFailed(
            f"condition {when!r} did not hold{' (no item)' if current is None else ''}",
            entity=plan.name, key=key, backend=plan.backend, current=current,
        )
    return current


def op_put_when(
    plan: Plan[T], item: T, vals: list[Any], if_not_exists: bool, expect_version: int | None, when: Condition
) -> Generator[Any, Any, T]:
    """A put under a ``when`` condition, in one transaction: read the row locked (``FOR UPDATE``), evaluate the
    condition on it as the memory store does, then write. When there was no row, the write is an insert that
    fails on a concurrent insert, and the whole check runs again on the row that insert made."""
    key = tuple(vals[i] for i in plan.key_idx)
    vi = plan.version_idx
    while True:
        row = yield (ONE, plan.get_locked.text, key)
        current = _check_when(plan, key, row, when)
        if current is None:
            if expect_version is not None:
                raise _condition(plan, key, f"expected version {expect_version}, found no item")
            if vi is not None:
                vals[vi] = 1
            res = yield (INSERT, plan.insert_new.text, vals)
            if res is None or res[0] == 0:
                continue  # inserted meanwhile: check the condition against that row
            return item if vi is None else plan.with_version(item, 1)
        if if_not_exists:
            raise _condition(plan, key, "item exists")
        if vi is None:
            yield (EXEC, plan.upsert.text, vals)
            return item
        found = plan.schema.version_of(current)
        if expect_version is not None and found != expect_version:
            raise _condition(plan, key, f"expected version {expect_version}, found {found}")
        return (yield from op_put(plan, item, vals, False, found))


def op_delete_when(plan: Plan[Any], key: Key, expect_version: int | None, when: Condition) -> Operation[bool]:
    """A delete under a ``when`` condition: the row read locked, the condition evaluated, then the delete."""
    row = yield (ONE, plan.get_locked.text, key)
    current = _check_when(plan, key, row, when)
    if expect_version is not None:
        found = None if current is None else plan.schema.version_of(current)
        if found != expect_version:
            raise _condition(plan, key, f"expected version {expect_version}, found {found or 'no item'}")
    if current is None:
        return False
    count, _ = yield (EXEC, plan.delete.text, key)
    return bool(count)


def op_update(
    plan: Plan[T], key: Key, sql: str, args: Sequence[Any], when: Condition | None
) -> Generator[Any, Any, T]:
    """One ``UPDATE … RETURNING`` (PostgreSQL, SQLite); on MySQL, which has no ``RETURNING`` for ``UPDATE``, the
    ``UPDATE`` then a read of the row in the same transaction. When no row changed: ``NotFound`` if there is
    none, else ``ConditionFailed`` carrying the row read then."""
    if plan.flavor == "returning":
        row = yield (ONE, sql, args)
        if row is not None:
            return plan.decode_row(row, key)
        changed = False
    else:
        count, _ = yield (EXEC, sql, args)
        changed = bool(count)
    row = yield (ONE, plan.get.text, key)
    if row is None:
        raise NotFound("update of an item that does not exist", entity=plan.name, key=key, backend=plan.backend)
    current = plan.decode_row(row, key)
    # MySQL counts changed rows, not matched ones: an update to the values already stored changes none.
    if changed or (plan.flavor != "returning" and (when is None or evaluate(when, current))):
        return current
    raise ConditionFailed(
        f"condition {when!r} did not hold", entity=plan.name, key=key, backend=plan.backend, current=current
    )


def op_delete(plan: Plan[Any], key: Key, expect_version: int | None) -> Operation[bool]:
    if expect_version is None:
        count, _ = yield (EXEC, plan.delete.text, key)
        return bool(count)
    if plan.delete_expect is None or plan.select_version is None:
        raise ValidationError(f"{plan.name} has no version field", entity=plan.name, key=key)
    count, _ = yield (EXEC, plan.delete_expect.text, (*key, expect_version))
    if count == 0:
        found = yield (ONE, plan.select_version.text, key)
        if found is None and expect_version == 0:
            return False  # an absent item counts as version 0: nothing to delete
        raise _condition(plan, key, f"expected version {expect_version}, found {found[0] if found else 'no item'}")
    return True


def op_transact(
    prepared: list[tuple[WriteOp, Plan[Any], Any, Key]], order: list[int], backend: str
) -> Operation[list[Any]]:
    """Every action in one database transaction, in ``order``. A failed condition (or an update of a missing
    item) is noted as that action's reason and the others still run, so the caller learns every reason; then
    ``TransactionCanceled`` rolls the whole transaction back."""
    results: list[Any] = [None] * len(prepared)
    reasons: list[str | None] = [None] * len(prepared)
    for i in order:
        op, plan, vals, key = prepared[i]
        try:
            if isinstance(op, Put):
                results[i] = yield from op_put(plan, op.item, vals, op.if_not_exists, op.expect_version)
            elif isinstance(op, Update):
                sql, args = vals
                yield from op_update(plan, key, sql, args, op.when)
            elif isinstance(op, Check):
                row = yield (ONE, plan.get_locked.text, key)
                _check_when(plan, key, row, op.when)
            else:
                assert isinstance(op, Delete)
                yield from op_delete(plan, key, op.expect_version)
        except (ConditionFailed, NotFound) as exc:
            reasons[i] = exc.message
    if any(r is not None for r in reasons):
        raise TransactionCanceled("transaction canceled", reasons=reasons, backend=backend)
    return results


def key_batches(
    plan: Plan[Any], keys: Sequence[Key], statement: Callable[[int], Sql]
) -> Iterator[tuple[str, Sequence[Any], int]]:
    """Statements over ``keys`` in batches: ``(sql, args, keys in the batch)``.

    PostgreSQL takes a batch as one array per key column. Elsewhere a batch is an ``IN`` list padded to the
    next of a few sizes by repeating its last key (same answer, few statement shapes to prepare and cache).
    """
    width = len(plan.key_idx)
    if plan.array_keys:
        for start in range(0, len(keys), _ARRAY_BATCH):
            part = keys[start : start + _ARRAY_BATCH]
            yield statement(0).text, [list(col) for col in zip(*part, strict=True)], len(part)
        return
    limit = _bucket_floor(MAX_PARAMS // 8 // width)
    for start in range(0, len(keys), limit):
        chunk = keys[start : start + limit] if start or len(keys) > limit else keys
        n = _bucket(len(chunk))
        args = list(chain.from_iterable(chunk))
        if n > len(chunk):
            args += list(chunk[-1]) * (n - len(chunk))
        yield statement(n).text, args, n


def _bucket(n: int) -> int:
    for b in _BUCKETS:
        if b >= n:
            return b
    return n


@functools.cache
def _bucket_floor(n: int) -> int:
    best = 1
    for b in _BUCKETS:
        if b <= n:
            best = b
    return best

