"""The control plane of the DynamoDB store: create a schema's table and indexes, wait for them, enable TTL.

``ensure_schema`` is idempotent and cheap once done (no request for a table already seen ready). A table that
exists is checked, not trusted: its key must be the schema's; global indexes declared since it was created are
added; local indexes cannot be, since DynamoDB creates them only with the table
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/LSI.html).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from tierstore.errors import ConfigError, Mismatch, StoreError
from tierstore.model.schema import Schema
from tierstore.stores.dynamodb import limits
from tierstore.stores.dynamodb.base import DynamoStoreBase, TableState
from tierstore.stores.dynamodb.transport import DynamoFault, is_loopback

__all__ = ["TableAdmin"]

log = logging.getLogger("tierstore.dynamodb")


class TableAdmin(DynamoStoreBase):
    """Table management (CreateTable, DescribeTable, UpdateTable, UpdateTimeToLive), on the control transport."""

    async def ensure_schema(self, schema: Schema[Any]) -> None:
        """Create the table and its indexes if missing (on-demand or provisioned), wait until ACTIVE, add GSIs
        declared since, and enable TTL on the entity's TTL field. Idempotent.

        Indexes are GSIs; an ``Index`` with a true ``local`` attribute (same partition key as the table, a sort
        key of its own) becomes an LSI, which DynamoDB creates only together with the table and which, unlike
        a GSI, serves strongly consistent queries.
        """
        t = self._table(schema)
        if t.ready:
            return
        codec = t.codec
        desc = await self._describe(t)
        if desc is None:
            with contextlib.suppress(DynamoFault):  # ResourceInUse: created meanwhile by someone else
                await self._call("CreateTable", self._create_params(t), idempotent=False, control=True,
                                 entity=schema.name, passthrough=frozenset({"ResourceInUseException"}))
            desc = await self._wait_active(t)
        else:
            key_schema = {k["AttributeName"]: k["KeyType"] for k in desc.get("KeySchema", ())}
            want = {codec.partition.attr: "HASH", **({codec.sort.attr: "RANGE"} if codec.sort else {})}
            if key_schema != want:
                raise ConfigError(
                    f"table {t.name} exists with key {key_schema}, but {schema.name} needs {want}",
                    entity=schema.name, backend=self.name,
                )
            if desc.get("TableStatus") != "ACTIVE":
                desc = await self._wait_active(t)
        have = {g["IndexName"] for g in desc.get("GlobalSecondaryIndexes") or ()}
        have_local = {g["IndexName"] for g in desc.get("LocalSecondaryIndexes") or ()}
        missing_local = sorted(codec.local_indexes - have_local)
        if missing_local:
            raise ConfigError(
                f"table {t.name} lacks the local indexes {missing_local}; DynamoDB creates local indexes only "
                "with the table", entity=schema.name, backend=self.name,
            )
        for ix_name in codec.indexes:
            if ix_name not in have and ix_name not in codec.local_indexes:
                await self._call("UpdateTable", {
                    "TableName": t.name,
                    "AttributeDefinitions": self._attribute_definitions(t),
                    "GlobalSecondaryIndexUpdates": [{"Create": self._gsi(t, ix_name)}],
                }, idempotent=False, control=True, entity=schema.name)
                await self._wait_active(t)
        if codec.ttl_attr is not None:
            await self._ensure_ttl(t)
        t.ready = True

    @property
    def embedded(self) -> bool:
        """A DynamoDB Local on a loopback endpoint is a test/embedded store (schema mode ``create`` by default);
        any other endpoint holds someone's tables (``verify`` by default)."""
        return is_loopback(self.config.endpoint_url)

    async def verify_schema(self, schema: Schema[Any]) -> list[Mismatch]:
        """Every way the existing table differs from what ``schema`` needs (key schema, key attribute types,
        global and local indexes), each with the AWS CLI command that fixes it. One DescribeTable; never
        CreateTable or UpdateTable."""
        t = self._table(schema)
        codec = t.codec
        desc = await self._describe(t)

        def mismatch(problem: str, fix: str) -> Mismatch:
            return Mismatch(schema.name, t.name, problem, fix)

        if desc is None:
            return [mismatch("the table does not exist",
                             f"aws dynamodb create-table --cli-input-json '{json.dumps(self._create_params(t))}'")]
        out: list[Mismatch] = []
        types = {a["AttributeName"]: a["AttributeType"] for a in desc.get("AttributeDefinitions") or ()}

        def check_keys(where: str, have: list[dict[str, Any]], p: Any, s: Any) -> bool:
            want = [(p.attr, "HASH")] + ([(s.attr, "RANGE")] if s else [])
            got = [(k["AttributeName"], k["KeyType"]) for k in have]
            if got != want:
                out.append(mismatch(
                    f"{where} has key {got}, the entity needs {want}",
                    "a key schema cannot be changed: create a table (or index) with this key and copy the items",
                ))
                return False
            out.extend(
                mismatch(
                    f"{where} key attribute {lay.attr!r} is of type {types[lay.attr]}, the entity stores "
                    f"{lay.type}", "map the field to an attribute of that type, or copy into a new table",
                )
                for lay in (p, s)
                if lay is not None and types.get(lay.attr, lay.type) != lay.type
            )
            return True

        check_keys("the table", desc.get("KeySchema") or [], codec.partition, codec.sort)
        gsis = {g["IndexName"]: g for g in desc.get("GlobalSecondaryIndexes") or ()}
        lsis = {g["IndexName"]: g for g in desc.get("LocalSecondaryIndexes") or ()}
        for ix_name, (p, s) in codec.indexes.items():
            local = ix_name in codec.local_indexes
            have = (lsis if local else gsis).get(ix_name)
            if have is None:
                if local:
                    out.append(mismatch(f"local index {ix_name!r} is missing",
                                        "DynamoDB creates local indexes only with the table: recreate it"))
                    continue
                update = {
                    "TableName": t.name,
                    "AttributeDefinitions": [
                        {"AttributeName": lay.attr, "AttributeType": lay.type} for lay in (p, s) if lay is not None
                    ],
                    "GlobalSecondaryIndexUpdates": [{"Create": self._gsi(t, ix_name)}],
                }
                out.append(mismatch(f"global index {ix_name!r} is missing",
                                    f"aws dynamodb update-table --cli-input-json '{json.dumps(update)}'"))
                continue
            check_keys(f"index {ix_name!r}", have.get("KeySchema") or [], p, s)
        return out

    async def _describe(self, t: TableState) -> dict[str, Any] | None:
        try:
            reply = await self._call("DescribeTable", {"TableName": t.name}, idempotent=True, control=True,
                                     passthrough=frozenset({"ResourceNotFoundException"}))
        except DynamoFault:
            return None
        table: dict[str, Any] = reply["Table"]
        return table

    async def _wait_active(self, t: TableState) -> dict[str, Any]:
        deadline = time.monotonic() + self.config.schema_timeout
        pause = 0.02
        while True:
            desc = await self._describe(t)
            if desc is not None and desc.get("TableStatus") == "ACTIVE" and all(
                g.get("IndexStatus") == "ACTIVE" for g in desc.get("GlobalSecondaryIndexes") or ()
            ):
                return desc
            if time.monotonic() > deadline:
                raise StoreError(f"table {t.name} did not become ACTIVE in time", backend=self.name)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    def _attribute_definitions(self, t: TableState) -> list[dict[str, str]]:
        return [{"AttributeName": a, "AttributeType": typ} for a, typ in t.codec.attribute_types.items()]

    def _throughput(self) -> dict[str, int]:
        return {"ReadCapacityUnits": self.config.read_capacity, "WriteCapacityUnits": self.config.write_capacity}

    def _gsi(self, t: TableState, ix_name: str) -> dict[str, Any]:
        p, s = t.codec.indexes[ix_name]
        gsi: dict[str, Any] = {
            "IndexName": ix_name,
            "KeySchema": [{"AttributeName": p.attr, "KeyType": "HASH"}]
            + ([{"AttributeName": s.attr, "KeyType": "RANGE"}] if s else []),
            "Projection": {"ProjectionType": "ALL"},
        }
        if self.config.billing == "provisioned":
            gsi["ProvisionedThroughput"] = self._throughput()
        return gsi

    def _lsi(self, t: TableState, ix_name: str) -> dict[str, Any]:
        p, s = t.codec.indexes[ix_name]
        assert s is not None
        return {
            "IndexName": ix_name,
            "KeySchema": [{"AttributeName": p.attr, "KeyType": "HASH"}, {"AttributeName": s.attr, "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }

    def _create_params(self, t: TableState) -> dict[str, Any]:
        codec = t.codec
        for attr in codec.attribute_types:
            limits.check_name(attr, entity=t.schema.name)
        params: dict[str, Any] = {
            "TableName": t.name,
            "KeySchema": [{"AttributeName": codec.partition.attr, "KeyType": "HASH"}]
            + ([{"AttributeName": codec.sort.attr, "KeyType": "RANGE"}] if codec.sort else []),
            "AttributeDefinitions": self._attribute_definitions(t),
        }
        globals_ = [ix for ix in codec.indexes if ix not in codec.local_indexes]
        if globals_:
            params["GlobalSecondaryIndexes"] = [self._gsi(t, ix) for ix in globals_]
        if codec.local_indexes:
            params["LocalSecondaryIndexes"] = [self._lsi(t, ix) for ix in sorted(codec.local_indexes)]
        if self.config.billing == "provisioned":
            params["BillingMode"] = "PROVISIONED"
            params["ProvisionedThroughput"] = self._throughput()
        else:
            params["BillingMode"] = "PAY_PER_REQUEST"
        return params

    async def _ensure_ttl(self, t: TableState) -> None:
        attr = t.codec.ttl_attr
        reply = await self._call("DescribeTimeToLive", {"TableName": t.name}, idempotent=True, control=True)
        desc = reply.get("TimeToLiveDescription") or {}
        status, current = desc.get("TimeToLiveStatus"), desc.get("AttributeName")
        if status in ("ENABLED", "ENABLING"):
            if current != attr:
                log.warning("table %s expires items by %r, not by %r; TTL left as it is", t.name, current, attr)
            return
        try:
            await self._call("UpdateTimeToLive", {
                "TableName": t.name, "TimeToLiveSpecification": {"Enabled": True, "AttributeName": attr},
            }, idempotent=False, control=True, passthrough=frozenset({"ValidationException"}))
        except DynamoFault as fault:  # "TimeToLive is already enabled" (a race) is fine; anything else is not
            if "already enabled" not in fault.message:
                raise StoreError(f"cannot enable TTL on {t.name}: {fault.message}", backend=self.name) from None
