"""Transactions of the DynamoDB store: ``transact`` as one TransactWriteItems with a ClientRequestToken.

DynamoDB takes at most 100 actions and 4 MB in one transaction, one action per item; all are checked before any
I/O. A put of a versioned entity must store *stored version + 1*, which a transaction cannot compute, so an
unconditional versioned put is *pinned*: its stored version is read (consistently) and the write is conditioned
on it; if another writer moved it in between, the transaction is re-read and retried with a fresh
``ClientRequestToken``. Retries of one commit reuse its token, so a commit whose reply was lost applies once
(https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html).

A partial update is an ``Update`` action with the expression ``update()`` sends (built here by
:meth:`Transactions._changes_params`, shared with it), a condition check a ``ConditionCheck`` action; both ask
for the item as it was when their condition fails (``ReturnValuesOnConditionCheckFailure=ALL_OLD``), which tells
a missing item from a condition that did not hold. A transaction returns no items, so the result of either is
``None``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import msgspec

from tierstore.errors import Throttled, TransactionCanceled, Unsupported, ValidationError
from tierstore.expressions.ast import Condition
from tierstore.expressions.dynamodb import DynamoExpression
from tierstore.expressions.update import Changes
from tierstore.model.schema import Key, schema_of
from tierstore.stores.base import Check, Delete, Put, Update, WriteOp
from tierstore.stores.dynamodb import limits
from tierstore.stores.dynamodb.base import TableState
from tierstore.stores.dynamodb.batch import BatchOps
from tierstore.stores.dynamodb.codec import AV, key_identity, to_av
from tierstore.stores.dynamodb.transport import DynamoFault

__all__ = ["Transactions"]

_CANCEL_CONTENTION = frozenset({  # a retry may succeed
    "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded",
})


class Transactions(BatchOps):
    """``transact``: pinned versions, cancellation reasons per action, retries on contention only."""

    async def transact(self, ops: Sequence[WriteOp]) -> list[Any]:
        """TransactWriteItems (≤ 100 actions, ≤ 4 MB, one action per item) with a ClientRequestToken."""
        if not ops:
            return []
        limits.check_batch_size(len(ops), limits.MAX_TRANSACT_ITEMS, "a transaction")
        plan: list[tuple[WriteOp, TableState, Key, dict[str, AV] | None]] = []
        sizes = []
        for op in ops:
            if isinstance(op, Put):
                t = self._table(schema_of(type(op.item)))
                key, av, size = self._item(t, op.item)
                if op.expect_version is not None and t.codec.version_attr is None:
                    raise ValidationError(f"{t.schema.name} has no version field", entity=t.schema.name)
                plan.append((op, t, key, av))
                sizes.append(size)
            elif isinstance(op, Delete):
                t = self._table(schema_of(op.entity))
                key = op.key
                t.schema.check_key(key)
                if op.expect_version is not None and t.codec.version_attr is None:
                    raise ValidationError(f"{t.schema.name} has no version field", entity=t.schema.name)
                plan.append((op, t, key, self._key(t, key)))
            elif isinstance(op, Update | Check):
                t = self._table(schema_of(op.entity))
                t.schema.check_key(op.key)
                if isinstance(op, Update):
                    self._changes_params(t, op.key, op.changes, op.when)  # its limits, before any I/O
                plan.append((op, t, op.key, self._key(t, op.key)))
            else:
                raise ValidationError(f"transact takes Put, Delete, Update and Check, got {type(op).__name__}")
        limits.check_distinct(((t.name, key) for _, t, key, _ in plan), "a transaction")
        limits.total_size(sizes, limits.MAX_TRANSACT_BYTES, "a transaction")
        pinned = [
            isinstance(op, Put) and op.expect_version is None and not op.if_not_exists
            and t.codec.version_attr is not None
            for op, t, _, _ in plan
        ]
        retry = 0
        while True:
            versions = await self._read_versions([p for p, pin in zip(plan, pinned, strict=True) if pin])
            actions: list[dict[str, Any]] = []
            results: list[Any] = []
            for (op, t, key, attrs), pin in zip(plan, pinned, strict=True):
                action, result = self._action(op, t, key, attrs, pin, versions.get((t.name, key)))
                actions.append(action)
                results.append(result)
            token = str(uuid.uuid4())  # one per attempt: a retry of *this* request reuses it (inside _call)
            try:
                await self._call("TransactWriteItems", {"TransactItems": actions, "ClientRequestToken": token},
                                 idempotent=True, passthrough=frozenset({"TransactionCanceledException"}))
            except DynamoFault as fault:
                reasons, contention = self._cancel_reasons(fault, pinned)
                reasons = self._explained(reasons, fault, plan)
                if any(r is not None for r in reasons) or not contention:
                    self.stats.errors += 1
                    raise TransactionCanceled(
                        "transaction canceled", reasons=reasons, backend=self.name
                    ) from (fault.cause or fault)
                if retry + 1 >= self.backoff.attempts:
                    self.stats.errors += 1
                    raise Throttled(
                        f"the transaction kept conflicting with other writers ({retry + 1} attempts)",
                        backend=self.name,
                    ) from (fault.cause or fault)
                self.stats.retries += 1
                await self.sleep(self.backoff.delay(retry))
                retry += 1
                continue
            self.stats.writes += len(ops)
            return results

    def _action(
        self, op: WriteOp, t: TableState, key: Key, av: dict[str, AV] | None, pin: bool, stored: int | None
    ) -> tuple[dict[str, Any], Any]:
        codec = t.codec
        vattr = codec.version_attr
        names: dict[str, str] = {}
        values: dict[str, AV] = {}
        conditions: list[str] = []
        assert av is not None
        if isinstance(op, Update):
            return {"Update": self._changes_params(t, key, op.changes, op.when)}, None
        if isinstance(op, Check):
            self._when(op.when, t, names, values, conditions)
            check: dict[str, Any] = {
                "TableName": t.name, "Key": av, "ConditionExpression": conditions[0],
                "ExpressionAttributeNames": names, "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
            if values:
                check["ExpressionAttributeValues"] = values
            return {"ConditionCheck": check}, None
        if isinstance(op, Delete):
            body: dict[str, Any] = {"TableName": t.name, "Key": av}
            if op.expect_version is not None:
                names["#v"] = vattr  # type: ignore[assignment]
                values[":e"] = {"N": str(op.expect_version)}
                conditions.append(
                    "(attribute_not_exists(#v) OR #v = :e)" if op.expect_version == 0 else "#v = :e"
                )
            if conditions:
                body["ConditionExpression"] = " AND ".join(conditions)
                body["ExpressionAttributeNames"] = names
                if values:
                    body["ExpressionAttributeValues"] = values
            return {"Delete": body}, None
        new_version: int | None = None
        if op.if_not_exists:
            names["#k"] = codec.partition.attr
            conditions.append("attribute_not_exists(#k)")
            new_version = 1
        if op.expect_version is not None:
            names["#v"] = vattr  # type: ignore[assignment]
            values[":e"] = {"N": str(op.expect_version)}
            conditions.append("(attribute_not_exists(#v) OR #v = :e)" if op.expect_version == 0 else "#v = :e")
            new_version = op.expect_version + 1
        if pin:
            names["#v"] = vattr  # type: ignore[assignment]
            if stored is None:
                conditions.append("attribute_not_exists(#v)")
                new_version = 1
            else:
                values[":e"] = {"N": str(stored)}
                conditions.append("#v = :e")
                new_version = stored + 1
        result = op.item
        if vattr is not None:
            assert new_version is not None  # every versioned put is conditioned or pinned
            result = msgspec.structs.replace(op.item, **{t.schema.version: new_version})  # type: ignore[arg-type]
        # An Update action like a put's UpdateItem: the attributes the entity does not declare survive.
        body, _ = self._update_params(t, av, " AND ".join(conditions), names, values, new_version)
        return {"Update": body}, result

    @staticmethod
    def _when(
        when: Condition | None, t: TableState, names: dict[str, str], values: dict[str, AV], conditions: list[str]
    ) -> None:
        """Add ``when`` (compiled) to ``conditions``, its names and values to ``names`` and ``values``."""
        if when is not None:
            expr = DynamoExpression(t.codec.names, to_av, "c")
            conditions.append(f"({expr.condition(when)})")
            names.update(expr.names)
            values.update(expr.values)

    def _changes_params(self, t: TableState, key: Key, changes: Changes, when: Condition | None) -> dict[str, Any]:
        """The ``UpdateItem`` parameters of a partial update (also a transaction's ``Update`` action): ``SET`` of
        the changes (``if_not_exists(a, 0) + d`` for counters, ``list_append`` for appends, ``NULL`` for
        removals), ``ADD`` of 1 to the version, ``attribute_exists`` of the key (an update never creates an item)
        and ``when``; a failed condition returns the item as it was (``ALL_OLD``)."""
        schema = t.schema
        codec = t.codec
        key_av = self._key(t, key)
        # An optional index key set to None is REMOVEd (an index key cannot be NULL): the item leaves the index,
        # and the composite index keys holding it go too (clearing one part needs no other part's value).
        cleared = [n for n, v in changes.set if v is None and n in schema.sparse]
        cleared += [n for n in changes.remove if n in schema.sparse]
        in_synthetic = {f for lay in codec.synthetic for f in lay.fields}
        touched = [f for f in changes.fields() if f in in_synthetic and f not in cleared]
        if touched:
            raise Unsupported(
                f"update of {touched}: part of a composite index key on DynamoDB; put the whole item instead",
                entity=schema.name, key=key, backend=self.name,
            )
        names: dict[str, str] = {"#k": codec.partition.attr}
        values: dict[str, AV] = {}
        sets: list[str] = []
        for i, (name, value) in enumerate(changes.set):
            if name in cleared:
                continue
            attr = codec.names[name]
            raw = msgspec.to_builtins(value, builtin_types=(bytes, bytearray), str_keys=True)
            enc = codec._set_encoders.get(attr)  # sets travel as SS/NS/BS, as put writes them
            names[f"#u{i}"] = attr
            values[f":u{i}"] = enc(raw) if enc is not None and raw is not None else to_av(raw)
            sets.append(f"#u{i} = :u{i}")
        for i, (name, delta) in enumerate(changes.add):
            names[f"#d{i}"] = codec.names[name]
            values[f":d{i}"] = to_av(delta)
            values[":zero"] = {"N": "0"}
            sets.append(f"#d{i} = if_not_exists(#d{i}, :zero) + :d{i}")
        for i, name in enumerate(changes.remove):
            if name in cleared:
                continue
            names[f"#r{i}"] = codec.names[name]
            values[":null"] = {"NULL": True}
            sets.append(f"#r{i} = :null")
        for i, (name, items) in enumerate(changes.append):
            names[f"#a{i}"] = codec.names[name]
            values[f":a{i}"] = to_av(msgspec.to_builtins(items, builtin_types=(bytes, bytearray), str_keys=True))
            values[":empty"] = {"L": []}
            sets.append(f"#a{i} = list_append(if_not_exists(#a{i}, :empty), :a{i})")
        expression = "SET " + ", ".join(sets) if sets else ""
        if codec.version_attr is not None:
            names["#v"] = codec.version_attr
            values[":one"] = {"N": "1"}
            expression += " ADD #v :one"
        gone = [codec.names[n] for n in cleared]
        gone += [lay.attr for lay in codec.synthetic if set(lay.fields) & set(cleared)]
        for i, attr in enumerate(gone):
            names[f"#x{i}"] = attr
        if gone:
            expression += " REMOVE " + ", ".join(f"#x{i}" for i in range(len(gone)))
        expression = expression.strip()
        conditions = ["attribute_exists(#k)"]
        self._when(when, t, names, values, conditions)
        condition = " AND ".join(conditions)
        limits.check_expression(expression, "the UpdateExpression", entity=schema.name)
        limits.check_expression(condition, "the ConditionExpression", entity=schema.name)
        params: dict[str, Any] = {
            "TableName": t.name, "Key": key_av, "UpdateExpression": expression, "ConditionExpression": condition,
            "ExpressionAttributeNames": names, "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if values:  # DynamoDB refuses an empty map (an update that only REMOVEs, on an entity without a version)
            params["ExpressionAttributeValues"] = values
        return params

    @staticmethod
    def _explained(
        reasons: list[str | None], fault: DynamoFault, plan: list[tuple[WriteOp, TableState, Key, dict[str, AV] | None]]
    ) -> list[str | None]:
        """A failed ``Update`` or ``Check`` reason in the words the other stores use: the item was missing (the
        reason carries no item), or the condition did not hold."""
        raw = fault.reasons or []
        out = list(reasons)
        for i, (op, _, _, _) in enumerate(plan):
            if out[i] is None or i >= len(raw) or not isinstance(op, Update | Check):
                continue
            r = raw[i]
            if not isinstance(r, dict) or str(r.get("Code")) != "ConditionalCheckFailed":
                continue
            missing = not r.get("Item")
            if isinstance(op, Update) and missing:
                out[i] = "update of an item that does not exist"
            else:
                out[i] = f"condition {op.when!r} did not hold{' (no item)' if missing else ''}"
        return out

    async def _read_versions(
        self, plan: list[tuple[WriteOp, TableState, Key, dict[str, AV] | None]]
    ) -> dict[tuple[str, Key], int]:
        """Stored versions (consistent reads) of the pinned puts' items; absent items are left out."""
        by_table: dict[str, tuple[TableState, list[Key]]] = {}
        for _, t, key, _ in plan:
            by_table.setdefault(t.name, (t, []))[1].append(key)
        out: dict[tuple[str, Key], int] = {}
        for t, keys in by_table.values():
            codec = t.codec
            names = {f"#k{i}": a for i, a in enumerate(codec.key_attrs)}
            names["#v"] = codec.version_attr  # type: ignore[assignment]
            raws = await self._batch_get_chunk(t, keys, True, projection=names)
            by_identity = {key_identity(codec.key(k)): k for k in keys}
            for raw in raws:
                k = by_identity.get(key_identity(codec.key_of_av(raw)))
                v = raw.get(codec.version_attr)  # type: ignore[arg-type]
                if k is not None and v is not None and "N" in v:
                    out[(t.name, k)] = int(v["N"])
        return out

    @staticmethod
    def _cancel_reasons(fault: DynamoFault, pinned: list[bool]) -> tuple[list[str | None], bool]:
        """Per-action reasons the caller should see, and whether a retry may succeed (contention only)."""
        raw = fault.reasons
        if not raw or len(raw) != len(pinned):
            return [fault.message or "canceled"] * len(pinned), False
        reasons: list[str | None] = []
        contention = False
        for r, pin in zip(raw, pinned, strict=True):
            if isinstance(r, dict):
                code, message = str(r.get("Code") or "None"), str(r.get("Message") or "")
            else:
                code, message = str(r or "None"), ""
            if code in ("None", "NONE"):
                reasons.append(None)
            elif (code == "ConditionalCheckFailed" and pin) or code in _CANCEL_CONTENTION:
                contention = True
                reasons.append(None)
            else:
                reasons.append(f"{code}: {message}" if message else code)
        return reasons, contention
