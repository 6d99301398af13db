"""Collection queries on DynamoDB: the items of several entity types in one partition, one ``Query``.

See :mod:`tierstore.collection`. Each item is decoded by its type attribute when it names one of the entities,
else by the first entity whose key templates it fits; an item of none of them is left out. ``limit`` counts
the items returned (the query reads on until the page is full), and the cursor is the last returned item's key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tierstore.errors import ValidationError
from tierstore.model.schema import Schema
from tierstore.query import Page, Query, decode_cursor, encode_cursor
from tierstore.stores.dynamodb import limits
from tierstore.stores.dynamodb.base import DynamoStoreBase, TableState
from tierstore.stores.dynamodb.codec import AV

__all__ = ["Collections"]


class Collections(DynamoStoreBase):
    async def query_collection(
        self, schemas: Sequence[Schema[Any]], key: Query, limit: int | None, cursor: str | None, consistent: bool
    ) -> Page[Any]:
        tables = [self._table(s) for s in schemas]
        first = tables[0]
        codec = first.codec
        self.stats.queries += 1
        partition = codec.partition.value(key.partition)
        limits.check_key_value(partition, sort=False, entity=first.schema.name, key=key.partition)
        assert codec.sort is not None
        p_attr, s_attr = codec.partition.attr, codec.sort.attr
        params: dict[str, Any] = {
            "TableName": first.name, "KeyConditionExpression": "#p = :p",
            "ExpressionAttributeNames": {"#p": p_attr}, "ExpressionAttributeValues": {":p": partition},
        }
        if consistent or self._consistent:
            params["ConsistentRead"] = True
        if cursor is not None:
            position = decode_cursor(key, cursor)
            if len(position) != 2 or not all(isinstance(p, str) for p in position):
                raise ValidationError("malformed cursor", entity=first.schema.name)
            params["ExclusiveStartKey"] = {p_attr: {"S": position[0]}, s_attr: {"S": position[1]}}
        by_type = {t.codec.type_av["S"]: t for t in tables if t.codec.type_attr is not None}

        def which(raw: dict[str, AV]) -> TableState | None:
            for t in tables:
                attr = t.codec.type_attr
                if attr is not None and attr in raw:
                    hit = by_type.get(raw[attr].get("S"))
                    if hit is not None:
                        return hit
            for t in tables:
                if not t.codec.foreign(raw):
                    return t
            return None

        found: list[tuple[dict[str, AV], TableState]] = []
        last: dict[str, AV] | None = None
        while True:
            if limit is not None:
                params["Limit"] = limit + 1 - len(found)
            reply = await self._call("Query", params, idempotent=True, entity=first.schema.name)
            for raw in reply.get("Items") or ():
                t = which(raw)
                if t is not None:
                    found.append((raw, t))
            last = reply.get("LastEvaluatedKey")
            if not last or (limit is not None and len(found) > limit):
                break
            params["ExclusiveStartKey"] = last
        next_cursor = None
        if limit is not None and len(found) > limit:
            found = found[:limit]
            raw = found[-1][0]
            next_cursor = encode_cursor(key, [raw[p_attr]["S"], raw[s_attr]["S"]])
        return Page([t.codec.decode(raw) for raw, t in found], next_cursor)
