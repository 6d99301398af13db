"""Transactions of the DynamoDB store: ``transact`` as one TransactWriteItems with a ClientRequestToken.

DynamoDB takes at most 100 actions and 4 MB in one transaction, one action per item; all are checked before any
I/O. A put of a versioned entity must store *stored version + 1*, which a transaction cannot compute, so an
unconditional versioned put is *pinned*: its stored version is read (consistently) and the write is conditioned
on it; if another writer moved it in between, the transaction is re-read and retried with a fresh
``ClientRequestToken``. Retries of one commit reuse its token, so a commit whose reply was lost applies once
(https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import msgspec

from tierstore.errors import Throttled, TransactionCanceled, ValidationError
from tierstore.model.schema import Key, schema_of
from tierstore.stores.base import Delete, Put, WriteOp
from tierstore.stores.dynamodb import limits
from tierstore.stores.dynamodb.base import TableState
from tierstore.stores.dynamodb.batch import BatchOps
from tierstore.stores.dynamodb.codec import AV, key_identity
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
            else:
                raise ValidationError(f"transact takes Put and Delete, got {type(op).__name__}")
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
